/* The listener: routing, body limits, Content-Encoding, concurrency, graceful stop, driven by
 * libcurl over loopback; every test runs twice, over HTTP/1.1 and over h2c (prior knowledge),
 * on the same port. */
#include "fg_http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fg_alloc.h"
#include "fg_gzip.h"
#include "testutil.h"

#define SMALL_LIMIT 1024

static atomic_int handler_calls;
/* CURL_HTTP_VERSION_1_1 or CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE for the current group. */
static long http_version = CURL_HTTP_VERSION_1_1;
static atomic_int active, peak;

/* Echoes what the server handed over, so tests can see path, query, headers and body. */
static void echo_handler(void *ctx, const struct fg_http_request *req,
                         struct fg_http_response *resp)
{
    atomic_fetch_add(&handler_calls, 1);
    const char *x = fg_http_header(req, "x-test");
    fg_buf_printf(&resp->body, "method=%s path=%s query=%s ctype=%s x-test=%s len=%zu\n",
                  req->method, req->path, req->query, req->content_type, x ? x : "(none)",
                  req->body_len);
    fg_buf_append(&resp->body, req->body, req->body_len);
    snprintf(resp->content_type, sizeof(resp->content_type), "text/plain");
    if (ctx)
        snprintf(resp->retry_after, sizeof(resp->retry_after), "%s", (const char *)ctx);
}

