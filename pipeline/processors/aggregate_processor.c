/* Processor "aggregate": sums the samples of every (group, time window) into one profile that
 * leaves when the window closes, so a backend stores one profile per service instance and
 * window instead of one per agent upload. Semantics: docs/processors-sampling.md. */
#include "aggregate_processor.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_buf.h"
#include "fg_hash.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_model_select.h"
#include "fg_service.h"

struct aggregate_config {
    int64_t window_ns;
    struct fg_strlist group_by;
    struct fg_strlist keep_sample_attributes;
    bool keep_timestamps;
    int64_t max_groups;
    int64_t max_stacks_per_group;
};

static const struct fg_option aggregate_options[] = {
    FG_OPT_DUR("window", struct aggregate_config, window_ns, "10s", INT64_C(1000000),
               INT64_C(86400000000000), "length of an aggregation window"),
    FG_OPT_LIST("group_by", struct aggregate_config, group_by,
                "resource attribute keys that make a group (default: all of them)"),
    FG_OPT_LIST("keep_sample_attributes", struct aggregate_config, keep_sample_attributes,
                "sample attribute keys kept (others are dropped so samples merge)"),
    FG_OPT_BOOLEAN("keep_timestamps", struct aggregate_config, keep_timestamps, "false",
                   "keep sample timestamps (default: values are summed, timestamps dropped)"),
    FG_OPT_INTEGER("max_groups", struct aggregate_config, max_groups, "10000", 1, 10000000,
                   "open (group, window) profiles; reaching it flushes early"),
    FG_OPT_INTEGER("max_stacks_per_group", struct aggregate_config, max_stacks_per_group,
                   "100000", 1, 100000000, "distinct samples in one group before it flushes early"),
    FG_OPT_END,
};

/* A dictionary shared by the accumulators opened during one window-long period, so the
 * stacks of one service's instances are stored once; freed when its last one leaves. */
struct generation {
    struct fg_profiles *b;
    int64_t created_ns;
    size_t n_accs;
    uint64_t serial; /* copier caches match on it: a freed generation's address comes back */
};

/* One merged sample: key (stack, link, kept attributes) and summed values. */
struct slot {
    uint64_t hash;
    uint32_t stack, link;
    uint32_t attr_off, n_attrs;
    uint32_t val_off, n_values;
    uint64_t *ts;
    uint32_t n_ts, cap_ts;
};

/* One (group, window) profile being built. */
struct acc {
    struct acc *next; /* hash chain */
    uint64_t hash;
    uint8_t *key;
    size_t key_len;
    struct generation *gen;
    uint32_t res_idx, scope_idx; /* in gen->b: where the group's resource and scope live */
    uint64_t window_start;
    int64_t close_ns;
    char tenant[sizeof(((struct fg_profiles *)0)->tenant)]; /* tenants never merge */
    struct fg_value_type sample_type, period_type; /* gen indices */
    int64_t period;
    uint32_t *pattrs; /* profile attributes every merged profile had (gen indices) */
    uint32_t n_pattrs;
    bool pattrs_set;
    uint64_t profiles;
    /* samples: open addressing over slots */
    struct slot *slots;
    uint32_t n_slots;
    uint32_t cap_slots;
    /* high 32 bits: the slot's hash, so a probe settles most mismatches without touching
     * slots[]; low 32 bits: slot + 1; 0 = empty */
    uint64_t *index;
    uint32_t index_mask;
    uint32_t *attr_pool;
    uint32_t n_attr_pool, cap_attr_pool;
    int64_t *val_pool;
    uint32_t n_val_pool, cap_val_pool;
};

struct aggregate_processor {
    struct fg_component base;
    const struct aggregate_config *cfg;
    struct fg_consumer *next;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stopping, timer_running;
    pthread_t timer;
    struct acc **buckets;
    size_t n_buckets, n_accs;
    struct generation *current;
    uint64_t gen_serial;
    struct fg_aggregate_stats stats;
};

/* ---- small growable arrays ---- */

static int grow(void **items, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    uint32_t n = *cap ? *cap : 8;
    while (n < need) {
        if (n > UINT32_MAX / 2)
            return FG_ENOMEM;
        n *= 2;
    }
    void *bigger = fg_realloc(*items, (size_t)n * elem);
    if (!bigger)
        return FG_ENOMEM;
    *items = bigger;
    *cap = n;
    return 0;
}

/* ---- generations ---- */

static void gen_release(struct aggregate_processor *a, struct generation *g)
{
    if (--g->n_accs == 0 && g != a->current) {
        fg_profiles_unref(g->b);
        fg_free(g);
    }
}

/* The generation new accumulators go to; a fresh one once the current is a window old
 * (the old one lives on until its last accumulator leaves, at most a window later). */
static struct generation *gen_current(struct aggregate_processor *a, int64_t now)
{
    struct generation *g = a->current;
    if (g && now - g->created_ns < a->cfg->window_ns)
        return g;
    struct generation *fresh = fg_calloc(1, sizeof(*fresh));
    if (!fresh || fg_profiles_new(&fresh->b)) {
        fg_free(fresh);
        return NULL;
    }
    fresh->created_ns = now;
    fresh->serial = ++a->gen_serial;
    a->current = fresh;
    if (g && g->n_accs == 0) {
        fg_profiles_unref(g->b);
        fg_free(g);
    }
    return fresh;
}

