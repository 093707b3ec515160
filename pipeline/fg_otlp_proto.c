/* OTLP profiles protobuf codec: protobuf-c decodes the wire bytes (into an arena), then one
 * checked conversion builds the model; the encoder writes protobuf straight from the model. */
#include "fg_otlp.h"

#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_arena.h"
#include "fg_otlp_pb.h"

/* ---- protobuf-c allocator over an arena ---- */

static void *pb_arena_alloc(void *ctx, size_t size)
{
    return fg_arena_alloc(ctx, size);
}

static void pb_arena_free(void *ctx, void *ptr)
{
    /* arena memory is released all at once */
}

void fg__pb_arena_allocator(struct fg_arena *arena, ProtobufCAllocator *out)
{
    out->alloc = pb_arena_alloc;
    out->free = pb_arena_free;
    out->allocator_data = arena;
}

/* ---- decoding: pb structs → model ---- */

struct decoder {
    struct fg_profiles *p;
    struct fg_arena *scratch; /* temporaries (values, index lists), freed at the end */
    const pb_dictionary *d;
    uint32_t *map[FG_TABLE_COUNT]; /* wire index → model index */
    struct fg_err *err;
};

#define CHECK_INDEX(dec, idx, table_len, table_name, ...)                                       \
    do {                                                                                         \
        if ((idx) < 0 || (size_t)(idx) >= (table_len)) {                                         \
            char field_[160];                                                                    \
            snprintf(field_, sizeof(field_), __VA_ARGS__);                                       \
            return fg_err_set((dec)->err, FG_EINVAL,                                             \
                              "%s: index %lld out of range (%s has %zu entries)", field_,         \
                              (long long)(idx), table_name, (size_t)(table_len));                \
        }                                                                                        \
    } while (0)

