/* Unit tests of the agent's parts that need no profiled process: configuration from the
 * environment, URL and header parsing, the bounds-checked frame walk, the HTTP client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_config.h"
#include "agent_internal.h"
#include "fg_alloc.h"

static void clear_env(void)
{
    static const char *const vars[] = {"FLAMEGATE_ENDPOINT", "FLAMEGATE_SERVICE_NAME",
                                       "FLAMEGATE_CPU_HZ", "FLAMEGATE_HEAP_SAMPLE_BYTES",
                                       "FLAMEGATE_UPLOAD_INTERVAL", "FLAMEGATE_HEADERS",
                                       "FLAMEGATE_OUTPUT", "FLAMEGATE_PROFILES",
                                       "FLAMEGATE_CPU_SAMPLER", "FLAMEGATE_FOLLOW_FORK"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

static void test_env_defaults(void **state)
{
    (void)state;
    clear_env();
    struct fg_agent_config cfg;
    struct fg__agent_settings s;
    struct fg_err err = {{0}};
    assert_int_equal(fg__agent_config_from_env(&cfg, &err), 0);
    assert_int_equal(fg__agent_settings_make(&cfg, &s, &err), 0);
    assert_int_equal(s.cpu_hz, 99);
    assert_int_equal(s.cpu_sampler, FG__SAMPLER_AUTO);
    assert_int_equal(s.heap_sample_bytes, 524288);
    assert_int_equal(s.upload_interval_ms, 10000);
    assert_int_equal(s.profiles, FG_AGENT_PROFILE_CPU | FG_AGENT_PROFILE_HEAP);
    assert_int_equal(s.output, FG__OUT_OTLP);
    assert_string_equal(s.url.host, "127.0.0.1");
    assert_string_equal(s.url.port, "4318");
    assert_string_equal(s.url.path, "/v1development/profiles");
    assert_null(s.service_name);
    assert_false(s.follow_fork);
    fg__agent_settings_clear(&s);
}

static void test_env_values(void **state)
{
    (void)state;
    clear_env();
    setenv("FLAMEGATE_ENDPOINT", "http://gw.example:9999/base/", 1);
    setenv("FLAMEGATE_SERVICE_NAME", "svc", 1);
    setenv("FLAMEGATE_CPU_HZ", "999", 1);
    setenv("FLAMEGATE_HEAP_SAMPLE_BYTES", "4096", 1);
    setenv("FLAMEGATE_UPLOAD_INTERVAL", "250ms", 1);
    setenv("FLAMEGATE_HEADERS", "Authorization=Bearer%20abc, X-Scope-OrgID=t1", 1);
    setenv("FLAMEGATE_OUTPUT", "otlp-file:/tmp/x", 1);
    setenv("FLAMEGATE_PROFILES", "heap", 1);
    setenv("FLAMEGATE_CPU_SAMPLER", "timer", 1);
    setenv("FLAMEGATE_FOLLOW_FORK", "1", 1);
    struct fg_agent_config cfg;
    struct fg__agent_settings s;
    struct fg_err err = {{0}};
    assert_int_equal(fg__agent_config_from_env(&cfg, &err), 0);
    assert_int_equal(fg__agent_settings_make(&cfg, &s, &err), 0);
    assert_int_equal(s.cpu_hz, 999);
    assert_int_equal(s.cpu_sampler, FG__SAMPLER_TIMER);
    assert_int_equal(s.heap_sample_bytes, 4096);
    assert_int_equal(s.upload_interval_ms, 250);
    assert_int_equal(s.profiles, FG_AGENT_PROFILE_HEAP);
    assert_int_equal(s.output, FG__OUT_OTLP_FILE);
    assert_string_equal(s.out_path, "/tmp/x");
    assert_string_equal(s.url.host, "gw.example");
    assert_string_equal(s.url.port, "9999");
    assert_string_equal(s.url.path, "/base/v1development/profiles");
    assert_string_equal(s.headers, "Authorization: Bearer abc\r\nX-Scope-OrgID: t1\r\n");
    assert_string_equal(s.service_name, "svc");
    assert_true(s.follow_fork);
    fg__agent_settings_clear(&s);
    clear_env();
}

static void test_env_bad_values(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"FLAMEGATE_CPU_HZ", "abc"},          {"FLAMEGATE_CPU_HZ", "5"},
        {"FLAMEGATE_CPU_HZ", "1001"},         {"FLAMEGATE_CPU_HZ", "-5"},
        {"FLAMEGATE_CPU_HZ", "99999999999999999999"},
        {"FLAMEGATE_HEAP_SAMPLE_BYTES", "0"}, {"FLAMEGATE_HEAP_SAMPLE_BYTES", "12k"},
        {"FLAMEGATE_UPLOAD_INTERVAL", "10x"}, {"FLAMEGATE_UPLOAD_INTERVAL", "50ms"},
        {"FLAMEGATE_UPLOAD_INTERVAL", "2h"},  {"FLAMEGATE_PROFILES", "cpu,disk"},
        {"FLAMEGATE_PROFILES", ","},          {"FLAMEGATE_CPU_SAMPLER", "hrtimer"},
        {"FLAMEGATE_CPU_SAMPLER", ""},        {"FLAMEGATE_CPU_SAMPLER", "perf,timer"},
        {"FLAMEGATE_FOLLOW_FORK", "yes"},     {"FLAMEGATE_FOLLOW_FORK", "2"},
        {"FLAMEGATE_FOLLOW_FORK", ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clear_env();
        setenv(bad[i][0], bad[i][1], 1);
        struct fg_agent_config cfg;
        struct fg_err err = {{0}};
        assert_int_equal(fg__agent_config_from_env(&cfg, &err), FG_EINVAL);
        assert_non_null(strstr(err.msg, bad[i][0])); /* the message names the variable */
    }
    static const char *const bad_str[][2] = {
        {"FLAMEGATE_ENDPOINT", "https://x:1"},  {"FLAMEGATE_ENDPOINT", "ftp://x"},
        {"FLAMEGATE_ENDPOINT", "http://:80"},   {"FLAMEGATE_ENDPOINT", "http://h:0"},
        {"FLAMEGATE_ENDPOINT", "http://h:99999"}, {"FLAMEGATE_ENDPOINT", "http://h:8x"},
        {"FLAMEGATE_ENDPOINT", "http://h/a b"}, {"FLAMEGATE_HEADERS", "novalue"},
        {"FLAMEGATE_HEADERS", "a b=c"},         {"FLAMEGATE_HEADERS", "a=%zz"},
        {"FLAMEGATE_HEADERS", "a=x%0d%0aEvil: 1"}, {"FLAMEGATE_OUTPUT", "kafka"},
        {"FLAMEGATE_OUTPUT", "otlp-file:"},     {"FLAMEGATE_SERVICE_NAME", ""},
    };
    for (size_t i = 0; i < sizeof(bad_str) / sizeof(bad_str[0]); i++) {
        clear_env();
        setenv(bad_str[i][0], bad_str[i][1], 1);
        struct fg_agent_config cfg;
        struct fg__agent_settings s;
        struct fg_err err = {{0}};
        assert_int_equal(fg__agent_config_from_env(&cfg, &err), 0);
        int rc = fg__agent_settings_make(&cfg, &s, &err);
        assert_true(rc < 0);
        assert_true(err.msg[0] != '\0');
    }
    clear_env();
}

