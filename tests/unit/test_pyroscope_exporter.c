/* The pyroscope exporter against a small libmicrohttpd sink that records each request:
 * /ingest query and labels, Connect Push, basic auth and bearer token, tenant pass-through
 * (the batch's tenant over tenant_id), external labels, retries and permanent failures. */
#include "testutil.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_gzip.h"
#include "fg_model.h"
#include "fg_pprof.h"
#include "push/v1/push.pb-c.h"
#include "pyroscope_exporter.h"

#define MS INT64_C(1000000)
#define MAX_REQ 8

struct request {
    char method_path[128];
    char name[512], from[32], until[32], format[16], spy[32];
    char content_type[64];
    char tenant[130];
    char auth[128];
    char custom[32];
    char connect[8];
    uint8_t *body;
    size_t len;
};

struct sink {
    struct MHD_Daemon *daemon;
    uint16_t port;
    pthread_mutex_t mu;
    int n;
    struct request req[MAX_REQ];
    int status[MAX_REQ]; /* answer to the i-th request; 0 = 200 */
};

static void copy_value(struct MHD_Connection *c, enum MHD_ValueKind kind, const char *name,
                       char *out, size_t size)
{
    const char *v = MHD_lookup_connection_value(c, kind, name);
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
    snprintf(r->method_path, sizeof(r->method_path), "%s %s", method, url);
    copy_value(c, MHD_GET_ARGUMENT_KIND, "name", r->name, sizeof(r->name));
    copy_value(c, MHD_GET_ARGUMENT_KIND, "from", r->from, sizeof(r->from));
    copy_value(c, MHD_GET_ARGUMENT_KIND, "until", r->until, sizeof(r->until));
    copy_value(c, MHD_GET_ARGUMENT_KIND, "format", r->format, sizeof(r->format));
    copy_value(c, MHD_GET_ARGUMENT_KIND, "spyName", r->spy, sizeof(r->spy));
    copy_value(c, MHD_HEADER_KIND, "Content-Type", r->content_type, sizeof(r->content_type));
    copy_value(c, MHD_HEADER_KIND, "X-Scope-OrgID", r->tenant, sizeof(r->tenant));
    copy_value(c, MHD_HEADER_KIND, "Authorization", r->auth, sizeof(r->auth));
    copy_value(c, MHD_HEADER_KIND, "X-Custom", r->custom, sizeof(r->custom));
    copy_value(c, MHD_HEADER_KIND, "Connect-Protocol-Version", r->connect, sizeof(r->connect));
    fg_free(r->body);
    r->body = fg_buf_steal(body, &r->len);
    int status = s->status[i] ? s->status[i] : 200;
    pthread_mutex_unlock(&s->mu);
    static const char err_body[] = "{\"code\":\"invalid_argument\",\"message\":\"bad profile\"}";
    struct MHD_Response *resp =
        status == 200 ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
                      : MHD_create_response_from_buffer(sizeof(err_body) - 1, (void *)err_body,
                                                        MHD_RESPMEM_PERSISTENT);
    if (status == 429)
        MHD_add_response_header(resp, "Retry-After", "0");
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

static void sink_start(struct sink *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
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

static void sink_stop(struct sink *s)
{
    MHD_stop_daemon(s->daemon);
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

/* n samples on main→work, cpu/nanoseconds, resource {service.name, k8s.pod.name}, scope gospy */
static struct fg_profiles *make_batch_of(uint32_t n, const char *tenant, const char *service)
{
    struct fg_profiles *p = NULL;
    assert_int_equal(fg_profiles_new(&p), 0);
    snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
    struct fg_keyvalue kv[3] = {
        {.key = {"service.name", 12},
         .value = {.kind = FG_VALUE_STRING, .u.s = {service, (uint32_t)strlen(service)}}},
        {.key = {"k8s.pod.name", 12}, .value = {.kind = FG_VALUE_STRING, .u.s = {"p-1", 3}}},
        {.key = {"replica", 7}, .value = {.kind = FG_VALUE_INT, .u.i = 3}},
    };
    struct fg_resource res = {.n_attrs = 3, .attrs = kv};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "", 0);
    struct fg_scope scope = {.name = {"gospy", 5}};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(p, rp, &scope, "", 0);
    assert_non_null(sp);
    uint32_t locs[2];
    const char *names[2] = {"work", "main"};
    for (int i = 0; i < 2; i++) {
        struct fg_function f = {.name = (uint32_t)fg_dict_string(p, names[i], 4)};
        struct fg_line line = {.function = (uint32_t)fg_dict_function(p, &f), .line = 10 + i};
        struct fg_location loc = {.address = 0x1000u + (uint64_t)i, .n_lines = 1, .lines = &line};
        locs[i] = (uint32_t)fg_dict_location(p, &loc);
    }
    struct fg_stack st = {.n_locations = 2, .locations = locs};
    int32_t si = fg_dict_stack(p, &st);
    struct fg_profile proto = {
        .sample_type = {(uint32_t)fg_dict_string(p, "cpu", 3),
                        (uint32_t)fg_dict_string(p, "nanoseconds", 11)},
        .period_type = {(uint32_t)fg_dict_string(p, "cpu", 3),
                        (uint32_t)fg_dict_string(p, "nanoseconds", 11)},
        .period = 10000000,
        .time_unix_nano = UINT64_C(1700000000000000000),
        .duration_nano = 10000000000,
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

static struct fg_profiles *make_batch(uint32_t n, const char *tenant)
{
    return make_batch_of(n, tenant, "checkout");
}

/* The pprof body decoded back: total of its cpu profile. */
static int64_t pprof_total(const uint8_t *data, size_t len)
{
    assert_true(fg_is_gzip(data, len));
    struct fg_profiles *p = NULL;
    assert_int_equal(fg_profiles_new(&p), 0);
    struct fg_pprof_origin origin = {0};
    struct fg_err err = {{0}};
    if (fg_pprof_decode(data, len, 64u << 20, &origin, p, &err) != 0)
        fail_msg("pprof decode: %s", err.msg);
    assert_int_equal(p->n_resources, 1);
    const struct fg_profile *prof = &p->resources[0].scopes[0].profiles[0];
    int64_t total = fg_profile_total(prof);
    fg_profiles_unref(p);
    return total;
}

static void set_list(struct fg_strmap *m, const char *k, const char *v)
{
    m->keys = fg_realloc(m->keys, (m->n + 1) * sizeof(char *));
    m->values = fg_realloc(m->values, (m->n + 1) * sizeof(char *));
    m->keys[m->n] = fg_strdup(k);
    m->values[m->n] = fg_strdup(v);
    m->n++;
}

/* A config for the sink with short retries and no queue. */
static void make(struct pyroscope_exporter_config *cfg, const struct sink *s, const char *api)
{
    struct fg_err err = {{0}};
    memset(cfg, 0, sizeof(*cfg));
    assert_int_equal(fg_options_defaults(fg_pyroscope_exporter_factory.options, cfg, &err), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", (unsigned)s->port);
    cfg->endpoint = fg_strdup(url);
    cfg->api = strcmp(api, "push") == 0 ? PYROSCOPE_API_PUSH : PYROSCOPE_API_INGEST;
    cfg->exporter.timeout_ns = 2000 * MS;
    cfg->exporter.retry.initial_interval_ns = 10 * MS;
    cfg->exporter.retry.max_interval_ns = 20 * MS;
    cfg->exporter.retry.max_elapsed_time_ns = 2000 * MS;
    cfg->exporter.queue.enabled = false; /* consume returns the outcome */
}

static struct fg_component *create(struct pyroscope_exporter_config *cfg)
{
    struct fg_err err = {{0}};
    struct fg_component *c = NULL;
    assert_int_equal(fg_pyroscope_exporter_factory.validate(cfg, &err), 0);
    struct fg_create_args args = {.id = "pyroscope/test", .config = cfg};
    if (fg_pyroscope_exporter_factory.create(&args, &c, &err) != 0)
        fail_msg("create: %s", err.msg);
    assert_int_equal(c->ops->start(c, &err), 0);
    return c;
}

static void finish(struct fg_component *c, struct pyroscope_exporter_config *cfg)
{
    c->ops->shutdown(c, now_ns() + 2000 * MS);
    c->ops->destroy(c);
    fg_options_free(fg_pyroscope_exporter_factory.options, cfg);
}

static void test_ingest_labels_auth_tenant(void **state)
{
    struct sink s;
    sink_start(&s);
    struct pyroscope_exporter_config cfg;
    make(&cfg, &s, "ingest");
    cfg.basic_auth.username = fg_strdup("user");
    cfg.basic_auth.password = fg_strdup("pass");
    cfg.tenant_id = fg_strdup("default-tenant");
    set_list(&cfg.external_labels, "env", "prod");
    set_list(&cfg.external_labels, "cluster.name", "eu{1}");
    set_list(&cfg.headers, "X-Custom", "yes");
    struct fg_component *c = create(&cfg);
    struct fg_err err = {{0}};

    /* the batch's tenant wins over tenant_id */
    assert_int_equal(fg_consume(&c->consumer, make_batch(4, "team-a"), &err), 0);
    assert_int_equal(s.n, 1);
    struct request *r = &s.req[0];
    assert_string_equal(r->method_path, "POST /ingest");
    assert_string_equal(r->name, "checkout{k8s_pod_name=p-1,replica=3,env=prod,"
                                 "cluster_name=eu_1_}");
    assert_string_equal(r->from, "1700000000000000000");
    assert_string_equal(r->until, "1700000010000000000");
    assert_string_equal(r->format, "pprof");
    assert_string_equal(r->spy, "gospy");
    assert_string_equal(r->content_type, "application/octet-stream");
    assert_string_equal(r->tenant, "team-a");
    assert_string_equal(r->auth, "Basic dXNlcjpwYXNz"); /* user:pass */
    assert_string_equal(r->custom, "yes");
    assert_true(pprof_total(r->body, r->len) == 1000 * (1 + 2 + 3 + 4));

    /* no tenant on the batch: tenant_id */
    assert_int_equal(fg_consume(&c->consumer, make_batch(1, ""), &err), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.req[1].tenant, "default-tenant");
    finish(c, &cfg);
    sink_stop(&s);
}

static void test_push_bearer(void **state)
{
    struct sink s;
    sink_start(&s);
    struct pyroscope_exporter_config cfg;
    make(&cfg, &s, "push");
    cfg.bearer_token = fg_strdup("s3cret");
    set_list(&cfg.external_labels, "env", "prod");
    struct fg_component *c = create(&cfg);
    struct fg_err err = {{0}};
    assert_int_equal(fg_consume(&c->consumer, make_batch(3, "team-b"), &err), 0);
    assert_int_equal(s.n, 1);
    struct request *r = &s.req[0];
    assert_string_equal(r->method_path, "POST /push.v1.PusherService/Push");
    assert_string_equal(r->content_type, "application/proto");
    assert_string_equal(r->connect, "1");
    assert_string_equal(r->auth, "Bearer s3cret");
    assert_string_equal(r->tenant, "team-b");
    Push__V1__PushRequest *req = push__v1__push_request__unpack(NULL, r->len, r->body);
    assert_non_null(req);
    assert_int_equal(req->n_series, 1);
    const Push__V1__RawProfileSeries *ser = req->series[0];
    struct fg_buf labels;
    fg_buf_init(&labels, 0);
    for (size_t i = 0; i < ser->n_labels; i++)
        fg_buf_printf(&labels, "%s=%s;", ser->labels[i]->name, ser->labels[i]->value);
    fg_buf_append(&labels, "", 1);
    assert_string_equal((char *)labels.data, "__name__=process_cpu;service_name=checkout;"
                                             "__delta__=false;pyroscope_spy=gospy;"
                                             "k8s_pod_name=p-1;replica=3;env=prod;");
    fg_buf_free(&labels);
    assert_int_equal(ser->n_samples, 1);
    assert_true(pprof_total(ser->samples[0]->raw_profile.data, ser->samples[0]->raw_profile.len) ==
                1000 * 6);
    push__v1__push_request__free_unpacked(req, NULL);
    finish(c, &cfg);
    sink_stop(&s);
}

static void test_retry_then_permanent(void **state)
{
    struct sink s;
    sink_start(&s);
    s.status[0] = 503;
    s.status[1] = 429;
    s.status[3] = 400;
    struct pyroscope_exporter_config cfg;
    make(&cfg, &s, "ingest");
    struct fg_component *c = create(&cfg);
    struct fg_err err = {{0}};
    assert_int_equal(fg_consume(&c->consumer, make_batch(2, ""), &err), 0);
    assert_int_equal(s.n, 3); /* 503, 429, then 200 */
    assert_string_equal(s.req[2].tenant, "");
    int rc = fg_consume(&c->consumer, make_batch(2, ""), &err);
    assert_int_not_equal(rc, 0);
    assert_int_equal(s.n, 4); /* a 400 is not retried */
    assert_non_null(strstr(err.msg, "bad profile"));
    finish(c, &cfg);
    sink_stop(&s);
}

/* A retry after a part-way failure resends only the pprofs not yet accepted. */
static void test_retry_resumes(void **state)
{
    struct sink s;
    sink_start(&s);
    s.status[1] = 503;
    struct pyroscope_exporter_config cfg;
    make(&cfg, &s, "ingest");
    struct fg_component *c = create(&cfg);
    struct fg_profiles *batch = make_batch_of(2, "", "first");
    struct fg_profiles *second = make_batch_of(3, "", "second");
    struct fg_err err = {{0}};
    assert_int_equal(fg_profiles_merge(batch, second, &err), 0);
    fg_profiles_unref(second);
    assert_int_equal(batch->n_resources, 2);
    assert_int_equal(fg_consume(&c->consumer, batch, &err), 0);
    assert_int_equal(s.n, 3); /* first: 200; second: 503, then 200 */
    assert_string_equal(s.req[0].name, "first{k8s_pod_name=p-1,replica=3}");
    assert_string_equal(s.req[1].name, "second{k8s_pod_name=p-1,replica=3}");
    assert_string_equal(s.req[2].name, "second{k8s_pod_name=p-1,replica=3}");
    assert_true(pprof_total(s.req[2].body, s.req[2].len) == 1000 * 6);
    finish(c, &cfg);
    sink_stop(&s);
}

static void test_validate(void **state)
{
    struct pyroscope_exporter_config cfg;
    struct fg_err err = {{0}};
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(fg_options_defaults(fg_pyroscope_exporter_factory.options, &cfg, &err), 0);
    assert_int_equal(cfg.api, PYROSCOPE_API_INGEST);
    assert_true(cfg.exporter.timeout_ns == 5000 * MS);
    assert_int_equal(fg_pyroscope_exporter_factory.validate(&cfg, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "endpoint"));
    cfg.endpoint = fg_strdup("http://x");
    cfg.bearer_token = fg_strdup("t");
    cfg.basic_auth.username = fg_strdup("u");
    assert_int_equal(fg_pyroscope_exporter_factory.validate(&cfg, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "bearer_token"));
    fg_options_free(fg_pyroscope_exporter_factory.options, &cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_ingest_labels_auth_tenant),
        cmocka_unit_test(test_push_bearer),
        cmocka_unit_test(test_retry_then_permanent),
        cmocka_unit_test(test_retry_resumes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
