/* The listener's event loop: accepts connections, sniffs the HTTP/2 preface (anything else
 * goes to libmicrohttpd), and runs nghttp2 server sessions (mem_recv / mem_send, no I/O in
 * nghttp2) for plain HTTP routes and gRPC unary methods, with the abuse limits.
 *
 * Threads: one loop thread owns every socket and nghttp2 session. A complete request is
 * handed to a small worker pool (handlers may block in decode or the pipeline); the worker
 * puts the stream on a done list and wakes the loop through an eventfd, and only the loop
 * submits the response. A stream or connection that goes away while its handler runs is
 * kept (marked) until the worker hands it back. */
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_gzip.h"
#include "fg_http_internal.h"
#include "fg_log.h"
#include "fg_tls.h"

#define H2_LOG "http"
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define H2_TICK_NS (200 * 1000000LL)
#define H2_READ_CHUNK 16384
/* Stop reading from a peer that does not read its responses. */
#define H2_OUT_HIGH ((size_t)1 << 20)
/* Body bytes that count as progress for the idle timeout. */
#define H2_PROGRESS_BYTES 16384
#define H2_STREAM_WINDOW ((int32_t)1 << 20)
#define H2_CONN_WINDOW ((int32_t)4 << 20)
#define H2_LINGER_NS (1000 * 1000000LL)
#define H2_DISCARD_MAX ((uint64_t)64 << 20)
#define DEFER_HTTP 1
#define DEFER_GRPC 2
#define GRPC_DEFAULT_MAX ((size_t)4 << 20)
#define GRPC_ACCEPT "identity,gzip"

struct hdr {
    char *name;
    char *value;
};

struct h2_conn;

struct h2_stream {
    struct h2_conn *conn;
    struct h2_stream *cprev, *cnext; /* the connection's streams */
    struct h2_stream *qnext;         /* job queue or done list */
    int32_t id;
    struct hdr *hdrs;
    size_t n_hdrs, cap_hdrs, hdr_bytes;
    struct fg__hdr_src hsrc;
    const char *method, *path, *ctype; /* point into hdrs */
    bool hdr_too_big;
    bool grpc;
    bool headers_done;
    const struct fg__route *route;
    const struct fg__grpc_route *groute;
    enum fg__encoding enc;
    bool grpc_gzip;      /* request grpc-encoding is gzip */
    bool accept_gzip;    /* the client takes gzip responses */
    size_t limit;
    struct fg_buf body;
    struct fg_buf plain; /* decompressed body or gRPC message */
    int64_t deadline_ns;
    char allow[128]; /* Allow of a 405 */
    bool in_job, closed, answered;
    bool req_done; /* END_STREAM received */
    /* An error found before the request ended is sent when it ends (the body in between is
     * discarded), so clients that cannot take an early answer (libcurl 7.88) still read it;
     * past H2_DISCARD_MAX it is sent at once, followed by RST_STREAM(NO_ERROR). */
    int deferred;  /* 0, or DEFER_HTTP / DEFER_GRPC */
    int deferred_code;
    char deferred_msg[512];
    uint64_t discarded;
    /* the handler's answer */
    struct fg_http_response hresp;
    struct fg_grpc_response gresp;
    /* what the data provider sends */
    struct fg_buf out;
    size_t out_off;
};

enum conn_state { CONN_SNIFF, CONN_H2 };

struct h2_conn {
    struct fg__loop *loop;
    struct h2_conn *prev, *next;
    int fd; /* -1 when fuzzing */
    enum conn_state state;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    nghttp2_session *session;
    struct fg_buf out;
    size_t out_off;
    uint32_t events;
    int64_t accepted_ns, progress_ns, goaway_ns, close_by_ns;
    uint64_t body_since_progress;
    struct h2_stream *streams;
    unsigned jobs;
    bool dead;
    bool goaway;
    bool calm;   /* terminated for exceeding a rate */
    bool linger; /* dead, but the socket is still drained before closing */
    int64_t win_start_ns;
    unsigned win_streams, win_resets;
};

struct fg__loop {
    struct fg_http_server *srv;
    int epfd, evfd;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    _Atomic int64_t stop_deadline;
    bool stopping;
    struct h2_conn *conns;
    size_t n_conns;
    bool inline_jobs; /* fuzzing: handlers run on the caller */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct h2_stream *q_head, *q_tail, *done;
    bool q_stop;
    pthread_t *workers;
    unsigned n_workers;
    int64_t last_reject_log;
    int64_t next_deadline; /* soonest grpc-timeout of a stream; 0 = none */
    /* tags for epoll */
    char listen_tag, ev_tag;
};

int64_t fg__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- streams ---- */

static const char *stream_header(const void *src, const char *name)
{
    const struct h2_stream *st = src;
    for (size_t i = 0; i < st->n_hdrs; i++)
        if (strcasecmp(st->hdrs[i].name, name) == 0)
            return st->hdrs[i].value;
    return NULL;
}

const char *fg_grpc_metadata(const struct fg_grpc_request *req, const char *name)
{
    const struct fg__hdr_src *h = req->md;
    return h ? h->get(h->src, name) : NULL;
}

static void stream_free(struct h2_stream *st)
{
    for (size_t i = 0; i < st->n_hdrs; i++) {
        fg_free(st->hdrs[i].name);
        fg_free(st->hdrs[i].value);
    }
    fg_free(st->hdrs);
    fg_buf_free(&st->body);
    fg_buf_free(&st->plain);
    fg_buf_free(&st->hresp.body);
    fg_buf_free(&st->gresp.body);
    fg_buf_free(&st->gresp.details);
    fg_buf_free(&st->out);
    fg_free(st);
}

static void stream_unlink(struct h2_stream *st)
{
    struct h2_conn *c = st->conn;
    if (st->cprev)
        st->cprev->cnext = st->cnext;
    else if (c->streams == st)
        c->streams = st->cnext;
    if (st->cnext)
        st->cnext->cprev = st->cprev;
    st->cprev = st->cnext = NULL;
}

/* ---- connections: output ---- */

