/* The live view's rolling aggregate: stacks interned per (service, sample type) with one
 * value per time bucket, frame names interned once, bounded by max_services/max_stacks. */
#include "liveview_agg.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_hash.h"
#include "fg_model.h"
#include "fg_semconv.h"

struct series {
    char *service;
    char *type; /* "type/unit" */
    uint64_t samples;
    uint64_t dropped_stacks;
    int64_t dropped_value;
    uint32_t n_stacks;
};

struct stack {
    uint32_t series;
    uint32_t depth;
    uint64_t hash;
    int64_t total;
    int64_t v[FG_LV_BUCKETS];
    uint32_t frames[]; /* frame ids, root first */
};

/* Direct-mapped by the batch's stack index; valid for one series and generation. */
struct stack_cache {
    uint32_t gen;
    uint32_t series;
    uint32_t stack; /* index + 1 */
};

struct fg_lv_agg {
    pthread_mutex_t mu;
    int64_t bucket_ns;
    size_t max_services, max_stacks;
    int64_t cur; /* absolute bucket number of the newest bucket */
    bool started;

    char **names; /* frame names by id */
    uint32_t n_names, cap_names, names_at_gc;
    uint32_t *name_slots; /* open addressing: id + 1, 0 = empty */
    uint32_t name_slots_cap;

    struct series *series;
    uint32_t n_series, cap_series;

    struct stack **stacks;
    uint32_t n_stacks, cap_stacks;
    uint32_t *stack_slots; /* open addressing: index + 1 */
    uint32_t stack_slots_cap;

    /* per batch: frames of each location (offset + 1 into pool), stacks of each profile */
    struct loc_frames {
        uint32_t off; /* into pool, + 1; 0 = not computed yet */
        uint32_t n;
    } *locs;
    uint32_t locs_cap;
    uint32_t *pool, pool_len, pool_cap;
    struct stack_cache *scache;
    uint32_t scache_cap, gen;
    uint32_t key[FG_LV_MAX_DEPTH];

    struct fg_lv_agg_stats st;
};

/* ---- small helpers ---- */

static int grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    uint32_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = fg_realloc(*p, (size_t)n * elem);
    if (!q)
        return FG_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

