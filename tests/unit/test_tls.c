/* Listener TLS end to end in one process: a certificate made here with the OpenSSL API, the
 * listener with fg_http_server_set_tls, libcurl as the client over HTTP/1.1 and HTTP/2 (ALPN
 * h2), client certificates (mTLS), the auth hook on both protocols, and the configuration
 * errors of fg_tls_server_new. */
#include "fg_tls.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "testutil.h"

static char dir[256];
static char ca_crt[300], ca_key[300], srv_crt[300], srv_key[300], cli_crt[300], cli_key[300];
static char other_key[300];
static atomic_int calls;

static void write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (x)
        assert_int_equal(PEM_write_X509(f, x), 1);
    else
        assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(e);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

/* A certificate for cn signed by (issuer, ikey), or self-signed when issuer is NULL. */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, bool ca,
                       long serial)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    add_ext(x, issuer ? issuer : x, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    if (!ca && strcmp(cn, "localhost") == 0)
        add_ext(x, issuer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    assert_true(X509_sign(x, ikey ? ikey : key, EVP_sha256()) > 0);
    return x;
}

static int setup(void **state)
{
    tu_tempdir(dir, sizeof(dir));
    snprintf(ca_crt, sizeof(ca_crt), "%s/ca.crt", dir);
    snprintf(ca_key, sizeof(ca_key), "%s/ca.key", dir);
    snprintf(srv_crt, sizeof(srv_crt), "%s/srv.crt", dir);
    snprintf(srv_key, sizeof(srv_key), "%s/srv.key", dir);
    snprintf(cli_crt, sizeof(cli_crt), "%s/cli.crt", dir);
    snprintf(cli_key, sizeof(cli_key), "%s/cli.key", dir);
    snprintf(other_key, sizeof(other_key), "%s/other.key", dir);
    EVP_PKEY *kca = EVP_EC_gen("P-256"), *ksrv = EVP_EC_gen("P-256"),
             *kcli = EVP_EC_gen("P-256"), *kother = EVP_EC_gen("P-256");
    assert_true(kca && ksrv && kcli && kother);
    X509 *ca = make_cert("test ca", kca, NULL, NULL, true, 1);
    X509 *srv = make_cert("localhost", ksrv, ca, kca, false, 2);
    X509 *cli = make_cert("client", kcli, ca, kca, false, 3);
    write_pem(ca_crt, ca, NULL);
    write_pem(ca_key, NULL, kca);
    write_pem(srv_crt, srv, NULL);
    write_pem(srv_key, NULL, ksrv);
    write_pem(cli_crt, cli, NULL);
    write_pem(cli_key, NULL, kcli);
    write_pem(other_key, NULL, kother);
    X509_free(ca);
    X509_free(srv);
    X509_free(cli);
    EVP_PKEY_free(kca);
    EVP_PKEY_free(ksrv);
    EVP_PKEY_free(kcli);
    EVP_PKEY_free(kother);
    curl_global_init(CURL_GLOBAL_ALL);
    return 0;
}

static int teardown(void **state)
{
    curl_global_cleanup();
    tu_rmtree(dir);
    return 0;
}

static void hello(void *ctx, const struct fg_http_request *req, struct fg_http_response *resp)
{
    atomic_fetch_add(&calls, 1);
    fg_buf_printf(&resp->body, "hello %zu", req->body_len);
}

static int auth_check(void *ctx, const char *authorization)
{
    return authorization && strcmp(authorization, "Bearer good") == 0 ? 0 : FG_EPERMANENT;
}

static struct fg_http_server *start_server(const char *client_ca, bool with_auth)
{
    struct fg_http_server *s = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_http_server_new("127.0.0.1:0", &s, &err), 0);
    struct fg_http_route r = {"/hello", "POST", hello, NULL, 1 << 20};
    assert_int_equal(fg_http_server_route(s, &r), 0);
    struct fg_tls_server_config cfg = {srv_crt, srv_key, (char *)client_ca, FG_TLS_1_2};
    struct fg_tls_server *t = NULL;
    assert_int_equal(fg_tls_server_new(&cfg, &t, &err), 0);
    assert_int_equal(fg_http_server_set_tls(s, t), 0);
    if (with_auth)
        assert_int_equal(fg_http_server_set_auth(s, auth_check, NULL), 0);
    assert_int_equal(fg_http_server_start(s, &err), 0);
    return s;
}

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    struct fg_buf *b = ud;
    fg_buf_append(b, p, sz * n);
    return sz * n;
}