static void conn_set_events(struct h2_conn *c)
{
    if (c->fd < 0 || c->dead || c->state != CONN_H2)
        return;
    size_t pending = c->out.len - c->out_off;
    uint32_t ev = 0;
    if (pending)
        ev |= EPOLLOUT;
    if (pending < H2_OUT_HIGH && nghttp2_session_want_read(c->session))
        ev |= EPOLLIN;
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

/* Serializes what nghttp2 has to send and writes as much as the socket takes.
 * Returns -1 when the connection is broken. */
static int conn_flush(struct h2_conn *c)
{
    if (c->dead)
        return -1;
    for (;;) {
        while (c->out.len - c->out_off < 65536 && nghttp2_session_want_write(c->session)) {
            const uint8_t *p = NULL;
            ssize_t n = nghttp2_session_mem_send(c->session, &p);
            if (n < 0)
                return -1;
            if (n == 0)
                break;
            if (c->fd < 0)
                continue; /* fuzzing: nobody reads */
            if (fg_buf_append(&c->out, p, (size_t)n) != 0)
                return -1;
        }
        size_t pending = c->out.len - c->out_off;
        if (pending == 0)
            break;
        ssize_t w = send(c->fd, c->out.data + c->out_off, pending, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        c->out_off += (size_t)w;
        if (c->out_off == c->out.len) {
            c->out.len = 0;
            c->out_off = 0;
        }
    }
    if (c->out.len == 0 && c->out.cap > 262144)
        fg_buf_free(&c->out); /* do not keep a big buffer on an idle connection */
    conn_set_events(c);
    return 0;
}

/* ---- responses ---- */

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                         size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                         void *user_data)
{
    struct h2_stream *st = source->ptr;
    size_t left = st->out.len - st->out_off;
    size_t n = FG_MIN(left, length);
    if (n)
        memcpy(buf, st->out.data + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out.len) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->grpc) {
            char code[16];
            char msg[3 * sizeof(st->gresp.message) + 1];
            snprintf(code, sizeof(code), "%d", st->gresp.status);
            fg_grpc_percent_encode(st->gresp.message, msg, sizeof(msg));
            nghttp2_nv tr[2] = {
                {(uint8_t *)"grpc-status", (uint8_t *)code, 11, strlen(code),
                 NGHTTP2_NV_FLAG_NONE},
                {(uint8_t *)"grpc-message", (uint8_t *)msg, 12, strlen(msg),
                 NGHTTP2_NV_FLAG_NONE},
            };
            *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            if (nghttp2_submit_trailer(session, stream_id, tr, msg[0] ? 2 : 1) != 0)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
    }
    return (ssize_t)n;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}

/* Sends the HTTP response in st->hresp. */
static void answer_http(struct h2_stream *st)
{
    struct h2_conn *c = st->conn;
    struct fg_http_response *r = &st->hresp;
    char status[8], clen[24];
    nghttp2_nv nv[7];
    size_t n = 0;
    if (r->status < 100 || r->status > 599)
        r->status = 500;
    snprintf(status, sizeof(status), "%d", r->status);
    nv[n++] = (nghttp2_nv)NV(":status", status);
    r->content_type[sizeof(r->content_type) - 1] = '\0';
    r->retry_after[sizeof(r->retry_after) - 1] = '\0';
    if (r->content_type[0])
        nv[n++] = (nghttp2_nv)NV("content-type", r->content_type);
    if (r->retry_after[0])
        nv[n++] = (nghttp2_nv)NV("retry-after", r->retry_after);
    if (st->allow[0])
        nv[n++] = (nghttp2_nv)NV("allow", st->allow);
    fg_buf_free(&st->out);
    st->out = r->body;
    memset(&r->body, 0, sizeof(r->body));
    st->out_off = 0;
    snprintf(clen, sizeof(clen), "%zu", st->out.len);
    nv[n++] = (nghttp2_nv)NV("content-length", clen);
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
    st->answered = true;
    if (nghttp2_submit_response(c->session, st->id, nv, n, st->out.len ? &prd : NULL) != 0)
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_INTERNAL_ERROR);
}

static void http_error(struct h2_stream *st, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void send_http_error(struct h2_stream *st, int status, const char *msg)
{
    fg_buf_free(&st->hresp.body);
    st->hresp.status = status;
    snprintf(st->hresp.content_type, sizeof(st->hresp.content_type),
             "text/plain; charset=utf-8");
    if (fg_buf_append_str(&st->hresp.body, msg) != 0 ||
        fg_buf_append(&st->hresp.body, "\n", 1) != 0)
        fg_buf_free(&st->hresp.body);
    answer_http(st);
}

static void defer_or_send(struct h2_stream *st, int kind, int code, const char *msg);

static void http_error(struct h2_stream *st, int status, const char *fmt, ...)
{
    va_list ap;
    char msg[512];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    defer_or_send(st, DEFER_HTTP, status, msg);
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Unpadded base64, as gRPC emits binary metadata. */
static int base64_encode(const uint8_t *in, size_t len, struct fg_buf *out)
{
    int rc = fg_buf_reserve(out, (len + 2) / 3 * 4 + 1);
    if (rc)
        return rc;
    char *o = (char *)out->data + out->len;
    size_t i = 0, k = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        o[k++] = b64chars[v >> 18 & 63];
        o[k++] = b64chars[v >> 12 & 63];
        o[k++] = b64chars[v >> 6 & 63];
        o[k++] = b64chars[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        o[k++] = b64chars[v >> 18 & 63];
        o[k++] = b64chars[v >> 12 & 63];
        if (i + 1 < len)
            o[k++] = b64chars[v >> 6 & 63];
    }
    out->len += k;
    return 0;
}

/* A Trailers-Only response: one HEADERS frame with END_STREAM. Does not touch st->gresp,
 * which a worker may be filling when a deadline passes. */
static void trailers_only(struct h2_stream *st, int status, const char *message,
                          const struct fg_buf *details)
{
    struct h2_conn *c = st->conn;
    char code[16];
    char msg[3 * sizeof(st->gresp.message) + 1];
    struct fg_buf det = {0};
    st->answered = true;
    snprintf(code, sizeof(code), "%d", status);
    fg_grpc_percent_encode(message, msg, sizeof(msg));
    nghttp2_nv nv[6];
    size_t n = 0;
    nv[n++] = (nghttp2_nv)NV(":status", "200");
    nv[n++] = (nghttp2_nv)NV("content-type", "application/grpc");
    nv[n++] = (nghttp2_nv)NV("grpc-accept-encoding", GRPC_ACCEPT);
    nv[n++] = (nghttp2_nv)NV("grpc-status", code);
    if (msg[0])
        nv[n++] = (nghttp2_nv)NV("grpc-message", msg);
    if (details && details->len && base64_encode(details->data, details->len, &det) == 0) {
        nv[n++] = (nghttp2_nv){(uint8_t *)"grpc-status-details-bin", det.data, 23, det.len,
                               NGHTTP2_NV_FLAG_NONE};
    }
    if (nghttp2_submit_response(c->session, st->id, nv, n, NULL) != 0)
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_INTERNAL_ERROR);
    fg_buf_free(&det);
}

/* Sends the handler's st->gresp: headers + message + trailers when OK, Trailers-Only
 * otherwise. */
static void answer_grpc(struct h2_stream *st)
{
    struct h2_conn *c = st->conn;
    struct fg_grpc_response *r = &st->gresp;
    r->message[sizeof(r->message) - 1] = '\0';
    if (r->status != FG_GRPC_OK) {
        trailers_only(st, r->status, r->message, &r->details);
        return;
    }
    st->answered = true;
    fg_buf_free(&st->out);
    st->out_off = 0;
    bool gz = st->grpc_gzip && st->accept_gzip;
    struct fg_buf z = {0};
    if (gz && fg_gzip(r->body.data ? r->body.data : (const uint8_t *)"", r->body.len, 6, &z) != 0)
        gz = false;
    const struct fg_buf *msg = gz ? &z : &r->body;
    uint8_t prefix[5] = {gz ? 1 : 0, (uint8_t)(msg->len >> 24), (uint8_t)(msg->len >> 16),
                         (uint8_t)(msg->len >> 8), (uint8_t)msg->len};
    int rc = fg_buf_append(&st->out, prefix, 5);
    if (rc == 0 && msg->len)
        rc = fg_buf_append(&st->out, msg->data, msg->len);
    fg_buf_free(&z);
    if (rc != 0) {
        trailers_only(st, FG_GRPC_RESOURCE_EXHAUSTED, "out of memory for the response", NULL);
        return;
    }
    nghttp2_nv nv[4] = {
        NV(":status", "200"),
        NV("content-type", "application/grpc"),
        NV("grpc-accept-encoding", GRPC_ACCEPT),
        NV("grpc-encoding", "gzip"),
    };
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
    if (nghttp2_submit_response(c->session, st->id, nv, gz ? 4 : 3, &prd) != 0)
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_INTERNAL_ERROR);
}