static char *dup_n(const char *s, size_t len)
{
    char *d = fg_malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* ---- frame names ---- */

static int name_slots_rebuild(struct fg_lv_agg *a, uint32_t cap)
{
    uint32_t *slots = fg_calloc(cap, sizeof(*slots));
    if (!slots)
        return FG_ENOMEM;
    for (uint32_t id = 0; id < a->n_names; id++) {
        uint64_t h = fg_hash_bytes(0, a->names[id], strlen(a->names[id]));
        uint32_t i = (uint32_t)h & (cap - 1);
        while (slots[i])
            i = (i + 1) & (cap - 1);
        slots[i] = id + 1;
    }
    fg_free(a->name_slots);
    a->name_slots = slots;
    a->name_slots_cap = cap;
    return 0;
}

/* The id of name s[0..len), added when new; negative on out of memory. */
static int64_t intern_name(struct fg_lv_agg *a, const char *s, size_t len)
{
    if ((a->n_names + 1) * 2 > a->name_slots_cap &&
        name_slots_rebuild(a, a->name_slots_cap ? a->name_slots_cap * 2 : 1024))
        return FG_ENOMEM;
    uint64_t h = fg_hash_bytes(0, s, len);
    uint32_t mask = a->name_slots_cap - 1, i = (uint32_t)h & mask;
    for (; a->name_slots[i]; i = (i + 1) & mask) {
        const char *n = a->names[a->name_slots[i] - 1];
        if (strncmp(n, s, len) == 0 && n[len] == '\0')
            return a->name_slots[i] - 1;
    }
    if (grow((void **)&a->names, &a->cap_names, a->n_names + 1, sizeof(*a->names)))
        return FG_ENOMEM;
    char *d = dup_n(s, len);
    if (!d)
        return FG_ENOMEM;
    a->names[a->n_names] = d;
    a->name_slots[i] = ++a->n_names;
    return a->n_names - 1;
}

/* ---- stacks ---- */

static uint64_t stack_hash(uint32_t series, const uint32_t *frames, uint32_t depth)
{
    return fg_hash_bytes(series * 0x9e3779b97f4a7c15ULL + depth, frames,
                         (size_t)depth * sizeof(*frames));
}

static int stack_slots_rebuild(struct fg_lv_agg *a, uint32_t cap)
{
    uint32_t *slots = fg_calloc(cap, sizeof(*slots));
    if (!slots)
        return FG_ENOMEM;
    for (uint32_t k = 0; k < a->n_stacks; k++) {
        uint32_t i = (uint32_t)a->stacks[k]->hash & (cap - 1);
        while (slots[i])
            i = (i + 1) & (cap - 1);
        slots[i] = k + 1;
    }
    fg_free(a->stack_slots);
    a->stack_slots = slots;
    a->stack_slots_cap = cap;
    return 0;
}

/* Frees the stacks for which drop[k] is set, keeps the order of the rest, and rebuilds
 * the index. Cached stack numbers become stale: the generation moves on. */
static void stacks_compact(struct fg_lv_agg *a, const bool *drop)
{
    uint32_t w = 0;
    for (uint32_t k = 0; k < a->n_stacks; k++) {
        if (drop[k]) {
            a->series[a->stacks[k]->series].n_stacks--;
            fg_free(a->stacks[k]);
        } else {
            a->stacks[w++] = a->stacks[k];
        }
    }
    a->n_stacks = w;
    a->gen++;
    /* same capacity: the rebuild cannot fail for lack of a larger table */
    if (stack_slots_rebuild(a, a->stack_slots_cap ? a->stack_slots_cap : 1024)) {
        /* out of memory: keep the old table consistent by emptying it */
        if (a->stack_slots)
            memset(a->stack_slots, 0, a->stack_slots_cap * sizeof(*a->stack_slots));
    }
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

/* max_stacks reached: the smallest tenth goes (at least one), counted per series. */
static int evict_smallest(struct fg_lv_agg *a)
{
    uint32_t n = a->n_stacks, k = n / 10 ? n / 10 : 1;
    int64_t *totals = fg_malloc((size_t)n * sizeof(*totals));
    bool *drop = fg_calloc(n, sizeof(*drop));
    if (!totals || !drop) {
        fg_free(totals);
        fg_free(drop);
        return FG_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++)
        totals[i] = a->stacks[i]->total;
    qsort(totals, n, sizeof(*totals), cmp_i64);
    int64_t threshold = totals[k - 1];
    uint32_t dropped = 0;
    for (uint32_t i = 0; i < n && dropped < k; i++)
        if (a->stacks[i]->total < threshold)
            drop[i] = true, dropped++;
    for (uint32_t i = 0; i < n && dropped < k; i++)
        if (!drop[i] && a->stacks[i]->total == threshold)
            drop[i] = true, dropped++;
    for (uint32_t i = 0; i < n; i++)
        if (drop[i]) {
            struct series *s = &a->series[a->stacks[i]->series];
            s->dropped_stacks++;
            s->dropped_value += a->stacks[i]->total;
            a->st.evicted_value += a->stacks[i]->total;
        }
    a->st.evictions++;
    a->st.evicted_stacks += dropped;
    stacks_compact(a, drop);
    fg_free(totals);
    fg_free(drop);
    return 0;
}

/* The index of the stack (series, key[0..depth)), added when new; negative on failure. */
static int64_t find_stack(struct fg_lv_agg *a, uint32_t series, uint32_t depth)
{
    uint64_t h = stack_hash(series, a->key, depth);
    if (a->stack_slots_cap) {
        uint32_t mask = a->stack_slots_cap - 1;
        for (uint32_t i = (uint32_t)h & mask; a->stack_slots[i]; i = (i + 1) & mask) {
            struct stack *st = a->stacks[a->stack_slots[i] - 1];
            if (st->hash == h && st->series == series && st->depth == depth &&
                memcmp(st->frames, a->key, (size_t)depth * sizeof(*a->key)) == 0)
                return a->stack_slots[i] - 1;
        }
    }
    if (a->n_stacks >= a->max_stacks && evict_smallest(a))
        return FG_ENOMEM;
    if ((a->n_stacks + 1) * 2 > a->stack_slots_cap &&
        stack_slots_rebuild(a, a->stack_slots_cap ? a->stack_slots_cap * 2 : 1024))
        return FG_ENOMEM;
    if (grow((void **)&a->stacks, &a->cap_stacks, a->n_stacks + 1, sizeof(*a->stacks)))
        return FG_ENOMEM;
    struct stack *st = fg_calloc(1, sizeof(*st) + (size_t)depth * sizeof(uint32_t));
    if (!st)
        return FG_ENOMEM;
    st->series = series;
    st->depth = depth;
    st->hash = h;
    memcpy(st->frames, a->key, (size_t)depth * sizeof(*a->key));
    uint32_t mask = a->stack_slots_cap - 1, i = (uint32_t)h & mask;
    while (a->stack_slots[i])
        i = (i + 1) & mask;
    a->stacks[a->n_stacks] = st;
    a->stack_slots[i] = ++a->n_stacks;
    a->series[series].n_stacks++;
    return a->n_stacks - 1;
}

/* ---- series ---- */

static int64_t find_series(struct fg_lv_agg *a, const char *service, size_t slen,
                           const char *type, size_t tlen)
{
    for (uint32_t i = 0; i < a->n_series; i++) {
        struct series *s = &a->series[i];
        if (strncmp(s->service, service, slen) == 0 && s->service[slen] == '\0' &&
            strncmp(s->type, type, tlen) == 0 && s->type[tlen] == '\0')
            return i;
    }
    if (a->n_series >= a->max_services)
        return FG_EFULL;
    if (grow((void **)&a->series, &a->cap_series, a->n_series + 1, sizeof(*a->series)))
        return FG_ENOMEM;
    struct series s = {dup_n(service, slen), dup_n(type, tlen), 0, 0, 0, 0};
    if (!s.service || !s.type) {
        fg_free(s.service);
        fg_free(s.type);
        return FG_ENOMEM;
    }
    a->series[a->n_series] = s;
    return a->n_series++;
}

/* ---- adding ---- */

static struct fg_bytes service_of(const struct fg_resource *r)
{
    for (uint32_t i = 0; i < r->n_attrs; i++) {
        const struct fg_keyvalue *kv = &r->attrs[i];
        if (kv->value.kind == FG_VALUE_STRING && kv->value.u.s.len &&
            kv->key.len == sizeof(FG_SEMCONV_SERVICE_NAME) - 1 &&
            memcmp(kv->key.ptr, FG_SEMCONV_SERVICE_NAME, kv->key.len) == 0)
            return kv->value.u.s;
    }
    return (struct fg_bytes){"unknown_service", sizeof("unknown_service") - 1};
}

/* The frames of location loc, outermost first, into the pool (once per batch). */
static int location_frames(struct fg_lv_agg *a, const struct fg_profiles *b, uint32_t loc)
{
    if (a->locs[loc].off)
        return 0;
    const struct fg_location *l = fg_dict_get_location(b, loc);
    uint32_t n = l->n_lines ? l->n_lines : 1;
    if (grow((void **)&a->pool, &a->pool_cap, a->pool_len + n, sizeof(*a->pool)))
        return FG_ENOMEM;
    uint32_t start = a->pool_len;
    uint32_t n_func = fg_dict_len(b, FG_TABLE_FUNCTION), n_str = fg_dict_len(b, FG_TABLE_STRING);
    for (uint32_t k = l->n_lines; k-- > 0;) {
        const struct fg_line *ln = &l->lines[k];
        struct fg_bytes name = {"", 0};
        if (ln->function < n_func) {
            const struct fg_function *f = fg_dict_get_function(b, ln->function);
            if (f->name < n_str)
                name = fg_dict_get_string(b, f->name);
            if (!name.len && f->system_name < n_str)
                name = fg_dict_get_string(b, f->system_name);
        }
        if (!name.len)
            continue; /* a line without a name: the address below says it */
        int64_t id = intern_name(a, name.ptr, name.len);
        if (id < 0)
            return (int)id;
        a->pool[a->pool_len++] = (uint32_t)id;
    }
    if (a->pool_len == start) {
        /* unsymbolized: the mapping's file name and the address */
        char text[320];
        const char *file = "";
        if (l->mapping && l->mapping < fg_dict_len(b, FG_TABLE_MAPPING)) {
            const struct fg_mapping *m = fg_dict_get_mapping(b, l->mapping);
            if (m->filename < n_str) {
                file = fg_dict_get_string(b, m->filename).ptr;
                const char *slash = strrchr(file, '/');
                if (slash && slash[1])
                    file = slash + 1;
            }
        }
        int len = snprintf(text, sizeof(text), "%.256s%s0x%" PRIx64, file, *file ? "+" : "",
                           l->address);
        int64_t id = intern_name(a, text, len > 0 ? (size_t)len : 0);
        if (id < 0)
            return (int)id;
        a->pool[a->pool_len++] = (uint32_t)id;
    }
    a->locs[loc] = (struct loc_frames){start + 1, a->pool_len - start};
    return 0;
}

/* key[0..*depth) = frames of stack idx, root first. */
static int stack_key(struct fg_lv_agg *a, const struct fg_profiles *b, uint32_t idx,
                     uint32_t *depth)
{
    *depth = 0;
    if (idx == 0 || idx >= fg_dict_len(b, FG_TABLE_STACK))
        return 0;
    const struct fg_stack *s = fg_dict_get_stack(b, idx);
    uint32_t n_loc = fg_dict_len(b, FG_TABLE_LOCATION), d = 0;
    bool truncated = false;
    for (uint32_t k = s->n_locations; k-- > 0;) {
        uint32_t loc = s->locations[k];
        if (loc >= n_loc)
            continue;
        int rc = location_frames(a, b, loc);
        if (rc)
            return rc;
        for (uint32_t j = 0; j < a->locs[loc].n; j++) {
            if (d == FG_LV_MAX_DEPTH) {
                truncated = true;
                break;
            }
            a->key[d++] = a->pool[a->locs[loc].off - 1 + j];
        }
    }
    a->st.truncated_stacks += truncated;
    *depth = d;
    return 0;
}

static int64_t sample_weight(const struct fg_sample *s)
{
    if (s->n_values == 0)
        return s->n_timestamps;
    int64_t w = 0;
    for (uint32_t v = 0; v < s->n_values; v++)
        w += s->values[v];
    return w;
}

/* The series of the profiles of one resource by sample type (string indices), so a
 * merged batch of many small profiles looks each series up once per resource. */
struct series_memo {
    uint32_t n;
    struct {
        uint32_t type, unit;
        int64_t series; /* or FG_EFULL */
    } e[4];
};

static int64_t series_of(struct fg_lv_agg *a, const struct fg_profiles *b, struct fg_bytes service,
                         const struct fg_profile *p, struct series_memo *memo)
{
    for (uint32_t i = 0; i < memo->n; i++)
        if (memo->e[i].type == p->sample_type.type && memo->e[i].unit == p->sample_type.unit)
            return memo->e[i].series;
    uint32_t n_str = fg_dict_len(b, FG_TABLE_STRING);
    struct fg_bytes ty = {"", 0}, unit = {"", 0};
    if (p->sample_type.type < n_str)
        ty = fg_dict_get_string(b, p->sample_type.type);
    if (p->sample_type.unit < n_str)
        unit = fg_dict_get_string(b, p->sample_type.unit);
    char type[300];
    int tl = snprintf(type, sizeof(type), "%.*s/%.*s", (int)(ty.len ? ty.len : 7),
                      ty.len ? ty.ptr : "unknown", (int)(unit.len > 128 ? 128 : unit.len),
                      unit.ptr);
    if (tl < 0 || (size_t)tl >= sizeof(type))
        tl = (int)strlen(type);
    int64_t si = find_series(a, service.ptr, service.len, type, (size_t)tl);
    if (si >= 0 || si == FG_EFULL) {
        uint32_t k = memo->n < 4 ? memo->n++ : 3;
        memo->e[k].type = p->sample_type.type;
        memo->e[k].unit = p->sample_type.unit;
        memo->e[k].series = si;
    }
    return si;
}

static int add_profile(struct fg_lv_agg *a, const struct fg_profiles *b, struct fg_bytes service,
                       const struct fg_profile *p, uint32_t col, struct series_memo *memo)
{
    int64_t si = series_of(a, b, service, p, memo);
    if (si == FG_EFULL) {
        a->st.refused_series_samples += p->n_samples;
        return 0;
    }
    if (si < 0)
        return (int)si;
    a->series[si].samples += p->n_samples;
    for (uint32_t i = 0; i < p->n_samples; i++) {
        const struct fg_sample *s = &p->samples[i];
        uint32_t sidx = s->stack < a->scache_cap ? s->stack : 0;
        int64_t stk;
        const struct stack_cache *ce = &a->scache[sidx];
        if (ce->gen == a->gen && ce->series == (uint32_t)si && ce->stack) {
            stk = a->scache[sidx].stack - 1;
        } else {
            uint32_t depth;
            int rc = stack_key(a, b, sidx, &depth);
            if (rc)
                return rc;
            stk = find_stack(a, (uint32_t)si, depth);
            if (stk < 0)
                return (int)stk;
            /* find_stack may have evicted (gen moved on): cache under the new generation */
            a->scache[sidx] = (struct stack_cache){a->gen, (uint32_t)si, (uint32_t)stk + 1};
        }
        int64_t w = sample_weight(s);
        a->stacks[stk]->v[col] += w;
        a->stacks[stk]->total += w;
    }
    return 0;
}

static void tick_locked(struct fg_lv_agg *a, int64_t now_ns);

int fg_lv_agg_add(struct fg_lv_agg *a, const struct fg_profiles *b, int64_t now_ns)
{
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    tick_locked(a, now_ns);
    uint32_t col = (uint32_t)(a->cur % FG_LV_BUCKETS);
    uint32_t n_loc = fg_dict_len(b, FG_TABLE_LOCATION), n_stk = fg_dict_len(b, FG_TABLE_STACK);
    if ((rc = grow((void **)&a->locs, &a->locs_cap, n_loc, sizeof(*a->locs))))
        goto out;
    memset(a->locs, 0, (size_t)n_loc * sizeof(*a->locs));
    a->pool_len = 0;
    if (n_stk > a->scache_cap) {
        struct stack_cache *c = fg_calloc(n_stk, sizeof(*c));
        if (!c) {
            rc = FG_ENOMEM;
            goto out;
        }
        fg_free(a->scache);
        a->scache = c;
        a->scache_cap = n_stk;
    }
    a->st.batches++;
    a->st.samples += b->n_samples;
    a->gen++; /* stack indices are this batch's */
    for (uint32_t r = 0; r < b->n_resources && !rc; r++) {
        const struct fg_resource_profiles *rp = &b->resources[r];
        struct fg_bytes service = service_of(&rp->resource);
        struct series_memo memo = {0};
        for (uint32_t sc = 0; sc < rp->n_scopes && !rc; sc++)
            for (uint32_t p = 0; p < rp->scopes[sc].n_profiles && !rc; p++)
                rc = add_profile(a, b, service, &rp->scopes[sc].profiles[p], col, &memo);
    }
out:
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* ---- the window ---- */

static void rehash_stacks(struct fg_lv_agg *a)
{
    for (uint32_t k = 0; k < a->n_stacks; k++)
        a->stacks[k]->hash = stack_hash(a->stacks[k]->series, a->stacks[k]->frames,
                                        a->stacks[k]->depth);
    if (stack_slots_rebuild(a, a->stack_slots_cap ? a->stack_slots_cap : 1024) &&
        a->stack_slots)
        memset(a->stack_slots, 0, a->stack_slots_cap * sizeof(*a->stack_slots));
    a->gen++;
}

/* Series without stacks left (they sent nothing for a window) make room for others. */
static void drop_empty_series(struct fg_lv_agg *a)
{
    uint32_t map[1]; /* placeholder to keep the common case allocation-free */
    uint32_t *remap = a->n_series <= 1 ? map : fg_malloc(a->n_series * sizeof(*remap));
    if (!remap)
        return; /* tried again at the next tick */
    uint32_t w = 0;
    for (uint32_t i = 0; i < a->n_series; i++) {
        if (a->series[i].n_stacks == 0) {
            fg_free(a->series[i].service);
            fg_free(a->series[i].type);
            remap[i] = UINT32_MAX;
            continue;
        }
        remap[i] = w;
        a->series[w++] = a->series[i];
    }
    bool moved = w != a->n_series;
    a->n_series = w;
    if (moved) {
        for (uint32_t k = 0; k < a->n_stacks; k++)
            a->stacks[k]->series = remap[a->stacks[k]->series];
        rehash_stacks(a);
    }
    if (remap != map)
        fg_free(remap);
}

/* Frame names no stack uses any more are freed once the table has doubled since the last
 * collection, so a churn of names (JIT frames, addresses) does not grow without bound. */
static void collect_names(struct fg_lv_agg *a)
{
    if (a->n_names < 4096 || a->n_names < 2 * a->names_at_gc)
        return;
    uint32_t *remap = fg_malloc(a->n_names * sizeof(*remap));
    if (!remap)
        return;
    for (uint32_t i = 0; i < a->n_names; i++)
        remap[i] = UINT32_MAX;
    for (uint32_t k = 0; k < a->n_stacks; k++)
        for (uint32_t j = 0; j < a->stacks[k]->depth; j++)
            remap[a->stacks[k]->frames[j]] = 0;
    uint32_t w = 0;
    for (uint32_t i = 0; i < a->n_names; i++) {
        if (remap[i] == UINT32_MAX) {
            fg_free(a->names[i]);
            continue;
        }
        remap[i] = w;
        a->names[w++] = a->names[i];
    }
    a->n_names = w;
    a->names_at_gc = w;
    for (uint32_t k = 0; k < a->n_stacks; k++)
        for (uint32_t j = 0; j < a->stacks[k]->depth; j++)
            a->stacks[k]->frames[j] = remap[a->stacks[k]->frames[j]];
    fg_free(remap);
    if (name_slots_rebuild(a, a->name_slots_cap) && a->name_slots)
        memset(a->name_slots, 0, a->name_slots_cap * sizeof(*a->name_slots));
    rehash_stacks(a);
}

static void tick_locked(struct fg_lv_agg *a, int64_t now_ns)
{
    int64_t b = now_ns / a->bucket_ns;
    if (!a->started) {
        a->cur = b;
        a->started = true;
        return;
    }
    if (b <= a->cur)
        return;
    int64_t steps = b - a->cur < FG_LV_BUCKETS ? b - a->cur : FG_LV_BUCKETS;
    bool *drop = a->n_stacks ? fg_calloc(a->n_stacks, sizeof(*drop)) : NULL;
    if (a->n_stacks && !drop)
        return; /* the window moves on at the next tick */
    bool any = false;
    for (uint32_t k = 0; k < a->n_stacks; k++) {
        struct stack *st = a->stacks[k];
        for (int64_t s = 1; s <= steps; s++) {
            uint32_t col = (uint32_t)((a->cur + s) % FG_LV_BUCKETS);
            st->total -= st->v[col];
            st->v[col] = 0;
        }
        bool empty = true;
        for (uint32_t c = 0; c < FG_LV_BUCKETS && empty; c++)
            empty = st->v[c] == 0;
        drop[k] = empty;
        any |= empty;
    }
    a->cur = b;
    if (any)
        stacks_compact(a, drop);
    fg_free(drop);
    drop_empty_series(a);
    collect_names(a);
}

void fg_lv_agg_tick(struct fg_lv_agg *a, int64_t now_ns)
{
    pthread_mutex_lock(&a->mu);
    tick_locked(a, now_ns);
    pthread_mutex_unlock(&a->mu);
}

/* ---- lifetime ---- */

int fg_lv_agg_new(const struct fg_lv_agg_options *o, struct fg_lv_agg **out)
{
    *out = NULL;
    if (o->window_ns < FG_LV_BUCKETS || o->max_services < 1 || o->max_stacks < 1)
        return FG_EINVAL;
    struct fg_lv_agg *a = fg_calloc(1, sizeof(*a));
    if (!a)
        return FG_ENOMEM;
    if (pthread_mutex_init(&a->mu, NULL) != 0) {
        fg_free(a);
        return FG_ENOMEM;
    }
    a->bucket_ns = o->window_ns / FG_LV_BUCKETS;
    a->max_services = o->max_services;
    a->max_stacks = o->max_stacks;
    *out = a;
    return 0;
}

void fg_lv_agg_free(struct fg_lv_agg *a)
{
    if (!a)
        return;
    for (uint32_t k = 0; k < a->n_stacks; k++)
        fg_free(a->stacks[k]);
    for (uint32_t i = 0; i < a->n_series; i++) {
        fg_free(a->series[i].service);
        fg_free(a->series[i].type);
    }
    for (uint32_t i = 0; i < a->n_names; i++)
        fg_free(a->names[i]);
    fg_free(a->stacks);
    fg_free(a->stack_slots);
    fg_free(a->series);
    fg_free(a->names);
    fg_free(a->name_slots);
    fg_free(a->locs);
    fg_free(a->pool);
    fg_free(a->scache);
    pthread_mutex_destroy(&a->mu);
    fg_free(a);
}

void fg_lv_agg_stats(struct fg_lv_agg *a, struct fg_lv_agg_stats *out)
{
    pthread_mutex_lock(&a->mu);
    *out = a->st;
    out->series = a->n_series;
    out->stacks = a->n_stacks;
    out->frames = a->n_names;
    pthread_mutex_unlock(&a->mu);
}

/* ---- rendering ---- */

int fg_lv_json_str(struct fg_buf *out, const char *s, size_t len)
{
    int rc = fg_buf_append(out, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len && !rc;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = fg_buf_append(out, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            rc = fg_buf_printf(out, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            rc = fg_buf_append(out, &p[i], 1);
            i++;
        } else {
            /* a well-formed UTF-8 sequence goes through; anything else becomes U+FFFD */
            size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
            bool ok = n && i + n <= len;
            for (size_t k = 1; ok && k < n; k++)
                ok = (p[i + k] & 0xc0) == 0x80;
            if (ok && n == 3 && ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] >= 0xa0)))
                ok = false;
            if (ok && n == 4 && ((c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] >= 0x90)))
                ok = false;
            if (ok) {
                rc = fg_buf_append(out, &p[i], n);
                i += n;
            } else {
                rc = fg_buf_append_str(out, "\\ufffd");
                i++;
            }
        }
    }
    return rc ? rc : fg_buf_append(out, "\"", 1);
}

