/* The listener's security: TLS (OpenSSL) on every accepted connection, with ALPN h2 /
 * http/1.1 and optional client certificates, and a hook that authenticates each request on
 * its headers before the body is read.
 *
 * Design: the event loop accepts the TCP socket, makes a socketpair and treats one end as
 * if it were the accepted connection (sniffing the HTTP/2 preface, HTTP/1.1 to
 * libmicrohttpd, HTTP/2 to nghttp2: nothing downstream changes); a thread per connection
 * runs the TLS handshake and copies plaintext between the TLS socket and the other end.
 * libmicrohttpd speaks TLS only through GnuTLS and cannot take over an OpenSSL session, and
 * one proxy serves both protocols the same way. The cost is a thread and a copy per TLS
 * connection (max_connections bounds both). */
#ifndef FG_TLS_H
#define FG_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "fg_common.h"
#include "fg_http.h"
#include "fg_option.h"

enum fg_tls_version { FG_TLS_1_2, FG_TLS_1_3 };

/* A receiver protocol block's `tls:` (Collector configtls.ServerConfig names). */
struct fg_tls_server_config {
    char *cert_file;
    char *key_file;
    char *client_ca_file; /* set: clients must present a certificate signed by it (mTLS) */
    int min_version;      /* enum fg_tls_version */
};

/* The option table of that block (offsets into struct fg_tls_server_config). */
extern const struct fg_option fg_tls_server_options[];

struct fg_tls_server;

/* Loads the certificate, key and client CA now (so a bad file fails start-up or a reload,
 * which is how certificates are reloaded: SIGHUP rebuilds every listener). */
int fg_tls_server_new(const struct fg_tls_server_config *cfg, struct fg_tls_server **out,
                      struct fg_err *err);
void fg_tls_server_free(struct fg_tls_server *t);

/* Serves TLS on s (before start); takes ownership of t. */
int fg_http_server_set_tls(struct fg_http_server *s, struct fg_tls_server *t);

/* Called on the request's headers before its body is read (HTTP/1.1, HTTP/2 and gRPC
 * alike) with the Authorization header value (NULL when absent). Returns 0 to let the
 * request through; anything else answers 401 (gRPC: UNAUTHENTICATED). Any thread. */
typedef int (*fg_http_auth_fn)(void *ctx, const char *authorization);

/* Installs the check on s (before start); ctx is borrowed and must outlive s. */
int fg_http_server_set_auth(struct fg_http_server *s, fg_http_auth_fn fn, void *ctx);

/* Equal lengths and bytes, in time that depends only on the lengths. */
bool fg_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Internal to server/: the loop hands an accepted TCP socket over; returns the fd the loop
 * treats as the connection (one end of a socketpair), or -1 (tcp_fd is then closed). */
int fg__tls_wrap(struct fg_tls_server *t, int tcp_fd);
/* Stops the proxy threads (their plaintext ends are closed by then) and waits for them. */
void fg__tls_stop(struct fg_tls_server *t);

#endif
