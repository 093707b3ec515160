/* The otlphttp exporter against a small libmicrohttpd sink on 127.0.0.1 that records each
 * request and answers with programmed statuses. */
#include "testutil.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_gzip.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_otlp.h"
#include "fg_otlp_pb.h"
#include "otlphttp_exporter.h"

#define MS INT64_C(1000000)
#define MAX_REQ 16

struct request {
    char path[256];
    char content_type[64];
    char content_encoding[32];
    char user_agent[64];
    char custom[64];
    uint8_t *body;
    size_t len;
};

struct sink {
    struct MHD_Daemon *daemon;
    uint16_t port;
    pthread_mutex_t mu;
    int n;
    struct request req[MAX_REQ];
    int status[MAX_REQ];         /* answer to the i-th request; 0 = 200 */
    const char *retry_after[MAX_REQ];
    const uint8_t *resp_body[MAX_REQ];
    size_t resp_len[MAX_REQ];
};

static void copy_header(struct MHD_Connection *c, const char *name, char *out, size_t size)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(out, size, "%s", v ? v : "");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct sink *s = cls;
    struct fg_buf *body = *con_cls;
    if (!body) {
        body = fg_calloc(1, sizeof(*body));
        *con_cls = body;
        return body ? MHD_YES : MHD_NO;
    }
    if (*upload_size > 0) {
        fg_buf_append(body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }

    pthread_mutex_lock(&s->mu);
    int i = s->n < MAX_REQ ? s->n++ : MAX_REQ - 1;
    struct request *r = &s->req[i];
    snprintf(r->path, sizeof(r->path), "%s %s", method, url);
    copy_header(c, "Content-Type", r->content_type, sizeof(r->content_type));
    copy_header(c, "Content-Encoding", r->content_encoding, sizeof(r->content_encoding));
    copy_header(c, "User-Agent", r->user_agent, sizeof(r->user_agent));
    copy_header(c, "X-Tenant", r->custom, sizeof(r->custom));
    fg_free(r->body);
    r->body = fg_buf_steal(body, &r->len);
    int status = s->status[i] ? s->status[i] : 200;
    const char *retry_after = s->retry_after[i];
    const uint8_t *rb = s->resp_body[i];
    size_t rl = s->resp_len[i];
    pthread_mutex_unlock(&s->mu);

    struct MHD_Response *resp =
        MHD_create_response_from_buffer(rl, (void *)rb, MHD_RESPMEM_MUST_COPY);
    if (retry_after)
        MHD_add_response_header(resp, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct fg_buf *body = *con_cls;
    if (body) {
        fg_buf_free(body);
        fg_free(body);
        *con_cls = NULL;
    }
}

/* port 0 picks a free one. */
static void sink_start(struct sink *s, uint16_t port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
                                 on_request, s, MHD_OPTION_SOCK_ADDR, &addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                 MHD_OPTION_END);
    assert_non_null(s->daemon);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    s->port = info->port;
}

static void sink_init(struct sink *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
}