/* Which columns a range covers: buckets whose start (age) lies in [to, from). */
static void range_columns(const struct fg_lv_agg *a, struct fg_lv_range r, bool *cols)
{
    int64_t from_ns = r.from_s > 0 ? r.from_s * INT64_C(1000000000) : INT64_MAX;
    int64_t to_ns = r.to_s > 0 ? r.to_s * INT64_C(1000000000) : 0;
    for (int64_t age = 0; age < FG_LV_BUCKETS; age++) {
        int64_t start = age * a->bucket_ns;
        int64_t col = ((a->cur - age) % FG_LV_BUCKETS + FG_LV_BUCKETS) % FG_LV_BUCKETS;
        cols[col] = start >= to_ns && start < from_ns;
    }
}

static int64_t stack_value(const struct stack *st, const bool *cols)
{
    int64_t v = 0;
    for (uint32_t c = 0; c < FG_LV_BUCKETS; c++)
        if (cols[c])
            v += st->v[c];
    return v;
}

static int64_t lookup_series(const struct fg_lv_agg *a, const char *service, const char *type)
{
    for (uint32_t i = 0; i < a->n_series; i++)
        if (strcmp(a->series[i].service, service) == 0 && strcmp(a->series[i].type, type) == 0)
            return i;
    return FG_ENOTFOUND;
}

