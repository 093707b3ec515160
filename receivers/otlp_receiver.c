/* Receiver "otlp": OTLP profiles over HTTP (POST /v1development/profiles, protobuf and
 * JSON). gRPC arrives with the HTTP/2 issue. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_http.h"
#include "fg_log.h"
#include "fg_otlp.h"
#include "otlp_receiver.h"

#define OTLP_PROFILES_PATH "/v1development/profiles"
/* google.rpc.Code values used in Status bodies. */
#define RPC_INVALID_ARGUMENT 3
#define RPC_INTERNAL 13
#define RPC_UNAVAILABLE 14

static const struct fg_option http_options[] = {
    FG_OPT_STR("endpoint", struct otlp_http_config, endpoint, "127.0.0.1:4318",
               "host:port to listen on (port 0 picks a free port)"),
    FG_OPT_BYTES("max_request_body_size", struct otlp_http_config, max_request_body_size,
                 "20MiB", 1, (int64_t)1 << 30, "limit on the decompressed request body"),
    FG_OPT_END,
};

static const struct fg_option protocol_options[] = {
    FG_OPT_BLOCK_PRESENT("http", struct otlp_protocols, http, http_options, http_enabled,
                         "OTLP/HTTP listener"),
    FG_OPT_END,
};

static const struct fg_option otlp_options[] = {
    FG_OPT_BLOCK("protocols", struct otlp_receiver_config, protocols, protocol_options,
                 "which protocols to serve"),
    FG_OPT_END,
};

static int otlp_validate(const void *config, struct fg_err *err)
{
    const struct otlp_receiver_config *cfg = config;
    if (!cfg->protocols.http_enabled)
        return fg_err_set(err, FG_EINVAL, "protocols: at least one protocol must be enabled (http)");
    return 0;
}

struct otlp_receiver {
    struct fg_component head; /* first: the pipeline sees only this */
    struct fg_consumer *next;
    char *endpoint;
    uint64_t max_body;
    struct fg_http_server *http;
};

enum otlp_encoding { ENC_PROTO, ENC_JSON };

/* Media type without parameters, case-insensitive. */
static bool media_type_is(const char *ct, const char *type)
{
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strlen(type);
    if (strncasecmp(ct, type, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

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
    if (media_type_is(req->content_type, "application/x-protobuf") ||
        media_type_is(req->content_type, "application/protobuf")) {
        enc = ENC_PROTO;
    } else if (media_type_is(req->content_type, "application/json")) {
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

static int otlp_start(struct fg_component *c, struct fg_err *err)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    int rc = fg_http_server_new(r->endpoint, &r->http, err);
    if (rc)
        goto fail;
    struct fg_http_route route = {
        .path = OTLP_PROFILES_PATH,
        .method = "POST",
        .handler = otlp_handle,
        .ctx = r,
        .max_body = (size_t)r->max_body,
    };
    if ((rc = fg_http_server_route(r->http, &route)) != 0) {
        fg_err_set(err, rc, "cannot register %s", OTLP_PROFILES_PATH);
        goto fail;
    }
    if ((rc = fg_http_server_start(r->http, err)) != 0)
        goto fail;
    /* The host as configured (port 0 is replaced by the bound one). */
    const char *colon = strrchr(r->endpoint, ':');
    int host_len = colon ? (int)(colon - r->endpoint) : 0;
    fg_log(FG_LOG_INFO, r->head.id, "listening on %.*s:%u (OTLP/HTTP)", host_len, r->endpoint,
           (unsigned)fg_http_server_port(r->http));
    return 0;
fail:
    fg_err_prefix(err, "%s", r->head.id);
    fg_http_server_free(r->http);
    r->http = NULL;
    return rc;
}

static int otlp_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    /* Waits for handlers in flight, so whatever we acknowledged has reached next. */
    fg_http_server_stop(r->http);
    return 0;
}

static void otlp_destroy(struct fg_component *c)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    if (!r)
        return;
    fg_http_server_free(r->http);
    fg_free(r->endpoint);
    fg_free(r);
}

static const struct fg_component_ops otlp_ops = {
    .start = otlp_start,
    .shutdown = otlp_shutdown,
    .destroy = otlp_destroy,
};

extern const struct fg_factory fg_otlp_receiver_factory;

static int otlp_create(const struct fg_create_args *args, struct fg_component **out,
                       struct fg_err *err)
{
    const struct otlp_receiver_config *cfg = args->config;
    *out = NULL;
    if (!args->next)
        return fg_err_set(err, FG_EINVAL, "%s: no next consumer", args->id);
    if (!cfg->protocols.http_enabled || !cfg->protocols.http.endpoint)
        return fg_err_set(err, FG_EINVAL, "%s: protocols.http.endpoint is not set", args->id);
    struct otlp_receiver *r = fg_calloc(1, sizeof(*r));
    if (!r)
        return fg_err_set(err, FG_ENOMEM, "%s: out of memory", args->id);
    r->head.ops = &otlp_ops;
    r->head.factory = &fg_otlp_receiver_factory;
    snprintf(r->head.id, sizeof(r->head.id), "%s", args->id);
    r->next = args->next;
    r->max_body = cfg->protocols.http.max_request_body_size;
    r->endpoint = fg_strdup(cfg->protocols.http.endpoint);
    if (!r->endpoint) {
        fg_free(r);
        return fg_err_set(err, FG_ENOMEM, "%s: out of memory", args->id);
    }
    *out = &r->head;
    return 0;
}

const struct fg_factory fg_otlp_receiver_factory = {
    .type = "otlp",
    .kind = FG_KIND_RECEIVER,
    .config_size = sizeof(struct otlp_receiver_config),
    .options = otlp_options,
    .validate = otlp_validate,
    .create = otlp_create,
};
