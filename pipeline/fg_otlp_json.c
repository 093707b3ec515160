/* OTLP/JSON codec. Decoding goes JSON → protobuf-c structs (driven by the generated
 * descriptors) → fg__otlp_from_pb, so both wire formats share one set of checks; encoding
 * writes JSON text straight from the model. */
#include "fg_otlp.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg_arena.h"
#include "fg_base64.h"
#include "fg_otlp_pb.h"
#include "fg_text.h"

/* ------------------------------------------------------------------------------------------
 * Decoding: JSON → protobuf-c request
 *
 * The generated descriptors carry every field's snake_case name, type and offset, so one
 * walker fills any message: JSON keys are accepted in lowerCamelCase (OTLP/JSON) and in
 * snake_case (what the Collector also accepts), unknown keys are skipped, null means absent.
 * ------------------------------------------------------------------------------------------ */

struct jdec {
    struct fg_arena *arena;
    struct fg_err *err;
    size_t path_len;
    char path[384]; /* JSON path of the value being decoded, for error messages */
};

/* Appends ".key" (or "[i]") to the path and returns the previous length for path_pop.
 * A path longer than the buffer is cut; the message still names its start. */
static size_t path_push(struct jdec *d, const char *key, size_t idx)
{
    size_t old = d->path_len;
    if (old + 1 < sizeof(d->path)) {
        int n;
        if (key)
            n = snprintf(d->path + old, sizeof(d->path) - old, "%s%s", old ? "." : "", key);
        else
            n = snprintf(d->path + old, sizeof(d->path) - old, "[%zu]", idx);
        if (n > 0)
            d->path_len = FG_MIN(old + (size_t)n, sizeof(d->path) - 1);
    }
    return old;
}

static void path_pop(struct jdec *d, size_t old)
{
    d->path_len = old;
    d->path[old] = '\0';
}

static int dec_fail(struct jdec *d, const char *what)
{
    return fg_err_set(d->err, FG_EINVAL, "%s: %s", d->path_len ? d->path : "(document)", what);
}

/* The magnitude and sign of a JSON integer, an integral real, or a decimal string. */
static int json_integer_parts(json_t *v, bool *neg, uint64_t *mag)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        *neg = i < 0;
        *mag = i < 0 ? (uint64_t)(-(i + 1)) + 1 : (uint64_t)i;
        return 0;
    }
    if (json_is_real(v)) {
        double x = json_real_value(v);
        if (!isfinite(x) || x != floor(x) || fabs(x) >= 18446744073709551616.0)
            return FG_EINVAL;
        *neg = x < 0;
        *mag = (uint64_t)fabs(x);
        return 0;
    }
    if (!json_is_string(v))
        return FG_EINVAL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    size_t i = 0;
    *neg = false;
    if (i < n && s[i] == '-') {
        *neg = true;
        i++;
    }
    if (i == n || n - i > 20)
        return FG_EINVAL;
    uint64_t m = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return FG_EINVAL;
        unsigned digit = (unsigned)(s[i] - '0');
        if (m > (UINT64_MAX - digit) / 10)
            return FG_EINVAL;
        m = m * 10 + digit;
    }
    *mag = m;
    return 0;
}

/* A signed integer in [-max-1, max]. */
static int dec_signed(struct jdec *d, json_t *v, int64_t max, int64_t *out)
{
    bool neg;
    uint64_t mag;
    if (json_integer_parts(v, &neg, &mag) != 0)
        return dec_fail(d, "expected an integer or a decimal string");
    if (neg ? mag > (uint64_t)max + 1 : mag > (uint64_t)max)
        return dec_fail(d, "integer out of range");
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

static int dec_unsigned(struct jdec *d, json_t *v, uint64_t max, uint64_t *out)
{
    bool neg;
    uint64_t mag;
    if (json_integer_parts(v, &neg, &mag) != 0)
        return dec_fail(d, "expected an integer or a decimal string");
    if ((neg && mag != 0) || mag > max)
        return dec_fail(d, "integer out of range");
    *out = mag;
    return 0;
}

static int dec_double(struct jdec *d, json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "NaN") == 0) {
            *out = NAN;
            return 0;
        }
        if (strcmp(s, "Infinity") == 0) {
            *out = INFINITY;
            return 0;
        }
        if (strcmp(s, "-Infinity") == 0) {
            *out = -INFINITY;
            return 0;
        }
        /* a decimal number in a string; strtod alone would also take "inf", hex and spaces */
        bool ok = *s != '\0' && strspn(s, "0123456789+-.eE") == strlen(s);
        char *end = NULL;
        double x = ok ? strtod(s, &end) : 0;
        if (ok && end && *end == '\0') {
            *out = x;
            return 0;
        }
    }
    return dec_fail(d, "expected a number or \"NaN\", \"Infinity\", \"-Infinity\"");
}

