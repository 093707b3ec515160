/* Private to server/: the listener state that the HTTP/1.1 side (fg_http.c) and the event
 * loop with its HTTP/2 and gRPC sessions (fg_h2.c) share. */
#ifndef FG_HTTP_INTERNAL_H
#define FG_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "fg_buf.h"
#include "fg_grpc.h"
#include "fg_http.h"

enum fg__encoding { FG__ENC_IDENTITY, FG__ENC_GZIP, FG__ENC_DEFLATE };

struct fg__route {
    char *path;
    char *method;
    fg_http_handler handler;
    void *ctx;
    size_t max_body;
};

struct fg__grpc_route {
    char *path;
    fg_grpc_handler handler;
    void *ctx;
    size_t max_message;
};

/* What fg_http_request.conn and fg_grpc_request.md point at: a header lookup that works for
 * either protocol. */
struct fg__hdr_src {
    const char *(*get)(const void *src, const char *name);
    const void *src;
};

struct fg__h1_conn;
struct fg__loop;
struct fg_tls_server;

struct fg_http_server {
    char *endpoint;
    char *host; /* "" = all interfaces; without IPv6 brackets */
    char *port;
    struct fg__route *routes;
    size_t n_routes;
    struct fg__grpc_route *grpc_routes;
    size_t n_grpc_routes;
    struct fg_http_limits limits;
    struct MHD_Daemon *daemon;
    int listen_fd;
    uint16_t bound_port;
    bool started;
    atomic_int inflight;   /* HTTP/1.1 requests between the request line and completion */
    atomic_uint n_conns;   /* open connections of both protocols */
    /* HTTP/1.1 connections, so the loop can cut off the ones that make no progress. */
    pthread_mutex_t h1_mu;
    struct fg__h1_conn *h1_list;
    struct fg__loop *loop;
    /* fg_tls.h: TLS on accepted connections (NULL = cleartext) and the header check. */
    struct fg_tls_server *tls;
    int (*auth)(void *ctx, const char *authorization);
    void *auth_ctx;
};

int64_t fg__now_ns(void);

/* fg_http.c, for both protocols. */
const struct fg__route *fg__route_find(const struct fg_http_server *s, const char *path,
                                       const char *method, bool *path_known, char *allow,
                                       size_t allow_size);
const struct fg__grpc_route *fg__grpc_route_find(const struct fg_http_server *s,
                                                 const char *path);
/* Returns 0, or -1 when the Content-Encoding is not one we undo. */
int fg__parse_encoding(const char *value, enum fg__encoding *enc);
/* Hands an accepted socket that does not start with the HTTP/2 preface to libmicrohttpd;
 * the socket is closed on failure. */
int fg__h1_adopt(struct fg_http_server *s, int fd, const struct sockaddr *sa, socklen_t len);
/* Cuts off HTTP/1.1 connections without progress for limits.idle_timeout_ns. Loop thread. */
void fg__h1_police(struct fg_http_server *s, int64_t now);

/* fg_h2.c: the accept/sniff/HTTP/2 event loop and its worker pool. */
int fg__loop_start(struct fg_http_server *s, struct fg_err *err);
/* Stops accepting, sends GOAWAY, lets streams in flight finish until deadline_ns. */
void fg__loop_begin_stop(struct fg_http_server *s, int64_t deadline_ns);
/* Waits for the loop, stops the workers and frees every connection. */
void fg__loop_free(struct fg_http_server *s);

/* For the fuzz target: runs one HTTP/2 server session over data (which must start with the
 * client preface) with handlers called inline; output is discarded. */
void fg__h2_feed(struct fg_http_server *s, const uint8_t *data, size_t len);

#endif
