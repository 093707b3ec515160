/* Processor "relabel": Prometheus relabel_configs (prometheus/model/relabel semantics) on
 * resource attributes or on sample attributes, so Pyroscope-style labels inside a profile
 * can be rewritten, kept or dropped. A label's value is the text form of the attribute;
 * an empty value means the label is absent, as in Prometheus. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_arena.h"
#include "fg_attr_actions.h"
#include "fg_digest.h"
#include "fg_component.h"
#include "fg_model.h"
#include "fg_proc_regex.h"

enum rl_action {
    RL_REPLACE,
    RL_KEEP,
    RL_DROP,
    RL_KEEPEQUAL,
    RL_DROPEQUAL,
    RL_HASHMOD,
    RL_LABELMAP,
    RL_LABELDROP,
    RL_LABELKEEP,
    RL_LOWERCASE,
    RL_UPPERCASE,
};

static const char *const rl_action_names[] = {
    "replace",   "keep",      "drop",      "keepequal", "dropequal", "hashmod",
    "labelmap",  "labeldrop", "labelkeep", "lowercase", "uppercase", NULL};

static const char *const scope_names[] = {"resource", "sample", NULL};

struct rl_rule_cfg {
    struct fg_strlist source_labels;
    char *separator;
    char *regex;
    int64_t modulus;
    char *target_label;
    char *replacement;
    char *action;
};

struct relabel_config {
    int scope; /* 0 resource, 1 sample */
    struct fg_structlist relabel_configs;
};

static int rl_action_index(const char *s)
{
    for (int i = 0; s && rl_action_names[i]; i++)
        if (strcmp(rl_action_names[i], s) == 0)
            return i;
    return -1;
}

static int check_rl_action(const void *value, struct fg_err *err)
{
    const char *s = *(const char *const *)value;
    if (rl_action_index(s) >= 0)
        return 0;
    return fg_err_set(err, FG_EINVAL,
                      "unknown relabel action \"%s\" (valid: replace, keep, drop, keepequal, "
                      "dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase)",
                      s ? s : "");
}

static int check_anchored_regex(const void *value, struct fg_err *err)
{
    const char *pattern = *(const char *const *)value;
    struct fg_regex *re = NULL;
    int rc = fg_regex_compile(pattern ? pattern : "", FG_REGEX_ANCHORED, &re, err);
    if (rc == FG_EINVAL)
        fg_err_prefix(err, "invalid regex \"%s\"", pattern ? pattern : "");
    fg_regex_free(re);
    return rc;
}

/* Prometheus's relabelTarget: names and ${n}/$n references only. */
static bool valid_template_target(const char *s)
{
    if (!*s)
        return false;
    for (const char *p = s; *p;) {
        if (*p == '$') {
            p++;
            bool brace = *p == '{';
            if (brace)
                p++;
            const char *start = p;
            while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '_')
                p++;
            if (p == start || (brace && *p++ != '}'))
                return false;
            continue;
        }
        if (*p == '-' || *p == ' ')
            return false;
        p++;
    }
    return true;
}

static int check_rule(const void *elem, struct fg_err *err)
{
    const struct rl_rule_cfg *c = elem;
    int a = rl_action_index(c->action);
    bool has_target = c->target_label && *c->target_label;
    bool default_repl = c->replacement && strcmp(c->replacement, "$1") == 0;
    switch (a) {
    case RL_KEEP:
    case RL_DROP:
        break;
    case RL_REPLACE:
        if (!has_target)
            return fg_err_set(err, FG_EINVAL, "replace needs a target_label");
        if (strchr(c->target_label, '$') && !valid_template_target(c->target_label))
            return fg_err_set(err, FG_EINVAL, "\"%s\" is an invalid target_label for replace",
                              c->target_label);
        break;
    case RL_HASHMOD:
        if (c->modulus <= 0)
            return fg_err_set(err, FG_EINVAL, "hashmod needs a modulus above 0");
        if (!has_target || strchr(c->target_label, '$'))
            return fg_err_set(err, FG_EINVAL, "hashmod needs a plain target_label");
        break;
    case RL_LOWERCASE:
    case RL_UPPERCASE:
    case RL_KEEPEQUAL:
    case RL_DROPEQUAL:
        if (!has_target || strchr(c->target_label, '$'))
            return fg_err_set(err, FG_EINVAL, "%s needs a plain target_label", c->action);
        if (!default_repl)
            return fg_err_set(err, FG_EINVAL, "replacement cannot be set for %s", c->action);
        if ((a == RL_KEEPEQUAL || a == RL_DROPEQUAL) &&
            (strcmp(c->regex, "(.*)") != 0 || c->modulus || strcmp(c->separator, ";") != 0))
            return fg_err_set(err, FG_EINVAL,
                              "%s takes only source_labels and target_label", c->action);
        break;
    case RL_LABELMAP:
        if (!valid_template_target(c->replacement))
            return fg_err_set(err, FG_EINVAL, "\"%s\" is an invalid replacement for labelmap",
                              c->replacement);
        break;
    case RL_LABELDROP:
    case RL_LABELKEEP:
        if (c->source_labels.n || has_target || c->modulus || !default_repl ||
            strcmp(c->separator, ";") != 0)
            return fg_err_set(err, FG_EINVAL, "%s takes only a regex", c->action);
        break;
    default:
        return fg_err_set(err, FG_EINVAL, "unknown relabel action");
    }
    return 0;
}

