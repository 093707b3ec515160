/* OTLP profiles protobuf decoder: reads the wire format straight into the model, checking
 * every index against its table and every [0] entry against the zero value. No
 * intermediate message structs: the dictionary's entries are located in one scan, then
 * interned table by table in dependency order, then the resources are walked. */
#include "fg_otlp.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_arena.h"

/* ---- wire reading ---- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

struct span {
    const uint8_t *p;
    const uint8_t *end;
};

static inline int rd_varint(struct span *r, uint64_t *out)
{
    const uint8_t *p = r->p;
    if (p < r->end && *p < 0x80) { /* the common one-byte case */
        *out = *p;
        r->p = p + 1;
        return 0;
    }
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && p < r->end; shift += 7) {
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *out = v;
            r->p = p;
            return 0;
        }
    }
    return -1;
}

static inline int rd_fixed64(struct span *r, uint64_t *out)
{
    if (r->end - r->p < 8)
        return -1;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | r->p[i];
    r->p += 8;
    *out = v;
    return 0;
}

static inline int rd_len(struct span *r, struct span *out)
{
    uint64_t len;
    if (rd_varint(r, &len) || len > (uint64_t)(r->end - r->p))
        return -1;
    out->p = r->p;
    out->end = r->p + len;
    r->p += len;
    return 0;
}

static int rd_skip(struct span *r, uint32_t wt)
{
    uint64_t v;
    struct span s;
    switch (wt) {
    case WT_VARINT:
        return rd_varint(r, &v);
    case WT_I64:
        return rd_fixed64(r, &v);
    case WT_LEN:
        return rd_len(r, &s);
    case WT_I32:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 0;
    default: /* groups are not used by any message here */
        return -1;
    }
}

