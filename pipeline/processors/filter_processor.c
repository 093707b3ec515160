/* Processor "filter": drops profiles by resource/profile attributes and sample type, drops
 * samples by their attributes or by a minimum value, and prunes frames with pprof's
 * drop_frames/keep_frames rule (google/pprof profile/prune.go: a frame whose simplified
 * function name fully matches drop_frames, and not keep_frames, goes together with every
 * frame it called; frames toward the root before the first frame that does not match are
 * never pruned). */
#include <stddef.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_arena.h"
#include "fg_attr_actions.h"
#include "fg_component.h"
#include "fg_model.h"
#include "fg_proc_regex.h"

struct filter_set_cfg {
    struct fg_match_cfg include;
    struct fg_match_cfg exclude;
};

struct filter_config {
    struct filter_set_cfg profiles;
    struct filter_set_cfg samples;
    char *drop_frames;
    char *keep_frames;
    int64_t min_value;
};

/* Samples are matched by their own attributes only. */
static const struct fg_option sample_match_options[] = {
    FG_OPT_CHOICE("match_type", struct fg_match_cfg, match_type, "strict", fg_match_type_names,
                  "strict (equal text) or regexp (values are regexes)"),
    FG_OPT_STRUCTS("attributes", struct fg_match_cfg, attributes, fg_match_kv_options,
                   struct fg_attr_match_kv, "sample attributes that must all match"),
    FG_OPT_END,
};

static const struct fg_option profile_set_options[] = {
    FG_OPT_BLOCK("include", struct filter_set_cfg, include, fg_match_options,
                 "keep only profiles matching this set"),
    FG_OPT_BLOCK("exclude", struct filter_set_cfg, exclude, fg_match_options,
                 "drop profiles matching this set"),
    FG_OPT_END,
};

static const struct fg_option sample_set_options[] = {
    FG_OPT_BLOCK("include", struct filter_set_cfg, include, sample_match_options,
                 "keep only samples whose attributes match"),
    FG_OPT_BLOCK("exclude", struct filter_set_cfg, exclude, sample_match_options,
                 "drop samples whose attributes match"),
    FG_OPT_END,
};

static int check_anchored(const void *value, struct fg_err *err)
{
    const char *pattern = *(const char *const *)value;
    struct fg_regex *re = NULL;
    int rc = fg_regex_compile(pattern ? pattern : "", FG_REGEX_ANCHORED, &re, err);
    if (rc == FG_EINVAL)
        fg_err_prefix(err, "invalid regex \"%s\"", pattern ? pattern : "");
    fg_regex_free(re);
    return rc;
}

static const struct fg_option filter_options[] = {
    FG_OPT_BLOCK("profiles", struct filter_config, profiles, profile_set_options,
                 "which profiles pass (resource, profile attributes, sample types)"),
    FG_OPT_BLOCK("samples", struct filter_config, samples, sample_set_options,
                 "which samples pass (sample attributes)"),
    FG_OPT_STR_CHECK("drop_frames", struct filter_config, drop_frames, NULL, check_anchored,
                     "prune frames whose function name fully matches, with all they called"),
    FG_OPT_STR_CHECK("keep_frames", struct filter_config, keep_frames, NULL, check_anchored,
                     "frames matching this are never pruned by drop_frames"),
    FG_OPT_INTEGER("min_value", struct filter_config, min_value, "0", 0, INT64_MAX,
                   "drop samples whose value (sum of values, or count of timestamps) is below "
                   "this; 0 = off"),
    FG_OPT_END,
};

static int filter_validate(const void *config, struct fg_err *err)
{
    const struct filter_config *cfg = config;
    if (cfg->keep_frames && !cfg->drop_frames)
        return fg_err_set(err, FG_EINVAL, "keep_frames: only means something with drop_frames");
    if (fg_match_validate(&cfg->profiles.include, "profiles.include", err) ||
        fg_match_validate(&cfg->profiles.exclude, "profiles.exclude", err) ||
        fg_match_validate(&cfg->samples.include, "samples.include", err) ||
        fg_match_validate(&cfg->samples.exclude, "samples.exclude", err))
        return FG_EINVAL;
    return 0;
}

struct filter_processor {
    struct fg_component base;
    struct fg_consumer *next;
    struct fg_match *prof_include, *prof_exclude, *smp_include, *smp_exclude;
    struct fg_regex *drop, *keep;
    int64_t min_value;
};

/* ---- pprof's prune ---- */

/* simplifyFunc of google/pprof: drop a leading '.', cut at the first '(' that does not start
 * "(anonymous namespace)" or belong to "operator()". Returns the kept prefix. */
