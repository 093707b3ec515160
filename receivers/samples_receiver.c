/* Receiver "samples": raw stack samples from simple agents and scripts, POST /v1/samples as
 * folded text (text/plain) or a small JSON document (application/json), into the model. */
#include "samples_receiver.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_folded.h"
#include "fg_gzip.h"
#include "fg_http.h"
#include "fg_http_receiver.h"
#include "fg_log.h"
#include "fg_metrics.h"
#include "fg_model.h"
#include "pyroscope_receiver.h"

#define SAMPLES_PATH "/v1/samples"
#define DEFAULT_SERVICE "unknown_service"
#define MAX_PARAM 256
#define MAX_LABELS 64
#define LABEL_PREFIX "label."

static const struct fg_option samples_options[] = {
    FG_HTTP_RECEIVER_OPTIONS("127.0.0.1:4041"),
    FG_OPT_END,
};

/* ---------------------------------------------------------------------------------------
 * JSON */

/* Path of the value being decoded, for messages. */
struct jpath {
    char text[160];
};

static int jerr(struct fg_err *err, const char *path, const char *what)
{
    return fg_err_set(err, FG_EINVAL, "%s: %s", path, what);
}

/* int64 as a JSON integer or a decimal string (proto3 JSON style). */
static int json_int(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && fg_parse_int(json_string_value(v), out) == 0)
        return 0;
    return FG_EINVAL;
}

static int json_uint(json_t *v, uint64_t *out)
{
    int64_t i;
    if (json_int(v, &i) != 0 || i < 0)
        return FG_EINVAL;
    *out = (uint64_t)i;
    return 0;
}

/* A scalar JSON value as a model value; strings stay borrowed from the JSON tree. */
static int json_scalar(json_t *v, struct fg_value *out)
{
    memset(out, 0, sizeof(*out));
    switch (json_typeof(v)) {
    case JSON_STRING:
        out->kind = FG_VALUE_STRING;
        out->u.s = (struct fg_bytes){json_string_value(v), (uint32_t)json_string_length(v)};
        return 0;
    case JSON_INTEGER:
        out->kind = FG_VALUE_INT;
        out->u.i = json_integer_value(v);
        return 0;
    case JSON_REAL:
        out->kind = FG_VALUE_DOUBLE;
        out->u.d = json_real_value(v);
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        out->kind = FG_VALUE_BOOL;
        out->u.b = json_is_true(v);
        return 0;
    default:
        return FG_EINVAL;
    }
}

static int value_type(struct fg_profiles *p, json_t *o, const char *name, const char *def_type,
                      const char *def_unit, struct fg_value_type *out, struct fg_err *err)
{
    const char *type = def_type, *unit = def_unit;
    if (o) {
        json_t *t = json_object_get(o, "type"), *u = json_object_get(o, "unit");
        if (!json_is_object(o) || (t && !json_is_string(t)) || (u && !json_is_string(u)))
            return fg_err_set(err, FG_EINVAL, "%s: expected {\"type\": string, \"unit\": "
                              "string}", name);
        if (t)
            type = json_string_value(t);
        if (u)
            unit = json_string_value(u);
    }
    int32_t ti = fg_dict_string(p, type, strlen(type));
    int32_t ui = ti < 0 ? ti : fg_dict_string(p, unit, strlen(unit));
    if (ui < 0)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    out->type = (uint32_t)ti;
    out->unit = (uint32_t)ui;
    return 0;
}

