/* The metrics registry (get-or-create, exact counts under concurrent adds, Prometheus text),
 * the run state's ownership, service.telemetry parsing, and the logger's JSON encoding and
 * secret scrubbing. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fg_config.h"
#include "fg_counting.h"
#include "fg_log.h"
#include "fg_metrics.h"
#include "fg_model.h"

static char *render(void)
{
    struct fg_buf b;
    fg_buf_init(&b, 0);
    assert_int_equal(fg_metrics_render(&b), 0);
    assert_int_equal(fg_buf_append(&b, "", 1), 0);
    size_t len;
    return (char *)fg_buf_steal(&b, &len);
}

static void test_get_or_create(void **state)
{
    struct fg_counter *a, *b, *c;
    assert_int_equal(fg_metrics_counter("t_requests", "help", "x=\"1\"", &a), 0);
    assert_int_equal(fg_metrics_counter("t_requests", "help", "x=\"1\"", &b), 0);
    assert_int_equal(fg_metrics_counter("t_requests", "help", "x=\"2\"", &c), 0);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    /* one name, one type */
    struct fg_gauge *g;
    assert_int_not_equal(fg_metrics_gauge("t_requests", "help", "", &g), 0);
    assert_null(g);
    fg_counter_add(NULL, 5); /* a missing series is a no-op, never a crash */
    fg_gauge_add(NULL, 1);
    fg_histogram_observe_ns(NULL, 1);
    fg_metrics_reset();
}

struct adder {
    struct fg_counter *c;
    struct fg_gauge *g;
    int n;
};

static void *add_many(void *arg)
{
    struct adder *a = arg;
    for (int i = 0; i < a->n; i++) {
        fg_counter_add(a->c, 3);
        fg_gauge_add(a->g, 1);
        fg_gauge_add(a->g, -1);
    }
    return NULL;
}

static void test_concurrent_adds_are_exact(void **state)
{
    struct adder a = {.n = 100000};
    assert_int_equal(fg_metrics_counter("t_samples", "h", "", &a.c), 0);
    assert_int_equal(fg_metrics_gauge("t_queue", "h", "", &a.g), 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, add_many, &a), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(fg_counter_get(a.c), 4 * 3 * 100000);
    assert_int_equal(fg_gauge_get(a.g), 0);
    fg_metrics_reset();
}