static int sink_count(struct sink *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void sink_stop(struct sink *s)
{
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    for (int i = 0; i < MAX_REQ; i++)
        fg_free(s->req[i].body);
    pthread_mutex_destroy(&s->mu);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A batch of n samples on a two-frame stack (work < main), cpu/nanoseconds. */
static struct fg_profiles *make_batch(uint32_t n)
{
    struct fg_profiles *p = NULL;
    assert_int_equal(fg_profiles_new(&p), 0);
    struct fg_keyvalue kv = {.key = {"service.name", 12},
                             .value = {.kind = FG_VALUE_STRING, .u.s = {"checkout", 8}}};
    struct fg_resource res = {.n_attrs = 1, .attrs = &kv};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "", 0);
    assert_non_null(rp);
    struct fg_scope scope = {.name = {"test", 4}};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(p, rp, &scope, "", 0);
    assert_non_null(sp);

    int32_t names[2] = {fg_dict_string(p, "work", 4), fg_dict_string(p, "main", 4)};
    uint32_t locs[2];
    for (int i = 0; i < 2; i++) {
        assert_true(names[i] > 0);
        struct fg_function f = {.name = (uint32_t)names[i]};
        int32_t fi = fg_dict_function(p, &f);
        assert_true(fi > 0);
        struct fg_line line = {.function = (uint32_t)fi, .line = 10 + i};
        struct fg_location loc = {.address = 0x1000u + (uint64_t)i, .n_lines = 1, .lines = &line};
        int32_t li = fg_dict_location(p, &loc);
        assert_true(li > 0);
        locs[i] = (uint32_t)li;
    }
    struct fg_stack st = {.n_locations = 2, .locations = locs};
    int32_t si = fg_dict_stack(p, &st);
    assert_true(si > 0);

    struct fg_profile proto = {
        .sample_type = {(uint32_t)fg_dict_string(p, "cpu", 3),
                        (uint32_t)fg_dict_string(p, "nanoseconds", 11)},
        .time_unix_nano = UINT64_C(1700000000000000000),
        .duration_nano = 1000000000,
    };
    struct fg_profile *prof = fg_profiles_add_profile(p, sp, &proto);
    assert_non_null(prof);
    for (uint32_t i = 0; i < n; i++) {
        int64_t v = 1000 * (int64_t)(i + 1);
        struct fg_sample s = {.stack = (uint32_t)si, .n_values = 1, .values = &v};
        assert_int_equal(fg_profiles_add_sample(p, prof, &s), 0);
    }
    return p;
}

struct fixture {
    struct otlphttp_config cfg;
    struct fg_component *c;
};

static void cfg_defaults(struct otlphttp_config *cfg, const char *endpoint)
{
    struct fg_err err = {{0}};
    memset(cfg, 0, sizeof(*cfg));
    assert_int_equal(fg_options_defaults(fg_otlphttp_exporter_factory.options, cfg, &err), 0);
    cfg->endpoint = fg_strdup(endpoint);
    cfg->exporter.timeout_ns = 2000 * MS;
    cfg->exporter.retry.initial_interval_ns = 10 * MS;
    cfg->exporter.retry.max_interval_ns = 20 * MS;
    cfg->exporter.retry.max_elapsed_time_ns = 3000 * MS;
    cfg->exporter.queue.enabled = false; /* consume returns the outcome */
}

static void make_component(struct fixture *fx)
{
    struct fg_err err = {{0}};
    struct fg_create_args args = {.id = "otlphttp/test", .config = &fx->cfg};
    assert_int_equal(fg_otlphttp_exporter_factory.validate(&fx->cfg, &err), 0);
    int rc = fg_otlphttp_exporter_factory.create(&args, &fx->c, &err);
    if (rc != 0)
        fail_msg("create: %s", err.msg);
    assert_int_equal(fx->c->ops->start(fx->c, &err), 0);
}

static void finish(struct fixture *fx)
{
    fx->c->ops->shutdown(fx->c, now_ns() + 2000 * MS);
    fx->c->ops->destroy(fx->c);
    fg_options_free(fg_otlphttp_exporter_factory.options, &fx->cfg);
}

static void endpoint_of(const struct sink *s, char *buf, size_t size, const char *suffix)
{
    snprintf(buf, size, "http://127.0.0.1:%u%s", (unsigned)s->port, suffix);
}

/* Body → batch, through gunzip when the request said gzip. */
static struct fg_profiles *decode_request(const struct request *r)
{
    struct fg_buf plain;
    fg_buf_init(&plain, 64u << 20);
    const uint8_t *data = r->body;
    size_t len = r->len;
    struct fg_err err = {{0}};
    if (strcmp(r->content_encoding, "gzip") == 0) {
        assert_true(fg_is_gzip(r->body, r->len));
        assert_int_equal(fg_gunzip(r->body, r->len, &plain, &err), 0);
        data = plain.data;
        len = plain.len;
    }
    struct fg_profiles *p = NULL;
    int rc = strcmp(r->content_type, "application/json") == 0
                 ? fg_otlp_decode_json(data, len, &p, &err)
                 : fg_otlp_decode_proto(data, len, &p, &err);
    if (rc != 0)
        fail_msg("decode: %s", err.msg);
    fg_buf_free(&plain);
    return p;
}

static void check_same_samples(const struct fg_profiles *p, uint32_t n)
{
    assert_int_equal(p->n_samples, n);
    assert_int_equal(p->n_resources, 1);
    assert_int_equal(p->resources[0].n_scopes, 1);
    assert_int_equal(p->resources[0].scopes[0].n_profiles, 1);
    const struct fg_profile *prof = &p->resources[0].scopes[0].profiles[0];
    assert_int_equal(prof->n_samples, n);
    assert_int_equal(fg_profile_total(prof), 1000 * (int64_t)n * (n + 1) / 2);
    struct fg_bytes type = fg_dict_get_string(p, prof->sample_type.type);
    assert_int_equal(type.len, 3);
    assert_memory_equal(type.ptr, "cpu", 3);
    /* The leaf frame of the first sample is "work". */
    const struct fg_stack *st = fg_dict_get_stack(p, prof->samples[0].stack);
    assert_int_equal(st->n_locations, 2);
    const struct fg_location *leaf = fg_dict_get_location(p, st->locations[0]);
    assert_int_equal(leaf->n_lines, 1);
    const struct fg_function *f = fg_dict_get_function(p, leaf->lines[0].function);
    struct fg_bytes name = fg_dict_get_string(p, f->name);
    assert_int_equal(name.len, 4);
    assert_memory_equal(name.ptr, "work", 4);
}

static void test_proto_gzip_headers(void **state)
{
    struct sink s;
    sink_init(&s);
    sink_start(&s, 0);
    struct fixture fx;
    char url[128];
    endpoint_of(&s, url, sizeof(url), "/"); /* the trailing '/' is trimmed */
    cfg_defaults(&fx.cfg, url);
    fx.cfg.headers.n = 1;
    fx.cfg.headers.keys = fg_calloc(1, sizeof(char *));
    fx.cfg.headers.values = fg_calloc(1, sizeof(char *));
    fx.cfg.headers.keys[0] = fg_strdup("X-Tenant");
    fx.cfg.headers.values[0] = fg_strdup("team-a");
    make_component(&fx);

    struct fg_err err = {{0}};
    assert_int_equal(fg_consume(&fx.c->consumer, make_batch(5), &err), 0);
    assert_int_equal(sink_count(&s), 1);
    struct request *r = &s.req[0];
    assert_string_equal(r->path, "POST /v1development/profiles");
    assert_string_equal(r->content_type, "application/x-protobuf");
    assert_string_equal(r->content_encoding, "gzip");
    assert_string_equal(r->custom, "team-a");
    assert_string_equal(r->user_agent, "flamegate/" FG_VERSION);
    struct fg_profiles *p = decode_request(r);
    check_same_samples(p, 5);
    fg_profiles_unref(p);

    finish(&fx);
    sink_stop(&s);
}

static void test_profiles_endpoint_no_compression(void **state)
{
    struct sink s;
    sink_init(&s);
    sink_start(&s, 0);
    struct fixture fx;
    char url[128];
    endpoint_of(&s, url, sizeof(url), "/ignored");
    cfg_defaults(&fx.cfg, url);
    endpoint_of(&s, url, sizeof(url), "/custom/path");
    fx.cfg.profiles_endpoint = fg_strdup(url);
    fx.cfg.compression = COMPRESSION_NONE;
    make_component(&fx);

    struct fg_err err = {{0}};
    assert_int_equal(fg_consume(&fx.c->consumer, make_batch(3), &err), 0);
    assert_int_equal(sink_count(&s), 1);
    assert_string_equal(s.req[0].path, "POST /custom/path");
    assert_string_equal(s.req[0].content_encoding, "");
    struct fg_profiles *p = decode_request(&s.req[0]);
    check_same_samples(p, 3);
    fg_profiles_unref(p);
    finish(&fx);
    sink_stop(&s);
}

static void test_503_retry_after_then_200(void **state)
{
    struct sink s;
    sink_init(&s);
    s.status[0] = 503;
    s.retry_after[0] = "1"; /* seconds: well above the 20 ms backoff cap */
    sink_start(&s, 0);
    struct fixture fx;
    char url[128];
    endpoint_of(&s, url, sizeof(url), "");
    cfg_defaults(&fx.cfg, url);
    make_component(&fx);

    struct fg_err err = {{0}};
    int64_t t0 = now_ns();
    assert_int_equal(fg_consume(&fx.c->consumer, make_batch(2), &err), 0);
    int64_t took = now_ns() - t0;
    assert_int_equal(sink_count(&s), 2);
    assert_true(took >= 1000 * MS);
    assert_true(took < 2500 * MS);
    struct fg_profiles *p = decode_request(&s.req[1]);
    check_same_samples(p, 2);
    fg_profiles_unref(p);
    finish(&fx);
    sink_stop(&s);
}

static void test_400_not_retried(void **state)
{
    struct sink s;
    sink_init(&s);
    s.status[0] = 400;
    pb_status st = GOOGLE__RPC__STATUS__INIT;
    st.code = 3;
    st.message = "profile 0: bad stack index";
    uint8_t packed[128];
    size_t plen = google__rpc__status__pack(&st, packed);
    s.resp_body[0] = packed;
    s.resp_len[0] = plen;
    sink_start(&s, 0);
    struct fixture fx;
    char url[128];
    endpoint_of(&s, url, sizeof(url), "");
    cfg_defaults(&fx.cfg, url);
    make_component(&fx);

    struct fg_err err = {{0}};
    assert_int_equal(fg_consume(&fx.c->consumer, make_batch(2), &err), FG_EPERMANENT);
    usleep(50000); /* a retry would come within 20 ms */
    assert_int_equal(sink_count(&s), 1);
    assert_non_null(strstr(err.msg, "400"));
    assert_non_null(strstr(err.msg, "bad stack index"));
    finish(&fx);
    sink_stop(&s);
}

static void test_json_partial_success(void **state)
{
    struct sink s;
    sink_init(&s);
    static const char body[] = "{\"partialSuccess\":{\"rejectedProfiles\":\"1\","
                               "\"errorMessage\":\"one was odd\"}}";
    s.resp_body[0] = (const uint8_t *)body;
    s.resp_len[0] = sizeof(body) - 1;
    sink_start(&s, 0);
    struct fixture fx;
    char url[128];
    endpoint_of(&s, url, sizeof(url), "");
    cfg_defaults(&fx.cfg, url);
    fx.cfg.encoding = ENCODING_JSON;
    make_component(&fx);

    struct fg_err err = {{0}};
    /* Partial success is still success: no retry. */
    assert_int_equal(fg_consume(&fx.c->consumer, make_batch(4), &err), 0);
    assert_int_equal(sink_count(&s), 1);
    assert_string_equal(s.req[0].content_type, "application/json");
    struct fg_profiles *p = decode_request(&s.req[0]);
    check_same_samples(p, 4);
    fg_profiles_unref(p);
    finish(&fx);
    sink_stop(&s);
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return ntohs(addr.sin_port);
}

static void test_connection_refused_retried(void **state)
{
    uint16_t port = free_port();
    struct fixture fx;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)port);
    cfg_defaults(&fx.cfg, url);
    fx.cfg.exporter.queue.enabled = true; /* a worker keeps retrying while we start the sink */
    fx.cfg.exporter.queue.num_consumers = 1;
    make_component(&fx);

    struct fg_err err = {{0}};
    assert_int_equal(fg_consume(&fx.c->consumer, make_batch(6), &err), 0);
    usleep(100000); /* several refused attempts */
    struct sink s;
    sink_init(&s);
    sink_start(&s, port);
    for (int i = 0; i < 300 && sink_count(&s) < 1; i++)
        usleep(10000);
    assert_int_equal(fx.c->ops->shutdown(fx.c, now_ns() + 2000 * MS), 0);
    assert_int_equal(sink_count(&s), 1);
    struct fg_profiles *p = decode_request(&s.req[0]);
    check_same_samples(p, 6);
    fg_profiles_unref(p);
    finish(&fx);
    sink_stop(&s);
}

