/* The profiles model: hash-consed dictionary tables, building, and the merge that
 * re-interns one batch into another. */
#include "fg_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_arena.h"
#include "fg_hash.h"

/* One interning table: dense entries plus an open-addressing index over them. */
struct itab {
    unsigned char *entries;
    uint64_t *hashes;
    /* high 32 bits: the entry's hash (so most mismatches are settled without touching the
     * entry or hashes[]); low 32 bits: entry index + 1; 0 = empty */
    uint64_t *slots;
    uint32_t n;
    uint32_t cap;
    uint32_t slot_mask; /* slot count - 1 (power of two) */
    uint32_t esize;
};

struct fg_dict {
    struct itab t[FG_TABLE_COUNT];
};

static const uint32_t entry_sizes[FG_TABLE_COUNT] = {
    [FG_TABLE_STRING] = sizeof(struct fg_bytes),
    [FG_TABLE_FUNCTION] = sizeof(struct fg_function),
    [FG_TABLE_MAPPING] = sizeof(struct fg_mapping),
    [FG_TABLE_LOCATION] = sizeof(struct fg_location),
    [FG_TABLE_LINK] = sizeof(struct fg_link),
    [FG_TABLE_ATTRIBUTE] = sizeof(struct fg_attribute),
    [FG_TABLE_STACK] = sizeof(struct fg_stack),
};

#define HASH_SEED 0x66616d6567617465ULL

/* ---- hashing and equality of entries ---- */

uint64_t fg_value_hash(uint64_t h, const struct fg_value *v)
{
    h = fg_hash_mix(h, v->kind);
    switch (v->kind) {
    case FG_VALUE_STRING:
    case FG_VALUE_BYTES:
        return fg_hash_bytes(h, v->u.s.ptr, v->u.s.len);
    case FG_VALUE_BOOL:
        return fg_hash_mix(h, v->u.b);
    case FG_VALUE_INT:
        return fg_hash_mix(h, (uint64_t)v->u.i);
    case FG_VALUE_DOUBLE: {
        uint64_t bits;
        double d = v->u.d == 0.0 ? 0.0 : v->u.d; /* -0.0 == 0.0 */
        memcpy(&bits, &d, sizeof(bits));
        return fg_hash_mix(h, bits);
    }
    case FG_VALUE_ARRAY:
        for (uint32_t i = 0; i < v->u.array.n; i++)
            h = fg_value_hash(h, &v->u.array.items[i]);
        return fg_hash_mix(h, v->u.array.n);
    case FG_VALUE_KVLIST:
        for (uint32_t i = 0; i < v->u.kvlist.n; i++) {
            const struct fg_keyvalue *kv = &v->u.kvlist.items[i];
            h = fg_hash_bytes(h, kv->key.ptr, kv->key.len);
            h = fg_value_hash(h, &kv->value);
        }
        return fg_hash_mix(h, v->u.kvlist.n);
    default:
        return h;
    }
}

static bool bytes_equal(struct fg_bytes a, struct fg_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool fg_value_equal(const struct fg_value *a, const struct fg_value *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case FG_VALUE_STRING:
    case FG_VALUE_BYTES:
        return bytes_equal(a->u.s, b->u.s);
    case FG_VALUE_BOOL:
        return a->u.b == b->u.b;
    case FG_VALUE_INT:
        return a->u.i == b->u.i;
    case FG_VALUE_DOUBLE:
        return a->u.d == b->u.d || (isnan(a->u.d) && isnan(b->u.d));
    case FG_VALUE_ARRAY:
        if (a->u.array.n != b->u.array.n)
            return false;
        for (uint32_t i = 0; i < a->u.array.n; i++)
            if (!fg_value_equal(&a->u.array.items[i], &b->u.array.items[i]))
                return false;
        return true;
    case FG_VALUE_KVLIST:
        return fg_keyvalues_equal(a->u.kvlist.items, a->u.kvlist.n, b->u.kvlist.items,
                                  b->u.kvlist.n);
    default:
        return true;
    }
}

bool fg_keyvalues_equal(const struct fg_keyvalue *a, uint32_t na, const struct fg_keyvalue *b,
                        uint32_t nb)
{
    if (na != nb)
        return false;
    for (uint32_t i = 0; i < na; i++)
        if (!bytes_equal(a[i].key, b[i].key) || !fg_value_equal(&a[i].value, &b[i].value))
            return false;
    return true;
}

/* An entry's hash is built from the hashes of the entries it refers to, not from their
 * indices, so it is the same in every batch: copying an entry into another batch reuses
 * it (fg_dict_map_into) instead of hashing the remapped entry again. A reference past its
 * table (callers must not make one) hashes by its index. */
static uint64_t ref_hash(const struct fg_dict *d, enum fg_table t, uint32_t idx)
{
    const struct itab *it = &d->t[t];
    return idx < it->n ? it->hashes[idx] : idx;
}

static uint64_t refs_hash(uint64_t h, const struct fg_dict *d, enum fg_table t,
                          const uint32_t *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        h = fg_hash_mix(h, ref_hash(d, t, v[i]));
    return fg_hash_mix(h, n);
}

