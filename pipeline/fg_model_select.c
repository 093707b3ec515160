/* Copying a subset of a batch into another through a memoized, on-demand dictionary remap
 * (see fg_model_select.h). */
#include "fg_model_select.h"

#include <string.h>

#include "fg_alloc.h"

struct fg_copier {
    struct fg_profiles *dst;
    const struct fg_profiles *src;
    uint32_t *map[FG_TABLE_COUNT]; /* dst index + 1; 0 = not copied yet */
    /* Separate scratch lists, because copying a stack copies locations, which copy
     * mappings, each filling its own list while the caller's is still in use. */
    uint32_t *stack_locs, *loc_attrs, *map_attrs, *list;
    uint32_t cap_stack_locs, cap_loc_attrs, cap_map_attrs, cap_list;
    struct fg_line *lines;
    uint32_t cap_lines;
};

int fg_copier_new(struct fg_profiles *dst, const struct fg_profiles *src, struct fg_copier **out)
{
    *out = NULL;
    struct fg_copier *c = fg_calloc(1, sizeof(*c));
    if (!c)
        return FG_ENOMEM;
    c->dst = dst;
    c->src = src;
    for (int t = 0; t < FG_TABLE_COUNT; t++) {
        uint32_t n = fg_dict_len(src, (enum fg_table)t);
        c->map[t] = fg_calloc(FG_MAX(n, 1), sizeof(uint32_t));
        if (!c->map[t]) {
            fg_copier_free(c);
            return FG_ENOMEM;
        }
        c->map[t][0] = 1; /* the zero entry is the zero entry everywhere */
    }
    *out = c;
    return 0;
}

void fg_copier_free(struct fg_copier *c)
{
    if (!c)
        return;
    for (int t = 0; t < FG_TABLE_COUNT; t++)
        fg_free(c->map[t]);
    fg_free(c->stack_locs);
    fg_free(c->loc_attrs);
    fg_free(c->map_attrs);
    fg_free(c->list);
    fg_free(c->lines);
    fg_free(c);
}

static int reserve(void **buf, uint32_t *cap, uint32_t n, size_t elem)
{
    if (n <= *cap)
        return 0;
    void *bigger = fg_realloc(*buf, (size_t)n * elem);
    if (!bigger)
        return FG_ENOMEM;
    *buf = bigger;
    *cap = n;
    return 0;
}

#define RESERVE(c, field, n) reserve((void **)&(c)->field, &(c)->cap_##field, (n), sizeof(*(c)->field))

static int32_t copy_string(struct fg_copier *c, uint32_t i)
{
    return fg_dict_copy_string(c->dst, c->src, i);
}

/* Fills out[k] with the dst index of src[k] in table t. */
static int copy_list(struct fg_copier *c, enum fg_table t, const uint32_t *src, uint32_t n,
                     uint32_t *out)
{
    for (uint32_t k = 0; k < n; k++) {
        int32_t idx = fg_copier_index(c, t, src[k]);
        if (idx < 0)
            return idx;
        out[k] = (uint32_t)idx;
    }
    return 0;
}

static int32_t copy_entry(struct fg_copier *c, enum fg_table t, uint32_t i)
{
    int32_t a, b, d;
    switch (t) {
    case FG_TABLE_STRING:
        return copy_string(c, i);
    case FG_TABLE_FUNCTION: {
        struct fg_function f = *fg_dict_get_function(c->src, i);
        if ((a = fg_copier_index(c, FG_TABLE_STRING, f.name)) < 0 ||
            (b = fg_copier_index(c, FG_TABLE_STRING, f.system_name)) < 0 ||
            (d = fg_copier_index(c, FG_TABLE_STRING, f.filename)) < 0)
            return FG_ENOMEM;
        f.name = (uint32_t)a;
        f.system_name = (uint32_t)b;
        f.filename = (uint32_t)d;
        return fg_dict_function(c->dst, &f);
    }
    case FG_TABLE_ATTRIBUTE: {
        struct fg_attribute at = *fg_dict_get_attribute(c->src, i);
        if ((a = fg_copier_index(c, FG_TABLE_STRING, at.key)) < 0 ||
            (b = fg_copier_index(c, FG_TABLE_STRING, at.unit)) < 0)
            return FG_ENOMEM;
        at.key = (uint32_t)a;
        at.unit = (uint32_t)b;
        return fg_dict_attribute(c->dst, &at);
    }
    case FG_TABLE_LINK:
        return fg_dict_link(c->dst, fg_dict_get_link(c->src, i));
    case FG_TABLE_MAPPING: {
        struct fg_mapping m = *fg_dict_get_mapping(c->src, i);
        if ((a = fg_copier_index(c, FG_TABLE_STRING, m.filename)) < 0 ||
            RESERVE(c, map_attrs, m.n_attrs) ||
            copy_list(c, FG_TABLE_ATTRIBUTE, m.attrs, m.n_attrs, c->map_attrs))
            return FG_ENOMEM;
        m.filename = (uint32_t)a;
        m.attrs = c->map_attrs;
        return fg_dict_mapping(c->dst, &m);
    }
    case FG_TABLE_LOCATION: {
        struct fg_location l = *fg_dict_get_location(c->src, i);
        if ((a = fg_copier_index(c, FG_TABLE_MAPPING, l.mapping)) < 0)
            return FG_ENOMEM;
        if (RESERVE(c, lines, l.n_lines) || RESERVE(c, loc_attrs, l.n_attrs))
            return FG_ENOMEM;
        for (uint32_t k = 0; k < l.n_lines; k++) {
            c->lines[k] = l.lines[k];
            if ((b = fg_copier_index(c, FG_TABLE_FUNCTION, l.lines[k].function)) < 0)
                return FG_ENOMEM;
            c->lines[k].function = (uint32_t)b;
        }
        if (copy_list(c, FG_TABLE_ATTRIBUTE, l.attrs, l.n_attrs, c->loc_attrs))
            return FG_ENOMEM;
        l.mapping = (uint32_t)a;
        l.lines = c->lines;
        l.attrs = c->loc_attrs;
        return fg_dict_location(c->dst, &l);
    }
    case FG_TABLE_STACK: {
        struct fg_stack s = *fg_dict_get_stack(c->src, i);
        /* copying a location never touches stack_locs, so filling it in place is safe */
        if (RESERVE(c, stack_locs, s.n_locations) ||
            copy_list(c, FG_TABLE_LOCATION, s.locations, s.n_locations, c->stack_locs))
            return FG_ENOMEM;
        s.locations = c->stack_locs;
        return fg_dict_stack(c->dst, &s);
    }
    case FG_TABLE_COUNT:
        break;
    }
    return FG_EINVAL;
}

