/* The otlp (OTLP/gRPC) exporter's client helpers: message framing, grpc-timeout, status
 * trailers with percent-encoded messages and RetryInfo details, the retry policy, config
 * validation, and a call to a closed port. The wire interop runs against python3-grpcio in
 * tests/integration/test_otlp_exporter.py. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_gzip.h"
#include "fg_model.h"
#include "fg_otlp_pb.h"
#include "otlp_exporter.h"

#define MS INT64_C(1000000)

static void test_frame_prefix(void **state)
{
    uint8_t p[5];
    fg__grpcc_frame_prefix(p, false, 0x01020304u);
    const uint8_t want[5] = {0, 1, 2, 3, 4};
    assert_memory_equal(p, want, 5);
    fg__grpcc_frame_prefix(p, true, 7);
    const uint8_t want2[5] = {1, 0, 0, 0, 7};
    assert_memory_equal(p, want2, 5);
}

static void test_unframe(void **state)
{
    struct fg_err err = {{0}};
    struct fg_buf msg;
    fg_buf_init(&msg, 1 << 20);

    /* empty body: no message (allowed for an error answer) */
    assert_int_equal(fg__grpcc_unframe(NULL, 0, "", &msg, &err), 0);
    assert_int_equal(msg.len, 0);

    const uint8_t plain[] = {0, 0, 0, 0, 3, 'a', 'b', 'c'};
    assert_int_equal(fg__grpcc_unframe(plain, sizeof(plain), "", &msg, &err), 0);
    assert_int_equal(msg.len, 3);
    assert_memory_equal(msg.data, "abc", 3);
    msg.len = 0;

    /* gzip'd message with grpc-encoding gzip */
    struct fg_buf body;
    fg_buf_init(&body, 0);
    const uint8_t zero[5] = {0};
    assert_int_equal(fg_buf_append(&body, zero, 5), 0);
    assert_int_equal(fg_gzip((const uint8_t *)"hello grpc", 10, 6, &body), 0);
    fg__grpcc_frame_prefix(body.data, true, (uint32_t)(body.len - 5));
    assert_int_equal(fg__grpcc_unframe(body.data, body.len, "gzip", &msg, &err), 0);
    assert_int_equal(msg.len, 10);
    assert_memory_equal(msg.data, "hello grpc", 10);
    msg.len = 0;
    /* compressed flag without a known grpc-encoding */
    assert_int_equal(fg__grpcc_unframe(body.data, body.len, "", &msg, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "grpc-encoding"));
    assert_int_equal(fg__grpcc_unframe(body.data, body.len, "snappy", &msg, &err), FG_EINVAL);
    fg_buf_free(&body);

    const uint8_t short_body[] = {0, 0, 0};
    assert_int_equal(fg__grpcc_unframe(short_body, sizeof(short_body), "", &msg, &err),
                     FG_EINVAL);
    const uint8_t bad_flag[] = {2, 0, 0, 0, 0};
    assert_int_equal(fg__grpcc_unframe(bad_flag, sizeof(bad_flag), "", &msg, &err), FG_EINVAL);
    const uint8_t too_long[] = {0, 0, 0, 0, 9, 'x'};
    assert_int_equal(fg__grpcc_unframe(too_long, sizeof(too_long), "", &msg, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "9 bytes"));
    const uint8_t two_msgs[] = {0, 0, 0, 0, 1, 'x', 0, 0, 0, 0, 1, 'y'};
    assert_int_equal(fg__grpcc_unframe(two_msgs, sizeof(two_msgs), "", &msg, &err), FG_EINVAL);
    /* a message past the buffer's limit */
    struct fg_buf small;
    fg_buf_init(&small, 2);
    assert_int_equal(fg__grpcc_unframe(plain, sizeof(plain), "", &small, &err), FG_ETOOBIG);
    fg_buf_free(&small);
    fg_buf_free(&msg);
}