static int dec_hex(struct jdec *d, const char *s, size_t n, ProtobufCBinaryData *out)
{
    if (n % 2)
        return dec_fail(d, "expected a hex string of even length");
    uint8_t *p = NULL;
    if (n) {
        p = fg_arena_alloc(d->arena, n / 2);
        if (!p)
            return FG_ENOMEM;
    }
    for (size_t i = 0; i < n; i += 2) {
        int hi = fg_hex_digit(s[i]), lo = fg_hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            return dec_fail(d, "expected a hex string");
        p[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    out->data = p;
    out->len = n / 2;
    return 0;
}

/* Standard base64; padding may be omitted and the URL alphabet is accepted, like protojson. */
static int dec_base64(struct jdec *d, const char *s, size_t n, ProtobufCBinaryData *out)
{
    size_t cap = FG_BASE64_DECODED_MAX(n);
    uint8_t *p = fg_arena_alloc(d->arena, cap);
    if (!p)
        return FG_ENOMEM;
    if (fg_base64_decode(s, n, FG_BASE64_LENIENT, p, cap, &out->len) != 0)
        return dec_fail(d, "invalid base64");
    out->data = out->len ? p : NULL;
    return 0;
}

/* OTLP/JSON writes trace, span and profile ids as hex; every other bytes field is base64. */
static bool field_is_hex(const ProtobufCFieldDescriptor *f)
{
    return strcmp(f->name, "trace_id") == 0 || strcmp(f->name, "span_id") == 0 ||
           strcmp(f->name, "profile_id") == 0;
}

static int dec_fields(struct jdec *d, const ProtobufCMessageDescriptor *desc, json_t *obj,
                      ProtobufCMessage *msg);

static int dec_message(struct jdec *d, const ProtobufCMessageDescriptor *desc, json_t *v,
                       ProtobufCMessage **out)
{
    if (!json_is_object(v))
        return dec_fail(d, "expected an object");
    ProtobufCMessage *msg = fg_arena_alloc(d->arena, desc->sizeof_message);
    if (!msg)
        return FG_ENOMEM;
    protobuf_c_message_init(desc, msg);
    *out = msg;
    return dec_fields(d, desc, v, msg);
}

/* One (non-repeated) value of field f into dst. */
static int dec_value(struct jdec *d, const ProtobufCFieldDescriptor *f, json_t *v, void *dst)
{
    int rc;
    int64_t i;
    uint64_t u;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        if ((rc = dec_signed(d, v, INT32_MAX, &i)) != 0)
            return rc;
        *(int32_t *)dst = (int32_t)i;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if ((rc = dec_signed(d, v, INT64_MAX, &i)) != 0)
            return rc;
        *(int64_t *)dst = i;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if ((rc = dec_unsigned(d, v, UINT32_MAX, &u)) != 0)
            return rc;
        *(uint32_t *)dst = (uint32_t)u;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if ((rc = dec_unsigned(d, v, UINT64_MAX, &u)) != 0)
            return rc;
        *(uint64_t *)dst = u;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT: {
        double x;
        if ((rc = dec_double(d, v, &x)) != 0)
            return rc;
        *(float *)dst = (float)x;
        return 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE:
        return dec_double(d, v, (double *)dst);
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return dec_fail(d, "expected true or false");
        *(protobuf_c_boolean *)dst = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(v))
            return dec_fail(d, "expected a string");
        /* borrowed from the JSON tree, which outlives the request */
        *(char **)dst = (char *)json_string_value(v);
        return 0;
    case PROTOBUF_C_TYPE_BYTES:
        if (!json_is_string(v))
            return dec_fail(d, field_is_hex(f) ? "expected a hex string"
                                               : "expected a base64 string");
        if (field_is_hex(f))
            return dec_hex(d, json_string_value(v), json_string_length(v),
                           (ProtobufCBinaryData *)dst);
        return dec_base64(d, json_string_value(v), json_string_length(v),
                          (ProtobufCBinaryData *)dst);
    case PROTOBUF_C_TYPE_MESSAGE:
        return dec_message(d, f->descriptor, v, (ProtobufCMessage **)dst);
    }
    return dec_fail(d, "unsupported field type");
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* lowerCamelCase → snake_case (snake_case passes unchanged); false when too long to be a
 * field name of ours. */
static bool snake_name(const char *key, char *buf, size_t size)
{
    size_t o = 0;
    for (const char *k = key; *k; k++) {
        if (o + 2 >= size)
            return false;
        if (*k >= 'A' && *k <= 'Z') {
            buf[o++] = '_';
            buf[o++] = (char)(*k - 'A' + 'a');
        } else {
            buf[o++] = *k;
        }
    }
    buf[o] = '\0';
    return true;
}

static int dec_repeated(struct jdec *d, const ProtobufCFieldDescriptor *f, json_t *v,
                        ProtobufCMessage *msg)
{
    if (!json_is_array(v))
        return dec_fail(d, "expected an array");
    size_t n = json_array_size(v), size = elem_size(f);
    uint8_t *items = NULL;
    if (n) {
        if (n > SIZE_MAX / size)
            return FG_ENOMEM;
        items = fg_arena_calloc(d->arena, n * size);
        if (!items)
            return FG_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push(d, NULL, i);
        json_t *item = json_array_get(v, i);
        int rc = json_is_null(item) ? dec_fail(d, "null is not allowed in an array")
                                    : dec_value(d, f, item, items + i * size);
        if (rc != 0)
            return rc;
        path_pop(d, old);
    }
    *(size_t *)((uint8_t *)msg + f->quantifier_offset) = n;
    *(void **)((uint8_t *)msg + f->offset) = items;
    return 0;
}

static int dec_fields(struct jdec *d, const ProtobufCMessageDescriptor *desc, json_t *obj,
                      ProtobufCMessage *msg)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        char name[64];
        if (!snake_name(key, name, sizeof(name)))
            continue;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(desc, name);
        if (!f || json_is_null(v))
            continue;
        size_t old = path_push(d, key, 0);
        int rc;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            rc = dec_repeated(d, f, v, msg);
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *which = (uint32_t *)((uint8_t *)msg + f->quantifier_offset);
            if (*which != 0 && *which != f->id)
                rc = dec_fail(d, "more than one value given for a oneof");
            else
                rc = dec_value(d, f, v, (uint8_t *)msg + f->offset);
            *which = f->id;
        } else {
            rc = dec_value(d, f, v, (uint8_t *)msg + f->offset);
            if (rc == 0 && f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
                *(protobuf_c_boolean *)((uint8_t *)msg + f->quantifier_offset) = 1;
        }
        if (rc != 0)
            return rc;
        path_pop(d, old);
    }
    return 0;
}

