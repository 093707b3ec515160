/* Forwarders for the OpenSSL functions the TLS listener calls, resolved with dlopen/dlsym
 * on first use (see fg_ssl_dl.h). OpenSSL "functions" that are macros (SSL_CTX_set_mode,
 * sk_X509_NAME_pop_free, ...) reach the real functions below. */
#include "fg_ssl_dl.h"


#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "fg_dl.h"

/* X(return type, name, parameters, arguments, value when OpenSSL is missing) */
#define FG_SSL_FUNCS(X)                                                                    \
    X(unsigned long, ERR_peek_last_error, (void), (), 0)                                   \
    X(const SSL_METHOD *, TLS_server_method, (void), (), NULL)                             \
    X(SSL_CTX *, SSL_CTX_new, (const SSL_METHOD *m), (m), NULL)                            \
    X(long, SSL_CTX_ctrl, (SSL_CTX * c, int cmd, long l, void *p), (c, cmd, l, p), 0)      \
    X(uint64_t, SSL_CTX_set_options, (SSL_CTX * c, uint64_t op), (c, op), 0)               \
    X(int, SSL_CTX_use_certificate_chain_file, (SSL_CTX * c, const char *f), (c, f), 0)    \
    X(int, SSL_CTX_use_PrivateKey_file, (SSL_CTX * c, const char *f, int t), (c, f, t), 0) \
    X(int, SSL_CTX_check_private_key, (const SSL_CTX *c), (c), 0)                          \
    X(STACK_OF(X509_NAME) *, SSL_load_client_CA_file, (const char *f), (f), NULL)          \
    X(int, SSL_CTX_load_verify_locations, (SSL_CTX * c, const char *f, const char *d),     \
      (c, f, d), 0)                                                                        \
    X(SSL *, SSL_new, (SSL_CTX * c), (c), NULL)                                            \
    X(int, SSL_set_fd, (SSL * s, int fd), (s, fd), 0)                                      \
    X(int, SSL_accept, (SSL * s), (s), -1)                                                 \
    X(int, SSL_read, (SSL * s, void *buf, int n), (s, buf, n), -1)                         \
    X(int, SSL_write, (SSL * s, const void *buf, int n), (s, buf, n), -1)                  \
    X(int, SSL_shutdown, (SSL * s), (s), -1)                                               \
    X(int, SSL_get_error, (const SSL *s, int r), (s, r), SSL_ERROR_SSL)                    \
    X(long, SSL_get_verify_result, (const SSL *s), (s), X509_V_ERR_UNSPECIFIED)            \
    X(const char *, X509_verify_cert_error_string, (long n), (n), "OpenSSL is not loaded") \
    X(int, SSL_select_next_proto,                                                          \
      (unsigned char **out, unsigned char *outlen, const unsigned char *in,                \
       unsigned int inlen, const unsigned char *client, unsigned int client_len),          \
      (out, outlen, in, inlen, client, client_len), OPENSSL_NPN_NO_OVERLAP)
/* X(void, name, parameters, arguments): functions without a result */
#define FG_SSL_VOID_FUNCS(X)                                                                    \
    X(void, ERR_clear_error, (void), ())                                                        \
    X(void, ERR_error_string_n, (unsigned long e, char *buf, size_t len), (e, buf, len))        \
    X(void, OPENSSL_sk_pop_free, (OPENSSL_STACK * st, void (*fn)(void *)), (st, fn))            \
    X(void, X509_NAME_free, (X509_NAME * n), (n))                                               \
    X(void, SSL_CTX_free, (SSL_CTX * c), (c))                                                   \
    X(void, SSL_CTX_set_client_CA_list, (SSL_CTX * c, STACK_OF(X509_NAME) * l), (c, l))         \
    X(void, SSL_CTX_set_verify, (SSL_CTX * c, int mode, SSL_verify_cb cb), (c, mode, cb))       \
    X(void, SSL_CTX_set_alpn_select_cb, (SSL_CTX * c, SSL_CTX_alpn_select_cb_func cb, void *a), \
      (c, cb, a))                                                                               \
    X(void, SSL_set_accept_state, (SSL * s), (s))                                               \
    X(void, SSL_free, (SSL * s), (s))

enum { FG_SSL_FUNCS(FG_DL_INDEX) FG_SSL_VOID_FUNCS(FG_DL_INDEX) N_FUNCS };
static const char *const names[N_FUNCS] = {FG_SSL_FUNCS(FG_DL_NAME)
                                               FG_SSL_VOID_FUNCS(FG_DL_NAME)};

static void *fns[N_FUNCS];
/* libcrypto's functions are found through libssl's dependencies. */
static struct fg_dl_lib lib = FG_DL_LIB(FG_SSL_SONAME, FG_SSL_PACKAGE, names, fns, N_FUNCS);

int fg_ssl_dl_load(struct fg_err *err)
{
    return fg_dl_load(&lib, "OpenSSL", err);
}

#define FG__FORWARD(type, name, params, args, fail) \
    FG_DL_FORWARD(&lib, fns[FN_##name], type, name, params, args, fail)
#define FG__FORWARD_VOID(type, name, params, args) \
    FG_DL_FORWARD_VOID(&lib, fns[FN_##name], name, params, args)
FG_SSL_FUNCS(FG__FORWARD)
FG_SSL_VOID_FUNCS(FG__FORWARD_VOID)