static void test_timeout_value(void **state)
{
    char v[16];
    static const struct {
        int64_t ns;
        const char *want;
    } cases[] = {
        {1, "1n"},
        {0, "1n"},
        {99999999, "99999999n"},
        {100000000, "100000u"},
        {100000001, "100001u"}, /* rounded up, never shorter than asked */
        {5000 * MS, "5000000u"},
        {INT64_C(3600000000000), "3600000m"},
        {INT64_C(200000000000000), "200000S"},
        {INT64_C(100000000000000000), "1666667M"},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(cases); i++) {
        fg__grpcc_timeout_value(cases[i].ns, v, sizeof(v));
        assert_string_equal(v, cases[i].want);
    }
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64, with or without padding. */
static void b64(const uint8_t *in, size_t len, bool pad, char *out, size_t size)
{
    size_t j = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t n = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            n |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            n |= in[i + 2];
        int chars = i + 2 < len ? 4 : i + 1 < len ? 3 : 2;
        for (int k = 0; k < 4; k++) {
            assert_true(j + 1 < size);
            if (k < chars)
                out[j++] = b64chars[(n >> (18 - 6 * k)) & 63];
            else if (pad)
                out[j++] = '=';
        }
    }
    out[j] = '\0';
}

/* google.rpc.Status{code, message, details: [other?, RetryInfo(delay)?]} as base64. */
static void status_b64(int code, const char *message, int64_t delay_s, int32_t delay_ns,
                       bool with_retry, bool with_other, bool pad, char *out, size_t size)
{
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    d.seconds = delay_s;
    d.nanos = delay_ns;
    Google__Rpc__RetryInfo ri = GOOGLE__RPC__RETRY_INFO__INIT;
    ri.retry_delay = &d;
    uint8_t ri_bytes[64];
    size_t ri_len = google__rpc__retry_info__pack(&ri, ri_bytes);

    Google__Protobuf__Any other = GOOGLE__PROTOBUF__ANY__INIT;
    other.type_url = "type.googleapis.com/google.rpc.BadRequest";
    other.value.data = (uint8_t *)"\x0a\x00";
    other.value.len = 2;
    Google__Protobuf__Any retry = GOOGLE__PROTOBUF__ANY__INIT;
    retry.type_url = "type.googleapis.com/google.rpc.RetryInfo";
    retry.value.data = ri_bytes;
    retry.value.len = ri_len;
    Google__Protobuf__Any *details[2];
    size_t n = 0;
    if (with_other)
        details[n++] = &other;
    if (with_retry)
        details[n++] = &retry;

    pb_status st = GOOGLE__RPC__STATUS__INIT;
    st.code = code;
    st.message = (char *)message;
    st.n_details = n;
    st.details = details;
    uint8_t packed[512];
    assert_true(google__rpc__status__get_packed_size(&st) <= sizeof(packed));
    size_t len = google__rpc__status__pack(&st, packed);
    b64(packed, len, pad, out, size);
}

static void feed(struct fg__grpcc_result *r, const char *line)
{
    fg__grpcc_header_line(r, line, strlen(line));
}

static void test_header_lines(void **state)
{
    struct fg__grpcc_result r;
    memset(&r, 0, sizeof(r));
    /* headers, then trailers, as libcurl's header callback gives them */
    feed(&r, "HTTP/2 200 \r\n");
    feed(&r, "content-type: application/grpc\r\n");
    feed(&r, "grpc-encoding: gzip\r\n");
    feed(&r, "\r\n");
    assert_false(r.have_status);
    feed(&r, "grpc-status: 14\r\n");
    feed(&r, "grpc-message: try%20later%3A%20100%25%20busy\r\n");
    assert_true(r.have_status);
    assert_int_equal(r.status, FG_GRPC_UNAVAILABLE);
    assert_string_equal(r.message, "try later: 100% busy");
    assert_string_equal(r.encoding, "gzip");
    assert_string_equal(r.content_type, "application/grpc");
    assert_false(r.have_retry_info);

    /* names are case-insensitive; a bad escape stays as it is; a bad code is UNKNOWN */
    memset(&r, 0, sizeof(r));
    feed(&r, "Grpc-Status: x1\r\n");
    feed(&r, "GRPC-MESSAGE: 50%zz off%2\r\n");
    assert_true(r.have_status);
    assert_int_equal(r.status, FG_GRPC_UNKNOWN);
    assert_string_equal(r.message, "50%zz off%2");
    /* lookalike names are not status lines */
    memset(&r, 0, sizeof(r));
    feed(&r, "grpc-status-extra: 3\r\n");
    feed(&r, "x-grpc-status: 3\r\n");
    assert_false(r.have_status);

    /* Trailers-Only with details: RetryInfo 1.5 s, unpadded base64 as gRPC sends it, and
     * Status.message standing in for a missing grpc-message */
    char line[1024], b[900];
    status_b64(8, "quota exceeded", 1, 500000000, true, true, false, b, sizeof(b));
    snprintf(line, sizeof(line), "grpc-status-details-bin: %s\r\n", b);
    memset(&r, 0, sizeof(r));
    feed(&r, "grpc-status: 8\r\n");
    feed(&r, line);
    assert_int_equal(r.status, FG_GRPC_RESOURCE_EXHAUSTED);
    assert_true(r.have_retry_info);
    assert_int_equal(r.retry_delay_ns, 1500 * MS);
    assert_string_equal(r.message, "quota exceeded");

    /* a garbled details header changes nothing */
    memset(&r, 0, sizeof(r));
    feed(&r, "grpc-status-details-bin: !!!not base64\r\n");
    assert_false(r.have_retry_info);
    assert_string_equal(r.message, "");
}