/* JSON text → protobuf-c request allocated from arena. The request borrows strings from
 * *root, which the caller json_decref()s after it is done with the request. */
static int otlp_json_to_pb(const uint8_t *data, size_t len, struct fg_arena *arena,
                           json_t **root, pb_request **out, struct fg_err *err)
{
    json_error_t jerr;
    *root = json_loadb((const char *)data, len, 0, &jerr);
    if (!*root) {
        /* jansson leaves the error blank when its first allocations fail */
        if (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0')
            return fg_err_set(err, FG_ENOMEM, "out of memory parsing JSON");
        return fg_err_set(err, FG_EINVAL, "invalid JSON at line %d column %d: %s", jerr.line,
                          jerr.column, jerr.text);
    }
    struct jdec d = {.arena = arena, .err = err};
    if (!json_is_object(*root))
        return dec_fail(&d, "expected a JSON object at the top level");
    ProtobufCMessage *msg;
    int rc = dec_message(
        &d,
        &opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__descriptor,
        *root, &msg);
    if (rc == FG_ENOMEM)
        return fg_err_set(err, rc, "out of memory decoding JSON");
    if (rc != 0)
        return rc;
    *out = (pb_request *)msg;
    return 0;
}

int fg_otlp_decode_json(const uint8_t *data, size_t len, struct fg_profiles **out,
                        struct fg_err *err)
{
    struct fg_arena *arena = NULL;
    json_t *root = NULL;
    pb_request *req;
    *out = NULL;
    int rc = fg_arena_new(&arena);
    if (rc != 0) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }
    rc = otlp_json_to_pb(data, len, arena, &root, &req, err);
    if (rc != 0)
        goto fail;
    rc = fg__otlp_from_pb(req, out, err);
fail:
    json_decref(root);
    fg_arena_free(arena);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Encoding: model → JSON text
 *
 * Written directly into the buffer (no intermediate tree). Errors are sticky: after the first
 * failed append nothing more is written and the caller gets that code once at the end.
 * Default-valued fields are left out as protojson does, except that every dictionary table
 * keeps its [0] entry. Strings are escaped per RFC 8259; bytes that are not valid UTF-8 are
 * written as U+FFFD so the output is always valid JSON.
 * ------------------------------------------------------------------------------------------ */

struct jenc {
    struct fg_buf *out;
    int rc;
};

static void put(struct jenc *e, const void *s, size_t n)
{
    if (e->rc == 0)
        e->rc = fg_buf_append(e->out, s, n);
}

/* lit must be a string literal (the "" makes anything else a compile error) */
#define PUT_LIT(e, lit) put((e), "" lit, sizeof(lit) - 1)

static void put_c(struct jenc *e, char c)
{
    put(e, &c, 1);
}

/* Opens the i-th element of an array: a comma before every element but the first. */
static void put_elem(struct jenc *e, uint32_t i, char open)
{
    if (i)
        put_c(e, ',');
    put_c(e, open);
}

static void put_u64(struct jenc *e, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(e, tmp + i, sizeof(tmp) - i);
}

static void put_i64(struct jenc *e, int64_t v)
{
    if (v < 0) {
        put_c(e, '-');
        put_u64(e, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(e, (uint64_t)v);
    }
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t b = s[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
        len = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        if (b == 0xE0)
            lo = 0xA0;
        else if (b == 0xED)
            hi = 0x9F; /* no UTF-16 surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        if (b == 0xF0)
            lo = 0x90;
        else if (b == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

static void put_str(struct jenc *e, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = (const uint8_t *)str;
    size_t run = 0; /* start of the pending run of bytes that need no escaping */
    put_c(e, '"');
    for (size_t i = 0; i < n;) {
        uint8_t b = s[i];
        if (b >= 0x20 && b != '"' && b != '\\' && b < 0x80) {
            i++;
            continue;
        }
        if (b >= 0x80) {
            size_t len = utf8_seq(s + i, n - i);
            if (len) {
                i += len;
                continue;
            }
        }
        put(e, s + run, i - run);
        switch (b) {
        case '"':
            PUT_LIT(e, "\\\"");
            break;
        case '\\':
            PUT_LIT(e, "\\\\");
            break;
        case '\n':
            PUT_LIT(e, "\\n");
            break;
        case '\r':
            PUT_LIT(e, "\\r");
            break;
        case '\t':
            PUT_LIT(e, "\\t");
            break;
        case '\b':
            PUT_LIT(e, "\\b");
            break;
        case '\f':
            PUT_LIT(e, "\\f");
            break;
        default:
            if (b < 0x20) {
                char u[6] = {'\\', 'u', '0', '0', hex[b >> 4], hex[b & 15]};
                put(e, u, sizeof(u));
            } else {
                PUT_LIT(e, "\\ufffd");
            }
        }
        i++;
        run = i;
    }
    put(e, s + run, n - run);
    put_c(e, '"');
}

static void put_bytes_str(struct jenc *e, struct fg_bytes b)
{
    put_str(e, b.ptr ? b.ptr : "", b.len);
}

static void put_hex(struct jenc *e, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put_c(e, '"');
    for (size_t i = 0; i < n; i++) {
        char two[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
        put(e, two, 2);
    }
    put_c(e, '"');
}

static void put_base64(struct jenc *e, const uint8_t *p, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    put_c(e, '"');
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = {b64[v >> 18], b64[v >> 12 & 63], b64[v >> 6 & 63], b64[v & 63]};
        put(e, q, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char q[4] = {b64[v >> 18], b64[v >> 12 & 63], '=', '='};
        put(e, q, 4);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        char q[4] = {b64[v >> 18], b64[v >> 12 & 63], b64[v >> 6 & 63], '='};
        put(e, q, 4);
    }
    put_c(e, '"');
}

/* Shortest of %.15g..%.17g that reads back exactly; NaN and infinities as protojson strings. */
static void put_double(struct jenc *e, double x)
{
    if (isnan(x)) {
        PUT_LIT(e, "\"NaN\"");
        return;
    }
    if (isinf(x)) {
        if (x > 0)
            PUT_LIT(e, "\"Infinity\"");
        else
            PUT_LIT(e, "\"-Infinity\"");
        return;
    }
    char tmp[40];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, x);
        if (strtod(tmp, NULL) == x)
            break;
    }
    put(e, tmp, (size_t)n);
}

/* Writes ,"k": (the comma unless it is the object's first member). */
static void put_key(struct jenc *e, bool *first, const char *k)
{
    if (!*first)
        put_c(e, ',');
    *first = false;
    put_c(e, '"');
    put(e, k, strlen(k));
    PUT_LIT(e, "\":");
}

static void field_u32(struct jenc *e, bool *first, const char *k, uint32_t v)
{
    if (v) {
        put_key(e, first, k);
        put_u64(e, v);
    }
}

static void field_u64s(struct jenc *e, bool *first, const char *k, uint64_t v)
{
    if (v) {
        put_key(e, first, k);
        put_c(e, '"');
        put_u64(e, v);
        put_c(e, '"');
    }
}

static void field_i64s(struct jenc *e, bool *first, const char *k, int64_t v)
{
    if (v) {
        put_key(e, first, k);
        put_c(e, '"');
        put_i64(e, v);
        put_c(e, '"');
    }
}

static void field_str(struct jenc *e, bool *first, const char *k, struct fg_bytes s)
{
    if (s.len) {
        put_key(e, first, k);
        put_bytes_str(e, s);
    }
}

static void field_indices(struct jenc *e, bool *first, const char *k, const uint32_t *a,
                          uint32_t n)
{
    if (!n)
        return;
    put_key(e, first, k);
    put_c(e, '[');
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            put_c(e, ',');
        put_u64(e, a[i]);
    }
    put_c(e, ']');
}

static void put_value(struct jenc *e, const struct fg_value *v);

static void put_keyvalues(struct jenc *e, const struct fg_keyvalue *kv, uint32_t n)
{
    put_c(e, '[');
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            put_c(e, ',');
        PUT_LIT(e, "{\"key\":");
        put_bytes_str(e, kv[i].key);
        if (kv[i].value.kind != FG_VALUE_EMPTY) {
            PUT_LIT(e, ",\"value\":");
            put_value(e, &kv[i].value);
        }
        put_c(e, '}');
    }
    put_c(e, ']');
}