static void test_connection_refused_gives_up(void **state)
{
    uint16_t port = free_port();
    struct fixture fx;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)port);
    cfg_defaults(&fx.cfg, url);
    fx.cfg.exporter.retry.max_elapsed_time_ns = 100 * MS;
    make_component(&fx);
    struct fg_err err = {{0}};
    int64_t t0 = now_ns();
    assert_int_equal(fg_consume(&fx.c->consumer, make_batch(1), &err), FG_ERETRYABLE);
    assert_true(now_ns() - t0 >= 100 * MS);
    finish(&fx);
}

static void test_validate_needs_endpoint(void **state)
{
    struct otlphttp_config cfg;
    struct fg_err err = {{0}};
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(fg_options_defaults(fg_otlphttp_exporter_factory.options, &cfg, &err), 0);
    assert_int_equal(fg_otlphttp_exporter_factory.validate(&cfg, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "endpoint"));
    /* The Collector's defaults came through the option table. */
    assert_true(cfg.exporter.queue.enabled);
    assert_int_equal(cfg.exporter.queue.queue_size, 1000);
    assert_int_equal(cfg.exporter.timeout_ns, 5000 * MS);
    fg_options_free(fg_otlphttp_exporter_factory.options, &cfg);
}

int main(void)
{
    fg_log_set_level(FG_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_needs_endpoint),
        cmocka_unit_test(test_proto_gzip_headers),
        cmocka_unit_test(test_profiles_endpoint_no_compression),
        cmocka_unit_test(test_503_retry_after_then_200),
        cmocka_unit_test(test_400_not_retried),
        cmocka_unit_test(test_json_partial_success),
        cmocka_unit_test(test_connection_refused_retried),
        cmocka_unit_test(test_connection_refused_gives_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