static const struct fg_option rl_rule_options[] = {
    FG_OPT_LIST("source_labels", struct rl_rule_cfg, source_labels,
                "labels whose values are joined with separator"),
    FG_OPT_STR("separator", struct rl_rule_cfg, separator, ";", "joins source label values"),
    FG_OPT_STR_CHECK("regex", struct rl_rule_cfg, regex, "(.*)", check_anchored_regex,
                     "matched against the joined value; fully anchored"),
    FG_OPT_INTEGER("modulus", struct rl_rule_cfg, modulus, "0", 0, INT64_MAX, "for hashmod"),
    FG_OPT_STR("target_label", struct rl_rule_cfg, target_label, NULL,
               "label written (replace: may use $1, ${name})"),
    FG_OPT_STR("replacement", struct rl_rule_cfg, replacement, "$1",
               "value written by replace, name pattern for labelmap"),
    FG_OPT_STR_CHECK("action", struct rl_rule_cfg, action, "replace", check_rl_action,
                     "replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, "
                     "labelkeep, lowercase, uppercase"),
    FG_OPT_END,
};

static const struct fg_option relabel_options[] = {
    FG_OPT_CHOICE("scope", struct relabel_config, scope, "resource", scope_names,
                  "relabel resource attributes (drop = drop the resource) or sample attributes "
                  "(drop = drop the sample)"),
    FG_OPT_STRUCTS_CHECK("relabel_configs", struct relabel_config, relabel_configs,
                         rl_rule_options, struct rl_rule_cfg, check_rule,
                         "Prometheus relabel_configs, applied in order"),
    FG_OPT_END,
};

static int relabel_validate(const void *config, struct fg_err *err)
{
    const struct relabel_config *cfg = config;
    if (!cfg->relabel_configs.n)
        return fg_err_set(err, FG_EINVAL, "relabel_configs: at least one rule is needed");
    return 0;
}

/* ---- MD5 (RFC 1321), for hashmod's compatibility with Prometheus ---- */

static uint32_t rol(uint32_t x, int c)
{
    return (x << c) | (x >> (32 - c));
}

static void md5_block(uint32_t h[4], const uint8_t *b)
{
    static const uint32_t k[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391};
    static const int r[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                              5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                              4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                              6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
               (uint32_t)b[4 * i + 3] << 24;
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) {
            f = (bb & c) | (~bb & d);
            g = i;
        } else if (i < 32) {
            f = (d & bb) | (~d & c);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = bb ^ c ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = c ^ (bb | ~d);
            g = (7 * i) % 16;
        }
        uint32_t tmp = d;
        d = c;
        c = bb;
        bb = bb + rol(a + f + k[i] + w[g], r[i]);
        a = tmp;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
}

static void md5(const void *data, size_t len, uint8_t out[16])
{
    uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    fg_md_hash(h, md5_block, data, len, false);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(h[i] >> (8 * j));
}

/* Prometheus hashmod: the last 8 bytes of the MD5, big-endian, modulo m. */
uint64_t fg__relabel_hashmod(const char *s, size_t len, uint64_t m);
uint64_t fg__relabel_hashmod(const char *s, size_t len, uint64_t m)
{
    uint8_t d[16];
    md5(s, len, d);
    uint64_t v = 0;
    for (int i = 8; i < 16; i++)
        v = v << 8 | d[i];
    return v % m;
}

/* ---- the engine ---- */