static uint64_t entry_hash(const struct fg_dict *d, enum fg_table t, const void *e)
{
    uint64_t h = HASH_SEED + (uint64_t)t;
    switch (t) {
    case FG_TABLE_STRING: {
        const struct fg_bytes *s = e;
        return fg_hash_bytes(h, s->ptr, s->len);
    }
    case FG_TABLE_FUNCTION: {
        const struct fg_function *f = e;
        h = fg_hash_mix(h, ref_hash(d, FG_TABLE_STRING, f->name));
        h = fg_hash_mix(h, ref_hash(d, FG_TABLE_STRING, f->system_name));
        h = fg_hash_mix(h, ref_hash(d, FG_TABLE_STRING, f->filename));
        return fg_hash_mix(h, (uint64_t)f->start_line);
    }
    case FG_TABLE_MAPPING: {
        const struct fg_mapping *m = e;
        h = fg_hash_mix(h, m->memory_start);
        h = fg_hash_mix(h, m->memory_limit);
        h = fg_hash_mix(h, m->file_offset);
        h = fg_hash_mix(h, ref_hash(d, FG_TABLE_STRING, m->filename));
        return refs_hash(h, d, FG_TABLE_ATTRIBUTE, m->attrs, m->n_attrs);
    }
    case FG_TABLE_LOCATION: {
        const struct fg_location *l = e;
        h = fg_hash_mix(h, ref_hash(d, FG_TABLE_MAPPING, l->mapping));
        h = fg_hash_mix(h, l->address);
        for (uint32_t i = 0; i < l->n_lines; i++) {
            h = fg_hash_mix(h, ref_hash(d, FG_TABLE_FUNCTION, l->lines[i].function));
            h = fg_hash_mix(h, (uint64_t)l->lines[i].line);
            h = fg_hash_mix(h, (uint64_t)l->lines[i].column);
        }
        h = fg_hash_mix(h, l->n_lines);
        return refs_hash(h, d, FG_TABLE_ATTRIBUTE, l->attrs, l->n_attrs);
    }
    case FG_TABLE_LINK:
        return fg_hash_bytes(h, e, sizeof(struct fg_link));
    case FG_TABLE_ATTRIBUTE: {
        const struct fg_attribute *a = e;
        h = fg_hash_mix(h, ref_hash(d, FG_TABLE_STRING, a->key));
        h = fg_hash_mix(h, ref_hash(d, FG_TABLE_STRING, a->unit));
        return fg_value_hash(h, &a->value);
    }
    case FG_TABLE_STACK: {
        const struct fg_stack *s = e;
        return refs_hash(h, d, FG_TABLE_LOCATION, s->locations, s->n_locations);
    }
    default:
        return h;
    }
}

static bool u32s_equal(const uint32_t *a, uint32_t na, const uint32_t *b, uint32_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(*a)) == 0);
}

static bool entry_equal(enum fg_table t, const void *x, const void *y)
{
    switch (t) {
    case FG_TABLE_STRING:
        return bytes_equal(*(const struct fg_bytes *)x, *(const struct fg_bytes *)y);
    case FG_TABLE_FUNCTION: {
        const struct fg_function *a = x, *b = y;
        return a->name == b->name && a->system_name == b->system_name &&
               a->filename == b->filename && a->start_line == b->start_line;
    }
    case FG_TABLE_MAPPING: {
        const struct fg_mapping *a = x, *b = y;
        return a->memory_start == b->memory_start && a->memory_limit == b->memory_limit &&
               a->file_offset == b->file_offset && a->filename == b->filename &&
               u32s_equal(a->attrs, a->n_attrs, b->attrs, b->n_attrs);
    }
    case FG_TABLE_LOCATION: {
        const struct fg_location *a = x, *b = y;
        if (a->mapping != b->mapping || a->address != b->address || a->n_lines != b->n_lines ||
            !u32s_equal(a->attrs, a->n_attrs, b->attrs, b->n_attrs))
            return false;
        for (uint32_t i = 0; i < a->n_lines; i++)
            if (a->lines[i].function != b->lines[i].function || a->lines[i].line != b->lines[i].line ||
                a->lines[i].column != b->lines[i].column)
                return false;
        return true;
    }
    case FG_TABLE_LINK:
        return memcmp(x, y, sizeof(struct fg_link)) == 0;
    case FG_TABLE_ATTRIBUTE: {
        const struct fg_attribute *a = x, *b = y;
        return a->key == b->key && a->unit == b->unit && fg_value_equal(&a->value, &b->value);
    }
    case FG_TABLE_STACK: {
        const struct fg_stack *a = x, *b = y;
        return u32s_equal(a->locations, a->n_locations, b->locations, b->n_locations);
    }
    default:
        return false;
    }
}

/* ---- copying entries into the batch ---- */

static void *arena_dup(struct fg_profiles *p, const void *src, size_t size)
{
    if (size == 0)
        return NULL;
    return fg_arena_memdup(p->arena, src, size);
}

static int copy_bytes(struct fg_profiles *p, struct fg_bytes *dst, struct fg_bytes src)
{
    if (src.len == 0) {
        dst->ptr = "";
        dst->len = 0;
        return 0;
    }
    char *s = fg_arena_strndup(p->arena, src.ptr, src.len);
    if (!s)
        return FG_ENOMEM;
    dst->ptr = s;
    dst->len = src.len;
    return 0;
}

