/* Listener TLS with OpenSSL: the server context (certificate, key, client CA, ALPN) and the
 * per-connection proxy thread that terminates TLS and feeds the event loop plaintext over a
 * socketpair (the design is explained in fg_tls.h). */
#include "fg_tls.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_http_internal.h"
#include "fg_log.h"
#include "fg_ssl_dl.h"

#define TLS_LOG "tls"
#define TLS_HANDSHAKE_NS (10 * 1000000000LL)
#define TLS_POLL_MS 200
#define TLS_CHUNK 16384

static const char *const version_names[] = {"1.2", "1.3", NULL};

const struct fg_option fg_tls_server_options[] = {
    FG_OPT_STR("cert_file", struct fg_tls_server_config, cert_file, NULL,
               "PEM certificate (chain) the listener presents"),
    FG_OPT_STR("key_file", struct fg_tls_server_config, key_file, NULL,
               "PEM private key of cert_file"),
    FG_OPT_STR("client_ca_file", struct fg_tls_server_config, client_ca_file, NULL,
               "PEM CA bundle; when set, clients must present a certificate it signed (mTLS)"),
    FG_OPT_CHOICE("min_version", struct fg_tls_server_config, min_version, "1.2",
                  version_names, "lowest TLS version accepted: 1.2 or 1.3"),
    FG_OPT_END,
};

struct fg_tls_server {
    SSL_CTX *ctx;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned live; /* proxy threads running */
};

struct tls_conn {
    struct fg_tls_server *t;
    SSL *ssl;
    int tfd; /* the client's TCP socket */
    int pfd; /* our end of the socketpair; the loop holds the other */
    uint8_t in[TLS_CHUNK], out[TLS_CHUNK]; /* client → loop, loop → client */
};

bool fg_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    const volatile uint8_t *x = a, *y = b;
    /* Walk the expected value (b) whatever a holds, so the time depends on blen only. */
    uint8_t diff = (uint8_t)(alen != blen);
    for (size_t i = 0; i < blen; i++)
        diff |= (uint8_t)(y[i] ^ (alen ? x[i % alen] : 0));
    return diff == 0;
}

static int ssl_err(struct fg_err *err, const char *what, const char *file)
{
    char buf[160] = "";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return fg_err_set(err, FG_EINVAL, "tls: %s %s: %s", what, file ? file : "", buf);
}