static void put_value(struct jenc *e, const struct fg_value *v)
{
    switch (v->kind) {
    case FG_VALUE_STRING:
        PUT_LIT(e, "{\"stringValue\":");
        put_bytes_str(e, v->u.s);
        break;
    case FG_VALUE_BOOL:
        if (v->u.b)
            PUT_LIT(e, "{\"boolValue\":true");
        else
            PUT_LIT(e, "{\"boolValue\":false");
        break;
    case FG_VALUE_INT:
        PUT_LIT(e, "{\"intValue\":\"");
        put_i64(e, v->u.i);
        put_c(e, '"');
        break;
    case FG_VALUE_DOUBLE:
        PUT_LIT(e, "{\"doubleValue\":");
        put_double(e, v->u.d);
        break;
    case FG_VALUE_BYTES:
        PUT_LIT(e, "{\"bytesValue\":");
        put_base64(e, (const uint8_t *)v->u.s.ptr, v->u.s.len);
        break;
    case FG_VALUE_ARRAY:
        PUT_LIT(e, "{\"arrayValue\":{\"values\":[");
        for (uint32_t i = 0; i < v->u.array.n; i++) {
            if (i)
                put_c(e, ',');
            put_value(e, &v->u.array.items[i]);
        }
        PUT_LIT(e, "]}");
        break;
    case FG_VALUE_KVLIST:
        PUT_LIT(e, "{\"kvlistValue\":{\"values\":");
        put_keyvalues(e, v->u.kvlist.items, v->u.kvlist.n);
        put_c(e, '}');
        break;
    default: /* FG_VALUE_EMPTY */
        put_c(e, '{');
        break;
    }
    put_c(e, '}');
}