struct fg_bytes fg__pprof_simplify(struct fg_bytes name);
struct fg_bytes fg__pprof_simplify(struct fg_bytes name)
{
    static const char anon[] = "(anonymous namespace)";
    static const char op[] = "operator()";
    const char *s = name.ptr;
    uint32_t len = name.len;
    if (len && s[0] == '.') {
        s++;
        len--;
    }
    for (uint32_t i = 0; i < len;) {
        if (len - i >= sizeof(anon) - 1 && memcmp(s + i, anon, sizeof(anon) - 1) == 0) {
            i += sizeof(anon) - 1;
            continue;
        }
        if (len - i >= sizeof(op) - 1 && memcmp(s + i, op, sizeof(op) - 1) == 0) {
            i += sizeof(op) - 1;
            continue;
        }
        if (s[i] == '(') {
            len = i;
            break;
        }
        i++;
    }
    return (struct fg_bytes){s, len};
}

enum { LOC_UNSEEN = 0, LOC_USER, LOC_PRUNE, LOC_BENEATH };

/* Per batch: what prune decided for each location, function and stack of the copy. */
struct prune_state {
    uint32_t n_funcs, n_locs, n_stacks;
    int8_t *func_hit;     /* -1 unknown, 0 no, 1 drop */
    uint8_t *loc_kind;    /* LOC_* */
    uint32_t *loc_trim;   /* LOC_BENEATH: the location with the matching lines removed */
    int64_t *stack_new;   /* -1 unknown, else the pruned stack */
    uint32_t *scratch;
};

static void prune_free(struct prune_state *ps)
{
    fg_free(ps->func_hit);
    fg_free(ps->loc_kind);
    fg_free(ps->loc_trim);
    fg_free(ps->stack_new);
    fg_free(ps->scratch);
}

static int prune_init(struct prune_state *ps, const struct fg_profiles *p)
{
    memset(ps, 0, sizeof(*ps));
    ps->n_funcs = fg_dict_len(p, FG_TABLE_FUNCTION);
    ps->n_locs = fg_dict_len(p, FG_TABLE_LOCATION);
    ps->n_stacks = fg_dict_len(p, FG_TABLE_STACK);
    ps->func_hit = fg_malloc(ps->n_funcs ? ps->n_funcs : 1);
    ps->loc_kind = fg_calloc(ps->n_locs ? ps->n_locs : 1, 1);
    ps->loc_trim = fg_calloc(ps->n_locs ? ps->n_locs : 1, sizeof(uint32_t));
    ps->stack_new = fg_malloc((ps->n_stacks ? ps->n_stacks : 1) * sizeof(int64_t));
    if (!ps->func_hit || !ps->loc_kind || !ps->loc_trim || !ps->stack_new)
        return FG_ENOMEM;
    memset(ps->func_hit, -1, ps->n_funcs);
    for (uint32_t i = 0; i < ps->n_stacks; i++)
        ps->stack_new[i] = -1;
    return 0;
}

static bool func_drops(const struct filter_processor *f, struct prune_state *ps,
                       const struct fg_profiles *p, uint32_t fi)
{
    if (fi >= ps->n_funcs)
        return false;
    if (ps->func_hit[fi] < 0) {
        struct fg_bytes name = fg_dict_get_string(p, fg_dict_get_function(p, fi)->name);
        bool hit = false;
        if (name.len) { /* pprof skips functions without a name */
            struct fg_bytes s = fg__pprof_simplify(name);
            hit = fg_regex_match(f->drop, s.ptr, s.len) &&
                  !(f->keep && fg_regex_match(f->keep, s.ptr, s.len));
        }
        ps->func_hit[fi] = hit;
    }
    return ps->func_hit[fi] == 1;
}

static int loc_classify(const struct filter_processor *f, struct prune_state *ps,
                        struct fg_profiles *p, uint32_t li)
{
    if (li >= ps->n_locs || li == 0)
        return LOC_USER;
    if (ps->loc_kind[li] != LOC_UNSEEN)
        return ps->loc_kind[li];
    const struct fg_location *loc = fg_dict_get_location(p, li);
    int64_t i;
    /* from the outermost caller inwards: the first matching line decides */
    for (i = (int64_t)loc->n_lines - 1; i >= 0; i--)
        if (func_drops(f, ps, p, loc->lines[i].function))
            break;
    uint8_t kind = LOC_USER;
    if (i == (int64_t)loc->n_lines - 1 && i >= 0) {
        kind = LOC_PRUNE;
    } else if (i >= 0) {
        /* keep only the callers of the matching line */
        struct fg_location trimmed = *loc;
        trimmed.lines = loc->lines + i + 1;
        trimmed.n_lines = loc->n_lines - (uint32_t)i - 1;
        int32_t ni = fg_dict_location(p, &trimmed);
        if (ni < 0)
            return -1;
        ps->loc_trim[li] = (uint32_t)ni;
        kind = LOC_BENEATH;
    }
    ps->loc_kind[li] = kind;
    return kind;
}