/* One stack frame: "name" or {"function", "file", "line"}. */
static int32_t frame(struct fg_profiles *p, json_t *f, const char *path, struct fg_err *err)
{
    if (json_is_string(f)) {
        if (json_string_length(f) == 0)
            return jerr(err, path, "empty frame name");
        int32_t loc = fg_folded_frame(p, json_string_value(f), json_string_length(f), NULL, 0, 0);
        return loc < 0 ? fg_err_set(err, loc, "out of memory") : loc;
    }
    if (!json_is_object(f))
        return jerr(err, path, "expected a frame name or {\"function\", \"file\", \"line\"}");
    json_t *fn = json_object_get(f, "function"), *file = json_object_get(f, "file");
    json_t *line = json_object_get(f, "line");
    if (!json_is_string(fn) || json_string_length(fn) == 0)
        return jerr(err, path, "function: expected a non-empty string");
    if (file && !json_is_string(file))
        return jerr(err, path, "file: expected a string");
    int64_t ln = 0;
    if (line && (json_int(line, &ln) != 0 || ln < 0))
        return jerr(err, path, "line: expected a non-negative integer");
    int32_t loc = fg_folded_frame(p, json_string_value(fn), json_string_length(fn),
                                  file ? json_string_value(file) : NULL,
                                  file ? json_string_length(file) : 0, ln);
    return loc < 0 ? fg_err_set(err, loc, "out of memory") : loc;
}

static int attributes(struct fg_profiles *p, json_t *o, const char *path, uint32_t **out,
                      uint32_t *n_out, struct fg_err *err)
{
    *out = NULL;
    *n_out = 0;
    if (!o)
        return 0;
    if (!json_is_object(o))
        return jerr(err, path, "expected an object of attributes");
    size_t n = json_object_size(o);
    if (n == 0)
        return 0;
    uint32_t *idx = fg_calloc(n, sizeof(*idx));
    if (!idx)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    const char *k;
    json_t *v;
    uint32_t i = 0;
    json_object_foreach(o, k, v) {
        struct fg_attribute a = {0};
        if (json_scalar(v, &a.value) != 0) {
            fg_free(idx);
            return fg_err_set(err, FG_EINVAL, "%s.%s: expected a string, number or boolean",
                              path, k);
        }
        int32_t ks = fg_dict_string(p, k, strlen(k));
        int32_t ai = ks < 0 ? ks : (a.key = (uint32_t)ks, fg_dict_attribute(p, &a));
        if (ai < 0) {
            fg_free(idx);
            return fg_err_set(err, FG_ENOMEM, "out of memory");
        }
        idx[i++] = (uint32_t)ai;
    }
    *out = idx;
    *n_out = i;
    return 0;
}

static int add_samples(struct fg_profiles *p, struct fg_profile *prof, json_t *samples,
                       bool root_first, struct fg_err *err)
{
    uint32_t *locs = NULL;
    size_t cap = 0;
    int rc = 0;
    char path[96];
    for (size_t i = 0; i < json_array_size(samples); i++) {
        json_t *s = json_array_get(samples, i);
        snprintf(path, sizeof(path), "samples[%zu]", i);
        if (!json_is_object(s)) {
            rc = jerr(err, path, "expected an object");
            goto out;
        }
        json_t *stack = json_object_get(s, "stack");
        size_t depth = json_array_size(stack);
        if (!json_is_array(stack) || depth == 0) {
            rc = fg_err_set(err, FG_EINVAL, "%s.stack: expected a non-empty array", path);
            goto out;
        }
        if (depth > FG_FOLDED_MAX_DEPTH) {
            rc = fg_err_set(err, FG_EINVAL, "%s.stack: deeper than %d frames", path,
                            FG_FOLDED_MAX_DEPTH);
            goto out;
        }
        if (depth > cap) {
            uint32_t *l = fg_realloc(locs, depth * sizeof(*l));
            if (!l) {
                rc = fg_err_set(err, FG_ENOMEM, "out of memory");
                goto out;
            }
            locs = l;
            cap = depth;
        }
        for (size_t k = 0; k < depth; k++) {
            char fpath[128];
            snprintf(fpath, sizeof(fpath), "%s.stack[%zu]", path, k);
            int32_t loc = frame(p, json_array_get(stack, k), fpath, err);
            if (loc < 0) {
                rc = loc;
                goto out;
            }
            locs[root_first ? depth - 1 - k : k] = (uint32_t)loc; /* stored leaf first */
        }
        struct fg_stack st = {.n_locations = (uint32_t)depth, .locations = locs};
        int32_t si = fg_dict_stack(p, &st);
        if (si < 0) {
            rc = fg_err_set(err, FG_ENOMEM, "out of memory");
            goto out;
        }
        int64_t value = 1;
        json_t *v = json_object_get(s, "value");
        if (v && json_int(v, &value) != 0) {
            rc = fg_err_set(err, FG_EINVAL, "%s.value: expected an integer", path);
            goto out;
        }
        uint64_t ts = 0;
        json_t *t = json_object_get(s, "timestamp_unix_nano");
        if (t && json_uint(t, &ts) != 0) {
            rc = fg_err_set(err, FG_EINVAL, "%s.timestamp_unix_nano: expected a non-negative "
                            "integer", path);
            goto out;
        }
        char apath[112];
        snprintf(apath, sizeof(apath), "%s.attributes", path);
        uint32_t *attrs, n_attrs;
        if ((rc = attributes(p, json_object_get(s, "attributes"), apath, &attrs, &n_attrs,
                             err)) != 0)
            goto out;
        struct fg_sample smp = {.stack = (uint32_t)si,
                                .n_values = 1,
                                .values = &value,
                                .n_timestamps = t ? 1 : 0,
                                .timestamps = &ts,
                                .n_attrs = n_attrs,
                                .attrs = attrs};
        rc = fg_profiles_add_sample(p, prof, &smp);
        fg_free(attrs);
        if (rc != 0) {
            fg_err_set(err, rc, "out of memory");
            goto out;
        }
    }
out:
    fg_free(locs);
    return rc;
}