struct rl_rule {
    enum rl_action action;
    char **src;
    size_t n_src;
    char *sep;
    struct fg_regex *re;
    uint64_t modulus;
    char *target;
    char *replacement;
};

struct relabel_processor {
    struct fg_component base;
    struct fg_consumer *next;
    bool sample_scope;
    size_t n_rules;
    struct rl_rule *rules;
};

/* The label's value: the attribute's text, "" when absent. Appends to out. */
static int label_get(const struct fg_attr_list *l, const char *name, size_t len,
                     struct fg_buf *out)
{
    int32_t i = fg_attr_list_find(l, name, len);
    return i < 0 ? 0 : fg_value_to_text(&l->items[i].value, out);
}

/* Prometheus labels.Builder.Set: an empty value deletes. The strings are copied into the
 * list's scratch arena. */
static int label_set(struct fg_attr_list *l, const char *name, size_t nlen, const char *val,
                     size_t vlen)
{
    if (vlen == 0) {
        int32_t i = fg_attr_list_find(l, name, nlen);
        if (i >= 0)
            fg_attr_list_remove(l, (uint32_t)i);
        return 0;
    }
    char *k = fg_arena_strndup(l->arena, name, nlen);
    char *v = fg_arena_strndup(l->arena, val, vlen);
    if (!k || !v)
        return FG_ENOMEM;
    struct fg_value value = {.kind = FG_VALUE_STRING, .u.s = {v, (uint32_t)vlen}};
    int rc = fg_attr_list_set(l, k, nlen, &value);
    if (rc)
        return rc;
    /* a label is text: a unit the attribute had (a pprof num_unit) no longer applies */
    l->items[fg_attr_list_find(l, k, nlen)].unit = (struct fg_bytes){NULL, 0};
    return 0;
}

static bool text_equal(const struct fg_buf *b, const char *s, size_t len)
{
    return b->len == len && (len == 0 || memcmp(b->data, s, len) == 0);
}

/* Applies one rule; *keep becomes false when the label set is dropped. */
static int apply_rule(const struct rl_rule *r, struct fg_attr_list *l, bool *keep)
{
    struct fg_buf val = {0}, a = {0}, b = {0};
    int rc = 0;
    for (size_t i = 0; i < r->n_src && !rc; i++) {
        if (i)
            rc = fg_buf_append_str(&val, r->sep);
        if (!rc)
            rc = label_get(l, r->src[i], strlen(r->src[i]), &val);
    }
    /* regexec (and sanitizers watching it) want a terminated string */
    if (rc || (rc = fg_buf_append(&val, "", 1)) != 0)
        goto out;
    val.len--;
    const char *v = (const char *)val.data;
    struct fg_regex_match m;
    switch (r->action) {
    case RL_DROP:
        if (fg_regex_match(r->re, v, val.len))
            *keep = false;
        break;
    case RL_KEEP:
        if (!fg_regex_match(r->re, v, val.len))
            *keep = false;
        break;
    case RL_DROPEQUAL:
    case RL_KEEPEQUAL:
        if ((rc = label_get(l, r->target, strlen(r->target), &a)) != 0)
            goto out;
        if (text_equal(&a, v, val.len) == (r->action == RL_DROPEQUAL))
            *keep = false;
        break;
    case RL_REPLACE:
        if (!fg_regex_exec(r->re, v, val.len, &m))
            break;
        if ((rc = fg_regex_expand(r->re, r->target, v, &m, &a)) != 0 ||
            (rc = fg_regex_expand(r->re, r->replacement, v, &m, &b)) != 0)
            goto out;
        if (!a.len)
            break; /* an invalid (empty) target name: no change */
        rc = label_set(l, (const char *)a.data, a.len, b.data ? (const char *)b.data : "", b.len);
        break;
    case RL_LOWERCASE:
    case RL_UPPERCASE:
        for (size_t i = 0; i < val.len; i++) {
            char c = (char)val.data[i];
            if (r->action == RL_LOWERCASE && c >= 'A' && c <= 'Z')
                val.data[i] = (uint8_t)(c - 'A' + 'a');
            else if (r->action == RL_UPPERCASE && c >= 'a' && c <= 'z')
                val.data[i] = (uint8_t)(c - 'a' + 'A');
        }
        rc = label_set(l, r->target, strlen(r->target), v, val.len);
        break;
    case RL_HASHMOD: {
        char num[24];
        int n = snprintf(num, sizeof(num), "%" PRIu64, fg__relabel_hashmod(v, val.len, r->modulus));
        rc = label_set(l, r->target, strlen(r->target), num, (size_t)n);
        break;
    }
    case RL_LABELMAP: {
        /* over the labels as they were before this rule, like Builder.Range */
        uint32_t n = l->n;
        struct fg_attr_item *snap = n ? fg_arena_memdup(l->arena, l->items, n * sizeof(*snap)) : NULL;
        if (n && !snap) {
            rc = FG_ENOMEM;
            goto out;
        }
        for (uint32_t i = 0; i < n && !rc; i++) {
            struct fg_bytes name = snap[i].key;
            if (!fg_regex_exec(r->re, name.ptr, name.len, &m))
                continue;
            a.len = 0;
            if ((rc = fg_regex_expand(r->re, r->replacement, name.ptr, &m, &a)) != 0 || !a.len)
                continue;
            char *k = fg_arena_strndup(l->arena, (const char *)a.data, a.len);
            if (!k) {
                rc = FG_ENOMEM;
                break;
            }
            rc = fg_attr_list_set(l, k, a.len, &snap[i].value);
        }
        break;
    }
    case RL_LABELDROP:
    case RL_LABELKEEP:
        for (uint32_t i = l->n; i-- > 0;) {
            bool hit = fg_regex_match(r->re, l->items[i].key.ptr, l->items[i].key.len);
            if (hit == (r->action == RL_LABELDROP))
                fg_attr_list_remove(l, i);
        }
        break;
    }
out:
    fg_buf_free(&val);
    fg_buf_free(&a);
    fg_buf_free(&b);
    return rc;
}