/* ---- accumulators ---- */

static void acc_free(struct acc *x)
{
    if (!x)
        return;
    for (uint32_t i = 0; i < x->n_slots; i++)
        fg_free(x->slots[i].ts);
    fg_free(x->slots);
    fg_free(x->index);
    fg_free(x->attr_pool);
    fg_free(x->val_pool);
    fg_free(x->pattrs);
    fg_free(x->key);
    fg_free(x);
}

static void table_remove(struct aggregate_processor *a, struct acc *x)
{
    struct acc **pp = &a->buckets[x->hash & (a->n_buckets - 1)];
    while (*pp && *pp != x)
        pp = &(*pp)->next;
    if (*pp)
        *pp = x->next;
    a->n_accs--;
}

static void table_grow(struct aggregate_processor *a)
{
    size_t n = a->n_buckets * 2;
    struct acc **b = fg_calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < a->n_buckets; i++) {
        struct acc *x = a->buckets[i];
        while (x) {
            struct acc *next = x->next;
            x->next = b[x->hash & (n - 1)];
            b[x->hash & (n - 1)] = x;
            x = next;
        }
    }
    fg_free(a->buckets);
    a->buckets = b;
    a->n_buckets = n;
}

static uint64_t slot_hash(uint32_t stack, uint32_t link, const uint32_t *attrs, uint32_t n,
                          uint32_t n_values)
{
    uint64_t h = fg_hash_mix(fg_hash_mix(0x736c6f74ULL, stack), link);
    h = fg_hash_mix(h, n_values);
    return fg_hash_bytes(h, attrs, (size_t)n * sizeof(uint32_t));
}

#define INDEX_TAG(h) ((h) & UINT64_C(0xffffffff00000000))

static int index_rebuild(struct acc *x, uint32_t size)
{
    uint64_t *idx = fg_calloc(size, sizeof(uint64_t));
    if (!idx)
        return FG_ENOMEM;
    for (uint32_t i = 0; i < x->n_slots; i++) {
        uint32_t pos = (uint32_t)x->slots[i].hash & (size - 1);
        while (idx[pos])
            pos = (pos + 1) & (size - 1);
        idx[pos] = INDEX_TAG(x->slots[i].hash) | (i + 1);
    }
    fg_free(x->index);
    x->index = idx;
    x->index_mask = size - 1;
    return 0;
}

/* Adds a sample (gen indices, attrs sorted) into x; values may be NULL when n_values is
 * 0. */
static int acc_add(struct acc *x, uint32_t stack, uint32_t link, const uint32_t *attrs,
                   uint32_t n_attrs, const int64_t *values, uint32_t n_values,
                   const uint64_t *ts, uint32_t n_ts)
{
    uint64_t h = slot_hash(stack, link, attrs, n_attrs, n_values);
    if (!x->index || (x->n_slots + 1) * 2 > x->index_mask + 1) {
        if (index_rebuild(x, x->index ? (x->index_mask + 1) * 2 : 64))
            return FG_ENOMEM;
    }
    uint32_t pos = (uint32_t)h & x->index_mask;
    struct slot *s = NULL;
    for (uint64_t e; (e = x->index[pos]) != 0; pos = (pos + 1) & x->index_mask) {
        if (INDEX_TAG(e) != INDEX_TAG(h))
            continue;
        struct slot *c = &x->slots[(uint32_t)e - 1];
        if (c->hash == h && c->stack == stack && c->link == link && c->n_attrs == n_attrs &&
            c->n_values == n_values &&
            (!n_attrs ||
             memcmp(x->attr_pool + c->attr_off, attrs, n_attrs * sizeof(uint32_t)) == 0)) {
            s = c;
            break;
        }
    }
    if (!s) {
        if (grow((void **)&x->slots, &x->cap_slots, x->n_slots + 1, sizeof(*x->slots)) ||
            grow((void **)&x->attr_pool, &x->cap_attr_pool, x->n_attr_pool + n_attrs,
                 sizeof(uint32_t)) ||
            grow((void **)&x->val_pool, &x->cap_val_pool, x->n_val_pool + n_values,
                 sizeof(int64_t)))
            return FG_ENOMEM;
        s = &x->slots[x->n_slots];
        memset(s, 0, sizeof(*s));
        s->hash = h;
        s->stack = stack;
        s->link = link;
        s->attr_off = x->n_attr_pool;
        s->n_attrs = n_attrs;
        s->val_off = x->n_val_pool;
        s->n_values = n_values;
        if (n_attrs)
            memcpy(x->attr_pool + x->n_attr_pool, attrs, n_attrs * sizeof(uint32_t));
        for (uint32_t v = 0; v < n_values; v++)
            x->val_pool[x->n_val_pool + v] = 0;
        x->n_attr_pool += n_attrs;
        x->n_val_pool += n_values;
        x->index[pos] = INDEX_TAG(h) | ++x->n_slots;
    }
    for (uint32_t v = 0; v < n_values; v++)
        x->val_pool[s->val_off + v] += values[v];
    if (n_ts) {
        if (grow((void **)&s->ts, &s->cap_ts, s->n_ts + n_ts, sizeof(uint64_t)))
            return FG_ENOMEM;
        memcpy(s->ts + s->n_ts, ts, n_ts * sizeof(uint64_t));
        s->n_ts += n_ts;
    }
    return 0;
}