int fg_samples_json_decode(const uint8_t *data, size_t len, int64_t now_ns,
                           struct fg_profiles *into, struct fg_err *err)
{
    json_error_t jerror;
    json_t *root = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerror);
    struct fg_keyvalue *kv = NULL;
    int rc = 0;

    if (!json_is_object(root)) {
        rc = fg_err_set(err, FG_EINVAL, "not a JSON object%s%s", root ? "" : ": ",
                        root ? "" : jerror.text);
        goto out;
    }
    static const char *const known[] = {"resource", "scope", "sample_type", "period_type",
                                        "period", "time_unix_nano", "duration_nano",
                                        "stack_order", "samples"};
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        bool ok = false;
        for (size_t i = 0; i < FG_ARRAY_LEN(known); i++)
            ok = ok || strcmp(key, known[i]) == 0;
        if (!ok) {
            rc = fg_err_set(err, FG_EINVAL, "%s: unknown field", key);
            goto out;
        }
    }

    /* resource */
    json_t *res = json_object_get(root, "resource");
    if (res && !json_is_object(res)) {
        rc = jerr(err, "resource", "expected an object of attributes");
        goto out;
    }
    size_t n_res = json_object_size(res);
    kv = fg_calloc(n_res + 1, sizeof(*kv));
    if (!kv) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto out;
    }
    uint32_t n_kv = 0;
    bool have_service = false;
    json_object_foreach(res, key, val) {
        if (json_scalar(val, &kv[n_kv].value) != 0) {
            rc = fg_err_set(err, FG_EINVAL, "resource.%s: expected a string, number or "
                            "boolean", key);
            goto out;
        }
        kv[n_kv].key = (struct fg_bytes){key, (uint32_t)strlen(key)};
        have_service = have_service || strcmp(key, "service.name") == 0;
        n_kv++;
    }
    if (!have_service)
        kv[n_kv++] = (struct fg_keyvalue){
            .key = {"service.name", 12},
            .value = {.kind = FG_VALUE_STRING, .u.s = {DEFAULT_SERVICE, sizeof(DEFAULT_SERVICE) - 1}}};

    /* scope */
    struct fg_scope scope = {0};
    json_t *sc = json_object_get(root, "scope");
    if (sc) {
        json_t *n = json_object_get(sc, "name"), *v = json_object_get(sc, "version");
        if (!json_is_object(sc) || (n && !json_is_string(n)) || (v && !json_is_string(v))) {
            rc = jerr(err, "scope", "expected {\"name\": string, \"version\": string}");
            goto out;
        }
        if (n)
            scope.name = (struct fg_bytes){json_string_value(n), (uint32_t)json_string_length(n)};
        if (v)
            scope.version = (struct fg_bytes){json_string_value(v),
                                              (uint32_t)json_string_length(v)};
    }

    /* profile header */
    struct fg_profile proto = {0};
    if ((rc = value_type(into, json_object_get(root, "sample_type"), "sample_type", "samples",
                         "count", &proto.sample_type, err)) != 0)
        goto out;
    json_t *pt = json_object_get(root, "period_type");
    if (pt && (rc = value_type(into, pt, "period_type", "", "", &proto.period_type, err)) != 0)
        goto out;
    json_t *jv;
    if ((jv = json_object_get(root, "period")) && json_int(jv, &proto.period) != 0) {
        rc = jerr(err, "period", "expected an integer");
        goto out;
    }
    proto.time_unix_nano = now_ns > 0 ? (uint64_t)now_ns : 0;
    if ((jv = json_object_get(root, "time_unix_nano")) && json_uint(jv, &proto.time_unix_nano)) {
        rc = jerr(err, "time_unix_nano", "expected a non-negative integer");
        goto out;
    }
    if ((jv = json_object_get(root, "duration_nano")) && json_uint(jv, &proto.duration_nano)) {
        rc = jerr(err, "duration_nano", "expected a non-negative integer");
        goto out;
    }
    bool root_first = false;
    if ((jv = json_object_get(root, "stack_order"))) {
        const char *o = json_string_value(jv);
        if (o && !strcmp(o, "root_first"))
            root_first = true;
        else if (!o || strcmp(o, "leaf_first") != 0) {
            rc = jerr(err, "stack_order", "expected \"leaf_first\" or \"root_first\"");
            goto out;
        }
    }
    json_t *samples = json_object_get(root, "samples");
    if (!json_is_array(samples)) {
        rc = jerr(err, "samples", "expected an array");
        goto out;
    }

    struct fg_resource resource = {.n_attrs = n_kv, .attrs = kv};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(into, &resource, "", 0);
    struct fg_scope_profiles *sp = rp ? fg_profiles_add_scope(into, rp, &scope, "", 0) : NULL;
    struct fg_profile *prof = sp ? fg_profiles_add_profile(into, sp, &proto) : NULL;
    if (!prof) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto out;
    }
    rc = add_samples(into, prof, samples, root_first, err);
