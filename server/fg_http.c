/* The listener's public face and its HTTP/1.1 side: our own listen socket (the event loop in
 * fg_h2.c accepts and hands non-HTTP/2 connections over), libmicrohttpd without a listen
 * socket, exact-path routing, bounded body reading and Content-Encoding undone under the
 * same bound, then the route handler. */
#include "fg_http.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_gzip.h"
#include "fg_http_internal.h"
#include "fg_log.h"
#include "fg_tls.h"

#define HTTP_LOG "http"
/* How long stop waits for requests in flight before closing their connections. */
#define HTTP_STOP_GRACE_MS 5000
/* After a chunked body passes the limit we keep reading (so the client gets its 413) only
 * this much more before closing the connection instead. */
#define HTTP_DRAIN_MAX ((size_t)16 << 20)

/* A tracked HTTP/1.1 connection (libmicrohttpd's socket context). */
struct fg__h1_conn {
    struct fg__h1_conn *prev, *next;
    int fd;
    int busy;              /* requests being handled */
    int64_t progress_ns;   /* last request completed or 16 KiB of body read */
    size_t body_since_progress;
    bool cut;
};

/* Per-request state: made by the URI callback (which also sees the raw query string) and
 * freed by the completion callback. */
struct http_req {
    struct fg_http_server *srv;
    struct fg__h1_conn *h1;
    char *query;
    const struct fg__route *route;
    enum fg__encoding encoding;
    struct fg_buf body;
    size_t drained;
    bool started;
    bool too_big;
    bool nomem;
};

/* ---- endpoint ---- */

static int parse_endpoint(const char *endpoint, char **host, char **port, struct fg_err *err)
{
    const char *h = endpoint, *hend, *p;
    if (endpoint[0] == '[') {
        h = endpoint + 1;
        hend = strchr(h, ']');
        if (!hend || hend[1] != ':')
            return fg_err_set(err, FG_EINVAL,
                              "endpoint \"%s\": expected [ipv6]:port", endpoint);
        p = hend + 2;
    } else {
        hend = strrchr(endpoint, ':');
        if (!hend)
            return fg_err_set(err, FG_EINVAL, "endpoint \"%s\": expected host:port", endpoint);
        if (memchr(endpoint, ':', (size_t)(hend - endpoint)))
            return fg_err_set(err, FG_EINVAL,
                              "endpoint \"%s\": IPv6 addresses must be in brackets ([::1]:port)",
                              endpoint);
        p = hend + 1;
    }
    size_t plen = strlen(p);
    unsigned long v = 0;
    if (plen == 0 || plen > 5)
        return fg_err_set(err, FG_EINVAL, "endpoint \"%s\": missing or invalid port", endpoint);
    for (size_t i = 0; i < plen; i++) {
        if (p[i] < '0' || p[i] > '9')
            return fg_err_set(err, FG_EINVAL, "endpoint \"%s\": invalid port \"%s\"", endpoint, p);
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v > 65535)
        return fg_err_set(err, FG_EINVAL, "endpoint \"%s\": port %lu out of range", endpoint, v);
    *host = fg_strndup(h, (size_t)(hend - h));
    *port = fg_strdup(p);
    if (!*host || !*port) {
        fg_free(*host);
        fg_free(*port);
        *host = *port = NULL;
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    }
    return 0;
}

int fg_http_server_new(const char *endpoint, struct fg_http_server **out, struct fg_err *err)
{
    *out = NULL;
    if (!endpoint)
        return fg_err_set(err, FG_EINVAL, "endpoint is not set");
    struct fg_http_server *s = fg_calloc(1, sizeof(*s));
    if (!s)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    s->listen_fd = -1;
    atomic_init(&s->inflight, 0);
    atomic_init(&s->n_conns, 0);
    pthread_mutex_init(&s->h1_mu, NULL);
    fg_http_limits_default(&s->limits);
    int rc;
    if (!(s->endpoint = fg_strdup(endpoint))) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = parse_endpoint(endpoint, &s->host, &s->port, err)) != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    fg_http_server_free(s);
    return rc;
}