/* Returns the HTTP status, 0 when the transfer failed; *version gets CURL_HTTP_VERSION_*. */
static long post(uint16_t port, long httpver, const char *cert, const char *key,
                 const char *authz, long *version, struct fg_buf *body)
{
    CURL *h = curl_easy_init();
    char url[64];
    snprintf(url, sizeof(url), "https://localhost:%u/hello", (unsigned)port);
    struct curl_slist *hdrs = NULL;
    char line[128];
    if (authz) {
        snprintf(line, sizeof(line), "Authorization: %s", authz);
        hdrs = curl_slist_append(hdrs, line);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "12345");
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, httpver);
    curl_easy_setopt(h, CURLOPT_CAINFO, ca_crt);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    if (cert) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, key);
    }
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, version);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return status;
}

static void test_http1_and_h2(void **state)
{
    struct fg_http_server *s = start_server(NULL, false);
    uint16_t port = fg_http_server_port(s);
    long ver = 0;
    struct fg_buf b;
    fg_buf_init(&b, 0);
    assert_int_equal(post(port, CURL_HTTP_VERSION_1_1, NULL, NULL, NULL, &ver, &b), 200);
    assert_int_equal(ver, CURL_HTTP_VERSION_1_1);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "hello 5", 7);
    b.len = 0;
    /* ALPN picks h2 */
    assert_int_equal(post(port, CURL_HTTP_VERSION_2TLS, NULL, NULL, NULL, &ver, &b), 200);
    assert_int_equal(ver, CURL_HTTP_VERSION_2_0);
    assert_memory_equal(b.data, "hello 5", 7);
    /* several connections in a row, each its own proxy thread */
    for (int i = 0; i < 8; i++) {
        b.len = 0;
        assert_int_equal(post(port, i % 2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1,
                              NULL, NULL, NULL, &ver, &b), 200);
    }
    fg_buf_free(&b);
    fg_http_server_free(s);
}

static void test_mtls(void **state)
{
    struct fg_http_server *s = start_server(ca_crt, false);
    uint16_t port = fg_http_server_port(s);
    long ver = 0;
    struct fg_buf b;
    fg_buf_init(&b, 0);
    int before = atomic_load(&calls);
    assert_int_equal(post(port, CURL_HTTP_VERSION_1_1, NULL, NULL, NULL, &ver, &b), 0);
    assert_int_equal(post(port, CURL_HTTP_VERSION_2TLS, NULL, NULL, NULL, &ver, &b), 0);
    assert_int_equal(atomic_load(&calls), before);
    assert_int_equal(post(port, CURL_HTTP_VERSION_1_1, cli_crt, cli_key, NULL, &ver, &b), 200);
    assert_int_equal(post(port, CURL_HTTP_VERSION_2TLS, cli_crt, cli_key, NULL, &ver, &b), 200);
    fg_buf_free(&b);
    fg_http_server_free(s);
}

static void test_auth_hook(void **state)
{
    struct fg_http_server *s = start_server(NULL, true);
    uint16_t port = fg_http_server_port(s);
    long ver = 0;
    struct fg_buf b;
    fg_buf_init(&b, 0);
    static const long versions[] = {CURL_HTTP_VERSION_1_1, CURL_HTTP_VERSION_2TLS};
    for (size_t i = 0; i < 2; i++) {
        int before = atomic_load(&calls);
        assert_int_equal(post(port, versions[i], NULL, NULL, NULL, &ver, &b), 401);
        assert_int_equal(post(port, versions[i], NULL, NULL, "Bearer bad", &ver, &b), 401);
        assert_int_equal(atomic_load(&calls), before); /* the handler never ran */
        assert_int_equal(post(port, versions[i], NULL, NULL, "Bearer good", &ver, &b), 200);
        assert_int_equal(atomic_load(&calls), before + 1);
    }
    fg_buf_free(&b);
    fg_http_server_free(s);
}

static void test_config_errors(void **state)
{
    struct fg_tls_server *t = NULL;
    struct fg_err err = {{0}};
    struct fg_tls_server_config cfg = {srv_crt, NULL, NULL, FG_TLS_1_2};
    assert_int_equal(fg_tls_server_new(&cfg, &t, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "required"));
    cfg.key_file = other_key;
    assert_int_equal(fg_tls_server_new(&cfg, &t, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "key_file"));
    char absent[320];
    snprintf(absent, sizeof(absent), "%s/absent.pem", dir);
    cfg.key_file = srv_key;
    cfg.cert_file = absent;
    assert_int_equal(fg_tls_server_new(&cfg, &t, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "cert_file"));
    cfg.cert_file = srv_crt;
    cfg.client_ca_file = absent;
    assert_int_equal(fg_tls_server_new(&cfg, &t, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "client_ca_file"));
    assert_null(t);
    cfg.client_ca_file = NULL;
    cfg.min_version = FG_TLS_1_3;
    assert_int_equal(fg_tls_server_new(&cfg, &t, &err), 0);
    fg_tls_server_free(t);
    fg_tls_server_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http1_and_h2),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_auth_hook),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
