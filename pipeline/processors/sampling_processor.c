/* Processor "sampling": cuts profile volume by one of five strategies (probabilistic,
 * rate_limiting, adaptive, policy, sample_downsampling); preserve_totals leaves a stripped
 * profile carrying the totals behind for each dropped one. Semantics: docs/processors-sampling.md. */
#include "sampling_processor.h"

#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_arena.h"
#include "fg_hash.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_model_select.h"
#include "fg_proc_util.h"
#include "fg_service.h"

#define SAMPLED_ATTR "flamegate.sampled"
#define OTHER_FRAME "[other]"

enum strategy_kind { S_PROBABILISTIC, S_RATE_LIMITING, S_ADAPTIVE, S_POLICY, S_DOWNSAMPLING };

static const char *const strategy_names[] = {"probabilistic", "rate_limiting", "adaptive",
                                             "policy", "sample_downsampling", NULL};

/* What one strategy is configured with; numbers are text so the check hooks can point at
 * a bad one (the option tables have no floating-point type). */
struct sampling_params {
    int strategy;
    char *percentage;
    int64_t hash_seed;
    char *profiles_per_second;
    char *samples_per_second;
    char *burst;
    char *key;
    int64_t max_keys;
    char *target_samples_per_second;
    int64_t adjust_interval_ns;
    char *min_percentage;
    char *probability;
    char *min_share;
    bool preserve_totals;
};

struct rule_match {
    char *resource_attribute;
    char *profile_attribute;
    char *value;
    char *regex;
    char *sample_type;
};

struct sampling_rule {
    char *name;
    struct rule_match match;
    struct sampling_params p;
};

struct sampling_config {
    struct sampling_params p;
    struct fg_structlist rules; /* of struct sampling_rule */
    struct sampling_params def;
};

#define PARAM_OPTIONS(type_, m)                                                                \
    FG_OPT_CHOICE("strategy", type_, m.strategy, "probabilistic", strategy_names,              \
                  "probabilistic, rate_limiting, adaptive, policy or sample_downsampling"),    \
        FG_OPT_STR_CHECK("percentage", type_, m.percentage, NULL, fg_proc_check_percentage,   \
                         "probabilistic: share of profiles kept, 0..100"),                     \
        FG_OPT_INTEGER("hash_seed", type_, m.hash_seed, "0", 0, UINT32_MAX,                    \
                       "seed of the keep decision (same seed, same decisions)"),               \
        FG_OPT_STR_CHECK("profiles_per_second", type_, m.profiles_per_second, NULL,           \
                         fg_proc_check_nonneg, "rate_limiting: profiles per second per key"),  \
        FG_OPT_STR_CHECK("samples_per_second", type_, m.samples_per_second, NULL,             \
                         fg_proc_check_nonneg, "rate_limiting: samples per second per key"),   \
        FG_OPT_STR_CHECK("burst", type_, m.burst, NULL, fg_proc_check_nonneg,                  \
                         "rate_limiting: bucket size (default one second's worth)"),           \
        FG_OPT_STR("key", type_, m.key, "service.name",                                       \
                   "rate_limiting/adaptive: resource attribute whose value is the key"),       \
        FG_OPT_INTEGER("max_keys", type_, m.max_keys, "10000", 1, 10000000,                    \
                       "keys tracked; later keys share one state"),                            \
        FG_OPT_STR_CHECK("target_samples_per_second", type_, m.target_samples_per_second,     \
                         NULL, fg_proc_check_nonneg, "adaptive: samples per second per key"),  \
        FG_OPT_DUR("adjust_interval", type_, m.adjust_interval_ns, "10s",                      \
                   INT64_C(1000000), INT64_C(3600000000000),                                   \
                   "adaptive: how often the keep probability follows the rate"),               \
        FG_OPT_STR_CHECK("min_percentage", type_, m.min_percentage, "1",                       \
                         fg_proc_check_percentage, "adaptive: lowest keep percentage"),        \
        FG_OPT_STR_CHECK("probability", type_, m.probability, NULL, fg_proc_check_fraction,   \
                         "sample_downsampling: keep probability of a sample, (0, 1]"),         \
        FG_OPT_STR_CHECK("min_share", type_, m.min_share, NULL, fg_proc_check_fraction,       \
                         "sample_downsampling: stacks below this share fold into [other]"),    \
        FG_OPT_BOOLEAN("preserve_totals", type_, m.preserve_totals, "false",                   \
                       "a dropped profile leaves a stripped profile with its totals")

/* The "default" block: a table over a struct whose only member is the params. */
struct params_block {
    struct sampling_params p;
};

static const struct fg_option params_options[] = {
    PARAM_OPTIONS(struct params_block, p),
    FG_OPT_END,
};