static int copy_keyvalues(struct fg_profiles *p, const struct fg_keyvalue **dst,
                          const struct fg_keyvalue *src, uint32_t n)
{
    *dst = NULL;
    if (n == 0)
        return 0;
    struct fg_keyvalue *kvs = fg_arena_alloc(p->arena, (size_t)n * sizeof(*kvs));
    if (!kvs)
        return FG_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        if (copy_bytes(p, &kvs[i].key, src[i].key) || fg_value_copy(p, &kvs[i].value, &src[i].value))
            return FG_ENOMEM;
    }
    *dst = kvs;
    return 0;
}

int fg_value_copy(struct fg_profiles *p, struct fg_value *dst, const struct fg_value *src)
{
    *dst = *src;
    switch (src->kind) {
    case FG_VALUE_STRING:
    case FG_VALUE_BYTES:
        return copy_bytes(p, &dst->u.s, src->u.s);
    case FG_VALUE_ARRAY: {
        if (src->u.array.n == 0)
            return 0;
        struct fg_value *items = fg_arena_alloc(p->arena, (size_t)src->u.array.n * sizeof(*items));
        if (!items)
            return FG_ENOMEM;
        for (uint32_t i = 0; i < src->u.array.n; i++)
            if (fg_value_copy(p, &items[i], &src->u.array.items[i]))
                return FG_ENOMEM;
        dst->u.array.items = items;
        return 0;
    }
    case FG_VALUE_KVLIST:
        return copy_keyvalues(p, &dst->u.kvlist.items, src->u.kvlist.items, src->u.kvlist.n);
    default:
        return 0;
    }
}

/* Copies the variable-size parts of a new entry into the arena (dst already holds *src). */
static int entry_copy(struct fg_profiles *p, enum fg_table t, void *dst)
{
    switch (t) {
    case FG_TABLE_STRING: {
        struct fg_bytes *s = dst;
        return copy_bytes(p, s, *s);
    }
    case FG_TABLE_MAPPING: {
        struct fg_mapping *m = dst;
        m->attrs = arena_dup(p, m->attrs, (size_t)m->n_attrs * sizeof(uint32_t));
        return m->n_attrs && !m->attrs ? FG_ENOMEM : 0;
    }
    case FG_TABLE_LOCATION: {
        struct fg_location *l = dst;
        l->attrs = arena_dup(p, l->attrs, (size_t)l->n_attrs * sizeof(uint32_t));
        l->lines = arena_dup(p, l->lines, (size_t)l->n_lines * sizeof(struct fg_line));
        return (l->n_attrs && !l->attrs) || (l->n_lines && !l->lines) ? FG_ENOMEM : 0;
    }
    case FG_TABLE_ATTRIBUTE: {
        struct fg_attribute *a = dst;
        struct fg_value v = a->value;
        return fg_value_copy(p, &a->value, &v);
    }
    case FG_TABLE_STACK: {
        struct fg_stack *s = dst;
        s->locations = arena_dup(p, s->locations, (size_t)s->n_locations * sizeof(uint32_t));
        return s->n_locations && !s->locations ? FG_ENOMEM : 0;
    }
    default:
        return 0;
    }
}

/* ---- the interning tables ---- */

#define SLOT_TAG(h) ((h) & UINT64_C(0xffffffff00000000))

static int itab_resize_slots(struct itab *t, uint32_t nslots)
{
    uint64_t *slots = fg_calloc(nslots, sizeof(*slots));
    if (!slots)
        return FG_ENOMEM;
    uint32_t mask = nslots - 1;
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t s = (uint32_t)t->hashes[i] & mask;
        while (slots[s])
            s = (s + 1) & mask;
        slots[s] = SLOT_TAG(t->hashes[i]) | (i + 1);
    }
    fg_free(t->slots);
    t->slots = slots;
    t->slot_mask = mask;
    return 0;
}

static int itab_grow_slots(struct itab *t)
{
    return itab_resize_slots(t, t->slot_mask ? (t->slot_mask + 1) * 2 : 64);
}

static int itab_set_capacity(struct itab *t, uint32_t cap)
{
    unsigned char *entries = fg_realloc(t->entries, (size_t)cap * t->esize);
    if (!entries)
        return FG_ENOMEM;
    t->entries = entries;
    uint64_t *hashes = fg_realloc(t->hashes, (size_t)cap * sizeof(*hashes));
    if (!hashes)
        return FG_ENOMEM;
    t->hashes = hashes;
    t->cap = cap;
    return 0;
}

static int itab_grow_entries(struct itab *t)
{
    uint32_t cap = t->cap ? t->cap * 2 : 16;
    if (cap > (uint32_t)INT32_MAX)
        return FG_ETOOBIG;
    return itab_set_capacity(t, cap);
}

int fg_dict_reserve(struct fg_profiles *p, enum fg_table table, uint32_t n)
{
    struct itab *t = &p->dict->t[table];
    if ((uint64_t)t->n + n > (uint64_t)INT32_MAX)
        return FG_ETOOBIG;
    uint32_t want = t->n + n;
    if (want > t->cap) {
        int rc = itab_set_capacity(t, want);
        if (rc)
            return rc;
    }
    uint64_t slots = t->slot_mask ? (uint64_t)t->slot_mask + 1 : 0;
    if ((uint64_t)want * 2 > slots) {
        uint64_t nslots = 64;
        while (nslots < (uint64_t)want * 2)
            nslots *= 2;
        return itab_resize_slots(t, (uint32_t)nslots);
    }
    return 0;
}