static void put_value_type(struct jenc *e, bool *first, const char *k,
                           const struct fg_value_type *vt)
{
    if (!vt->type && !vt->unit)
        return;
    put_key(e, first, k);
    bool f = true;
    put_c(e, '{');
    field_u32(e, &f, "typeStrindex", vt->type);
    field_u32(e, &f, "unitStrindex", vt->unit);
    put_c(e, '}');
}

static void put_sample(struct jenc *e, const struct fg_sample *s)
{
    bool f = true;
    put_c(e, '{');
    field_u32(e, &f, "stackIndex", s->stack);
    field_indices(e, &f, "attributeIndices", s->attrs, s->n_attrs);
    field_u32(e, &f, "linkIndex", s->link);
    if (s->n_values) {
        put_key(e, &f, "values");
        put_c(e, '[');
        for (uint32_t i = 0; i < s->n_values; i++) {
            put_elem(e, i, '"');
            put_i64(e, s->values[i]);
            put_c(e, '"');
        }
        put_c(e, ']');
    }
    if (s->n_timestamps) {
        put_key(e, &f, "timestampsUnixNano");
        put_c(e, '[');
        for (uint32_t i = 0; i < s->n_timestamps; i++) {
            put_elem(e, i, '"');
            put_u64(e, s->timestamps[i]);
            put_c(e, '"');
        }
        put_c(e, ']');
    }
    put_c(e, '}');
}