static _Thread_local const struct fg_lv_agg *sort_ctx;

static int cmp_series(const void *x, const void *y)
{
    const struct series *a = &sort_ctx->series[*(const uint32_t *)x];
    const struct series *b = &sort_ctx->series[*(const uint32_t *)y];
    int c = strcmp(a->service, b->service);
    return c ? c : strcmp(a->type, b->type);
}

int fg_lv_agg_services_json(struct fg_lv_agg *a, struct fg_buf *out)
{
    pthread_mutex_lock(&a->mu);
    int rc = FG_ENOMEM;
    uint32_t *order = fg_malloc((a->n_series + 1) * sizeof(*order));
    int64_t *value = fg_calloc(a->n_series + 1, sizeof(*value));
    if (!order || !value)
        goto out;
    for (uint32_t i = 0; i < a->n_series; i++)
        order[i] = i;
    for (uint32_t k = 0; k < a->n_stacks; k++)
        value[a->stacks[k]->series] += a->stacks[k]->total;
    sort_ctx = a; /* qsort has no context argument */
    qsort(order, a->n_series, sizeof(*order), cmp_series);
    rc = fg_buf_printf(out, "{\"window_s\":%.3f,\"bucket_s\":%.3f,\"services\":[",
                       (double)a->bucket_ns * FG_LV_BUCKETS / 1e9, (double)a->bucket_ns / 1e9);
    for (uint32_t i = 0; i < a->n_series && !rc; i++) {
        const struct series *s = &a->series[order[i]];
        bool first = i == 0 || strcmp(a->series[order[i - 1]].service, s->service) != 0;
        bool last = i + 1 == a->n_series || strcmp(a->series[order[i + 1]].service, s->service) != 0;
        if (first) {
            rc = fg_buf_append_str(out, i ? ",{\"name\":" : "{\"name\":");
            rc = rc ? rc : fg_lv_json_str(out, s->service, strlen(s->service));
            rc = rc ? rc : fg_buf_append_str(out, ",\"types\":[");
        } else {
            rc = fg_buf_append_str(out, ",");
        }
        rc = rc ? rc : fg_buf_append_str(out, "{\"type\":");
        rc = rc ? rc : fg_lv_json_str(out, s->type, strlen(s->type));
        rc = rc ? rc
                : fg_buf_printf(out,
                                ",\"value\":%" PRId64 ",\"samples\":%" PRIu64 ",\"stacks\":%" PRIu32
                                ",\"dropped_stacks\":%" PRIu64 ",\"dropped_value\":%" PRId64 "}",
                                value[order[i]], s->samples, s->n_stacks, s->dropped_stacks,
                                s->dropped_value);
        if (!rc && last)
            rc = fg_buf_append_str(out, "]}");
    }
    rc = rc ? rc
            : fg_buf_printf(out,
                            "],\"stacks\":%" PRIu32 ",\"max_stacks\":%zu,\"max_services\":%zu,"
                            "\"evictions\":%" PRIu64 ",\"evicted_stacks\":%" PRIu64
                            ",\"evicted_value\":%" PRId64 ",\"refused_series_samples\":%" PRIu64
                            ",\"truncated_stacks\":%" PRIu64 "}",
                            a->n_stacks, a->max_stacks, a->max_services, a->st.evictions,
                            a->st.evicted_stacks, a->st.evicted_value,
                            a->st.refused_series_samples, a->st.truncated_stacks);
out:
    pthread_mutex_unlock(&a->mu);
    fg_free(order);
    fg_free(value);
    return rc;
}

