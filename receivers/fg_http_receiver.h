/* Pieces shared by the receivers that listen for HTTP (otlp, pyroscope, samples): starting
 * one listener, and for the single-endpoint ones their config, create, shutdown and destroy. */
#ifndef FG_HTTP_RECEIVER_H
#define FG_HTTP_RECEIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_auth.h"
#include "fg_common.h"
#include "fg_component.h"
#include "fg_grpc.h"
#include "fg_http.h"
#include "fg_option.h"
#include "fg_tls.h"

/* One listening endpoint and the server behind it while started. */
struct fg_http_listener {
    char *endpoint;                         /* ours */
    const char *label;                      /* the protocol, in the "listening on" line */
    struct fg_http_limits limits;
    const struct fg_tls_server_config *tls; /* NULL = cleartext; borrowed from the config */
    struct fg_authenticator *auth;          /* NULL = none */
    struct fg_http_server *srv;             /* NULL until started */
};

/* What a listener serves; each route's ctx and size limit are the caller's. */
struct fg_http_listener_routes {
    const struct fg_http_route *http;
    size_t n_http;
    const struct fg_grpc_route *grpc;
    size_t n_grpc;
};

/* Opens l->endpoint with its limits, TLS and auth, registers the routes, starts serving and
 * logs the address under id. The TLS files are read here, so a reload (SIGHUP) picks up
 * renewed certificates. On failure l->srv is NULL again and err starts with id. */
int fg_http_listener_start(struct fg_http_listener *l, const char *id,
                           const struct fg_http_listener_routes *routes, struct fg_err *err);
/* Frees the server (stopping it first) and the endpoint. */
void fg_http_listener_free(struct fg_http_listener *l);

/* Media type without parameters, case-insensitive: "text/plain; charset=x" is "text/plain". */
bool fg_http_media_type_is(const char *content_type, const char *type);

/* ---- Receivers with one endpoint (pyroscope, samples) ---- */

struct fg_http_receiver_config {
    char *endpoint;
    uint64_t max_request_body_size;
    struct fg_strlist tenant_headers; /* empty = [X-Scope-OrgID] */
    bool tls_enabled;
    struct fg_tls_server_config tls;
    struct fg_auth_config auth;
};

/* The option rows of struct fg_http_receiver_config (end the table with FG_OPT_END). */
#define FG_HTTP_RECEIVER_OPTIONS(default_endpoint)                                            \
    FG_OPT_STR("endpoint", struct fg_http_receiver_config, endpoint, default_endpoint,        \
               "host:port to listen on (port 0 picks a free port)"),                          \
    FG_OPT_BYTES("max_request_body_size", struct fg_http_receiver_config,                     \
                 max_request_body_size, "20MiB", 1, (int64_t)1 << 30,                         \
                 "limit on the request body, before and after decompression"),                \
    FG_OPT_LIST("tenant_headers", struct fg_http_receiver_config, tenant_headers,             \
                "headers whose first non-empty value is the batch's tenant "                  \
                "(default [X-Scope-OrgID])"),                                                 \
    FG_OPT_BLOCK_PRESENT("tls", struct fg_http_receiver_config, tls, fg_tls_server_options,   \
                         tls_enabled,                                                         \
                         "serve TLS (HTTP/2 via ALPN h2, HTTP/1.1 otherwise); present = on"), \
    FG_OPT_BLOCK("auth", struct fg_http_receiver_config, auth, fg_auth_options,               \
                 "require credentials checked by an authenticator extension")

struct fg_http_receiver {
    struct fg_component base;         /* first: the pipeline sees only this */
    struct fg_consumer *next;
    size_t max_body;                  /* every route's limit on the request body */
    struct fg_strlist tenant_headers; /* our copy */
    struct fg_http_listener listener;
};

/* The factory's create: a receiver from args->config (a struct fg_http_receiver_config) with
 * the given ops; label names the protocol when it logs its address. */
int fg_http_receiver_create(const struct fg_create_args *args, const struct fg_factory *factory,
                            const struct fg_component_ops *ops, const char *label,
                            struct fg_component **out, struct fg_err *err);
/* fg_component_ops.shutdown: stops accepting and waits for the handlers in flight. */
int fg_http_receiver_shutdown(struct fg_component *c, int64_t deadline_ns);
/* fg_component_ops.destroy. */
void fg_http_receiver_destroy(struct fg_component *c);
/* The bound port of a started receiver, else 0 (tests). */
uint16_t fg_http_receiver_port(const struct fg_component *c);

#endif