static int relabel_list(const struct relabel_processor *rp, struct fg_attr_list *l, bool *keep)
{
    *keep = true;
    for (size_t i = 0; i < rp->n_rules && *keep; i++) {
        int rc = apply_rule(&rp->rules[i], l, keep);
        if (rc)
            return rc;
    }
    return 0;
}

static int relabel_samples(const void *ctx, struct fg_profiles *out, struct fg_attr_list *l)
{
    const struct relabel_processor *rp = ctx;
    struct fg_idx_memo memo = {0};
    int rc = 0;
    for (uint32_t r = 0; r < out->n_resources && !rc; r++) {
        struct fg_resource_profiles *res = &out->resources[r];
        for (uint32_t s = 0; s < res->n_scopes && !rc; s++) {
            for (uint32_t i = 0; i < res->scopes[s].n_profiles && !rc; i++) {
                struct fg_profile *prof = &res->scopes[s].profiles[i];
                uint32_t kept = 0;
                for (uint32_t k = 0; k < prof->n_samples && !rc; k++) {
                    struct fg_sample *smp = &prof->samples[k];
                    const struct fg_idx_memo_entry *e =
                        fg_idx_memo_get(&memo, smp->attrs, smp->n_attrs);
                    if (!e) {
                        bool keep;
                        const uint32_t *idx = NULL;
                        uint32_t n = 0;
                        if ((rc = fg_attr_list_from_dict(l, out, smp->attrs, smp->n_attrs)) != 0 ||
                            (rc = relabel_list(rp, l, &keep)) != 0 ||
                            (keep && (rc = fg_attr_list_to_dict(l, out, &idx, &n)) != 0) ||
                            (rc = fg_idx_memo_put(&memo, smp->attrs, smp->n_attrs, keep, idx, n)) != 0)
                            break;
                        e = fg_idx_memo_get(&memo, smp->attrs, smp->n_attrs);
                    }
                    if (!e->keep)
                        continue;
                    smp->attrs = e->out;
                    smp->n_attrs = e->n_out;
                    prof->samples[kept++] = *smp;
                }
                prof->n_samples = kept;
            }
        }
    }
    fg_idx_memo_free(&memo);
    fg_proc_recount(out);
    return rc;
}

static int relabel_resources(const void *ctx, struct fg_profiles *out, struct fg_attr_list *l)
{
    const struct relabel_processor *rp = ctx;
    uint32_t kept = 0;
    for (uint32_t r = 0; r < out->n_resources; r++) {
        struct fg_resource *res = &out->resources[r].resource;
        bool keep;
        int rc;
        if ((rc = fg_attr_list_from_kv(l, res->attrs, res->n_attrs)) != 0 ||
            (rc = relabel_list(rp, l, &keep)) != 0)
            return rc;
        if (!keep) {
            fg_proc_release_resource(&out->resources[r]);
            continue;
        }
        if ((rc = fg_attr_list_to_kv(l, out, &res->attrs, &res->n_attrs)) != 0)
            return rc;
        out->resources[kept++] = out->resources[r];
    }
    out->n_resources = kept;
    fg_proc_recount(out);
    return 0;
}