static const struct fg_option match_options[] = {
    FG_OPT_STR("resource_attribute", struct rule_match, resource_attribute, NULL,
               "resource attribute key to test"),
    FG_OPT_STR("profile_attribute", struct rule_match, profile_attribute, NULL,
               "profile attribute key to test"),
    FG_OPT_STR("value", struct rule_match, value, NULL, "the attribute equals this"),
    FG_OPT_STR_CHECK("regex", struct rule_match, regex, NULL, fg_proc_check_regex,
                     "the attribute matches this POSIX extended regex (unanchored)"),
    FG_OPT_STR("sample_type", struct rule_match, sample_type, NULL,
               "the profile's sample type equals this (e.g. cpu, samples)"),
    FG_OPT_END,
};

static const struct fg_option rule_options[] = {
    FG_OPT_STR("name", struct sampling_rule, name, NULL, "shown in logs"),
    FG_OPT_BLOCK("match", struct sampling_rule, match, match_options,
                 "conditions, all of which must hold"),
    PARAM_OPTIONS(struct sampling_rule, p),
    FG_OPT_END,
};

static int rule_check(const void *value, struct fg_err *err);

static const struct fg_option sampling_options[] = {
    PARAM_OPTIONS(struct sampling_config, p),
    FG_OPT_STRUCTS_CHECK("rules", struct sampling_config, rules, rule_options,
                         struct sampling_rule, rule_check,
                         "policy: ordered rules, first match wins"),
    FG_OPT_BLOCK("default", struct sampling_config, def, params_options,
                 "policy: strategy for profiles no rule matches (default: keep)"),
    FG_OPT_END,
};

static double num(const char *text, double dflt)
{
    double v;
    return text && fg_proc_parse_double(text, &v) == 0 ? v : dflt;
}

/* Cross-field checks of one strategy; is_default relaxes probabilistic's percentage (an
 * empty default keeps everything). */
static int params_check(const struct sampling_params *p, bool in_policy, bool is_default,
                        struct fg_err *err)
{
    switch (p->strategy) {
    case S_PROBABILISTIC:
        if (!p->percentage && !is_default)
            return fg_err_set(err, FG_EINVAL, "percentage: required by strategy probabilistic");
        break;
    case S_RATE_LIMITING:
        if (!p->profiles_per_second == !p->samples_per_second)
            return fg_err_set(err, FG_EINVAL,
                              "strategy rate_limiting needs exactly one of profiles_per_second "
                              "and samples_per_second");
        break;
    case S_ADAPTIVE:
        if (num(p->target_samples_per_second, 0) <= 0)
            return fg_err_set(err, FG_EINVAL,
                              "target_samples_per_second: required by strategy adaptive, and "
                              "must be above 0");
        break;
    case S_DOWNSAMPLING:
        if (num(p->probability, 0) <= 0)
            return fg_err_set(err, FG_EINVAL,
                              "probability: required by strategy sample_downsampling, and must "
                              "be above 0");
        if (p->min_share && num(p->min_share, 0) >= 1)
            return fg_err_set(err, FG_EINVAL, "min_share: must be below 1");
        break;
    case S_POLICY:
        if (in_policy)
            return fg_err_set(err, FG_EINVAL,
                              "strategy: a policy rule or default cannot itself be a policy");
        break;
    }
    return 0;
}

static int rule_check(const void *value, struct fg_err *err)
{
    const struct sampling_rule *r = value;
    const struct rule_match *m = &r->match;
    if (m->resource_attribute && m->profile_attribute)
        return fg_err_set(err, FG_EINVAL,
                          "match: give resource_attribute or profile_attribute, not both");
    if ((m->resource_attribute || m->profile_attribute) && !m->value == !m->regex)
        return fg_err_set(err, FG_EINVAL, "match: an attribute needs exactly one of value and regex");
    if (!m->resource_attribute && !m->profile_attribute && (m->value || m->regex))
        return fg_err_set(err, FG_EINVAL,
                          "match: value and regex need resource_attribute or profile_attribute");
    return params_check(&r->p, true, false, err);
}

static int sampling_validate(const void *config, struct fg_err *err)
{
    const struct sampling_config *cfg = config;
    int rc = params_check(&cfg->p, false, false, err);
    if (rc)
        return rc;
    if (cfg->p.strategy == S_POLICY) {
        if (cfg->rules.n == 0)
            return fg_err_set(err, FG_EINVAL, "rules: strategy policy needs at least one rule");
        if ((rc = params_check(&cfg->def, true, true, err)) != 0) {
            fg_err_prefix(err, "default");
            return rc;
        }
    } else if (cfg->rules.n) {
        return fg_err_set(err, FG_EINVAL, "rules: only used by strategy policy");
    }
    return 0;
}