static int32_t intern_hashed(struct fg_profiles *p, enum fg_table table, const void *entry,
                             uint64_t h)
{
    struct itab *t = &p->dict->t[table];
    if (t->slot_mask) {
        uint32_t s = (uint32_t)h & t->slot_mask;
        for (uint64_t slot; (slot = t->slots[s]) != 0; s = (s + 1) & t->slot_mask) {
            uint32_t idx = (uint32_t)slot - 1;
            if (SLOT_TAG(slot) == SLOT_TAG(h) &&
                entry_equal(table, t->entries + (size_t)idx * t->esize, entry))
                return (int32_t)idx;
        }
    }
    /* keep the load factor under 1/2 */
    if ((uint64_t)(t->n + 1) * 2 > (uint64_t)t->slot_mask + 1 && itab_grow_slots(t))
        return FG_ENOMEM;
    if (t->n == t->cap) {
        int rc = itab_grow_entries(t);
        if (rc)
            return rc;
    }
    void *dst = t->entries + (size_t)t->n * t->esize;
    memcpy(dst, entry, t->esize);
    if (entry_copy(p, table, dst))
        return FG_ENOMEM;
    t->hashes[t->n] = h;
    uint32_t s = (uint32_t)h & t->slot_mask;
    while (t->slots[s])
        s = (s + 1) & t->slot_mask;
    t->slots[s] = SLOT_TAG(h) | (t->n + 1);
    return (int32_t)t->n++;
}

static int32_t intern(struct fg_profiles *p, enum fg_table table, const void *entry)
{
    return intern_hashed(p, table, entry, entry_hash(p->dict, table, entry));
}

int32_t fg_dict_string(struct fg_profiles *p, const char *s, size_t len)
{
    if (len > UINT32_MAX)
        return FG_ETOOBIG;
    struct fg_bytes b = {s, (uint32_t)len};
    return intern(p, FG_TABLE_STRING, &b);
}

int32_t fg_dict_copy_string(struct fg_profiles *p, const struct fg_profiles *src, uint32_t idx)
{
    /* an entry's hash does not depend on its batch */
    const struct itab *t = &src->dict->t[FG_TABLE_STRING];
    return intern_hashed(p, FG_TABLE_STRING, t->entries + (size_t)idx * sizeof(struct fg_bytes),
                         t->hashes[idx]);
}

int32_t fg_dict_function(struct fg_profiles *p, const struct fg_function *f)
{
    return intern(p, FG_TABLE_FUNCTION, f);
}

int32_t fg_dict_mapping(struct fg_profiles *p, const struct fg_mapping *m)
{
    return intern(p, FG_TABLE_MAPPING, m);
}

int32_t fg_dict_location(struct fg_profiles *p, const struct fg_location *l)
{
    return intern(p, FG_TABLE_LOCATION, l);
}

int32_t fg_dict_link(struct fg_profiles *p, const struct fg_link *l)
{
    return intern(p, FG_TABLE_LINK, l);
}

int32_t fg_dict_attribute(struct fg_profiles *p, const struct fg_attribute *a)
{
    return intern(p, FG_TABLE_ATTRIBUTE, a);
}

int32_t fg_dict_stack(struct fg_profiles *p, const struct fg_stack *s)
{
    return intern(p, FG_TABLE_STACK, s);
}

uint32_t fg_dict_len(const struct fg_profiles *p, enum fg_table table)
{
    return p->dict->t[table].n;
}

#define DICT_GET(table, type) \
    ((const type *)(p->dict->t[table].entries + (size_t)idx * sizeof(type)))

struct fg_bytes fg_dict_get_string(const struct fg_profiles *p, uint32_t idx)
{
    return *DICT_GET(FG_TABLE_STRING, struct fg_bytes);
}

const struct fg_function *fg_dict_get_function(const struct fg_profiles *p, uint32_t idx)
{
    return DICT_GET(FG_TABLE_FUNCTION, struct fg_function);
}

const struct fg_mapping *fg_dict_get_mapping(const struct fg_profiles *p, uint32_t idx)
{
    return DICT_GET(FG_TABLE_MAPPING, struct fg_mapping);
}

const struct fg_location *fg_dict_get_location(const struct fg_profiles *p, uint32_t idx)
{
    return DICT_GET(FG_TABLE_LOCATION, struct fg_location);
}

const struct fg_link *fg_dict_get_link(const struct fg_profiles *p, uint32_t idx)
{
    return DICT_GET(FG_TABLE_LINK, struct fg_link);
}

const struct fg_attribute *fg_dict_get_attribute(const struct fg_profiles *p, uint32_t idx)
{
    return DICT_GET(FG_TABLE_ATTRIBUTE, struct fg_attribute);
}

const struct fg_stack *fg_dict_get_stack(const struct fg_profiles *p, uint32_t idx)
{
    return DICT_GET(FG_TABLE_STACK, struct fg_stack);
}