/* Sleeps inside the handler and records how many run at the same time. */
static void slow_handler(void *ctx, const struct fg_http_request *req,
                         struct fg_http_response *resp)
{
    int now = atomic_fetch_add(&active, 1) + 1;
    int prev = atomic_load(&peak);
    while (now > prev && !atomic_compare_exchange_weak(&peak, &prev, now))
        ;
    struct timespec ts = {0, 400 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_fetch_sub(&active, 1);
    fg_buf_append_str(&resp->body, "slept");
    resp->status = 202;
}

struct fixture {
    struct fg_http_server *srv;
    uint16_t port;
};

static int setup(void **state)
{
    static struct fixture f;
    struct fg_err err = {{0}};
    memset(&f, 0, sizeof(f));
    if (fg_http_server_new("127.0.0.1:0", &f.srv, &err) != 0) {
        fprintf(stderr, "server_new: %s\n", err.msg);
        return -1;
    }
    struct fg_http_route routes[] = {
        {"/echo", "POST", echo_handler, NULL, (size_t)1 << 20},
        {"/echo", "PUT", echo_handler, NULL, (size_t)1 << 20},
        {"/retry", "POST", echo_handler, (void *)"7", (size_t)1 << 20},
        {"/small", "POST", echo_handler, NULL, SMALL_LIMIT},
        {"/slow", "POST", slow_handler, NULL, (size_t)1 << 20},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(routes); i++)
        if (fg_http_server_route(f.srv, &routes[i]) != 0)
            return -1;
    if (fg_http_server_start(f.srv, &err) != 0) {
        fprintf(stderr, "server_start: %s\n", err.msg);
        return -1;
    }
    f.port = fg_http_server_port(f.srv);
    atomic_store(&handler_calls, 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fg_http_server_free(f->srv);
    return 0;
}

/* ---- a small libcurl client ---- */

struct reply {
    long status;
    struct fg_buf body;
    struct fg_buf headers;
    double seconds;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct fg_buf *b = ud;
    return fg_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

struct upload {
    size_t left; /* bytes of 'a' still to send */
};

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
    struct upload *u = ud;
    size_t k = FG_MIN(size * n, u->left);
    memset(p, 'a', k);
    u->left -= k;
    return k;
}

struct request {
    const char *method;
    const char *path;
    const void *body;
    size_t body_len;
    const char *headers[4];
    size_t chunked_len; /* > 0: send this many bytes chunked instead of body */
};

static void reply_free(struct reply *r)
{
    fg_buf_free(&r->body);
    fg_buf_free(&r->headers);
}

static int perform(uint16_t port, const struct request *rq, struct reply *out)
{
    memset(out, 0, sizeof(*out));
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)port, rq->path);
    struct curl_slist *hl = NULL;
    for (size_t i = 0; i < FG_ARRAY_LEN(rq->headers) && rq->headers[i]; i++)
        hl = curl_slist_append(hl, rq->headers[i]);
    struct upload up = {rq->chunked_len};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, http_version);
    if (rq->chunked_len) {
        /* HTTP/2 has no chunked coding: a body of unknown length is just DATA frames */
        if (http_version == CURL_HTTP_VERSION_1_1)
            hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
    } else if (rq->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    }
    if (rq->method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &out->headers);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    long version = 0;
    curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &version);
    if (out->status && version != (http_version == CURL_HTTP_VERSION_1_1 ? CURL_HTTP_VERSION_1_1
                                                                        : CURL_HTTP_VERSION_2_0)) {
        fprintf(stderr, "answered over HTTP version %ld\n", version);
        out->status = -1;
    }
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &out->seconds);
    fg_buf_append(&out->body, "", 1);
    fg_buf_append(&out->headers, "", 1);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK && out->status == 0) {
        fprintf(stderr, "curl: %s\n", curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

static const char *body_str(const struct reply *r)
{
    return (const char *)r->body.data;
}

static const char *hdr_str(const struct reply *r)
{
    return (const char *)r->headers.data;
}

/* ---- tests ---- */

static void test_ok_query_headers(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    struct request rq = {.path = "/echo?a=1&b=%20x", .body = "hello", .body_len = 5,
                         .headers = {"X-Test: yes-it-is", "Content-Type: text/x-demo"}};
    assert_int_equal(perform(f->port, &rq, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(body_str(&r), "method=POST path=/echo query=a=1&b=%20x "));
    assert_non_null(strstr(body_str(&r), "ctype=text/x-demo x-test=yes-it-is len=5\nhello"));
    assert_non_null(strcasestr(hdr_str(&r), "Content-Type: text/plain"));
    assert_null(strcasestr(hdr_str(&r), "Retry-After"));
    reply_free(&r);

    /* no query string, no body, another allowed method */
    struct request rq2 = {.method = "PUT", .path = "/echo"};
    assert_int_equal(perform(f->port, &rq2, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(body_str(&r), "method=PUT path=/echo query= ctype= x-test=(none) len=0"));
    reply_free(&r);

    struct request rq3 = {.path = "/retry", .body = "x", .body_len = 1};
    assert_int_equal(perform(f->port, &rq3, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(hdr_str(&r), "Retry-After: 7"));
    reply_free(&r);
}

static void test_not_found_and_method(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    struct request rq = {.path = "/nope", .body = "x", .body_len = 1};
    assert_int_equal(perform(f->port, &rq, &r), 0);
    assert_int_equal(r.status, 404);
    assert_non_null(strcasestr(hdr_str(&r), "Content-Type: text/plain"));
    assert_non_null(strstr(body_str(&r), "/nope"));
    reply_free(&r);

    /* a prefix of a route is not the route */
    struct request rq2 = {.path = "/echo/more", .body = "x", .body_len = 1};
    assert_int_equal(perform(f->port, &rq2, &r), 0);
    assert_int_equal(r.status, 404);
    reply_free(&r);

    struct request rq3 = {.method = "GET", .path = "/echo"};
    assert_int_equal(perform(f->port, &rq3, &r), 0);
    assert_int_equal(r.status, 405);
    assert_non_null(strcasestr(hdr_str(&r), "Allow: POST, PUT"));
    assert_non_null(strcasestr(hdr_str(&r), "Content-Type: text/plain"));
    reply_free(&r);
    assert_int_equal(atomic_load(&handler_calls), 0);
}

static void test_too_large(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    static char big[SMALL_LIMIT + 1];
    memset(big, 'b', sizeof(big));

    struct request exact = {.path = "/small", .body = big, .body_len = SMALL_LIMIT};
    assert_int_equal(perform(f->port, &exact, &r), 0);
    assert_int_equal(r.status, 200);
    reply_free(&r);

    struct request over = {.path = "/small", .body = big, .body_len = sizeof(big)};
    assert_int_equal(perform(f->port, &over, &r), 0);
    assert_int_equal(r.status, 413);
    assert_non_null(strcasestr(hdr_str(&r), "Content-Type: text/plain"));
    reply_free(&r);

    /* a large declared length is refused before the body is read (curl sends
     * Expect: 100-continue and gets the 413 instead) */
    static char huge[4 << 20];
    struct request declared = {.path = "/echo", .body = huge, .body_len = sizeof(huge)};
    assert_int_equal(perform(f->port, &declared, &r), 0);
    assert_int_equal(r.status, 413);
    reply_free(&r);

    struct request chunked = {.path = "/small", .chunked_len = 5 * SMALL_LIMIT};
    assert_int_equal(perform(f->port, &chunked, &r), 0);
    assert_int_equal(r.status, 413);
    reply_free(&r);

    struct request chunked_ok = {.path = "/small", .chunked_len = SMALL_LIMIT / 2};
    assert_int_equal(perform(f->port, &chunked_ok, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(body_str(&r), "len=512\n"));
    reply_free(&r);
    assert_int_equal(atomic_load(&handler_calls), 2);
}

static void test_gzip_and_deflate(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    const char *text = "the quick brown fox jumps over the lazy dog, again and again and again";
    struct fg_buf gz = {0};
    assert_int_equal(fg_gzip((const uint8_t *)text, strlen(text), 6, &gz), 0);
    for (int i = 0; i < 2; i++) {
        struct request rq = {.path = "/echo", .body = gz.data, .body_len = gz.len,
                             .headers = {i ? "Content-Encoding: x-gzip" : "Content-Encoding: gzip"}};
        assert_int_equal(perform(f->port, &rq, &r), 0);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(body_str(&r), text));
        reply_free(&r);
    }
    fg_buf_free(&gz);

    uint8_t z[256];
    uLongf zlen = sizeof(z);
    assert_int_equal(compress2(z, &zlen, (const Bytef *)text, strlen(text), 6), Z_OK);
    struct request rq = {.path = "/echo", .body = z, .body_len = zlen,
                         .headers = {"Content-Encoding: deflate"}};
    assert_int_equal(perform(f->port, &rq, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(body_str(&r), text));
    reply_free(&r);

    /* decompressed size is held to the route limit too */
    static uint8_t zeros[2 * SMALL_LIMIT];
    struct fg_buf gz2 = {0};
    assert_int_equal(fg_gzip(zeros, sizeof(zeros), 6, &gz2), 0);
    assert_true(gz2.len < SMALL_LIMIT);
    struct request rq2 = {.path = "/small", .body = gz2.data, .body_len = gz2.len,
                          .headers = {"Content-Encoding: gzip"}};
    assert_int_equal(perform(f->port, &rq2, &r), 0);
    assert_int_equal(r.status, 413);
    reply_free(&r);
    fg_buf_free(&gz2);
}

/* 50 MiB of zeros, gzipped by streaming so the test itself stays small. */
static void make_bomb(struct fg_buf *out)
{
    static uint8_t zeros[64 * 1024];
    uint8_t chunk[16 * 1024];
    z_stream zs = {0};
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
    for (int i = 0; i <= 800; i++) {
        zs.next_in = zeros;
        zs.avail_in = i < 800 ? sizeof(zeros) : 0;
        int flush = i < 800 ? Z_NO_FLUSH : Z_FINISH;
        do {
            zs.next_out = chunk;
            zs.avail_out = sizeof(chunk);
            int zrc = deflate(&zs, flush);
            assert_true(zrc == Z_OK || zrc == Z_STREAM_END || zrc == Z_BUF_ERROR);
            assert_int_equal(fg_buf_append(out, chunk, sizeof(chunk) - zs.avail_out), 0);
        } while (zs.avail_out == 0);
    }
    assert_int_equal(zs.total_in, 800u * sizeof(zeros));
    deflateEnd(&zs);
}

static void test_gzip_bomb(void **state)
{
    struct fixture *f = *state;
    struct fg_buf bomb = {0};
    make_bomb(&bomb);
    assert_true(bomb.len < 200 * 1024);
    struct reply r;
    struct request rq = {.path = "/echo", .body = bomb.data, .body_len = bomb.len,
                         .headers = {"Content-Encoding: gzip"}};
    assert_int_equal(perform(f->port, &rq, &r), 0);
    assert_int_equal(r.status, 413);
    assert_true(r.seconds < 5.0);
    assert_int_equal(atomic_load(&handler_calls), 0);
    reply_free(&r);
    fg_buf_free(&bomb);
}

static void test_bad_encoding(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    const uint8_t corrupt[] = {0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x03,
                               0xff, 0xff, 0xff, 0xff, 0x12, 0x34};
    struct request rq = {.path = "/echo", .body = corrupt, .body_len = sizeof(corrupt),
                         .headers = {"Content-Encoding: gzip"}};
    assert_int_equal(perform(f->port, &rq, &r), 0);
    assert_int_equal(r.status, 400);
    assert_non_null(strcasestr(hdr_str(&r), "Content-Type: text/plain"));
    reply_free(&r);

    struct request plain_as_deflate = {.path = "/echo", .body = "not zlib", .body_len = 8,
                                       .headers = {"Content-Encoding: deflate"}};
    assert_int_equal(perform(f->port, &plain_as_deflate, &r), 0);
    assert_int_equal(r.status, 400);
    reply_free(&r);

    struct request br = {.path = "/echo", .body = "x", .body_len = 1,
                         .headers = {"Content-Encoding: br"}};
    assert_int_equal(perform(f->port, &br, &r), 0);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(body_str(&r), "\"br\""));
    reply_free(&r);

    struct request identity = {.path = "/echo", .body = "x", .body_len = 1,
                               .headers = {"Content-Encoding: identity"}};
    assert_int_equal(perform(f->port, &identity, &r), 0);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    assert_int_equal(atomic_load(&handler_calls), 1);
}

struct client_arg {
    uint16_t port;
    long status;
};

static void *client_thread(void *p)
{
    struct client_arg *a = p;
    struct reply r;
    struct request rq = {.path = "/slow", .body = "z", .body_len = 1};
    if (perform(a->port, &rq, &r) == 0)
        a->status = r.status;
    reply_free(&r);
    return NULL;
}

static void test_concurrent(void **state)
{
    struct fixture *f = *state;
    pthread_t th[4];
    struct client_arg args[4];
    atomic_store(&peak, 0);
    for (int i = 0; i < 4; i++) {
        args[i] = (struct client_arg){f->port, 0};
        assert_int_equal(pthread_create(&th[i], NULL, client_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].status, 202);
    }
    assert_true(atomic_load(&peak) >= 2);
}

/* stop lets a request already in its handler finish and answer */
static void test_stop_waits(void **state)
{
    struct fixture *f = *state;
    struct client_arg a = {f->port, 0};
    pthread_t th;
    atomic_store(&active, 0);
    assert_int_equal(pthread_create(&th, NULL, client_thread, &a), 0);
    for (int i = 0; i < 200 && atomic_load(&active) == 0; i++)
        usleep(5000);
    assert_int_equal(atomic_load(&active), 1);
    fg_http_server_stop(f->srv);
    pthread_join(th, NULL);
    assert_int_equal(a.status, 202);

    /* and no longer accepts */
    struct reply r;
    struct request rq = {.path = "/echo", .body = "x", .body_len = 1};
    assert_int_equal(perform(f->port, &rq, &r), -1);
    reply_free(&r);
}

static void test_endpoints(void **state)
{
    struct fg_http_server *s = NULL;
    struct fg_err err = {{0}};
    const char *bad[] = {"nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999",
                         "127.0.0.1:12a", "::1:4318", "[::1:4318", "[::1]4318"};
    for (size_t i = 0; i < FG_ARRAY_LEN(bad); i++) {
        assert_int_equal(fg_http_server_new(bad[i], &s, &err), FG_EINVAL);
        assert_null(s);
        assert_non_null(strstr(err.msg, bad[i]));
    }
    /* a host that does not resolve fails at start, naming the endpoint */
    assert_int_equal(fg_http_server_new("no-such-host.invalid:0", &s, &err), 0);
    assert_int_not_equal(fg_http_server_start(s, &err), 0);
    assert_non_null(strstr(err.msg, "no-such-host.invalid:0"));
    fg_http_server_free(s);

    /* all interfaces, and an explicit port taken from a bound server */
    assert_int_equal(fg_http_server_new(":0", &s, &err), 0);
    assert_int_equal(fg_http_server_start(s, &err), 0);
    uint16_t port = fg_http_server_port(s);
    assert_int_not_equal(port, 0);
    char ep[64];
    snprintf(ep, sizeof(ep), "127.0.0.1:%u", (unsigned)port);
    struct fg_http_server *s2 = NULL;
    assert_int_equal(fg_http_server_new(ep, &s2, &err), 0);
    assert_int_equal(fg_http_server_start(s2, &err), FG_EIO);
    assert_non_null(strstr(err.msg, ep));
    fg_http_server_free(s2);
    fg_http_server_free(s);

    assert_int_equal(fg_http_server_new("localhost:0", &s, &err), 0);
    assert_int_equal(fg_http_server_start(s, &err), 0);
    fg_http_server_free(s);

    assert_int_equal(fg_http_server_new("[::1]:0", &s, &err), 0);
    if (fg_http_server_start(s, &err) != 0)
        fprintf(stderr, "skipping [::1]: %s\n", err.msg);
    else
        assert_int_not_equal(fg_http_server_port(s), 0);
    fg_http_server_free(s);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ok_query_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_and_deflate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_bomb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_encoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_waits, setup, teardown),
        cmocka_unit_test(test_endpoints),
    };
    int rc = cmocka_run_group_tests_name("HTTP/1.1", tests, NULL, NULL);
    http_version = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
    rc |= cmocka_run_group_tests_name("h2c", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
