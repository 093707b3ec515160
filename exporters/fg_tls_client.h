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

/* Checks url (the exporter's base URL: http or https, a host, a port in 1..65535; see
 * fg_http_url.h) and cfg against it, and prepares what each request needs, without loading
 * libcurl; url is borrowed. */
int fg_tls_client_new(const struct fg_tls_client_config *cfg, const char *url,
                      struct fg_tls_client **out, struct fg_err *err);
void fg_tls_client_free(struct fg_tls_client *t);
/* Sets the TLS options on h (after curl_easy_reset and CURLOPT_URL) for a request to url, a
 * URL on the same host as the base one. With server_name_override the request goes to url
 * with its host replaced by that name, and CURLOPT_CONNECT_TO still connects to the real
 * host. t may be NULL (nothing to do). Returns 0 or FG_ENOMEM / FG_EINVAL. Any thread. */
int fg_tls_client_apply(const struct fg_tls_client *t, CURL *h, const char *url);

#endif