/* ---- mapping one dictionary into another ---- */

static int grow_scratch(void **items, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    void *bigger = fg_realloc(*items, (size_t)need * elem);
    if (!bigger)
        return FG_ENOMEM;
    *items = bigger;
    *cap = need;
    return 0;
}

static const uint32_t *remap_refs(struct fg_dict_map *m, uint32_t *used, enum fg_table t,
                                  const uint32_t *src, uint32_t n)
{
    uint32_t *out = m->refs + *used;
    for (uint32_t i = 0; i < n; i++)
        out[i] = m->idx[t][src[i]];
    *used += n;
    return out;
}

union any_entry {
    struct fg_function function;
    struct fg_mapping mapping;
    struct fg_location location;
    struct fg_attribute attribute;
    struct fg_stack stack;
};

/* Writes src entry e of table t to out with its references replaced by their dst indices
 * (its lists go to m's scratch, valid until the next call). */
static int remap_entry(struct fg_dict_map *m, enum fg_table t, const void *e,
                       union any_entry *out)
{
    const uint32_t *strs = m->idx[FG_TABLE_STRING];
    uint32_t used = 0;
    switch (t) {
    case FG_TABLE_FUNCTION:
        out->function = *(const struct fg_function *)e;
        out->function.name = strs[out->function.name];
        out->function.system_name = strs[out->function.system_name];
        out->function.filename = strs[out->function.filename];
        return 0;
    case FG_TABLE_ATTRIBUTE:
        out->attribute = *(const struct fg_attribute *)e;
        out->attribute.key = strs[out->attribute.key];
        out->attribute.unit = strs[out->attribute.unit];
        return 0;
    case FG_TABLE_MAPPING:
        out->mapping = *(const struct fg_mapping *)e;
        if (grow_scratch((void **)&m->refs, &m->cap_refs, out->mapping.n_attrs, sizeof(uint32_t)))
            return FG_ENOMEM;
        out->mapping.filename = strs[out->mapping.filename];
        out->mapping.attrs = remap_refs(m, &used, FG_TABLE_ATTRIBUTE, out->mapping.attrs,
                                        out->mapping.n_attrs);
        return 0;
    case FG_TABLE_LOCATION: {
        struct fg_location *l = &out->location;
        *l = *(const struct fg_location *)e;
        if (grow_scratch((void **)&m->refs, &m->cap_refs, l->n_attrs, sizeof(uint32_t)) ||
            grow_scratch((void **)&m->lines, &m->cap_lines, l->n_lines, sizeof(struct fg_line)))
            return FG_ENOMEM;
        for (uint32_t k = 0; k < l->n_lines; k++) {
            m->lines[k] = l->lines[k];
            m->lines[k].function = m->idx[FG_TABLE_FUNCTION][l->lines[k].function];
        }
        l->lines = m->lines;
        l->mapping = m->idx[FG_TABLE_MAPPING][l->mapping];
        l->attrs = remap_refs(m, &used, FG_TABLE_ATTRIBUTE, l->attrs, l->n_attrs);
        return 0;
    }
    case FG_TABLE_STACK:
        out->stack = *(const struct fg_stack *)e;
        if (grow_scratch((void **)&m->refs, &m->cap_refs, out->stack.n_locations,
                         sizeof(uint32_t)))
            return FG_ENOMEM;
        out->stack.locations = remap_refs(m, &used, FG_TABLE_LOCATION, out->stack.locations,
                                          out->stack.n_locations);
        return 0;
    default:
        return FG_EINVAL;
    }
}

/* Maps table t of src, whose references are already mapped. An entry hashes the same in
 * every batch (entry_hash), so src's hashes are reused. */
static int map_table(struct fg_profiles *dst, const struct fg_profiles *src,
                     struct fg_dict_map *m, enum fg_table t)
{
    const struct itab *st = &src->dict->t[t];
    m->idx[t][0] = 0; /* the zero entry is the zero entry everywhere */
    for (uint32_t i = 1; i < st->n; i++) {
        const void *e = st->entries + (size_t)i * st->esize;
        int32_t idx;
        if (t == FG_TABLE_STRING || t == FG_TABLE_LINK) { /* nothing to remap */
            idx = intern_hashed(dst, t, e, st->hashes[i]);
        } else {
            union any_entry remapped;
            int rc = remap_entry(m, t, e, &remapped);
            if (rc)
                return rc;
            idx = intern_hashed(dst, t, &remapped, st->hashes[i]);
        }
        if (idx < 0)
            return idx;
        m->idx[t][i] = (uint32_t)idx;
    }
    return 0;
}

int fg_dict_map_into(struct fg_profiles *dst, const struct fg_profiles *src,
                     struct fg_dict_map *m)
{
    /* dependency order: an entry's references are mapped before it */
    static const enum fg_table order[] = {
        FG_TABLE_STRING,  FG_TABLE_FUNCTION, FG_TABLE_ATTRIBUTE, FG_TABLE_LINK,
        FG_TABLE_MAPPING, FG_TABLE_LOCATION, FG_TABLE_STACK,
    };
    for (int t = 0; t < FG_TABLE_COUNT; t++) {
        int rc = grow_scratch((void **)&m->idx[t], &m->cap[t], src->dict->t[t].n,
                              sizeof(uint32_t));
        if (rc)
            return rc;
    }
    for (size_t k = 0; k < FG_ARRAY_LEN(order); k++) {
        int rc = map_table(dst, src, m, order[k]);
        if (rc)
            return rc;
    }
    return 0;
}

