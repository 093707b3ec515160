/* Receiver "otlp": OTLP profiles over HTTP (POST /v1development/profiles, protobuf and
 * JSON) and gRPC (ProfilesService/Export). Each configured endpoint is one listener that
 * speaks HTTP/1.1, h2c and gRPC, so both protocols work on either port. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_grpc.h"
#include "fg_http.h"
#include "fg_http_receiver.h"
#include "fg_log.h"
#include "fg_metrics.h"
#include "fg_otlp.h"
#include "otlp_receiver.h"

#define OTLP_PROFILES_PATH "/v1development/profiles"
#define OTLP_GRPC_EXPORT "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
#define OTLP_GRPC_LEGACY \
    "/opentelemetry.proto.collector.profiles.v1experimental.ProfilesService/Export"
/* google.rpc.Code values used in Status bodies. */
#define RPC_INVALID_ARGUMENT 3
#define RPC_INTERNAL 13
#define RPC_UNAVAILABLE 14
/* What overloaded clients are told to wait (RetryInfo, Retry-After). */
#define RETRY_DELAY_NS 1000000000LL
#define MIB ((int64_t)1 << 20)
#define SEC 1000000000LL

/* The abuse limits, the same keys in both protocol blocks. */
#define LIMIT_OPTIONS(T)                                                                      \
    FG_OPT_INTEGER("max_connections", T, limits.max_connections, "1024", 1, 1000000,          \
                   "open connections on this listener; more are closed at once"),             \
    FG_OPT_INTEGER("max_concurrent_streams", T, limits.max_concurrent_streams, "100", 1,      \
                   100000, "HTTP/2 streams (calls) in flight per connection"),               \
    FG_OPT_BYTES("max_header_list_size", T, limits.max_header_list_size, "16KiB", 1024,       \
                 (int64_t)1 << 24, "request headers per request (names + values + 32 each)"), \
    FG_OPT_INTEGER("max_streams_per_second", T, limits.max_streams_per_second, "10000", 1,    \
                   10000000, "HTTP/2 streams one connection may open per second"),           \
    FG_OPT_INTEGER("max_resets_per_second", T, limits.max_resets_per_second, "200", 1,        \
                   10000000, "RST_STREAMs one connection may send per second (rapid reset)"), \
    FG_OPT_INTEGER("workers", T, limits.workers, "4", 1, 256,                                 \
                   "threads that run HTTP/2 and gRPC requests"),                             \
    FG_OPT_BLOCK_PRESENT("tls", T, tls, fg_tls_server_options, tls_enabled,                   \
                         "serve TLS (HTTP/2 via ALPN h2, HTTP/1.1 otherwise); present = on"), \
    FG_OPT_BLOCK("auth", T, auth, fg_auth_options,                                            \
                 "require credentials checked by an authenticator extension")

static const struct fg_option http_options[] = {
    FG_OPT_STR("endpoint", struct otlp_http_config, endpoint, "127.0.0.1:4318",
               "host:port to listen on (port 0 picks a free port)"),
    FG_OPT_BYTES("max_request_body_size", struct otlp_http_config, max_request_body_size,
                 "20MiB", 1, (int64_t)1 << 30, "limit on the decompressed request body"),
    FG_OPT_DUR("idle_timeout", struct otlp_http_config, idle_timeout, "2m", SEC / 10,
               24 * 3600 * SEC,
               "close a connection without progress (a request completed or 16 KiB of body "
               "read) for this long: idle keep-alive and slowloris clients"),
    LIMIT_OPTIONS(struct otlp_http_config),
    FG_OPT_END,
};

static const struct fg_option grpc_server_params_options[] = {
    FG_OPT_DUR("max_connection_idle", struct otlp_grpc_server_params, max_connection_idle, "2m",
               SEC / 10, 24 * 3600 * SEC,
               "close a connection without progress (a call completed or 16 KiB of message "
               "read) for this long: idle and slowloris clients"),
    FG_OPT_DUR("max_connection_age", struct otlp_grpc_server_params, max_connection_age, "0s",
               0, 365 * 24 * 3600 * SEC, "send GOAWAY after a connection is this old (0 = never)"),
    FG_OPT_DUR("max_connection_age_grace", struct otlp_grpc_server_params,
               max_connection_age_grace, "10s", 0, 24 * 3600 * SEC,
               "calls in flight get this long after that GOAWAY"),
    FG_OPT_END,
};