static void test_prometheus_text(void **state)
{
    struct fg_counter *c;
    struct fg_gauge *g;
    struct fg_histogram *h;
    char l[128];
    fg_metrics_labels(l, sizeof(l), "receiver", "otlp/a\"b\\c", "transport", "http", NULL);
    assert_string_equal(l, "receiver=\"otlp/a\\\"b\\\\c\",transport=\"http\"");
    assert_int_equal(fg_metrics_counter("t_accepted", "Samples accepted.", l, &c), 0);
    fg_counter_add(c, 42);
    assert_int_equal(fg_metrics_gauge("t_size", "Queue size.", "exporter=\"x\"", &g), 0);
    fg_gauge_set(g, -3);
    assert_int_equal(fg_metrics_histogram("t_latency_seconds", "Latency.", "", &h), 0);
    fg_histogram_observe_ns(h, 500000);      /* 0.5 ms: first bucket */
    fg_histogram_observe_ns(h, 20000000);    /* 20 ms */
    fg_histogram_observe_ns(h, 60000000000); /* 60 s: only +Inf */
    char *text = render();
    assert_non_null(strstr(text, "# TYPE t_accepted_total counter\n"));
    assert_non_null(strstr(text, "# HELP t_accepted_total Samples accepted.\n"));
    assert_non_null(
        strstr(text, "t_accepted_total{receiver=\"otlp/a\\\"b\\\\c\",transport=\"http\"} 42\n"));
    assert_non_null(strstr(text, "# TYPE t_size gauge\nt_size{exporter=\"x\"} -3\n"));
    assert_non_null(strstr(text, "# TYPE t_latency_seconds histogram\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"0.01\"} 1\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"0.025\"} 2\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"10\"} 2\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "t_latency_seconds_count 3\n"));
    assert_non_null(strstr(text, "t_latency_seconds_sum 60.020500000\n"));
    assert_non_null(strstr(text, "# TYPE otelcol_process_uptime_total counter\n"));
    assert_non_null(strstr(text, "otelcol_process_memory_rss "));
    assert_non_null(strstr(text, "otelcol_process_cpu_seconds_total "));
    free(text);
    fg_metrics_reset();
    text = render();
    assert_null(strstr(text, "t_accepted"));
    free(text);
}

struct seen {
    int n;
    int64_t sum;
    char last[64];
};

static void each_cb(void *ctx, const char *labels, int64_t value)
{
    struct seen *s = ctx;
    s->n++;
    s->sum += value;
    snprintf(s->last, sizeof(s->last), "%s", labels);
}

static void test_each(void **state)
{
    struct fg_gauge *a, *b;
    fg_metrics_gauge("t_since", "h", "exporter=\"a\"", &a);
    fg_metrics_gauge("t_since", "h", "exporter=\"b\"", &b);
    fg_gauge_set(a, 10);
    fg_gauge_set(b, 5);
    struct seen s = {0};
    fg_metrics_each("t_since", each_cb, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.sum, 15);
    assert_string_equal(s.last, "exporter=\"b\"");
    s = (struct seen){0};
    fg_metrics_each("t_nothing", each_cb, &s);
    assert_int_equal(s.n, 0);
    fg_metrics_reset();
}

static void test_run_state_owner(void **state)
{
    static const int old_svc = 1, new_svc = 2; /* only their addresses matter */
    fg_run_state_set(&old_svc, FG_RUN_STARTING);
    assert_int_equal(fg_run_state_get(), FG_RUN_STARTING);
    fg_run_state_set(&old_svc, FG_RUN_RUNNING);
    assert_int_equal(fg_run_state_get(), FG_RUN_RUNNING);
    assert_true(fg_run_state_since() > 1700000000);
    /* a reload: the old service stops taking data, the new one starts */
    fg_run_state_release(&old_svc, FG_RUN_STOPPING);
    assert_int_equal(fg_run_state_get(), FG_RUN_STOPPING);
    fg_run_state_set(&new_svc, FG_RUN_STARTING);
    fg_run_state_set(&new_svc, FG_RUN_RUNNING);
    /* the old one finishes draining later: the new one stays healthy */
    fg_run_state_release(&old_svc, FG_RUN_STOPPING);
    assert_int_equal(fg_run_state_get(), FG_RUN_RUNNING);
    fg_run_state_release(&new_svc, FG_RUN_STOPPING);
    assert_int_equal(fg_run_state_get(), FG_RUN_STOPPING);
}

static void test_request_context(void **state)
{
    fg_metrics_set_request("grpc", 123);
    assert_string_equal(fg_metrics_request_transport(), "grpc");
    assert_int_equal(fg_metrics_request_bytes(), 123);
    fg_metrics_set_request(NULL, 0);
    assert_string_equal(fg_metrics_request_transport(), "");
}

/* A next consumer that answers with a set code. */
struct fake_next {
    struct fg_consumer consumer;
    int rc;
    int calls;
};

static int fake_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct fake_next *f = (struct fake_next *)self;
    f->calls++;
    fg_profiles_unref(batch);
    return f->rc;
}

struct query {
    const char *want;
    int64_t v;
    int found;
};

static void query_cb(void *ctx, const char *labels, int64_t v)
{
    struct query *q = ctx;
    if (strcmp(labels, q->want) == 0) {
        q->v = v;
        q->found = 1;
    }
}

/* The value of one series, -1 when there is none. */
static int64_t series(const char *name, const char *labels)
{
    struct query q = {labels, 0, 0};
    fg_metrics_each(name, query_cb, &q);
    return q.found ? q.v : -1;
}

static void test_counting_receiver(void **state)
{
    struct fake_next next = {{fake_consume}, 0, 0};
    struct fg_counting *c;
    assert_int_equal(fg_counting_new(FG_COUNT_RECEIVER, "otlp/x", &next.consumer, &c), 0);
    struct fg_consumer *in = fg_counting_consumer(c);
    char buf[32];
    snprintf(buf, sizeof(buf), "grpc");
    fg_metrics_set_request(buf, 100); /* not a literal: the name is copied */
    assert_int_equal(fg_consume(in, tu_make_batch("a", 5), NULL), 0);
    memcpy(buf, "XXXX", 4);
    fg_metrics_set_request("http", 10);
    assert_int_equal(fg_consume(in, tu_make_batch("a", 3), NULL), 0);
    next.rc = FG_EFULL;
    fg_metrics_set_request("http", 20);
    assert_int_equal(fg_consume(in, tu_make_batch("a", 7), NULL), FG_EFULL);
    next.rc = FG_ENOMEM;
    fg_metrics_set_request("http", 30);
    assert_int_equal(fg_consume(in, tu_make_batch("a", 2), NULL), FG_ENOMEM);
    next.rc = 0;
    /* a batch without a request (a timer flush, say): transport "" */
    assert_int_equal(fg_consume(in, tu_make_batch("a", 4), NULL), 0);
    assert_int_equal(next.calls, 5);
    const char *g = "receiver=\"otlp/x\",transport=\"grpc\"";
    const char *h = "receiver=\"otlp/x\",transport=\"http\"";
    const char *none = "receiver=\"otlp/x\",transport=\"\"";
    assert_int_equal(series("otelcol_receiver_accepted_profile_samples", g), 5);
    assert_int_equal(series("otelcol_receiver_accepted_profile_samples", h), 3);
    assert_int_equal(series("otelcol_receiver_refused_profile_samples", h), 7);
    assert_int_equal(series("otelcol_receiver_failed_profile_samples", h), 2);
    assert_int_equal(series("otelcol_receiver_requests", h), 3);
    assert_int_equal(series("otelcol_receiver_requests", g), 1);
    assert_int_equal(series("flamegate_receiver_received_bytes", h), 60);
    assert_int_equal(series("flamegate_receiver_received_bytes", g), 100);
    assert_int_equal(series("otelcol_receiver_accepted_profile_samples", none), 4);
    fg_counting_free(c);
    fg_metrics_reset();
}

static void test_counting_processor_and_exporter(void **state)
{
    struct fake_next next = {{fake_consume}, 0, 0};
    struct fg_counting *in, *out, *ex;
    assert_int_equal(fg_counting_new(FG_COUNT_PROCESSOR_IN, "batch", &next.consumer, &in), 0);
    assert_int_equal(fg_counting_new(FG_COUNT_PROCESSOR_OUT, "batch", &next.consumer, &out), 0);
    assert_int_equal(fg_counting_new(FG_COUNT_EXPORTER, "file", &next.consumer, &ex), 0);
    fg_consume(fg_counting_consumer(in), tu_make_batch("a", 6), NULL);
    fg_consume(fg_counting_consumer(out), tu_make_batch("a", 4), NULL);
    fg_consume(fg_counting_consumer(ex), tu_make_batch("a", 4), NULL);
    next.rc = FG_EIO;
    fg_consume(fg_counting_consumer(ex), tu_make_batch("a", 9), NULL);
    const char *p = "processor=\"batch\",otel_signal=\"profiles\"";
    assert_int_equal(series("otelcol_processor_incoming_items", p), 6);
    assert_int_equal(series("otelcol_processor_outgoing_items", p), 4);
    assert_int_equal(series("otelcol_exporter_sent_profile_samples", "exporter=\"file\""), 4);
    assert_int_equal(series("otelcol_exporter_send_failed_profile_samples", "exporter=\"file\""),
                     9);
    fg_counting_free(in);
    fg_counting_free(out);
    fg_counting_free(ex);
    fg_metrics_reset();
}

#define PIPE_YAML                                                                             \
    "receivers:\n  otlp:\n    protocols:\n      http:\nexporters:\n  debug:\n"                \
    "service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n      exporters: [debug]\n"

static int load(const char *telemetry, struct fg_config **cfg, char *diag, size_t size)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml), PIPE_YAML "  telemetry:\n%s", telemetry);
    struct fg_diag d;
    fg_diag_init(&d);
    int rc = fg_config_load_string("t.yaml", yaml, strlen(yaml), cfg, &d);
    snprintf(diag, size, "%.*s", (int)d.text.len, d.text.data ? (char *)d.text.data : "");
    fg_diag_free(&d);
    return rc;
}