/* ---- runtime ---- */

struct bucket_state {
    bool inited;
    double tokens;
    int64_t last_ns;
};

struct adaptive_state {
    bool inited;
    int64_t interval_start_ns;
    double observed; /* samples seen in the current interval */
    double smoothed; /* samples per second; < 0 until the first interval ends */
    double keep;     /* probability in use */
    double debt;     /* samples that should have been kept minus those kept */
};

struct strategy {
    int kind;
    bool preserve_totals;
    uint64_t seed;
    double keep;          /* probabilistic; downsampling: per-sample probability */
    double rate, burst;   /* rate_limiting */
    bool per_sample;      /* rate_limiting in samples */
    double target, min_keep;
    int64_t interval_ns;
    double min_share;
    const char *key;
    struct fg_keytab *keys;
};

struct rule_rt {
    const struct sampling_rule *cfg;
    bool has_regex;
    regex_t re;
    struct strategy s;
};

struct sampling_processor {
    struct fg_component base;
    const struct sampling_config *cfg;
    struct fg_consumer *next;
    int64_t (*now)(void *arg);
    void *now_arg;
    pthread_mutex_t mu; /* state of keyed strategies and stats */
    struct strategy top;
    struct rule_rt *rules;
    size_t n_rules;
    struct strategy def;
    struct fg_sampling_stats stats;
};

static int64_t default_now(void *arg)
{
    FG_UNUSED(arg);
    return fg_now_ns();
}

static int strategy_init(struct strategy *s, const struct sampling_params *p, bool is_default,
                         bool preserve_all)
{
    memset(s, 0, sizeof(*s));
    s->kind = p->strategy;
    s->preserve_totals = p->preserve_totals || preserve_all;
    s->seed = (uint64_t)p->hash_seed;
    s->key = p->key ? p->key : "service.name";
    switch (p->strategy) {
    case S_PROBABILISTIC:
        s->keep = num(p->percentage, is_default ? 100 : 0) / 100.0;
        break;
    case S_RATE_LIMITING:
        s->per_sample = p->samples_per_second != NULL;
        s->rate = num(s->per_sample ? p->samples_per_second : p->profiles_per_second, 0);
        s->burst = num(p->burst, s->rate);
        break;
    case S_ADAPTIVE:
        s->target = num(p->target_samples_per_second, 1);
        s->min_keep = num(p->min_percentage, 1) / 100.0;
        s->interval_ns = p->adjust_interval_ns;
        break;
    case S_DOWNSAMPLING:
        s->keep = num(p->probability, 1);
        s->min_share = num(p->min_share, 0);
        break;
    default:
        break;
    }
    if (s->kind == S_RATE_LIMITING || s->kind == S_ADAPTIVE) {
        size_t size = s->kind == S_RATE_LIMITING ? sizeof(struct bucket_state)
                                                 : sizeof(struct adaptive_state);
        return fg_keytab_new(size, (size_t)p->max_keys, &s->keys);
    }
    return 0;
}

/* A uniform number in [0, 1) from a 64-bit hash. fg_hash_mix is one multiply round, too
 * little avalanche for near-equal inputs (consecutive start times), so the bits go
 * through murmur3's finalizer first. */