/* The pruned version of stack si (an index into p's stack table), or -1 on no memory. */
static int64_t prune_stack(const struct filter_processor *f, struct prune_state *ps,
                           struct fg_profiles *p, uint32_t si)
{
    if (si >= ps->n_stacks)
        return si;
    if (ps->stack_new[si] >= 0)
        return ps->stack_new[si];
    const struct fg_stack *st = fg_dict_get_stack(p, si);
    uint32_t n = st->n_locations;
    const uint32_t *locs = st->locations;
    uint32_t keep_from = 0; /* leaf-side cut: locations [keep_from, n) stay */
    bool found_user = false;
    for (int64_t i = (int64_t)n - 1; i >= 0; i--) {
        int kind = loc_classify(f, ps, p, locs[i]);
        if (kind < 0)
            return -1;
        if (kind == LOC_USER) {
            found_user = true;
            continue;
        }
        if (!found_user)
            continue;
        keep_from = kind == LOC_PRUNE ? (uint32_t)i + 1 : (uint32_t)i;
        break;
    }
    bool changed = keep_from > 0;
    uint32_t m = n - keep_from;
    uint32_t *out = fg_realloc(ps->scratch, (m ? m : 1) * sizeof(uint32_t));
    if (!out)
        return -1;
    ps->scratch = out;
    /* a trimmed location is trimmed everywhere it appears, as pprof edits it in place */
    for (uint32_t k = 0; k < m; k++) {
        uint32_t li = locs[keep_from + k];
        int kind = loc_classify(f, ps, p, li);
        if (kind < 0)
            return -1;
        out[k] = kind == LOC_BENEATH ? ps->loc_trim[li] : li;
        changed |= out[k] != li;
    }
    int64_t res = si;
    if (changed) {
        struct fg_stack ns = {m, out};
        int32_t idx = fg_dict_stack(p, &ns);
        if (idx < 0)
            return -1;
        res = idx;
    }
    ps->stack_new[si] = res;
    return res;
}

/* ---- the rest of the filter ---- */

static int64_t sample_weight(const struct fg_sample *s)
{
    if (!s->n_values)
        return s->n_timestamps;
    int64_t w = 0;
    for (uint32_t i = 0; i < s->n_values; i++)
        w += s->values[i];
    return w;
}

static bool profile_passes(const struct filter_processor *f, const struct fg_profiles *p,
                           const struct fg_resource *res, const struct fg_profile *prof)
{
    if (f->prof_include && !fg_match_profile(f->prof_include, p, res, prof))
        return false;
    if (f->prof_exclude && fg_match_profile(f->prof_exclude, p, res, prof))
        return false;
    return true;
}

static bool sample_passes(const struct filter_processor *f, const struct fg_profiles *p,
                          const struct fg_sample *s)
{
    if (f->smp_include && !fg_match_dict_attrs(f->smp_include, p, s->attrs, s->n_attrs))
        return false;
    if (f->smp_exclude && fg_match_dict_attrs(f->smp_exclude, p, s->attrs, s->n_attrs))
        return false;
    if (f->min_value > 0 && sample_weight(s) < f->min_value)
        return false;
    return true;
}

/* Filters one profile in place; returns -1 on no memory, else whether anything changed. */
static int filter_samples(const struct filter_processor *f, struct prune_state *ps,
                          struct fg_profiles *p, struct fg_profile *prof)
{
    bool changed = false;
    uint32_t kept = 0;
    for (uint32_t k = 0; k < prof->n_samples; k++) {
        struct fg_sample s = prof->samples[k];
        if (!sample_passes(f, p, &s)) {
            changed = true;
            continue;
        }
        if (f->drop) {
            int64_t ns = prune_stack(f, ps, p, s.stack);
            if (ns < 0)
                return -1;
            changed |= (uint32_t)ns != s.stack;
            s.stack = (uint32_t)ns;
        }
        prof->samples[kept++] = s;
    }
    prof->n_samples = kept;
    return changed;
}

/* With profile filters only, most batches pass whole: no copy for those. */
static bool passes_whole(const struct filter_processor *f, const struct fg_profiles *in)
{
    if (f->drop || f->smp_include || f->smp_exclude || f->min_value > 0)
        return false;
    for (uint32_t r = 0; r < in->n_resources; r++) {
        const struct fg_resource_profiles *rp = &in->resources[r];
        for (uint32_t s = 0; s < rp->n_scopes; s++)
            for (uint32_t i = 0; i < rp->scopes[s].n_profiles; i++)
                if (!profile_passes(f, in, &rp->resource, &rp->scopes[s].profiles[i]))
                    return false;
    }
    return true;
}