static void grpc_error(struct h2_stream *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void grpc_error(struct h2_stream *st, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    defer_or_send(st, DEFER_GRPC, code, msg);
}

static void send_deferred(struct h2_stream *st)
{
    int kind = st->deferred;
    st->deferred = 0;
    if (kind == DEFER_HTTP)
        send_http_error(st, st->deferred_code, st->deferred_msg);
    else if (kind == DEFER_GRPC)
        trailers_only(st, st->deferred_code, st->deferred_msg, NULL);
}

static void defer_or_send(struct h2_stream *st, int kind, int code, const char *msg)
{
    st->deferred = kind;
    st->deferred_code = code;
    snprintf(st->deferred_msg, sizeof(st->deferred_msg), "%s", msg);
    fg_buf_free(&st->body);
    if (st->req_done || st->discarded > H2_DISCARD_MAX)
        send_deferred(st);
}

/* ---- jobs ---- */

static void run_handler(struct h2_stream *st)
{
    if (st->grpc) {
        struct fg_grpc_request req = {
            .path = st->path,
            .message = st->plain.data ? st->plain.data : (const uint8_t *)"",
            .message_len = st->plain.len,
            .deadline_ns = st->deadline_ns,
            .md = &st->hsrc,
        };
        st->gresp.status = FG_GRPC_OK;
        st->groute->handler(st->groute->ctx, &req, &st->gresp);
    } else {
        const char *q = strchr(st->path, '?');
        char *path = fg_strndup(st->path, q ? (size_t)(q - st->path) : strlen(st->path));
        struct fg_http_request req = {
            .method = st->method,
            .path = path ? path : st->path,
            .query = q ? q + 1 : "",
            .content_type = st->ctype ? st->ctype : "",
            .body = st->plain.data ? st->plain.data : (const uint8_t *)"",
            .body_len = st->plain.len,
            .conn = &st->hsrc,
        };
        st->hresp.status = 200;
        st->route->handler(st->route->ctx, &req, &st->hresp);
        fg_free(path);
    }
}

static void conn_end(struct h2_conn *c);
static bool conn_finished(struct h2_conn *c);

/* Loop thread: the handler of st has finished. */
static void job_done(struct h2_stream *st)
{
    struct h2_conn *c = st->conn;
    st->in_job = false;
    c->jobs--;
    if (st->closed || c->dead) {
        stream_free(st); /* a dead connection is reaped by the loop */
        return;
    }
    c->progress_ns = fg__now_ns();
    if (!st->answered) {
        if (st->grpc)
            answer_grpc(st);
        else
            answer_http(st);
    }
    /* After a GOAWAY the last answer ends the connection. */
    if (conn_flush(c) != 0 || conn_finished(c))
        conn_end(c);
}

static void dispatch(struct h2_stream *st)
{
    struct h2_conn *c = st->conn;
    struct fg__loop *lp = c->loop;
    /* Handlers of streams the client already reset still run; this bounds how much such
     * work one connection can queue. */
    if (c->jobs >= lp->srv->limits.max_concurrent_streams) {
        if (st->grpc)
            grpc_error(st, FG_GRPC_UNAVAILABLE, "too many calls in progress on this connection");
        else
            http_error(st, 503, "too many requests in progress on this connection");
        return;
    }
    st->in_job = true;
    c->jobs++;
    if (lp->inline_jobs) {
        run_handler(st);
        job_done(st);
        return;
    }
    pthread_mutex_lock(&lp->mu);
    st->qnext = NULL;
    if (lp->q_tail)
        lp->q_tail->qnext = st;
    else
        lp->q_head = st;
    lp->q_tail = st;
    pthread_cond_signal(&lp->cv);
    pthread_mutex_unlock(&lp->mu);
}

static void *worker_main(void *arg)
{
    struct fg__loop *lp = arg;
    pthread_mutex_lock(&lp->mu);
    for (;;) {
        while (!lp->q_head && !lp->q_stop)
            pthread_cond_wait(&lp->cv, &lp->mu);
        if (lp->q_stop)
            break;
        struct h2_stream *st = lp->q_head;
        lp->q_head = st->qnext;
        if (!lp->q_head)
            lp->q_tail = NULL;
        pthread_mutex_unlock(&lp->mu);
        run_handler(st);
        pthread_mutex_lock(&lp->mu);
        st->qnext = lp->done;
        lp->done = st;
        uint64_t one = 1;
        if (write(lp->evfd, &one, sizeof(one)) < 0) {
            /* the counter is saturated: the loop is awake anyway */
        }
    }
    pthread_mutex_unlock(&lp->mu);
    return NULL;
}

static void process_done(struct fg__loop *lp)
{
    pthread_mutex_lock(&lp->mu);
    struct h2_stream *list = lp->done;
    lp->done = NULL;
    pthread_mutex_unlock(&lp->mu);
    while (list) {
        struct h2_stream *st = list;
        list = st->qnext;
        job_done(st);
    }
}

/* ---- request processing ---- */

static bool is_grpc_ctype(const char *ct)
{
    if (!ct || strncasecmp(ct, "application/grpc", 16) != 0)
        return false;
    return ct[16] == '\0' || ct[16] == '+' || ct[16] == ';';
}

static bool token_list_has(const char *list, const char *tok)
{
    size_t n = strlen(tok);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == n && strncasecmp(p, tok, n) == 0)
            return true;
        p = e;
    }
    return false;
}