void fg_http_limits_default(struct fg_http_limits *l)
{
    memset(l, 0, sizeof(*l));
    l->max_connections = 1024;
    l->max_concurrent_streams = 100;
    l->max_header_list_size = 16384;
    /* High enough for a client pipelining small calls on one connection; the reset limit is
     * what stops HTTP/2 rapid reset (CVE-2023-44487). */
    l->max_streams_per_second = 10000;
    l->max_resets_per_second = 200;
    l->idle_timeout_ns = 120 * 1000000000LL;
    l->max_connection_age_ns = 0;
    l->max_connection_age_grace_ns = 10 * 1000000000LL;
    l->workers = 4;
}

int fg_http_server_set_limits(struct fg_http_server *s, const struct fg_http_limits *l)
{
    if (s->started || l->max_connections == 0 || l->max_concurrent_streams == 0 ||
        l->max_header_list_size == 0 || l->max_streams_per_second == 0 ||
        l->max_resets_per_second == 0 || l->idle_timeout_ns <= 0 || l->workers == 0 ||
        l->max_connection_age_ns < 0 || l->max_connection_age_grace_ns < 0)
        return FG_EINVAL;
    s->limits = *l;
    return 0;
}

int fg_grpc_server_route(struct fg_http_server *s, const struct fg_grpc_route *route)
{
    if (s->started || !route->path || route->path[0] != '/' || !route->handler)
        return FG_EINVAL;
    struct fg__grpc_route *r =
        fg_realloc(s->grpc_routes, (s->n_grpc_routes + 1) * sizeof(*r));
    if (!r)
        return FG_ENOMEM;
    s->grpc_routes = r;
    r = &s->grpc_routes[s->n_grpc_routes];
    if (!(r->path = fg_strdup(route->path)))
        return FG_ENOMEM;
    r->handler = route->handler;
    r->ctx = route->ctx;
    r->max_message = route->max_message;
    s->n_grpc_routes++;
    return 0;
}

const struct fg__grpc_route *fg__grpc_route_find(const struct fg_http_server *s,
                                                 const char *path)
{
    for (size_t i = 0; i < s->n_grpc_routes; i++)
        if (strcmp(s->grpc_routes[i].path, path) == 0)
            return &s->grpc_routes[i];
    return NULL;
}

const struct fg__route *fg__route_find(const struct fg_http_server *s, const char *path,
                                       const char *method, bool *path_known, char *allow,
                                       size_t allow_size)
{
    size_t alen = 0;
    *path_known = false;
    if (allow_size)
        allow[0] = '\0';
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct fg__route *r = &s->routes[i];
        if (strcmp(r->path, path) != 0)
            continue;
        *path_known = true;
        if (strcmp(r->method, method) == 0)
            return r;
        if (alen + 1 < allow_size) {
            int n = snprintf(allow + alen, allow_size - alen, "%s%s", alen ? ", " : "",
                             r->method);
            if (n > 0)
                alen = FG_MIN(alen + (size_t)n, allow_size - 1);
        }
    }
    return NULL;
}

int fg_http_server_route(struct fg_http_server *s, const struct fg_http_route *route)
{
    if (s->started || !route->path || !route->method || !route->handler)
        return FG_EINVAL;
    struct fg__route *r = fg_realloc(s->routes, (s->n_routes + 1) * sizeof(*r));
    if (!r)
        return FG_ENOMEM;
    s->routes = r;
    r = &s->routes[s->n_routes];
    r->path = fg_strdup(route->path);
    r->method = fg_strdup(route->method);
    if (!r->path || !r->method) {
        fg_free(r->path);
        fg_free(r->method);
        return FG_ENOMEM;
    }
    r->handler = route->handler;
    r->ctx = route->ctx;
    r->max_body = route->max_body;
    s->n_routes++;
    return 0;
}

/* ---- listen socket ---- */

static int try_listen(const struct addrinfo *ai, bool dual_stack)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0)
        return -1;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? &zero : &one, sizeof(int));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Binds the first address that works. A named host prefers IPv4 (what "localhost" clients
 * try first in practice); an empty host means every interface, IPv6 dual-stack first. */