static void test_status_details(void **state)
{
    char b[900], msg[64];
    int64_t delay;

    status_b64(14, "later", 2, 0, true, false, true, b, sizeof(b)); /* padded */
    assert_int_equal(fg__grpcc_status_details(b, strlen(b), &delay, msg, sizeof(msg)), 0);
    assert_int_equal(delay, 2000 * MS);
    assert_string_equal(msg, "later");

    status_b64(14, "no retry info", 0, 0, false, true, false, b, sizeof(b));
    assert_int_equal(fg__grpcc_status_details(b, strlen(b), &delay, NULL, 0), 0);
    assert_int_equal(delay, -1);

    /* RetryInfo with a zero delay still counts as RetryInfo; a negative one is clamped */
    status_b64(8, "", 0, 0, true, false, false, b, sizeof(b));
    assert_int_equal(fg__grpcc_status_details(b, strlen(b), &delay, NULL, 0), 0);
    assert_int_equal(delay, 0);
    status_b64(8, "", -5, 0, true, false, false, b, sizeof(b));
    assert_int_equal(fg__grpcc_status_details(b, strlen(b), &delay, NULL, 0), 0);
    assert_int_equal(delay, 0);

    assert_int_equal(fg__grpcc_status_details("a", 1, &delay, NULL, 0), FG_EINVAL);
    assert_int_equal(fg__grpcc_status_details("a*bc", 4, &delay, NULL, 0), FG_EINVAL);
    /* valid base64 of bytes that are not a Status (field 1 with a LEN wire type) */
    assert_int_equal(fg__grpcc_status_details("Cg", 2, &delay, NULL, 0), FG_EINVAL);
    assert_int_equal(delay, -1);
}

static void test_retry_policy(void **state)
{
    /* WIRE.md §3.2 */
    static const bool want[17] = {
        [1] = true, [4] = true, [10] = true, [11] = true, [14] = true, [15] = true,
    };
    for (int code = 0; code <= 16; code++) {
        if (code == FG_GRPC_RESOURCE_EXHAUSTED) {
            assert_false(fg__grpcc_retryable(code, false));
            assert_true(fg__grpcc_retryable(code, true));
            continue;
        }
        assert_int_equal(fg__grpcc_retryable(code, false), want[code]);
        assert_int_equal(fg__grpcc_retryable(code, true), want[code]);
    }
    assert_false(fg__grpcc_retryable(99, true));
    assert_int_equal(fg__grpcc_status_from_http(503), FG_GRPC_UNAVAILABLE);
    assert_int_equal(fg__grpcc_status_from_http(429), FG_GRPC_UNAVAILABLE);
    assert_int_equal(fg__grpcc_status_from_http(404), FG_GRPC_UNIMPLEMENTED);
    assert_int_equal(fg__grpcc_status_from_http(400), FG_GRPC_INTERNAL);
    assert_int_equal(fg__grpcc_status_from_http(500), FG_GRPC_UNKNOWN);
    assert_string_equal(fg__grpcc_status_name(14), "UNAVAILABLE");
    assert_string_equal(fg__grpcc_status_name(8), "RESOURCE_EXHAUSTED");
    assert_string_equal(fg__grpcc_status_name(77), "UNKNOWN_CODE");
}

static void cfg_defaults(struct otlp_config *cfg, const char *endpoint)
{
    struct fg_err err = {{0}};
    memset(cfg, 0, sizeof(*cfg));
    assert_int_equal(fg_options_defaults(fg_otlp_exporter_factory.options, cfg, &err), 0);
    cfg->endpoint = endpoint ? fg_strdup(endpoint) : NULL;
}