out:
    fg_free(kv);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Folded text with the metadata in the query */

struct text_params {
    char service[MAX_PARAM], scope[MAX_PARAM];
    char type[MAX_PARAM], unit[MAX_PARAM], period_type[MAX_PARAM], period_unit[MAX_PARAM];
    int64_t period;
    bool have_period;
    size_t n_labels;
    char *keys[MAX_LABELS], *values[MAX_LABELS];
    struct fg_err *err;
};

static int copy_param(char *dst, size_t size, const char *key, const char *value,
                      struct fg_err *err)
{
    size_t n = strlen(value);
    if (n == 0 || n >= size)
        return fg_err_set(err, FG_EINVAL, "%s: must be 1 to %zu bytes", key, size - 1);
    memcpy(dst, value, n + 1);
    return 0;
}

static int text_param(void *ctx, const char *key, const char *value)
{
    struct text_params *tp = ctx;
    struct fg_err *err = tp->err;
    if (!strcmp(key, "service"))
        return copy_param(tp->service, sizeof(tp->service), key, value, err);
    if (!strcmp(key, "scope"))
        return copy_param(tp->scope, sizeof(tp->scope), key, value, err);
    if (!strcmp(key, "type"))
        return copy_param(tp->type, sizeof(tp->type), key, value, err);
    if (!strcmp(key, "unit"))
        return copy_param(tp->unit, sizeof(tp->unit), key, value, err);
    if (!strcmp(key, "period_type"))
        return copy_param(tp->period_type, sizeof(tp->period_type), key, value, err);
    if (!strcmp(key, "period_unit"))
        return copy_param(tp->period_unit, sizeof(tp->period_unit), key, value, err);
    if (!strcmp(key, "period")) {
        if (fg_parse_int(value, &tp->period) != 0 || tp->period < 0)
            return fg_err_set(err, FG_EINVAL, "period: expected a non-negative integer");
        tp->have_period = true;
        return 0;
    }
    size_t plen = sizeof(LABEL_PREFIX) - 1;
    if (!strncmp(key, LABEL_PREFIX, plen) && key[plen]) {
        if (tp->n_labels == MAX_LABELS)
            return fg_err_set(err, FG_EINVAL, "more than %d labels", MAX_LABELS);
        for (size_t i = 0; i < tp->n_labels; i++)
            if (!strcmp(tp->keys[i], key + plen))
                return fg_err_set(err, FG_EINVAL, "%s: given twice", key);
        tp->keys[tp->n_labels] = fg_strdup(key + plen);
        tp->values[tp->n_labels] = fg_strdup(value);
        tp->n_labels++;
        if (!tp->keys[tp->n_labels - 1] || !tp->values[tp->n_labels - 1])
            return fg_err_set(err, FG_ENOMEM, "out of memory");
        return 0;
    }
    return fg_err_set(err, FG_EINVAL, "unknown query parameter \"%.64s\" (labels are "
                      "label.<key>=<value>)", key);
}