static int open_listener(struct fg_http_server *s, struct fg_err *err)
{
    bool any = s->host[0] == '\0';
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int grc = getaddrinfo(any ? NULL : s->host, s->port, &hints, &res);
    if (grc != 0)
        return fg_err_set(err, FG_EINVAL, "endpoint \"%s\": cannot resolve \"%s\": %s",
                          s->endpoint, s->host, gai_strerror(grc));
    int fd = -1, last_errno = 0;
    int order[2] = {any ? AF_INET6 : AF_INET, any ? AF_INET : AF_INET6};
    for (int pass = 0; pass < 2 && fd < 0; pass++) {
        for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            if (ai->ai_family != order[pass])
                continue;
            fd = try_listen(ai, any);
            if (fd < 0)
                last_errno = errno;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return fg_err_set(err, FG_EIO, "endpoint \"%s\": cannot listen: %s", s->endpoint,
                          last_errno ? strerror(last_errno) : "no usable address");
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        int saved = errno;
        close(fd);
        return fg_err_set(err, FG_EIO, "endpoint \"%s\": getsockname: %s", s->endpoint,
                          strerror(saved));
    }
    if (ss.ss_family == AF_INET6)
        s->bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        s->bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    s->listen_fd = fd;
    return 0;
}

/* ---- responses ---- */

static void free_body(void *p)
{
    fg_free(p);
}