/* The request headers are complete: route, and answer at once what can be answered. */
static void headers_done(struct h2_stream *st)
{
    struct fg_http_server *s = st->conn->loop->srv;
    st->headers_done = true;
    st->method = stream_header(st, ":method");
    st->path = stream_header(st, ":path");
    st->ctype = stream_header(st, "content-type");
    if (!st->method || !st->path) {
        nghttp2_submit_rst_stream(st->conn->session, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_PROTOCOL_ERROR);
        st->answered = true;
        return;
    }
    if (st->hdr_too_big) {
        http_error(st, 431, "request header fields too large: limit %zu bytes",
                   s->limits.max_header_list_size);
        return;
    }
    char path[1024];
    const char *q = strchr(st->path, '?');
    snprintf(path, sizeof(path), "%.*s", q ? (int)(q - st->path) : (int)strlen(st->path),
             st->path);
    /* Credentials first: an unauthenticated client learns nothing about routes, and its
     * body is discarded unread. */
    if (s->auth && s->auth(s->auth_ctx, stream_header(st, "authorization")) != 0) {
        if (is_grpc_ctype(st->ctype)) {
            st->grpc = true;
            grpc_error(st, FG_GRPC_UNAUTHENTICATED, "missing or invalid credentials");
        } else {
            http_error(st, 401, "401 unauthorized: missing or invalid credentials");
        }
        return;
    }
    if (is_grpc_ctype(st->ctype)) {
        st->grpc = true;
        st->groute = fg__grpc_route_find(s, path);
        if (!st->groute) {
            grpc_error(st, FG_GRPC_UNIMPLEMENTED, "unknown method %s", path);
            return;
        }
        if (strcmp(st->method, "POST") != 0) {
            grpc_error(st, FG_GRPC_UNIMPLEMENTED, "method %s not supported, use POST",
                       st->method);
            return;
        }
        const char *enc = stream_header(st, "grpc-encoding");
        if (enc && strcasecmp(enc, "gzip") == 0) {
            st->grpc_gzip = true;
        } else if (enc && strcasecmp(enc, "identity") != 0) {
            grpc_error(st, FG_GRPC_UNIMPLEMENTED,
                       "grpc-encoding \"%s\" is not supported, supported: " GRPC_ACCEPT, enc);
            return;
        }
        st->accept_gzip = token_list_has(stream_header(st, "grpc-accept-encoding"), "gzip");
        const char *to = stream_header(st, "grpc-timeout");
        int64_t ns;
        if (to) {
            if (fg_grpc_parse_timeout(to, &ns) != 0) {
                grpc_error(st, FG_GRPC_INTERNAL, "malformed grpc-timeout \"%s\"", to);
                return;
            }
            int64_t now = fg__now_ns();
            struct fg__loop *lp = st->conn->loop;
            st->deadline_ns = ns > INT64_MAX - now ? INT64_MAX : now + ns;
            if (!lp->next_deadline || st->deadline_ns < lp->next_deadline)
                lp->next_deadline = st->deadline_ns;
        }
        st->limit = st->groute->max_message ? st->groute->max_message : GRPC_DEFAULT_MAX;
        /* The framed message, compressed or not, stays within limit + its prefix. */
        fg_buf_init(&st->body, st->limit + 5);
        return;
    }
    bool known = false;
    char allow[128] = "";
    st->route = fg__route_find(s, path, st->method, &known, allow, sizeof(allow));
    if (!st->route && known)
        snprintf(st->allow, sizeof(st->allow), "%s", allow);
    if (!st->route) {
        if (fg__grpc_route_find(s, path))
            http_error(st, 415, "415 unsupported media type \"%s\", a gRPC method needs "
                                "application/grpc", st->ctype ? st->ctype : "");
        else if (!known)
            http_error(st, 404, "404 page not found: %s", path);
        else
            http_error(st, 405, "405 method %s not allowed, supported: %s", st->method, allow);
        return;
    }
    const char *ce = stream_header(st, "content-encoding");
    if (fg__parse_encoding(ce, &st->enc) != 0) {
        http_error(st, 400, "unsupported Content-Encoding \"%s\", supported: gzip, deflate, "
                            "identity", ce);
        return;
    }
    st->limit = st->route->max_body;
    const char *cl = stream_header(st, "content-length");
    if (cl && st->limit > 0) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (errno == ERANGE || v > st->limit) {
            http_error(st, 413, "request body too large: %s bytes, limit %zu bytes", cl,
                       st->limit);
            return;
        }
    }
    fg_buf_init(&st->body, st->limit);
}

/* A gRPC message that is too large is known from its 5-byte prefix: answer before the
 * body arrives. */
static void grpc_check_prefix(struct h2_stream *st)
{
    if (st->body.len < 5 || st->answered || st->deferred)
        return;
    const uint8_t *p = st->body.data;
    uint32_t len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    if (len > st->limit)
        grpc_error(st, FG_GRPC_RESOURCE_EXHAUSTED,
                   "grpc: received message larger than max (%u vs. %zu)", len, st->limit);
}