static void add_header(struct otlp_config *cfg, const char *k, const char *v)
{
    size_t n = cfg->headers.n + 1;
    cfg->headers.keys = fg_realloc(cfg->headers.keys, n * sizeof(char *));
    cfg->headers.values = fg_realloc(cfg->headers.values, n * sizeof(char *));
    cfg->headers.keys[n - 1] = fg_strdup(k);
    cfg->headers.values[n - 1] = fg_strdup(v);
    cfg->headers.n = n;
}

static int validate(const char *endpoint, const char *hk, const char *hv, char *msg)
{
    struct otlp_config cfg;
    struct fg_err err = {{0}};
    cfg_defaults(&cfg, endpoint);
    if (hk)
        add_header(&cfg, hk, hv);
    int rc = fg_otlp_exporter_factory.validate(&cfg, &err);
    snprintf(msg, 256, "%s", err.msg);
    fg_options_free(fg_otlp_exporter_factory.options, &cfg);
    return rc;
}

static void test_config(void **state)
{
    char msg[256];
    struct otlp_config cfg;
    cfg_defaults(&cfg, NULL);
    assert_int_equal(cfg.compression, OTLP_COMPRESSION_GZIP); /* the Collector's default */
    assert_false(cfg.tls.insecure);
    assert_int_equal(cfg.exporter.timeout_ns, 5000 * MS);
    assert_true(cfg.exporter.retry.enabled);
    fg_options_free(fg_otlp_exporter_factory.options, &cfg);

    assert_int_equal(validate("127.0.0.1:4317", NULL, NULL, msg), 0);
    assert_int_equal(validate("http://collector:4317/", NULL, NULL, msg), 0);
    assert_int_equal(validate("https://collector:4317", "Authorization", "Bearer x", msg), 0);
    assert_int_equal(validate(NULL, NULL, NULL, msg), FG_EINVAL);
    assert_non_null(strstr(msg, "endpoint"));
    assert_int_equal(validate("grpc://x:1", NULL, NULL, msg), FG_EINVAL);
    assert_non_null(strstr(msg, "scheme"));
    assert_int_equal(validate("http://x:1/v1/profiles", NULL, NULL, msg), FG_EINVAL);
    assert_non_null(strstr(msg, "no path"));
    assert_int_equal(validate("x:1", "grpc-timeout", "1S", msg), FG_EINVAL);
    assert_non_null(strstr(msg, "reserved"));
    assert_int_equal(validate("x:1", "te", "gzip", msg), FG_EINVAL);
    assert_int_equal(validate("x:1", "x-bad", "a\r\nb", msg), FG_EINVAL);
    assert_int_equal(validate("x:1", "with space", "v", msg), FG_EINVAL);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A loopback port nobody listens on (bound, then closed). */
static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_connection_refused_is_retryable(void **state)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)closed_port());
    struct otlp_config cfg;
    cfg_defaults(&cfg, url);
    cfg.exporter.queue.enabled = false; /* consume returns the outcome */
    cfg.exporter.retry.initial_interval_ns = 10 * MS;
    cfg.exporter.retry.max_interval_ns = 10 * MS;
    cfg.exporter.retry.max_elapsed_time_ns = 60 * MS;
    struct fg_err err = {{0}};
    struct fg_component *c = NULL;
    struct fg_create_args args = {.id = "otlp/test", .config = &cfg};
    assert_int_equal(fg_otlp_exporter_factory.create(&args, &c, &err), 0);
    assert_int_equal(c->ops->start(c, &err), 0);

    struct fg_profiles *p = tu_make_batch("svc", 3);
    assert_non_null(p);
    int64_t t0 = now_ns();
    int rc = fg_consume(&c->consumer, p, &err);
    int64_t took = now_ns() - t0;
    assert_int_not_equal(rc, 0);
    /* retried (connection errors are retryable) until max_elapsed_time, not dropped at once */
    assert_true(took >= 50 * MS);
    assert_non_null(strstr(err.msg, "Export to http://127.0.0.1:"));
    c->ops->shutdown(c, now_ns() + 1000 * MS);
    c->ops->destroy(c);
    fg_options_free(fg_otlp_exporter_factory.options, &cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_prefix),
        cmocka_unit_test(test_unframe),
        cmocka_unit_test(test_timeout_value),
        cmocka_unit_test(test_header_lines),
        cmocka_unit_test(test_status_details),
        cmocka_unit_test(test_retry_policy),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_connection_refused_is_retryable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