static double unit_interval(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

static bool id_is_set(struct fg_bytes id)
{
    for (uint32_t i = 0; i < id.len; i++)
        if (id.ptr[i])
            return true;
    return false;
}

/* Identity of a profile, the same in every gateway: its profile_id when set, otherwise
 * its resource attributes (in any order), scope and start time. Seed-free; the strategy
 * mixes its seed in. */
static uint64_t profile_identity(const struct fg_resource_profiles *rp,
                                 const struct fg_scope_profiles *sp,
                                 const struct fg_profile *prof)
{
    if (id_is_set(prof->profile_id))
        return fg_hash_bytes(1, prof->profile_id.ptr, prof->profile_id.len);
    uint64_t attrs = 0;
    for (uint32_t i = 0; i < rp->resource.n_attrs; i++) {
        const struct fg_keyvalue *kv = &rp->resource.attrs[i];
        attrs += fg_value_hash(fg_hash_bytes(2, kv->key.ptr, kv->key.len), &kv->value);
    }
    uint64_t h = fg_hash_mix(3, attrs);
    h = fg_hash_bytes(h, sp->scope.name.ptr, sp->scope.name.len);
    h = fg_hash_bytes(h, sp->scope.version.ptr, sp->scope.version.len);
    return fg_hash_mix(h, prof->time_unix_nano);
}

static double profile_uniform(const struct strategy *s, uint64_t identity)
{
    return unit_interval(fg_hash_mix(fg_hash_mix(0x73616d70ULL, s->seed), identity));
}

static void *key_state(struct sampling_processor *sp, struct strategy *s,
                       const struct fg_resource *res)
{
    char buf[64];
    size_t len;
    const char *text = fg_proc_value_text(fg_proc_resource_attr(res, s->key), buf, sizeof(buf),
                                          &len);
    bool created;
    uint64_t before = fg_keytab_overflows(s->keys);
    void *st = fg_keytab_get(s->keys, text, len, &created);
    if (fg_keytab_overflows(s->keys) != before)
        sp->stats.key_overflows++;
    return st;
}

/* Keep decision for one profile under a per-profile strategy; mu held. A state that
 * cannot be allocated keeps the profile (never lose data to our own OOM). */
static bool decide(struct sampling_processor *sp, struct strategy *s,
                   const struct fg_resource *res, uint64_t identity, uint32_t n_samples)
{
    int64_t now;
    switch (s->kind) {
    case S_PROBABILISTIC:
        return profile_uniform(s, identity) < s->keep;
    case S_RATE_LIMITING: {
        struct bucket_state *b = key_state(sp, s, res);
        if (!b)
            return true;
        now = sp->now(sp->now_arg);
        if (!b->inited) {
            b->inited = true;
            b->tokens = s->burst;
            b->last_ns = now;
        }
        if (now > b->last_ns) {
            b->tokens = FG_MIN(s->burst, b->tokens + s->rate * (double)(now - b->last_ns) / 1e9);
            b->last_ns = now;
        }
        double cost = s->per_sample ? (double)n_samples : 1.0;
        /* a profile larger than the bucket passes when the bucket is full, leaving debt */
        if (b->tokens + 1e-9 < FG_MIN(cost, s->burst))
            return false;
        b->tokens -= cost;
        return true;
    }
    case S_ADAPTIVE: {
        struct adaptive_state *a = key_state(sp, s, res);
        if (!a)
            return true;
        now = sp->now(sp->now_arg);
        if (!a->inited) {
            a->inited = true;
            a->interval_start_ns = now;
            a->smoothed = -1;
            a->keep = 1;
        }
        int64_t elapsed = now - a->interval_start_ns;
        if (elapsed >= s->interval_ns) {
            double rate = a->observed * 1e9 / (double)elapsed;
            a->smoothed = a->smoothed < 0 ? rate : 0.5 * rate + 0.5 * a->smoothed;
            a->keep = a->smoothed > 0 ? FG_MAX(s->min_keep, FG_MIN(1.0, s->target / a->smoothed))
                                      : 1.0;
            a->interval_start_ns = now;
            a->observed = 0;
        }
        a->observed += n_samples;
        /* A pure coin per profile misses the target by its binomial noise (+-7% at 200
         * profiles an interval); feeding the running shortfall back into the coin keeps the
         * kept count within a few profiles of keep * offered, while staying random so a
         * round-robin of instances is not aliased the way every-n-th sampling would be. */
        double cost = n_samples ? (double)n_samples : 1.0;
        double p = a->keep + a->debt / (4.0 * cost);
        bool keep = profile_uniform(s, identity) < p;
        a->debt += a->keep * cost - (keep ? cost : 0);
        return keep;
    }
    default:
        return true;
    }
}

static bool value_matches(const struct rule_rt *r, const struct fg_value *v)
{
    if (!v)
        return false;
    char buf[64];
    size_t len;
    const char *text = fg_proc_value_text(v, buf, sizeof(buf), &len);
    if (r->cfg->match.value)
        return strlen(r->cfg->match.value) == len &&
               (!len || memcmp(r->cfg->match.value, text, len) == 0);
    /* regexec needs a NUL-terminated string; model strings are, formatted ones are too */
    return regexec(&r->re, text, 0, NULL, 0) == 0;
}

static bool rule_matches(const struct rule_rt *r, const struct fg_profiles *batch,
                         const struct fg_resource *res, const struct fg_profile *prof)
{
    const struct rule_match *m = &r->cfg->match;
    if (m->sample_type) {
        struct fg_bytes t = fg_dict_get_string(batch, prof->sample_type.type);
        if (strlen(m->sample_type) != t.len || (t.len && memcmp(m->sample_type, t.ptr, t.len) != 0))
            return false;
    }
    if (m->resource_attribute)
        return value_matches(r, fg_proc_resource_attr(res, m->resource_attribute));
    if (m->profile_attribute)
        return value_matches(r, fg_proc_attr(batch, prof->attrs, prof->n_attrs,
                                             m->profile_attribute));
    return true;
}

enum action { A_KEEP, A_DROP, A_STRIP, A_DOWNSAMPLE };

struct plan {
    uint8_t action;
    struct strategy *s;
    uint64_t identity;
};

/* ---- building the output ---- */

/* The profile without its stacks: one sample on the empty stack holding the total of each
 * value, marked flamegate.sampled = true. */
static int add_stripped(struct fg_copier *c, struct fg_profiles *dst,
                        struct fg_scope_profiles *dsp, const struct fg_profile *sprof)
{
    uint32_t n_values = 0;
    for (uint32_t i = 0; i < sprof->n_samples; i++)
        n_values = FG_MAX(n_values, sprof->samples[i].n_values);
    if (!n_values)
        n_values = 1; /* timestamps-only samples: the total is their count */
    int64_t *totals = fg_calloc(n_values, sizeof(int64_t));
    if (!totals)
        return FG_ENOMEM;
    for (uint32_t i = 0; i < sprof->n_samples; i++) {
        const struct fg_sample *s = &sprof->samples[i];
        if (!s->n_values)
            totals[0] += s->n_timestamps;
        for (uint32_t v = 0; v < s->n_values; v++)
            totals[v] += s->values[v];
    }
    int rc = FG_ENOMEM;
    struct fg_profile *dprof = fg_copier_profile_header(c, dsp, sprof);
    int32_t key = fg_dict_string(dst, SAMPLED_ATTR, strlen(SAMPLED_ATTR));
    if (!dprof || key < 0)
        goto out;
    struct fg_attribute a = {.key = (uint32_t)key, .value = {.kind = FG_VALUE_BOOL, .u.b = true}};
    int32_t attr = fg_dict_attribute(dst, &a);
    uint32_t *attrs = fg_arena_alloc(fg_profiles_arena(dst), (dprof->n_attrs + 1u) * sizeof(uint32_t));
    if (attr < 0 || !attrs)
        goto out;
    if (dprof->n_attrs)
        memcpy(attrs, dprof->attrs, dprof->n_attrs * sizeof(uint32_t));
    attrs[dprof->n_attrs] = (uint32_t)attr;
    dprof->attrs = attrs;
    dprof->n_attrs++;
    dprof->original_payload = (struct fg_bytes){"", 0};
    dprof->original_payload_format = (struct fg_bytes){"", 0};
    rc = 0;
    if (sprof->n_samples) {
        struct fg_sample s = {.n_values = n_values, .values = totals};
        rc = fg_profiles_add_sample(dst, dprof, &s);
    }
out:
    fg_free(totals);
    return rc;
}

static int32_t other_stack(struct fg_profiles *dst)
{
    int32_t name = fg_dict_string(dst, OTHER_FRAME, strlen(OTHER_FRAME));
    if (name < 0)
        return name;
    struct fg_function f = {.name = (uint32_t)name};
    int32_t fn = fg_dict_function(dst, &f);
    if (fn < 0)
        return fn;
    struct fg_line line = {.function = (uint32_t)fn};
    struct fg_location l = {.n_lines = 1, .lines = &line};
    int32_t loc = fg_dict_location(dst, &l);
    if (loc < 0)
        return loc;
    uint32_t locs[1] = {(uint32_t)loc};
    struct fg_stack st = {.n_locations = 1, .locations = locs};
    return fg_dict_stack(dst, &st);
}

/* Inside one profile: each sample stays with probability p. Without min_share a kept
 * sample's values are scaled by 1/p (unbiased totals). With min_share, stacks holding at
 * least that share of the total always stay as they are, and the light samples that are
 * not kept fold into one [other] sample (exact totals). */
static int add_downsampled(struct fg_copier *c, const struct fg_profiles *src,
                           struct fg_profiles *dst, struct fg_scope_profiles *dsp,
                           const struct fg_profile *sprof, const struct strategy *s,
                           uint64_t identity, uint64_t *samples_out)
{
    int rc = FG_ENOMEM;
    double *stack_weight = NULL;
    int64_t *scaled = NULL, *other = NULL;
    uint32_t max_values = 1;
    for (uint32_t i = 0; i < sprof->n_samples; i++)
        max_values = FG_MAX(max_values, sprof->samples[i].n_values);
    scaled = fg_calloc(max_values, sizeof(int64_t));
    other = fg_calloc(max_values, sizeof(int64_t));
    if (!scaled || !other)
        goto out;
    double total = 0;
    if (s->min_share > 0) {
        stack_weight = fg_calloc(FG_MAX(fg_dict_len(src, FG_TABLE_STACK), 1), sizeof(double));
        if (!stack_weight)
            goto out;
        for (uint32_t i = 0; i < sprof->n_samples; i++) {
            const struct fg_sample *x = &sprof->samples[i];
            double w = 0;
            if (!x->n_values)
                w = x->n_timestamps;
            for (uint32_t v = 0; v < x->n_values; v++)
                w += fabs((double)x->values[v]);
            stack_weight[x->stack] += w;
            total += w;
        }
    }
    struct fg_profile *dprof = fg_copier_profile_header(c, dsp, sprof);
    if (!dprof)
        goto out;
    uint64_t base = fg_hash_mix(fg_hash_mix(0x646f776eULL, s->seed), identity);
    bool folded = false;
    /* Balanced coins: the running shortfall of kept weight against keep * weight seen is fed
     * back into each coin, so the kept weight stays within a few samples of its expectation
     * and the scaled total within a fraction of a percent, where independent coins would
     * wander by their binomial noise (about 1% at 10,000 kept samples). */
    double debt = 0, mean_w = 0;
    for (uint32_t i = 0; i < sprof->n_samples; i++) {
        const struct fg_sample *x = &sprof->samples[i];
        mean_w += x->n_values ? 0 : (double)x->n_timestamps;
        for (uint32_t v = 0; v < x->n_values; v++)
            mean_w += fabs((double)x->values[v]);
    }
    if (sprof->n_samples)
        mean_w /= sprof->n_samples;
    for (uint32_t i = 0; i < sprof->n_samples; i++) {
        const struct fg_sample *x = &sprof->samples[i];
        bool heavy = stack_weight && total > 0 && stack_weight[x->stack] / total >= s->min_share;
        double w = 0;
        if (!x->n_values)
            w = x->n_timestamps;
        for (uint32_t v = 0; v < x->n_values; v++)
            w += fabs((double)x->values[v]);
        /* the correction is scaled by the mean weight, not by w: scaling by w would favour
         * light samples and bend the shape of the profile to fix its total */
        double p = mean_w > 0 ? s->keep + debt / (4.0 * mean_w) : s->keep;
        bool keep = heavy || unit_interval(fg_hash_mix(base, i)) < p;
        if (!heavy)
            debt += s->keep * w - (keep ? w : 0);
        if (keep && (stack_weight || s->keep >= 1)) {
            if ((rc = fg_copier_sample(c, dprof, x, NULL)) != 0)
                goto out;
            ++*samples_out;
            continue;
        }
        if (keep) {
            struct fg_sample y = *x;
            if (x->n_values) {
                for (uint32_t v = 0; v < x->n_values; v++)
                    scaled[v] = llround((double)x->values[v] / s->keep);
            } else {
                /* timestamps-only: the weight becomes a value, since timestamps cannot scale */
                scaled[0] = llround((double)x->n_timestamps / s->keep);
                y.n_values = 1;
            }
            if ((rc = fg_copier_sample(c, dprof, &y, scaled)) != 0)
                goto out;
            ++*samples_out;
        } else if (stack_weight) {
            if (!x->n_values)
                other[0] += x->n_timestamps;
            for (uint32_t v = 0; v < x->n_values; v++)
                other[v] += x->values[v];
            folded = true;
        }
    }
    rc = 0;
    if (folded) {
        int32_t st = other_stack(dst);
        if (st < 0) {
            rc = FG_ENOMEM;
            goto out;
        }
        struct fg_sample o = {.stack = (uint32_t)st, .n_values = max_values, .values = other};
        rc = fg_profiles_add_sample(dst, dprof, &o);
        ++*samples_out;
    }
out:
    fg_free(stack_weight);
    fg_free(scaled);
    fg_free(other);
    return rc;
}

static struct fg_sampling_stats build_output(struct sampling_processor *sp,
                                             const struct fg_profiles *in,
                                             const struct plan *plans, struct fg_profiles **out,
                                             int *rc_out)
{
    struct fg_sampling_stats st = {0};
    struct fg_profiles *dst = NULL;
    struct fg_copier *c = NULL;
    int rc = fg_profiles_new(&dst);
    if (rc || (rc = fg_copier_new(dst, in, &c)) != 0)
        goto fail;
    memcpy(dst->tenant, in->tenant, sizeof(dst->tenant));
    size_t k = 0;
    for (uint32_t r = 0; r < in->n_resources; r++) {
        const struct fg_resource_profiles *rp = &in->resources[r];
        int64_t drp = -1;
        for (uint32_t s = 0; s < rp->n_scopes; s++) {
            const struct fg_scope_profiles *ssp = &rp->scopes[s];
            struct fg_scope_profiles *dsp = NULL;
            for (uint32_t i = 0; i < ssp->n_profiles; i++, k++) {
                const struct fg_profile *prof = &ssp->profiles[i];
                const struct plan *pl = &plans[k];
                if (pl->action == A_DROP)
                    continue;
                if (drp < 0) {
                    if (!fg_profiles_add_resource(dst, &rp->resource, rp->schema_url.ptr,
                                                  rp->schema_url.len)) {
                        rc = FG_ENOMEM;
                        goto fail;
                    }
                    drp = dst->n_resources - 1;
                }
                if (!dsp && !(dsp = fg_profiles_add_scope(dst, &dst->resources[drp], &ssp->scope,
                                                          ssp->schema_url.ptr,
                                                          ssp->schema_url.len))) {
                    rc = FG_ENOMEM;
                    goto fail;
                }
                switch (pl->action) {
                case A_KEEP:
                    if (!fg_copier_profile(c, dsp, prof))
                        rc = FG_ENOMEM;
                    st.samples_out += prof->n_samples;
                    break;
                case A_STRIP:
                    rc = add_stripped(c, dst, dsp, prof);
                    st.samples_out += prof->n_samples ? 1 : 0;
                    break;
                case A_DOWNSAMPLE:
                    rc = add_downsampled(c, in, dst, dsp, prof, pl->s, pl->identity,
                                         &st.samples_out);
                    break;
                }
                if (rc)
                    goto fail;
            }
        }
    }
    fg_copier_free(c);
    *out = dst;
    *rc_out = 0;
    FG_UNUSED(sp);
    return st;
fail:
    fg_copier_free(c);
    fg_profiles_unref(dst);
    *out = NULL;
    *rc_out = rc ? rc : FG_ENOMEM;
    return st;
}

static int sampling_consume(struct fg_consumer *self, struct fg_profiles *batch,
                            struct fg_err *err)
{
    struct sampling_processor *sp =
        (struct sampling_processor *)((char *)self - offsetof(struct fg_component, consumer));
    size_t n = 0;
    for (uint32_t r = 0; r < batch->n_resources; r++)
        for (uint32_t s = 0; s < batch->resources[r].n_scopes; s++)
            n += batch->resources[r].scopes[s].n_profiles;
    if (n == 0)
        return fg_consume(sp->next, batch, err);
    struct plan *plans = fg_malloc(n * sizeof(*plans));
    if (!plans) {
        fg_profiles_unref(batch);
        return fg_err_set(err, FG_ERETRYABLE, "sampling: out of memory");
    }
    size_t k = 0, kept = 0, dropped = 0, stripped = 0, down = 0;
    pthread_mutex_lock(&sp->mu);
    for (uint32_t r = 0; r < batch->n_resources; r++) {
        const struct fg_resource_profiles *rp = &batch->resources[r];
        for (uint32_t s = 0; s < rp->n_scopes; s++) {
            const struct fg_scope_profiles *ssp = &rp->scopes[s];
            for (uint32_t i = 0; i < ssp->n_profiles; i++, k++) {
                const struct fg_profile *prof = &ssp->profiles[i];
                struct strategy *st = &sp->top;
                if (st->kind == S_POLICY) {
                    st = &sp->def;
                    for (size_t j = 0; j < sp->n_rules; j++) {
                        if (rule_matches(&sp->rules[j], batch, &rp->resource, prof)) {
                            st = &sp->rules[j].s;
                            break;
                        }
                    }
                }
                struct plan *pl = &plans[k];
                pl->s = st;
                pl->identity = profile_identity(rp, ssp, prof);
                sp->stats.samples_in += prof->n_samples;
                if (st->kind == S_DOWNSAMPLING) {
                    pl->action = A_DOWNSAMPLE;
                    down++;
                } else if (decide(sp, st, &rp->resource, pl->identity, prof->n_samples)) {
                    pl->action = A_KEEP;
                    kept++;
                } else if (st->preserve_totals) {
                    pl->action = A_STRIP;
                    stripped++;
                } else {
                    pl->action = A_DROP;
                    dropped++;
                }
            }
        }
    }
    sp->stats.profiles_in += n;
    sp->stats.kept += kept;
    sp->stats.dropped += dropped;
    sp->stats.stripped += stripped;
    sp->stats.downsampled += down;
    pthread_mutex_unlock(&sp->mu);

    int rc = 0;
    if (kept == n) { /* nothing changes: pass the shared batch on untouched */
        uint64_t samples = batch->n_samples;
        fg_free(plans);
        pthread_mutex_lock(&sp->mu);
        sp->stats.samples_out += samples;
        pthread_mutex_unlock(&sp->mu);
        return fg_consume(sp->next, batch, err);
    }
    if (dropped == n) {
        fg_free(plans);
        fg_profiles_unref(batch);
        return 0;
    }
    struct fg_profiles *out = NULL;
    struct fg_sampling_stats st = build_output(sp, batch, plans, &out, &rc);
    fg_free(plans);
    fg_profiles_unref(batch);
    if (rc)
        return fg_err_set(err, FG_ERETRYABLE, "sampling: out of memory building the output");
    pthread_mutex_lock(&sp->mu);
    sp->stats.samples_out += st.samples_out;
    pthread_mutex_unlock(&sp->mu);
    return fg_consume(sp->next, out, err);
}

static int sampling_start(struct fg_component *c, struct fg_err *err)
{
    FG_UNUSED(c);
    FG_UNUSED(err);
    return 0;
}

static int sampling_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    struct sampling_processor *sp = (struct sampling_processor *)c;
    FG_UNUSED(deadline_ns);
    pthread_mutex_lock(&sp->mu);
    fg_log(FG_LOG_DEBUG, c->id,
           "profiles in %llu: kept %llu, dropped %llu, stripped %llu, downsampled %llu; "
           "samples %llu -> %llu",
           (unsigned long long)sp->stats.profiles_in, (unsigned long long)sp->stats.kept,
           (unsigned long long)sp->stats.dropped, (unsigned long long)sp->stats.stripped,
           (unsigned long long)sp->stats.downsampled, (unsigned long long)sp->stats.samples_in,
           (unsigned long long)sp->stats.samples_out);
    pthread_mutex_unlock(&sp->mu);
    return 0;
}