/* The request is complete (END_STREAM): check and decode the body, then run the handler. */
static void request_done(struct h2_stream *st)
{
    if (st->deferred) {
        send_deferred(st);
        return;
    }
    if (st->answered || !st->headers_done)
        return;
    if (st->grpc) {
        const uint8_t *p = st->body.data;
        if (st->body.len < 5) {
            if (st->body.len)
                grpc_error(st, FG_GRPC_INTERNAL, "grpc: truncated message prefix (%zu bytes)",
                           st->body.len);
            else
                grpc_error(st, FG_GRPC_INTERNAL, "grpc: no request message");
            return;
        }
        uint32_t len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        if (p[0] > 1) {
            grpc_error(st, FG_GRPC_INTERNAL, "grpc: invalid compressed flag %u", p[0]);
            return;
        }
        if ((size_t)len > st->body.len - 5) {
            grpc_error(st, FG_GRPC_INTERNAL, "grpc: truncated message: %zu of %u bytes",
                       st->body.len - 5, len);
            return;
        }
        if ((size_t)len < st->body.len - 5) {
            grpc_error(st, FG_GRPC_UNIMPLEMENTED,
                       "grpc: more than one request message for a unary method");
            return;
        }
        fg_buf_init(&st->plain, st->limit);
        if (p[0] == 1) {
            if (!st->grpc_gzip) {
                grpc_error(st, FG_GRPC_INTERNAL,
                           "grpc: compressed flag set with identity or empty grpc-encoding");
                return;
            }
            struct fg_err err = {{0}};
            int rc = fg_gunzip(p + 5, len, &st->plain, &err);
            if (rc == FG_ETOOBIG) {
                grpc_error(st, FG_GRPC_RESOURCE_EXHAUSTED,
                           "grpc: decompressed message larger than max (%zu)", st->limit);
                return;
            }
            if (rc != 0) {
                grpc_error(st, FG_GRPC_INTERNAL, "grpc: invalid gzip message: %s", err.msg);
                return;
            }
        } else {
            /* The message without its prefix; handlers see only plain. */
            st->plain = st->body;
            memset(&st->body, 0, sizeof(st->body));
            memmove(st->plain.data, st->plain.data + 5, len);
            st->plain.len = len;
        }
        fg_buf_free(&st->body);
        dispatch(st);
        return;
    }
    if (st->enc != FG__ENC_IDENTITY) {
        struct fg_err err = {{0}};
        fg_buf_init(&st->plain, st->limit);
        int rc = st->enc == FG__ENC_GZIP ? fg_gunzip(st->body.data, st->body.len, &st->plain, &err)
                                         : fg_inflate_zlib(st->body.data, st->body.len,
                                                           &st->plain, &err);
        fg_buf_free(&st->body);
        if (rc == FG_ETOOBIG) {
            http_error(st, 413, "request body too large after decompression: limit %zu bytes",
                       st->limit);
            return;
        }
        if (rc == FG_ENOMEM) {
            http_error(st, 503, "out of memory");
            return;
        }
        if (rc != 0) {
            http_error(st, 400, "invalid %s body: %s",
                       st->enc == FG__ENC_GZIP ? "gzip" : "deflate", err.msg);
            return;
        }
    } else {
        st->plain = st->body;
        memset(&st->body, 0, sizeof(st->body));
    }
    dispatch(st);
}

/* ---- nghttp2 callbacks ---- */

static bool rate_exceeded(struct h2_conn *c, bool reset)
{
    const struct fg_http_limits *l = &c->loop->srv->limits;
    int64_t now = fg__now_ns();
    if (now - c->win_start_ns >= 1000000000LL) {
        c->win_start_ns = now;
        c->win_streams = c->win_resets = 0;
    }
    if (reset)
        return ++c->win_resets > l->max_resets_per_second;
    return ++c->win_streams > l->max_streams_per_second;
}

static void calm_down(struct h2_conn *c, const char *what)
{
    fg_log(FG_LOG_WARN, H2_LOG, "%s: closing an HTTP/2 connection: %s per second over the "
                                "limit", c->loop->srv->endpoint, what);
    nghttp2_session_terminate_session(c->session, NGHTTP2_ENHANCE_YOUR_CALM);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                            void *user_data)
{
    struct h2_conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (c->calm)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (rate_exceeded(c, false)) {
        c->calm = true;
        calm_down(c, "new streams");
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    struct h2_stream *st = fg_calloc(1, sizeof(*st));
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->conn = c;
    st->id = frame->hd.stream_id;
    st->hsrc.get = stream_header;
    st->hsrc.src = st;
    st->cnext = c->streams;
    if (c->streams)
        c->streams->cprev = st;
    c->streams = st;
    nghttp2_session_set_stream_user_data(session, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data)
{
    struct h2_conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* request trailers are not used */
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!st || st->hdr_too_big)
        return 0;
    st->hdr_bytes += namelen + valuelen + 32;
    if (st->hdr_bytes > c->loop->srv->limits.max_header_list_size) {
        st->hdr_too_big = true;
        return 0;
    }
    if (st->n_hdrs == st->cap_hdrs) {
        size_t cap = st->cap_hdrs ? st->cap_hdrs * 2 : 16;
        struct hdr *h = fg_realloc(st->hdrs, cap * sizeof(*h));
        if (!h)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        st->hdrs = h;
        st->cap_hdrs = cap;
    }
    char *n = fg_strndup((const char *)name, namelen);
    char *v = fg_strndup((const char *)value, valuelen);
    if (!n || !v) {
        fg_free(n);
        fg_free(v);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    st->hdrs[st->n_hdrs].name = n;
    st->hdrs[st->n_hdrs].value = v;
    st->n_hdrs++;
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    struct h2_conn *c = user_data;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    c->body_since_progress += len;
    if (c->body_since_progress >= H2_PROGRESS_BYTES) {
        c->body_since_progress = 0;
        c->progress_ns = fg__now_ns();
    }
    if (!st || st->answered || !st->headers_done)
        return 0;
    if (st->deferred) {
        st->discarded += len;
        if (st->discarded > H2_DISCARD_MAX)
            send_deferred(st);
        return 0;
    }
    int rc = fg_buf_append(&st->body, data, len);
    if (rc == FG_ETOOBIG) {
        fg_buf_free(&st->body);
        if (st->grpc)
            grpc_error(st, FG_GRPC_RESOURCE_EXHAUSTED,
                       "grpc: received message larger than max (%zu)", st->limit);
        else
            http_error(st, 413, "request body too large: limit %zu bytes", st->limit);
    } else if (rc != 0) {
        fg_buf_free(&st->body);
        if (st->grpc)
            grpc_error(st, FG_GRPC_UNAVAILABLE, "out of memory");
        else
            http_error(st, 503, "out of memory");
    } else if (st->grpc) {
        grpc_check_prefix(st);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct h2_conn *c = user_data;
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
        if (!c->calm && rate_exceeded(c, true)) {
            c->calm = true;
            calm_down(c, "stream resets");
        }
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!st)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        headers_done(st);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        c->progress_ns = fg__now_ns();
        st->req_done = true;
        request_done(st);
    }
    return 0;
}

/* Streams nghttp2 refuses (over SETTINGS_MAX_CONCURRENT_STREAMS) never reach
 * on_begin_headers; the RST_STREAM we send for them counts as an opened stream. */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct h2_conn *c = user_data;
    if (frame->hd.type == NGHTTP2_RST_STREAM &&
        frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM && !c->calm &&
        rate_exceeded(c, false)) {
        c->calm = true;
        calm_down(c, "new streams");
    }
    /* An answer sent before the request ended (an error found early): tell the client to
     * stop sending, without error (RFC 9113 8.1); some clients wait otherwise. */
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (st && !st->req_done)
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                      NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    struct h2_conn *c = user_data;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!st || c->dead)
        return 0;
    if (st->answered && error_code == NGHTTP2_NO_ERROR)
        c->progress_ns = fg__now_ns();
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    stream_unlink(st);
    if (st->in_job)
        st->closed = true; /* freed when the worker hands it back */
    else
        stream_free(st);
    return 0;
}