static int process(const struct filter_processor *f, const struct fg_profiles *in,
                   struct fg_profiles **outp, struct fg_err *err)
{
    *outp = NULL;
    if (passes_whole(f, in))
        return 0;
    struct fg_profiles *out = NULL;
    struct prune_state ps = {0};
    int rc = fg_proc_copy(in, &out, err);
    if (rc)
        return rc;
    if (f->drop && (rc = prune_init(&ps, out)) != 0)
        goto fail;
    bool changed = false;
    uint32_t kept_res = 0;
    for (uint32_t r = 0; r < out->n_resources; r++) {
        struct fg_resource_profiles *rp = &out->resources[r];
        uint32_t kept_scopes = 0, had_scopes = rp->n_scopes;
        for (uint32_t s = 0; s < rp->n_scopes; s++) {
            struct fg_scope_profiles *sp = &rp->scopes[s];
            uint32_t kept = 0, had = sp->n_profiles;
            for (uint32_t i = 0; i < sp->n_profiles; i++) {
                struct fg_profile *prof = &sp->profiles[i];
                if (!profile_passes(f, out, &rp->resource, prof)) {
                    fg_proc_release_profile(prof);
                    changed = true;
                    continue;
                }
                uint32_t before = prof->n_samples;
                int c = filter_samples(f, &ps, out, prof);
                if (c < 0) {
                    rc = FG_ENOMEM;
                    goto fail;
                }
                changed |= c;
                /* a profile every sample of which was filtered out goes too */
                if (before && !prof->n_samples) {
                    fg_proc_release_profile(prof);
                    continue;
                }
                sp->profiles[kept++] = *prof;
            }
            sp->n_profiles = kept;
            if (kept || !had)
                rp->scopes[kept_scopes++] = *sp;
            else
                fg_proc_release_scope(sp);
        }
        rp->n_scopes = kept_scopes;
        if (kept_scopes || !had_scopes)
            out->resources[kept_res++] = *rp;
        else
            fg_proc_release_resource(rp);
    }
    out->n_resources = kept_res;
    fg_proc_recount(out);
    prune_free(&ps);
    if (!changed) {
        fg_profiles_unref(out);
        return 0;
    }
    *outp = out;
    return 0;
fail:
    prune_free(&ps);
    fg_profiles_unref(out);
    return fg_err_set(err, rc, "%s", fg_strerror(rc));
}

static int filter_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct filter_processor *f =
        (struct filter_processor *)((char *)self - offsetof(struct fg_component, consumer));
    struct fg_profiles *out = NULL;
    int rc = process(f, batch, &out, err);
    return fg_proc_finish_filtered(f->next, f->base.id, batch, out, rc,
                                   out && out->n_resources == 0, err);
}

static void filter_destroy(struct fg_component *c)
{
    struct filter_processor *f = (struct filter_processor *)c;
    if (!f)
        return;
    fg_match_free(f->prof_include);
    fg_match_free(f->prof_exclude);
    fg_match_free(f->smp_include);
    fg_match_free(f->smp_exclude);
    fg_regex_free(f->drop);
    fg_regex_free(f->keep);
    fg_free(f);
}

static const struct fg_component_ops filter_ops = {
    .start = fg_proc_start_nothing,
    .shutdown = fg_proc_shutdown_nothing,
    .destroy = filter_destroy,
};

static int filter_create(const struct fg_create_args *args, struct fg_component **out,
                         struct fg_err *err)
{
    const struct filter_config *cfg = args->config;
    struct filter_processor *f = fg_calloc(1, sizeof(*f));
    if (!f)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    f->base.ops = &filter_ops;
    f->base.consumer.consume = filter_consume;
    f->next = args->next;
    f->min_value = cfg->min_value;
    int rc;
    if ((rc = fg_match_compile(&cfg->profiles.include, &f->prof_include, err)) != 0 ||
        (rc = fg_match_compile(&cfg->profiles.exclude, &f->prof_exclude, err)) != 0 ||
        (rc = fg_match_compile(&cfg->samples.include, &f->smp_include, err)) != 0 ||
        (rc = fg_match_compile(&cfg->samples.exclude, &f->smp_exclude, err)) != 0 ||
        (cfg->drop_frames &&
         (rc = fg_regex_compile(cfg->drop_frames, FG_REGEX_ANCHORED, &f->drop, err)) != 0) ||
        (cfg->drop_frames && cfg->keep_frames &&
         (rc = fg_regex_compile(cfg->keep_frames, FG_REGEX_ANCHORED, &f->keep, err)) != 0)) {
        filter_destroy(&f->base);
        return rc;
    }
    *out = &f->base;
    return 0;
}

const struct fg_factory fg_filter_processor_factory = {
    .type = "filter",
    .kind = FG_KIND_PROCESSOR,
    .config_size = sizeof(struct filter_config),
    .options = filter_options,
    .validate = filter_validate,
    .create = filter_create,
};