/* Offers h2 to clients that ask for it, http/1.1 otherwise; no ALPN is fine too. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char ours[] = "\x02h2\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

int fg_tls_server_new(const struct fg_tls_server_config *cfg, struct fg_tls_server **out,
                      struct fg_err *err)
{
    *out = NULL;
    if (!cfg->cert_file || !*cfg->cert_file || !cfg->key_file || !*cfg->key_file)
        return fg_err_set(err, FG_EINVAL, "tls: cert_file and key_file are both required");
    int rc = fg_ssl_dl_load(err); /* the first TLS listener maps OpenSSL */
    if (rc != 0)
        return rc;
    struct fg_tls_server *t = fg_calloc(1, sizeof(*t));
    if (!t)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    atomic_init(&t->stop, false);
    ERR_clear_error();
    if (!(t->ctx = SSL_CTX_new(TLS_server_method()))) {
        rc = ssl_err(err, "cannot create a context", NULL);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, cfg->min_version == FG_TLS_1_3 ? TLS1_3_VERSION
                                                                        : TLS1_2_VERSION);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Renegotiation is a DoS vector and HTTP/2 forbids it. */
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_use_certificate_chain_file(t->ctx, cfg->cert_file) != 1) {
        rc = ssl_err(err, "cannot load cert_file", cfg->cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(t->ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
        rc = ssl_err(err, "cannot load key_file", cfg->key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(t->ctx) != 1) {
        rc = ssl_err(err, "key_file does not match cert_file", cfg->key_file);
        goto fail;
    }
    if (cfg->client_ca_file && *cfg->client_ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_ca_file);
        if (!names || SSL_CTX_load_verify_locations(t->ctx, cfg->client_ca_file, NULL) != 1) {
            if (names)
                sk_X509_NAME_pop_free(names, X509_NAME_free);
            rc = ssl_err(err, "cannot load client_ca_file", cfg->client_ca_file);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(t->ctx, names);
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    SSL_CTX_set_alpn_select_cb(t->ctx, alpn_select, NULL);
    *out = t;
    return 0;
fail:
    fg_tls_server_free(t);
    return rc;
}

void fg_tls_server_free(struct fg_tls_server *t)
{
    if (!t)
        return;
    fg__tls_stop(t);
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    fg_free(t);
}

void fg__tls_stop(struct fg_tls_server *t)
{
    atomic_store(&t->stop, true);
    pthread_mutex_lock(&t->mu);
    while (t->live > 0)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    atomic_store(&t->stop, false); /* a stopped listener may be started again */
}

int fg_http_server_set_tls(struct fg_http_server *s, struct fg_tls_server *t)
{
    if (s->started) {
        fg_tls_server_free(t);
        return FG_EINVAL;
    }
    fg_tls_server_free(s->tls);
    s->tls = t;
    return 0;
}

int fg_http_server_set_auth(struct fg_http_server *s, fg_http_auth_fn fn, void *ctx)
{
    if (s->started)
        return FG_EINVAL;
    s->auth = fn;
    s->auth_ctx = ctx;
    return 0;
}

/* ---- the proxy ---- */

static int64_t now_ns(void)
{
    return fg__now_ns();
}

static void peer_name(int fd, char *out, size_t outsz)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    snprintf(out, outsz, "?");
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(out, outsz, "%s:%s", host, serv);
}

/* Why a handshake failed, for the log: the certificate check result when there is one. */
static void handshake_reason(SSL *ssl, char *out, size_t outsz)
{
    long v = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_last_error();
    if (v != X509_V_OK) {
        snprintf(out, outsz, "client certificate: %s", X509_verify_cert_error_string(v));
    } else if (e) {
        ERR_error_string_n(e, out, outsz);
    } else {
        snprintf(out, outsz, "connection closed");
    }
    ERR_clear_error();
}

static bool wait_fds(struct pollfd *p, int n)
{
    int r = poll(p, (nfds_t)n, TLS_POLL_MS);
    return r >= 0 || errno == EINTR;
}

static int handshake(struct tls_conn *tc, const char *peer)
{
    int64_t deadline = now_ns() + TLS_HANDSHAKE_NS;
    for (;;) {
        ERR_clear_error();
        int r = SSL_accept(tc->ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(tc->ssl, r);
        short ev;
        if (e == SSL_ERROR_WANT_READ) {
            ev = POLLIN;
        } else if (e == SSL_ERROR_WANT_WRITE) {
            ev = POLLOUT;
        } else {
            char why[200];
            handshake_reason(tc->ssl, why, sizeof(why));
            fg_log(FG_LOG_INFO, TLS_LOG, "handshake with %s failed: %s", peer, why);
            return -1;
        }
        if (atomic_load(&tc->t->stop) || now_ns() > deadline) {
            fg_log(FG_LOG_INFO, TLS_LOG, "handshake with %s timed out", peer);
            return -1;
        }
        struct pollfd p = {.fd = tc->tfd, .events = ev};
        if (!wait_fds(&p, 1))
            return -1;
    }
}

/* Copies both ways until either side is done. Both sockets are non-blocking; each direction
 * has one buffer, so a side that does not read holds up only the data meant for it. */
static void pump(struct tls_conn *tc)
{
    uint8_t *in = tc->in, *out = tc->out;
    size_t in_len = 0, in_off = 0, out_len = 0, out_off = 0;
    bool tls_eof = false, plain_eof = false, plain_shut = false;
    for (;;) {
        short tev, pev;
        bool progress;
        do {
            progress = false;
            tev = pev = 0;
            /* client → loop */
            if (!tls_eof && in_len == 0) {
                ERR_clear_error();
                int r = SSL_read(tc->ssl, in, TLS_CHUNK);
                if (r > 0) {
                    in_len = (size_t)r;
                    in_off = 0;
                    progress = true;
                } else {
                    int e = SSL_get_error(tc->ssl, r);
                    if (e == SSL_ERROR_WANT_READ)
                        tev |= POLLIN;
                    else if (e == SSL_ERROR_WANT_WRITE)
                        tev |= POLLOUT;
                    else if (e == SSL_ERROR_ZERO_RETURN)
                        tls_eof = progress = true;
                    else
                        return; /* reset, protocol error or EOF without close_notify */
                }
            }
            if (in_len > in_off) {
                ssize_t w = send(tc->pfd, in + in_off, in_len - in_off, MSG_NOSIGNAL);
                if (w > 0) {
                    in_off += (size_t)w;
                    if (in_off == in_len)
                        in_len = in_off = 0;
                    progress = true;
                } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    pev |= POLLOUT;
                } else if (!(w < 0 && errno == EINTR)) {
                    return;
                }
            }
            if (tls_eof && in_len == 0 && !plain_shut) {
                /* close_notify: the client sends no more, but may still read answers */
                shutdown(tc->pfd, SHUT_WR);
                plain_shut = true;
            }
            /* loop → client */
            if (!plain_eof && out_len == 0) {
                ssize_t r = recv(tc->pfd, out, TLS_CHUNK, 0);
                if (r > 0) {
                    out_len = (size_t)r;
                    out_off = 0;
                    progress = true;
                } else if (r == 0) {
                    plain_eof = progress = true;
                } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    pev |= POLLIN;
                } else if (errno != EINTR) {
                    return;
                }
            }
            if (out_len > out_off) {
                ERR_clear_error();
                int w = SSL_write(tc->ssl, out + out_off, (int)(out_len - out_off));
                if (w > 0) {
                    out_off += (size_t)w;
                    if (out_off == out_len)
                        out_len = out_off = 0;
                    progress = true;
                } else {
                    int e = SSL_get_error(tc->ssl, w);
                    if (e == SSL_ERROR_WANT_READ)
                        tev |= POLLIN;
                    else if (e == SSL_ERROR_WANT_WRITE)
                        tev |= POLLOUT;
                    else
                        return;
                }
            }
            if (plain_eof && out_len == 0) {
                SSL_shutdown(tc->ssl); /* best effort close_notify */
                return;
            }
        } while (progress && !atomic_load(&tc->t->stop));
        if (atomic_load(&tc->t->stop))
            return;
        struct pollfd p[2] = {{.fd = tc->tfd, .events = tev}, {.fd = tc->pfd, .events = pev}};
        if (!wait_fds(p, 2))
            return;
    }
}

static void *proxy_main(void *arg)
{
    struct tls_conn *tc = arg;
    struct fg_tls_server *t = tc->t;
    /* OpenSSL writes with plain write(): a client gone away must be EPIPE, not a SIGPIPE
     * that kills the process (a thread-directed one stays pending while blocked and is
     * dropped when the thread ends). */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    char peer[96];
    peer_name(tc->tfd, peer, sizeof(peer));
    if (handshake(tc, peer) == 0)
        pump(tc);
    SSL_free(tc->ssl);
    close(tc->tfd);
    close(tc->pfd);
    fg_free(tc);
    ERR_clear_error();
    pthread_mutex_lock(&t->mu);
    if (--t->live == 0)
        pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int fg__tls_wrap(struct fg_tls_server *t, int tcp_fd)
{
    int sv[2] = {-1, -1};
    struct tls_conn *tc = NULL;
    pthread_attr_t attr;
    bool attr_ok = false;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        goto fail;
    if (!(tc = fg_calloc(1, sizeof(*tc))))
        goto fail;
    tc->t = t;
    tc->tfd = tcp_fd;
    tc->pfd = sv[1];
    if (!(tc->ssl = SSL_new(t->ctx)) || SSL_set_fd(tc->ssl, tcp_fd) != 1)
        goto fail;
    SSL_set_accept_state(tc->ssl);
    int one = 1;
    setsockopt(tcp_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (pthread_attr_init(&attr) != 0)
        goto fail;
    attr_ok = true;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, (size_t)256 << 10);
    pthread_mutex_lock(&t->mu);
    t->live++;
    pthread_mutex_unlock(&t->mu);
    pthread_t th;
    if (pthread_create(&th, &attr, proxy_main, tc) != 0) {
        pthread_mutex_lock(&t->mu);
        if (--t->live == 0)
            pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
        goto fail;
    }
    pthread_attr_destroy(&attr);
    return sv[0];
fail:
    if (attr_ok)
        pthread_attr_destroy(&attr);
    if (tc) {
        SSL_free(tc->ssl);
        fg_free(tc);
    }
    if (sv[0] >= 0) {
        close(sv[0]);
        close(sv[1]);
    }
    close(tcp_fd);
    ERR_clear_error();
    return -1;
}
