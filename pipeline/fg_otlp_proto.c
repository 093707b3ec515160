/* OTLP profiles protobuf encoder, written straight from the model, and the small response
 * messages (via protobuf-c). The decoder is in fg_otlp_decode.c. */
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

/* ---- decoding a request held in protobuf-c structs (the JSON decoder's output) ---- */

int fg__otlp_from_pb(const pb_request *req, struct fg_profiles **out, struct fg_err *err)
{
    /* one checked conversion for both encodings: pack, then the wire decoder. JSON is
     * slower than this extra pack by an order of magnitude. */
    size_t size = protobuf_c_message_get_packed_size(&req->base);
    uint8_t *bytes = fg_malloc(size ? size : 1);
    if (!bytes)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    protobuf_c_message_pack(&req->base, bytes);
    int rc = fg_otlp_decode_proto(bytes, size, out, err);
    fg_free(bytes);
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