void fg_dict_map_release(struct fg_dict_map *m)
{
    for (int t = 0; t < FG_TABLE_COUNT; t++)
        fg_free(m->idx[t]);
    fg_free(m->refs);
    fg_free(m->lines);
    memset(m, 0, sizeof(*m));
}

/* ---- lifetime ---- */

int fg_profiles_new(struct fg_profiles **out)
{
    struct fg_profiles *p = fg_calloc(1, sizeof(*p));
    if (!p)
        return FG_ENOMEM;
    p->refcount = 1;
    if (fg_arena_new(&p->arena) != 0)
        goto fail;
    p->dict = fg_calloc(1, sizeof(*p->dict));
    if (!p->dict)
        goto fail;
    for (int t = 0; t < FG_TABLE_COUNT; t++) {
        p->dict->t[t].esize = entry_sizes[t];
        /* every table starts with its zero entry at index 0 */
        unsigned char zero[sizeof(struct fg_location) + sizeof(struct fg_mapping)] = {0};
        if (t == FG_TABLE_STRING) {
            if (fg_dict_string(p, "", 0) != 0)
                goto fail;
        } else if (intern(p, (enum fg_table)t, zero) != 0) {
            goto fail;
        }
    }
    *out = p;
    return 0;
fail:
    fg_profiles_unref(p);
    return FG_ENOMEM;
}

struct fg_profiles *fg_profiles_ref(struct fg_profiles *p)
{
    __atomic_add_fetch(&p->refcount, 1, __ATOMIC_RELAXED);
    return p;
}

static void free_resources(struct fg_profiles *p)
{
    for (uint32_t r = 0; r < p->n_resources; r++) {
        struct fg_resource_profiles *rp = &p->resources[r];
        for (uint32_t s = 0; s < rp->n_scopes; s++) {
            struct fg_scope_profiles *sp = &rp->scopes[s];
            for (uint32_t i = 0; i < sp->n_profiles; i++)
                fg_free(sp->profiles[i].samples);
            fg_free(sp->profiles);
        }
        fg_free(rp->scopes);
    }
    fg_free(p->resources);
}