static const struct fg_option grpc_keepalive_options[] = {
    FG_OPT_BLOCK("server_parameters", struct otlp_grpc_keepalive, server_parameters,
                 grpc_server_params_options, "connection lifetime"),
    FG_OPT_END,
};

static const struct fg_option grpc_options[] = {
    FG_OPT_STR("endpoint", struct otlp_grpc_config, endpoint, "127.0.0.1:4317",
               "host:port to listen on (port 0 picks a free port)"),
    FG_OPT_INTEGER("max_recv_msg_size_mib", struct otlp_grpc_config, max_recv_msg_size_mib, "4",
                   1, 64, "limit on a request message in MiB, compressed and decompressed"),
    FG_OPT_BLOCK("keepalive", struct otlp_grpc_config, keepalive, grpc_keepalive_options,
                 "keepalive and connection age"),
    LIMIT_OPTIONS(struct otlp_grpc_config),
    FG_OPT_END,
};

static const struct fg_option protocol_options[] = {
    FG_OPT_BLOCK_PRESENT("http", struct otlp_protocols, http, http_options, http_enabled,
                         "OTLP/HTTP listener"),
    FG_OPT_BLOCK_PRESENT("grpc", struct otlp_protocols, grpc, grpc_options, grpc_enabled,
                         "OTLP/gRPC listener"),
    FG_OPT_END,
};

static const struct fg_option otlp_options[] = {
    FG_OPT_BLOCK("protocols", struct otlp_receiver_config, protocols, protocol_options,
                 "which protocols to serve"),
    FG_OPT_END,
};

/* Port 0 never collides. */
static bool same_endpoint(const char *a, const char *b)
{
    const char *colon = strrchr(a, ':');
    return strcmp(a, b) == 0 && !(colon && strcmp(colon, ":0") == 0);
}

static int otlp_validate(const void *config, struct fg_err *err)
{
    const struct otlp_receiver_config *cfg = config;
    const struct otlp_protocols *p = &cfg->protocols;
    if (!p->http_enabled && !p->grpc_enabled)
        return fg_err_set(err, FG_EINVAL,
                          "protocols: at least one protocol must be enabled (grpc, http)");
    if (p->http_enabled && p->http.tls_enabled && (!p->http.tls.cert_file || !p->http.tls.key_file))
        return fg_err_set(err, FG_EINVAL,
                          "protocols.http.tls: cert_file and key_file are both required");
    if (p->grpc_enabled && p->grpc.tls_enabled && (!p->grpc.tls.cert_file || !p->grpc.tls.key_file))
        return fg_err_set(err, FG_EINVAL,
                          "protocols.grpc.tls: cert_file and key_file are both required");
    if (p->http_enabled && p->grpc_enabled && p->http.endpoint && p->grpc.endpoint &&
        same_endpoint(p->http.endpoint, p->grpc.endpoint))
        return fg_err_set(err, FG_EINVAL,
                          "protocols.grpc.endpoint: \"%s\" is also the http endpoint; every "
                          "listener serves both protocols, so enable only one of them",
                          p->grpc.endpoint);
    return 0;
}

/* One listener and the limits its routes get. */
struct otlp_listener {
    struct fg_http_listener http; /* endpoint, label, limits, TLS, auth, server */
    size_t max_body;              /* HTTP route */
    size_t max_message;           /* gRPC routes */
};

struct otlp_receiver {
    struct fg_component head; /* first: the pipeline sees only this */
    struct fg_consumer *next;
    struct otlp_listener listeners[2];
    size_t n_listeners;
};

enum otlp_encoding { ENC_PROTO, ENC_JSON };

static const char *encoding_ctype(enum otlp_encoding enc)
{
    return enc == ENC_JSON ? "application/json" : "application/x-protobuf";
}

static void set_ctype(struct fg_http_response *resp, const char *ctype)
{
    snprintf(resp->content_type, sizeof(resp->content_type), "%s", ctype);
}