/* ---- building output ---- */

struct gen_copier {
    struct generation *gen;
    uint64_t serial;
    struct fg_copier *c;
};

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* Appends the accumulators' profiles to out (one copier per generation). */
static uint64_t resource_hash(const struct fg_resource_profiles *rp)
{
    uint64_t h = fg_hash_bytes(0x7265736fULL, rp->schema_url.ptr, rp->schema_url.len);
    for (uint32_t i = 0; i < rp->resource.n_attrs; i++) {
        const struct fg_keyvalue *kv = &rp->resource.attrs[i];
        h = fg_value_hash(fg_hash_bytes(h, kv->key.ptr, kv->key.len), &kv->value);
    }
    return h;
}

/* Output resources by content, so many groups of one resource (sample types, windows) share
 * it without a linear search per group: a flush of max_groups groups stays linear. */
struct res_index {
    uint32_t *slots; /* out resource index + 1 */
    uint64_t *hashes; /* per out resource */
    uint32_t mask;
};

static int32_t out_resource(struct res_index *ri, struct fg_profiles *out,
                            const struct fg_resource_profiles *srp)
{
    uint64_t h = resource_hash(srp);
    uint32_t pos = (uint32_t)h & ri->mask;
    for (uint32_t k; (k = ri->slots[pos]) != 0; pos = (pos + 1) & ri->mask)
        if (ri->hashes[k - 1] == h && fg_resource_profiles_equal(&out->resources[k - 1], srp))
            return (int32_t)(k - 1);
    if (!fg_profiles_add_resource(out, &srp->resource, srp->schema_url.ptr, srp->schema_url.len))
        return FG_ENOMEM;
    uint32_t idx = out->n_resources - 1;
    ri->hashes[idx] = h;
    ri->slots[pos] = idx + 1;
    return (int32_t)idx;
}

static int emit(struct aggregate_processor *a, struct fg_profiles *out, struct acc **list,
                size_t n, uint64_t *samples_out)
{
    struct gen_copier gc[8];
    size_t n_gc = 0;
    int rc = 0;
    uint32_t size = 16;
    while (size < 2 * n)
        size *= 2;
    struct res_index ri = {fg_calloc(size, sizeof(uint32_t)), fg_calloc(n, sizeof(uint64_t)),
                           size - 1};
    if (!ri.slots || !ri.hashes)
        rc = FG_ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        struct acc *x = list[i];
        struct fg_copier *c = NULL;
        for (size_t k = 0; k < n_gc && !c; k++)
            if (gc[k].gen == x->gen)
                c = gc[k].c;
        if (!c) {
            if (n_gc == FG_ARRAY_LEN(gc)) { /* more generations than expected: start over */
                for (size_t k = 0; k < n_gc; k++)
                    fg_copier_free(gc[k].c);
                n_gc = 0;
            }
            if ((rc = fg_copier_new(out, x->gen->b, &c)) != 0)
                break;
            gc[n_gc++] = (struct gen_copier){x->gen, x->gen->serial, c};
        }
        const struct fg_resource_profiles *srp = &x->gen->b->resources[x->res_idx];
        int32_t r = out_resource(&ri, out, srp);
        struct fg_scope_profiles *dsp =
            r >= 0 ? fg_copier_scope(c, &out->resources[r], &srp->scopes[x->scope_idx]) : NULL;
        if (!dsp) {
            rc = FG_ENOMEM;
            break;
        }
        struct fg_profile hdr = {
            .sample_type = x->sample_type,
            .period_type = x->period_type,
            .time_unix_nano = x->window_start,
            .duration_nano = (uint64_t)a->cfg->window_ns,
            .period = x->period,
            .n_attrs = x->n_pattrs,
            .attrs = x->pattrs,
        };
        struct fg_profile *dprof = fg_copier_profile_header(c, dsp, &hdr);
        if (!dprof) {
            rc = FG_ENOMEM;
            break;
        }
        for (uint32_t k = 0; k < x->n_slots && !rc; k++) {
            struct slot *s = &x->slots[k];
            if (s->n_ts > 1)
                qsort(s->ts, s->n_ts, sizeof(uint64_t), cmp_u64);
            struct fg_sample smp = {
                .stack = s->stack,
                .link = s->link,
                .n_attrs = s->n_attrs,
                .n_values = s->n_values,
                .n_timestamps = s->n_ts,
                .attrs = x->attr_pool + s->attr_off,
                .values = x->val_pool + s->val_off,
                .timestamps = s->ts,
            };
            rc = fg_copier_sample(c, dprof, &smp, NULL);
        }
        *samples_out += x->n_slots;
    }
    for (size_t k = 0; k < n_gc; k++)
        fg_copier_free(gc[k].c);
    fg_free(ri.slots);
    fg_free(ri.hashes);
    return rc;
}