void fg_profiles_unref(struct fg_profiles *p)
{
    if (!p || __atomic_sub_fetch(&p->refcount, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    free_resources(p);
    if (p->dict) {
        for (int t = 0; t < FG_TABLE_COUNT; t++) {
            fg_free(p->dict->t[t].entries);
            fg_free(p->dict->t[t].hashes);
            fg_free(p->dict->t[t].slots);
        }
        fg_free(p->dict);
    }
    fg_arena_free(p->arena);
    fg_free(p);
}

size_t fg_profiles_memory(const struct fg_profiles *p)
{
    size_t total = sizeof(*p) + fg_arena_used(p->arena);
    for (int t = 0; t < FG_TABLE_COUNT; t++) {
        const struct itab *it = &p->dict->t[t];
        total += (size_t)it->cap * (it->esize + sizeof(uint64_t)) +
                 (it->slot_mask ? ((size_t)it->slot_mask + 1) * sizeof(uint64_t) : 0);
    }
    total += (size_t)p->n_samples * sizeof(struct fg_sample);
    return total;
}

struct fg_arena *fg_profiles_arena(struct fg_profiles *p)
{
    return p->arena;
}

/* ---- building ---- */

/* Grows a malloc'd array of elem-sized items so that one more fits. */
static int grow(void **items, uint32_t *cap, uint32_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    uint32_t ncap = *cap ? *cap * 2 : 4;
    void *bigger = fg_realloc(*items, (size_t)ncap * elem);
    if (!bigger)
        return FG_ENOMEM;
    *items = bigger;
    *cap = ncap;
    return 0;
}

static int copy_resource(struct fg_profiles *p, struct fg_resource *dst,
                         const struct fg_resource *src)
{
    *dst = *src;
    if (copy_keyvalues(p, &dst->attrs, src->attrs, src->n_attrs))
        return FG_ENOMEM;
    dst->entity_refs = NULL;
    if (src->n_entity_refs == 0)
        return 0;
    struct fg_entity_ref *refs = fg_arena_alloc(p->arena, src->n_entity_refs * sizeof(*refs));
    if (!refs)
        return FG_ENOMEM;
    for (uint32_t i = 0; i < src->n_entity_refs; i++) {
        const struct fg_entity_ref *s = &src->entity_refs[i];
        struct fg_entity_ref *d = &refs[i];
        *d = *s;
        if (copy_bytes(p, &d->schema_url, s->schema_url) || copy_bytes(p, &d->type, s->type))
            return FG_ENOMEM;
        struct fg_bytes *ids = NULL, *descs = NULL;
        if (s->n_id_keys && !(ids = fg_arena_alloc(p->arena, s->n_id_keys * sizeof(*ids))))
            return FG_ENOMEM;
        if (s->n_description_keys &&
            !(descs = fg_arena_alloc(p->arena, s->n_description_keys * sizeof(*descs))))
            return FG_ENOMEM;
        for (uint32_t k = 0; k < s->n_id_keys; k++)
            if (copy_bytes(p, &ids[k], s->id_keys[k]))
                return FG_ENOMEM;
        for (uint32_t k = 0; k < s->n_description_keys; k++)
            if (copy_bytes(p, &descs[k], s->description_keys[k]))
                return FG_ENOMEM;
        d->id_keys = ids;
        d->description_keys = descs;
    }
    dst->entity_refs = refs;
    return 0;
}

struct fg_resource_profiles *fg_profiles_add_resource(struct fg_profiles *p,
                                                      const struct fg_resource *resource,
                                                      const char *schema_url, size_t url_len)
{
    if (grow((void **)&p->resources, &p->cap_resources, p->n_resources, sizeof(*p->resources)))
        return NULL;
    struct fg_resource_profiles *rp = &p->resources[p->n_resources];
    memset(rp, 0, sizeof(*rp));
    if (copy_resource(p, &rp->resource, resource) ||
        copy_bytes(p, &rp->schema_url, (struct fg_bytes){schema_url, (uint32_t)url_len}))
        return NULL;
    p->n_resources++;
    return rp;
}

struct fg_scope_profiles *fg_profiles_add_scope(struct fg_profiles *p,
                                                struct fg_resource_profiles *rp,
                                                const struct fg_scope *scope,
                                                const char *schema_url, size_t url_len)
{
    if (grow((void **)&rp->scopes, &rp->cap_scopes, rp->n_scopes, sizeof(*rp->scopes)))
        return NULL;
    struct fg_scope_profiles *sp = &rp->scopes[rp->n_scopes];
    memset(sp, 0, sizeof(*sp));
    sp->scope = *scope;
    if (copy_bytes(p, &sp->scope.name, scope->name) ||
        copy_bytes(p, &sp->scope.version, scope->version) ||
        copy_keyvalues(p, &sp->scope.attrs, scope->attrs, scope->n_attrs) ||
        copy_bytes(p, &sp->schema_url, (struct fg_bytes){schema_url, (uint32_t)url_len}))
        return NULL;
    rp->n_scopes++;
    return sp;
}

struct fg_profile *fg_profiles_add_profile(struct fg_profiles *p, struct fg_scope_profiles *sp,
                                           const struct fg_profile *proto)
{
    if (grow((void **)&sp->profiles, &sp->cap_profiles, sp->n_profiles, sizeof(*sp->profiles)))
        return NULL;
    struct fg_profile *prof = &sp->profiles[sp->n_profiles];
    *prof = *proto;
    prof->samples = NULL;
    prof->n_samples = prof->cap_samples = 0;
    if (copy_bytes(p, &prof->profile_id, proto->profile_id) ||
        copy_bytes(p, &prof->original_payload_format, proto->original_payload_format) ||
        copy_bytes(p, &prof->original_payload, proto->original_payload))
        return NULL;
    prof->attrs = arena_dup(p, proto->attrs, (size_t)proto->n_attrs * sizeof(uint32_t));
    if (proto->n_attrs && !prof->attrs)
        return NULL;
    sp->n_profiles++;
    return prof;
}

int fg_profiles_add_sample(struct fg_profiles *p, struct fg_profile *prof,
                           const struct fg_sample *s)
{
    if (grow((void **)&prof->samples, &prof->cap_samples, prof->n_samples, sizeof(*prof->samples)))
        return FG_ENOMEM;
    struct fg_sample *d = &prof->samples[prof->n_samples];
    *d = *s;
    d->attrs = arena_dup(p, s->attrs, (size_t)s->n_attrs * sizeof(uint32_t));
    d->values = arena_dup(p, s->values, (size_t)s->n_values * sizeof(int64_t));
    d->timestamps = arena_dup(p, s->timestamps, (size_t)s->n_timestamps * sizeof(uint64_t));
    if ((s->n_attrs && !d->attrs) || (s->n_values && !d->values) ||
        (s->n_timestamps && !d->timestamps))
        return FG_ENOMEM;
    prof->n_samples++;
    p->n_samples++;
    return 0;
}

int64_t fg_profile_total(const struct fg_profile *prof)
{
    int64_t total = 0;
    for (uint32_t i = 0; i < prof->n_samples; i++) {
        const struct fg_sample *s = &prof->samples[i];
        if (s->n_values == 0) {
            total += s->n_timestamps;
            continue;
        }
        for (uint32_t v = 0; v < s->n_values; v++)
            total += s->values[v];
    }
    return total;
}

/* ---- merging ---- */

/* Replaces *attrs (n src attribute indices) by the list in dst's indices, in m's scratch
 * (valid until the next call). */
static int remap_attrs(struct fg_dict_map *m, const uint32_t **attrs, uint32_t n)
{
    if (n == 0)
        return 0;
    if (grow_scratch((void **)&m->refs, &m->cap_refs, n, sizeof(uint32_t)))
        return FG_ENOMEM;
    uint32_t used = 0;
    *attrs = remap_refs(m, &used, FG_TABLE_ATTRIBUTE, *attrs, n);
    return 0;
}

static bool entity_refs_equal(const struct fg_resource *a, const struct fg_resource *b)
{
    if (a->n_entity_refs != b->n_entity_refs)
        return false;
    for (uint32_t i = 0; i < a->n_entity_refs; i++) {
        const struct fg_entity_ref *x = &a->entity_refs[i], *y = &b->entity_refs[i];
        if (!bytes_equal(x->schema_url, y->schema_url) || !bytes_equal(x->type, y->type) ||
            x->n_id_keys != y->n_id_keys || x->n_description_keys != y->n_description_keys)
            return false;
        for (uint32_t k = 0; k < x->n_id_keys; k++)
            if (!bytes_equal(x->id_keys[k], y->id_keys[k]))
                return false;
        for (uint32_t k = 0; k < x->n_description_keys; k++)
            if (!bytes_equal(x->description_keys[k], y->description_keys[k]))
                return false;
    }
    return true;
}

static bool resource_profiles_match(const struct fg_resource_profiles *a,
                                    const struct fg_resource_profiles *b)
{
    return bytes_equal(a->schema_url, b->schema_url) &&
           a->resource.dropped_attributes_count == b->resource.dropped_attributes_count &&
           fg_keyvalues_equal(a->resource.attrs, a->resource.n_attrs, b->resource.attrs,
                              b->resource.n_attrs) &&
           entity_refs_equal(&a->resource, &b->resource);
}

static bool scope_profiles_match(const struct fg_scope_profiles *a,
                                 const struct fg_scope_profiles *b)
{
    return bytes_equal(a->schema_url, b->schema_url) && bytes_equal(a->scope.name, b->scope.name) &&
           bytes_equal(a->scope.version, b->scope.version) &&
           a->scope.dropped_attributes_count == b->scope.dropped_attributes_count &&
           fg_keyvalues_equal(a->scope.attrs, a->scope.n_attrs, b->scope.attrs, b->scope.n_attrs);
}

static int merge_profile(struct fg_profiles *dst, struct fg_scope_profiles *dsp,
                         const struct fg_profile *sprof, struct fg_dict_map *m)
{
    const uint32_t *strs = m->idx[FG_TABLE_STRING];
    struct fg_profile hdr = *sprof;
    hdr.sample_type.type = strs[hdr.sample_type.type];
    hdr.sample_type.unit = strs[hdr.sample_type.unit];
    hdr.period_type.type = strs[hdr.period_type.type];
    hdr.period_type.unit = strs[hdr.period_type.unit];
    if (remap_attrs(m, &hdr.attrs, hdr.n_attrs))
        return FG_ENOMEM;
    struct fg_profile *dprof = fg_profiles_add_profile(dst, dsp, &hdr);
    if (!dprof)
        return FG_ENOMEM;
    if (sprof->n_samples) {
        dprof->samples = fg_malloc((size_t)sprof->n_samples * sizeof(*dprof->samples));
        if (!dprof->samples)
            return FG_ENOMEM;
        dprof->cap_samples = sprof->n_samples;
    }
    for (uint32_t i = 0; i < sprof->n_samples; i++) {
        struct fg_sample s = sprof->samples[i];
        if (remap_attrs(m, &s.attrs, s.n_attrs))
            return FG_ENOMEM;
        s.stack = m->idx[FG_TABLE_STACK][s.stack];
        s.link = m->idx[FG_TABLE_LINK][s.link];
        int rc = fg_profiles_add_sample(dst, dprof, &s);
        if (rc)
            return rc;
    }
    return 0;
}

int fg_profiles_merge(struct fg_profiles *dst, const struct fg_profiles *src, struct fg_err *err)
{
    struct fg_dict_map m = {0};
    int rc = fg_dict_map_into(dst, src, &m);
    if (rc)
        goto fail;
    for (uint32_t r = 0; r < src->n_resources; r++) {
        const struct fg_resource_profiles *srp = &src->resources[r];
        struct fg_resource_profiles *drp = NULL;
        for (uint32_t k = 0; k < dst->n_resources && !drp; k++)
            if (resource_profiles_match(&dst->resources[k], srp))
                drp = &dst->resources[k];
        if (!drp &&
            !(drp = fg_profiles_add_resource(dst, &srp->resource, srp->schema_url.ptr,
                                             srp->schema_url.len))) {
            rc = FG_ENOMEM;
            goto fail;
        }
        for (uint32_t s = 0; s < srp->n_scopes; s++) {
            const struct fg_scope_profiles *ssp = &srp->scopes[s];
            struct fg_scope_profiles *dsp = NULL;
            for (uint32_t k = 0; k < drp->n_scopes && !dsp; k++)
                if (scope_profiles_match(&drp->scopes[k], ssp))
                    dsp = &drp->scopes[k];
            if (!dsp && !(dsp = fg_profiles_add_scope(dst, drp, &ssp->scope, ssp->schema_url.ptr,
                                                      ssp->schema_url.len))) {
                rc = FG_ENOMEM;
                goto fail;
            }
            for (uint32_t i = 0; i < ssp->n_profiles; i++)
                if ((rc = merge_profile(dst, dsp, &ssp->profiles[i], &m)) != 0)
                    goto fail;
        }
    }
fail:
    fg_dict_map_release(&m);
    if (rc)
        return fg_err_set(err, rc, "merging batches: %s", fg_strerror(rc));
    return 0;
}