static enum MHD_Result send_buf(struct MHD_Connection *conn, int status, const char *ctype,
                                const char *retry_after, const char *allow, struct fg_buf *body)
{
    struct MHD_Response *r;
    size_t len = 0;
    uint8_t *data = fg_buf_steal(body, &len);
    if (data && len > 0) {
        r = MHD_create_response_from_buffer_with_free_callback(len, data, free_body);
        if (!r)
            fg_free(data);
    } else {
        fg_free(data);
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!r)
        return MHD_NO;
    if (ctype && ctype[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (retry_after && retry_after[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    if (allow && allow[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned int)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, int status, const char *allow,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result send_text(struct MHD_Connection *conn, int status, const char *allow,
                                 const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    size_t len = FG_MIN((size_t)n, sizeof(msg) - 1);
    struct fg_buf body;
    fg_buf_init(&body, 0);
    if (fg_buf_append(&body, msg, len) != 0 || fg_buf_append(&body, "\n", 1) != 0)
        fg_buf_free(&body); /* still answer, without a body */
    return send_buf(conn, status, "text/plain; charset=utf-8", NULL, allow, &body);
}

/* ---- HTTP/1.1 connection tracking ---- */

static const char *mhd_header(const void *conn, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)conn, MHD_HEADER_KIND, name);
}

/* bytes == 0: a request completed; else body bytes read. */
static void h1_progress(struct fg_http_server *s, struct fg__h1_conn *h, size_t bytes)
{
    pthread_mutex_lock(&s->h1_mu);
    h->body_since_progress += bytes;
    if (bytes == 0 || h->body_since_progress >= 16384) {
        h->body_since_progress = 0;
        h->progress_ns = fg__now_ns();
    }
    pthread_mutex_unlock(&s->h1_mu);
}

static void h1_busy(struct fg_http_server *s, struct fg__h1_conn *h, int delta)
{
    pthread_mutex_lock(&s->h1_mu);
    h->busy += delta;
    h->progress_ns = fg__now_ns();
    pthread_mutex_unlock(&s->h1_mu);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct fg_http_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->n_conns, 1);
        struct fg__h1_conn *h = fg_calloc(1, sizeof(*h));
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!h || !ci) {
            fg_free(h);
            *socket_context = NULL;
            return;
        }
        h->fd = ci->connect_fd;
        h->progress_ns = fg__now_ns();
        pthread_mutex_lock(&s->h1_mu);
        h->next = s->h1_list;
        if (s->h1_list)
            s->h1_list->prev = h;
        s->h1_list = h;
        pthread_mutex_unlock(&s->h1_mu);
        *socket_context = h;
        return;
    }
    atomic_fetch_sub(&s->n_conns, 1);
    struct fg__h1_conn *h = *socket_context;
    if (!h)
        return;
    /* libmicrohttpd closes the socket after this returns: under h1_mu the loop can no
     * longer shut down a number the kernel may hand out again. */
    pthread_mutex_lock(&s->h1_mu);
    if (h->prev)
        h->prev->next = h->next;
    else
        s->h1_list = h->next;
    if (h->next)
        h->next->prev = h->prev;
    pthread_mutex_unlock(&s->h1_mu);
    fg_free(h);
    *socket_context = NULL;
}

void fg__h1_police(struct fg_http_server *s, int64_t now)
{
    pthread_mutex_lock(&s->h1_mu);
    for (struct fg__h1_conn *h = s->h1_list; h; h = h->next) {
        if (!h->cut && h->busy == 0 && now - h->progress_ns > s->limits.idle_timeout_ns) {
            /* libmicrohttpd's thread sees end of file and closes the connection. */
            shutdown(h->fd, SHUT_RDWR);
            h->cut = true;
        }
    }
    pthread_mutex_unlock(&s->h1_mu);
}

int fg__h1_adopt(struct fg_http_server *s, int fd, const struct sockaddr *sa, socklen_t len)
{
    if (MHD_add_connection(s->daemon, fd, sa, len) != MHD_YES) {
        /* libmicrohttpd has closed the socket */
        fg_log(FG_LOG_DEBUG, HTTP_LOG, "%s: libmicrohttpd refused a connection", s->endpoint);
        return FG_EIO;
    }
    return 0;
}

/* ---- request handling ---- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct fg_http_server *s = cls;
    struct http_req *rq = fg_calloc(1, sizeof(*rq));
    if (!rq)
        return NULL;
    const char *q = uri ? strchr(uri, '?') : NULL;
    rq->query = fg_strdup(q ? q + 1 : "");
    if (!rq->query) {
        fg_free(rq);
        return NULL;
    }
    rq->srv = s;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    rq->h1 = ci ? ci->socket_context : NULL;
    atomic_fetch_add(&s->inflight, 1);
    return rq;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_req *rq = *con_cls;
    if (!rq)
        return;
    atomic_fetch_sub(&rq->srv->inflight, 1);
    if (rq->h1)
        h1_progress(rq->srv, rq->h1, 0);
    fg_buf_free(&rq->body);
    fg_free(rq->query);
    fg_free(rq);
    *con_cls = NULL;
}

static bool token_is(const char *v, const char *word)
{
    size_t n = strlen(word);
    return strncasecmp(v, word, n) == 0 && (v[n] == '\0' || v[n] == ' ' || v[n] == '\t');
}

int fg__parse_encoding(const char *v, enum fg__encoding *enc)
{
    *enc = FG__ENC_IDENTITY;
    if (!v)
        return 0;
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v == '\0' || token_is(v, "identity"))
        return 0;
    if (token_is(v, "gzip") || token_is(v, "x-gzip")) {
        *enc = FG__ENC_GZIP;
        return 0;
    }
    if (token_is(v, "deflate")) {
        *enc = FG__ENC_DEFLATE;
        return 0;
    }
    return -1;
}

/* The first call of a request: route, check encoding and declared length, and answer
 * right away (without reading the body) when any of them rules the request out. */
static enum MHD_Result begin_request(struct fg_http_server *s, struct http_req *rq,
                                     struct MHD_Connection *conn, const char *url,
                                     const char *method)
{
    /* Credentials before anything else, and before the body is read. */
    if (s->auth &&
        s->auth(s->auth_ctx, MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_AUTHORIZATION)) != 0)
        return send_text(conn, MHD_HTTP_UNAUTHORIZED, NULL,
                         "401 unauthorized: missing or invalid credentials");
    bool path_known = false;
    char allow[128] = "";
    rq->route = fg__route_find(s, url, method, &path_known, allow, sizeof(allow));
    if (!path_known)
        return send_text(conn, MHD_HTTP_NOT_FOUND, NULL, "404 page not found: %s", url);
    if (!rq->route)
        return send_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, allow,
                         "405 method %s not allowed, supported: %s", method, allow);

    const char *ce = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (fg__parse_encoding(ce, &rq->encoding) != 0)
        return send_text(conn, MHD_HTTP_BAD_REQUEST, NULL,
                         "unsupported Content-Encoding \"%s\" (supported: gzip, deflate, identity)",
                         ce);

    size_t limit = rq->route->max_body, declared = 0;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        /* MHD has already rejected a malformed Content-Length; only the size matters. */
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (limit > 0 && (errno == ERANGE || v > limit))
            return send_text(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
                             "request body too large: %s bytes, limit %zu bytes", cl, limit);
        declared = (size_t)v;
    }
    fg_buf_init(&rq->body, limit);
    /* One allocation for the whole body when its size is known and allowed. */
    if (declared > 0 && (limit > 0 || declared <= HTTP_DRAIN_MAX) &&
        fg_buf_reserve(&rq->body, declared) != 0)
        return send_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "out of memory");
    return MHD_YES;
}