/* An error answer: google.rpc.Status in the request's encoding. */
static void reply_status(struct fg_http_response *resp, enum otlp_encoding enc, int http_status,
                         int rpc_code, const char *message)
{
    fg_buf_free(&resp->body);
    int rc = enc == ENC_JSON ? fg_otlp_encode_status_json(rpc_code, message, &resp->body)
                             : fg_otlp_encode_status_proto(rpc_code, message, &resp->body);
    if (rc != 0)
        fg_buf_free(&resp->body); /* the status code alone still tells the client */
    resp->status = http_status;
    set_ctype(resp, encoding_ctype(enc));
    if (http_status == 503 || http_status == 429)
        snprintf(resp->retry_after, sizeof(resp->retry_after), "1");
}

static void reply_success(struct fg_http_response *resp, enum otlp_encoding enc)
{
    int rc = enc == ENC_JSON ? fg_otlp_encode_response_json(0, NULL, &resp->body)
                             : fg_otlp_encode_response_proto(0, NULL, &resp->body);
    if (rc != 0) {
        /* The data is already accepted downstream; an empty body is still a full success. */
        fg_buf_free(&resp->body);
    }
    resp->status = 200;
    set_ctype(resp, encoding_ctype(enc));
}

static void otlp_handle(void *ctx, const struct fg_http_request *req,
                        struct fg_http_response *resp)
{
    struct otlp_receiver *r = ctx;
    enum otlp_encoding enc;
    if (fg_http_media_type_is(req->content_type, "application/x-protobuf") ||
        fg_http_media_type_is(req->content_type, "application/protobuf")) {
        enc = ENC_PROTO;
    } else if (fg_http_media_type_is(req->content_type, "application/json")) {
        enc = ENC_JSON;
    } else {
        resp->status = 415;
        set_ctype(resp, "text/plain; charset=utf-8");
        fg_buf_printf(&resp->body,
                      "415 unsupported media type \"%s\", supported: [application/json, "
                      "application/x-protobuf]\n",
                      req->content_type);
        return;
    }

    struct fg_profiles *batch = NULL;
    struct fg_err err = {{0}};
    int rc = enc == ENC_JSON ? fg_otlp_decode_json(req->body, req->body_len, &batch, &err)
                             : fg_otlp_decode_proto(req->body, req->body_len, &batch, &err);
    if (rc == FG_ENOMEM) {
        reply_status(resp, enc, 503, RPC_UNAVAILABLE, "out of memory while decoding");
        return;
    }
    if (rc != 0) {
        fg_log(FG_LOG_DEBUG, r->head.id, "rejecting request: %s", err.msg);
        reply_status(resp, enc, 400, RPC_INVALID_ARGUMENT, err.msg);
        return;
    }
    if (batch->n_resources == 0) {
        fg_profiles_unref(batch);
        reply_success(resp, enc);
        return;
    }
    uint64_t n_samples = batch->n_samples;
    fg_metrics_set_request("http", req->body_len); /* labels the service's counters */
    rc = fg_consume(r->next, batch, &err); /* takes the batch */
    switch (rc) {
    case 0:
        fg_log(FG_LOG_DEBUG, r->head.id, "accepted %llu samples",
               (unsigned long long)n_samples);
        reply_success(resp, enc);
        break;
    case FG_EINVAL:
        reply_status(resp, enc, 400, RPC_INVALID_ARGUMENT, err.msg);
        break;
    case FG_EPERMANENT:
        reply_status(resp, enc, 500, RPC_INTERNAL, err.msg);
        break;
    default:
        /* Full, retryable, stopping, out of memory or anything unexpected: the data was not
         * kept, so the client must send it again. */
        fg_log(FG_LOG_DEBUG, r->head.id, "refusing request (%s): %s", fg_strerror(rc),
               err.msg);
        reply_status(resp, enc, 503, RPC_UNAVAILABLE,
                     err.msg[0] ? err.msg : fg_strerror(rc));
        break;
    }
}

/* gRPC Export: the same decoding and status mapping as HTTP (WIRE.md 3.2). */
static void grpc_overloaded(struct fg_grpc_response *resp, const char *message)
{
    resp->status = FG_GRPC_UNAVAILABLE;
    snprintf(resp->message, sizeof(resp->message), "%s", message);
    if (fg_grpc_status_details(FG_GRPC_UNAVAILABLE, message, RETRY_DELAY_NS, &resp->details))
        fg_buf_free(&resp->details); /* the code alone still says "retry" */
}