/* Reads the next key; 1 = got one, 0 = end of message, -1 = malformed. */
static inline int rd_key(struct span *r, uint32_t *field, uint32_t *wt)
{
    if (r->p >= r->end)
        return 0;
    uint64_t key;
    if (rd_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
        return -1;
    *field = (uint32_t)(key >> 3);
    *wt = (uint32_t)(key & 7);
    return 1;
}

/* ---- scratch vectors reused across one decode ---- */

struct vec {
    void *items;
    size_t n, cap;
};

static int vec_reserve(struct vec *v, size_t extra, size_t elem)
{
    if (v->cap - v->n >= extra)
        return 0;
    size_t cap = v->cap ? v->cap : 16;
    while (cap - v->n < extra)
        cap *= 2;
    void *bigger = fg_realloc(v->items, cap * elem);
    if (!bigger)
        return FG_ENOMEM;
    v->items = bigger;
    v->cap = cap;
    return 0;
}

#define VEC_PUSH(v, type, value)                                      \
    (vec_reserve((v), 1, sizeof(type)) ? FG_ENOMEM                    \
                                       : (((type *)(v)->items)[(v)->n++] = (value), 0))

/* ---- the decoder ---- */

struct decoder {
    struct fg_profiles *p;
    struct fg_arena *scratch; /* values and lists that die with the decode */
    struct fg_err *err;
    struct vec entries[FG_TABLE_COUNT]; /* struct span per wire dictionary entry */
    uint32_t *map[FG_TABLE_COUNT];      /* wire index → model index */
    struct vec idx;                     /* uint32_t remapped indices */
    struct vec values;                  /* int64_t */
    struct vec stamps;                  /* uint64_t */
    struct vec lines;                   /* struct fg_line */
    struct vec spans;                   /* struct span, for nested repeated messages */
};

static const char *const table_names[FG_TABLE_COUNT] = {
    [FG_TABLE_STRING] = "string_table",       [FG_TABLE_FUNCTION] = "function_table",
    [FG_TABLE_MAPPING] = "mapping_table",     [FG_TABLE_LOCATION] = "location_table",
    [FG_TABLE_LINK] = "link_table",           [FG_TABLE_ATTRIBUTE] = "attribute_table",
    [FG_TABLE_STACK] = "stack_table",
};

static int malformed(struct decoder *dec, const char *what)
{
    return fg_err_set(dec->err, FG_EINVAL,
                      "not a valid ExportProfilesServiceRequest protobuf: malformed %s "
                      "(truncated or corrupt wire data)",
                      what);
}

static int wrong_type(struct decoder *dec, const char *msg, uint32_t field)
{
    return fg_err_set(dec->err, FG_EINVAL,
                      "not a valid ExportProfilesServiceRequest protobuf: %s field %u has the "
                      "wrong wire type",
                      msg, field);
}

static int nomem(struct decoder *dec)
{
    return fg_err_set(dec->err, FG_ENOMEM, "out of memory");
}

static size_t table_len(const struct decoder *dec, enum fg_table t)
{
    return dec->entries[t].n;
}

/* Checks a wire index and returns its model index through out; the field name is only
 * formatted for the error. */
static int ref(struct decoder *dec, enum fg_table t, int64_t idx, uint32_t *out, const char *fmt,
               ...) __attribute__((format(printf, 5, 6)));

static int ref(struct decoder *dec, enum fg_table t, int64_t idx, uint32_t *out, const char *fmt,
               ...)
{
    if (idx >= 0 && (uint64_t)idx < table_len(dec, t)) {
        *out = dec->map[t][idx];
        return 0;
    }
    char field[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(field, sizeof(field), fmt, ap);
    va_end(ap);
    return fg_err_set(dec->err, FG_EINVAL, "%s: index %lld out of range (dictionary.%s has %zu entries)",
                      field, (long long)idx, table_names[t], table_len(dec, t));
}

/* int32 on the wire: a varint whose low 32 bits are the (sign-extended) value. */
static inline int64_t as_int32(uint64_t v)
{
    return (int32_t)(uint32_t)v;
}

/* Appends one int32 index (wt VARINT) or a packed list (wt LEN) to dec->idx, remapped and
 * checked against table t. The field name (printf-style) is formatted only on error. */
static int read_indices(struct decoder *dec, struct span *r, uint32_t wt, enum fg_table t,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int read_indices(struct decoder *dec, struct span *r, uint32_t wt, enum fg_table t,
                        const char *fmt, ...)
{
    struct span list;
    uint64_t v;
    if (wt == WT_VARINT) {
        list.p = r->p;
        if (rd_varint(r, &v))
            return malformed(dec, "index");
        list.end = r->p;
    } else if (wt == WT_LEN) {
        if (rd_len(r, &list))
            return malformed(dec, "packed indices");
    } else {
        return malformed(dec, "index list");
    }
    if (vec_reserve(&dec->idx, (size_t)(list.end - list.p), sizeof(uint32_t)))
        return nomem(dec);
    uint32_t *out = dec->idx.items;
    size_t len = table_len(dec, t);
    const uint32_t *map = dec->map[t];
    while (list.p < list.end) {
        if (rd_varint(&list, &v))
            return malformed(dec, "packed indices");
        int64_t i = as_int32(v);
        if (i < 0 || (uint64_t)i >= len) {
            char field[192];
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(field, sizeof(field), fmt, ap);
            va_end(ap);
            return fg_err_set(dec->err, FG_EINVAL,
                              "%s[%zu]: index %lld out of range (dictionary.%s has %zu entries)",
                              field, dec->idx.n, (long long)i, table_names[t], len);
        }
        out[dec->idx.n++] = map[i];
    }
    return 0;
}

/* Copies dec->idx[from..] into the scratch arena. */
static int take_indices(struct decoder *dec, size_t from, const uint32_t **out, uint32_t *n)
{
    size_t count = dec->idx.n - from;
    *n = (uint32_t)count;
    *out = NULL;
    if (count == 0)
        return 0;
    uint32_t *copy = fg_arena_memdup(dec->scratch, (uint32_t *)dec->idx.items + from,
                                     count * sizeof(uint32_t));
    if (!copy)
        return nomem(dec);
    *out = copy;
    return 0;
}

static struct fg_bytes as_bytes(struct span s)
{
    struct fg_bytes b = {(const char *)s.p, (uint32_t)(s.end - s.p)};
    if (b.len == 0)
        b.ptr = "";
    return b;
}

/* The string of a wire string index; the field name is formatted only on error. */
static int str_ref(struct decoder *dec, int64_t idx, uint32_t *out, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int str_ref(struct decoder *dec, int64_t idx, uint32_t *out, const char *fmt, ...)
{
    if (idx >= 0 && (uint64_t)idx < table_len(dec, FG_TABLE_STRING)) {
        *out = dec->map[FG_TABLE_STRING][idx];
        return 0;
    }
    char field[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(field, sizeof(field), fmt, ap);
    va_end(ap);
    return fg_err_set(dec->err, FG_EINVAL,
                      "%s: index %lld out of range (dictionary.string_table has %zu entries)", field,
                      (long long)idx, table_len(dec, FG_TABLE_STRING));
}

/* ---- values ---- */

/* Where a value sits, kept as numbers and only formatted for an error message. */
enum vpath_kind { VP_ATTRIBUTE_TABLE, VP_RESOURCE, VP_SCOPE };

struct vpath {
    enum vpath_kind kind;
    size_t r, s, i;
};

static const char *vpath_format(const struct vpath *p, char *buf, size_t size)
{
    switch (p->kind) {
    case VP_ATTRIBUTE_TABLE:
        snprintf(buf, size, "dictionary.attribute_table[%zu].value", p->i);
        break;
    case VP_RESOURCE:
        snprintf(buf, size, "resource_profiles[%zu].resource.attributes[%zu]", p->r, p->i);
        break;
    case VP_SCOPE:
        snprintf(buf, size, "resource_profiles[%zu].scope_profiles[%zu].scope.attributes[%zu]",
                 p->r, p->s, p->i);
        break;
    }
    return buf;
}

static int read_keyvalue(struct decoder *dec, struct span m, struct fg_keyvalue *kv, int depth,
                         const struct vpath *where);

static int read_value(struct decoder *dec, struct span m, struct fg_value *v, int depth,
                      const struct vpath *where)
{
    char buf[160];
    memset(v, 0, sizeof(*v));
    if (depth > 32)
        return fg_err_set(dec->err, FG_EINVAL, "%s: values nested too deeply",
                          vpath_format(where, buf, sizeof(buf)));
    uint32_t field, wt;
    int k;
    while ((k = rd_key(&m, &field, &wt)) > 0) {
        uint64_t x;
        struct span s;
        switch (field) {
        case 1: /* string_value */
        case 7: /* bytes_value */
            if (wt != WT_LEN || rd_len(&m, &s))
                return malformed(dec, "AnyValue");
            v->kind = field == 1 ? FG_VALUE_STRING : FG_VALUE_BYTES;
            v->u.s = as_bytes(s);
            break;
        case 2:
        case 3:
        case 8:
            if (wt != WT_VARINT || rd_varint(&m, &x))
                return malformed(dec, "AnyValue");
            if (field == 2) {
                v->kind = FG_VALUE_BOOL;
                v->u.b = x != 0;
            } else if (field == 3) {
                v->kind = FG_VALUE_INT;
                v->u.i = (int64_t)x;
            } else {
                uint32_t si;
                if (as_int32(x) < 0 || (uint64_t)as_int32(x) >= table_len(dec, FG_TABLE_STRING))
                    return str_ref(dec, as_int32(x), &si, "%s.string_value_strindex",
                                   vpath_format(where, buf, sizeof(buf)));
                si = dec->map[FG_TABLE_STRING][as_int32(x)];
                v->kind = FG_VALUE_STRING;
                v->u.s = fg_dict_get_string(dec->p, si);
            }
            break;
        case 4:
            if (wt != WT_I64 || rd_fixed64(&m, &x))
                return malformed(dec, "AnyValue");
            v->kind = FG_VALUE_DOUBLE;
            memcpy(&v->u.d, &x, sizeof(x));
            break;
        case 5:
        case 6: {
            if (wt != WT_LEN || rd_len(&m, &s))
                return malformed(dec, "AnyValue");
            /* count the elements, then read them */
            size_t n = 0;
            struct span c = s;
            uint32_t f2, w2;
            int k2;
            while ((k2 = rd_key(&c, &f2, &w2)) > 0) {
                if (rd_skip(&c, w2))
                    return malformed(dec, "AnyValue list");
                n += f2 == 1 && w2 == WT_LEN;
            }
            if (k2 < 0 || n > UINT32_MAX)
                return malformed(dec, "AnyValue list");
            size_t elem = field == 5 ? sizeof(struct fg_value) : sizeof(struct fg_keyvalue);
            void *items = n ? fg_arena_alloc(dec->scratch, n * elem) : NULL;
            if (n && !items)
                return nomem(dec);
            size_t i = 0;
            while (rd_key(&s, &f2, &w2) > 0) {
                struct span e;
                if (f2 != 1 || w2 != WT_LEN) {
                    rd_skip(&s, w2);
                    continue;
                }
                rd_len(&s, &e);
                int rc = field == 5
                             ? read_value(dec, e, &((struct fg_value *)items)[i], depth + 1, where)
                             : read_keyvalue(dec, e, &((struct fg_keyvalue *)items)[i], depth + 1,
                                             where);
                if (rc)
                    return rc;
                i++;
            }
            if (field == 5) {
                v->kind = FG_VALUE_ARRAY;
                v->u.array.items = items;
                v->u.array.n = (uint32_t)n;
            } else {
                v->kind = FG_VALUE_KVLIST;
                v->u.kvlist.items = items;
                v->u.kvlist.n = (uint32_t)n;
            }
            break;
        }
        default:
            if (rd_skip(&m, wt))
                return malformed(dec, "AnyValue");
        }
    }
    return k < 0 ? malformed(dec, "AnyValue") : 0;
}

static int read_keyvalue(struct decoder *dec, struct span m, struct fg_keyvalue *kv, int depth,
                         const struct vpath *where)
{
    char buf[160];
    memset(kv, 0, sizeof(*kv));
    kv->key.ptr = "";
    bool inline_key = false, indexed_key = false;
    uint32_t field, wt;
    int k;
    while ((k = rd_key(&m, &field, &wt)) > 0) {
        struct span s;
        uint64_t x;
        if (field == 1 && wt == WT_LEN) {
            if (rd_len(&m, &s))
                return malformed(dec, "KeyValue");
            kv->key = as_bytes(s);
            inline_key = kv->key.len > 0;
        } else if (field == 2 && wt == WT_LEN) {
            if (rd_len(&m, &s))
                return malformed(dec, "KeyValue");
            int rc = read_value(dec, s, &kv->value, depth + 1, where);
            if (rc)
                return rc;
        } else if (field == 3 && wt == WT_VARINT) {
            if (rd_varint(&m, &x))
                return malformed(dec, "KeyValue");
            if (as_int32(x) == 0)
                continue;
            uint32_t si;
            if (as_int32(x) < 0 || (uint64_t)as_int32(x) >= table_len(dec, FG_TABLE_STRING))
                return str_ref(dec, as_int32(x), &si, "%s.key_strindex",
                               vpath_format(where, buf, sizeof(buf)));
            si = dec->map[FG_TABLE_STRING][as_int32(x)];
            kv->key = fg_dict_get_string(dec->p, si);
            indexed_key = true;
        } else if (field <= 3) {
            return wrong_type(dec, "KeyValue", field);
        } else if (rd_skip(&m, wt)) {
            return malformed(dec, "KeyValue");
        }
    }
    if (k < 0)
        return malformed(dec, "KeyValue");
    if (inline_key && indexed_key)
        return fg_err_set(dec->err, FG_EINVAL, "%s: both key and key_strindex are set",
                          vpath_format(where, buf, sizeof(buf)));
    return 0;
}

/* A repeated KeyValue field: every element of field `want` in message m. */
static int read_keyvalues(struct decoder *dec, struct span m, uint32_t want,
                          const struct fg_keyvalue **out, uint32_t *n_out, struct vpath where)
{
    size_t n = 0;
    struct span c = m;
    uint32_t field, wt;
    int k;
    while ((k = rd_key(&c, &field, &wt)) > 0) {
        n += field == want && wt == WT_LEN;
        if (rd_skip(&c, wt))
            return malformed(dec, "attributes");
    }
    if (k < 0 || n > UINT32_MAX)
        return malformed(dec, "attributes");
    *out = NULL;
    *n_out = (uint32_t)n;
    if (n == 0)
        return 0;
    struct fg_keyvalue *kvs = fg_arena_alloc(dec->scratch, n * sizeof(*kvs));
    if (!kvs)
        return nomem(dec);
    size_t i = 0;
    while (rd_key(&m, &field, &wt) > 0) {
        struct span s;
        if (field != want || wt != WT_LEN) {
            rd_skip(&m, wt);
            continue;
        }
        rd_len(&m, &s);
        where.i = i;
        int rc = read_keyvalue(dec, s, &kvs[i++], 0, &where);
        if (rc)
            return rc;
    }
    *out = kvs;
    return 0;
}

/* ---- the dictionary ---- */

/* Records where each table entry is; tables may arrive in any order and in several
 * dictionary fields (a repeated singular message merges). */
static int scan_dictionary(struct decoder *dec, struct span m)
{
    static const enum fg_table by_field[8] = {
        0, FG_TABLE_MAPPING, FG_TABLE_LOCATION, FG_TABLE_FUNCTION, FG_TABLE_LINK,
        FG_TABLE_STRING, FG_TABLE_ATTRIBUTE, FG_TABLE_STACK,
    };
    uint32_t field, wt;
    int k;
    while ((k = rd_key(&m, &field, &wt)) > 0) {
        if (field >= 1 && field <= 7) {
            struct span s;
            if (wt != WT_LEN)
                return wrong_type(dec, "ProfilesDictionary", field);
            if (rd_len(&m, &s))
                return malformed(dec, "dictionary");
            if (VEC_PUSH(&dec->entries[by_field[field]], struct span, s))
                return nomem(dec);
        } else if (rd_skip(&m, wt)) {
            return malformed(dec, "dictionary");
        }
    }
    return k < 0 ? malformed(dec, "dictionary") : 0;
}

static int put_mapped(struct decoder *dec, enum fg_table t, size_t i, int32_t idx)
{
    if (idx < 0)
        return fg_err_set(dec->err, idx, "dictionary.%s[%zu]: %s", table_names[t], i,
                          fg_strerror(idx));
    if (i == 0 && idx != 0)
        return fg_err_set(dec->err, FG_EINVAL,
                          "dictionary.%s[0]: must be the zero value (index 0 means unset)",
                          table_names[t]);
    dec->map[t][i] = (uint32_t)idx;
    return 0;
}

/* Reads the varint fields 1..max_field of a small message into f[1..max_field]; unknown
 * fields are skipped. */
static int read_scalars(struct decoder *dec, struct span m, uint64_t f[], uint32_t max_field,
                        const char *msg)
{
    uint32_t field, wt;
    int k;
    while ((k = rd_key(&m, &field, &wt)) > 0) {
        if (field <= max_field) {
            if (wt != WT_VARINT)
                return wrong_type(dec, msg, field);
            if (rd_varint(&m, &f[field]))
                return malformed(dec, msg);
        } else if (rd_skip(&m, wt)) {
            return malformed(dec, msg);
        }
    }
    return k < 0 ? malformed(dec, msg) : 0;
}

static int decode_strings(struct decoder *dec)
{
    const struct span *e = dec->entries[FG_TABLE_STRING].items;
    for (size_t i = 0; i < table_len(dec, FG_TABLE_STRING); i++) {
        int rc = put_mapped(dec, FG_TABLE_STRING, i,
                            fg_dict_string(dec->p, (const char *)e[i].p, (size_t)(e[i].end - e[i].p)));
        if (rc)
            return rc;
    }
    return 0;
}

static int decode_functions(struct decoder *dec)
{
    const struct span *e = dec->entries[FG_TABLE_FUNCTION].items;
    for (size_t i = 0; i < table_len(dec, FG_TABLE_FUNCTION); i++) {
        uint64_t f[5] = {0};
        int rc = read_scalars(dec, e[i], f, 4, "Function");
        if (rc)
            return rc;
        struct fg_function fn = {.start_line = (int64_t)f[4]};
        if ((rc = str_ref(dec, as_int32(f[1]), &fn.name,
                          "dictionary.function_table[%zu].name_strindex", i)) ||
            (rc = str_ref(dec, as_int32(f[2]), &fn.system_name,
                          "dictionary.function_table[%zu].system_name_strindex", i)) ||
            (rc = str_ref(dec, as_int32(f[3]), &fn.filename,
                          "dictionary.function_table[%zu].filename_strindex", i)) ||
            (rc = put_mapped(dec, FG_TABLE_FUNCTION, i, fg_dict_function(dec->p, &fn))))
            return rc;
    }
    return 0;
}

static int decode_attributes(struct decoder *dec)
{
    const struct span *e = dec->entries[FG_TABLE_ATTRIBUTE].items;
    for (size_t i = 0; i < table_len(dec, FG_TABLE_ATTRIBUTE); i++) {
        struct span m = e[i];
        struct fg_attribute a = {0};
        uint64_t key = 0, unit = 0;
        uint32_t field, wt;
        int k, rc;
        while ((k = rd_key(&m, &field, &wt)) > 0) {
            if (field == 1 || field == 3) {
                if (wt != WT_VARINT)
                    return wrong_type(dec, "KeyValueAndUnit", field);
                if (rd_varint(&m, field == 1 ? &key : &unit))
                    return malformed(dec, "KeyValueAndUnit");
            } else if (field == 2) {
                struct span s;
                if (wt != WT_LEN)
                    return wrong_type(dec, "KeyValueAndUnit", field);
                if (rd_len(&m, &s))
                    return malformed(dec, "KeyValueAndUnit");
                struct vpath where = {.kind = VP_ATTRIBUTE_TABLE, .i = i};
                if ((rc = read_value(dec, s, &a.value, 0, &where)))
                    return rc;
            } else if (rd_skip(&m, wt)) {
                return malformed(dec, "KeyValueAndUnit");
            }
        }
        if (k < 0)
            return malformed(dec, "KeyValueAndUnit");
        if ((rc = str_ref(dec, as_int32(key), &a.key,
                          "dictionary.attribute_table[%zu].key_strindex", i)) ||
            (rc = str_ref(dec, as_int32(unit), &a.unit,
                          "dictionary.attribute_table[%zu].unit_strindex", i)) ||
            (rc = put_mapped(dec, FG_TABLE_ATTRIBUTE, i, fg_dict_attribute(dec->p, &a))))
            return rc;
    }
    return 0;
}

static int decode_links(struct decoder *dec)
{
    const struct span *e = dec->entries[FG_TABLE_LINK].items;
    for (size_t i = 0; i < table_len(dec, FG_TABLE_LINK); i++) {
        struct span m = e[i];
        struct fg_link l;
        memset(&l, 0, sizeof(l));
        uint32_t field, wt;
        int k;
        while ((k = rd_key(&m, &field, &wt)) > 0) {
            struct span s;
            if (field == 1 || field == 2) {
                if (wt != WT_LEN)
                    return wrong_type(dec, "Link", field);
                if (rd_len(&m, &s))
                    return malformed(dec, "Link");
                size_t len = (size_t)(s.end - s.p), want = field == 1 ? 16 : 8;
                if (len != 0 && len != want)
                    return fg_err_set(dec->err, FG_EINVAL,
                                      "dictionary.link_table[%zu].%s: must be %zu bytes, got %zu",
                                      i, field == 1 ? "trace_id" : "span_id", want, len);
                memset(field == 1 ? l.trace_id : l.span_id, 0, want);
                if (len)
                    memcpy(field == 1 ? l.trace_id : l.span_id, s.p, len);
            } else if (rd_skip(&m, wt)) {
                return malformed(dec, "Link");
            }
        }
        if (k < 0)
            return malformed(dec, "Link");
        int rc = put_mapped(dec, FG_TABLE_LINK, i, fg_dict_link(dec->p, &l));
        if (rc)
            return rc;
    }
    return 0;
}

static int decode_mappings(struct decoder *dec)
{
    const struct span *e = dec->entries[FG_TABLE_MAPPING].items;
    for (size_t i = 0; i < table_len(dec, FG_TABLE_MAPPING); i++) {
        struct span m = e[i];
        struct fg_mapping mp = {0};
        uint64_t filename = 0;
        dec->idx.n = 0;
        uint32_t field, wt;
        int k, rc;
        while ((k = rd_key(&m, &field, &wt)) > 0) {
            uint64_t *slot = field == 1 ? &mp.memory_start
                           : field == 2 ? &mp.memory_limit
                           : field == 3 ? &mp.file_offset
                           : field == 4 ? &filename
                                        : NULL;
            if (slot) {
                if (wt != WT_VARINT)
                    return wrong_type(dec, "Mapping", field);
                if (rd_varint(&m, slot))
                    return malformed(dec, "Mapping");
            } else if (field == 5) {
                if ((rc = read_indices(dec, &m, wt, FG_TABLE_ATTRIBUTE,
                                       "dictionary.mapping_table[%zu].attribute_indices",
                                       i)))
                    return rc;
            } else if (rd_skip(&m, wt)) {
                return malformed(dec, "Mapping");
            }
        }
        if (k < 0)
            return malformed(dec, "Mapping");
        mp.n_attrs = (uint32_t)dec->idx.n;
        mp.attrs = dec->idx.items;
        if ((rc = str_ref(dec, as_int32(filename), &mp.filename,
                          "dictionary.mapping_table[%zu].filename_strindex", i)) ||
            (rc = put_mapped(dec, FG_TABLE_MAPPING, i, fg_dict_mapping(dec->p, &mp))))
            return rc;
    }
    return 0;
}

static int decode_locations(struct decoder *dec)
{
    const struct span *e = dec->entries[FG_TABLE_LOCATION].items;
    for (size_t i = 0; i < table_len(dec, FG_TABLE_LOCATION); i++) {
        struct span m = e[i];
        struct fg_location loc = {0};
        uint64_t mapping = 0;
        dec->idx.n = 0;
        dec->lines.n = 0;
        uint32_t field, wt;
        int k, rc;
        while ((k = rd_key(&m, &field, &wt)) > 0) {
            if (field == 1 || field == 2) {
                if (wt != WT_VARINT)
                    return wrong_type(dec, "Location", field);
                if (rd_varint(&m, field == 1 ? &mapping : &loc.address))
                    return malformed(dec, "Location");
            } else if (field == 3) {
                struct span s;
                if (wt != WT_LEN)
                    return wrong_type(dec, "Location", field);
                if (rd_len(&m, &s))
                    return malformed(dec, "Location");
                uint64_t f[4] = {0};
                if ((rc = read_scalars(dec, s, f, 3, "Line")))
                    return rc;
                struct fg_line line = {.line = (int64_t)f[2], .column = (int64_t)f[3]};
                if ((rc = ref(dec, FG_TABLE_FUNCTION, as_int32(f[1]), &line.function,
                              "dictionary.location_table[%zu].lines[%zu].function_index", i,
                              dec->lines.n)))
                    return rc;
                if (VEC_PUSH(&dec->lines, struct fg_line, line))
                    return nomem(dec);
            } else if (field == 4) {
                if ((rc = read_indices(dec, &m, wt, FG_TABLE_ATTRIBUTE,
                                       "dictionary.location_table[%zu].attribute_indices",
                                       i)))
                    return rc;
            } else if (rd_skip(&m, wt)) {
                return malformed(dec, "Location");
            }
        }
        if (k < 0)
            return malformed(dec, "Location");
        if ((rc = ref(dec, FG_TABLE_MAPPING, as_int32(mapping), &loc.mapping,
                      "dictionary.location_table[%zu].mapping_index", i)))
            return rc;
        loc.n_lines = (uint32_t)dec->lines.n;
        loc.lines = dec->lines.items;
        loc.n_attrs = (uint32_t)dec->idx.n;
        loc.attrs = dec->idx.items;
        if ((rc = put_mapped(dec, FG_TABLE_LOCATION, i, fg_dict_location(dec->p, &loc))))
            return rc;
    }
    return 0;
}

static int decode_stacks(struct decoder *dec)
{
    const struct span *e = dec->entries[FG_TABLE_STACK].items;
    for (size_t i = 0; i < table_len(dec, FG_TABLE_STACK); i++) {
        struct span m = e[i];
        dec->idx.n = 0;
        uint32_t field, wt;
        int k, rc;
        while ((k = rd_key(&m, &field, &wt)) > 0) {
            if (field == 1) {
                if ((rc = read_indices(dec, &m, wt, FG_TABLE_LOCATION,
                                       "dictionary.stack_table[%zu].location_indices",
                                       i)))
                    return rc;
            } else if (rd_skip(&m, wt)) {
                return malformed(dec, "Stack");
            }
        }
        if (k < 0)
            return malformed(dec, "Stack");
        struct fg_stack st = {(uint32_t)dec->idx.n, dec->idx.items};
        if ((rc = put_mapped(dec, FG_TABLE_STACK, i, fg_dict_stack(dec->p, &st))))
            return rc;
    }
    return 0;
}

static int decode_dictionary(struct decoder *dec)
{
    for (int t = 0; t < FG_TABLE_COUNT; t++) {
        size_t n = table_len(dec, (enum fg_table)t);
        if (n == 0)
            return fg_err_set(dec->err, FG_EINVAL,
                              "dictionary.%s: empty; entry [0] must be present (the zero value)",
                              table_names[t]);
        if (n > INT32_MAX)
            return fg_err_set(dec->err, FG_EINVAL, "dictionary.%s: too many entries",
                              table_names[t]);
        dec->map[t] = fg_arena_alloc(dec->scratch, n * sizeof(uint32_t));
        if (!dec->map[t] || fg_dict_reserve(dec->p, (enum fg_table)t, (uint32_t)n))
            return nomem(dec);
    }
    int rc;
    /* dependency order: what an entry refers to is interned before it */
    if ((rc = decode_strings(dec)) || (rc = decode_functions(dec)) ||
        (rc = decode_attributes(dec)) || (rc = decode_links(dec)) ||
        (rc = decode_mappings(dec)) || (rc = decode_locations(dec)) || (rc = decode_stacks(dec)))
        return rc;
    return 0;
}

/* ---- resources, scopes, profiles, samples ---- */

struct where {
    size_t r, s, p;
};

#define PROFILE_FMT "resource_profiles[%zu].scope_profiles[%zu].profiles[%zu]"

static int read_value_type(struct decoder *dec, struct span m, struct fg_value_type *vt,
                           const struct where *w, const char *name)
{
    uint64_t f[3] = {0};
    int rc = read_scalars(dec, m, f, 2, "ValueType");
    if (rc)
        return rc;
    if ((rc = str_ref(dec, as_int32(f[1]), &vt->type, PROFILE_FMT ".%s.type_strindex", w->r,
                      w->s, w->p, name)))
        return rc;
    return str_ref(dec, as_int32(f[2]), &vt->unit, PROFILE_FMT ".%s.unit_strindex", w->r, w->s,
                   w->p, name);
}

static int decode_sample(struct decoder *dec, struct span m, struct fg_profile *prof,
                         const struct where *w, size_t i)
{
    uint64_t stack = 0, link = 0;
    dec->idx.n = 0;
    dec->values.n = 0;
    dec->stamps.n = 0;
    uint32_t field, wt;
    int k, rc;
    while ((k = rd_key(&m, &field, &wt)) > 0) {
        uint64_t v;
        struct span s;
        switch (field) {
        case 1:
        case 3:
            if (wt != WT_VARINT)
                return wrong_type(dec, "Sample", field);
            if (rd_varint(&m, field == 1 ? &stack : &link))
                return malformed(dec, "Sample");
            break;
        case 2:
            if ((rc = read_indices(dec, &m, wt, FG_TABLE_ATTRIBUTE,
                                   PROFILE_FMT ".samples[%zu].attribute_indices", w->r, w->s,
                                   w->p, i)))
                return rc;
            break;
        case 4:
            if (wt == WT_VARINT) {
                if (rd_varint(&m, &v) || VEC_PUSH(&dec->values, int64_t, (int64_t)v))
                    return malformed(dec, "Sample.values");
            } else if (wt == WT_LEN) {
                if (rd_len(&m, &s) ||
                    vec_reserve(&dec->values, (size_t)(s.end - s.p), sizeof(int64_t)))
                    return malformed(dec, "Sample.values");
                while (s.p < s.end) {
                    if (rd_varint(&s, &v))
                        return malformed(dec, "Sample.values");
                    ((int64_t *)dec->values.items)[dec->values.n++] = (int64_t)v;
                }
            } else {
                return wrong_type(dec, "Sample", field);
            }
            break;
        case 5:
            if (wt == WT_I64) {
                if (rd_fixed64(&m, &v) || VEC_PUSH(&dec->stamps, uint64_t, v))
                    return malformed(dec, "Sample.timestamps_unix_nano");
            } else if (wt == WT_LEN) {
                if (rd_len(&m, &s) || (s.end - s.p) % 8 ||
                    vec_reserve(&dec->stamps, (size_t)(s.end - s.p) / 8, sizeof(uint64_t)))
                    return malformed(dec, "Sample.timestamps_unix_nano");
                uint64_t *stamps = dec->stamps.items;
                while (s.p < s.end) {
                    rd_fixed64(&s, &stamps[dec->stamps.n]); /* length checked above */
                    dec->stamps.n++;
                }
            } else {
                return wrong_type(dec, "Sample", field);
            }
            break;
        default:
            if (rd_skip(&m, wt))
                return malformed(dec, "Sample");
        }
    }
    if (k < 0)
        return malformed(dec, "Sample");
    if (dec->values.n == 0 && dec->stamps.n == 0)
        return fg_err_set(dec->err, FG_EINVAL,
                          PROFILE_FMT ".samples[%zu]: has neither values nor timestamps_unix_nano",
                          w->r, w->s, w->p, i);
    if (dec->values.n && dec->stamps.n && dec->values.n != dec->stamps.n)
        return fg_err_set(dec->err, FG_EINVAL,
                          PROFILE_FMT ".samples[%zu]: %zu values but %zu timestamps_unix_nano "
                          "(must pair up)",
                          w->r, w->s, w->p, i, dec->values.n, dec->stamps.n);
    if (dec->values.n > UINT32_MAX || dec->stamps.n > UINT32_MAX || dec->idx.n > UINT32_MAX)
        return fg_err_set(dec->err, FG_EINVAL, PROFILE_FMT ".samples[%zu]: too many values",
                          w->r, w->s, w->p, i);
    struct fg_sample smp = {
        .n_attrs = (uint32_t)dec->idx.n,
        .n_values = (uint32_t)dec->values.n,
        .n_timestamps = (uint32_t)dec->stamps.n,
        .attrs = dec->idx.items,
        .values = dec->values.items,
        .timestamps = dec->stamps.items,
    };
    if ((rc = ref(dec, FG_TABLE_STACK, as_int32(stack), &smp.stack,
                  PROFILE_FMT ".samples[%zu].stack_index", w->r, w->s, w->p, i)) ||
        (rc = ref(dec, FG_TABLE_LINK, as_int32(link), &smp.link,
                  PROFILE_FMT ".samples[%zu].link_index", w->r, w->s, w->p, i)))
        return rc;
    if ((rc = fg_profiles_add_sample(dec->p, prof, &smp)))
        return nomem(dec);
    return 0;
}

static int decode_profile(struct decoder *dec, struct span m, struct fg_scope_profiles *sp,
                          const struct where *w)
{
    struct fg_profile hdr = {.profile_id.ptr = "", .original_payload_format.ptr = "",
                             .original_payload.ptr = ""};
    size_t first_sample = dec->spans.n, n_samples = 0;
    dec->idx.n = 0;
    uint32_t field, wt;
    int k, rc;
    while ((k = rd_key(&m, &field, &wt)) > 0) {
        struct span s;
        uint64_t v;
        switch (field) {
        case 1:
        case 5:
            if (wt != WT_LEN)
                return wrong_type(dec, "Profile", field);
            if (rd_len(&m, &s))
                return malformed(dec, "Profile");
            if ((rc = read_value_type(dec, s, field == 1 ? &hdr.sample_type : &hdr.period_type, w,
                                      field == 1 ? "sample_type" : "period_type")))
                return rc;
            break;
        case 2: /* samples: read after the header */
            if (wt != WT_LEN)
                return wrong_type(dec, "Profile", field);
            if (rd_len(&m, &s))
                return malformed(dec, "Profile");
            if (VEC_PUSH(&dec->spans, struct span, s))
                return nomem(dec);
            n_samples++;
            break;
        case 3:
            if (wt != WT_I64)
                return wrong_type(dec, "Profile", field);
            if (rd_fixed64(&m, &hdr.time_unix_nano))
                return malformed(dec, "Profile");
            break;
        case 4:
        case 6:
        case 8:
            if (wt != WT_VARINT)
                return wrong_type(dec, "Profile", field);
            if (rd_varint(&m, &v))
                return malformed(dec, "Profile");
            if (field == 4)
                hdr.duration_nano = v;
            else if (field == 6)
                hdr.period = (int64_t)v;
            else
                hdr.dropped_attributes_count = (uint32_t)v;
            break;
        case 7:
        case 9:
        case 10:
            if (wt != WT_LEN)
                return wrong_type(dec, "Profile", field);
            if (rd_len(&m, &s))
                return malformed(dec, "Profile");
            *(field == 7 ? &hdr.profile_id
              : field == 9 ? &hdr.original_payload_format
                           : &hdr.original_payload) = as_bytes(s);
            break;
        case 11:
            if ((rc = read_indices(dec, &m, wt, FG_TABLE_ATTRIBUTE,
                                   PROFILE_FMT ".attribute_indices", w->r, w->s, w->p)))
                return rc;
            break;
        default:
            if (rd_skip(&m, wt))
                return malformed(dec, "Profile");
        }
    }
    if (k < 0)
        return malformed(dec, "Profile");
    if ((rc = take_indices(dec, 0, &hdr.attrs, &hdr.n_attrs)))
        return rc;
    struct fg_profile *prof = fg_profiles_add_profile(dec->p, sp, &hdr);
    if (!prof)
        return nomem(dec);
    if (n_samples > UINT32_MAX)
        return fg_err_set(dec->err, FG_EINVAL, PROFILE_FMT ".samples: too many", w->r, w->s, w->p);
    if (n_samples) {
        prof->samples = fg_malloc(n_samples * sizeof(*prof->samples));
        if (!prof->samples)
            return nomem(dec);
        prof->cap_samples = (uint32_t)n_samples;
    }
    for (size_t i = 0; i < n_samples; i++) {
        struct span s = ((struct span *)dec->spans.items)[first_sample + i];
        if ((rc = decode_sample(dec, s, prof, w, i)))
            return rc;
    }
    dec->spans.n = first_sample;
    return 0;
}

static int read_string_field(struct decoder *dec, struct span *m, uint32_t wt, struct fg_bytes *out,
                             const char *msg, uint32_t field)
{
    struct span s;
    if (wt != WT_LEN)
        return wrong_type(dec, msg, field);
    if (rd_len(m, &s))
        return malformed(dec, msg);
    *out = as_bytes(s);
    return 0;
}

static int decode_entity_refs(struct decoder *dec, struct span m, struct fg_resource *res)
{
    size_t n = 0;
    struct span c = m;
    uint32_t field, wt;
    while (rd_key(&c, &field, &wt) > 0) {
        n += field == 3 && wt == WT_LEN;
        rd_skip(&c, wt);
    }
    res->n_entity_refs = (uint32_t)n;
    if (!n)
        return 0;
    struct fg_entity_ref *refs = fg_arena_calloc(dec->scratch, n * sizeof(*refs));
    if (!refs)
        return nomem(dec);
    size_t i = 0;
    while (rd_key(&m, &field, &wt) > 0) {
        struct span e;
        if (field != 3 || wt != WT_LEN) {
            rd_skip(&m, wt);
            continue;
        }
        rd_len(&m, &e);
        struct fg_entity_ref *r = &refs[i++];
        r->schema_url.ptr = r->type.ptr = "";
        /* two passes over the keys: count, then fill */
        size_t n_ids = 0, n_descs = 0;
        struct span c2 = e;
        uint32_t f2, w2;
        while (rd_key(&c2, &f2, &w2) > 0) {
            n_ids += f2 == 3;
            n_descs += f2 == 4;
            if (rd_skip(&c2, w2))
                return malformed(dec, "EntityRef");
        }
        struct fg_bytes *ids = fg_arena_alloc(dec->scratch, (n_ids + 1) * sizeof(*ids));
        struct fg_bytes *descs = fg_arena_alloc(dec->scratch, (n_descs + 1) * sizeof(*descs));
        if (!ids || !descs)
            return nomem(dec);
        while (rd_key(&e, &f2, &w2) > 0) {
            struct fg_bytes *slot = f2 == 1 ? &r->schema_url
                                  : f2 == 2 ? &r->type
                                  : f2 == 3 ? &ids[r->n_id_keys++]
                                  : f2 == 4 ? &descs[r->n_description_keys++]
                                            : NULL;
            int rc = slot ? read_string_field(dec, &e, w2, slot, "EntityRef", f2)
                          : (rd_skip(&e, w2) ? malformed(dec, "EntityRef") : 0);
            if (rc)
                return rc;
        }
        r->id_keys = ids;
        r->description_keys = descs;
    }
    res->entity_refs = refs;
    return 0;
}

static int decode_scope_profiles(struct decoder *dec, struct span m,
                                 struct fg_resource_profiles *rp, struct where *w)
{
    struct fg_scope scope = {.name.ptr = "", .version.ptr = ""};
    struct fg_bytes url = {"", 0};
    uint32_t field, wt;
    int k, rc;
    struct span c = m;
    while ((k = rd_key(&c, &field, &wt)) > 0) {
        struct span s;
        if (field == 1) {
            if (wt != WT_LEN)
                return wrong_type(dec, "ScopeProfiles", field);
            if (rd_len(&c, &s))
                return malformed(dec, "ScopeProfiles");
            struct span sc = s;
            uint32_t f2, w2;
            uint64_t v;
            while (rd_key(&sc, &f2, &w2) > 0) {
                if (f2 == 1 || f2 == 2) {
                    if ((rc = read_string_field(dec, &sc, w2, f2 == 1 ? &scope.name : &scope.version,
                                                "InstrumentationScope", f2)))
                        return rc;
                } else if (f2 == 4 && w2 == WT_VARINT) {
                    if (rd_varint(&sc, &v))
                        return malformed(dec, "InstrumentationScope");
                    scope.dropped_attributes_count = (uint32_t)v;
                } else if (rd_skip(&sc, w2)) {
                    return malformed(dec, "InstrumentationScope");
                }
            }
            struct vpath where = {.kind = VP_SCOPE, .r = w->r, .s = w->s};
            if ((rc = read_keyvalues(dec, s, 3, &scope.attrs, &scope.n_attrs, where)))
                return rc;
        } else if (field == 3) {
            if ((rc = read_string_field(dec, &c, wt, &url, "ScopeProfiles", field)))
                return rc;
        } else if (rd_skip(&c, wt)) {
            return malformed(dec, "ScopeProfiles");
        }
    }
    if (k < 0)
        return malformed(dec, "ScopeProfiles");
    struct fg_scope_profiles *sp =
        fg_profiles_add_scope(dec->p, rp, &scope, url.ptr, url.len);
    if (!sp)
        return nomem(dec);
    w->p = 0;
    while (rd_key(&m, &field, &wt) > 0) {
        struct span s;
        if (field != 2) {
            rd_skip(&m, wt);
            continue;
        }
        if (wt != WT_LEN)
            return wrong_type(dec, "ScopeProfiles", field);
        rd_len(&m, &s);
        if ((rc = decode_profile(dec, s, sp, w)))
            return rc;
        w->p++;
    }
    return 0;
}

static int decode_resource_profiles(struct decoder *dec, struct span m, size_t r)
{
    struct fg_resource res = {0};
    struct fg_bytes url = {"", 0};
    uint32_t field, wt;
    int k, rc;
    struct span c = m;
    while ((k = rd_key(&c, &field, &wt)) > 0) {
        struct span s;
        if (field == 1) {
            if (wt != WT_LEN)
                return wrong_type(dec, "ResourceProfiles", field);
            if (rd_len(&c, &s))
                return malformed(dec, "ResourceProfiles");
            struct vpath where = {.kind = VP_RESOURCE, .r = r};
            if ((rc = read_keyvalues(dec, s, 1, &res.attrs, &res.n_attrs, where)) ||
                (rc = decode_entity_refs(dec, s, &res)))
                return rc;
            struct span sc = s;
            uint32_t f2, w2;
            uint64_t v;
            while (rd_key(&sc, &f2, &w2) > 0) {
                if (f2 == 2 && w2 == WT_VARINT) {
                    if (rd_varint(&sc, &v))
                        return malformed(dec, "Resource");
                    res.dropped_attributes_count = (uint32_t)v;
                } else if (rd_skip(&sc, w2)) {
                    return malformed(dec, "Resource");
                }
            }
        } else if (field == 3) {
            if ((rc = read_string_field(dec, &c, wt, &url, "ResourceProfiles", field)))
                return rc;
        } else if (rd_skip(&c, wt)) {
            return malformed(dec, "ResourceProfiles");
        }
    }
    if (k < 0)
        return malformed(dec, "ResourceProfiles");
    struct fg_resource_profiles *rp = fg_profiles_add_resource(dec->p, &res, url.ptr, url.len);
    if (!rp)
        return nomem(dec);
    struct where w = {.r = r};
    while (rd_key(&m, &field, &wt) > 0) {
        struct span s;
        if (field != 2) {
            rd_skip(&m, wt);
            continue;
        }
        if (wt != WT_LEN)
            return wrong_type(dec, "ResourceProfiles", field);
        rd_len(&m, &s);
        if ((rc = decode_scope_profiles(dec, s, rp, &w)))
            return rc;
        w.s++;
    }
    return 0;
}

static void decoder_free(struct decoder *dec)
{
    for (int t = 0; t < FG_TABLE_COUNT; t++)
        fg_free(dec->entries[t].items);
    fg_free(dec->idx.items);
    fg_free(dec->values.items);
    fg_free(dec->stamps.items);
    fg_free(dec->lines.items);
    fg_free(dec->spans.items);
    fg_arena_free(dec->scratch);
}

int fg_otlp_decode_proto(const uint8_t *data, size_t len, struct fg_profiles **out,
                         struct fg_err *err)
{
    *out = NULL;
    struct decoder dec = {.err = err};
    struct vec resources = {0};
    int rc = fg_profiles_new(&dec.p);
    if (rc)
        return fg_err_set(err, rc, "out of memory");
    if (fg_arena_new(&dec.scratch) != 0) {
        rc = nomem(&dec);
        goto done;
    }
    /* one scan of the top level: where the resources and the dictionary are */
    struct span top = {data, data + len};
    uint32_t field, wt;
    int k;
    while ((k = rd_key(&top, &field, &wt)) > 0) {
        struct span s;
        if (field == 1 || field == 2) {
            if (wt != WT_LEN) {
                rc = wrong_type(&dec, "ExportProfilesServiceRequest", field);
                goto done;
            }
            if (rd_len(&top, &s)) {
                rc = malformed(&dec, "request");
                goto done;
            }
            if (field == 1)
                rc = VEC_PUSH(&resources, struct span, s) ? nomem(&dec) : 0;
            else
                rc = scan_dictionary(&dec, s);
            if (rc)
                goto done;
        } else if (rd_skip(&top, wt)) {
            rc = malformed(&dec, "request");
            goto done;
        }
    }
    if (k < 0) {
        rc = malformed(&dec, "request");
        goto done;
    }
    if (resources.n == 0)
        goto done; /* an empty request is valid: nothing to check */
    if ((rc = decode_dictionary(&dec)))
        goto done;
    for (size_t r = 0; r < resources.n; r++)
        if ((rc = decode_resource_profiles(&dec, ((struct span *)resources.items)[r], r)))
            goto done;
done:
    fg_free(resources.items);
    decoder_free(&dec);
    if (rc) {
        fg_profiles_unref(dec.p);
        return rc;
    }
    *out = dec.p;
    return 0;
}