static enum MHD_Result finish_request(struct http_req *rq, struct MHD_Connection *conn,
                                      const char *url, const char *method)
{
    const struct fg__route *route = rq->route;
    if (rq->too_big)
        return send_text(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
                         "request body too large: limit %zu bytes", route->max_body);
    if (rq->nomem)
        return send_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "out of memory");

    struct fg_buf plain;
    fg_buf_init(&plain, route->max_body);
    const struct fg_buf *body = &rq->body;
    if (rq->encoding != FG__ENC_IDENTITY) {
        struct fg_err err = {{0}};
        int rc = rq->encoding == FG__ENC_GZIP
                     ? fg_gunzip(rq->body.data, rq->body.len, &plain, &err)
                     : fg_inflate_zlib(rq->body.data, rq->body.len, &plain, &err);
        fg_buf_free(&rq->body); /* the compressed bytes are no longer needed */
        if (rc != 0) {
            fg_buf_free(&plain);
            if (rc == FG_ETOOBIG)
                return send_text(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
                                 "request body too large after decompression: limit %zu bytes",
                                 route->max_body);
            if (rc == FG_ENOMEM)
                return send_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "out of memory");
            return send_text(conn, MHD_HTTP_BAD_REQUEST, NULL, "invalid %s body: %s",
                             rq->encoding == FG__ENC_GZIP ? "gzip" : "deflate", err.msg);
        }
        body = &plain;
    }

    const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_CONTENT_TYPE);
    struct fg__hdr_src hsrc = {mhd_header, conn};
    struct fg_http_request req = {
        .method = method,
        .path = url,
        .query = rq->query,
        .content_type = ctype ? ctype : "",
        .body = body->data ? body->data : (const uint8_t *)"",
        .body_len = body->len,
        .conn = &hsrc,
    };
    struct fg_http_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    if (rq->h1)
        h1_busy(rq->srv, rq->h1, +1);
    route->handler(route->ctx, &req, &resp);
    if (rq->h1)
        h1_busy(rq->srv, rq->h1, -1);
    fg_buf_free(&plain);
    fg_buf_free(&rq->body);
    if (resp.status < 100 || resp.status > 599) {
        fg_log(FG_LOG_ERROR, HTTP_LOG, "handler for %s returned status %d", url, resp.status);
        fg_buf_free(&resp.body);
        return send_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "internal error");
    }
    resp.content_type[sizeof(resp.content_type) - 1] = '\0';
    resp.retry_after[sizeof(resp.retry_after) - 1] = '\0';
    return send_buf(conn, resp.status, resp.content_type, resp.retry_after, NULL, &resp.body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct fg_http_server *s = cls;
    struct http_req *rq = *con_cls;
    if (!rq)
        return MHD_NO; /* the URI callback ran out of memory: drop the connection */
    if (!rq->started) {
        rq->started = true;
        return begin_request(s, rq, conn, url, method);
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->h1)
            h1_progress(s, rq->h1, n);
        if (rq->too_big || rq->nomem) {
            rq->drained += n;
            return rq->drained > HTTP_DRAIN_MAX ? MHD_NO : MHD_YES;
        }
        int rc = fg_buf_append(&rq->body, upload_data, n);
        if (rc == FG_ETOOBIG)
            rq->too_big = true;
        else if (rc != 0)
            rq->nomem = true;
        if (rc != 0) {
            rq->drained = rq->body.len + n;
            fg_buf_free(&rq->body);
        }
        return MHD_YES;
    }
    return finish_request(rq, conn, url, method);
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt,
                                                              va_list ap)
{
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    /* Behind TLS libmicrohttpd writes to a socketpair, where TCP_NODELAY / TCP_CORK do not
     * exist (and Nagle does not delay anything): its complaints about them are noise. */
    struct fg_http_server *s = cls;
    bool noise = s->tls && (strncmp(msg, "Setting TCP_", 12) == 0 ||
                            strncmp(msg, "Failed to push the data", 23) == 0);
    fg_log(noise ? FG_LOG_DEBUG : FG_LOG_WARN, HTTP_LOG, "libmicrohttpd: %s", msg);
}