/* ---- connections ---- */

static int conn_start_h2(struct h2_conn *c)
{
    const struct fg_http_limits *l = &c->loop->srv->limits;
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    int rc = -1;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
        goto fail;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    /* nghttp2 refuses streams over our SETTINGS before the peer acknowledged them too. */
    nghttp2_option_set_max_reserved_remote_streams(opt, 0);
    if (nghttp2_session_server_new2(&c->session, cb, c, opt) != 0)
        goto fail;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, l->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)FG_MIN(l->max_header_list_size,
                                                                 (size_t)UINT32_MAX)},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, FG_ARRAY_LEN(iv)) != 0 ||
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                              H2_CONN_WINDOW) != 0)
        goto fail;
    c->state = CONN_H2;
    rc = 0;
fail:
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    return rc;
}

static struct h2_conn *conn_new(struct fg__loop *lp, int fd)
{
    struct h2_conn *c = fg_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = lp;
    c->fd = fd;
    c->state = CONN_SNIFF;
    c->accepted_ns = c->progress_ns = c->win_start_ns = fg__now_ns();
    c->next = lp->conns;
    if (lp->conns)
        lp->conns->prev = c;
    lp->conns = c;
    lp->n_conns++;
    return c;
}

static void conn_unlink(struct h2_conn *c)
{
    struct fg__loop *lp = c->loop;
    if (c->prev)
        c->prev->next = c->next;
    else
        lp->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    lp->n_conns--;
}

/* Frees the connections that are dead and whose streams no handler holds any more. Only
 * here, so a connection pointer stays valid for the whole loop iteration that closed it. */
static void reap(struct fg__loop *lp)
{
    struct h2_conn *c = lp->conns;
    while (c) {
        struct h2_conn *next = c->next;
        if (c->dead && c->jobs == 0 && c->fd < 0) {
            conn_unlink(c);
            fg_free(c);
        }
        c = next;
    }
}

static void conn_close_fd(struct h2_conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(c->loop->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        atomic_fetch_sub(&c->loop->srv->n_conns, 1);
        c->fd = -1;
    }
    c->linger = false;
}

/* Frees the session; streams whose handler still runs stay until it ends. */
static void conn_drop_session(struct h2_conn *c)
{
    struct h2_stream *st = c->streams;
    while (st) {
        struct h2_stream *next = st->cnext;
        st->cprev = st->cnext = NULL;
        if (st->in_job)
            st->closed = true;
        else
            stream_free(st);
        st = next;
    }
    c->streams = NULL;
    nghttp2_session_del(c->session);
    c->session = NULL;
    fg_buf_free(&c->out);
}

/* Closes at once (errors, end of file). */
static void conn_close(struct h2_conn *c)
{
    if (c->dead) {
        conn_close_fd(c); /* a lingering socket */
        return;
    }
    c->dead = true;
    conn_close_fd(c);
    conn_drop_session(c);
}

/* Ends a connection after our last frames (GOAWAY) went out: the peer may still be
 * writing, and closing with unread data would reset the connection and destroy the GOAWAY
 * in flight. So stop writing, then read and discard for a while (nginx's lingering close). */
static void conn_end(struct h2_conn *c)
{
    if (c->dead)
        return;
    if (c->fd < 0) {
        conn_close(c);
        return;
    }
    c->dead = true;
    conn_drop_session(c);
    shutdown(c->fd, SHUT_WR);
    c->linger = true;
    c->close_by_ns = fg__now_ns() + H2_LINGER_NS;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &e);
}

static void conn_linger_read(struct h2_conn *c)
{
    uint8_t buf[H2_READ_CHUNK];
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        conn_close_fd(c);
        return;
    }
}

static bool conn_finished(struct h2_conn *c)
{
    return !nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session) &&
           c->out.len == c->out_off;
}

static void conn_read(struct h2_conn *c)
{
    uint8_t buf[H2_READ_CHUNK];
    for (int i = 0; i < 4; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n == 0) {
            conn_close(c);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_close(c);
            return;
        }
        ssize_t rv = nghttp2_session_mem_recv(c->session, buf, (size_t)n);
        if (rv < 0) {
            fg_log(FG_LOG_DEBUG, H2_LOG, "HTTP/2 session error: %s", nghttp2_strerror((int)rv));
            /* nghttp2 has queued a GOAWAY for protocol errors: send it, then end. */
            if (conn_flush(c) != 0)
                conn_close(c);
            else
                conn_end(c);
            return;
        }
        if ((size_t)n < sizeof(buf))
            break;
    }
    if (conn_flush(c) != 0)
        conn_close(c);
    else if (conn_finished(c))
        conn_end(c);
}