/* Takes the accumulators matching pred out of the table (all when pred is NULL); mu held. */
static size_t take(struct aggregate_processor *a, bool (*pred)(const struct acc *, int64_t),
                   int64_t now, struct acc ***out)
{
    *out = NULL;
    size_t due = 0;
    for (size_t b = 0; b < a->n_buckets; b++)
        for (struct acc *x = a->buckets[b]; x; x = x->next)
            due += !pred || pred(x, now);
    if (!due) /* the common tick: nothing to do, nothing allocated */
        return 0;
    struct acc **list = fg_malloc(due * sizeof(*list));
    if (!list)
        return 0;
    size_t n = 0;
    for (size_t b = 0; b < a->n_buckets; b++) {
        struct acc **pp = &a->buckets[b];
        while (*pp) {
            struct acc *x = *pp;
            if (!pred || pred(x, now)) {
                *pp = x->next;
                a->n_accs--;
                list[n++] = x;
            } else {
                pp = &x->next;
            }
        }
    }
    if (!n) {
        fg_free(list);
        return 0;
    }
    *out = list;
    return n;
}

static int cmp_acc(const void *x, const void *y)
{
    const struct acc *a = *(struct acc *const *)x, *b = *(struct acc *const *)y;
    int c = strcmp(a->tenant, b->tenant);
    if (c)
        return c;
    if (a->window_start != b->window_start)
        return a->window_start < b->window_start ? -1 : 1;
    return a->gen < b->gen ? -1 : a->gen > b->gen;
}

/* Batches ready to be sent once the lock is released. */
struct outq {
    struct fg_profiles **b;
    size_t n, cap;
};

static void outq_push(struct aggregate_processor *a, struct outq *q, struct fg_profiles *b)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 4;
        struct fg_profiles **bigger = fg_realloc(q->b, cap * sizeof(*bigger));
        if (!bigger) {
            fg_log(FG_LOG_ERROR, a->base.id, "out of memory: %llu aggregated samples lost",
                   (unsigned long long)b->n_samples);
            fg_profiles_unref(b);
            return;
        }
        q->b = bigger;
        q->cap = cap;
    }
    q->b[q->n++] = b;
}

static void send_on(struct aggregate_processor *a, struct fg_profiles *b)
{
    struct fg_err err = {{0}};
    uint64_t samples = b->n_samples;
    if (fg_consume(a->next, b, &err))
        fg_log(FG_LOG_WARN, a->base.id, "next component refused %llu aggregated samples: %s",
               (unsigned long long)samples, err.msg);
}

/* Sends and empties q; the caller holds no lock. */
static void outq_send(struct aggregate_processor *a, struct outq *q)
{
    for (size_t i = 0; i < q->n; i++)
        send_on(a, q->b[i]);
    fg_free(q->b);
    memset(q, 0, sizeof(*q));
}

/* Builds one batch per tenant from list into q and frees the accumulators (not list);
 * mu held. On out of memory the profiles of that batch are lost (logged). */
static void build_flush(struct aggregate_processor *a, struct acc **list, size_t n,
                        struct outq *q)
{
    if (!n)
        return;
    /* tenants apart; windows in order; one generation together so copiers are reused */
    qsort(list, n, sizeof(*list), cmp_acc);
    for (size_t start = 0, end; start < n; start = end) {
        for (end = start + 1; end < n && strcmp(list[end]->tenant, list[start]->tenant) == 0;)
            end++;
        struct fg_profiles *out = NULL;
        uint64_t samples = 0;
        int rc = fg_profiles_new(&out);
        if (!rc)
            rc = emit(a, out, list + start, end - start, &samples);
        if (rc) {
            fg_log(FG_LOG_ERROR, a->base.id, "out of memory building %zu aggregated profiles; "
                   "they are lost", end - start);
            fg_profiles_unref(out);
            continue;
        }
        memcpy(out->tenant, list[start]->tenant, sizeof(out->tenant));
        a->stats.profiles_out += end - start;
        a->stats.samples_out += samples;
        a->stats.flushes++;
        outq_push(a, q, out);
    }
    for (size_t i = 0; i < n; i++) {
        struct generation *g = list[i]->gen;
        acc_free(list[i]);
        gen_release(a, g);
    }
    a->stats.open_groups = a->n_accs;
}

/* ---- grouping ---- */

struct kv_ref {
    const struct fg_keyvalue *kv;
};

static int cmp_kv(const void *x, const void *y)
{
    const struct fg_keyvalue *a = ((const struct kv_ref *)x)->kv,
                             *b = ((const struct kv_ref *)y)->kv;
    uint32_t n = FG_MIN(a->key.len, b->key.len);
    int c = n ? memcmp(a->key.ptr, b->key.ptr, n) : 0;
    if (c)
        return c;
    return a->key.len < b->key.len ? -1 : a->key.len > b->key.len;
}

static int key_bytes(struct fg_buf *k, struct fg_bytes s)
{
    uint32_t len = s.len;
    int rc = fg_buf_append(k, &len, sizeof(len));
    return rc ? rc : fg_buf_append(k, s.ptr, s.len);
}

