/* Exporter-side TLS through libcurl options; server_name_override rewrites the URL's host
 * and pins the connection to the real one with CURLOPT_CONNECT_TO, which is how libcurl
 * sends a different SNI and checks a different name. */
#include "fg_tls_client.h"

#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_http_url.h"

const struct fg_option fg_tls_client_options[] = {
    FG_OPT_BOOLEAN("insecure", struct fg_tls_client_config, insecure, "false",
                   "send without TLS (the endpoint must then be http://)"),
    FG_OPT_STR("ca_file", struct fg_tls_client_config, ca_file, NULL,
               "PEM CA bundle to verify the server with (default: the system store)"),
    FG_OPT_STR("cert_file", struct fg_tls_client_config, cert_file, NULL,
               "PEM client certificate, for servers that require mTLS"),
    FG_OPT_STR("key_file", struct fg_tls_client_config, key_file, NULL,
               "PEM private key of cert_file"),
    FG_OPT_BOOLEAN("insecure_skip_verify", struct fg_tls_client_config, insecure_skip_verify,
                   "false", "do not verify the server certificate (testing only)"),
    FG_OPT_STR("server_name_override", struct fg_tls_client_config, server_name_override, NULL,
               "name sent as SNI and expected in the server certificate"),
    FG_OPT_END,
};

struct fg_tls_client {
    struct fg_tls_client_config cfg; /* strings borrowed from the config */
    struct curl_slist *connect_to;   /* set with server_name_override */
};

/* url with its host replaced by name (fg_free it); NULL when out of memory or url does not
 * parse. */
static char *with_host(const char *url, const char *name)
{
    struct fg_http_url u;
    if (fg_http_url_parse("url", url, &u, NULL) != 0)
        return NULL;
    size_t name_len = strlen(name), tail_len = strlen(url + u.host_end);
    char *out = fg_malloc(u.host_start + name_len + tail_len + 1);
    if (!out)
        return NULL;
    memcpy(out, url, u.host_start);
    memcpy(out + u.host_start, name, name_len);
    memcpy(out + u.host_start + name_len, url + u.host_end, tail_len + 1);
    return out;
}

int fg_tls_client_new(const struct fg_tls_client_config *cfg, const char *url,
                      struct fg_tls_client **out, struct fg_err *err)
{
    *out = NULL;
    struct fg_http_url u;
    int rc = fg_http_url_parse("endpoint", url, &u, err);
    if (rc != 0)
        return rc;
    if (cfg->insecure && u.https)
        return fg_err_set(err, FG_EINVAL, "tls.insecure: true, but the endpoint %s is https",
                          url);
    if ((cfg->cert_file && *cfg->cert_file) != (cfg->key_file && *cfg->key_file))
        return fg_err_set(err, FG_EINVAL, "tls: cert_file and key_file go together");
    const char *name = cfg->server_name_override;
    if (name && *name && (strpbrk(name, "/?#@: \t\r\n") || strlen(name) > 253))
        return fg_err_set(err, FG_EINVAL, "tls.server_name_override: \"%s\" is not a host name",
                          name);
    struct fg_tls_client *t = fg_calloc(1, sizeof(*t));
    if (!t)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    t->cfg = *cfg;
    if (name && *name && u.https) {
        /* CURLOPT_CONNECT_TO "name:port:host:port": a request to name goes to host */
        char line[600];
        snprintf(line, sizeof(line), "%s:%u:%.*s:%u", name, u.port,
                 (int)(u.host_end - u.host_start), url + u.host_start, u.port);
        if (!(t->connect_to = curl_slist_append(NULL, line))) {
            fg_tls_client_free(t);
            return fg_err_set(err, FG_ENOMEM, "out of memory");
        }
    }
    *out = t;
    return 0;
}

void fg_tls_client_free(struct fg_tls_client *t)
{
    if (!t)
        return;
    curl_slist_free_all(t->connect_to);
    fg_free(t);
}

int fg_tls_client_apply(const struct fg_tls_client *t, CURL *h, const char *url)
{
    if (!t)
        return 0;
    const struct fg_tls_client_config *c = &t->cfg;
    if (t->connect_to) {
        char *u = with_host(url, c->server_name_override);
        if (!u)
            return FG_EINVAL;
        curl_easy_setopt(h, CURLOPT_URL, u); /* libcurl copies it */
        fg_free(u);
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, t->connect_to);
    }
    if (c->ca_file && *c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->cert_file && *c->cert_file) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
    }
    if (c->insecure_skip_verify) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    /* The Collector's default minimum. */
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    return 0;
}