static void put_profile(struct jenc *e, const struct fg_profile *pr)
{
    bool f = true;
    put_c(e, '{');
    put_value_type(e, &f, "sampleType", &pr->sample_type);
    if (pr->n_samples) {
        put_key(e, &f, "samples");
        put_c(e, '[');
        for (uint32_t i = 0; i < pr->n_samples && e->rc == 0; i++) {
            if (i)
                put_c(e, ',');
            put_sample(e, &pr->samples[i]);
        }
        put_c(e, ']');
    }
    field_u64s(e, &f, "timeUnixNano", pr->time_unix_nano);
    field_u64s(e, &f, "durationNano", pr->duration_nano);
    put_value_type(e, &f, "periodType", &pr->period_type);
    field_i64s(e, &f, "period", pr->period);
    if (pr->profile_id.len) {
        put_key(e, &f, "profileId");
        put_hex(e, (const uint8_t *)pr->profile_id.ptr, pr->profile_id.len);
    }
    field_u32(e, &f, "droppedAttributesCount", pr->dropped_attributes_count);
    field_str(e, &f, "originalPayloadFormat", pr->original_payload_format);
    if (pr->original_payload.len) {
        put_key(e, &f, "originalPayload");
        put_base64(e, (const uint8_t *)pr->original_payload.ptr, pr->original_payload.len);
    }
    field_indices(e, &f, "attributeIndices", pr->attrs, pr->n_attrs);
    put_c(e, '}');
}

static void put_string_list(struct jenc *e, bool *first, const char *k,
                            const struct fg_bytes *s, uint32_t n)
{
    if (!n)
        return;
    put_key(e, first, k);
    put_c(e, '[');
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            put_c(e, ',');
        put_bytes_str(e, s[i]);
    }
    put_c(e, ']');
}

static void put_resource(struct jenc *e, bool *first, const struct fg_resource *r)
{
    if (!r->n_attrs && !r->dropped_attributes_count && !r->n_entity_refs)
        return;
    put_key(e, first, "resource");
    bool f = true;
    put_c(e, '{');
    if (r->n_attrs) {
        put_key(e, &f, "attributes");
        put_keyvalues(e, r->attrs, r->n_attrs);
    }
    field_u32(e, &f, "droppedAttributesCount", r->dropped_attributes_count);
    if (r->n_entity_refs) {
        put_key(e, &f, "entityRefs");
        put_c(e, '[');
        for (uint32_t i = 0; i < r->n_entity_refs; i++) {
            const struct fg_entity_ref *er = &r->entity_refs[i];
            bool g = true;
            put_elem(e, i, '{');
            field_str(e, &g, "schemaUrl", er->schema_url);
            field_str(e, &g, "type", er->type);
            put_string_list(e, &g, "idKeys", er->id_keys, er->n_id_keys);
            put_string_list(e, &g, "descriptionKeys", er->description_keys,
                            er->n_description_keys);
            put_c(e, '}');
        }
        put_c(e, ']');
    }
    put_c(e, '}');
}