/* The API field is checked by _make too (the environment path checked it already). */
static void test_cpu_sampler_field(void **state)
{
    (void)state;
    struct fg_agent_config cfg = {0};
    struct fg__agent_settings s;
    struct fg_err err = {{0}};
    cfg.cpu_sampler = "perf";
    assert_int_equal(fg__agent_settings_make(&cfg, &s, &err), 0);
    assert_int_equal(s.cpu_sampler, FG__SAMPLER_PERF);
    fg__agent_settings_clear(&s);
    cfg.cpu_sampler = "thread-timer";
    assert_int_equal(fg__agent_settings_make(&cfg, &s, &err), 0);
    assert_int_equal(s.cpu_sampler, FG__SAMPLER_THREAD_TIMER);
    assert_string_equal(fg__cpu_sampler_name(s.cpu_sampler), "thread-timer");
    fg__agent_settings_clear(&s);
    cfg.cpu_sampler = "thread_timer";
    assert_int_equal(fg__agent_settings_make(&cfg, &s, &err), FG_EINVAL);
    cfg.cpu_sampler = "Timer";
    assert_int_equal(fg__agent_settings_make(&cfg, &s, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "cpu_sampler"));
}

static void test_url_ipv6(void **state)
{
    (void)state;
    struct fg__url u;
    struct fg_err err = {{0}};
    assert_int_equal(fg__url_parse("http://[::1]:4318", &u, &err), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.port, "4318");
    assert_int_equal(fg__url_parse("http://example", &u, &err), 0);
    assert_string_equal(u.port, "80");
    assert_int_equal(fg__url_parse("http://[::1", &u, &err), FG_EINVAL);
}