static int str_index(struct decoder *dec, int32_t idx, uint32_t *out, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int str_index(struct decoder *dec, int32_t idx, uint32_t *out, const char *fmt, ...)
{
    if (idx < 0 || (size_t)idx >= dec->d->n_string_table) {
        char field[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(field, sizeof(field), fmt, ap);
        va_end(ap);
        return fg_err_set(dec->err, FG_EINVAL,
                          "%s: index %d out of range (dictionary.string_table has %zu entries)",
                          field, idx, dec->d->n_string_table);
    }
    *out = dec->map[FG_TABLE_STRING][idx];
    return 0;
}

/* Copies a wire list of table indices into scratch memory, checked and remapped. The
 * field name (printf-style) is only formatted when there is an error to report. */
static int index_list(struct decoder *dec, enum fg_table table, const int32_t *src, size_t n,
                      size_t table_len, const char *table_name, const uint32_t **out,
                      const char *fmt, ...) __attribute__((format(printf, 8, 9)));

static int index_list(struct decoder *dec, enum fg_table table, const int32_t *src, size_t n,
                      size_t table_len, const char *table_name, const uint32_t **out,
                      const char *fmt, ...)
{
    *out = NULL;
    if (n == 0)
        return 0;
    uint32_t *list = n <= UINT32_MAX ? fg_arena_alloc(dec->scratch, n * sizeof(uint32_t)) : NULL;
    size_t bad = n;
    if (list) {
        const uint32_t *map = dec->map[table];
        for (size_t i = 0; i < n; i++) {
            if (src[i] < 0 || (size_t)src[i] >= table_len) {
                bad = i;
                break;
            }
            list[i] = map[src[i]];
        }
        if (bad == n) {
            *out = list;
            return 0;
        }
    }
    char field[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(field, sizeof(field), fmt, ap);
    va_end(ap);
    if (n > UINT32_MAX)
        return fg_err_set(dec->err, FG_EINVAL, "%s: too many entries", field);
    if (!list)
        return fg_err_set(dec->err, FG_ENOMEM, "out of memory");
    return fg_err_set(dec->err, FG_EINVAL, "%s[%zu]: index %d out of range (%s has %zu entries)",
                      field, bad, src[bad], table_name, table_len);
}

static int convert_value(struct decoder *dec, const pb_any_value *src, struct fg_value *dst,
                         const char *field, int depth);

static int convert_keyvalues(struct decoder *dec, pb_keyvalue *const *src, size_t n,
                             const struct fg_keyvalue **out, uint32_t *n_out, const char *field,
                             int depth)
{
    *out = NULL;
    *n_out = 0;
    if (n == 0)
        return 0;
    if (n > UINT32_MAX)
        return fg_err_set(dec->err, FG_EINVAL, "%s: too many entries", field);
    struct fg_keyvalue *kvs = fg_arena_calloc(dec->scratch, n * sizeof(*kvs));
    if (!kvs)
        return fg_err_set(dec->err, FG_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const pb_keyvalue *kv = src[i];
        char sub[192];
        snprintf(sub, sizeof(sub), "%s[%zu]", field, i);
        if (kv->key_strindex != 0) {
            if (kv->key && kv->key[0])
                return fg_err_set(dec->err, FG_EINVAL, "%s: both key and key_strindex are set",
                                  sub);
            uint32_t k;
            int rc = str_index(dec, kv->key_strindex, &k, "%s.key_strindex", sub);
            if (rc)
                return rc;
            kvs[i].key = fg_dict_get_string(dec->p, k);
        } else {
            kvs[i].key.ptr = kv->key ? kv->key : "";
            kvs[i].key.len = (uint32_t)strlen(kvs[i].key.ptr);
        }
        if (kv->value) {
            snprintf(sub, sizeof(sub), "%s[%zu].value", field, i);
            int rc = convert_value(dec, kv->value, &kvs[i].value, sub, depth + 1);
            if (rc)
                return rc;
        }
    }
    *out = kvs;
    *n_out = (uint32_t)n;
    return 0;
}

static int convert_value(struct decoder *dec, const pb_any_value *src, struct fg_value *dst,
                         const char *field, int depth)
{
    memset(dst, 0, sizeof(*dst));
    if (depth > 32)
        return fg_err_set(dec->err, FG_EINVAL, "%s: values nested too deeply", field);
    switch (src->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        dst->kind = FG_VALUE_STRING;
        dst->u.s.ptr = src->string_value;
        dst->u.s.len = (uint32_t)strlen(src->string_value);
        return 0;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE_STRINDEX: {
        uint32_t k;
        int rc = str_index(dec, src->string_value_strindex, &k, "%s.string_value_strindex", field);
        if (rc)
            return rc;
        dst->kind = FG_VALUE_STRING;
        dst->u.s = fg_dict_get_string(dec->p, k);
        return 0;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        dst->kind = FG_VALUE_BOOL;
        dst->u.b = src->bool_value;
        return 0;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        dst->kind = FG_VALUE_INT;
        dst->u.i = src->int_value;
        return 0;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        dst->kind = FG_VALUE_DOUBLE;
        dst->u.d = src->double_value;
        return 0;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        if (src->bytes_value.len > UINT32_MAX)
            return fg_err_set(dec->err, FG_EINVAL, "%s.bytes_value: too long", field);
        dst->kind = FG_VALUE_BYTES;
        dst->u.s.ptr = (const char *)src->bytes_value.data;
        dst->u.s.len = (uint32_t)src->bytes_value.len;
        if (!dst->u.s.ptr)
            dst->u.s.ptr = "";
        return 0;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE: {
        const pb_array_value *arr = src->array_value;
        dst->kind = FG_VALUE_ARRAY;
        size_t n = arr ? arr->n_values : 0;
        if (n == 0)
            return 0;
        if (n > UINT32_MAX)
            return fg_err_set(dec->err, FG_EINVAL, "%s.array_value: too many entries", field);
        struct fg_value *items = fg_arena_calloc(dec->scratch, n * sizeof(*items));
        if (!items)
            return fg_err_set(dec->err, FG_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            char sub[192];
            snprintf(sub, sizeof(sub), "%s.array_value.values[%zu]", field, i);
            int rc = convert_value(dec, arr->values[i], &items[i], sub, depth + 1);
            if (rc)
                return rc;
        }
        dst->u.array.items = items;
        dst->u.array.n = (uint32_t)n;
        return 0;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE: {
        dst->kind = FG_VALUE_KVLIST;
        if (!src->kvlist_value)
            return 0;
        char sub[192];
        snprintf(sub, sizeof(sub), "%s.kvlist_value.values", field);
        return convert_keyvalues(dec, src->kvlist_value->values, src->kvlist_value->n_values,
                                 &dst->u.kvlist.items, &dst->u.kvlist.n, sub, depth + 1);
    }
    default:
        return 0; /* no oneof member set: the empty value */
    }
}

static int alloc_maps(struct decoder *dec)
{
    const pb_dictionary *d = dec->d;
    const size_t lens[FG_TABLE_COUNT] = {
        [FG_TABLE_STRING] = d->n_string_table,     [FG_TABLE_FUNCTION] = d->n_function_table,
        [FG_TABLE_MAPPING] = d->n_mapping_table,   [FG_TABLE_LOCATION] = d->n_location_table,
        [FG_TABLE_LINK] = d->n_link_table,         [FG_TABLE_ATTRIBUTE] = d->n_attribute_table,
        [FG_TABLE_STACK] = d->n_stack_table,
    };
    static const char *const names[FG_TABLE_COUNT] = {
        "string_table", "function_table", "mapping_table", "location_table",
        "link_table",   "attribute_table", "stack_table",
    };
    for (int t = 0; t < FG_TABLE_COUNT; t++) {
        if (lens[t] == 0)
            return fg_err_set(dec->err, FG_EINVAL,
                              "dictionary.%s: empty; entry [0] must be present (the zero value)",
                              names[t]);
        if (lens[t] > INT32_MAX)
            return fg_err_set(dec->err, FG_EINVAL, "dictionary.%s: too many entries", names[t]);
        dec->map[t] = fg_arena_alloc(dec->scratch, lens[t] * sizeof(uint32_t));
        if (!dec->map[t])
            return fg_err_set(dec->err, FG_ENOMEM, "out of memory");
    }
    return 0;
}

/* Stores the model index of wire entry i; entry [0] must intern to the zero entry. */
static int put_mapped(struct decoder *dec, enum fg_table t, size_t i, int32_t idx,
                      const char *table_name)
{
    if (idx < 0)
        return fg_err_set(dec->err, idx, "dictionary.%s[%zu]: %s", table_name, i, fg_strerror(idx));
    if (i == 0 && idx != 0)
        return fg_err_set(dec->err, FG_EINVAL,
                          "dictionary.%s[0]: must be the zero value (index 0 means unset)",
                          table_name);
    dec->map[t][i] = (uint32_t)idx;
    return 0;
}

static int decode_dictionary(struct decoder *dec)
{
    const pb_dictionary *d = dec->d;
    int rc = alloc_maps(dec);
    if (rc)
        return rc;
    struct fg_profiles *p = dec->p;

    for (size_t i = 0; i < d->n_string_table; i++) {
        const char *s = d->string_table[i] ? d->string_table[i] : "";
        if ((rc = put_mapped(dec, FG_TABLE_STRING, i, fg_dict_string(p, s, strlen(s)),
                             "string_table")))
            return rc;
    }
    for (size_t i = 0; i < d->n_function_table; i++) {
        const pb_function *w = d->function_table[i];
        struct fg_function f = {.start_line = w->start_line};
        if ((rc = str_index(dec, w->name_strindex, &f.name,
                            "dictionary.function_table[%zu].name_strindex", i)) ||
            (rc = str_index(dec, w->system_name_strindex, &f.system_name,
                            "dictionary.function_table[%zu].system_name_strindex", i)) ||
            (rc = str_index(dec, w->filename_strindex, &f.filename,
                            "dictionary.function_table[%zu].filename_strindex", i)))
            return rc;
        if ((rc = put_mapped(dec, FG_TABLE_FUNCTION, i, fg_dict_function(p, &f), "function_table")))
            return rc;
    }
    for (size_t i = 0; i < d->n_attribute_table; i++) {
        const pb_kvu *w = d->attribute_table[i];
        struct fg_attribute a = {0};
        if ((rc = str_index(dec, w->key_strindex, &a.key,
                            "dictionary.attribute_table[%zu].key_strindex", i)) ||
            (rc = str_index(dec, w->unit_strindex, &a.unit,
                            "dictionary.attribute_table[%zu].unit_strindex", i)))
            return rc;
        if (w->value) {
            char field[96] = "";
            if (w->value->value_case > OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE)
                snprintf(field, sizeof(field), "dictionary.attribute_table[%zu].value", i);
            if ((rc = convert_value(dec, w->value, &a.value, field, 0)))
                return rc;
        }
        if ((rc = put_mapped(dec, FG_TABLE_ATTRIBUTE, i, fg_dict_attribute(p, &a),
                             "attribute_table")))
            return rc;
    }
    for (size_t i = 0; i < d->n_link_table; i++) {
        const pb_link *w = d->link_table[i];
        struct fg_link l;
        memset(&l, 0, sizeof(l));
        if (w->trace_id.len != 0 && w->trace_id.len != 16)
            return fg_err_set(dec->err, FG_EINVAL,
                              "dictionary.link_table[%zu].trace_id: must be 16 bytes, got %zu", i,
                              w->trace_id.len);
        if (w->span_id.len != 0 && w->span_id.len != 8)
            return fg_err_set(dec->err, FG_EINVAL,
                              "dictionary.link_table[%zu].span_id: must be 8 bytes, got %zu", i,
                              w->span_id.len);
        if (w->trace_id.len)
            memcpy(l.trace_id, w->trace_id.data, 16);
        if (w->span_id.len)
            memcpy(l.span_id, w->span_id.data, 8);
        if ((rc = put_mapped(dec, FG_TABLE_LINK, i, fg_dict_link(p, &l), "link_table")))
            return rc;
    }
    for (size_t i = 0; i < d->n_mapping_table; i++) {
        const pb_mapping *w = d->mapping_table[i];
        struct fg_mapping m = {
            .memory_start = w->memory_start,
            .memory_limit = w->memory_limit,
            .file_offset = w->file_offset,
            .n_attrs = (uint32_t)w->n_attribute_indices,
        };
        if ((rc = str_index(dec, w->filename_strindex, &m.filename,
                            "dictionary.mapping_table[%zu].filename_strindex", i)) ||
            (rc = index_list(dec, FG_TABLE_ATTRIBUTE, w->attribute_indices,
                             w->n_attribute_indices, d->n_attribute_table,
                             "dictionary.attribute_table", &m.attrs,
                             "dictionary.mapping_table[%zu].attribute_indices", i)))
            return rc;
        if ((rc = put_mapped(dec, FG_TABLE_MAPPING, i, fg_dict_mapping(p, &m), "mapping_table")))
            return rc;
    }
    for (size_t i = 0; i < d->n_location_table; i++) {
        const pb_location *w = d->location_table[i];
        struct fg_location l = {
            .address = w->address,
            .n_lines = (uint32_t)w->n_lines,
            .n_attrs = (uint32_t)w->n_attribute_indices,
        };
        CHECK_INDEX(dec, w->mapping_index, d->n_mapping_table, "dictionary.mapping_table",
                    "dictionary.location_table[%zu].mapping_index", i);
        l.mapping = dec->map[FG_TABLE_MAPPING][w->mapping_index];
        if (w->n_lines > UINT32_MAX)
            return fg_err_set(dec->err, FG_EINVAL, "dictionary.location_table[%zu].lines: too many",
                              i);
        if (w->n_lines) {
            struct fg_line *lines = fg_arena_alloc(dec->scratch, w->n_lines * sizeof(*lines));
            if (!lines)
                return fg_err_set(dec->err, FG_ENOMEM, "out of memory");
            for (size_t k = 0; k < w->n_lines; k++) {
                const pb_line *wl = w->lines[k];
                CHECK_INDEX(dec, wl->function_index, d->n_function_table,
                            "dictionary.function_table",
                            "dictionary.location_table[%zu].lines[%zu].function_index", i, k);
                lines[k].function = dec->map[FG_TABLE_FUNCTION][wl->function_index];
                lines[k].line = wl->line;
                lines[k].column = wl->column;
            }
            l.lines = lines;
        }
        if ((rc = index_list(dec, FG_TABLE_ATTRIBUTE, w->attribute_indices,
                             w->n_attribute_indices, d->n_attribute_table,
                             "dictionary.attribute_table", &l.attrs,
                             "dictionary.location_table[%zu].attribute_indices", i)))
            return rc;
        if ((rc = put_mapped(dec, FG_TABLE_LOCATION, i, fg_dict_location(p, &l),
                             "location_table")))
            return rc;
    }
    for (size_t i = 0; i < d->n_stack_table; i++) {
        const pb_stack *w = d->stack_table[i];
        struct fg_stack s = {.n_locations = (uint32_t)w->n_location_indices};
        if ((rc = index_list(dec, FG_TABLE_LOCATION, w->location_indices, w->n_location_indices,
                             d->n_location_table, "dictionary.location_table", &s.locations,
                             "dictionary.stack_table[%zu].location_indices", i)))
            return rc;
        if ((rc = put_mapped(dec, FG_TABLE_STACK, i, fg_dict_stack(p, &s), "stack_table")))
            return rc;
    }
    return 0;
}

static int value_type(struct decoder *dec, const pb_value_type *w, struct fg_value_type *out,
                      const char *field)
{
    out->type = out->unit = 0;
    if (!w)
        return 0;
    int rc = str_index(dec, w->type_strindex, &out->type, "%s.type_strindex", field);
    if (rc)
        return rc;
    return str_index(dec, w->unit_strindex, &out->unit, "%s.unit_strindex", field);
}

static struct fg_bytes pb_bytes(ProtobufCBinaryData b)
{
    struct fg_bytes out = {b.data ? (const char *)b.data : "", (uint32_t)b.len};
    return out;
}

static struct fg_bytes pb_string(const char *s)
{
    struct fg_bytes out = {s ? s : "", s ? (uint32_t)strlen(s) : 0};
    return out;
}

static int decode_profile(struct decoder *dec, struct fg_scope_profiles *sp, const pb_profile *w,
                          const char *where)
{
    const pb_dictionary *d = dec->d;
    struct fg_profile hdr = {
        .time_unix_nano = w->time_unix_nano,
        .duration_nano = w->duration_nano,
        .period = w->period,
        .profile_id = pb_bytes(w->profile_id),
        .dropped_attributes_count = w->dropped_attributes_count,
        .original_payload_format = pb_string(w->original_payload_format),
        .original_payload = pb_bytes(w->original_payload),
        .n_attrs = (uint32_t)w->n_attribute_indices,
    };
    char field[160];
    int rc;
    snprintf(field, sizeof(field), "%s.sample_type", where);
    if ((rc = value_type(dec, w->sample_type, &hdr.sample_type, field)))
        return rc;
    snprintf(field, sizeof(field), "%s.period_type", where);
    if ((rc = value_type(dec, w->period_type, &hdr.period_type, field)))
        return rc;
    if ((rc = index_list(dec, FG_TABLE_ATTRIBUTE, w->attribute_indices, w->n_attribute_indices,
                         d->n_attribute_table, "dictionary.attribute_table", &hdr.attrs,
                         "%s.attribute_indices", where)))
        return rc;
    struct fg_profile *prof = fg_profiles_add_profile(dec->p, sp, &hdr);
    if (!prof)
        return fg_err_set(dec->err, FG_ENOMEM, "out of memory");
    if (w->n_samples > UINT32_MAX)
        return fg_err_set(dec->err, FG_EINVAL, "%s.samples: too many", where);
    if (w->n_samples) {
        prof->samples = fg_malloc(w->n_samples * sizeof(*prof->samples));
        if (!prof->samples)
            return fg_err_set(dec->err, FG_ENOMEM, "out of memory");
        prof->cap_samples = (uint32_t)w->n_samples;
    }
    for (size_t i = 0; i < w->n_samples; i++) {
        const pb_sample *ws = w->samples[i];
        if (ws->n_values == 0 && ws->n_timestamps_unix_nano == 0)
            return fg_err_set(dec->err, FG_EINVAL,
                              "%s.samples[%zu]: has neither values nor timestamps_unix_nano",
                              where, i);
        if (ws->n_values && ws->n_timestamps_unix_nano &&
            ws->n_values != ws->n_timestamps_unix_nano)
            return fg_err_set(dec->err, FG_EINVAL,
                              "%s.samples[%zu]: %zu values but %zu timestamps_unix_nano (must "
                              "pair up)",
                              where, i, ws->n_values, ws->n_timestamps_unix_nano);
        if (ws->n_values > UINT32_MAX || ws->n_timestamps_unix_nano > UINT32_MAX)
            return fg_err_set(dec->err, FG_EINVAL, "%s.samples[%zu]: too many values", where, i);
        CHECK_INDEX(dec, ws->stack_index, d->n_stack_table, "dictionary.stack_table",
                    "%s.samples[%zu].stack_index", where, i);
        CHECK_INDEX(dec, ws->link_index, d->n_link_table, "dictionary.link_table",
                    "%s.samples[%zu].link_index", where, i);
        struct fg_sample s = {
            .stack = dec->map[FG_TABLE_STACK][ws->stack_index],
            .link = dec->map[FG_TABLE_LINK][ws->link_index],
            .n_attrs = (uint32_t)ws->n_attribute_indices,
            .n_values = (uint32_t)ws->n_values,
            .n_timestamps = (uint32_t)ws->n_timestamps_unix_nano,
            .values = ws->values,
            .timestamps = ws->timestamps_unix_nano,
        };
        if ((rc = index_list(dec, FG_TABLE_ATTRIBUTE, ws->attribute_indices,
                             ws->n_attribute_indices, d->n_attribute_table,
                             "dictionary.attribute_table", &s.attrs,
                             "%s.samples[%zu].attribute_indices", where, i)))
            return rc;
        if ((rc = fg_profiles_add_sample(dec->p, prof, &s)))
            return fg_err_set(dec->err, rc, "out of memory");
    }
    return 0;
}

static int decode_entity_refs(struct decoder *dec, const pb_resource *w, struct fg_resource *r)
{
    r->n_entity_refs = (uint32_t)w->n_entity_refs;
    if (!w->n_entity_refs)
        return 0;
    struct fg_entity_ref *refs = fg_arena_calloc(dec->scratch, w->n_entity_refs * sizeof(*refs));
    if (!refs)
        return FG_ENOMEM;
    for (size_t i = 0; i < w->n_entity_refs; i++) {
        const pb_entity_ref *e = w->entity_refs[i];
        refs[i].schema_url = pb_string(e->schema_url);
        refs[i].type = pb_string(e->type);
        refs[i].n_id_keys = (uint32_t)e->n_id_keys;
        refs[i].n_description_keys = (uint32_t)e->n_description_keys;
        struct fg_bytes *ids = fg_arena_alloc(dec->scratch, (e->n_id_keys + 1) * sizeof(*ids));
        struct fg_bytes *descs =
            fg_arena_alloc(dec->scratch, (e->n_description_keys + 1) * sizeof(*descs));
        if (!ids || !descs)
            return FG_ENOMEM;
        for (size_t k = 0; k < e->n_id_keys; k++)
            ids[k] = pb_string(e->id_keys[k]);
        for (size_t k = 0; k < e->n_description_keys; k++)
            descs[k] = pb_string(e->description_keys[k]);
        refs[i].id_keys = ids;
        refs[i].description_keys = descs;
    }
    r->entity_refs = refs;
    return 0;
}

int fg__otlp_from_pb(const pb_request *req, struct fg_profiles **out, struct fg_err *err)
{
    struct decoder dec = {.d = req->dictionary, .err = err};
    int rc = fg_profiles_new(&dec.p);
    if (rc)
        return fg_err_set(err, rc, "out of memory");
    if (fg_arena_new(&dec.scratch) != 0) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }
    if (req->n_resource_profiles == 0) {
        *out = dec.p; /* an empty request is valid: nothing to check */
        fg_arena_free(dec.scratch);
        return 0;
    }
    if (!dec.d) {
        rc = fg_err_set(err, FG_EINVAL,
                        "dictionary: missing (every table's [0] entry must be present)");
        goto fail;
    }
    if ((rc = decode_dictionary(&dec)))
        goto fail;
    for (size_t r = 0; r < req->n_resource_profiles; r++) {
        const pb_resource_profiles *wrp = req->resource_profiles[r];
        struct fg_resource res = {0};
        char where[160];
        if (wrp->resource) {
            res.dropped_attributes_count = wrp->resource->dropped_attributes_count;
            snprintf(where, sizeof(where), "resource_profiles[%zu].resource.attributes", r);
            if ((rc = convert_keyvalues(&dec, wrp->resource->attributes,
                                        wrp->resource->n_attributes, &res.attrs, &res.n_attrs,
                                        where, 0)))
                goto fail;
            if ((rc = decode_entity_refs(&dec, wrp->resource, &res))) {
                fg_err_set(err, rc, "out of memory");
                goto fail;
            }
        }
        struct fg_bytes url = pb_string(wrp->schema_url);
        struct fg_resource_profiles *rp = fg_profiles_add_resource(dec.p, &res, url.ptr, url.len);
        if (!rp) {
            rc = fg_err_set(err, FG_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t s = 0; s < wrp->n_scope_profiles; s++) {
            const pb_scope_profiles *wsp = wrp->scope_profiles[s];
            struct fg_scope scope = {0};
            if (wsp->scope) {
                scope.name = pb_string(wsp->scope->name);
                scope.version = pb_string(wsp->scope->version);
                scope.dropped_attributes_count = wsp->scope->dropped_attributes_count;
                snprintf(where, sizeof(where),
                         "resource_profiles[%zu].scope_profiles[%zu].scope.attributes", r, s);
                if ((rc = convert_keyvalues(&dec, wsp->scope->attributes,
                                            wsp->scope->n_attributes, &scope.attrs,
                                            &scope.n_attrs, where, 0)))
                    goto fail;
            }
            struct fg_bytes surl = pb_string(wsp->schema_url);
            struct fg_scope_profiles *sp =
                fg_profiles_add_scope(dec.p, rp, &scope, surl.ptr, surl.len);
            if (!sp) {
                rc = fg_err_set(err, FG_ENOMEM, "out of memory");
                goto fail;
            }
            for (size_t i = 0; i < wsp->n_profiles; i++) {
                snprintf(where, sizeof(where),
                         "resource_profiles[%zu].scope_profiles[%zu].profiles[%zu]", r, s, i);
                if ((rc = decode_profile(&dec, sp, wsp->profiles[i], where)))
                    goto fail;
            }
        }
    }
    fg_arena_free(dec.scratch);
    *out = dec.p;
    return 0;
fail:
    fg_arena_free(dec.scratch);
    fg_profiles_unref(dec.p);
    *out = NULL;
    return rc;
}

int fg_otlp_decode_proto(const uint8_t *data, size_t len, struct fg_profiles **out,
                         struct fg_err *err)
{
    *out = NULL;
    struct fg_arena *arena;
    if (fg_arena_new(&arena) != 0)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    ProtobufCAllocator alloc;
    fg__pb_arena_allocator(arena, &alloc);
    pb_request *req = (pb_request *)protobuf_c_message_unpack(
        &opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__descriptor,
        &alloc, len, data);
    int rc;
    if (!req) {
        rc = fg_err_set(err, FG_EINVAL,
                        "not a valid ExportProfilesServiceRequest protobuf (%zu bytes): truncated "
                        "or malformed wire data",
                        len);
    } else {
        rc = fg__otlp_from_pb(req, out, err);
    }
    fg_arena_free(arena);
    return rc;
}

/* ---- encoding: model → protobuf ---- */

/* Writes protobuf into an fg_buf. A nested message reserves one length byte and moves its
 * body only in the rare case the length needs more. Errors stick in rc. */
struct pbw {
    struct fg_buf *b;
    int rc;
};

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2 };

static inline int pbw_room(struct pbw *w, size_t n)
{
    if (w->rc)
        return 0;
    if (w->b->cap - w->b->len < n && (w->rc = fg_buf_reserve(w->b, n)) != 0)
        return 0;
    return 1;
}

static inline void raw_varint(struct pbw *w, uint64_t v)
{
    uint8_t *p = w->b->data + w->b->len;
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    w->b->len = (size_t)(p - w->b->data);
}

static inline void put_varint_field(struct pbw *w, uint32_t field, uint64_t v)
{
    if (v == 0 || !pbw_room(w, 20))
        return;
    raw_varint(w, (uint64_t)field << 3 | WT_VARINT);
    raw_varint(w, v);
}

static inline void put_fixed64_field(struct pbw *w, uint32_t field, uint64_t v)
{
    if (v == 0 || !pbw_room(w, 15))
        return;
    raw_varint(w, (uint64_t)field << 3 | WT_I64);
    for (int i = 0; i < 8; i++)
        w->b->data[w->b->len++] = (uint8_t)(v >> (8 * i));
}

static void put_bytes_field(struct pbw *w, uint32_t field, const void *data, size_t len,
                            bool always)
{
    if ((len == 0 && !always) || !pbw_room(w, len + 20))
        return;
    raw_varint(w, (uint64_t)field << 3 | WT_LEN);
    raw_varint(w, len);
    if (len)
        memcpy(w->b->data + w->b->len, data, len);
    w->b->len += len;
}

/* Starts a LEN field; returns the offset of its body. */
static size_t begin_msg(struct pbw *w, uint32_t field)
{
    if (!pbw_room(w, 16))
        return 0;
    raw_varint(w, (uint64_t)field << 3 | WT_LEN);
    w->b->data[w->b->len++] = 0; /* one length byte reserved */
    return w->b->len;
}

static void end_msg(struct pbw *w, size_t body)
{
    if (w->rc)
        return;
    size_t len = w->b->len - body;
    if (len < 0x80) {
        w->b->data[body - 1] = (uint8_t)len;
        return;
    }
    size_t extra = 0;
    for (size_t v = len >> 7; v; v >>= 7)
        extra++;
    if (!pbw_room(w, extra))
        return;
    memmove(w->b->data + body + extra, w->b->data + body, len);
    size_t end = w->b->len + extra;
    w->b->len = body - 1;
    raw_varint(w, len);
    w->b->len = end;
}

static void put_packed_u32(struct pbw *w, uint32_t field, const uint32_t *v, uint32_t n)
{
    if (n == 0 || !pbw_room(w, 16 + (size_t)n * 5))
        return;
    size_t body = begin_msg(w, field);
    for (uint32_t i = 0; i < n; i++)
        raw_varint(w, v[i]);
    end_msg(w, body);
}

static void put_packed_i64(struct pbw *w, uint32_t field, const int64_t *v, uint32_t n)
{
    if (n == 0 || !pbw_room(w, 16 + (size_t)n * 10))
        return;
    size_t body = begin_msg(w, field);
    for (uint32_t i = 0; i < n; i++)
        raw_varint(w, (uint64_t)v[i]);
    end_msg(w, body);
}

static void put_packed_fixed64(struct pbw *w, uint32_t field, const uint64_t *v, uint32_t n)
{
    if (n == 0 || !pbw_room(w, 16 + (size_t)n * 8))
        return;
    raw_varint(w, (uint64_t)field << 3 | WT_LEN);
    raw_varint(w, (uint64_t)n * 8);
    for (uint32_t i = 0; i < n; i++)
        for (int k = 0; k < 8; k++)
            w->b->data[w->b->len++] = (uint8_t)(v[i] >> (8 * k));
}

static void put_value(struct pbw *w, const struct fg_value *v);

static void put_keyvalues(struct pbw *w, uint32_t field, const struct fg_keyvalue *kvs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        size_t body = begin_msg(w, field);
        put_bytes_field(w, 1, kvs[i].key.ptr, kvs[i].key.len, false);
        if (kvs[i].value.kind != FG_VALUE_EMPTY) {
            size_t vbody = begin_msg(w, 2);
            put_value(w, &kvs[i].value);
            end_msg(w, vbody);
        }
        end_msg(w, body);
    }
}

/* The body of an AnyValue. Set oneof members are written even when zero. */
static void put_value(struct pbw *w, const struct fg_value *v)
{
    switch (v->kind) {
    case FG_VALUE_STRING:
        put_bytes_field(w, 1, v->u.s.ptr, v->u.s.len, true);
        break;
    case FG_VALUE_BOOL:
        if (pbw_room(w, 4)) {
            raw_varint(w, 2 << 3 | WT_VARINT);
            raw_varint(w, v->u.b);
        }
        break;
    case FG_VALUE_INT:
        if (pbw_room(w, 12)) {
            raw_varint(w, 3 << 3 | WT_VARINT);
            raw_varint(w, (uint64_t)v->u.i);
        }
        break;
    case FG_VALUE_DOUBLE:
        if (pbw_room(w, 10)) {
            uint64_t bits;
            memcpy(&bits, &v->u.d, sizeof(bits));
            raw_varint(w, 4 << 3 | WT_I64);
            for (int i = 0; i < 8; i++)
                w->b->data[w->b->len++] = (uint8_t)(bits >> (8 * i));
        }
        break;
    case FG_VALUE_ARRAY: {
        size_t body = begin_msg(w, 5);
        for (uint32_t i = 0; i < v->u.array.n; i++) {
            size_t item = begin_msg(w, 1);
            put_value(w, &v->u.array.items[i]);
            end_msg(w, item);
        }
        end_msg(w, body);
        break;
    }
    case FG_VALUE_KVLIST: {
        size_t body = begin_msg(w, 6);
        put_keyvalues(w, 1, v->u.kvlist.items, v->u.kvlist.n);
        end_msg(w, body);
        break;
    }
    case FG_VALUE_BYTES:
        put_bytes_field(w, 7, v->u.s.ptr, v->u.s.len, true);
        break;
    default:
        break;
    }
}

static void put_value_type(struct pbw *w, uint32_t field, struct fg_value_type vt)
{
    if (vt.type == 0 && vt.unit == 0)
        return;
    size_t body = begin_msg(w, field);
    put_varint_field(w, 1, vt.type);
    put_varint_field(w, 2, vt.unit);
    end_msg(w, body);
}

static void put_profile(struct pbw *w, const struct fg_profile *prof)
{
    size_t body = begin_msg(w, 2);
    put_value_type(w, 1, prof->sample_type);
    for (uint32_t i = 0; i < prof->n_samples; i++) {
        const struct fg_sample *s = &prof->samples[i];
        size_t sb = begin_msg(w, 2);
        put_varint_field(w, 1, s->stack);
        put_packed_u32(w, 2, s->attrs, s->n_attrs);
        put_varint_field(w, 3, s->link);
        put_packed_i64(w, 4, s->values, s->n_values);
        put_packed_fixed64(w, 5, s->timestamps, s->n_timestamps);
        end_msg(w, sb);
    }
    put_fixed64_field(w, 3, prof->time_unix_nano);
    put_varint_field(w, 4, prof->duration_nano);
    put_value_type(w, 5, prof->period_type);
    put_varint_field(w, 6, (uint64_t)prof->period);
    put_bytes_field(w, 7, prof->profile_id.ptr, prof->profile_id.len, false);
    put_varint_field(w, 8, prof->dropped_attributes_count);
    put_bytes_field(w, 9, prof->original_payload_format.ptr, prof->original_payload_format.len,
                    false);
    put_bytes_field(w, 10, prof->original_payload.ptr, prof->original_payload.len, false);
    put_packed_u32(w, 11, prof->attrs, prof->n_attrs);
    end_msg(w, body);
}

static void put_resource_profiles(struct pbw *w, const struct fg_resource_profiles *rp)
{
    size_t body = begin_msg(w, 1);
    const struct fg_resource *res = &rp->resource;
    if (res->n_attrs || res->dropped_attributes_count || res->n_entity_refs) {
        size_t rb = begin_msg(w, 1);
        put_keyvalues(w, 1, res->attrs, res->n_attrs);
        put_varint_field(w, 2, res->dropped_attributes_count);
        for (uint32_t i = 0; i < res->n_entity_refs; i++) {
            const struct fg_entity_ref *e = &res->entity_refs[i];
            size_t eb = begin_msg(w, 3);
            put_bytes_field(w, 1, e->schema_url.ptr, e->schema_url.len, false);
            put_bytes_field(w, 2, e->type.ptr, e->type.len, false);
            for (uint32_t k = 0; k < e->n_id_keys; k++)
                put_bytes_field(w, 3, e->id_keys[k].ptr, e->id_keys[k].len, true);
            for (uint32_t k = 0; k < e->n_description_keys; k++)
                put_bytes_field(w, 4, e->description_keys[k].ptr, e->description_keys[k].len,
                                true);
            end_msg(w, eb);
        }
        end_msg(w, rb);
    }
    for (uint32_t s = 0; s < rp->n_scopes; s++) {
        const struct fg_scope_profiles *sp = &rp->scopes[s];
        size_t sb = begin_msg(w, 2);
        const struct fg_scope *sc = &sp->scope;
        if (sc->name.len || sc->version.len || sc->n_attrs || sc->dropped_attributes_count) {
            size_t scb = begin_msg(w, 1);
            put_bytes_field(w, 1, sc->name.ptr, sc->name.len, false);
            put_bytes_field(w, 2, sc->version.ptr, sc->version.len, false);
            put_keyvalues(w, 3, sc->attrs, sc->n_attrs);
            put_varint_field(w, 4, sc->dropped_attributes_count);
            end_msg(w, scb);
        }
        for (uint32_t i = 0; i < sp->n_profiles; i++)
            put_profile(w, &sp->profiles[i]);
        put_bytes_field(w, 3, sp->schema_url.ptr, sp->schema_url.len, false);
        end_msg(w, sb);
    }
    put_bytes_field(w, 3, rp->schema_url.ptr, rp->schema_url.len, false);
    end_msg(w, body);
}

static void put_dictionary(struct pbw *w, const struct fg_profiles *p)
{
    size_t body = begin_msg(w, 2);
    for (uint32_t i = 0; i < fg_dict_len(p, FG_TABLE_MAPPING); i++) {
        const struct fg_mapping *m = fg_dict_get_mapping(p, i);
        size_t mb = begin_msg(w, 1);
        put_varint_field(w, 1, m->memory_start);
        put_varint_field(w, 2, m->memory_limit);
        put_varint_field(w, 3, m->file_offset);
        put_varint_field(w, 4, m->filename);
        put_packed_u32(w, 5, m->attrs, m->n_attrs);
        end_msg(w, mb);
    }
    for (uint32_t i = 0; i < fg_dict_len(p, FG_TABLE_LOCATION); i++) {
        const struct fg_location *l = fg_dict_get_location(p, i);
        size_t lb = begin_msg(w, 2);
        put_varint_field(w, 1, l->mapping);
        put_varint_field(w, 2, l->address);
        for (uint32_t k = 0; k < l->n_lines; k++) {
            size_t lnb = begin_msg(w, 3);
            put_varint_field(w, 1, l->lines[k].function);
            put_varint_field(w, 2, (uint64_t)l->lines[k].line);
            put_varint_field(w, 3, (uint64_t)l->lines[k].column);
            end_msg(w, lnb);
        }
        put_packed_u32(w, 4, l->attrs, l->n_attrs);
        end_msg(w, lb);
    }
    for (uint32_t i = 0; i < fg_dict_len(p, FG_TABLE_FUNCTION); i++) {
        const struct fg_function *f = fg_dict_get_function(p, i);
        size_t fb = begin_msg(w, 3);
        put_varint_field(w, 1, f->name);
        put_varint_field(w, 2, f->system_name);
        put_varint_field(w, 3, f->filename);
        put_varint_field(w, 4, (uint64_t)f->start_line);
        end_msg(w, fb);
    }
    static const struct fg_link zero_link;
    for (uint32_t i = 0; i < fg_dict_len(p, FG_TABLE_LINK); i++) {
        const struct fg_link *l = fg_dict_get_link(p, i);
        size_t lb = begin_msg(w, 4);
        if (memcmp(l, &zero_link, sizeof(zero_link)) != 0) {
            put_bytes_field(w, 1, l->trace_id, sizeof(l->trace_id), true);
            put_bytes_field(w, 2, l->span_id, sizeof(l->span_id), true);
        }
        end_msg(w, lb);
    }
    for (uint32_t i = 0; i < fg_dict_len(p, FG_TABLE_STRING); i++) {
        struct fg_bytes s = fg_dict_get_string(p, i);
        put_bytes_field(w, 5, s.ptr, s.len, true);
    }
    for (uint32_t i = 0; i < fg_dict_len(p, FG_TABLE_ATTRIBUTE); i++) {
        const struct fg_attribute *a = fg_dict_get_attribute(p, i);
        size_t ab = begin_msg(w, 6);
        put_varint_field(w, 1, a->key);
        if (a->value.kind != FG_VALUE_EMPTY) {
            size_t vb = begin_msg(w, 2);
            put_value(w, &a->value);
            end_msg(w, vb);
        }
        put_varint_field(w, 3, a->unit);
        end_msg(w, ab);
    }
    for (uint32_t i = 0; i < fg_dict_len(p, FG_TABLE_STACK); i++) {
        const struct fg_stack *s = fg_dict_get_stack(p, i);
        size_t sb = begin_msg(w, 7);
        put_packed_u32(w, 1, s->locations, s->n_locations);
        end_msg(w, sb);
    }
    end_msg(w, body);
}

int fg_otlp_encode_proto(const struct fg_profiles *p, struct fg_buf *out)
{
    struct pbw w = {.b = out};
    for (uint32_t r = 0; r < p->n_resources; r++)
        put_resource_profiles(&w, &p->resources[r]);
    if (p->n_resources)
        put_dictionary(&w, p);
    return w.rc;
}

/* ---- small messages via protobuf-c ---- */

static int pack_into(const ProtobufCMessage *msg, struct fg_buf *out)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    int rc = fg_buf_reserve(out, size);
    if (rc)
        return rc;
    out->len += protobuf_c_message_pack(msg, out->data + out->len);
    return 0;
}

int fg_otlp_encode_response_proto(int64_t rejected, const char *message, struct fg_buf *out)
{
    pb_response resp =
        OPENTELEMETRY__PROTO__COLLECTOR__PROFILES__V1DEVELOPMENT__EXPORT_PROFILES_SERVICE_RESPONSE__INIT;
    pb_partial_success partial =
        OPENTELEMETRY__PROTO__COLLECTOR__PROFILES__V1DEVELOPMENT__EXPORT_PROFILES_PARTIAL_SUCCESS__INIT;
    if (rejected || (message && *message)) {
        partial.rejected_profiles = rejected;
        partial.error_message = (char *)(message ? message : "");
        resp.partial_success = &partial;
    }
    return pack_into(&resp.base, out);
}

int fg_otlp_encode_status_proto(int code, const char *message, struct fg_buf *out)
{
    pb_status status = GOOGLE__RPC__STATUS__INIT;
    status.code = code;
    status.message = (char *)(message ? message : "");
    return pack_into(&status.base, out);
}