int32_t fg_copier_index(struct fg_copier *c, enum fg_table t, uint32_t src_idx)
{
    uint32_t known = c->map[t][src_idx];
    if (known)
        return (int32_t)(known - 1);
    int32_t idx = copy_entry(c, t, src_idx);
    if (idx < 0)
        return idx;
    c->map[t][src_idx] = (uint32_t)idx + 1;
    return idx;
}

/* Tables in dependency order: an entry's references are known before it is interned,
 * so copy_entry never recurses. */
static const enum fg_table prefill_order[] = {
    FG_TABLE_STRING,  FG_TABLE_FUNCTION, FG_TABLE_ATTRIBUTE, FG_TABLE_LINK,
    FG_TABLE_MAPPING, FG_TABLE_LOCATION, FG_TABLE_STACK,
};

int fg_copier_prefill(struct fg_copier *c)
{
    for (size_t k = 0; k < FG_ARRAY_LEN(prefill_order); k++) {
        enum fg_table t = prefill_order[k];
        uint32_t n = fg_dict_len(c->src, t);
        for (uint32_t i = 1; i < n; i++) {
            if (c->map[t][i])
                continue;
            int32_t idx = copy_entry(c, t, i);
            if (idx < 0)
                return idx;
            c->map[t][i] = (uint32_t)idx + 1;
        }
    }
    return 0;
}