/* The merged tree of one series: nodes found by (parent, frame) in an open table. */
struct node {
    uint32_t name;
    uint32_t parent;
    int64_t value, self;
    uint32_t first, n; /* children in kids[first .. first + n) */
};

struct tree {
    struct node *nodes;
    uint32_t n, cap;
    uint32_t *slots, slots_cap;
    uint32_t *kids;
    char *const *names;
};

static int64_t tree_child(struct tree *t, uint32_t parent, uint32_t name)
{
    if ((t->n + 1) * 2 > t->slots_cap) {
        uint32_t cap = t->slots_cap ? t->slots_cap * 2 : 1024;
        uint32_t *slots = fg_calloc(cap, sizeof(*slots));
        if (!slots)
            return FG_ENOMEM;
        for (uint32_t k = 1; k < t->n; k++) {
            uint64_t h = fg_hash_mix(t->nodes[k].parent, t->nodes[k].name);
            uint32_t i = (uint32_t)h & (cap - 1);
            while (slots[i])
                i = (i + 1) & (cap - 1);
            slots[i] = k;
        }
        fg_free(t->slots);
        t->slots = slots;
        t->slots_cap = cap;
    }
    uint64_t h = fg_hash_mix(parent, name);
    uint32_t mask = t->slots_cap - 1, i = (uint32_t)h & mask;
    for (; t->slots[i]; i = (i + 1) & mask) {
        const struct node *nd = &t->nodes[t->slots[i]];
        if (nd->parent == parent && nd->name == name)
            return t->slots[i];
    }
    if (grow((void **)&t->nodes, &t->cap, t->n + 1, sizeof(*t->nodes)))
        return FG_ENOMEM;
    t->nodes[t->n] = (struct node){name, parent, 0, 0, 0, 0};
    t->slots[i] = t->n;
    return t->n++;
}

