/* exporters/fg_http_url (scheme, host and port checked at create without libcurl) and the
 * endpoint checks of fg_tls_client_new built on it. */
#include "fg_http_url.h"

#include <string.h>

#include "fg_tls_client.h"
#include "testutil.h"

static void expect_host(const char *url, bool https, const char *host, unsigned port)
{
    struct fg_http_url u;
    struct fg_err err = {{0}};
    assert_int_equal(fg_http_url_parse("endpoint", url, &u, &err), 0);
    assert_int_equal(u.https, https);
    assert_int_equal(u.host_end - u.host_start, strlen(host));
    assert_memory_equal(url + u.host_start, host, strlen(host));
    assert_int_equal(u.port, port);
}

static void test_parse_good(void **state)
{
    (void)state;
    expect_host("http://127.0.0.1:4318/v1development/profiles", false, "127.0.0.1", 4318);
    expect_host("https://example.com", true, "example.com", 443);
    expect_host("HTTP://example.com/x?y=1#z", false, "example.com", 80);
    expect_host("https://user:pw@example.com:8443/", true, "example.com", 8443);
    expect_host("http://[::1]:9/", false, "[::1]", 9);
    expect_host("https://[2001:db8::1]/p", true, "[2001:db8::1]", 443);
    expect_host("http://h:65535", false, "h", 65535);
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const struct {
        const char *url, *why;
    } bad[] = {
        {"ftp://x:1", "scheme"},          {"127.0.0.1:4318", "scheme"},
        {"http://", "no host"},           {"http:///path", "no host"},
        {"http://:80/", "no host"},       {"http://[]:80/", "no host"},
        {"http://h:0/", "port"},          {"http://h:65536/", "port"},
        {"http://h:/", "port"},           {"http://h:8x/", "port"},
        {"http://h:99999999999999999999/", "port"},
        {"http://[::1/", "without ']'"},  {"http://[::1]x/", "after the host"},
        {"http://a b/", "space"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct fg_http_url u;
        struct fg_err err = {{0}};
        assert_int_equal(fg_http_url_parse("endpoint", bad[i].url, &u, &err), FG_EINVAL);
        if (!strstr(err.msg, bad[i].why) || !strstr(err.msg, "endpoint: '"))
            fail_msg("%s: message '%s' lacks '%s'", bad[i].url, err.msg, bad[i].why);
    }
}

static void test_tls_client_checks_endpoint(void **state)
{
    (void)state;
    struct fg_tls_client_config cfg = {0};
    struct fg_tls_client *t = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_tls_client_new(&cfg, "gopher://h:1/", &t, &err), FG_EINVAL);
    assert_null(t);
    assert_non_null(strstr(err.msg, "scheme"));

    cfg.insecure = true;
    assert_int_equal(fg_tls_client_new(&cfg, "https://h/", &t, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "tls.insecure"));

    cfg.insecure = false;
    cfg.server_name_override = "bad name";
    assert_int_equal(fg_tls_client_new(&cfg, "https://h/", &t, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "server_name_override"));

    cfg.server_name_override = "flamegate.test";
    assert_int_equal(fg_tls_client_new(&cfg, "https://127.0.0.1:8443/v1", &t, &err), 0);
    assert_non_null(t);
    fg_tls_client_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_tls_client_checks_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
