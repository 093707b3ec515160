/* Client TLS for exporters that send with libcurl: the `tls:` block (Collector
 * configtls.ClientConfig names) and what it does to an easy handle. */
#ifndef FG_TLS_CLIENT_H
#define FG_TLS_CLIENT_H

#include <curl/curl.h>
#include <stdbool.h>

#include "fg_common.h"
#include "fg_option.h"

struct fg_tls_client_config {
    bool insecure;             /* plaintext (h2c for gRPC); an https:// URL is then an error */
    char *ca_file;             /* trust these CAs instead of the system store */
    char *cert_file;           /* client certificate (mTLS) */
    char *key_file;
    bool insecure_skip_verify; /* no certificate or host name check (testing only) */
    char *server_name_override; /* the name sent as SNI and checked in the certificate */
};

extern const struct fg_option fg_tls_client_options[];

struct fg_tls_client;

/* Checks cfg against url and prepares what each request needs; url is borrowed. */
int fg_tls_client_new(const struct fg_tls_client_config *cfg, const char *url,
                      struct fg_tls_client **out, struct fg_err *err);
void fg_tls_client_free(struct fg_tls_client *t);
/* The URL to request: url, or with its host replaced by server_name_override (the
 * connection still goes to the original host, through CURLOPT_CONNECT_TO). */
const char *fg_tls_client_url(const struct fg_tls_client *t);
/* Sets the TLS options (and CURLOPT_URL) on h; call after curl_easy_reset. t may be NULL
 * (then only the URL is not set: the caller's). Any thread. */
void fg_tls_client_apply(const struct fg_tls_client *t, CURL *h);

#endif