static int key_value(struct fg_buf *k, const struct fg_value *v)
{
    uint8_t kind = v->kind;
    int rc = fg_buf_append(k, &kind, 1);
    if (rc)
        return rc;
    switch (v->kind) {
    case FG_VALUE_STRING:
    case FG_VALUE_BYTES:
        return key_bytes(k, v->u.s);
    case FG_VALUE_BOOL:
    case FG_VALUE_INT:
    case FG_VALUE_DOUBLE: {
        uint64_t bits = 0;
        if (v->kind == FG_VALUE_BOOL)
            bits = v->u.b;
        else if (v->kind == FG_VALUE_INT)
            bits = (uint64_t)v->u.i;
        else
            memcpy(&bits, &v->u.d, sizeof(bits));
        return fg_buf_append(k, &bits, sizeof(bits));
    }
    default: {
        /* arrays and kvlists as attribute values are rare: their hash stands in */
        uint64_t h = fg_value_hash(0, v);
        return fg_buf_append(k, &h, sizeof(h));
    }
    }
}

/* The resource attributes that make the group: group_by keys in their order, or all of
 * them sorted by key. kvs gets pointers into res; returns how many. */
static uint32_t group_attrs(const struct aggregate_config *cfg, const struct fg_resource *res,
                            struct kv_ref *kvs)
{
    uint32_t n = 0;
    if (!cfg->group_by.n) {
        for (uint32_t i = 0; i < res->n_attrs; i++)
            kvs[n++].kv = &res->attrs[i];
        qsort(kvs, n, sizeof(*kvs), cmp_kv);
        return n;
    }
    for (size_t g = 0; g < cfg->group_by.n; g++) {
        const char *key = cfg->group_by.items[g];
        size_t len = strlen(key);
        for (uint32_t i = 0; i < res->n_attrs; i++) {
            if (res->attrs[i].key.len == len &&
                (!len || memcmp(res->attrs[i].key.ptr, key, len) == 0)) {
                kvs[n++].kv = &res->attrs[i];
                break;
            }
        }
    }
    return n;
}

/* Where the incoming batch's dictionary went in one generation's. */
struct gen_map {
    struct generation *gen;
    uint64_t serial;
    struct fg_dict_map map;
};

struct batch_ctx {
    const struct fg_profiles *src;
    struct gen_map maps[8];
    size_t n_maps;
    uint8_t *attr_keep; /* per src attribute: 0 unknown, 1 keep, 2 drop */
    uint32_t *attr_buf;
    uint32_t cap_attr_buf;
    int64_t *val_buf;
    uint32_t cap_val_buf;
};

static void ctx_release_maps(struct batch_ctx *ctx)
{
    for (size_t i = 0; i < ctx->n_maps; i++)
        fg_dict_map_release(&ctx->maps[i].map);
    ctx->n_maps = 0;
}

/* The incoming batch's whole dictionary interned into generation g: nearly every entry of
 * an upload is used by its samples, and interning it table by table (fg_dict_map_into)
 * leaves a plain array lookup per reference, where copying entries on first use checks a
 * memo and recurses per reference. Maps are cached per batch; entries of generations freed
 * meanwhile never match again (serial). */
static const uint32_t *const *ctx_map(struct batch_ctx *ctx, struct generation *g)
{
    for (size_t i = 0; i < ctx->n_maps; i++)
        if (ctx->maps[i].gen == g && ctx->maps[i].serial == g->serial)
            return (const uint32_t *const *)ctx->maps[i].map.idx;
    if (ctx->n_maps == FG_ARRAY_LEN(ctx->maps))
        ctx_release_maps(ctx);
    struct gen_map *gm = &ctx->maps[ctx->n_maps];
    memset(gm, 0, sizeof(*gm));
    if (fg_dict_map_into(g->b, ctx->src, &gm->map)) {
        fg_dict_map_release(&gm->map);
        return NULL;
    }
    gm->gen = g;
    gm->serial = g->serial;
    ctx->n_maps++;
    return (const uint32_t *const *)gm->map.idx;
}