static void sampling_destroy(struct fg_component *c)
{
    struct sampling_processor *sp = (struct sampling_processor *)c;
    if (!sp)
        return;
    fg_keytab_free(sp->top.keys);
    fg_keytab_free(sp->def.keys);
    for (size_t i = 0; i < sp->n_rules; i++) {
        fg_keytab_free(sp->rules[i].s.keys);
        if (sp->rules[i].has_regex)
            regfree(&sp->rules[i].re);
    }
    fg_free(sp->rules);
    pthread_mutex_destroy(&sp->mu);
    fg_free(sp);
}

static const struct fg_component_ops sampling_ops = {
    .start = sampling_start,
    .shutdown = sampling_shutdown,
    .destroy = sampling_destroy,
};

static int sampling_create(const struct fg_create_args *args, struct fg_component **out,
                           struct fg_err *err)
{
    const struct sampling_config *cfg = args->config;
    struct sampling_processor *sp = fg_calloc(1, sizeof(*sp));
    if (!sp)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    sp->base.ops = &sampling_ops;
    sp->base.consumer.consume = sampling_consume;
    sp->cfg = cfg;
    sp->next = args->next;
    sp->now = default_now;
    pthread_mutex_init(&sp->mu, NULL);
    int rc = strategy_init(&sp->top, &cfg->p, false, false);
    if (!rc && cfg->p.strategy == S_POLICY) {
        rc = strategy_init(&sp->def, &cfg->def, true, cfg->p.preserve_totals);
        if (!rc && cfg->rules.n && !(sp->rules = fg_calloc(cfg->rules.n, sizeof(*sp->rules))))
            rc = FG_ENOMEM;
        for (size_t i = 0; !rc && i < cfg->rules.n; i++) {
            struct rule_rt *r = &sp->rules[i];
            r->cfg = (const struct sampling_rule *)cfg->rules.items + i;
            sp->n_rules++;
            if ((rc = strategy_init(&r->s, &r->cfg->p, false, cfg->p.preserve_totals)) != 0)
                break;
            if (r->cfg->match.regex) {
                if (regcomp(&r->re, r->cfg->match.regex, REG_EXTENDED | REG_NOSUB) != 0) {
                    rc = FG_EINVAL; /* validated at load time; only a bad direct caller */
                    break;
                }
                r->has_regex = true;
            }
        }
    }
    if (rc) {
        sampling_destroy(&sp->base);
        return fg_err_set(err, rc, "sampling: %s", fg_strerror(rc));
    }
    *out = &sp->base;
    return 0;
}

void fg_sampling_processor_set_clock(struct fg_component *c, int64_t (*now)(void *arg), void *arg)
{
    struct sampling_processor *sp = (struct sampling_processor *)c;
    sp->now = now ? now : default_now;
    sp->now_arg = arg;
}

void fg_sampling_processor_stats(struct fg_component *c, struct fg_sampling_stats *out)
{
    struct sampling_processor *sp = (struct sampling_processor *)c;
    pthread_mutex_lock(&sp->mu);
    *out = sp->stats;
    pthread_mutex_unlock(&sp->mu);
}

const struct fg_factory fg_sampling_processor_factory = {
    .type = "sampling",
    .kind = FG_KIND_PROCESSOR,
    .config_size = sizeof(struct sampling_config),
    .options = sampling_options,
    .validate = sampling_validate,
    .create = sampling_create,
};