static void test_telemetry_config(void **state)
{
    struct fg_config *cfg;
    char diag[1024];
    assert_int_equal(load("    logs:\n      level: warn\n", &cfg, diag, sizeof(diag)), 0);
    assert_string_equal(cfg->metrics_address, FG_DEFAULT_METRICS_ADDRESS);
    assert_int_equal(cfg->log_encoding, FG_LOG_CONSOLE);
    assert_int_equal(cfg->log_level, FG_LOG_WARN);
    fg_config_free(cfg);

    assert_int_equal(load("    logs:\n      encoding: json\n    metrics:\n      address: "
                          "0.0.0.0:9999\n",
                          &cfg, diag, sizeof(diag)),
                     0);
    assert_string_equal(cfg->metrics_address, "0.0.0.0:9999");
    assert_int_equal(cfg->log_encoding, FG_LOG_JSON);
    fg_config_free(cfg);

    /* level none turns /metrics off whatever the order of the keys */
    assert_int_equal(load("    metrics:\n      level: none\n      address: 127.0.0.1:1\n", &cfg,
                          diag, sizeof(diag)),
                     0);
    assert_string_equal(cfg->metrics_address, "");
    fg_config_free(cfg);

    assert_int_equal(load("    metrics:\n      address: nonsense\n", &cfg, diag, sizeof(diag)),
                     FG_EINVAL);
    assert_non_null(strstr(diag, "t.yaml:14:16: error: service.telemetry.metrics.address: "
                                 "expected HOST:PORT, got \"nonsense\""));
    assert_int_equal(load("    logs:\n      encoding: xml\n", &cfg, diag, sizeof(diag)),
                     FG_EINVAL);
    assert_non_null(strstr(diag, "service.telemetry.logs.encoding: invalid value \"xml\" "
                                 "(allowed: console, json)"));
    assert_int_equal(load("    traces:\n      x: 1\n", &cfg, diag, sizeof(diag)), FG_EINVAL);
    assert_non_null(strstr(diag, "service.telemetry.traces: unknown key (valid keys: logs, "
                                 "metrics)"));
    assert_int_equal(load("    metrics:\n      readers: []\n", &cfg, diag, sizeof(diag)),
                     FG_EINVAL);
    assert_non_null(strstr(diag, "service.telemetry.metrics.readers: unknown key (valid keys: "
                                 "address, level)"));
}