static bool keep_attr(const struct aggregate_config *cfg, struct batch_ctx *ctx, uint32_t idx)
{
    if (!cfg->keep_sample_attributes.n)
        return false;
    if (!ctx->attr_keep[idx]) {
        const struct fg_attribute *at = fg_dict_get_attribute(ctx->src, idx);
        struct fg_bytes k = fg_dict_get_string(ctx->src, at->key);
        ctx->attr_keep[idx] = 2;
        for (size_t i = 0; i < cfg->keep_sample_attributes.n; i++) {
            const char *want = cfg->keep_sample_attributes.items[i];
            if (strlen(want) == k.len && (!k.len || memcmp(want, k.ptr, k.len) == 0))
                ctx->attr_keep[idx] = 1;
        }
    }
    return ctx->attr_keep[idx] == 1;
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

static struct acc *acc_new(struct aggregate_processor *a, struct generation *g,
                           const uint32_t *const *map, const struct fg_resource_profiles *rp,
                           const struct fg_scope_profiles *sp, const struct fg_profile *prof,
                           const struct kv_ref *kvs, uint32_t n_kvs, struct fg_buf *key,
                           uint64_t hash, uint64_t window_start, int64_t now,
                           const char *tenant)
{
    struct acc *x = fg_calloc(1, sizeof(*x));
    struct fg_keyvalue *attrs = fg_calloc(FG_MAX(n_kvs, 1), sizeof(*attrs));
    if (!x || !attrs)
        goto fail;
    for (uint32_t i = 0; i < n_kvs; i++)
        attrs[i] = *kvs[i].kv;
    struct fg_resource res = {.n_attrs = n_kvs, .attrs = attrs};
    if (!a->cfg->group_by.n) { /* the whole resource: keep what else it says */
        res = rp->resource;
        res.attrs = attrs;
    }
    struct fg_resource_profiles *drp =
        fg_profiles_add_resource(g->b, &res, rp->schema_url.ptr, rp->schema_url.len);
    if (!drp)
        goto fail;
    struct fg_scope scope = sp->scope;
    if (!fg_profiles_add_scope(g->b, drp, &scope, sp->schema_url.ptr, sp->schema_url.len))
        goto fail;
    x->res_idx = g->b->n_resources - 1;
    x->scope_idx = drp->n_scopes - 1;
    const uint32_t *strs = map[FG_TABLE_STRING];
    x->sample_type = (struct fg_value_type){strs[prof->sample_type.type],
                                            strs[prof->sample_type.unit]};
    x->period_type = (struct fg_value_type){strs[prof->period_type.type],
                                            strs[prof->period_type.unit]};
    x->period = prof->period;
    x->key = fg_buf_steal(key, &x->key_len);
    if (!x->key)
        goto fail;
    x->hash = hash;
    x->gen = g;
    x->window_start = window_start;
    x->close_ns = now + a->cfg->window_ns;
    memcpy(x->tenant, tenant, sizeof(x->tenant));
    x->tenant[sizeof(x->tenant) - 1] = '\0';
    fg_free(attrs);
    g->n_accs++;
    return x;
fail:
    fg_free(attrs);
    acc_free(x);
    return NULL;
}

/* Merges one profile into its accumulator; mu held. *full is set when the accumulator
 * reached max_stacks_per_group (the caller flushes it). FG_EFULL, having changed nothing,
 * when the profile needs a new accumulator and max_groups are open. */
static int merge_profile(struct aggregate_processor *a, struct batch_ctx *ctx,
                         const struct fg_resource_profiles *rp,
                         const struct fg_scope_profiles *sp, const struct fg_profile *prof,
                         int64_t now, uint64_t now_real, struct acc **full)
{
    const struct aggregate_config *cfg = a->cfg;
    struct kv_ref *kvs = fg_malloc(FG_MAX(rp->resource.n_attrs, 1) * sizeof(*kvs));
    struct fg_buf key;
    fg_buf_init(&key, 0);
    int rc = FG_ENOMEM;
    if (!kvs)
        goto out;
    uint32_t n_kvs = group_attrs(cfg, &rp->resource, kvs);
    uint64_t t = prof->time_unix_nano ? prof->time_unix_nano : now_real;
    uint64_t window_start = t - t % (uint64_t)cfg->window_ns;
    size_t tenant_len = strnlen(ctx->src->tenant, sizeof(ctx->src->tenant));
    if (key_bytes(&key, (struct fg_bytes){ctx->src->tenant, (uint32_t)tenant_len}))
        goto out;
    for (uint32_t i = 0; i < n_kvs; i++)
        if (key_bytes(&key, kvs[i].kv->key) || key_value(&key, &kvs[i].kv->value))
            goto out;
    struct fg_bytes st = fg_dict_get_string(ctx->src, prof->sample_type.type),
                    su = fg_dict_get_string(ctx->src, prof->sample_type.unit),
                    pt = fg_dict_get_string(ctx->src, prof->period_type.type),
                    pu = fg_dict_get_string(ctx->src, prof->period_type.unit);
    if (key_bytes(&key, sp->scope.name) || key_bytes(&key, sp->scope.version) ||
        key_bytes(&key, st) || key_bytes(&key, su) || key_bytes(&key, pt) ||
        key_bytes(&key, pu) || fg_buf_append(&key, &prof->period, sizeof(prof->period)) ||
        fg_buf_append(&key, &window_start, sizeof(window_start)))
        goto out;
    uint64_t hash = fg_hash_bytes(0x61676772ULL, key.data, key.len);
    struct acc *x = a->buckets[hash & (a->n_buckets - 1)];
    while (x && !(x->hash == hash && x->key_len == key.len &&
                  memcmp(x->key, key.data, key.len) == 0))
        x = x->next;
    if (!x && a->n_accs >= (size_t)cfg->max_groups) {
        rc = FG_EFULL; /* the caller flushes what is open and calls again */
        goto out;
    }
    if (!x) {
        struct generation *g = gen_current(a, now);
        const uint32_t *const *map = g ? ctx_map(ctx, g) : NULL;
        if (!map || !(x = acc_new(a, g, map, rp, sp, prof, kvs, n_kvs, &key, hash, window_start,
                                now, ctx->src->tenant)))
            goto out;
        if (a->n_accs >= a->n_buckets)
            table_grow(a);
        x->next = a->buckets[hash & (a->n_buckets - 1)];
        a->buckets[hash & (a->n_buckets - 1)] = x;
        a->n_accs++;
        a->stats.open_groups = a->n_accs;
    }
    const uint32_t *const *map = ctx_map(ctx, x->gen);
    if (!map)
        goto out;
    const uint32_t *attr_map = map[FG_TABLE_ATTRIBUTE];

    /* profile attributes: those every merged profile carried */
    if (!x->pattrs_set) {
        x->pattrs = fg_malloc(FG_MAX(prof->n_attrs, 1) * sizeof(uint32_t));
        if (!x->pattrs)
            goto out;
        for (uint32_t i = 0; i < prof->n_attrs; i++)
            x->pattrs[x->n_pattrs++] = attr_map[prof->attrs[i]];
        x->pattrs_set = true;
    } else if (x->n_pattrs) {
        uint32_t kept = 0;
        for (uint32_t i = 0; i < x->n_pattrs; i++) {
            bool found = false;
            for (uint32_t j = 0; j < prof->n_attrs && !found; j++)
                found = attr_map[prof->attrs[j]] == x->pattrs[i];
            if (found)
                x->pattrs[kept++] = x->pattrs[i];
        }
        x->n_pattrs = kept;
    }
    x->profiles++;

    for (uint32_t i = 0; i < prof->n_samples; i++) {
        const struct fg_sample *s = &prof->samples[i];
        if (grow((void **)&ctx->attr_buf, &ctx->cap_attr_buf, s->n_attrs, sizeof(uint32_t)) ||
            grow((void **)&ctx->val_buf, &ctx->cap_val_buf, FG_MAX(s->n_values, 1),
                 sizeof(int64_t)))
            goto out;
        uint32_t n_attrs = 0;
        for (uint32_t k = 0; k < s->n_attrs; k++) {
            if (keep_attr(cfg, ctx, s->attrs[k]))
                ctx->attr_buf[n_attrs++] = attr_map[s->attrs[k]];
        }
        if (n_attrs > 1)
            qsort(ctx->attr_buf, n_attrs, sizeof(uint32_t), cmp_u32);
        uint32_t stack = map[FG_TABLE_STACK][s->stack];
        uint32_t link = map[FG_TABLE_LINK][s->link];
        const int64_t *values = s->values;
        uint32_t n_values = s->n_values;
        if (!cfg->keep_timestamps && !n_values && s->n_timestamps) {
            /* timestamps-only samples: the count of timestamps is their weight */
            ctx->val_buf[0] = s->n_timestamps;
            values = ctx->val_buf;
            n_values = 1;
        }
        if (acc_add(x, stack, link, ctx->attr_buf, n_attrs, values,
                    n_values, s->timestamps, cfg->keep_timestamps ? s->n_timestamps : 0))
            goto out;
    }
    if (x->n_slots >= (uint64_t)cfg->max_stacks_per_group) {
        table_remove(a, x);
        a->stats.open_groups = a->n_accs;
        a->stats.early_stack_limit++;
        *full = x;
    }
    rc = 0;
out:
    fg_buf_free(&key);
    fg_free(kvs);
    return rc;
}

static bool is_due(const struct acc *x, int64_t now)
{
    return x->close_ns <= now;
}

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int aggregate_consume(struct fg_consumer *self, struct fg_profiles *batch,
                             struct fg_err *err)
{
    struct aggregate_processor *a =
        (struct aggregate_processor *)((char *)self - offsetof(struct fg_component, consumer));
    struct batch_ctx ctx = {.src = batch};
    int rc = 0;
    ctx.attr_keep = fg_calloc(FG_MAX(fg_dict_len(batch, FG_TABLE_ATTRIBUTE), 1), 1);
    if (!ctx.attr_keep) {
        fg_profiles_unref(batch);
        return fg_err_set(err, FG_ERETRYABLE, "aggregate: out of memory");
    }
    int64_t now = fg_now_ns();
    uint64_t now_real = (uint64_t)realtime_ns();
    pthread_mutex_lock(&a->mu);
    if (a->stopping) {
        pthread_mutex_unlock(&a->mu);
        fg_free(ctx.attr_keep);
        fg_profiles_unref(batch);
        return fg_err_set(err, FG_ESTOPPED, "shutting down");
    }
    struct outq q = {0}; /* profiles that leave early (a bound was reached) */
    for (uint32_t r = 0; r < batch->n_resources && !rc; r++) {
        const struct fg_resource_profiles *rp = &batch->resources[r];
        for (uint32_t s = 0; s < rp->n_scopes && !rc; s++) {
            const struct fg_scope_profiles *sp = &rp->scopes[s];
            for (uint32_t i = 0; i < sp->n_profiles && !rc; i++) {
                struct acc **list = NULL;
                size_t n = 0;
                struct acc *full = NULL;
                rc = merge_profile(a, &ctx, rp, sp, &sp->profiles[i], now, now_real, &full);
                if (rc == FG_EFULL) {
                    /* max_groups reached: everything open leaves now */
                    n = take(a, NULL, now, &list);
                    a->stats.early_group_limit++;
                    rc = merge_profile(a, &ctx, rp, sp, &sp->profiles[i], now, now_real, &full);
                }
                a->stats.profiles_in++;
                a->stats.samples_in += sp->profiles[i].n_samples;
                if (full) {
                    struct acc **bigger = fg_realloc(list, (n + 1) * sizeof(*list));
                    if (bigger) {
                        list = bigger;
                        list[n++] = full;
                    } else { /* cannot flush it now: back in the table, it leaves later */
                        full->next = a->buckets[full->hash & (a->n_buckets - 1)];
                        a->buckets[full->hash & (a->n_buckets - 1)] = full;
                        a->n_accs++;
                    }
                }
                build_flush(a, list, n, &q);
                fg_free(list);
            }
        }
    }
    pthread_mutex_unlock(&a->mu);
    ctx_release_maps(&ctx);
    fg_free(ctx.attr_keep);
    fg_free(ctx.attr_buf);
    fg_free(ctx.val_buf);
    fg_profiles_unref(batch);
    outq_send(a, &q);
    if (rc)
        /* what merged so far stays; the rest of this batch is lost to OOM, so the sender
         * retries (a retry may count part of it twice: at least once, never silently lost) */
        return fg_err_set(err, FG_ERETRYABLE, "aggregate: out of memory");
    return 0;
}

static void *aggregate_timer(void *arg)
{
    struct aggregate_processor *a = arg;
    int64_t tick = FG_MAX(FG_MIN(a->cfg->window_ns / 20, INT64_C(1000000000)), INT64_C(10000000));
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        int64_t due = fg_now_ns() + tick;
        struct timespec ts = {due / 1000000000, due % 1000000000};
        pthread_cond_timedwait(&a->wake, &a->mu, &ts);
        if (a->stopping)
            break;
        struct acc **list;
        size_t n = take(a, is_due, fg_now_ns(), &list);
        if (!n)
            continue;
        struct outq q = {0};
        build_flush(a, list, n, &q);
        fg_free(list);
        pthread_mutex_unlock(&a->mu);
        outq_send(a, &q);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static int aggregate_start(struct fg_component *c, struct fg_err *err)
{
    struct aggregate_processor *a = (struct aggregate_processor *)c;
    int rc = pthread_create(&a->timer, NULL, aggregate_timer, a);
    if (rc)
        return fg_err_set(err, FG_ENOMEM, "cannot start timer thread: %s", strerror(rc));
    a->timer_running = true;
    return 0;
}

static int aggregate_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    struct aggregate_processor *a = (struct aggregate_processor *)c;
    FG_UNUSED(deadline_ns);
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->wake);
    pthread_mutex_unlock(&a->mu);
    if (a->timer_running) {
        pthread_join(a->timer, NULL);
        a->timer_running = false;
    }
    pthread_mutex_lock(&a->mu);
    struct acc **list;
    size_t n = take(a, NULL, 0, &list);
    struct outq q = {0};
    build_flush(a, list, n, &q);
    fg_free(list);
    fg_log(FG_LOG_DEBUG, c->id,
           "profiles in %llu (%llu samples), out %llu (%llu samples); early flushes: %llu "
           "group limit, %llu stack limit",
           (unsigned long long)a->stats.profiles_in, (unsigned long long)a->stats.samples_in,
           (unsigned long long)a->stats.profiles_out, (unsigned long long)a->stats.samples_out,
           (unsigned long long)a->stats.early_group_limit,
           (unsigned long long)a->stats.early_stack_limit);
    pthread_mutex_unlock(&a->mu);
    outq_send(a, &q);
    return 0;
}

