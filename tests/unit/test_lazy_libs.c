/* The lazy library shims: fg_curl_dl_load/fg_ssl_dl_load find the libraries, the variadic
 * curl_easy_setopt/getinfo forwarders pass each argument type through (read back from the
 * real libcurl), and the slist pair works without libcurl. Whether a gateway maps the
 * libraries is checked on the real binary by tests/integration/test_lazy_libs.py. */
#include "fg_curl_dl.h"

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>

#include "fg_curl_exporter.h"
#include "fg_ssl_dl.h"
#include "testutil.h"

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static void test_curl_forwarding(void **state)
{
    (void)state;
    struct fg_err err = {{0}};
    assert_int_equal(fg_curl_dl_load(&err), 0);
    assert_int_equal(fg_curl_global_init(&err), 0);
    curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    assert_non_null(v);
    assert_true(v->features & CURL_VERSION_HTTP2);

    CURL *h = curl_easy_init();
    assert_non_null(h);
    /* one option of each argument type: long, pointer, function pointer, curl_off_t */
    assert_int_equal(curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1500L), CURLE_OK);
    assert_int_equal(curl_easy_setopt(h, CURLOPT_URL, "http://127.0.0.1:1/lazy"), CURLE_OK);
    assert_int_equal(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard), CURLE_OK);
    assert_int_equal(curl_easy_setopt(h, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)12345),
                     CURLE_OK);
    /* a bad long is refused by libcurl itself: the value arrived */
    assert_int_equal(curl_easy_setopt(h, CURLOPT_HTTP_VERSION, 999L), CURLE_UNSUPPORTED_PROTOCOL);
    char *url = NULL;
    assert_int_equal(curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &url), CURLE_OK);
    assert_string_equal(url, "http://127.0.0.1:1/lazy");
    long code = -1;
    assert_int_equal(curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code), CURLE_OK);
    assert_int_equal(code, 0);
    char *esc = curl_easy_escape(h, "a b", 3);
    assert_string_equal(esc, "a%20b");
    curl_free(esc);
    assert_true(curl_getdate("Sun, 06 Nov 1994 08:49:37 GMT", NULL) == 784111777);
    assert_string_equal(curl_easy_strerror(CURLE_OK), "No error");
    curl_easy_cleanup(h);
}

static void test_slist_without_libcurl(void **state)
{
    (void)state;
    struct curl_slist *l = curl_slist_append(NULL, "A: 1");
    assert_non_null(l);
    assert_ptr_equal(curl_slist_append(l, "B: 2"), l);
    assert_string_equal(l->data, "A: 1");
    assert_string_equal(l->next->data, "B: 2");
    assert_null(l->next->next);
    curl_slist_free_all(l);
    curl_slist_free_all(NULL);
}

static void test_ssl_forwarding(void **state)
{
    (void)state;
    struct fg_err err = {{0}};
    assert_int_equal(fg_ssl_dl_load(&err), 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    /* a macro over SSL_CTX_ctrl: the value comes back through the forwarder */
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
    ERR_clear_error();
    assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, "/nonexistent/cert.pem"), 0);
    char buf[256] = "";
    unsigned long e = ERR_peek_last_error();
    assert_true(e != 0);
    ERR_error_string_n(e, buf, sizeof(buf));
    assert_true(strlen(buf) > 0);
    ERR_clear_error();
    SSL_CTX_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curl_forwarding),
        cmocka_unit_test(test_slist_without_libcurl),
        cmocka_unit_test(test_ssl_forwarding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