static void put_scope(struct jenc *e, bool *first, const struct fg_scope *s)
{
    if (!s->name.len && !s->version.len && !s->n_attrs && !s->dropped_attributes_count)
        return;
    put_key(e, first, "scope");
    bool f = true;
    put_c(e, '{');
    field_str(e, &f, "name", s->name);
    field_str(e, &f, "version", s->version);
    if (s->n_attrs) {
        put_key(e, &f, "attributes");
        put_keyvalues(e, s->attrs, s->n_attrs);
    }
    field_u32(e, &f, "droppedAttributesCount", s->dropped_attributes_count);
    put_c(e, '}');
}

static void put_resource_profiles(struct jenc *e, const struct fg_resource_profiles *rp)
{
    bool f = true;
    put_c(e, '{');
    put_resource(e, &f, &rp->resource);
    if (rp->n_scopes) {
        put_key(e, &f, "scopeProfiles");
        put_c(e, '[');
        for (uint32_t i = 0; i < rp->n_scopes; i++) {
            const struct fg_scope_profiles *sp = &rp->scopes[i];
            bool g = true;
            put_elem(e, i, '{');
            put_scope(e, &g, &sp->scope);
            if (sp->n_profiles) {
                put_key(e, &g, "profiles");
                put_c(e, '[');
                for (uint32_t j = 0; j < sp->n_profiles && e->rc == 0; j++) {
                    if (j)
                        put_c(e, ',');
                    put_profile(e, &sp->profiles[j]);
                }
                put_c(e, ']');
            }
            field_str(e, &g, "schemaUrl", sp->schema_url);
            put_c(e, '}');
        }
        put_c(e, ']');
    }
    field_str(e, &f, "schemaUrl", rp->schema_url);
    put_c(e, '}');
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Writes one dictionary entry; every table keeps its [0] entry, so entries are never left
 * out, only their default-valued fields. */
static void put_dict_entry(struct jenc *e, const struct fg_profiles *p, enum fg_table t,
                           uint32_t i)
{
    bool f = true;
    if (t == FG_TABLE_STRING) {
        put_bytes_str(e, fg_dict_get_string(p, i));
        return;
    }
    put_c(e, '{');
    switch (t) {
    case FG_TABLE_MAPPING: {
        const struct fg_mapping *m = fg_dict_get_mapping(p, i);
        field_u64s(e, &f, "memoryStart", m->memory_start);
        field_u64s(e, &f, "memoryLimit", m->memory_limit);
        field_u64s(e, &f, "fileOffset", m->file_offset);
        field_u32(e, &f, "filenameStrindex", m->filename);
        field_indices(e, &f, "attributeIndices", m->attrs, m->n_attrs);
        break;
    }
    case FG_TABLE_LOCATION: {
        const struct fg_location *l = fg_dict_get_location(p, i);
        field_u32(e, &f, "mappingIndex", l->mapping);
        field_u64s(e, &f, "address", l->address);
        if (l->n_lines) {
            put_key(e, &f, "lines");
            put_c(e, '[');
            for (uint32_t j = 0; j < l->n_lines; j++) {
                bool g = true;
                put_elem(e, j, '{');
                field_u32(e, &g, "functionIndex", l->lines[j].function);
                field_i64s(e, &g, "line", l->lines[j].line);
                field_i64s(e, &g, "column", l->lines[j].column);
                put_c(e, '}');
            }
            put_c(e, ']');
        }
        field_indices(e, &f, "attributeIndices", l->attrs, l->n_attrs);
        break;
    }
    case FG_TABLE_FUNCTION: {
        const struct fg_function *fn = fg_dict_get_function(p, i);
        field_u32(e, &f, "nameStrindex", fn->name);
        field_u32(e, &f, "systemNameStrindex", fn->system_name);
        field_u32(e, &f, "filenameStrindex", fn->filename);
        field_i64s(e, &f, "startLine", fn->start_line);
        break;
    }
    case FG_TABLE_LINK: {
        const struct fg_link *l = fg_dict_get_link(p, i);
        if (!all_zero(l->trace_id, sizeof(l->trace_id))) {
            put_key(e, &f, "traceId");
            put_hex(e, l->trace_id, sizeof(l->trace_id));
        }
        if (!all_zero(l->span_id, sizeof(l->span_id))) {
            put_key(e, &f, "spanId");
            put_hex(e, l->span_id, sizeof(l->span_id));
        }
        break;
    }
    case FG_TABLE_ATTRIBUTE: {
        const struct fg_attribute *a = fg_dict_get_attribute(p, i);
        field_u32(e, &f, "keyStrindex", a->key);
        if (a->value.kind != FG_VALUE_EMPTY) {
            put_key(e, &f, "value");
            put_value(e, &a->value);
        }
        field_u32(e, &f, "unitStrindex", a->unit);
        break;
    }
    case FG_TABLE_STACK: {
        const struct fg_stack *s = fg_dict_get_stack(p, i);
        field_indices(e, &f, "locationIndices", s->locations, s->n_locations);
        break;
    }
    default:
        break;
    }
    put_c(e, '}');
}

int fg_otlp_encode_json(const struct fg_profiles *p, struct fg_buf *out)
{
    /* in the order of the proto fields */
    static const struct {
        enum fg_table table;
        const char *name;
    } tables[] = {
        {FG_TABLE_MAPPING, "mappingTable"},     {FG_TABLE_LOCATION, "locationTable"},
        {FG_TABLE_FUNCTION, "functionTable"},   {FG_TABLE_LINK, "linkTable"},
        {FG_TABLE_STRING, "stringTable"},       {FG_TABLE_ATTRIBUTE, "attributeTable"},
        {FG_TABLE_STACK, "stackTable"},
    };
    struct jenc e = {.out = out};
    size_t start = out->len;
    bool f = true;
    put_c(&e, '{');
    if (p->n_resources) {
        put_key(&e, &f, "resourceProfiles");
        put_c(&e, '[');
        for (uint32_t i = 0; i < p->n_resources && e.rc == 0; i++) {
            if (i)
                put_c(&e, ',');
            put_resource_profiles(&e, &p->resources[i]);
        }
        put_c(&e, ']');
    }
    put_key(&e, &f, "dictionary");
    put_c(&e, '{');
    for (size_t t = 0; t < FG_ARRAY_LEN(tables); t++) {
        uint32_t n = fg_dict_len(p, tables[t].table);
        if (t)
            put_c(&e, ',');
        put_c(&e, '"');
        put(&e, tables[t].name, strlen(tables[t].name));
        PUT_LIT(&e, "\":[");
        for (uint32_t i = 0; i < n && e.rc == 0; i++) {
            if (i)
                put_c(&e, ',');
            put_dict_entry(&e, p, tables[t].table, i);
        }
        put_c(&e, ']');
    }
    PUT_LIT(&e, "}}");
    if (e.rc != 0)
        out->len = start; /* no half document */
    return e.rc;
}

int fg_otlp_encode_response_json(int64_t rejected, const char *message, struct fg_buf *out)
{
    struct jenc e = {.out = out};
    size_t start = out->len;
    size_t mlen = message ? strlen(message) : 0;
    if (rejected == 0 && mlen == 0) {
        PUT_LIT(&e, "{}");
    } else {
        bool f = true;
        PUT_LIT(&e, "{\"partialSuccess\":{");
        field_i64s(&e, &f, "rejectedProfiles", rejected);
        if (mlen) {
            put_key(&e, &f, "errorMessage");
            put_str(&e, message, mlen);
        }
        PUT_LIT(&e, "}}");
    }
    if (e.rc != 0)
        out->len = start;
    return e.rc;
}

int fg_otlp_encode_status_json(int code, const char *message, struct fg_buf *out)
{
    struct jenc e = {.out = out};
    size_t start = out->len;
    PUT_LIT(&e, "{\"code\":");
    put_i64(&e, code);
    PUT_LIT(&e, ",\"message\":");
    put_str(&e, message ? message : "", message ? strlen(message) : 0);
    put_c(&e, '}');
    if (e.rc != 0)
        out->len = start;
    return e.rc;
}