/* The first bytes decide the protocol; they are peeked, so libmicrohttpd still reads them. */
static void conn_sniff(struct h2_conn *c)
{
    char buf[H2_PREFACE_LEN];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_PEEK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (n < 0)
        return;
    if (memcmp(buf, H2_PREFACE, (size_t)n) != 0) {
        struct fg_http_server *s = c->loop->srv;
        int fd = c->fd;
        epoll_ctl(c->loop->epfd, EPOLL_CTL_DEL, fd, NULL);
        c->fd = -1;
        struct sockaddr_storage peer = c->peer;
        socklen_t peer_len = c->peer_len;
        c->dead = true;
        atomic_fetch_sub(&s->n_conns, 1); /* libmicrohttpd counts it from here */
        fg__h1_adopt(s, fd, (const struct sockaddr *)&peer, peer_len);
        return;
    }
    if (n < H2_PREFACE_LEN)
        return; /* edge-triggered: the next bytes wake us again */
    if (conn_start_h2(c) != 0) {
        conn_close(c);
        return;
    }
    c->events = EPOLLIN;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &e);
    conn_read(c);
}

static void conn_event(struct h2_conn *c, uint32_t ev)
{
    if (c->linger) {
        conn_linger_read(c);
        return;
    }
    if (c->dead)
        return;
    if (c->state == CONN_SNIFF) {
        conn_sniff(c);
        return;
    }
    if (ev & (EPOLLERR | EPOLLHUP)) {
        conn_close(c);
        return;
    }
    if (ev & EPOLLOUT) {
        if (conn_flush(c) != 0) {
            conn_close(c);
            return;
        }
    }
    if (ev & EPOLLIN)
        conn_read(c);
    else if (conn_finished(c))
        conn_end(c);
}

static void accept_all(struct fg__loop *lp)
{
    struct fg_http_server *s = lp->srv;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient error such as EMFILE: retried next event */
        if (atomic_load(&s->n_conns) >= s->limits.max_connections) {
            int64_t now = fg__now_ns();
            if (now - lp->last_reject_log > 10000000000LL) {
                lp->last_reject_log = now;
                fg_log(FG_LOG_WARN, H2_LOG, "%s: connection limit %u reached, refusing "
                                            "connections", s->endpoint,
                       s->limits.max_connections);
            }
            close(fd);
            continue;
        }
        /* Responses leave in one write per flush; Nagle would only hold them back. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* With TLS the loop sees the plaintext end of a socketpair instead (fg_tls.h). */
        if (s->tls && (fd = fg__tls_wrap(s->tls, fd)) < 0)
            continue;
        struct h2_conn *c = conn_new(lp, fd);
        if (!c) {
            close(fd);
            continue;
        }
        atomic_fetch_add(&s->n_conns, 1);
        memcpy(&c->peer, &ss, sl);
        c->peer_len = sl;
        struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
        if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
            conn_close(c);
            continue;
        }
        conn_sniff(c);
    }
}

static void goaway(struct h2_conn *c, int64_t now)
{
    if (c->goaway)
        return;
    c->goaway = true;
    c->goaway_ns = now;
    nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->session),
                          NGHTTP2_NO_ERROR, NULL, 0);
    if (conn_flush(c) != 0)
        conn_close(c);
    else if (conn_finished(c))
        conn_end(c);
}

/* Timers: grpc-timeout, idle and slow connections, connection age. */
static void tick(struct fg__loop *lp, int64_t now)
{
    const struct fg_http_limits *l = &lp->srv->limits;
    struct h2_conn *c = lp->conns;
    lp->next_deadline = 0;
    while (c) {
        struct h2_conn *next = c->next;
        if (c->linger && now >= c->close_by_ns)
            conn_close_fd(c);
        if (c->dead) {
            c = next;
            continue;
        }
        if (c->state == CONN_SNIFF) {
            if (now - c->accepted_ns > l->idle_timeout_ns || lp->stopping)
                conn_close(c);
            c = next;
            continue;
        }
        bool answered = false;
        for (struct h2_stream *st = c->streams; st; st = st->cnext) {
            if (st->answered || !st->deadline_ns)
                continue;
            if (now >= st->deadline_ns) {
                st->deferred = 0;
                trailers_only(st, FG_GRPC_DEADLINE_EXCEEDED, "deadline exceeded", NULL);
                answered = true;
            } else if (!lp->next_deadline || st->deadline_ns < lp->next_deadline) {
                lp->next_deadline = st->deadline_ns;
            }
        }
        if (answered && conn_flush(c) != 0) {
            conn_close(c);
            c = next;
            continue;
        }
        bool busy = c->jobs > 0 || c->out.len > c->out_off;
        if (!busy && now - c->progress_ns > l->idle_timeout_ns) {
            fg_log(FG_LOG_DEBUG, H2_LOG, "%s: closing an HTTP/2 connection idle for %lld ms",
                   lp->srv->endpoint, (long long)((now - c->progress_ns) / 1000000));
            nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
            if (conn_flush(c) != 0)
                conn_close(c);
            else
                conn_end(c); /* a slow client gets a second to read the GOAWAY, no more */
        } else if (lp->stopping ||
                   (l->max_connection_age_ns > 0 &&
                    now - c->accepted_ns > l->max_connection_age_ns)) {
            goaway(c, now);
            if (!c->dead && conn_finished(c))
                conn_end(c);
            if (!c->dead && now - c->goaway_ns > l->max_connection_age_grace_ns &&
                !lp->stopping)
                conn_close(c);
        }
        c = next;
    }
    fg__h1_police(lp->srv, now);
}

static bool live_conns(const struct fg__loop *lp)
{
    for (const struct h2_conn *c = lp->conns; c; c = c->next)
        if (!c->dead)
            return true;
    return false;
}