int fg_http_server_start(struct fg_http_server *s, struct fg_err *err)
{
    if (s->started)
        return fg_err_set(err, FG_EINVAL, "endpoint \"%s\": already started", s->endpoint);
    int rc = open_listener(s, err);
    if (rc)
        return rc;
    /* A thread per HTTP/1.1 connection: handlers decode and push into the pipeline
     * synchronously, and with a fixed pool one slow handler would stall every connection its
     * worker owns. The sockets come from our event loop, which sniffs for HTTP/2 first. */
    unsigned timeout_s = (unsigned)((s->limits.idle_timeout_ns + 999999999LL) / 1000000000LL);
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
            MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET,
        0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        MHD_OPTION_CONNECTION_LIMIT, s->limits.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_END);
    if (!s->daemon) {
        rc = fg_err_set(err, FG_EIO, "endpoint \"%s\": cannot start the HTTP server",
                        s->endpoint);
        goto fail;
    }
    if ((rc = fg__loop_start(s, err)) != 0)
        goto fail;
    s->started = true;
    fg_log(FG_LOG_DEBUG, HTTP_LOG, "serving HTTP/1.1 and HTTP/2 on %s (port %u)", s->endpoint,
           (unsigned)s->bound_port);
    return 0;
fail:
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    close(s->listen_fd);
    s->listen_fd = -1;
    return rc;
}

uint16_t fg_http_server_port(const struct fg_http_server *s)
{
    return s->bound_port;
}

void fg_http_server_stop(struct fg_http_server *s)
{
    if (!s || !s->started)
        return;
    /* Stop accepting first, then let requests already being read or handled finish (their
     * data may already be acknowledged downstream), then close everything. */
    int64_t deadline = fg__now_ns() + (int64_t)HTTP_STOP_GRACE_MS * 1000000LL;
    fg__loop_begin_stop(s, deadline);
    struct timespec step = {0, 10 * 1000 * 1000};
    while (atomic_load(&s->inflight) > 0 && fg__now_ns() < deadline)
        nanosleep(&step, NULL);
    if (atomic_load(&s->inflight) > 0)
        fg_log(FG_LOG_WARN, HTTP_LOG, "%s: closing %d unfinished requests", s->endpoint,
               atomic_load(&s->inflight));
    fg__loop_free(s); /* waits for HTTP/2 streams until the same deadline */
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (s->tls)
        fg__tls_stop(s->tls); /* every plaintext end is closed: the proxies end */
    close(s->listen_fd);
    s->listen_fd = -1;
    s->started = false;
}

void fg_http_server_free(struct fg_http_server *s)
{
    if (!s)
        return;
    fg_http_server_stop(s);
    for (size_t i = 0; i < s->n_routes; i++) {
        fg_free(s->routes[i].path);
        fg_free(s->routes[i].method);
    }
    fg_free(s->routes);
    for (size_t i = 0; i < s->n_grpc_routes; i++)
        fg_free(s->grpc_routes[i].path);
    fg_free(s->grpc_routes);
    pthread_mutex_destroy(&s->h1_mu);
    fg_tls_server_free(s->tls);
    fg_free(s->endpoint);
    fg_free(s->host);
    fg_free(s->port);
    fg_free(s);
}

const char *fg_http_header(const struct fg_http_request *req, const char *name)
{
    const struct fg__hdr_src *h = req->conn;
    return h ? h->get(h->src, name) : NULL;
}