static int process(const struct relabel_processor *rp, const struct fg_profiles *in,
                   struct fg_profiles **outp, struct fg_err *err)
{
    return fg_proc_edit_copy(in, rp->sample_scope ? relabel_samples : relabel_resources, rp,
                             outp, err);
}

static int relabel_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct relabel_processor *rp =
        (struct relabel_processor *)((char *)self - offsetof(struct fg_component, consumer));
    struct fg_profiles *out = NULL;
    int rc = process(rp, batch, &out, err);
    return fg_proc_finish_filtered(rp->next, rp->base.id, batch, out, rc,
                                   out && out->n_samples == 0 && batch->n_samples != 0, err);
}

static void relabel_destroy(struct fg_component *c)
{
    struct relabel_processor *rp = (struct relabel_processor *)c;
    if (!rp)
        return;
    for (size_t i = 0; i < rp->n_rules; i++) {
        struct rl_rule *r = &rp->rules[i];
        for (size_t k = 0; k < r->n_src; k++)
            fg_free(r->src[k]);
        fg_free(r->src);
        fg_free(r->sep);
        fg_free(r->target);
        fg_free(r->replacement);
        fg_regex_free(r->re);
    }
    fg_free(rp->rules);
    fg_free(rp);
}

static const struct fg_component_ops relabel_ops = {
    .start = fg_proc_start_nothing,
    .shutdown = fg_proc_shutdown_nothing,
    .destroy = relabel_destroy,
};

static int compile_rule(struct rl_rule *r, const struct rl_rule_cfg *c, struct fg_err *err)
{
    int rc = check_rule(c, err);
    if (rc)
        return rc;
    r->action = (enum rl_action)rl_action_index(c->action);
    if (c->source_labels.n && !(r->src = fg_calloc(c->source_labels.n, sizeof(char *))))
        return FG_ENOMEM;
    for (size_t i = 0; i < c->source_labels.n; i++, r->n_src++)
        if (!(r->src[i] = fg_strdup(c->source_labels.items[i])))
            return FG_ENOMEM;
    if (!(r->sep = fg_strdup(c->separator ? c->separator : "")) ||
        !(r->replacement = fg_strdup(c->replacement ? c->replacement : "")) ||
        !(r->target = fg_strdup(c->target_label ? c->target_label : "")))
        return FG_ENOMEM;
    r->modulus = (uint64_t)c->modulus;
    return fg_regex_compile(c->regex ? c->regex : "", FG_REGEX_ANCHORED, &r->re, err);
}

static int relabel_create(const struct fg_create_args *args, struct fg_component **out,
                          struct fg_err *err)
{
    const struct relabel_config *cfg = args->config;
    struct relabel_processor *rp = fg_calloc(1, sizeof(*rp));
    if (!rp)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    rp->base.ops = &relabel_ops;
    rp->base.consumer.consume = relabel_consume;
    rp->next = args->next;
    rp->sample_scope = cfg->scope == 1;
    int rc = FG_ENOMEM;
    if (cfg->relabel_configs.n &&
        !(rp->rules = fg_calloc(cfg->relabel_configs.n, sizeof(*rp->rules))))
        goto fail;
    for (size_t i = 0; i < cfg->relabel_configs.n; i++) {
        const struct rl_rule_cfg *c = (const struct rl_rule_cfg *)cfg->relabel_configs.items + i;
        rp->n_rules++;
        if ((rc = compile_rule(&rp->rules[i], c, err)) != 0) {
            fg_err_prefix(err, "relabel_configs[%zu]", i);
            goto fail;
        }
    }
    *out = &rp->base;
    return 0;
fail:
    relabel_destroy(&rp->base);
    if (rc == FG_ENOMEM)
        fg_err_set(err, rc, "out of memory");
    return rc;
}

const struct fg_factory fg_relabel_processor_factory = {
    .type = "relabel",
    .kind = FG_KIND_PROCESSOR,
    .config_size = sizeof(struct relabel_config),
    .options = relabel_options,
    .validate = relabel_validate,
    .create = relabel_create,
};