static void aggregate_destroy(struct fg_component *c)
{
    struct aggregate_processor *a = (struct aggregate_processor *)c;
    if (!a)
        return;
    for (size_t b = 0; a->buckets && b < a->n_buckets; b++) {
        struct acc *x = a->buckets[b];
        while (x) {
            struct acc *next = x->next;
            struct generation *g = x->gen;
            acc_free(x);
            gen_release(a, g);
            x = next;
        }
    }
    fg_free(a->buckets);
    if (a->current) {
        fg_profiles_unref(a->current->b);
        fg_free(a->current);
    }
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->wake);
    fg_free(a);
}

static const struct fg_component_ops aggregate_ops = {
    .start = aggregate_start,
    .shutdown = aggregate_shutdown,
    .destroy = aggregate_destroy,
};

static int aggregate_create(const struct fg_create_args *args, struct fg_component **out,
                            struct fg_err *err)
{
    struct aggregate_processor *a = fg_calloc(1, sizeof(*a));
    if (!a)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    a->base.ops = &aggregate_ops;
    a->base.consumer.consume = aggregate_consume;
    a->cfg = args->config;
    a->next = args->next;
    a->n_buckets = 64;
    a->buckets = fg_calloc(a->n_buckets, sizeof(*a->buckets));
    if (!a->buckets) {
        fg_free(a);
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&a->wake, &attr);
    pthread_condattr_destroy(&attr);
    *out = &a->base;
    return 0;
}

void fg_aggregate_processor_stats(struct fg_component *c, struct fg_aggregate_stats *out)
{
    struct aggregate_processor *a = (struct aggregate_processor *)c;
    pthread_mutex_lock(&a->mu);
    *out = a->stats;
    out->open_groups = a->n_accs;
    pthread_mutex_unlock(&a->mu);
}

const struct fg_factory fg_aggregate_processor_factory = {
    .type = "aggregate",
    .kind = FG_KIND_PROCESSOR,
    .config_size = sizeof(struct aggregate_config),
    .options = aggregate_options,
    .create = aggregate_create,
};