/* Runs fn with stderr sent to a temp file; returns what was written (caller frees). */
static char *capture_stderr(void (*fn)(void))
{
    struct tu_capture cap;
    tu_capture_stderr(&cap);
    fn();
    return tu_capture_end(&cap, NULL);
}

static void log_some(void)
{
    fg_log(FG_LOG_INFO, "otlphttp/x", "POST: HTTP 400: you sent Authorization: Bearer "
                                      "tok-123456 and tok-123456 again; key=abc");
    fg_log(FG_LOG_WARN, "svc", "quote \" backslash \\ newline\n tab\t ctl\x01 end");
    fg_log(FG_LOG_DEBUG, "svc", "not written at info");
}

static void log_cut(void)
{
    fg_log(FG_LOG_INFO, "svc",
           "detail: X-Api-Key: apikey-9d8 (rejected); again apikey-9d8c7b6a5f4e end; "
           "apikey-9d8c7b6a5f4e-suffix: the whole secret, then more");
    fg_log(FG_LOG_INFO, "svc", "apikey-9d8c7b6aXYZ and apikey- is too short");
}

static void test_log_json_and_secrets(void **state)
{
    const char *secrets[] = {"tok-123456", "abc", NULL, "tok-123456"};
    assert_int_equal(fg_log_set_secrets(secrets, 4), 0);
    fg_log_set_level(FG_LOG_INFO);
    fg_log_set_encoding(FG_LOG_CONSOLE);
    char *text = capture_stderr(log_some);
    assert_null(strstr(text, "tok-123456"));
    assert_non_null(strstr(text, "Z info  otlphttp/x: POST: HTTP 400: you sent Authorization: "
                                 "Bearer *** and *** again; key=abc\n"));
    assert_null(strstr(text, "not written"));
    free(text);

    fg_log_set_encoding(FG_LOG_JSON);
    text = capture_stderr(log_some);
    fg_log_set_encoding(FG_LOG_CONSOLE);
    assert_int_equal(fg_log_set_secrets(NULL, 0), 0);
    assert_null(strstr(text, "tok-123456"));
    char *second = strchr(text, '\n');
    assert_non_null(second);
    *second++ = '\0';
    assert_int_equal(strncmp(text, "{\"ts\":\"", 7), 0);
    assert_non_null(strstr(text, "\",\"level\":\"info\",\"component\":\"otlphttp/x\",\"msg\":\"POST: "
                                 "HTTP 400: you sent Authorization: Bearer *** and *** again; "
                                 "key=abc\"}"));
    assert_non_null(strstr(second, "\"level\":\"warn\",\"component\":\"svc\",\"msg\":\"quote \\\" "
                                   "backslash \\\\ newline\\n tab\\t ctl\\u0001 end\"}\n"));
    free(text);

    /* a secret a component cut short is still scrubbed; a mere shared prefix is not */
    const char *cut[] = {"apikey-9d8c7b6a5f4e"};
    assert_int_equal(fg_log_set_secrets(cut, 1), 0);
    text = capture_stderr(log_cut);
    assert_int_equal(fg_log_set_secrets(NULL, 0), 0);
    assert_non_null(strstr(text, "svc: detail: X-Api-Key: *** (rejected); again *** end; "
                                 "***-suffix: the whole secret, then more\n"));
    assert_non_null(strstr(text, "svc: apikey-9d8c7b6aXYZ and apikey- is too short\n"));
    free(text);

    /* without secrets nothing is scrubbed */
    text = capture_stderr(log_some);
    assert_non_null(strstr(text, "Bearer tok-123456 and tok-123456 again"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_or_create),
        cmocka_unit_test(test_concurrent_adds_are_exact),
        cmocka_unit_test(test_prometheus_text),
        cmocka_unit_test(test_each),
        cmocka_unit_test(test_run_state_owner),
        cmocka_unit_test(test_request_context),
        cmocka_unit_test(test_counting_receiver),
        cmocka_unit_test(test_counting_processor_and_exporter),
        cmocka_unit_test(test_telemetry_config),
        cmocka_unit_test(test_log_json_and_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