static int decode_text(const char *query, const uint8_t *body, size_t len, int64_t now_ns,
                       struct fg_profiles *into, struct fg_err *err)
{
    struct text_params *tp = fg_calloc(1, sizeof(*tp));
    struct fg_keyvalue kv[MAX_LABELS + 1];
    int rc;
    if (!tp)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    tp->err = err;
    if ((rc = fg__query_each(query, text_param, tp, err)) != 0)
        goto out;
    if (!tp->service[0])
        memcpy(tp->service, DEFAULT_SERVICE, sizeof(DEFAULT_SERVICE));
    if (!tp->type[0])
        memcpy(tp->type, "samples", sizeof("samples"));
    if (!tp->unit[0])
        memcpy(tp->unit, "count", sizeof("count"));
    uint32_t n_kv = 0;
    kv[n_kv++] = (struct fg_keyvalue){
        .key = {"service.name", 12},
        .value = {.kind = FG_VALUE_STRING, .u.s = {tp->service, (uint32_t)strlen(tp->service)}}};
    for (size_t i = 0; i < tp->n_labels; i++) {
        if (!strcmp(tp->keys[i], "service.name"))
            continue; /* the service parameter says it */
        kv[n_kv++] = (struct fg_keyvalue){
            .key = {tp->keys[i], (uint32_t)strlen(tp->keys[i])},
            .value = {.kind = FG_VALUE_STRING,
                      .u.s = {tp->values[i], (uint32_t)strlen(tp->values[i])}}};
    }
    struct fg_resource res = {.n_attrs = n_kv, .attrs = kv};
    struct fg_scope scope = {.name = {tp->scope, (uint32_t)strlen(tp->scope)}};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(into, &res, "", 0);
    struct fg_scope_profiles *sp = rp ? fg_profiles_add_scope(into, rp, &scope, "", 0) : NULL;
    if (!sp) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto out;
    }
    struct fg_profile proto = {.time_unix_nano = (uint64_t)now_ns, .period = tp->period};
    /* a period without its type is in the sample type's terms */
    const char *ptype = tp->period_type[0] ? tp->period_type : tp->have_period ? tp->type : "";
    const char *punit = tp->period_unit[0] ? tp->period_unit : tp->have_period ? tp->unit : "";
    int32_t s[4] = {fg_dict_string(into, tp->type, strlen(tp->type)),
                    fg_dict_string(into, tp->unit, strlen(tp->unit)),
                    fg_dict_string(into, ptype, strlen(ptype)),
                    fg_dict_string(into, punit, strlen(punit))};
    for (int i = 0; i < 4; i++)
        if (s[i] < 0) {
            rc = fg_err_set(err, FG_ENOMEM, "out of memory");
            goto out;
        }
    proto.sample_type = (struct fg_value_type){(uint32_t)s[0], (uint32_t)s[1]};
    proto.period_type = (struct fg_value_type){(uint32_t)s[2], (uint32_t)s[3]};
    struct fg_profile *prof = fg_profiles_add_profile(into, sp, &proto);
    if (!prof) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto out;
    }
    struct fg_folded_opts o = {0};
    rc = fg_folded_parse(body, len, &o, into, prof, NULL, err);