static void *loop_main(void *arg)
{
    struct fg__loop *lp = arg;
    struct epoll_event evs[64];
    int64_t next_tick = fg__now_ns() + H2_TICK_NS;
    for (;;) {
        /* Never blocks for good: HTTP/1.1 connections, which libmicrohttpd registers on its
         * own threads, are policed from here too. */
        int timeout = lp->n_conns || atomic_load(&lp->srv->inflight) ? 200 : 1000;
        if (lp->stopping)
            timeout = 20;
        if (lp->next_deadline) {
            int64_t left_ms = (lp->next_deadline - fg__now_ns()) / 1000000 + 1;
            if (left_ms < timeout)
                timeout = left_ms < 0 ? 0 : (int)left_ms;
        }
        int n = epoll_wait(lp->epfd, evs, FG_ARRAY_LEN(evs), timeout);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &lp->listen_tag) {
                if (!lp->stopping)
                    accept_all(lp);
            } else if (p == &lp->ev_tag) {
                uint64_t v;
                if (read(lp->evfd, &v, sizeof(v)) < 0) {
                    /* spurious wake-up */
                }
            } else {
                conn_event(p, evs[i].events);
            }
        }
        process_done(lp);
        reap(lp);
        int64_t now = fg__now_ns();
        if (atomic_load(&lp->stop) && !lp->stopping) {
            lp->stopping = true;
            epoll_ctl(lp->epfd, EPOLL_CTL_DEL, lp->srv->listen_fd, NULL);
            next_tick = 0;
        }
        if (now >= next_tick || (lp->next_deadline && now >= lp->next_deadline)) {
            tick(lp, now);
            reap(lp);
            next_tick = now + H2_TICK_NS;
        }
        if (lp->stopping && (!live_conns(lp) || now >= atomic_load(&lp->stop_deadline)))
            break;
    }
    return NULL;
}

static void loop_destroy(struct fg__loop *lp)
{
    if (!lp)
        return;
    if (lp->workers) {
        pthread_mutex_lock(&lp->mu);
        lp->q_stop = true;
        pthread_cond_broadcast(&lp->cv);
        pthread_mutex_unlock(&lp->mu);
        for (unsigned i = 0; i < lp->n_workers; i++)
            pthread_join(lp->workers[i], NULL);
        fg_free(lp->workers);
    }
    /* No thread runs handlers any more: every stream can go. */
    for (struct h2_stream *st = lp->q_head; st;) {
        struct h2_stream *next = st->qnext;
        st->qnext = lp->done;
        lp->done = st;
        st = next;
    }
    lp->q_head = lp->q_tail = NULL;
    for (struct h2_conn *c = lp->conns; c; c = c->next)
        conn_close(c);
    while (lp->done) {
        struct h2_stream *st = lp->done;
        lp->done = st->qnext;
        struct h2_conn *c = st->conn;
        c->jobs--;
        stream_free(st);
    }
    while (lp->conns) {
        struct h2_conn *c = lp->conns;
        conn_unlink(c);
        fg_free(c);
    }
    if (lp->epfd >= 0)
        close(lp->epfd);
    if (lp->evfd >= 0)
        close(lp->evfd);
    pthread_mutex_destroy(&lp->mu);
    pthread_cond_destroy(&lp->cv);
    fg_free(lp);
}

static struct fg__loop *loop_new(struct fg_http_server *s)
{
    struct fg__loop *lp = fg_calloc(1, sizeof(*lp));
    if (!lp)
        return NULL;
    lp->srv = s;
    lp->epfd = lp->evfd = -1;
    atomic_init(&lp->stop, false);
    atomic_init(&lp->stop_deadline, 0);
    pthread_mutex_init(&lp->mu, NULL);
    pthread_cond_init(&lp->cv, NULL);
    return lp;
}

int fg__loop_start(struct fg_http_server *s, struct fg_err *err)
{
    struct fg__loop *lp = loop_new(s);
    if (!lp)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    int rc;
    lp->epfd = epoll_create1(EPOLL_CLOEXEC);
    lp->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (lp->epfd < 0 || lp->evfd < 0) {
        rc = fg_err_set(err, FG_EIO, "endpoint \"%s\": epoll/eventfd: %s", s->endpoint,
                        strerror(errno));
        goto fail;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &lp->listen_tag};
    struct epoll_event w = {.events = EPOLLIN, .data.ptr = &lp->ev_tag};
    if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, s->listen_fd, &e) != 0 ||
        epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->evfd, &w) != 0) {
        rc = fg_err_set(err, FG_EIO, "endpoint \"%s\": epoll_ctl: %s", s->endpoint,
                        strerror(errno));
        goto fail;
    }
    lp->workers = fg_calloc(s->limits.workers, sizeof(*lp->workers));
    if (!lp->workers) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }
    for (; lp->n_workers < s->limits.workers; lp->n_workers++) {
        if (pthread_create(&lp->workers[lp->n_workers], NULL, worker_main, lp) != 0) {
            rc = fg_err_set(err, FG_EIO, "endpoint \"%s\": cannot start workers", s->endpoint);
            goto fail;
        }
    }
    if (pthread_create(&lp->thread, NULL, loop_main, lp) != 0) {
        rc = fg_err_set(err, FG_EIO, "endpoint \"%s\": cannot start the event loop",
                        s->endpoint);
        goto fail;
    }
    lp->thread_started = true;
    s->loop = lp;
    return 0;
fail:
    loop_destroy(lp);
    return rc;
}

void fg__loop_begin_stop(struct fg_http_server *s, int64_t deadline_ns)
{
    struct fg__loop *lp = s->loop;
    if (!lp || atomic_load(&lp->stop))
        return;
    atomic_store(&lp->stop_deadline, deadline_ns);
    atomic_store(&lp->stop, true);
    uint64_t one = 1;
    if (write(lp->evfd, &one, sizeof(one)) < 0) {
        /* saturated: the loop is awake */
    }
}

void fg__loop_free(struct fg_http_server *s)
{
    struct fg__loop *lp = s->loop;
    if (!lp)
        return;
    fg__loop_begin_stop(s, fg__now_ns());
    if (lp->thread_started)
        pthread_join(lp->thread, NULL);
    loop_destroy(lp);
    s->loop = NULL;
}

void fg__h2_feed(struct fg_http_server *s, const uint8_t *data, size_t len)
{
    struct fg__loop *lp = loop_new(s);
    if (!lp)
        return;
    lp->inline_jobs = true;
    struct h2_conn *c = conn_new(lp, -1);
    if (!c || conn_start_h2(c) != 0) {
        loop_destroy(lp);
        return;
    }
    /* Uneven chunks, so frames straddle reads as they do on a socket. */
    size_t off = 0, step = 1;
    while (off < len && !c->dead) {
        size_t n = FG_MIN(step, len - off);
        ssize_t rv = nghttp2_session_mem_recv(c->session, data + off, n);
        if (rv < 0 || conn_flush(c) != 0)
            break;
        off += n;
        step = step * 7 % 1021 + 1;
    }
    if (!c->dead) {
        tick(lp, fg__now_ns() + 3600 * 1000000000LL); /* every timer fires */
    }
    loop_destroy(lp);
}