static _Thread_local const struct tree *kid_ctx;

static int cmp_kids(const void *x, const void *y)
{
    const struct tree *t = kid_ctx;
    return strcmp(t->names[t->nodes[*(const uint32_t *)x].name],
                  t->names[t->nodes[*(const uint32_t *)y].name]);
}

static int emit_node(struct fg_buf *out, const struct tree *t, uint32_t k)
{
    const struct node *nd = &t->nodes[k];
    int rc = fg_buf_append_str(out, "{\"name\":");
    if (!rc)
        rc = k ? fg_lv_json_str(out, t->names[nd->name], strlen(t->names[nd->name]))
               : fg_buf_append_str(out, "\"all\"");
    rc = rc ? rc
            : fg_buf_printf(out, ",\"value\":%" PRId64 ",\"self\":%" PRId64 ",\"children\":[",
                            nd->value, nd->self);
    for (uint32_t c = 0; c < nd->n && !rc; c++) {
        if (c)
            rc = fg_buf_append(out, ",", 1);
        rc = rc ? rc : emit_node(out, t, t->kids[nd->first + c]);
    }
    return rc ? rc : fg_buf_append_str(out, "]}");
}

int fg_lv_agg_tree_json(struct fg_lv_agg *a, const char *service, const char *type,
                        struct fg_lv_range range, struct fg_buf *out)
{
    struct tree t = {0};
    uint32_t *fill = NULL;
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    int64_t si = lookup_series(a, service, type);
    if (si < 0) {
        rc = (int)si;
        goto out;
    }
    bool cols[FG_LV_BUCKETS];
    range_columns(a, range, cols);
    t.names = a->names;
    if (grow((void **)&t.nodes, &t.cap, 1, sizeof(*t.nodes))) {
        rc = FG_ENOMEM;
        goto out;
    }
    t.nodes[t.n++] = (struct node){0, UINT32_MAX, 0, 0, 0, 0};
    for (uint32_t k = 0; k < a->n_stacks; k++) {
        const struct stack *st = a->stacks[k];
        if (st->series != (uint32_t)si)
            continue;
        int64_t v = stack_value(st, cols);
        if (v == 0)
            continue;
        uint32_t node = 0;
        t.nodes[0].value += v;
        for (uint32_t j = 0; j < st->depth; j++) {
            int64_t c = tree_child(&t, node, st->frames[j]);
            if (c < 0) {
                rc = (int)c;
                goto out;
            }
            node = (uint32_t)c;
            t.nodes[node].value += v;
        }
        t.nodes[node].self += v;
    }
    /* children lists: count, place, sort by name */
    t.kids = fg_malloc((size_t)t.n * sizeof(*t.kids));
    fill = fg_calloc(t.n, sizeof(*fill));
    if (!t.kids || !fill) {
        rc = FG_ENOMEM;
        goto out;
    }
    for (uint32_t k = 1; k < t.n; k++)
        t.nodes[t.nodes[k].parent].n++;
    uint32_t off = 0;
    for (uint32_t k = 0; k < t.n; k++) {
        t.nodes[k].first = off;
        off += t.nodes[k].n;
    }
    for (uint32_t k = 1; k < t.n; k++) {
        struct node *p = &t.nodes[t.nodes[k].parent];
        t.kids[p->first + fill[t.nodes[k].parent]++] = k;
    }
    kid_ctx = &t;
    for (uint32_t k = 0; k < t.n; k++)
        if (t.nodes[k].n > 1)
            qsort(&t.kids[t.nodes[k].first], t.nodes[k].n, sizeof(*t.kids), cmp_kids);
    const struct series *s = &a->series[si];
    rc = fg_buf_append_str(out, "{\"service\":");
    rc = rc ? rc : fg_lv_json_str(out, s->service, strlen(s->service));
    rc = rc ? rc : fg_buf_append_str(out, ",\"type\":");
    rc = rc ? rc : fg_lv_json_str(out, s->type, strlen(s->type));
    rc = rc ? rc
            : fg_buf_printf(out,
                            ",\"total\":%" PRId64 ",\"nodes\":%" PRIu32 ",\"from_s\":%" PRId64
                            ",\"to_s\":%" PRId64 ",\"dropped_stacks\":%" PRIu64
                            ",\"dropped_value\":%" PRId64 ",\"root\":",
                            t.nodes[0].value, t.n, range.from_s, range.to_s, s->dropped_stacks,
                            s->dropped_value);
    rc = rc ? rc : emit_node(out, &t, 0);
    rc = rc ? rc : fg_buf_append_str(out, "}");
out:
    pthread_mutex_unlock(&a->mu);
    fg_free(t.nodes);
    fg_free(t.slots);
    fg_free(t.kids);
    fg_free(fill);
    return rc;
}