static void otlp_grpc_export(void *ctx, const struct fg_grpc_request *req,
                             struct fg_grpc_response *resp)
{
    struct otlp_receiver *r = ctx;
    struct fg_profiles *batch = NULL;
    struct fg_err err = {{0}};
    int rc = fg_otlp_decode_proto(req->message, req->message_len, &batch, &err);
    if (rc == FG_ENOMEM) {
        grpc_overloaded(resp, "out of memory while decoding");
        return;
    }
    if (rc != 0) {
        fg_log(FG_LOG_DEBUG, r->head.id, "rejecting gRPC request: %s", err.msg);
        resp->status = FG_GRPC_INVALID_ARGUMENT;
        snprintf(resp->message, sizeof(resp->message), "%s", err.msg);
        return;
    }
    uint64_t n_samples = batch->n_samples;
    if (batch->n_resources == 0) {
        fg_profiles_unref(batch); /* an empty request is a success with nothing to pass on */
        rc = 0;
    } else {
        fg_metrics_set_request("grpc", req->message_len);
        rc = fg_consume(r->next, batch, &err); /* takes the batch */
    }
    switch (rc) {
    case 0:
        fg_log(FG_LOG_DEBUG, r->head.id, "accepted %llu samples (gRPC)",
               (unsigned long long)n_samples);
        if (fg_otlp_encode_response_proto(0, NULL, &resp->body) != 0)
            fg_buf_free(&resp->body); /* an empty message is the same full success */
        break;
    case FG_EINVAL:
        resp->status = FG_GRPC_INVALID_ARGUMENT;
        snprintf(resp->message, sizeof(resp->message), "%s", err.msg);
        break;
    case FG_EPERMANENT:
        resp->status = FG_GRPC_INTERNAL;
        snprintf(resp->message, sizeof(resp->message), "%s", err.msg);
        break;
    default:
        fg_log(FG_LOG_DEBUG, r->head.id, "refusing gRPC request (%s): %s", fg_strerror(rc),
               err.msg);
        grpc_overloaded(resp, err.msg[0] ? err.msg : fg_strerror(rc));
        break;
    }
}

static void otlp_grpc_legacy(void *ctx, const struct fg_grpc_request *req,
                             struct fg_grpc_response *resp)
{
    resp->status = FG_GRPC_UNIMPLEMENTED;
    snprintf(resp->message, sizeof(resp->message),
             "OTLP profiles v1experimental is not supported; send "
             "opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export "
             "(OTLP 1.4.0 or later)");
}

static int listener_start(struct otlp_receiver *r, struct otlp_listener *l, struct fg_err *err)
{
    const struct fg_http_route http[] = {
        {OTLP_PROFILES_PATH, "POST", otlp_handle, r, l->max_body},
    };
    const struct fg_grpc_route grpc[] = {
        {OTLP_GRPC_EXPORT, otlp_grpc_export, r, l->max_message},
        {OTLP_GRPC_LEGACY, otlp_grpc_legacy, r, l->max_message},
    };
    const struct fg_http_listener_routes routes = {http, FG_ARRAY_LEN(http), grpc,
                                                   FG_ARRAY_LEN(grpc)};
    return fg_http_listener_start(&l->http, r->head.id, &routes, err);
}

static int otlp_start(struct fg_component *c, struct fg_err *err)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    int rc = 0;
    for (size_t i = 0; i < r->n_listeners; i++) {
        if ((rc = listener_start(r, &r->listeners[i], err)) != 0)
            goto fail;
    }
    return 0;
fail:
    for (size_t i = 0; i < r->n_listeners; i++) {
        fg_http_server_free(r->listeners[i].http.srv);
        r->listeners[i].http.srv = NULL;
    }
    return rc;
}

static int otlp_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    /* Waits for handlers in flight, so whatever we acknowledged has reached next. Both
     * listeners stop accepting first, then each drains. */
    for (size_t i = 0; i < r->n_listeners; i++)
        fg_http_server_stop(r->listeners[i].http.srv);
    return 0;
}

static void otlp_destroy(struct fg_component *c)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    if (!r)
        return;
    for (size_t i = 0; i < r->n_listeners; i++)
        fg_http_listener_free(&r->listeners[i].http);
    fg_free(r);
}

static const struct fg_component_ops otlp_ops = {
    .start = otlp_start,
    .shutdown = otlp_shutdown,
    .destroy = otlp_destroy,
};

extern const struct fg_factory fg_otlp_receiver_factory;

