/* The HTTP listener that receivers register routes in. Every listener serves HTTP/1.1
 * (libmicrohttpd) and HTTP/2 cleartext with prior knowledge (nghttp2) on the same port,
 * from the same routing table, so handlers never see which protocol carried the request.
 * gRPC methods are registered in the same server (fg_grpc.h).
 *
 * Threads: HTTP/1.1 requests run on a thread per connection, HTTP/2 streams and gRPC calls
 * on a small worker pool of the listener (limits.workers), never on its event loop. A
 * handler may block (decode and push into the pipeline): that holds up its own request,
 * and once `workers` handlers block at once further HTTP/2 requests wait in the pool's
 * queue (HTTP/1.1 ones do not).
 *
 * The server reads the body up to the route's limit, undoes Content-Encoding (gzip,
 * deflate) with the same limit applied to the decompressed size, and answers 404 for an
 * unknown path, 405 for a wrong method, 413 for a body over the limit, 400 for an unknown
 * or corrupt Content-Encoding, before any handler runs. */
#ifndef FG_HTTP_H
#define FG_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "fg_buf.h"
#include "fg_common.h"

struct fg_http_request {
    const char *method;
    const char *path;         /* without the query string */
    const char *query;        /* raw query string without '?', "" when none */
    const char *content_type; /* "" when absent */
    const uint8_t *body;      /* decompressed */
    size_t body_len;
    void *conn;               /* opaque, for fg_http_header */
};

/* A request header by name (case-insensitive), or NULL. Valid during the handler. */
const char *fg_http_header(const struct fg_http_request *req, const char *name);

struct fg_http_response {
    int status;                /* default 200 */
    char content_type[64];     /* default "" (none) */
    char retry_after[32];      /* sent as Retry-After when non-empty */
    struct fg_buf body;        /* freed by the server */
};

/* Runs on a server thread; several may run at once. Fills resp. */
typedef void (*fg_http_handler)(void *ctx, const struct fg_http_request *req,
                                struct fg_http_response *resp);

struct fg_http_route {
    const char *path;   /* exact match */
    const char *method; /* "POST", ... */
    fg_http_handler handler;
    void *ctx;
    size_t max_body;    /* limit on the body, before and after decompression */
};

struct fg_http_server;

/* Abuse limits of one listener; every field has a default from fg_http_limits_default. */
struct fg_http_limits {
    unsigned max_connections;         /* open connections; more are closed at accept */
    unsigned max_concurrent_streams;  /* HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS */
    size_t max_header_list_size;      /* request header names + values + 32 per field */
    unsigned max_streams_per_second;  /* HTTP/2 streams one connection may open per second */
    unsigned max_resets_per_second;   /* RST_STREAMs one connection may send per second */
    /* A connection that makes no progress (no request completed, no response sent, no
     * 16 KiB of body received) for this long is closed: idle keep-alive connections and
     * slowloris clients alike. */
    int64_t idle_timeout_ns;
    int64_t max_connection_age_ns;       /* 0 = unlimited; else GOAWAY after this long */
    int64_t max_connection_age_grace_ns; /* after that GOAWAY, streams get this long */
    unsigned workers;                 /* threads that run HTTP/2 handlers */
};

void fg_http_limits_default(struct fg_http_limits *limits);

/* endpoint is "host:port" (port 0 = any free port). Does not listen yet. */
int fg_http_server_new(const char *endpoint, struct fg_http_server **out, struct fg_err *err);
/* The route is copied; register before start. */
int fg_http_server_route(struct fg_http_server *s, const struct fg_http_route *route);
/* Replaces the limits (copied); call before start. FG_EINVAL for a zero count. */
int fg_http_server_set_limits(struct fg_http_server *s, const struct fg_http_limits *limits);
int fg_http_server_start(struct fg_http_server *s, struct fg_err *err);
/* The bound port (after start). */
uint16_t fg_http_server_port(const struct fg_http_server *s);
/* Stops accepting, waits for requests in flight to finish. */
void fg_http_server_stop(struct fg_http_server *s);
void fg_http_server_free(struct fg_http_server *s);

#endif
