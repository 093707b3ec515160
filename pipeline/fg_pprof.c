/* pprof (perftools.profiles.Profile) ⇄ the model, with a hand-written protobuf reader and
 * writer: pprof is flat (no deep nesting) and this is the hot path of every pprof ingest. */
#include "fg_pprof.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_arena.h"
#include "fg_gzip.h"
#include "fg_hash.h"

/* Attribute keys of WIRE.md §5. */
#define KEY_BUILD_ID_GNU "process.executable.build_id.gnu"
#define KEY_BUILD_ID_GO "process.executable.build_id.go"
#define KEY_BUILD_ID_HTL "process.executable.build_id.htlhash"
#define KEY_HAS_FUNCTIONS "pprof.mapping.has_functions"
#define KEY_HAS_FILENAMES "pprof.mapping.has_filenames"
#define KEY_HAS_LINE_NUMBERS "pprof.mapping.has_line_numbers"
#define KEY_HAS_INLINE_FRAMES "pprof.mapping.has_inline_frames"
#define KEY_IS_FOLDED "pprof.location.is_folded"
#define KEY_DROP_FRAMES "pprof.profile.drop_frames"
#define KEY_KEEP_FRAMES "pprof.profile.keep_frames"
#define KEY_DOC_URL "pprof.profile.doc_url"
#define KEY_COMMENT "pprof.profile.comment"
#define KEY_DEFAULT_SAMPLE_TYPE "pprof.scope.default_sample_type"
#define KEY_SAMPLE_TYPE_ORDER "pprof.scope.sample_type_order"

/* ==== protobuf wire reading ==== */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

struct rd {
    const uint8_t *p, *end;
};