/* ';' separates frames and a newline ends a stack: inside a name they become '_'. */
static int append_folded_name(struct fg_buf *out, const char *name)
{
    int rc = 0;
    for (const char *p = name; *p && !rc;) {
        size_t n = strcspn(p, ";\n\r");
        rc = fg_buf_append(out, p, n);
        p += n;
        if (*p && !rc) {
            rc = fg_buf_append(out, "_", 1);
            p++;
        }
    }
    return rc;
}

int fg_lv_agg_folded(struct fg_lv_agg *a, const char *service, const char *type,
                     struct fg_lv_range range, struct fg_buf *out)
{
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    int64_t si = lookup_series(a, service, type);
    if (si < 0) {
        rc = (int)si;
        goto out;
    }
    bool cols[FG_LV_BUCKETS];
    range_columns(a, range, cols);
    for (uint32_t k = 0; k < a->n_stacks && !rc; k++) {
        const struct stack *st = a->stacks[k];
        int64_t v;
        if (st->series != (uint32_t)si || st->depth == 0 || (v = stack_value(st, cols)) == 0)
            continue;
        for (uint32_t j = 0; j < st->depth && !rc; j++) {
            if (j)
                rc = fg_buf_append(out, ";", 1);
            rc = rc ? rc : append_folded_name(out, a->names[st->frames[j]]);
        }
        rc = rc ? rc : fg_buf_printf(out, " %" PRId64 "\n", v);
    }
out:
    pthread_mutex_unlock(&a->mu);
    return rc;
}