static bool bytes_eq(struct fg_bytes a, struct fg_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool entity_refs_eq(const struct fg_resource *a, const struct fg_resource *b)
{
    if (a->n_entity_refs != b->n_entity_refs)
        return false;
    for (uint32_t i = 0; i < a->n_entity_refs; i++) {
        const struct fg_entity_ref *x = &a->entity_refs[i], *y = &b->entity_refs[i];
        if (!bytes_eq(x->schema_url, y->schema_url) || !bytes_eq(x->type, y->type) ||
            x->n_id_keys != y->n_id_keys || x->n_description_keys != y->n_description_keys)
            return false;
        for (uint32_t k = 0; k < x->n_id_keys; k++)
            if (!bytes_eq(x->id_keys[k], y->id_keys[k]))
                return false;
        for (uint32_t k = 0; k < x->n_description_keys; k++)
            if (!bytes_eq(x->description_keys[k], y->description_keys[k]))
                return false;
    }
    return true;
}

bool fg_resource_profiles_equal(const struct fg_resource_profiles *a,
                                const struct fg_resource_profiles *b)
{
    return bytes_eq(a->schema_url, b->schema_url) &&
           a->resource.dropped_attributes_count == b->resource.dropped_attributes_count &&
           fg_keyvalues_equal(a->resource.attrs, a->resource.n_attrs, b->resource.attrs,
                              b->resource.n_attrs) &&
           entity_refs_eq(&a->resource, &b->resource);
}

bool fg_scope_profiles_equal(const struct fg_scope_profiles *a, const struct fg_scope_profiles *b)
{
    return bytes_eq(a->schema_url, b->schema_url) && bytes_eq(a->scope.name, b->scope.name) &&
           bytes_eq(a->scope.version, b->scope.version) &&
           a->scope.dropped_attributes_count == b->scope.dropped_attributes_count &&
           fg_keyvalues_equal(a->scope.attrs, a->scope.n_attrs, b->scope.attrs, b->scope.n_attrs);
}

struct fg_resource_profiles *fg_copier_resource(struct fg_copier *c,
                                                const struct fg_resource_profiles *srp)
{
    for (uint32_t k = 0; k < c->dst->n_resources; k++)
        if (fg_resource_profiles_equal(&c->dst->resources[k], srp))
            return &c->dst->resources[k];
    return fg_profiles_add_resource(c->dst, &srp->resource, srp->schema_url.ptr,
                                    srp->schema_url.len);
}

struct fg_scope_profiles *fg_copier_scope(struct fg_copier *c, struct fg_resource_profiles *drp,
                                          const struct fg_scope_profiles *ssp)
{
    for (uint32_t k = 0; k < drp->n_scopes; k++)
        if (fg_scope_profiles_equal(&drp->scopes[k], ssp))
            return &drp->scopes[k];
    return fg_profiles_add_scope(c->dst, drp, &ssp->scope, ssp->schema_url.ptr,
                                 ssp->schema_url.len);
}

struct fg_profile *fg_copier_profile_header(struct fg_copier *c, struct fg_scope_profiles *dsp,
                                            const struct fg_profile *sprof)
{
    struct fg_profile hdr = *sprof;
    int32_t st, su, pt, pu;
    if ((st = fg_copier_index(c, FG_TABLE_STRING, hdr.sample_type.type)) < 0 ||
        (su = fg_copier_index(c, FG_TABLE_STRING, hdr.sample_type.unit)) < 0 ||
        (pt = fg_copier_index(c, FG_TABLE_STRING, hdr.period_type.type)) < 0 ||
        (pu = fg_copier_index(c, FG_TABLE_STRING, hdr.period_type.unit)) < 0)
        return NULL;
    hdr.sample_type.type = (uint32_t)st;
    hdr.sample_type.unit = (uint32_t)su;
    hdr.period_type.type = (uint32_t)pt;
    hdr.period_type.unit = (uint32_t)pu;
    if (RESERVE(c, list, hdr.n_attrs) ||
        copy_list(c, FG_TABLE_ATTRIBUTE, hdr.attrs, hdr.n_attrs, c->list))
        return NULL;
    hdr.attrs = c->list;
    return fg_profiles_add_profile(c->dst, dsp, &hdr);
}

int fg_copier_sample(struct fg_copier *c, struct fg_profile *dprof, const struct fg_sample *s,
                     const int64_t *values)
{
    struct fg_sample d = *s;
    int32_t st, ln;
    if ((st = fg_copier_index(c, FG_TABLE_STACK, s->stack)) < 0 ||
        (ln = fg_copier_index(c, FG_TABLE_LINK, s->link)) < 0 || RESERVE(c, list, s->n_attrs) ||
        copy_list(c, FG_TABLE_ATTRIBUTE, s->attrs, s->n_attrs, c->list))
        return FG_ENOMEM;
    d.stack = (uint32_t)st;
    d.link = (uint32_t)ln;
    d.attrs = c->list;
    if (values)
        d.values = values;
    return fg_profiles_add_sample(c->dst, dprof, &d);
}

struct fg_profile *fg_copier_profile(struct fg_copier *c, struct fg_scope_profiles *dsp,
                                     const struct fg_profile *sprof)
{
    struct fg_profile *dprof = fg_copier_profile_header(c, dsp, sprof);
    if (!dprof)
        return NULL;
    for (uint32_t i = 0; i < sprof->n_samples; i++)
        if (fg_copier_sample(c, dprof, &sprof->samples[i], NULL))
            return NULL;
    return dprof;
}

int fg_copier_sample_range(struct fg_copier *c, uint64_t first, uint64_t count)
{
    const struct fg_profiles *src = c->src;
    uint64_t end = first + count;
    bool last_range = end >= src->n_samples;
    uint64_t pos = 0; /* samples of src before the current profile */
    for (uint32_t r = 0; r < src->n_resources && pos <= end; r++) {
        const struct fg_resource_profiles *srp = &src->resources[r];
        for (uint32_t s = 0; s < srp->n_scopes; s++) {
            const struct fg_scope_profiles *ssp = &srp->scopes[s];
            for (uint32_t i = 0; i < ssp->n_profiles; i++) {
                const struct fg_profile *sprof = &ssp->profiles[i];
                uint64_t from = pos > first ? 0 : first - pos;
                uint64_t to = FG_MIN((uint64_t)sprof->n_samples, end - FG_MIN(end, pos));
                bool empty_here = sprof->n_samples == 0 && pos >= first &&
                                  (pos < end || last_range);
                pos += sprof->n_samples;
                if (from >= to && !empty_here)
                    continue;
                /* looked up per profile: adding a resource or scope moves the others */
                struct fg_resource_profiles *drp = fg_copier_resource(c, srp);
                struct fg_scope_profiles *dsp = drp ? fg_copier_scope(c, drp, ssp) : NULL;
                struct fg_profile *dprof = dsp ? fg_copier_profile_header(c, dsp, sprof) : NULL;
                if (!dprof)
                    return FG_ENOMEM;
                for (uint64_t k = from; k < to; k++)
                    if (fg_copier_sample(c, dprof, &sprof->samples[k], NULL))
                        return FG_ENOMEM;
            }
        }
    }
    return 0;
}