static int rd_varint(struct rd *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return -1;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static int rd_key(struct rd *r, uint32_t *field, uint32_t *wt)
{
    uint64_t k;
    if (rd_varint(r, &k) != 0 || (k >> 3) == 0 || (k >> 3) > 0x1fffffff)
        return -1;
    *field = (uint32_t)(k >> 3);
    *wt = (uint32_t)(k & 7);
    return 0;
}

static int rd_len(struct rd *r, struct rd *sub)
{
    uint64_t n;
    if (rd_varint(r, &n) != 0 || n > (uint64_t)(r->end - r->p))
        return -1;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

static int rd_skip(struct rd *r, uint32_t wt)
{
    uint64_t v;
    struct rd sub;
    switch (wt) {
    case WT_VARINT:
        return rd_varint(r, &v);
    case WT_I64:
        if (r->end - r->p < 8)
            return -1;
        r->p += 8;
        return 0;
    case WT_LEN:
        return rd_len(r, &sub);
    case WT_I32:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 0;
    default: /* groups are not used by pprof */
        return -1;
    }
}

/* A scalar varint field; a wrong wire type is corrupt input. */
static int rd_scalar(struct rd *r, uint32_t wt, uint64_t *out)
{
    return wt == WT_VARINT ? rd_varint(r, out) : -1;
}

struct u64vec {
    uint64_t *v;
    size_t n, cap;
};

static int u64_push(struct u64vec *a, uint64_t x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        uint64_t *bigger = fg_realloc(a->v, cap * sizeof(*bigger));
        if (!bigger)
            return FG_ENOMEM;
        a->v = bigger;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* A repeated varint field: packed (LEN) or one element (VARINT). -1 corrupt, FG_ENOMEM. */
static int rd_repeated(struct rd *r, uint32_t wt, struct u64vec *out)
{
    uint64_t v;
    if (wt == WT_VARINT) {
        if (rd_varint(r, &v) != 0)
            return -1;
        return u64_push(out, v);
    }
    if (wt != WT_LEN)
        return -1;
    struct rd sub;
    if (rd_len(r, &sub) != 0)
        return -1;
    while (sub.p < sub.end) {
        if (rd_varint(&sub, &v) != 0)
            return -1;
        int rc = u64_push(out, v);
        if (rc)
            return rc;
    }
    return 0;
}

struct span {
    const uint8_t *p;
    size_t len;
};

struct spanvec {
    struct span *v;
    size_t n, cap;
};

static int span_push(struct spanvec *a, struct rd sub)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        struct span *bigger = fg_realloc(a->v, cap * sizeof(*bigger));
        if (!bigger)
            return FG_ENOMEM;
        a->v = bigger;
        a->cap = cap;
    }
    a->v[a->n++] = (struct span){sub.p, (size_t)(sub.end - sub.p)};
    return 0;
}

static struct rd span_rd(struct span s)
{
    return (struct rd){s.p, s.p + s.len};
}

/* ==== decoding ==== */

/* id → position in its table: sorted pairs, with a direct path for the usual 1..n ids. */
struct idpair {
    uint64_t id;
    uint32_t pos;
};

struct idmap {
    struct idpair *v;
    uint32_t n;
    bool dense;
};

static int idpair_cmp(const void *a, const void *b)
{
    const struct idpair *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Sorts; returns the duplicated id, or 0 when all are unique. */
static uint64_t idmap_build(struct idmap *m)
{
    bool sorted = true; /* the usual case: written in id order */
    for (uint32_t i = 1; i < m->n && sorted; i++)
        sorted = m->v[i - 1].id < m->v[i].id;
    if (!sorted)
        qsort(m->v, m->n, sizeof(*m->v), idpair_cmp);
    m->dense = true;
    for (uint32_t i = 0; i < m->n; i++) {
        if (i > 0 && m->v[i].id == m->v[i - 1].id)
            return m->v[i].id;
        if (m->v[i].id != (uint64_t)i + 1)
            m->dense = false;
    }
    return 0;
}

/* Position of id, or -1. */
static int64_t idmap_find(const struct idmap *m, uint64_t id)
{
    if (m->dense)
        return id >= 1 && id <= m->n ? (int64_t)m->v[id - 1].pos : -1;
    uint32_t lo = 0, hi = m->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (m->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n && m->v[lo].id == id ? (int64_t)m->v[lo].pos : -1;
}

struct raw_function {
    uint64_t name, system_name, filename; /* pprof string indices, checked */
    int64_t start_line;
};

struct raw_mapping {
    uint64_t memory_start, memory_limit, file_offset;
    uint64_t filename, build_id;
    bool has_functions, has_filenames, has_line_numbers, has_inline_frames;
};

struct raw_line {
    int64_t function; /* position in functions, -1 = none */
    int64_t line, column;
};

struct raw_location {
    int64_t mapping; /* position in mappings, -1 = none */
    uint64_t address;
    uint32_t first_line, n_lines; /* into dec.lines */
    bool is_folded;
};

struct dec {
    struct fg_profiles *p;
    struct fg_err *err;

    struct spanvec strings, sample_types, samples, mappings, locations, functions;
    struct span period_type;
    struct u64vec comments;
    uint64_t drop_frames, keep_frames, default_sample_type, doc_url;
    int64_t time_nanos, duration_nanos, period;

    int32_t *str_dict; /* dict index per pprof string; -1 = not interned yet */
    struct raw_function *fns;
    struct raw_mapping *maps;
    struct raw_location *locs;
    struct raw_line *lines;
    size_t n_lines, cap_lines;
    int32_t *fn_dict, *map_dict, *loc_dict; /* -1 = not interned yet */
    struct idmap fn_ids, map_ids, loc_ids;

    /* scratch for samples */
    struct u64vec loc_ids_s, values_s;
    struct spanvec labels_s;
    uint32_t *u32_scratch;
    size_t cap_u32;
    struct fg_line *line_scratch;
    size_t cap_line_scratch;
};

static int bad(struct dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(struct dec *d, const char *fmt, ...)
{
    if (d->err) {
        int n = snprintf(d->err->msg, sizeof(d->err->msg), "pprof: ");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->err->msg + n, sizeof(d->err->msg) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return FG_EINVAL;
}

static int nomem(struct dec *d)
{
    return fg_err_set(d->err, FG_ENOMEM, "pprof: out of memory");
}

static int corrupt(struct dec *d, const char *where)
{
    return bad(d, "%s: malformed protobuf", where);
}

/* Checks a string index (what names the field for the message). */
static int str_check(struct dec *d, uint64_t idx, const char *what, size_t i, const char *field)
{
    if (idx < d->strings.n)
        return 0;
    if (i == SIZE_MAX)
        return bad(d, "%s: string index %lld out of range (string table has %zu)", field,
                   (long long)idx, d->strings.n);
    return bad(d, "%s[%zu].%s: string index %lld out of range (string table has %zu)", what, i,
               field, (long long)idx, d->strings.n);
}

/* Dict index of a checked pprof string index; negative FG_ENOMEM. */
static int32_t str_dict(struct dec *d, uint64_t idx)
{
    if (d->str_dict[idx] >= 0)
        return d->str_dict[idx];
    struct span s = d->strings.v[idx];
    int32_t r = fg_dict_string(d->p, (const char *)s.p, s.len);
    if (r >= 0)
        d->str_dict[idx] = r;
    return r;
}

static int32_t lit_dict(struct dec *d, const char *s)
{
    return fg_dict_string(d->p, s, strlen(s));
}

static int32_t attr_intern(struct dec *d, const char *key, const struct fg_value *v)
{
    int32_t k = lit_dict(d, key);
    if (k < 0)
        return k;
    struct fg_attribute a = {.key = (uint32_t)k, .value = *v};
    return fg_dict_attribute(d->p, &a);
}

/* The top level: strings and sub-message spans, scalars directly. */
static int parse_top(struct dec *d, const uint8_t *data, size_t len)
{
    struct rd r = {data, data + len};
    while (r.p < r.end) {
        uint32_t f, wt;
        struct rd sub;
        uint64_t v;
        int rc = 0;
        if (rd_key(&r, &f, &wt) != 0)
            return corrupt(d, "profile");
        struct spanvec *target = NULL;
        switch (f) {
        case 1: target = &d->sample_types; break;
        case 2: target = &d->samples; break;
        case 3: target = &d->mappings; break;
        case 4: target = &d->locations; break;
        case 5: target = &d->functions; break;
        case 6: target = &d->strings; break;
        case 11:
            if (wt != WT_LEN || rd_len(&r, &sub) != 0)
                return corrupt(d, "period_type");
            d->period_type = (struct span){sub.p, (size_t)(sub.end - sub.p)};
            continue;
        case 13:
            rc = rd_repeated(&r, wt, &d->comments);
            if (rc == FG_ENOMEM)
                return nomem(d);
            if (rc)
                return corrupt(d, "comment");
            continue;
        case 7: case 8: case 9: case 10: case 12: case 14: case 15:
            if (rd_scalar(&r, wt, &v) != 0)
                return corrupt(d, "profile");
            if (f == 7) d->drop_frames = v;
            else if (f == 8) d->keep_frames = v;
            else if (f == 9) d->time_nanos = (int64_t)v;
            else if (f == 10) d->duration_nanos = (int64_t)v;
            else if (f == 12) d->period = (int64_t)v;
            else if (f == 14) d->default_sample_type = v;
            else d->doc_url = v;
            continue;
        default:
            if (rd_skip(&r, wt) != 0)
                return corrupt(d, "profile");
            continue;
        }
        if (wt != WT_LEN || rd_len(&r, &sub) != 0)
            return corrupt(d, "profile");
        if (span_push(target, sub) != 0)
            return nomem(d);
    }
    return 0;
}

static int parse_value_type(struct dec *d, struct span s, const char *what, size_t i,
                            uint64_t *type, uint64_t *unit)
{
    struct rd r = span_rd(s);
    *type = *unit = 0;
    while (r.p < r.end) {
        uint32_t f, wt;
        uint64_t v;
        if (rd_key(&r, &f, &wt) != 0)
            return corrupt(d, what);
        if (f == 1 || f == 2) {
            if (rd_scalar(&r, wt, &v) != 0)
                return corrupt(d, what);
            *(f == 1 ? type : unit) = v;
        } else if (rd_skip(&r, wt) != 0) {
            return corrupt(d, what);
        }
    }
    int rc = str_check(d, *type, what, i, "type");
    return rc ? rc : str_check(d, *unit, what, i, "unit");
}

static int parse_functions(struct dec *d)
{
    size_t n = d->functions.n;
    d->fns = fg_calloc(n ? n : 1, sizeof(*d->fns));
    d->fn_dict = fg_malloc((n ? n : 1) * sizeof(*d->fn_dict));
    d->fn_ids.v = fg_malloc((n ? n : 1) * sizeof(*d->fn_ids.v));
    if (!d->fns || !d->fn_dict || !d->fn_ids.v)
        return nomem(d);
    for (size_t i = 0; i < n; i++) {
        struct rd r = span_rd(d->functions.v[i]);
        struct raw_function *fn = &d->fns[i];
        uint64_t id = 0, v;
        while (r.p < r.end) {
            uint32_t f, wt;
            if (rd_key(&r, &f, &wt) != 0)
                return corrupt(d, "function");
            if (f >= 1 && f <= 5) {
                if (rd_scalar(&r, wt, &v) != 0)
                    return corrupt(d, "function");
                switch (f) {
                case 1: id = v; break;
                case 2: fn->name = v; break;
                case 3: fn->system_name = v; break;
                case 4: fn->filename = v; break;
                default: fn->start_line = (int64_t)v; break;
                }
            } else if (rd_skip(&r, wt) != 0) {
                return corrupt(d, "function");
            }
        }
        if (id == 0)
            return bad(d, "function[%zu]: id 0 (ids must be non-zero)", i);
        int rc = str_check(d, fn->name, "function", i, "name");
        if (!rc)
            rc = str_check(d, fn->system_name, "function", i, "system_name");
        if (!rc)
            rc = str_check(d, fn->filename, "function", i, "filename");
        if (rc)
            return rc;
        d->fn_ids.v[i] = (struct idpair){id, (uint32_t)i};
        d->fn_dict[i] = -1;
    }
    d->fn_ids.n = (uint32_t)n;
    uint64_t dup = idmap_build(&d->fn_ids);
    if (dup)
        return bad(d, "function id %llu is used twice", (unsigned long long)dup);
    return 0;
}

static int parse_mappings(struct dec *d)
{
    size_t n = d->mappings.n;
    d->maps = fg_calloc(n ? n : 1, sizeof(*d->maps));
    d->map_dict = fg_malloc((n ? n : 1) * sizeof(*d->map_dict));
    d->map_ids.v = fg_malloc((n ? n : 1) * sizeof(*d->map_ids.v));
    if (!d->maps || !d->map_dict || !d->map_ids.v)
        return nomem(d);
    for (size_t i = 0; i < n; i++) {
        struct rd r = span_rd(d->mappings.v[i]);
        struct raw_mapping *m = &d->maps[i];
        uint64_t id = 0, v;
        while (r.p < r.end) {
            uint32_t f, wt;
            if (rd_key(&r, &f, &wt) != 0)
                return corrupt(d, "mapping");
            if (f >= 1 && f <= 10) {
                if (rd_scalar(&r, wt, &v) != 0)
                    return corrupt(d, "mapping");
                switch (f) {
                case 1: id = v; break;
                case 2: m->memory_start = v; break;
                case 3: m->memory_limit = v; break;
                case 4: m->file_offset = v; break;
                case 5: m->filename = v; break;
                case 6: m->build_id = v; break;
                case 7: m->has_functions = v != 0; break;
                case 8: m->has_filenames = v != 0; break;
                case 9: m->has_line_numbers = v != 0; break;
                default: m->has_inline_frames = v != 0; break;
                }
            } else if (rd_skip(&r, wt) != 0) {
                return corrupt(d, "mapping");
            }
        }
        if (id == 0)
            return bad(d, "mapping[%zu]: id 0 (ids must be non-zero)", i);
        int rc = str_check(d, m->filename, "mapping", i, "filename");
        if (!rc)
            rc = str_check(d, m->build_id, "mapping", i, "build_id");
        if (rc)
            return rc;
        d->map_ids.v[i] = (struct idpair){id, (uint32_t)i};
        d->map_dict[i] = -1;
    }
    d->map_ids.n = (uint32_t)n;
    uint64_t dup = idmap_build(&d->map_ids);
    if (dup)
        return bad(d, "mapping id %llu is used twice", (unsigned long long)dup);
    return 0;
}

static int push_line(struct dec *d, struct raw_line ln)
{
    if (d->n_lines == d->cap_lines) {
        size_t cap = d->cap_lines ? d->cap_lines * 2 : 256;
        struct raw_line *bigger = fg_realloc(d->lines, cap * sizeof(*bigger));
        if (!bigger)
            return FG_ENOMEM;
        d->lines = bigger;
        d->cap_lines = cap;
    }
    d->lines[d->n_lines++] = ln;
    return 0;
}

static int parse_line(struct dec *d, struct rd r, size_t loc, size_t k)
{
    uint64_t fid = 0, v;
    struct raw_line ln = {.function = -1};
    while (r.p < r.end) {
        uint32_t f, wt;
        if (rd_key(&r, &f, &wt) != 0)
            return corrupt(d, "location line");
        if (f >= 1 && f <= 3) {
            if (rd_scalar(&r, wt, &v) != 0)
                return corrupt(d, "location line");
            if (f == 1)
                fid = v;
            else if (f == 2)
                ln.line = (int64_t)v;
            else
                ln.column = (int64_t)v;
        } else if (rd_skip(&r, wt) != 0) {
            return corrupt(d, "location line");
        }
    }
    /* function_id 0 is "no function" (google/pprof reads it so); others must resolve */
    if (fid != 0) {
        ln.function = idmap_find(&d->fn_ids, fid);
        if (ln.function < 0)
            return bad(d, "location[%zu].line[%zu]: function id %llu not found", loc, k,
                       (unsigned long long)fid);
    }
    return push_line(d, ln) ? nomem(d) : 0;
}

static int parse_locations(struct dec *d)
{
    size_t n = d->locations.n;
    d->locs = fg_calloc(n ? n : 1, sizeof(*d->locs));
    d->loc_dict = fg_malloc((n ? n : 1) * sizeof(*d->loc_dict));
    d->loc_ids.v = fg_malloc((n ? n : 1) * sizeof(*d->loc_ids.v));
    if (!d->locs || !d->loc_dict || !d->loc_ids.v)
        return nomem(d);
    for (size_t i = 0; i < n; i++) {
        struct rd r = span_rd(d->locations.v[i]);
        struct raw_location *l = &d->locs[i];
        uint64_t id = 0, mid = 0, v;
        l->first_line = (uint32_t)d->n_lines;
        while (r.p < r.end) {
            uint32_t f, wt;
            struct rd sub;
            if (rd_key(&r, &f, &wt) != 0)
                return corrupt(d, "location");
            if (f == 4) {
                if (wt != WT_LEN || rd_len(&r, &sub) != 0)
                    return corrupt(d, "location");
                int rc = parse_line(d, sub, i, d->n_lines - l->first_line);
                if (rc)
                    return rc;
            } else if (f == 1 || f == 2 || f == 3 || f == 5) {
                if (rd_scalar(&r, wt, &v) != 0)
                    return corrupt(d, "location");
                if (f == 1)
                    id = v;
                else if (f == 2)
                    mid = v;
                else if (f == 3)
                    l->address = v;
                else
                    l->is_folded = v != 0;
            } else if (rd_skip(&r, wt) != 0) {
                return corrupt(d, "location");
            }
        }
        if (d->n_lines - l->first_line > UINT32_MAX / 2)
            return bad(d, "location[%zu]: too many lines", i);
        l->n_lines = (uint32_t)(d->n_lines - l->first_line);
        if (id == 0)
            return bad(d, "location[%zu]: id 0 (ids must be non-zero)", i);
        l->mapping = -1;
        if (mid != 0) {
            l->mapping = idmap_find(&d->map_ids, mid);
            if (l->mapping < 0)
                return bad(d, "location[%zu]: mapping id %llu not found", i,
                           (unsigned long long)mid);
        }
        d->loc_ids.v[i] = (struct idpair){id, (uint32_t)i};
        d->loc_dict[i] = -1;
    }
    d->loc_ids.n = (uint32_t)n;
    uint64_t dup = idmap_build(&d->loc_ids);
    if (dup)
        return bad(d, "location id %llu is used twice", (unsigned long long)dup);
    return 0;
}

/* ---- interning on first use, so unreferenced entries never reach the dictionary ---- */

static int32_t fn_intern(struct dec *d, size_t i)
{
    if (d->fn_dict[i] >= 0)
        return d->fn_dict[i];
    const struct raw_function *rf = &d->fns[i];
    int32_t name = str_dict(d, rf->name), sys = str_dict(d, rf->system_name),
            file = str_dict(d, rf->filename);
    if (name < 0 || sys < 0 || file < 0)
        return FG_ENOMEM;
    struct fg_function f = {(uint32_t)name, (uint32_t)sys, (uint32_t)file, rf->start_line};
    int32_t r = fg_dict_function(d->p, &f);
    if (r >= 0)
        d->fn_dict[i] = r;
    return r;
}

static int32_t map_intern(struct dec *d, size_t i)
{
    if (d->map_dict[i] >= 0)
        return d->map_dict[i];
    const struct raw_mapping *rm = &d->maps[i];
    uint32_t attrs[5];
    uint32_t n = 0;
    int32_t a;
    if (rm->build_id != 0 && d->strings.v[rm->build_id].len > 0) {
        struct span s = d->strings.v[rm->build_id];
        struct fg_value v = {.kind = FG_VALUE_STRING,
                             .u.s = {(const char *)s.p, (uint32_t)s.len}};
        if ((a = attr_intern(d, KEY_BUILD_ID_GNU, &v)) < 0)
            return a;
        attrs[n++] = (uint32_t)a;
    }
    const struct {
        bool on;
        const char *key;
    } flags[] = {{rm->has_functions, KEY_HAS_FUNCTIONS},
                 {rm->has_filenames, KEY_HAS_FILENAMES},
                 {rm->has_line_numbers, KEY_HAS_LINE_NUMBERS},
                 {rm->has_inline_frames, KEY_HAS_INLINE_FRAMES}};
    for (size_t k = 0; k < FG_ARRAY_LEN(flags); k++) {
        if (!flags[k].on)
            continue;
        struct fg_value v = {.kind = FG_VALUE_BOOL, .u.b = true};
        if ((a = attr_intern(d, flags[k].key, &v)) < 0)
            return a;
        attrs[n++] = (uint32_t)a;
    }
    int32_t file = str_dict(d, rm->filename);
    if (file < 0)
        return file;
    struct fg_mapping m = {rm->memory_start, rm->memory_limit, rm->file_offset,
                           (uint32_t)file, n, attrs};
    int32_t r = fg_dict_mapping(d->p, &m);
    if (r >= 0)
        d->map_dict[i] = r;
    return r;
}

static int32_t loc_intern(struct dec *d, size_t i)
{
    if (d->loc_dict[i] >= 0)
        return d->loc_dict[i];
    const struct raw_location *rl = &d->locs[i];
    int32_t mapping = 0;
    if (rl->mapping >= 0 && (mapping = map_intern(d, (size_t)rl->mapping)) < 0)
        return mapping;
    if (rl->n_lines > d->cap_line_scratch) {
        struct fg_line *bigger = fg_realloc(d->line_scratch, rl->n_lines * sizeof(*bigger));
        if (!bigger)
            return FG_ENOMEM;
        d->line_scratch = bigger;
        d->cap_line_scratch = rl->n_lines;
    }
    for (uint32_t k = 0; k < rl->n_lines; k++) {
        const struct raw_line *ln = &d->lines[rl->first_line + k];
        int32_t fn = 0;
        if (ln->function >= 0 && (fn = fn_intern(d, (size_t)ln->function)) < 0)
            return fn;
        d->line_scratch[k] = (struct fg_line){(uint32_t)fn, ln->line, ln->column};
    }
    uint32_t folded_attr = 0;
    if (rl->is_folded) {
        struct fg_value v = {.kind = FG_VALUE_BOOL, .u.b = true};
        int32_t a = attr_intern(d, KEY_IS_FOLDED, &v);
        if (a < 0)
            return a;
        folded_attr = (uint32_t)a;
    }
    struct fg_location l = {.mapping = (uint32_t)mapping,
                            .address = rl->address,
                            .n_lines = rl->n_lines,
                            .n_attrs = rl->is_folded ? 1 : 0,
                            .lines = d->line_scratch,
                            .attrs = &folded_attr};
    int32_t r = fg_dict_location(d->p, &l);
    if (r >= 0)
        d->loc_dict[i] = r;
    return r;
}

static int reserve_u32(struct dec *d, size_t n)
{
    if (n <= d->cap_u32)
        return 0;
    uint32_t *bigger = fg_realloc(d->u32_scratch, n * sizeof(*bigger));
    if (!bigger)
        return FG_ENOMEM;
    d->u32_scratch = bigger;
    d->cap_u32 = n;
    return 0;
}

struct raw_label {
    uint64_t key, str, num_unit;
    int64_t num;
    bool is_str;
};

/* Labels → attribute indices (into out). One attribute per key: a key given several times
 * (the format allows it) becomes one array value, since an OTLP attribute list must not
 * repeat a key. google/pprof reads a label with str == 0 as numeric; so do we. */
static int labels_to_attrs(struct dec *d, size_t si, uint32_t *out, uint32_t *n_out)
{
    size_t n = d->labels_s.n;
    struct raw_label stackbuf[16];
    struct raw_label *ls = n <= 16 ? stackbuf : fg_malloc(n * sizeof(*ls));
    struct fg_value *items = NULL;
    int rc = 0;
    if (!ls)
        return nomem(d);
    for (size_t k = 0; k < n; k++) {
        struct rd r = span_rd(d->labels_s.v[k]);
        struct raw_label *l = &ls[k];
        memset(l, 0, sizeof(*l));
        while (r.p < r.end) {
            uint32_t f, wt;
            uint64_t v;
            if (rd_key(&r, &f, &wt) != 0) {
                rc = corrupt(d, "sample label");
                goto done;
            }
            if (f >= 1 && f <= 4) {
                if (rd_scalar(&r, wt, &v) != 0) {
                    rc = corrupt(d, "sample label");
                    goto done;
                }
                if (f == 1)
                    l->key = v;
                else if (f == 2)
                    l->str = v;
                else if (f == 3)
                    l->num = (int64_t)v;
                else
                    l->num_unit = v;
            } else if (rd_skip(&r, wt) != 0) {
                rc = corrupt(d, "sample label");
                goto done;
            }
        }
        const char *bad_field = l->key >= d->strings.n        ? "key"
                                : l->str >= d->strings.n      ? "str"
                                : l->num_unit >= d->strings.n ? "num_unit"
                                                              : NULL;
        if (bad_field) {
            uint64_t idx = *bad_field == 'k' ? l->key : *bad_field == 's' ? l->str : l->num_unit;
            rc = bad(d, "sample[%zu].label[%zu].%s: string index %llu out of range (string "
                        "table has %zu)",
                     si, k, bad_field, (unsigned long long)idx, d->strings.n);
            goto done;
        }
        l->is_str = l->str != 0;
    }
    uint32_t count = 0;
    for (size_t k = 0; k < n; k++) {
        if (ls[k].key == UINT64_MAX) /* folded into an earlier label of the same key */
            continue;
        size_t same = 1;
        for (size_t j = k + 1; j < n; j++)
            if (ls[j].key == ls[k].key)
                same++;
        int32_t key = str_dict(d, ls[k].key);
        int32_t unit = ls[k].is_str ? 0 : str_dict(d, ls[k].num_unit);
        if (key < 0 || unit < 0) {
            rc = nomem(d);
            goto done;
        }
        struct fg_attribute a = {.key = (uint32_t)key, .unit = (uint32_t)unit};
        if (same == 1) {
            if (ls[k].is_str) {
                struct span s = d->strings.v[ls[k].str];
                a.value.kind = FG_VALUE_STRING;
                a.value.u.s = (struct fg_bytes){(const char *)s.p, (uint32_t)s.len};
            } else {
                a.value.kind = FG_VALUE_INT;
                a.value.u.i = ls[k].num;
            }
        } else {
            items = fg_calloc(same, sizeof(*items));
            if (!items) {
                rc = nomem(d);
                goto done;
            }
            size_t m = 0;
            uint64_t keyidx = ls[k].key;
            for (size_t j = k; j < n; j++) {
                if (ls[j].key != keyidx)
                    continue;
                if (ls[j].is_str) {
                    struct span s = d->strings.v[ls[j].str];
                    items[m].kind = FG_VALUE_STRING;
                    items[m].u.s = (struct fg_bytes){(const char *)s.p, (uint32_t)s.len};
                } else {
                    items[m].kind = FG_VALUE_INT;
                    items[m].u.i = ls[j].num;
                }
                m++;
                if (j > k)
                    ls[j].key = UINT64_MAX;
            }
            a.value.kind = FG_VALUE_ARRAY;
            a.value.u.array.items = items;
            a.value.u.array.n = (uint32_t)m;
        }
        int32_t ai = fg_dict_attribute(d->p, &a);
        fg_free(items);
        items = NULL;
        if (ai < 0) {
            rc = nomem(d);
            goto done;
        }
        out[count++] = (uint32_t)ai;
    }
    *n_out = count;
done:
    fg_free(items);
    if (ls != stackbuf)
        fg_free(ls);
    return rc;
}

static int parse_sample(struct dec *d, size_t si, struct fg_profile *profs, size_t n_types)
{
    struct rd r = span_rd(d->samples.v[si]);
    d->loc_ids_s.n = d->values_s.n = d->labels_s.n = 0;
    while (r.p < r.end) {
        uint32_t f, wt;
        struct rd sub;
        int rc = 0;
        if (rd_key(&r, &f, &wt) != 0)
            return corrupt(d, "sample");
        if (f == 1)
            rc = rd_repeated(&r, wt, &d->loc_ids_s);
        else if (f == 2)
            rc = rd_repeated(&r, wt, &d->values_s);
        else if (f == 3)
            rc = wt != WT_LEN || rd_len(&r, &sub) != 0 ? -1 : span_push(&d->labels_s, sub);
        else
            rc = rd_skip(&r, wt);
        if (rc == FG_ENOMEM)
            return nomem(d);
        if (rc)
            return corrupt(d, "sample");
    }
    if (d->values_s.n != n_types)
        return bad(d, "sample[%zu]: %zu values, but the profile has %zu sample types", si,
                   d->values_s.n, n_types);
    size_t nl = d->loc_ids_s.n;
    if (reserve_u32(d, nl + d->labels_s.n + 1) != 0)
        return nomem(d);
    for (size_t k = 0; k < nl; k++) {
        int64_t pos = idmap_find(&d->loc_ids, d->loc_ids_s.v[k]);
        if (pos < 0)
            return bad(d, "sample[%zu].location_id[%zu]: location id %llu not found", si, k,
                       (unsigned long long)d->loc_ids_s.v[k]);
        int32_t li = loc_intern(d, (size_t)pos);
        if (li < 0)
            return nomem(d);
        d->u32_scratch[k] = (uint32_t)li;
    }
    struct fg_stack st = {.n_locations = (uint32_t)nl, .locations = d->u32_scratch};
    int32_t stack = fg_dict_stack(d->p, &st);
    if (stack < 0)
        return nomem(d);
    uint32_t n_attrs = 0;
    int rc = labels_to_attrs(d, si, d->u32_scratch, &n_attrs);
    if (rc)
        return rc;
    for (size_t i = 0; i < n_types; i++) {
        int64_t v = (int64_t)d->values_s.v[i];
        struct fg_sample s = {.stack = (uint32_t)stack,
                              .n_attrs = n_attrs,
                              .n_values = 1,
                              .attrs = d->u32_scratch,
                              .values = &v};
        if (fg_profiles_add_sample(d->p, &profs[i], &s) != 0)
            return nomem(d);
    }
    return 0;
}

/* Profile-level pprof fields with no OTLP slot → attribute indices (appended to out). */
static int profile_attrs(struct dec *d, uint32_t *out, uint32_t *n)
{
    const struct {
        uint64_t idx;
        const char *key;
    } fields[] = {{d->drop_frames, KEY_DROP_FRAMES},
                  {d->keep_frames, KEY_KEEP_FRAMES},
                  {d->doc_url, KEY_DOC_URL}};
    for (size_t k = 0; k < FG_ARRAY_LEN(fields); k++) {
        if (fields[k].idx == 0)
            continue;
        struct span s = d->strings.v[fields[k].idx];
        struct fg_value v = {.kind = FG_VALUE_STRING,
                             .u.s = {(const char *)s.p, (uint32_t)s.len}};
        int32_t a = attr_intern(d, fields[k].key, &v);
        if (a < 0)
            return nomem(d);
        out[(*n)++] = (uint32_t)a;
    }
    if (d->comments.n == 0)
        return 0;
    struct fg_value *items = fg_calloc(d->comments.n, sizeof(*items));
    if (!items)
        return nomem(d);
    for (size_t k = 0; k < d->comments.n; k++) {
        struct span s = d->strings.v[d->comments.v[k]];
        items[k].kind = FG_VALUE_STRING;
        items[k].u.s = (struct fg_bytes){(const char *)s.p, (uint32_t)s.len};
    }
    struct fg_value v = {.kind = FG_VALUE_ARRAY,
                         .u.array = {items, (uint32_t)d->comments.n}};
    int32_t a = attr_intern(d, KEY_COMMENT, &v);
    fg_free(items);
    if (a < 0)
        return nomem(d);
    out[(*n)++] = (uint32_t)a;
    return 0;
}

static struct fg_resource_profiles *find_resource(struct fg_profiles *into,
                                                  const struct fg_pprof_origin *o)
{
    const struct fg_keyvalue *attrs = o ? o->resource_attrs : NULL;
    uint32_t n = o ? o->n_resource_attrs : 0;
    for (uint32_t i = 0; i < into->n_resources; i++) {
        struct fg_resource_profiles *rp = &into->resources[i];
        if (rp->schema_url.len == 0 && rp->resource.n_entity_refs == 0 &&
            rp->resource.dropped_attributes_count == 0 &&
            fg_keyvalues_equal(rp->resource.attrs, rp->resource.n_attrs, attrs, n))
            return rp;
    }
    struct fg_resource res = {.n_attrs = n, .attrs = attrs};
    return fg_profiles_add_resource(into, &res, "", 0);
}

/* Legacy formats google/pprof still reads; named so a user knows what they sent. */
static const char *legacy_format(const uint8_t *data, size_t len)
{
    static const struct {
        const char *prefix, *name;
    } text[] = {
        {"heap profile:", "legacy heap text"},
        {"heap_v2/", "legacy heap text"},
        {"--- heapz", "legacy heap text"},
        {"@ heapz", "legacy heap text"},
        {"--- contention", "legacy contention text"},
        {"--- mutex", "legacy contention text"},
        {"goroutine profile:", "legacy Go debug text"},
        {"threadcreate profile:", "legacy Go debug text"},
        {"--- threadz", "legacy thread text"},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(text); i++) {
        size_t n = strlen(text[i].prefix);
        if (len >= n && memcmp(data, text[i].prefix, n) == 0)
            return text[i].name;
    }
    /* gperftools CPU: header words 0, 3, 0 (version) in 32- or 64-bit, either byte order.
     * A protobuf never starts with a zero byte (field 0 does not exist). */
    if (len >= 12 && data[0] == 0) {
        static const uint8_t w32le[8] = {0, 0, 0, 0, 3, 0, 0, 0};
        static const uint8_t w32be[8] = {0, 0, 0, 0, 0, 0, 0, 3};
        static const uint8_t w64le[16] = {0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
        static const uint8_t w64be[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3};
        if ((len >= 16 && (memcmp(data, w64le, 16) == 0 || memcmp(data, w64be, 16) == 0)) ||
            memcmp(data, w32le, 8) == 0 || memcmp(data, w32be, 8) == 0)
            return "legacy gperftools CPU profile";
    }
    return NULL;
}

static void dec_free(struct dec *d)
{
    fg_free(d->strings.v);
    fg_free(d->sample_types.v);
    fg_free(d->samples.v);
    fg_free(d->mappings.v);
    fg_free(d->locations.v);
    fg_free(d->functions.v);
    fg_free(d->comments.v);
    fg_free(d->str_dict);
    fg_free(d->fns);
    fg_free(d->maps);
    fg_free(d->locs);
    fg_free(d->lines);
    fg_free(d->fn_dict);
    fg_free(d->map_dict);
    fg_free(d->loc_dict);
    fg_free(d->fn_ids.v);
    fg_free(d->map_ids.v);
    fg_free(d->loc_ids.v);
    fg_free(d->loc_ids_s.v);
    fg_free(d->values_s.v);
    fg_free(d->labels_s.v);
    fg_free(d->u32_scratch);
    fg_free(d->line_scratch);
}

/* The resource, a scope of its own and one profile per sample type (types: type, unit
 * pairs); *out is the first profile, and the profiles stay put while samples are added. */
static int add_profiles(struct dec *d, const struct fg_pprof_origin *origin,
                        const uint64_t *types, size_t nt, const uint64_t period_type[2],
                        struct fg_profile **out)
{
    struct fg_keyvalue scope_attrs[2];
    uint32_t n_scope_attrs = 0, pattrs[4], n_pattrs = 0;
    int rc = 0;
    struct fg_value *order = fg_calloc(nt, sizeof(*order));
    struct fg_resource_profiles *rp = find_resource(d->p, origin);
    if (!rp || !order) {
        rc = nomem(d);
        goto fail;
    }
    if (d->default_sample_type != 0) {
        struct span s = d->strings.v[d->default_sample_type];
        scope_attrs[n_scope_attrs++] = (struct fg_keyvalue){
            {KEY_DEFAULT_SAMPLE_TYPE, (uint32_t)strlen(KEY_DEFAULT_SAMPLE_TYPE)},
            {.kind = FG_VALUE_STRING, .u.s = {(const char *)s.p, (uint32_t)s.len}}};
    }
    if (nt > 1) {
        for (size_t i = 0; i < nt; i++)
            order[i] = (struct fg_value){.kind = FG_VALUE_INT, .u.i = (int64_t)i};
        scope_attrs[n_scope_attrs++] = (struct fg_keyvalue){
            {KEY_SAMPLE_TYPE_ORDER, (uint32_t)strlen(KEY_SAMPLE_TYPE_ORDER)},
            {.kind = FG_VALUE_ARRAY, .u.array = {order, (uint32_t)nt}}};
    }
    struct fg_scope scope = {.n_attrs = n_scope_attrs, .attrs = scope_attrs};
    if (origin) {
        scope.name = origin->scope_name;
        scope.version = origin->scope_version;
    }
    struct fg_scope_profiles *sp = fg_profiles_add_scope(d->p, rp, &scope, "", 0);
    if (!sp) {
        rc = nomem(d);
        goto fail;
    }
    if ((rc = profile_attrs(d, pattrs, &n_pattrs)))
        goto fail;
    int32_t ptt = str_dict(d, period_type[0]), ptu = str_dict(d, period_type[1]);
    uint32_t base = sp->n_profiles;
    for (size_t i = 0; i < nt; i++) {
        int32_t t = str_dict(d, types[2 * i]), u = str_dict(d, types[2 * i + 1]);
        struct fg_profile proto = {.sample_type = {(uint32_t)t, (uint32_t)u},
                                   .period_type = {(uint32_t)ptt, (uint32_t)ptu},
                                   .time_unix_nano = (uint64_t)d->time_nanos,
                                   .duration_nano = (uint64_t)d->duration_nanos,
                                   .period = d->period,
                                   .n_attrs = n_pattrs,
                                   .attrs = pattrs};
        if (ptt < 0 || ptu < 0 || t < 0 || u < 0 || !fg_profiles_add_profile(d->p, sp, &proto)) {
            rc = nomem(d);
            goto fail;
        }
    }
    struct fg_profile *profs = &sp->profiles[base];
    if (d->samples.n > 0 && d->samples.n < UINT32_MAX) {
        for (size_t i = 0; i < nt; i++) { /* one allocation instead of doubling */
            profs[i].samples = fg_malloc(d->samples.n * sizeof(*profs[i].samples));
            if (!profs[i].samples) {
                rc = nomem(d);
                goto fail;
            }
            profs[i].cap_samples = (uint32_t)d->samples.n;
        }
    }
    *out = profs;
fail:
    fg_free(order);
    return rc;
}

/* Every string reference outside samples and labels, checked before anything is built. */
static int check_header(struct dec *d, uint64_t period_type[2], uint64_t *types)
{
    int rc = 0;
    if (d->period_type.p && (rc = parse_value_type(d, d->period_type, "period_type", SIZE_MAX,
                                                   &period_type[0], &period_type[1])))
        return rc;
    if ((rc = str_check(d, d->drop_frames, "", SIZE_MAX, "drop_frames")) ||
        (rc = str_check(d, d->keep_frames, "", SIZE_MAX, "keep_frames")) ||
        (rc = str_check(d, d->default_sample_type, "", SIZE_MAX, "default_sample_type")) ||
        (rc = str_check(d, d->doc_url, "", SIZE_MAX, "doc_url")))
        return rc;
    for (size_t k = 0; k < d->comments.n && rc == 0; k++)
        rc = str_check(d, d->comments.v[k], "comment", k, "index");
    for (size_t i = 0; i < d->sample_types.n && rc == 0; i++)
        rc = parse_value_type(d, d->sample_types.v[i], "sample_type", i, &types[2 * i],
                              &types[2 * i + 1]);
    return rc;
}

static int decode_raw(struct dec *d, const uint8_t *data, size_t len,
                      const struct fg_pprof_origin *origin)
{
    uint64_t *types = NULL, period_type[2] = {0, 0};
    struct fg_profile *profs = NULL;
    int rc = parse_top(d, data, len);
    if (rc)
        goto fail;
    if (d->strings.n == 0) { /* an empty profile: index 0 still means "" */
        struct rd empty = {data, data};
        if (span_push(&d->strings, empty) != 0) {
            rc = nomem(d);
            goto fail;
        }
    }
    size_t ns = d->strings.n, nt = d->sample_types.n;
    if (d->strings.v[0].len != 0) {
        rc = bad(d, "string_table[0] must be \"\"");
        goto fail;
    }
    if (nt > UINT32_MAX / 4) {
        rc = bad(d, "too many sample types");
        goto fail;
    }
    d->str_dict = fg_malloc(ns * sizeof(*d->str_dict));
    types = fg_calloc(nt ? nt * 2 : 1, sizeof(*types));
    if (!d->str_dict || !types) {
        rc = nomem(d);
        goto fail;
    }
    for (size_t i = 0; i < ns; i++)
        d->str_dict[i] = -1;
    d->str_dict[0] = 0;

    if ((rc = check_header(d, period_type, types)) || (rc = parse_functions(d)) ||
        (rc = parse_mappings(d)) || (rc = parse_locations(d)))
        goto fail;
    if (nt == 0) {
        if (d->samples.n != 0)
            rc = bad(d, "sample[0]: samples without sample types");
        goto fail; /* nothing to add */
    }
    if ((rc = add_profiles(d, origin, types, nt, period_type, &profs)))
        goto fail;
    for (size_t si = 0; si < d->samples.n && rc == 0; si++)
        rc = parse_sample(d, si, profs, nt);
fail:
    fg_free(types);
    return rc;
}

int fg_pprof_decode(const uint8_t *data, size_t len, size_t max_len,
                    const struct fg_pprof_origin *origin, struct fg_profiles *into,
                    struct fg_err *err)
{
    struct dec d;
    struct fg_buf plain;
    int rc;

    memset(&d, 0, sizeof(d));
    d.p = into;
    d.err = err;
    fg_buf_init(&plain, max_len);
    if (fg_is_gzip(data, len)) {
        rc = fg_gunzip(data, len, &plain, err);
        if (rc != 0) {
            if (rc == FG_ETOOBIG)
                fg_err_set(err, rc, "pprof: decompressed size exceeds %zu bytes", max_len);
            else
                fg_err_prefix(err, "pprof: gzip");
            goto fail;
        }
        data = plain.data;
        len = plain.len;
    } else if (max_len && len > max_len) {
        rc = fg_err_set(err, FG_ETOOBIG, "pprof: size %zu exceeds %zu bytes", len, max_len);
        goto fail;
    }
    const char *legacy = legacy_format(data, len);
    if (legacy) {
        rc = fg_err_set(err, FG_EUNSUPPORTED, "pprof: unsupported pprof format (%s)", legacy);
        goto fail;
    }
    rc = decode_raw(&d, data, len, origin);
fail:
    dec_free(&d);
    fg_buf_free(&plain);
    return rc;
}

/* ==== encoding ==== */

static int put_varint(struct fg_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    return fg_buf_append(b, tmp, n);
}

static int put_key(struct fg_buf *b, uint32_t field, uint32_t wt)
{
    return put_varint(b, ((uint64_t)field << 3) | wt);
}

/* A scalar field, left out at its default (proto3). */
static int put_uint(struct fg_buf *b, uint32_t field, uint64_t v)
{
    if (v == 0)
        return 0;
    int rc = put_key(b, field, WT_VARINT);
    return rc ? rc : put_varint(b, v);
}

static int put_bytes(struct fg_buf *b, uint32_t field, const void *data, size_t len)
{
    int rc = put_key(b, field, WT_LEN);
    if (!rc)
        rc = put_varint(b, len);
    return rc || !len ? rc : fg_buf_append(b, data, len);
}

/* dict index → pprof index/id, valid while gen matches, so nothing is cleared between
 * the pprofs of one encode call. */
struct gmap {
    uint32_t *gen;
    uint32_t *val;
};

struct u32vec {
    uint32_t *v;
    size_t n, cap;
};

static int u32_push(struct u32vec *a, uint32_t x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        uint32_t *bigger = fg_realloc(a->v, cap * sizeof(*bigger));
        if (!bigger)
            return FG_ENOMEM;
        a->v = bigger;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* A string of this pprof that is not a dict string (attribute values, hex ids, label
 * keys we make up); its bytes live in strtab. */
struct lstr {
    uint64_t hash;
    size_t off;
    uint32_t len;
    uint32_t ix;
};

enum {
    K_BUILD_GNU, K_BUILD_GO, K_BUILD_HTL, K_HAS_FUNCTIONS, K_HAS_FILENAMES,
    K_HAS_LINE_NUMBERS, K_HAS_INLINE_FRAMES, K_FOLDED, K_DROP, K_KEEP, K_DOC, K_COMMENT,
    K_COUNT
};

static const char *const enc_keys[K_COUNT] = {
    KEY_BUILD_ID_GNU, KEY_BUILD_ID_GO, KEY_BUILD_ID_HTL, KEY_HAS_FUNCTIONS, KEY_HAS_FILENAMES,
    KEY_HAS_LINE_NUMBERS, KEY_HAS_INLINE_FRAMES, KEY_IS_FOLDED, KEY_DROP_FRAMES,
    KEY_KEEP_FRAMES, KEY_DOC_URL, KEY_COMMENT,
};

struct enc {
    const struct fg_profiles *p;
    uint32_t gen;
    struct gmap strs, fns, maps, locs;
    uint32_t n_strings; /* next pprof string index */
    struct u32vec fn_order, map_order, loc_order;
    struct lstr *lstrs;
    uint32_t n_lstrs, cap_lstrs;
    uint32_t *lslots; /* lstr index + 1; 0 = empty */
    uint32_t lmask;
    /* sections of one pprof, concatenated at the end */
    struct fg_buf head, samples, locs_buf, maps_buf, fns_buf, tail, strtab;
    struct fg_buf msg, sub, packed, out, gz;
    int oom;
    uint32_t key[K_COUNT]; /* dict string index of each key, UINT32_MAX if absent */
};

static int gmap_init(struct gmap *m, uint32_t n)
{
    m->gen = fg_calloc(n ? n : 1, sizeof(*m->gen));
    m->val = fg_malloc((n ? n : 1) * sizeof(*m->val));
    return m->gen && m->val ? 0 : FG_ENOMEM;
}

static void gmap_free(struct gmap *m)
{
    fg_free(m->gen);
    fg_free(m->val);
}

/* The pprof id of dict entry idx (first + order of first use). */
static uint32_t gmap_id(struct enc *e, struct gmap *m, struct u32vec *order, uint32_t idx)
{
    if (m->gen[idx] == e->gen)
        return m->val[idx];
    m->gen[idx] = e->gen;
    m->val[idx] = 1 + (uint32_t)order->n;
    if (u32_push(order, idx) != 0)
        e->oom = 1;
    return m->val[idx];
}

/* Appends a string_table record; returns the offset of its bytes in strtab. */
static size_t strtab_add(struct enc *e, const char *s, size_t len)
{
    if (put_key(&e->strtab, 6, WT_LEN) || put_varint(&e->strtab, len))
        e->oom = 1;
    size_t off = e->strtab.len;
    if (len && fg_buf_append(&e->strtab, s, len))
        e->oom = 1;
    e->n_strings++;
    return off;
}

static uint64_t str_dict_ix(struct enc *e, uint32_t s)
{
    if (s == 0)
        return 0;
    if (e->strs.gen[s] == e->gen)
        return e->strs.val[s];
    struct fg_bytes b = fg_dict_get_string(e->p, s);
    e->strs.gen[s] = e->gen;
    e->strs.val[s] = e->n_strings;
    strtab_add(e, b.ptr, b.len);
    return e->strs.val[s];
}

static int lstr_grow(struct enc *e)
{
    uint32_t cap = e->cap_lstrs ? e->cap_lstrs * 2 : 64;
    struct lstr *bigger = fg_realloc(e->lstrs, cap * sizeof(*bigger));
    uint32_t *slots = fg_calloc((size_t)cap * 2, sizeof(*slots));
    if (!bigger || !slots) {
        if (bigger)
            e->lstrs = bigger;
        fg_free(slots);
        return FG_ENOMEM;
    }
    e->lstrs = bigger;
    e->cap_lstrs = cap;
    fg_free(e->lslots);
    e->lslots = slots;
    e->lmask = cap * 2 - 1;
    for (uint32_t i = 0; i < e->n_lstrs; i++) {
        uint32_t s = (uint32_t)e->lstrs[i].hash & e->lmask;
        while (e->lslots[s])
            s = (s + 1) & e->lmask;
        e->lslots[s] = i + 1;
    }
    return 0;
}

/* Index of a string that is not (known to be) in the dictionary. */
static uint64_t str_lit_ix(struct enc *e, const char *s, size_t len)
{
    if (len == 0)
        return 0;
    uint64_t h = fg_hash_bytes(0x7070726f66ULL, s, len);
    if (e->n_lstrs == e->cap_lstrs && lstr_grow(e) != 0) {
        e->oom = 1;
        return 0;
    }
    uint32_t slot = (uint32_t)h & e->lmask;
    for (; e->lslots[slot]; slot = (slot + 1) & e->lmask) {
        const struct lstr *l = &e->lstrs[e->lslots[slot] - 1];
        if (l->hash == h && l->len == len && memcmp(e->strtab.data + l->off, s, len) == 0)
            return l->ix;
    }
    struct lstr *l = &e->lstrs[e->n_lstrs];
    l->hash = h;
    l->len = (uint32_t)len;
    l->ix = e->n_strings;
    l->off = strtab_add(e, s, len);
    e->lslots[slot] = ++e->n_lstrs;
    return l->ix;
}

static uint64_t str_val_ix(struct enc *e, const struct fg_value *v)
{
    return v->kind == FG_VALUE_STRING ? str_lit_ix(e, v->u.s.ptr, v->u.s.len) : 0;
}

static void enc_reset(struct enc *e)
{
    if (++e->gen == 0) { /* wrapped: stale marks could match again */
        e->gen = 1;
        memset(e->strs.gen, 0, fg_dict_len(e->p, FG_TABLE_STRING) * sizeof(uint32_t));
        memset(e->fns.gen, 0, fg_dict_len(e->p, FG_TABLE_FUNCTION) * sizeof(uint32_t));
        memset(e->maps.gen, 0, fg_dict_len(e->p, FG_TABLE_MAPPING) * sizeof(uint32_t));
        memset(e->locs.gen, 0, fg_dict_len(e->p, FG_TABLE_LOCATION) * sizeof(uint32_t));
    }
    e->fn_order.n = e->map_order.n = e->loc_order.n = 0;
    e->head.len = e->samples.len = e->locs_buf.len = e->maps_buf.len = e->fns_buf.len = 0;
    e->tail.len = e->strtab.len = e->out.len = e->gz.len = 0;
    e->n_strings = 0;
    if (e->lslots)
        memset(e->lslots, 0, ((size_t)e->lmask + 1) * sizeof(uint32_t));
    e->n_lstrs = 0;
    strtab_add(e, "", 0); /* string_table[0] == "" */
}

static void enc_free(struct enc *e)
{
    gmap_free(&e->strs);
    gmap_free(&e->fns);
    gmap_free(&e->maps);
    gmap_free(&e->locs);
    fg_free(e->fn_order.v);
    fg_free(e->map_order.v);
    fg_free(e->loc_order.v);
    fg_free(e->lstrs);
    fg_free(e->lslots);
    struct fg_buf *bufs[] = {&e->head, &e->samples, &e->locs_buf, &e->maps_buf, &e->fns_buf,
                             &e->tail, &e->strtab, &e->msg, &e->sub, &e->packed, &e->out,
                             &e->gz};
    for (size_t i = 0; i < FG_ARRAY_LEN(bufs); i++)
        fg_buf_free(bufs[i]);
}

static int enc_init(struct enc *e, const struct fg_profiles *p)
{
    memset(e, 0, sizeof(*e));
    e->p = p;
    int rc = gmap_init(&e->strs, fg_dict_len(p, FG_TABLE_STRING));
    if (!rc)
        rc = gmap_init(&e->fns, fg_dict_len(p, FG_TABLE_FUNCTION));
    if (!rc)
        rc = gmap_init(&e->maps, fg_dict_len(p, FG_TABLE_MAPPING));
    if (!rc)
        rc = gmap_init(&e->locs, fg_dict_len(p, FG_TABLE_LOCATION));
    if (!rc)
        rc = lstr_grow(e);
    if (rc)
        return rc;
    /* one pass over the strings finds the attribute keys we read */
    for (int k = 0; k < K_COUNT; k++)
        e->key[k] = UINT32_MAX;
    uint32_t n = fg_dict_len(p, FG_TABLE_STRING);
    for (uint32_t i = 1; i < n; i++) {
        struct fg_bytes b = fg_dict_get_string(p, i);
        if (b.len < 20 || (b.ptr[0] != 'p'))
            continue;
        for (int k = 0; k < K_COUNT; k++)
            if (e->key[k] == UINT32_MAX && strlen(enc_keys[k]) == b.len &&
                memcmp(enc_keys[k], b.ptr, b.len) == 0)
                e->key[k] = i;
    }
    return 0;
}

static int key_of(const struct enc *e, uint32_t key)
{
    for (int k = 0; k < K_COUNT; k++)
        if (e->key[k] == key)
            return k;
    return -1;
}

static int64_t sample_weight(const struct fg_sample *s)
{
    if (s->n_values == 0)
        return (int64_t)s->n_timestamps;
    int64_t sum = 0;
    for (uint32_t v = 0; v < s->n_values; v++)
        sum += s->values[v];
    return sum;
}

static bool u32_equal(const uint32_t *a, const uint32_t *b, uint32_t n)
{
    return n == 0 || memcmp(a, b, n * sizeof(*a)) == 0;
}

/* Whether b can be a further column of the pprof that a heads. */
static bool lines_up(const struct fg_profile *a, const struct fg_profile *b)
{
    if (a->n_samples != b->n_samples || a->period != b->period ||
        a->period_type.type != b->period_type.type ||
        a->period_type.unit != b->period_type.unit || a->time_unix_nano != b->time_unix_nano ||
        a->duration_nano != b->duration_nano || a->n_attrs != b->n_attrs ||
        !u32_equal(a->attrs, b->attrs, a->n_attrs))
        return false;
    for (uint32_t j = 0; j < a->n_samples; j++) {
        const struct fg_sample *x = &a->samples[j], *y = &b->samples[j];
        if (x->stack != y->stack || x->link != y->link || x->n_attrs != y->n_attrs ||
            !u32_equal(x->attrs, y->attrs, x->n_attrs))
            return false;
    }
    return true;
}

static int put_value_type(struct enc *e, struct fg_buf *b, uint32_t field,
                          const struct fg_value_type *vt)
{
    e->sub.len = 0;
    int rc = put_uint(&e->sub, 1, str_dict_ix(e, vt->type));
    if (!rc)
        rc = put_uint(&e->sub, 2, str_dict_ix(e, vt->unit));
    return rc ? rc : put_bytes(b, field, e->sub.data, e->sub.len);
}

/* One attribute value as labels on the sample in e->msg: string → str, int → num (+unit),
 * bool/double → str of their text, array → one label per item; bytes and kvlists have no
 * pprof form and are left out. */
static int put_label(struct enc *e, uint64_t key, const struct fg_value *v, uint64_t unit)
{
    struct fg_buf *b = &e->sub;
    b->len = 0;
    int rc = put_uint(b, 1, key);
    switch (v->kind) {
    case FG_VALUE_STRING:
        if (!rc)
            rc = put_uint(b, 2, str_val_ix(e, v));
        break;
    case FG_VALUE_INT:
        if (!rc)
            rc = put_uint(b, 3, (uint64_t)v->u.i);
        if (!rc)
            rc = put_uint(b, 4, unit);
        break;
    case FG_VALUE_BOOL:
    case FG_VALUE_DOUBLE: {
        /* no pprof form: their text, which is what a reader would show anyway */
        char text[32];
        int n = v->kind == FG_VALUE_BOOL ? snprintf(text, sizeof(text), "%s",
                                                    v->u.b ? "true" : "false")
                                         : snprintf(text, sizeof(text), "%.17g", v->u.d);
        if (!rc)
            rc = put_uint(b, 2, str_lit_ix(e, text, (size_t)n));
        break;
    }
    case FG_VALUE_ARRAY:
        for (uint32_t i = 0; i < v->u.array.n && rc == 0; i++)
            if (v->u.array.items[i].kind != FG_VALUE_ARRAY)
                rc = put_label(e, key, &v->u.array.items[i], unit);
        return rc;
    default:
        return 0;
    }
    return rc ? rc : put_bytes(&e->msg, 3, b->data, b->len);
}

static int put_hex_label(struct enc *e, const char *key, const uint8_t *id, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char hex[32];
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[id[i] >> 4];
        hex[2 * i + 1] = digits[id[i] & 15];
    }
    struct fg_buf *b = &e->sub;
    b->len = 0;
    int rc = put_uint(b, 1, str_lit_ix(e, key, strlen(key)));
    if (!rc)
        rc = put_uint(b, 2, str_lit_ix(e, hex, 2 * n));
    return rc ? rc : put_bytes(&e->msg, 3, b->data, b->len);
}

static int put_sample(struct enc *e, const struct fg_profile *const *cols, uint32_t ncols,
                      uint32_t j)
{
    const struct fg_sample *s = &cols[0]->samples[j];
    int rc = 0;
    e->msg.len = 0;
    if (s->stack != 0) {
        const struct fg_stack *st = fg_dict_get_stack(e->p, s->stack);
        e->packed.len = 0;
        for (uint32_t k = 0; k < st->n_locations && rc == 0; k++)
            rc = put_varint(&e->packed,
                            gmap_id(e, &e->locs, &e->loc_order, st->locations[k]));
        if (!rc && st->n_locations)
            rc = put_bytes(&e->msg, 1, e->packed.data, e->packed.len);
    }
    e->packed.len = 0;
    for (uint32_t c = 0; c < ncols && rc == 0; c++)
        rc = put_varint(&e->packed, (uint64_t)sample_weight(&cols[c]->samples[j]));
    if (!rc)
        rc = put_bytes(&e->msg, 2, e->packed.data, e->packed.len);
    for (uint32_t k = 0; k < s->n_attrs && rc == 0; k++) {
        const struct fg_attribute *a = fg_dict_get_attribute(e->p, s->attrs[k]);
        rc = put_label(e, str_dict_ix(e, a->key), &a->value, str_dict_ix(e, a->unit));
    }
    if (s->link != 0 && rc == 0) {
        const struct fg_link *l = fg_dict_get_link(e->p, s->link);
        rc = put_hex_label(e, "trace_id", l->trace_id, sizeof(l->trace_id));
        if (!rc)
            rc = put_hex_label(e, "span_id", l->span_id, sizeof(l->span_id));
    }
    return rc ? rc : put_bytes(&e->samples, 2, e->msg.data, e->msg.len);
}

static bool attr_true(const struct fg_attribute *a)
{
    return a->value.kind == FG_VALUE_BOOL ? a->value.u.b
           : a->value.kind == FG_VALUE_STRING
               ? a->value.u.s.len == 4 && memcmp(a->value.u.s.ptr, "true", 4) == 0
               : a->value.kind == FG_VALUE_INT && a->value.u.i != 0;
}

static int put_location(struct enc *e, uint32_t id, uint32_t idx)
{
    const struct fg_location *l = fg_dict_get_location(e->p, idx);
    bool folded = false;
    for (uint32_t k = 0; k < l->n_attrs; k++) {
        const struct fg_attribute *a = fg_dict_get_attribute(e->p, l->attrs[k]);
        if (key_of(e, a->key) == K_FOLDED)
            folded = attr_true(a);
    }
    e->msg.len = 0;
    int rc = put_uint(&e->msg, 1, id);
    if (!rc && l->mapping)
        rc = put_uint(&e->msg, 2, gmap_id(e, &e->maps, &e->map_order, l->mapping));
    if (!rc)
        rc = put_uint(&e->msg, 3, l->address);
    for (uint32_t k = 0; k < l->n_lines && rc == 0; k++) {
        const struct fg_line *ln = &l->lines[k];
        e->sub.len = 0;
        if (ln->function)
            rc = put_uint(&e->sub, 1, gmap_id(e, &e->fns, &e->fn_order, ln->function));
        if (!rc)
            rc = put_uint(&e->sub, 2, (uint64_t)ln->line);
        if (!rc)
            rc = put_uint(&e->sub, 3, (uint64_t)ln->column);
        if (!rc)
            rc = put_bytes(&e->msg, 4, e->sub.data, e->sub.len);
    }
    if (!rc)
        rc = put_uint(&e->msg, 5, folded);
    return rc ? rc : put_bytes(&e->locs_buf, 4, e->msg.data, e->msg.len);
}

static int put_mapping(struct enc *e, uint32_t id, uint32_t idx)
{
    const struct fg_mapping *m = fg_dict_get_mapping(e->p, idx);
    const struct fg_value *build[3] = {NULL, NULL, NULL};
    bool has[4] = {false, false, false, false};
    for (uint32_t k = 0; k < m->n_attrs; k++) {
        const struct fg_attribute *a = fg_dict_get_attribute(e->p, m->attrs[k]);
        int which = key_of(e, a->key);
        if (which >= K_BUILD_GNU && which <= K_BUILD_HTL)
            build[which - K_BUILD_GNU] = &a->value;
        else if (which >= K_HAS_FUNCTIONS && which <= K_HAS_INLINE_FRAMES)
            has[which - K_HAS_FUNCTIONS] = attr_true(a);
    }
    /* pprof has one build id; the GNU one is what pprof tools match binaries by */
    const struct fg_value *bid = build[0] ? build[0] : build[1] ? build[1] : build[2];
    e->msg.len = 0;
    int rc = put_uint(&e->msg, 1, id);
    if (!rc)
        rc = put_uint(&e->msg, 2, m->memory_start);
    if (!rc)
        rc = put_uint(&e->msg, 3, m->memory_limit);
    if (!rc)
        rc = put_uint(&e->msg, 4, m->file_offset);
    if (!rc)
        rc = put_uint(&e->msg, 5, str_dict_ix(e, m->filename));
    if (!rc && bid)
        rc = put_uint(&e->msg, 6, str_val_ix(e, bid));
    for (int k = 0; k < 4 && rc == 0; k++)
        rc = put_uint(&e->msg, 7 + (uint32_t)k, has[k]);
    return rc ? rc : put_bytes(&e->maps_buf, 3, e->msg.data, e->msg.len);
}

static int put_function(struct enc *e, uint32_t id, uint32_t idx)
{
    const struct fg_function *f = fg_dict_get_function(e->p, idx);
    e->msg.len = 0;
    int rc = put_uint(&e->msg, 1, id);
    if (!rc)
        rc = put_uint(&e->msg, 2, str_dict_ix(e, f->name));
    if (!rc)
        rc = put_uint(&e->msg, 3, str_dict_ix(e, f->system_name));
    if (!rc)
        rc = put_uint(&e->msg, 4, str_dict_ix(e, f->filename));
    if (!rc)
        rc = put_uint(&e->msg, 5, (uint64_t)f->start_line);
    return rc ? rc : put_bytes(&e->fns_buf, 5, e->msg.data, e->msg.len);
}

struct comment {
    int64_t order;
    const struct fg_value *v;
};

static int comment_cmp(const void *a, const void *b)
{
    const struct comment *x = a, *y = b;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Parses the <i> of "pprof.profile.comment.<i>" (contrib's form); -1 if it is not one. */
static int64_t comment_suffix(struct fg_bytes key)
{
    static const char prefix[] = KEY_COMMENT ".";
    size_t n = sizeof(prefix) - 1;
    if (key.len <= n || key.len > n + 9 || memcmp(key.ptr, prefix, n) != 0)
        return -1;
    int64_t v = 0;
    for (size_t i = n; i < key.len; i++) {
        if (key.ptr[i] < '0' || key.ptr[i] > '9')
            return -1;
        v = v * 10 + (key.ptr[i] - '0');
    }
    return v;
}

/* The profile header fields from the profile attributes, the scope and the first column. */
static int put_tail(struct enc *e, const struct fg_scope_profiles *sp,
                    const struct fg_profile *const *cols, uint32_t ncols)
{
    const struct fg_profile *h = cols[0];
    struct fg_buf *t = &e->tail;
    const struct fg_value *drop = NULL, *keep = NULL, *doc = NULL;
    struct comment stackbuf[16], *comments = stackbuf;
    size_t n_comments = 0, cap_comments = FG_ARRAY_LEN(stackbuf);
    int rc = 0;

    for (uint32_t k = 0; k < h->n_attrs && rc == 0; k++) {
        const struct fg_attribute *a = fg_dict_get_attribute(e->p, h->attrs[k]);
        int which = key_of(e, a->key);
        int64_t order = -1;
        if (which == K_DROP)
            drop = &a->value;
        else if (which == K_KEEP)
            keep = &a->value;
        else if (which == K_DOC)
            doc = &a->value;
        else if (which != K_COMMENT &&
                 (order = comment_suffix(fg_dict_get_string(e->p, a->key))) < 0)
            continue;
        if (which != K_COMMENT && order < 0)
            continue;
        /* the array form first, in its order; then the numbered ones by number */
        const struct fg_value *items = &a->value;
        uint32_t n = 1;
        if (a->value.kind == FG_VALUE_ARRAY) {
            items = a->value.u.array.items;
            n = a->value.u.array.n;
        }
        for (uint32_t i = 0; i < n; i++) {
            if (n_comments == cap_comments) {
                size_t cap = cap_comments * 2;
                struct comment *bigger = fg_malloc(cap * sizeof(*bigger));
                if (!bigger) {
                    rc = FG_ENOMEM;
                    break;
                }
                memcpy(bigger, comments, n_comments * sizeof(*bigger));
                if (comments != stackbuf)
                    fg_free(comments);
                comments = bigger;
                cap_comments = cap;
            }
            comments[n_comments++] =
                (struct comment){order < 0 ? (int64_t)i - ((int64_t)1 << 40) : order, &items[i]};
        }
    }
    if (rc)
        goto done;
    qsort(comments, n_comments, sizeof(*comments), comment_cmp);

    if (drop)
        rc = put_uint(t, 7, str_val_ix(e, drop));
    if (!rc && keep)
        rc = put_uint(t, 8, str_val_ix(e, keep));
    if (!rc)
        rc = put_uint(t, 9, h->time_unix_nano);
    if (!rc)
        rc = put_uint(t, 10, h->duration_nano);
    if (!rc && (h->period_type.type || h->period_type.unit))
        rc = put_value_type(e, t, 11, &h->period_type);
    if (!rc)
        rc = put_uint(t, 12, (uint64_t)h->period);
    if (!rc && n_comments) {
        e->packed.len = 0;
        for (size_t i = 0; i < n_comments && rc == 0; i++)
            rc = put_varint(&e->packed, str_val_ix(e, comments[i].v));
        if (!rc)
            rc = put_bytes(t, 13, e->packed.data, e->packed.len);
    }
    /* default_sample_type only when it names a column here: pprof tools reject others */
    for (uint32_t k = 0; k < sp->scope.n_attrs && rc == 0; k++) {
        const struct fg_keyvalue *kv = &sp->scope.attrs[k];
        if (kv->key.len != strlen(KEY_DEFAULT_SAMPLE_TYPE) ||
            memcmp(kv->key.ptr, KEY_DEFAULT_SAMPLE_TYPE, kv->key.len) != 0 ||
            kv->value.kind != FG_VALUE_STRING)
            continue;
        for (uint32_t c = 0; c < ncols; c++) {
            struct fg_bytes tn = fg_dict_get_string(e->p, cols[c]->sample_type.type);
            if (tn.len == kv->value.u.s.len &&
                (tn.len == 0 || memcmp(tn.ptr, kv->value.u.s.ptr, tn.len) == 0)) {
                rc = put_uint(t, 14, str_dict_ix(e, cols[c]->sample_type.type));
                break;
            }
        }
    }
    if (!rc && doc)
        rc = put_uint(t, 15, str_val_ix(e, doc));
done:
    if (comments != stackbuf)
        fg_free(comments);
    return rc;
}

/* Reorders cols by the scope's pprof.scope.sample_type_order when it describes them. */
static void apply_order(const struct fg_scope_profiles *sp, uint32_t *cols, uint32_t ncols)
{
    for (uint32_t k = 0; k < sp->scope.n_attrs; k++) {
        const struct fg_keyvalue *kv = &sp->scope.attrs[k];
        if (kv->key.len != strlen(KEY_SAMPLE_TYPE_ORDER) ||
            memcmp(kv->key.ptr, KEY_SAMPLE_TYPE_ORDER, kv->key.len) != 0 ||
            kv->value.kind != FG_VALUE_ARRAY || kv->value.u.array.n != ncols || ncols > 64)
            continue;
        uint32_t sorted[64];
        uint64_t seen = 0;
        for (uint32_t i = 0; i < ncols; i++) {
            const struct fg_value *v = &kv->value.u.array.items[i];
            if (v->kind != FG_VALUE_INT || v->u.i < 0 || v->u.i >= (int64_t)ncols ||
                (seen >> v->u.i) & 1)
                return;
            seen |= (uint64_t)1 << v->u.i;
            sorted[v->u.i] = cols[i];
        }
        memcpy(cols, sorted, ncols * sizeof(*cols));
        return;
    }
}

static int encode_group(struct enc *e, const struct fg_resource_profiles *rp,
                        const struct fg_scope_profiles *sp, uint32_t *cols, uint32_t ncols,
                        bool gzip, fg_pprof_emit emit, void *ctx, struct fg_err *err)
{
    const struct fg_profile *stackcols[16], **pc = stackcols;
    int rc = 0;
    apply_order(sp, cols, ncols);
    if (ncols > FG_ARRAY_LEN(stackcols) && !(pc = fg_malloc(ncols * sizeof(*pc))))
        return fg_err_set(err, FG_ENOMEM, "pprof: out of memory");
    for (uint32_t c = 0; c < ncols; c++)
        pc[c] = &sp->profiles[cols[c]];

    enc_reset(e);
    for (uint32_t c = 0; c < ncols && rc == 0; c++)
        rc = put_value_type(e, &e->head, 1, &pc[c]->sample_type);
    for (uint32_t j = 0; j < pc[0]->n_samples && rc == 0; j++)
        rc = put_sample(e, pc, ncols, j);
    /* locations add mappings and functions as they go; those add only strings */
    for (size_t k = 0; k < e->loc_order.n && rc == 0; k++)
        rc = put_location(e, (uint32_t)k + 1, e->loc_order.v[k]);
    for (size_t k = 0; k < e->map_order.n && rc == 0; k++)
        rc = put_mapping(e, (uint32_t)k + 1, e->map_order.v[k]);
    for (size_t k = 0; k < e->fn_order.n && rc == 0; k++)
        rc = put_function(e, (uint32_t)k + 1, e->fn_order.v[k]);
    if (!rc)
        rc = put_tail(e, sp, pc, ncols);
    const struct fg_buf *parts[] = {&e->head, &e->samples, &e->maps_buf, &e->locs_buf,
                                    &e->fns_buf, &e->strtab, &e->tail};
    for (size_t i = 0; i < FG_ARRAY_LEN(parts) && rc == 0; i++)
        if (parts[i]->len)
            rc = fg_buf_append(&e->out, parts[i]->data, parts[i]->len);
    if (!rc && e->oom)
        rc = FG_ENOMEM;
    if (!rc && gzip)
        rc = fg_gzip(e->out.data, e->out.len, 1, &e->gz); /* BestSpeed, as runtime/pprof */
    if (rc) {
        rc = fg_err_set(err, rc, "pprof: encoding: %s", fg_strerror(rc));
        goto done;
    }
    struct fg_pprof_group g = {rp, sp, cols, ncols};
    const struct fg_buf *data = gzip ? &e->gz : &e->out;
    rc = emit(ctx, &g, data->data, data->len, err);
done:
    if (pc != stackcols)
        fg_free(pc);
    return rc;
}

static bool has_type(const struct fg_scope_profiles *sp, const uint32_t *cols, uint32_t ncols,
                     const struct fg_profile *prof)
{
    for (uint32_t c = 0; c < ncols; c++) {
        const struct fg_profile *q = &sp->profiles[cols[c]];
        if (q->sample_type.type == prof->sample_type.type &&
            q->sample_type.unit == prof->sample_type.unit)
            return true;
    }
    return false;
}

int fg_pprof_encode(const struct fg_profiles *p, bool gzip, fg_pprof_emit emit, void *ctx,
                    struct fg_err *err)
{
    struct enc e;
    uint32_t *cols = NULL;
    uint32_t cap_cols = 0;
    int rc = enc_init(&e, p);
    if (rc) {
        rc = fg_err_set(err, rc, "pprof: out of memory");
        goto fail;
    }
    for (uint32_t r = 0; r < p->n_resources; r++) {
        const struct fg_resource_profiles *rp = &p->resources[r];
        for (uint32_t s = 0; s < rp->n_scopes; s++) {
            const struct fg_scope_profiles *sp = &rp->scopes[s];
            if (sp->n_profiles > cap_cols) {
                uint32_t *bigger = fg_realloc(cols, sp->n_profiles * sizeof(*cols));
                if (!bigger) {
                    rc = fg_err_set(err, FG_ENOMEM, "pprof: out of memory");
                    goto fail;
                }
                cols = bigger;
                cap_cols = sp->n_profiles;
            }
            /* runs of profiles that line up, each sample type once, become one pprof */
            for (uint32_t i = 0; i < sp->n_profiles;) {
                uint32_t n = 0;
                cols[n++] = i;
                uint32_t j = i + 1;
                while (j < sp->n_profiles && lines_up(&sp->profiles[i], &sp->profiles[j]) &&
                       !has_type(sp, cols, n, &sp->profiles[j]))
                    cols[n++] = j++;
                if ((rc = encode_group(&e, rp, sp, cols, n, gzip, emit, ctx, err)) != 0)
                    goto fail;
                i = j;
            }
        }
    }
fail:
    fg_free(cols);
    enc_free(&e);
    return rc;
}

/* ==== original_payload ==== */

static int attach_emit(void *ctx, const struct fg_pprof_group *g, const uint8_t *data,
                       size_t len, struct fg_err *err)
{
    struct fg_profiles *p = ctx;
    struct fg_arena *arena = fg_profiles_arena(p);
    char *copy = fg_arena_memdup(arena, data, len);
    char *format = fg_arena_strndup(arena, "pprof", 5);
    if (!copy || !format)
        return fg_err_set(err, FG_ENOMEM, "pprof: out of memory");
    /* the caller owns p exclusively (see the header), so its profiles may change */
    struct fg_scope_profiles *sp = (struct fg_scope_profiles *)g->scope;
    for (uint32_t c = 0; c < g->n_profiles; c++) {
        struct fg_profile *prof = &sp->profiles[g->profiles[c]];
        if (prof->original_payload.len != 0)
            continue; /* the producer's own payload wins */
        prof->original_payload = (struct fg_bytes){copy, (uint32_t)len};
        prof->original_payload_format = (struct fg_bytes){format, 5};
    }
    return 0;
}

int fg_pprof_attach_original_payload(struct fg_profiles *p, struct fg_err *err)
{
    return fg_pprof_encode(p, true, attach_emit, p, err);
}

int fg_pprof_copy_with_original_payload(const struct fg_profiles *src, struct fg_profiles **out,
                                        struct fg_err *err)
{
    struct fg_profiles *copy = NULL;
    *out = NULL;
    int rc = fg_profiles_new(&copy);
    if (rc != 0)
        return fg_err_set(err, rc, "pprof: out of memory");
    rc = fg_profiles_merge(copy, src, err);
    if (rc == 0)
        rc = fg_pprof_attach_original_payload(copy, err);
    if (rc != 0) {
        fg_profiles_unref(copy);
        return rc;
    }
    memcpy(copy->tenant, src->tenant, sizeof(copy->tenant));
    *out = copy;
    return 0;
}