out:
    for (size_t i = 0; i < tp->n_labels; i++) {
        fg_free(tp->keys[i]);
        fg_free(tp->values[i]);
    }
    fg_free(tp);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * The receiver */

static void samples_handle(void *ctx, const struct fg_http_request *req,
                           struct fg_http_response *resp)
{
    struct fg_http_receiver *r = ctx;
    struct fg_profiles *batch = NULL;
    struct fg_err err = {{0}};
    bool json;
    int rc;

    if (fg_http_media_type_is(req->content_type, "application/json")) {
        json = true;
    } else if (fg_http_media_type_is(req->content_type, "text/plain") || !req->content_type[0]) {
        json = false;
    } else {
        fg__reply_error(resp, 415, "Content-Type must be text/plain (folded stacks) or "
                        "application/json");
        return;
    }
    if (fg_profiles_new(&batch) != 0) {
        fg__reply_error(resp, 503, "out of memory");
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    rc = fg__tenant_from_headers(req, &r->tenant_headers, batch, &err);
    if (rc == 0 && json) {
        if (req->query[0])
            rc = fg_err_set(&err, FG_EINVAL, "query parameters are for text/plain bodies; "
                            "JSON carries its metadata in the body");
        else
            rc = fg_samples_json_decode(req->body, req->body_len, now, batch, &err);
    } else if (rc == 0) {
        if (memchr(req->body, '\0', req->body_len))
            rc = fg_err_set(&err, FG_EINVAL, "binary body: text/plain expects folded stacks");
        else
            rc = decode_text(req->query, req->body, req->body_len, now, batch, &err);
    }
    if (rc != 0) {
        int status = rc == FG_ENOMEM ? 503 : 400;
        fg_log(FG_LOG_DEBUG, r->base.id, "rejecting request (HTTP %d): %s", status, err.msg);
        fg__reply_error(resp, status, err.msg);
        fg_profiles_unref(batch);
        return;
    }
    uint64_t n = batch->n_samples;
    fg_metrics_set_request("http", req->body_len); /* labels the service's counters */
    rc = fg_consume(r->next, batch, &err);
    if (rc != 0) {
        fg__reply_error(resp, fg__consume_status(rc), err.msg[0] ? err.msg : fg_strerror(rc));
        return;
    }
    fg_log(FG_LOG_DEBUG, r->base.id, "accepted %llu samples", (unsigned long long)n);
    resp->status = 200;
}

static int samples_start(struct fg_component *c, struct fg_err *err)
{
    struct fg_http_receiver *r = (struct fg_http_receiver *)c;
    const struct fg_http_route http[] = {{SAMPLES_PATH, "POST", samples_handle, r, r->max_body}};
    const struct fg_http_listener_routes routes = {http, FG_ARRAY_LEN(http), NULL, 0};
    return fg_http_listener_start(&r->listener, r->base.id, &routes, err);
}

static const struct fg_component_ops samples_ops = {
    .start = samples_start,
    .shutdown = fg_http_receiver_shutdown,
    .destroy = fg_http_receiver_destroy,
};

static int samples_create(const struct fg_create_args *args, struct fg_component **out,
                          struct fg_err *err)
{
    return fg_http_receiver_create(args, &fg_samples_receiver_factory, &samples_ops, "samples",
                                   out, err);
}

const struct fg_factory fg_samples_receiver_factory = {
    .type = "samples",
    .kind = FG_KIND_RECEIVER,
    .config_size = sizeof(struct fg_http_receiver_config),
    .options = samples_options,
    .create = samples_create,
};