static void limits_from(const struct otlp_limits *in, int64_t idle, int64_t age,
                        int64_t grace, struct fg_http_limits *out)
{
    fg_http_limits_default(out);
    out->max_connections = (unsigned)in->max_connections;
    out->max_concurrent_streams = (unsigned)in->max_concurrent_streams;
    out->max_header_list_size = (size_t)in->max_header_list_size;
    out->max_streams_per_second = (unsigned)in->max_streams_per_second;
    out->max_resets_per_second = (unsigned)in->max_resets_per_second;
    out->workers = (unsigned)in->workers;
    out->idle_timeout_ns = idle;
    out->max_connection_age_ns = age;
    out->max_connection_age_grace_ns = grace;
}

static int otlp_create(const struct fg_create_args *args, struct fg_component **out,
                       struct fg_err *err)
{
    const struct otlp_receiver_config *cfg = args->config;
    const struct otlp_protocols *p = &cfg->protocols;
    *out = NULL;
    if (!args->next)
        return fg_err_set(err, FG_EINVAL, "%s: no next consumer", args->id);
    if ((p->http_enabled && !p->http.endpoint) || (p->grpc_enabled && !p->grpc.endpoint) ||
        (!p->http_enabled && !p->grpc_enabled))
        return fg_err_set(err, FG_EINVAL, "%s: protocols.http.endpoint or "
                                          "protocols.grpc.endpoint is not set", args->id);
    struct otlp_receiver *r = fg_calloc(1, sizeof(*r));
    if (!r)
        return fg_err_set(err, FG_ENOMEM, "%s: out of memory", args->id);
    r->head.ops = &otlp_ops;
    r->head.factory = &fg_otlp_receiver_factory;
    snprintf(r->head.id, sizeof(r->head.id), "%s", args->id);
    r->next = args->next;
    int rc = 0;
    size_t grpc_max = p->grpc_enabled ? (size_t)(p->grpc.max_recv_msg_size_mib * MIB)
                                      : (size_t)(4 * MIB);
    /* The gRPC listener first: the Collector logs it first too. */
    if (p->grpc_enabled) {
        struct otlp_listener *l = &r->listeners[r->n_listeners++];
        const struct otlp_grpc_server_params *sp = &p->grpc.keepalive.server_parameters;
        l->http.endpoint = fg_strdup(p->grpc.endpoint);
        l->http.label = "OTLP/gRPC";
        l->max_message = grpc_max;
        l->max_body = p->http_enabled ? (size_t)p->http.max_request_body_size : grpc_max;
        limits_from(&p->grpc.limits, sp->max_connection_idle, sp->max_connection_age,
                    sp->max_connection_age_grace, &l->http.limits);
        l->http.tls = p->grpc.tls_enabled ? &p->grpc.tls : NULL;
        if ((rc = fg_auth_resolve(args, &p->grpc.auth, &l->http.auth, err)) != 0) {
            fg_err_prefix(err, "protocols.grpc");
            goto fail;
        }
    }
    if (p->http_enabled) {
        struct otlp_listener *l = &r->listeners[r->n_listeners++];
        l->http.endpoint = fg_strdup(p->http.endpoint);
        l->http.label = "OTLP/HTTP";
        l->max_message = grpc_max;
        l->max_body = (size_t)p->http.max_request_body_size;
        limits_from(&p->http.limits, p->http.idle_timeout, 0, 10 * SEC, &l->http.limits);
        l->http.tls = p->http.tls_enabled ? &p->http.tls : NULL;
        if ((rc = fg_auth_resolve(args, &p->http.auth, &l->http.auth, err)) != 0) {
            fg_err_prefix(err, "protocols.http");
            goto fail;
        }
    }
    for (size_t i = 0; i < r->n_listeners; i++) {
        if (!r->listeners[i].http.endpoint) {
            rc = fg_err_set(err, FG_ENOMEM, "out of memory");
            goto fail;
        }
    }
    *out = &r->head;
    return 0;
fail:
    otlp_destroy(&r->head);
    return rc;
}

const struct fg_factory fg_otlp_receiver_factory = {
    .type = "otlp",
    .kind = FG_KIND_RECEIVER,
    .config_size = sizeof(struct otlp_receiver_config),
    .options = otlp_options,
    .validate = otlp_validate,
    .create = otlp_create,
};