static void test_fp_walk_bounds(void **state)
{
    (void)state;
    /* A fake stack: three frames chained upwards, then a pointer that leaves the range. */
    uintptr_t stack[32] = {0};
    uintptr_t lo = (uintptr_t)&stack[0], hi = (uintptr_t)&stack[32];
    stack[4] = (uintptr_t)&stack[10];
    stack[5] = 0x401000;
    stack[10] = (uintptr_t)&stack[20];
    stack[11] = 0x402000;
    stack[20] = (uintptr_t)&stack[64] + 4096; /* outside: must not be followed */
    stack[21] = 0x403000;
    uintptr_t pcs[8];
    uint32_t n = fg__fp_walk((uintptr_t)&stack[4], lo, hi, pcs, 8);
    assert_int_equal(n, 3);
    assert_int_equal(pcs[0], 0x401000);
    assert_int_equal(pcs[1], 0x402000);
    assert_int_equal(pcs[2], 0x403000);
    /* a loop (next <= fp) stops the walk */
    stack[10] = (uintptr_t)&stack[4];
    assert_int_equal(fg__fp_walk((uintptr_t)&stack[4], lo, hi, pcs, 8), 2);
    /* a frame pointer outside the bounds yields nothing */
    assert_int_equal(fg__fp_walk(hi + 64, lo, hi, pcs, 8), 0);
    assert_int_equal(fg__fp_walk(lo - 64, lo, hi, pcs, 8), 0);
    /* misaligned */
    assert_int_equal(fg__fp_walk((uintptr_t)&stack[4] + 3, lo, hi, pcs, 8), 0);
    /* max is respected */
    stack[10] = (uintptr_t)&stack[20];
    assert_int_equal(fg__fp_walk((uintptr_t)&stack[4], lo, hi, pcs, 2), 2);
}

struct server {
    int fd;
    int port;
    const char *reply;
    char got[4096];
    size_t got_len;
};

static void *serve_one(void *arg)
{
    struct server *sv = arg;
    int c = accept(sv->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    /* read until the body (Content-Length 5) is in */
    while (sv->got_len < sizeof(sv->got) - 1) {
        ssize_t n = read(c, sv->got + sv->got_len, sizeof(sv->got) - 1 - sv->got_len);
        if (n <= 0)
            break;
        sv->got_len += (size_t)n;
        sv->got[sv->got_len] = '\0';
        char *end = strstr(sv->got, "\r\n\r\n");
        if (end && sv->got + sv->got_len - (end + 4) >= 5)
            break;
    }
    ssize_t w = write(c, sv->reply, strlen(sv->reply));
    (void)w;
    close(c);
    return NULL;
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4) ||
        getsockname(fd, (struct sockaddr *)&a, &al))
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_http_post(void **state)
{
    (void)state;
    static const char *const replies[] = {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                                          "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"};
    static const int want[] = {200, 503};
    for (int i = 0; i < 2; i++) {
        struct server sv = {0};
        sv.fd = listen_any(&sv.port);
        assert_true(sv.fd >= 0);
        sv.reply = replies[i];
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, serve_one, &sv), 0);
        char base[64];
        snprintf(base, sizeof(base), "http://127.0.0.1:%d/pre", sv.port);
        struct fg__url u;
        struct fg_err err = {{0}};
        assert_int_equal(fg__url_parse(base, &u, &err), 0);
        int status = 0;
        assert_int_equal(fg__http_post(&u, "X-Test: 1\r\n", "application/x-protobuf",
                                       (const uint8_t *)"hello", 5, 5000, &status, NULL,
                                       &err),
                         0);
        pthread_join(th, NULL);
        close(sv.fd);
        assert_int_equal(status, want[i]);
        assert_non_null(strstr(sv.got, "POST /pre/v1development/profiles HTTP/1.1\r\n"));
        assert_non_null(strstr(sv.got, "Content-Encoding: gzip\r\n"));
        assert_non_null(strstr(sv.got, "X-Test: 1\r\n"));
        assert_non_null(strstr(sv.got, "\r\n\r\nhello"));
    }
}

static void test_http_refused(void **state)
{
    (void)state;
    int port;
    int fd = listen_any(&port);
    assert_true(fd >= 0);
    close(fd); /* nobody listens there now */
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    struct fg__url u;
    struct fg_err err = {{0}};
    assert_int_equal(fg__url_parse(base, &u, &err), 0);
    int status = 0;
    int rc = fg__http_post(&u, NULL, "application/x-protobuf", (const uint8_t *)"x", 1, 2000,
                           &status, NULL, &err);
    assert_true(rc < 0);
    assert_int_equal(status, 0);
    assert_non_null(strstr(err.msg, "connect"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_defaults),   cmocka_unit_test(test_env_values),
        cmocka_unit_test(test_env_bad_values), cmocka_unit_test(test_url_ipv6),
        cmocka_unit_test(test_fp_walk_bounds), cmocka_unit_test(test_http_post),
        cmocka_unit_test(test_http_refused),   cmocka_unit_test(test_cpu_sampler_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
