/* Unit tests for the YAML configuration loader: typed values, env expansion, every kind of
 * diagnostic with its exact FILE:LINE:COL, the embedded default, and allocation failures. */
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_config.h"
#include "fg_log.h"

static const char *diag_text(const struct fg_diag *d)
{
    return d->text.len ? (const char *)d->text.data : "";
}

static int load(const char *yaml, struct fg_config **out, struct fg_diag *d)
{
    fg_diag_init(d);
    return fg_config_load_string("t.yaml", yaml, strlen(yaml), out, d);
}

#define assert_diag(d, needle)                                                       \
    do {                                                                             \
        if (!strstr(diag_text(d), (needle)))                                         \
            fail_msg("diagnostics lack\n  %s\ngot:\n%s", (needle), diag_text(d));    \
    } while (0)

/* Loads yaml expecting failure and one diagnostic line containing needle. */
static void expect_error(const char *yaml, const char *needle)
{
    struct fg_config *cfg = (struct fg_config *)1;
    struct fg_diag d;
    int rc = load(yaml, &cfg, &d);
    if (rc != FG_EINVAL)
        fail_msg("expected FG_EINVAL, got %d; diagnostics:\n%s", rc, diag_text(&d));
    assert_null(cfg);
    assert_true(d.errors > 0);
    assert_diag(&d, needle);
    fg_diag_free(&d);
}

/* Finds a (dotted) option inside a component's typed config through its option table, so
 * the tests do not depend on the private struct layouts of the components. */
static void *field(const struct fg_config_component *c, const char *dotted)
{
    const struct fg_option *table = c->factory->options;
    char *base = c->config;
    const char *part = dotted;
    for (;;) {
        const char *dot = strchr(part, '.');
        size_t len = dot ? (size_t)(dot - part) : strlen(part);
        const struct fg_option *o = table;
        while (o->name && (strlen(o->name) != len || strncmp(o->name, part, len) != 0))
            o++;
        if (!o->name)
            fail_msg("no option %s", dotted);
        if (!dot)
            return base + o->offset;
        assert_int_equal(o->type, FG_OPT_STRUCT);
        base += o->offset;
        table = o->sub;
        part = dot + 1;
    }
}

/* The bool that records presence of a STRUCT option. */
static bool present(const struct fg_config_component *c, const char *parent, const char *name)
{
    const struct fg_option *table = c->factory->options;
    char *base = c->config;
    if (parent) {
        const struct fg_option *o = table;
        while (o->name && strcmp(o->name, parent) != 0)
            o++;
        assert_non_null(o->name);
        base += o->offset;
        table = o->sub;
    }
    const struct fg_option *o = table;
    while (o->name && strcmp(o->name, name) != 0)
        o++;
    assert_non_null(o->name);
    assert_int_not_equal(o->present_offset, FG_OPT_NO_PRESENT);
    return *(bool *)(base + o->present_offset);
}

static const char *str(const struct fg_config_component *c, const char *dotted)
{
    return *(char **)field(c, dotted);
}

static void test_default_config(void **state)
{
    struct fg_config *cfg = NULL;
    struct fg_diag d;
    fg_diag_init(&d);
    int rc = fg_config_load_string("<default>", fg_default_config_yaml,
                                   strlen(fg_default_config_yaml), &cfg, &d);
    if (rc)
        fail_msg("default config: %s", diag_text(&d));
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.warnings, 0);
    assert_string_equal(cfg->source, "<default>");
    assert_int_equal(cfg->log_level, FG_LOG_INFO);

    const struct fg_config_component *otlp = fg_config_find(cfg, FG_KIND_RECEIVER, "otlp");
    assert_non_null(otlp);
    assert_string_equal(otlp->factory->type, "otlp");
    assert_true(present(otlp, "protocols", "http"));
    assert_string_equal(str(otlp, "protocols.http.endpoint"), "127.0.0.1:4318");
    assert_int_equal(*(uint64_t *)field(otlp, "protocols.http.max_request_body_size"),
                     20ULL << 20);
    assert_int_equal(otlp->line, 2);
    assert_int_equal(otlp->col, 3);

    const struct fg_config_component *batch = fg_config_find(cfg, FG_KIND_PROCESSOR, "batch");
    assert_non_null(batch);
    assert_int_equal(*(int64_t *)field(batch, "timeout"), 200000000LL);
    assert_int_equal(*(int64_t *)field(batch, "send_batch_size"), 8192);

    const struct fg_config_component *file = fg_config_find(cfg, FG_KIND_EXPORTER, "file");
    assert_non_null(file);
    assert_string_equal(str(file, "path"), "./flamegate-data");
    assert_non_null(fg_config_find(cfg, FG_KIND_EXPORTER, "debug"));
    assert_null(fg_config_find(cfg, FG_KIND_EXPORTER, "otlp"));
    assert_null(fg_config_find(cfg, FG_KIND_RECEIVER, "batch"));

    assert_int_equal(cfg->n_pipelines, 1);
    const struct fg_config_pipeline *p = &cfg->pipelines[0];
    assert_string_equal(p->name, "profiles");
    assert_int_equal(p->n_receivers, 1);
    assert_string_equal(p->receivers[0], "otlp");
    assert_int_equal(p->n_processors, 1);
    assert_string_equal(p->processors[0], "batch");
    assert_int_equal(p->n_exporters, 2);
    assert_string_equal(p->exporters[0], "file");
    assert_string_equal(p->exporters[1], "debug");
    fg_config_free(cfg);
    fg_diag_free(&d);
}

/* Loads yaml with the n-th allocation failing for n = 1, 2, ... until it loads; every failed
 * load must return an error (FG_ENOMEM when only_enomem) and no config. Returns the n that
 * loaded. */
static unsigned long walk_alloc_failures(const char *source, const char *yaml, bool only_enomem)
{
    unsigned long n;
    for (n = 1; n < 100000; n++) {
        struct fg_config *cfg = (struct fg_config *)1;
        struct fg_diag d;
        fg_diag_init(&d);
        fg_alloc_fail_after(n);
        int rc = fg_config_load_string(source, yaml, strlen(yaml), &cfg, &d);
        fg_alloc_fail_after(0);
        fg_diag_free(&d);
        if (rc == 0) {
            assert_non_null(cfg);
            fg_config_free(cfg);
            break;
        }
        if (only_enomem)
            assert_int_equal(rc, FG_ENOMEM);
        else
            assert_true(rc < 0);
        assert_null(cfg);
    }
    return n;
}

static void test_default_config_alloc_failures(void **state)
{
    unsigned long n = walk_alloc_failures("<default>", fg_default_config_yaml, false);
    /* the walk must have hit real allocations before succeeding */
    assert_true(n > 20);
    assert_true(n < 100000);
}

static const char full_config[] =
    "receivers:\n"                                   /* 1 */
    "  otlp:\n"                                      /* 2 */
    "    protocols: {http: }\n"                      /* 3 */
    "  otlp/second:\n"                               /* 4 */
    "    protocols:\n"                               /* 5 */
    "      http:\n"                                  /* 6 */
    "        endpoint: 0.0.0.0:0\n"                  /* 7 */
    "        max_request_body_size: 512KiB\n"        /* 8 */
    "processors:\n"                                  /* 9 */
    "  batch:\n"                                     /* 10 */
    "    timeout: 1m30s\n"                           /* 11 */
    "    send_batch_size: 100\n"                     /* 12 */
    "  batch/big:\n"                                 /* 13 */
    "    send_batch_max_size: 100000\n"              /* 14 */
    "exporters:\n"                                   /* 15 */
    "  otlphttp/up:\n"                               /* 16 */
    "    endpoint: http://collector:4318\n"          /* 17 */
    "    compression: none\n"                        /* 18 */
    "    headers:\n"                                 /* 19 */
    "      X-Scope-OrgID: tenant-1\n"                /* 20 */
    "      Authorization: \"Bearer x\"\n"            /* 21 */
    "    retry_on_failure:\n"                        /* 22 */
    "      enabled: off\n"                           /* 23 */
    "      initial_interval: 1.5s\n"                 /* 24 */
    "    sending_queue: {queue_size: 5}\n"           /* 25 */
    "  debug:\n"                                     /* 26 */
    "    verbosity: detailed\n"                      /* 27 */
    "  file:\n"                                      /* 28 */
    "service:\n"                                     /* 29 */
    "  telemetry:\n"                                 /* 30 */
    "    logs: {level: debug}\n"                     /* 31 */
    "  pipelines:\n"                                 /* 32 */
    "    profiles/a:\n"                              /* 33 */
    "      receivers: [otlp, otlp/second]\n"         /* 34 */
    "      processors: [batch/big, batch]\n"         /* 35 */
    "      exporters: [debug, otlphttp/up]\n"        /* 36 */
    "    profiles/b:\n"                              /* 37 */
    "      receivers: [otlp]\n"                      /* 38 */
    "      exporters: [file, debug]\n";              /* 39 */

static void test_full_config(void **state)
{
    struct fg_config *cfg = NULL;
    struct fg_diag d;
    int rc = load(full_config, &cfg, &d);
    if (rc)
        fail_msg("%s", diag_text(&d));
    assert_int_equal(d.warnings, 0);
    assert_int_equal(cfg->log_level, FG_LOG_DEBUG);
    assert_int_equal(cfg->n_components[FG_KIND_RECEIVER], 2);
    assert_int_equal(cfg->n_components[FG_KIND_PROCESSOR], 2);
    assert_int_equal(cfg->n_components[FG_KIND_EXPORTER], 3);
    assert_int_equal(cfg->n_components[FG_KIND_EXTENSION], 0);

    /* nested struct presence with a null body: enabled with defaults */
    const struct fg_config_component *r1 = fg_config_find(cfg, FG_KIND_RECEIVER, "otlp");
    assert_true(present(r1, "protocols", "http"));
    assert_string_equal(str(r1, "protocols.http.endpoint"), "127.0.0.1:4318");
    const struct fg_config_component *r2 = fg_config_find(cfg, FG_KIND_RECEIVER, "otlp/second");
    assert_non_null(r2);
    assert_string_equal(r2->id, "otlp/second");
    assert_string_equal(r2->factory->type, "otlp");
    assert_int_equal(r2->line, 4);
    assert_int_equal(r2->col, 3);
    assert_string_equal(str(r2, "protocols.http.endpoint"), "0.0.0.0:0");
    assert_int_equal(*(uint64_t *)field(r2, "protocols.http.max_request_body_size"), 512 * 1024);

    const struct fg_config_component *b = fg_config_find(cfg, FG_KIND_PROCESSOR, "batch");
    assert_int_equal(*(int64_t *)field(b, "timeout"), 90000000000LL);
    assert_int_equal(*(int64_t *)field(b, "send_batch_size"), 100);
    const struct fg_config_component *bb = fg_config_find(cfg, FG_KIND_PROCESSOR, "batch/big");
    assert_int_equal(*(int64_t *)field(bb, "send_batch_max_size"), 100000);
    assert_int_equal(*(int64_t *)field(bb, "timeout"), 200000000LL); /* default kept */

    const struct fg_config_component *up = fg_config_find(cfg, FG_KIND_EXPORTER, "otlphttp/up");
    assert_string_equal(str(up, "endpoint"), "http://collector:4318");
    assert_null(str(up, "profiles_endpoint"));
    assert_int_equal(*(int *)field(up, "compression"), 1);
    assert_int_equal(*(int *)field(up, "encoding"), 0);
    const struct fg_strmap *h = field(up, "headers");
    assert_int_equal(h->n, 2);
    assert_string_equal(h->keys[0], "X-Scope-OrgID");
    assert_string_equal(h->values[0], "tenant-1");
    assert_string_equal(h->keys[1], "Authorization");
    assert_string_equal(h->values[1], "Bearer x");
    assert_false(*(bool *)field(up, "retry_on_failure.enabled"));
    assert_int_equal(*(int64_t *)field(up, "retry_on_failure.initial_interval"), 1500000000LL);
    assert_int_equal(*(int64_t *)field(up, "retry_on_failure.max_interval"), 30000000000LL);
    assert_int_equal(*(int64_t *)field(up, "sending_queue.queue_size"), 5);
    assert_int_equal(*(int64_t *)field(up, "sending_queue.num_consumers"), 10);
    assert_true(*(bool *)field(up, "sending_queue.enabled"));
    assert_int_equal(*(int64_t *)field(up, "timeout"), 5000000000LL);
    assert_int_equal(*(int *)field(fg_config_find(cfg, FG_KIND_EXPORTER, "debug"), "verbosity"),
                     2);

    /* two pipelines reusing otlp and debug; processor order kept */
    assert_int_equal(cfg->n_pipelines, 2);
    const struct fg_config_pipeline *a = &cfg->pipelines[0], *pb = &cfg->pipelines[1];
    assert_string_equal(a->name, "profiles/a");
    assert_int_equal(a->n_receivers, 2);
    assert_string_equal(a->receivers[1], "otlp/second");
    assert_int_equal(a->n_processors, 2);
    assert_string_equal(a->processors[0], "batch/big");
    assert_string_equal(a->processors[1], "batch");
    assert_string_equal(a->exporters[1], "otlphttp/up");
    assert_string_equal(pb->name, "profiles/b");
    assert_int_equal(pb->n_receivers, 1);
    assert_string_equal(pb->receivers[0], "otlp");
    assert_int_equal(pb->n_processors, 0);
    assert_null(pb->processors);
    assert_int_equal(pb->n_exporters, 2);
    assert_string_equal(pb->exporters[0], "file");
    fg_config_free(cfg);
    fg_diag_free(&d);
}

#define PIPE "service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n      exporters: [debug]\n"
#define BASE "receivers:\n  otlp:\n    protocols: {http: }\nexporters:\n  debug:\n"

static void test_unknown_type(void **state)
{
    expect_error("receivers:\n  otlp:\n    protocols: {http: }\n  jaeger/x:\n" "exporters:\n"
                 "  debug:\n" PIPE,
                 "t.yaml:4:3: error: receivers.jaeger/x: unknown receiver type \"jaeger\" "
                 "(known receiver types: otlp, pyroscope, samples)");
    expect_error(BASE "  kafka:\n" PIPE,
                 "t.yaml:6:3: error: exporters.kafka: unknown exporter type \"kafka\" (known "
                 "exporter types: otlphttp, otlp, pyroscope, file, debug)");
    expect_error(BASE "extensions:\n  zpages:\n" PIPE,
                 "t.yaml:7:3: error: extensions.zpages: unknown extension type "
                 "\"zpages\" (known extension types: file_storage");
    expect_error(BASE "processors:\n  /x:\n" PIPE,
                 "t.yaml:7:3: error: processors./x: invalid component id");
    expect_error(BASE "processors:\n  batch/:\n" PIPE,
                 "t.yaml:7:3: error: processors.batch/: invalid component id");
    /* an unknown type named in a pipeline does not add "not defined" noise */
    struct fg_config *cfg;
    struct fg_diag d;
    assert_int_equal(load("receivers:\n  nope:\nexporters:\n  debug:\nservice:\n  pipelines:\n"
                          "    profiles:\n      receivers: [nope]\n      exporters: [debug]\n",
                          &cfg, &d),
                     FG_EINVAL);
    assert_int_equal(d.errors, 1);
    fg_diag_free(&d);
}

static void test_unknown_key(void **state)
{
    expect_error(BASE "    verbose: true\n" PIPE,
                 "t.yaml:6:5: error: exporters.debug.verbose: unknown key (valid keys: "
                 "verbosity)");
    expect_error("receivers:\n  otlp:\n    protocols:\n      thrift:\n" "exporters:\n  debug:\n" PIPE,
                 "t.yaml:4:7: error: receivers.otlp.protocols.thrift: unknown key (valid keys: "
                 "http, grpc)");
    expect_error(BASE "connectors:\n  spanmetrics:\n" PIPE,
                 "t.yaml:7:3: error: connectors.spanmetrics: unknown connector type "
                 "\"spanmetrics\" (known connector types: forward, routing)");
    expect_error(BASE "recievers:\n" PIPE,
                 "t.yaml:6:1: error: recievers: unknown top-level key (valid keys: receivers, "
                 "processors, exporters, extensions, connectors, service)");
    expect_error(BASE PIPE "  foo: 1\n",
                 "t.yaml:11:3: error: service.foo: unknown key (valid keys: extensions, "
                 "pipelines, shutdown_timeout, telemetry)");
    expect_error(BASE PIPE "      procesors: [batch]\n",
                 "t.yaml:11:7: error: service.pipelines.profiles.procesors: unknown key (valid "
                 "keys: receivers, processors, exporters)");
    expect_error(BASE "    verbosity: basic\n    verbosity: normal\n" PIPE,
                 "t.yaml:7:5: error: exporters.debug.verbosity: duplicate key");
}

static void test_wrong_types(void **state)
{
    expect_error("receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: {a: 1}\n"
                 "exporters:\n  debug:\n" PIPE,
                 "t.yaml:5:19: error: receivers.otlp.protocols.http.endpoint: expected a single "
                 "value, got a mapping");
    expect_error(BASE "processors:\n  batch:\n    send_batch_size: lots\n" PIPE,
                 "t.yaml:8:22: error: processors.batch.send_batch_size: invalid integer "
                 "\"lots\"");
    expect_error(BASE "processors:\n  batch: [1, 2]\n" PIPE,
                 "t.yaml:7:10: error: processors.batch: expected a mapping, got a list");
    expect_error(BASE "  otlphttp:\n    endpoint: http://x\n    headers: [a]\n" PIPE,
                 "t.yaml:8:14: error: exporters.otlphttp.headers: expected a mapping of names "
                 "to values, got a list");
    expect_error(BASE "  otlphttp:\n    endpoint: http://x\n    retry_on_failure: 5s\n" PIPE,
                 "t.yaml:8:23: error: exporters.otlphttp.retry_on_failure: expected a mapping, "
                 "got a scalar");
    expect_error(BASE "  otlphttp:\n    endpoint: http://x\n    retry_on_failure:\n"
                      "      enabled: perhaps\n" PIPE,
                 "t.yaml:9:16: error: exporters.otlphttp.retry_on_failure.enabled: invalid "
                 "boolean \"perhaps\"");
    expect_error("receivers: [otlp]\n" "exporters:\n  debug:\n" PIPE,
                 "t.yaml:1:12: error: receivers: expected a mapping of component ids, got a "
                 "list");
    expect_error("- a\n- b\n", "t.yaml:1:1: error: the configuration must be a mapping");
}

static void test_out_of_range_and_enum(void **state)
{
    expect_error(BASE "processors:\n  batch:\n    send_batch_size: 0\n" PIPE,
                 "t.yaml:8:22: error: processors.batch.send_batch_size: 0 is out of range (must "
                 "be between 1 and 2147483647)");
    expect_error("receivers:\n  otlp:\n    protocols:\n      http:\n"
                 "        max_request_body_size: 2GiB\n" "exporters:\n  debug:\n" PIPE,
                 "t.yaml:5:32: error: receivers.otlp.protocols.http.max_request_body_size: 2GiB "
                 "is out of range (must be between 1 and 1GiB)");
    expect_error(BASE "  otlphttp:\n    endpoint: http://x\n    timeout: 2h\n" PIPE,
                 "t.yaml:8:14: error: exporters.otlphttp.timeout: 2h is out of range (must be "
                 "between 1ms and 1h)");
    expect_error(BASE "  otlphttp:\n    endpoint: http://x\n    retry_on_failure:\n"
                      "      initial_interval: 5 parsecs\n" PIPE,
                 "t.yaml:9:25: error: exporters.otlphttp.retry_on_failure.initial_interval: "
                 "invalid duration \"5 parsecs\"");
    expect_error(BASE "processors:\n  batch:\n    timeout: 99999999999h\n" PIPE,
                 "t.yaml:8:14: error: processors.batch.timeout: invalid duration "
                 "\"99999999999h\"");
    expect_error(BASE "    verbosity: loud\n" PIPE,
                 "t.yaml:6:16: error: exporters.debug.verbosity: invalid value \"loud\" "
                 "(allowed: basic, normal, detailed)");
    expect_error(BASE PIPE "  telemetry:\n    logs:\n      level: chatty\n",
                 "t.yaml:13:14: error: service.telemetry.logs.level: invalid value \"chatty\" "
                 "(allowed: debug, info, warn, error)");
}

static void test_validate_hook(void **state)
{
    /* protocols present but no protocol enabled: the receiver's own check, at its id */
    expect_error("receivers:\n  otlp:\n    protocols:\nexporters:\n  debug:\n" PIPE,
                 "t.yaml:2:3: error: receivers.otlp: protocols: at least one protocol must be "
                 "enabled (grpc, http)");
    expect_error("receivers:\n  otlp:\nexporters:\n  debug:\n" PIPE,
                 "t.yaml:2:3: error: receivers.otlp: protocols: at least one protocol");
    expect_error(BASE "  otlphttp:\n" PIPE,
                 "t.yaml:6:3: error: exporters.otlphttp: endpoint: required");
    expect_error(BASE "processors:\n  batch:\n    send_batch_size: 10\n"
                      "    send_batch_max_size: 5\n" PIPE,
                 "t.yaml:7:3: error: processors.batch: send_batch_max_size: must be 0 or at "
                 "least send_batch_size");
}

static void test_pipeline_errors(void **state)
{
    expect_error(BASE "service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n"
                      "      exporters: [debug, file]\n",
                 "t.yaml:10:26: error: service.pipelines.profiles.exporters: exporter \"file\" "
                 "is not defined in exporters");
    expect_error(BASE "service:\n  pipelines:\n    profiles:\n      receivers:\n        - otlp\n"
                      "        - otlp/2\n      exporters: [debug]\n",
                 "t.yaml:11:11: error: service.pipelines.profiles.receivers: receiver "
                 "\"otlp/2\" is not defined in receivers");
    expect_error(BASE "service:\n  pipelines:\n    profiles:\n      exporters: [debug]\n",
                 "t.yaml:8:5: error: service.pipelines.profiles: a pipeline needs at least one "
                 "receiver");
    expect_error(BASE "service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n"
                      "      exporters: []\n",
                 "t.yaml:8:5: error: service.pipelines.profiles: a pipeline needs at least one "
                 "exporter");
    expect_error(BASE "service:\n  pipelines:\n    profiles:\n",
                 "t.yaml:8:5: error: service.pipelines.profiles: a pipeline needs at least one "
                 "exporter");
    expect_error(BASE "processors:\n  batch:\nservice:\n  pipelines:\n    profiles:\n"
                      "      receivers: [otlp]\n      processors: [batch, batch]\n"
                      "      exporters: [debug]\n",
                 "t.yaml:12:27: error: service.pipelines.profiles.processors: processor "
                 "\"batch\" is listed twice");
    expect_error(BASE PIPE "    traces:\n      receivers: [otlp]\n      exporters: [debug]\n",
                 "t.yaml:11:5: error: service.pipelines.traces: flamegate carries only profiles "
                 "pipelines");
    expect_error(BASE PIPE "    logs/x:\n",
                 "t.yaml:11:5: error: service.pipelines.logs/x: flamegate carries only profiles "
                 "pipelines");
    expect_error(BASE PIPE "    profiles/:\n",
                 "t.yaml:11:5: error: service.pipelines.profiles/: invalid pipeline id");
    expect_error(BASE "service:\n  pipelines:\n",
                 "t.yaml:7:3: error: service.pipelines: no pipelines defined");
    expect_error(BASE "service:\n  telemetry:\n",
                 "t.yaml:6:1: error: service.pipelines: missing");
    expect_error(BASE, "t.yaml:1:1: error: service.pipelines: missing");
    expect_error(BASE "receivers:\n  otlp/2:\n" PIPE,
                 "t.yaml:6:1: error: receivers: duplicate key");
    expect_error("receivers:\n  otlp:\n    protocols: {http: }\n  otlp:\n" "exporters:\n"
                 "  debug:\n" PIPE,
                 "t.yaml:4:3: error: receivers.otlp: receiver \"otlp\" is defined twice");
    expect_error(BASE PIPE "  extensions: [zpages]\n",
                 "t.yaml:11:16: error: service.extensions: extension \"zpages\" is not "
                 "defined in extensions");
}

static void test_unused_is_warning(void **state)
{
    struct fg_config *cfg = NULL;
    struct fg_diag d;
    int rc = load(BASE "  file:\nprocessors:\n  batch/unused:\n" PIPE, &cfg, &d);
    if (rc)
        fail_msg("%s", diag_text(&d));
    assert_non_null(cfg);
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.warnings, 2);
    assert_diag(&d, "t.yaml:8:3: warning: processors.batch/unused: processor \"batch/unused\" is "
                    "not used in any pipeline");
    assert_diag(&d, "t.yaml:6:3: warning: exporters.file: exporter \"file\" is not used in any "
                    "pipeline");
    fg_config_free(cfg);
    fg_diag_free(&d);
}

static void test_errors_collected(void **state)
{
    struct fg_config *cfg = (struct fg_config *)1;
    struct fg_diag d;
    int rc = load("receivers:\n  otlp:\n    protocols: {http: {endpoint: [x]}}\n"
                  "processors:\n  batch:\n    timeout: soon\n    send_batch_size: -1\n"
                  "exporters:\n  debug:\n    verbosity: loud\n  bogus:\n" PIPE,
                  &cfg, &d);
    assert_int_equal(rc, FG_EINVAL);
    assert_null(cfg);
    assert_int_equal(d.errors, 5);
    assert_diag(&d, "t.yaml:3:34: error: receivers.otlp.protocols.http.endpoint: expected a "
                    "single value, got a list");
    assert_diag(&d, "t.yaml:6:14: error: processors.batch.timeout: invalid duration \"soon\"");
    assert_diag(&d, "t.yaml:7:22: error: processors.batch.send_batch_size: -1 is out of range");
    assert_diag(&d, "t.yaml:10:16: error: exporters.debug.verbosity: invalid value \"loud\"");
    assert_diag(&d, "t.yaml:11:3: error: exporters.bogus: unknown exporter type \"bogus\"");
    /* the processor is defined but not used: a warning alongside the errors */
    assert_diag(&d, "t.yaml:5:3: warning: processors.batch");
    /* diagnostics come in document order */
    const char *t = diag_text(&d);
    assert_true(strstr(t, "t.yaml:3:34") < strstr(t, "t.yaml:6:14"));
    assert_true(strstr(t, "t.yaml:6:14") < strstr(t, "t.yaml:11:3"));
    fg_diag_free(&d);
}

static void test_yaml_errors(void **state)
{
    expect_error("receivers:\n  otlp: [\n", "t.yaml:3:1: error: YAML syntax error:");
    expect_error("receivers:\n  otlp:\n\tprotocols:\n", "t.yaml:3:1: error: YAML syntax error:");
    expect_error("a: b: c\n", "t.yaml:1:5: error: YAML syntax error: mapping values are not "
                              "allowed in this context");
    expect_error("", "t.yaml:1:1: error: empty configuration");
    expect_error("# nothing here\n", "t.yaml:1:1: error: empty configuration");
    expect_error("---\n", "t.yaml:2:1: error: empty configuration");
    expect_error("~\n", "t.yaml:1:1: error: empty configuration");
    expect_error(BASE PIPE "---\nreceivers:\n",
                 "t.yaml:11:1: error: more than one YAML document");
    expect_error("x: &a {b: 1}\ny: *a\n", "t.yaml:2:4: error: YAML aliases (*a) are not supported");
    expect_error("? [a, b]\n: c\n", "t.yaml:1:3: error: (top level): keys must be plain strings");
    /* invalid UTF-8 */
    expect_error("receivers: \xff\xfe\n", "error: YAML syntax error");

    /* hostile nesting stops at a limit instead of exhausting the stack */
    char deep[4096];
    size_t n = 0;
    for (; n < 1000; n++)
        deep[n] = '[';
    deep[n] = '\0';
    expect_error(deep, "nesting deeper than");
}

static void test_missing_file(void **state)
{
    struct fg_config *cfg = (struct fg_config *)1;
    struct fg_diag d;
    fg_diag_init(&d);
    int rc = fg_config_load_file("/nonexistent/flamegate.yaml", &cfg, &d);
    assert_int_equal(rc, FG_EINVAL);
    assert_null(cfg);
    assert_int_equal(d.errors, 1);
    assert_string_equal(diag_text(&d), "/nonexistent/flamegate.yaml: error: cannot open "
                                       "configuration file: No such file or directory\n");
    fg_diag_free(&d);
}

static void test_load_file(void **state)
{
    char dir[64], path[128];
    assert_non_null(tu_tempdir(dir, sizeof(dir)));
    snprintf(path, sizeof(path), "%s/c.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(BASE "    verbosity: normal\n" PIPE, f);
    fclose(f);
    struct fg_config *cfg = NULL;
    struct fg_diag d;
    fg_diag_init(&d);
    assert_int_equal(fg_config_load_file(path, &cfg, &d), 0);
    assert_string_equal(cfg->source, path);
    assert_int_equal(*(int *)field(fg_config_find(cfg, FG_KIND_EXPORTER, "debug"), "verbosity"),
                     1);
    fg_config_free(cfg);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs(BASE "    verbosity: much\n" PIPE, f);
    fclose(f);
    assert_int_equal(fg_config_load_file(path, &cfg, &d), FG_EINVAL);
    char want[256];
    snprintf(want, sizeof(want), "%s:6:16: error: exporters.debug.verbosity", path);
    assert_diag(&d, want);
    fg_diag_free(&d);
    tu_rmtree(dir);
}

static void test_env_expansion(void **state)
{
    setenv("FG_TEST_HOST", "collector.example", 1);
    setenv("FG_TEST_EMPTY", "", 1);
    unsetenv("FG_TEST_UNSET");
    struct fg_config *cfg = NULL;
    struct fg_diag d;
    int rc = load("receivers:\n"
                  "  otlp:\n"
                  "    protocols:\n"
                  "      http:\n"
                  "        endpoint: ${env:FG_TEST_HOST}:4318\n"
                  "exporters:\n"
                  "  otlphttp:\n"
                  "    endpoint: http://${FG_TEST_HOST}/$$x/a$b/${env:FG_TEST_UNSET:-dflt}\n"
                  "    profiles_endpoint: \"${FG_TEST_UNSET}\"\n"
                  "    headers:\n"
                  "      a: ${FG_TEST_EMPTY:-fallback}\n"
                  "      b: \"x${FG_TEST_EMPTY}y\"\n"
                  "      ${FG_TEST_HOST}: $$$$\n"
                  "      c: ${FG_TEST_UNSET:-}\n"
                  "      d: $\n"
                  "service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n"
                  "      exporters: [otlphttp]\n",
                  &cfg, &d);
    if (rc)
        fail_msg("%s", diag_text(&d));
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.warnings, 1);
    assert_diag(&d, "t.yaml:9:24: warning: environment variable FG_TEST_UNSET is not set");
    const struct fg_config_component *r = fg_config_find(cfg, FG_KIND_RECEIVER, "otlp");
    assert_string_equal(str(r, "protocols.http.endpoint"), "collector.example:4318");
    const struct fg_config_component *e = fg_config_find(cfg, FG_KIND_EXPORTER, "otlphttp");
    assert_string_equal(str(e, "endpoint"), "http://collector.example/$x/a$b/dflt");
    assert_string_equal(str(e, "profiles_endpoint"), "");
    const struct fg_strmap *h = field(e, "headers");
    assert_int_equal(h->n, 5);
    assert_string_equal(h->values[0], "fallback");
    assert_string_equal(h->values[1], "xy");
    assert_string_equal(h->keys[2], "${FG_TEST_HOST}"); /* keys are not expanded */
    assert_string_equal(h->values[2], "$$");
    assert_string_equal(h->values[3], "");
    assert_string_equal(h->values[4], "$");
    fg_config_free(cfg);
    fg_diag_free(&d);

    /* expansion happens before typed parsing */
    setenv("FG_TEST_SIZE", "10", 1);
    rc = load(BASE PIPE "processors:\n  batch:\n    send_batch_size: ${env:FG_TEST_SIZE}0\n"
                        "    timeout: ${FG_TEST_SIZE}s\n",
              &cfg, &d);
    assert_int_equal(rc, 0);
    const struct fg_config_component *b = fg_config_find(cfg, FG_KIND_PROCESSOR, "batch");
    assert_int_equal(*(int64_t *)field(b, "send_batch_size"), 100);
    assert_int_equal(*(int64_t *)field(b, "timeout"), 10000000000LL);
    fg_config_free(cfg);
    fg_diag_free(&d);

    expect_error(BASE "    verbosity: ${FG_TEST_UNSET}\n" PIPE,
                 "t.yaml:6:16: error: exporters.debug.verbosity: invalid value \"\"");
    expect_error(BASE "    verbosity: ${env:FG_TEST_HOST\n" PIPE,
                 "t.yaml:6:16: error: unterminated \"${\"");
    expect_error(BASE "    verbosity: ${file:/etc/passwd}\n" PIPE,
                 "t.yaml:6:16: error: invalid environment reference \"${file:/etc/passwd}\"");
    expect_error(BASE "    verbosity: ${1X}\n" PIPE,
                 "t.yaml:6:16: error: invalid environment reference \"${1X}\"");
    unsetenv("FG_TEST_HOST");
    unsetenv("FG_TEST_EMPTY");
    unsetenv("FG_TEST_SIZE");
}

static void test_null_and_lists(void **state)
{
    struct fg_config *cfg = NULL;
    struct fg_diag d;
    /* null values keep defaults; block-style lists; quoted and flow forms */
    int rc = load("receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint:\n"
                  "exporters:\n  'debug':\n    verbosity: ~\n  otlphttp:\n"
                  "    endpoint: \"http://h\"\n    headers:\n"
                  "service:\n  extensions: []\n  pipelines:\n    profiles:\n"
                  "      receivers:\n        - otlp\n      processors:\n"
                  "      exporters:\n        - debug\n        - \"otlphttp\"\n",
                  &cfg, &d);
    if (rc)
        fail_msg("%s", diag_text(&d));
    const struct fg_config_component *r = fg_config_find(cfg, FG_KIND_RECEIVER, "otlp");
    assert_string_equal(str(r, "protocols.http.endpoint"), "127.0.0.1:4318");
    assert_int_equal(*(int *)field(fg_config_find(cfg, FG_KIND_EXPORTER, "debug"), "verbosity"),
                     0);
    const struct fg_strmap *h = field(fg_config_find(cfg, FG_KIND_EXPORTER, "otlphttp"), "headers");
    assert_int_equal(h->n, 0);
    assert_int_equal(cfg->pipelines[0].n_processors, 0);
    assert_int_equal(cfg->pipelines[0].n_exporters, 2);
    assert_string_equal(cfg->pipelines[0].exporters[1], "otlphttp");
    assert_int_equal(cfg->n_service_extensions, 0);
    fg_config_free(cfg);
    fg_diag_free(&d);

    expect_error(BASE "service:\n  pipelines:\n    profiles:\n      receivers: otlp\n"
                      "      exporters: [debug]\n",
                 "t.yaml:9:18: error: service.pipelines.profiles.receivers: expected a list of "
                 "receiver ids, got a scalar");
    expect_error(BASE "service:\n  pipelines:\n    profiles:\n      receivers: [[otlp]]\n"
                      "      exporters: [debug]\n",
                 "t.yaml:9:19: error: service.pipelines.profiles.receivers: expected a "
                 "receiver id, got list");
}

/* ---- connectors ---- */

/* Lines:                                                   1 */
#define CONN_HEAD                                                                          \
    "receivers:\n"                                           /* 1 */                        \
    "  otlp:\n"                                              /* 2 */                        \
    "    protocols: {http: }\n"                              /* 3 */                        \
    "exporters:\n"                                           /* 4 */                        \
    "  debug/a:\n"                                           /* 5 */                        \
    "  debug/b:\n"                                           /* 6 */                        \
    "connectors:\n"                                          /* 7 */                        \
    "  forward:\n"                                           /* 8 */                        \
    "  routing:\n"                                           /* 9 */                        \
    "    default_pipelines: [profiles/b]\n"                  /* 10 */                       \
    "    routes:\n"                                          /* 11 */                       \
    "      - match: {resource_attribute: service.name, value: x}\n" /* 12 */                \
    "        pipelines: [profiles/a]\n"                      /* 13 */                       \
    "service:\n"                                             /* 14 */                       \
    "  pipelines:\n"                                         /* 15 */                       \
    "    profiles/in:\n"                                     /* 16 */                       \
    "      receivers: [otlp]\n"                              /* 17 */                       \
    "      exporters: [routing, forward]\n"                  /* 18 */

static const char conn_ok[] = CONN_HEAD
    "    profiles/a:\n"                                      /* 19 */
    "      receivers: [routing, forward]\n"                  /* 20 */
    "      exporters: [debug/a]\n"                           /* 21 */
    "    profiles/b:\n"                                      /* 22 */
    "      receivers: [routing]\n"                           /* 23 */
    "      exporters: [debug/b]\n";                          /* 24 */

static void test_connectors_ok(void **state)
{
    struct fg_config *cfg = NULL;
    struct fg_diag d;
    int rc = load(conn_ok, &cfg, &d);
    if (rc)
        fail_msg("%s", diag_text(&d));
    assert_int_equal(d.errors + d.warnings, 0);
    assert_int_equal(cfg->n_components[FG_KIND_CONNECTOR], 2);
    const struct fg_config_component *r = fg_config_find(cfg, FG_KIND_CONNECTOR, "routing");
    assert_non_null(r);
    assert_string_equal(r->factory->type, "routing");
    assert_int_equal(r->line, 9);
    assert_null(fg_config_find(cfg, FG_KIND_EXPORTER, "routing"));
    assert_int_equal(cfg->n_pipelines, 3);
    assert_string_equal(cfg->pipelines[0].exporters[0], "routing");
    assert_string_equal(cfg->pipelines[0].exporters[1], "forward");
    assert_string_equal(cfg->pipelines[1].receivers[1], "forward");
    const struct fg_strlist *def = field(r, "default_pipelines");
    assert_int_equal(def->n, 1);
    assert_string_equal(def->items[0], "profiles/b");
    fg_config_free(cfg);
    fg_diag_free(&d);
}

static void test_connector_pipeline_refs(void **state)
{
    /* a route naming a pipeline that does not exist */
    expect_error(CONN_HEAD "    profiles/a:\n      receivers: [routing, forward]\n"
                           "      exporters: [debug/a]\n",
                 "t.yaml:10:25: error: connectors.routing.default_pipelines: pipeline "
                 "\"profiles/b\" is not defined in service.pipelines");
    /* a pipeline that exists but is not fed by the connector */
    expect_error(CONN_HEAD "    profiles/a:\n      receivers: [routing, forward]\n"
                           "      exporters: [debug/a]\n"
                           "    profiles/b:\n      receivers: [otlp]\n"
                           "      exporters: [debug/b]\n",
                 "t.yaml:10:25: error: connectors.routing.default_pipelines: pipeline "
                 "\"profiles/b\" does not list connector \"routing\" among its receivers");
    /* the position is the list item's, also inside a route */
    struct fg_config *cfg = (struct fg_config *)1;
    struct fg_diag d;
    char yaml[2048];
    snprintf(yaml, sizeof(yaml), "%s", conn_ok);
    char *at = strstr(yaml, "pipelines: [profiles/a]");
    assert_non_null(at);
    memcpy(at + strlen("pipelines: [profiles/"), "z", 1);
    assert_int_equal(load(yaml, &cfg, &d), FG_EINVAL);
    assert_int_equal(d.errors, 1);
    assert_diag(&d, "t.yaml:13:21: error: connectors.routing.routes[0].pipelines: pipeline "
                    "\"profiles/z\" is not defined in service.pipelines");
    fg_diag_free(&d);
    /* a malformed pipeline id is caught by the option check */
    snprintf(yaml, sizeof(yaml), "%s", conn_ok);
    at = strstr(yaml, "[profiles/b]");
    memcpy(at + 1, "traces/b  ", 10);
    expect_error(yaml, "t.yaml:10:25: error: connectors.routing.default_pipelines: invalid "
                       "pipeline id \"traces/b\" (expected profiles or profiles/NAME)");
}

static void test_connector_route_checks(void **state)
{
#define ROUTING(body)                                                                       \
    "receivers:\n  otlp:\n    protocols: {http: }\nexporters:\n  debug:\n"                   \
    "connectors:\n  routing:\n" body                                                        \
    "service:\n  pipelines:\n    profiles/in:\n      receivers: [otlp]\n"                    \
    "      exporters: [routing]\n    profiles/a:\n      receivers: [routing]\n"             \
    "      exporters: [debug]\n"
    expect_error(ROUTING("    routes:\n      - pipelines: [profiles/a]\n"),
                 "t.yaml:9:9: error: connectors.routing.routes[0]: match: needs "
                 "resource_attribute (with value or regex) or tenant");
    expect_error(ROUTING("    routes:\n      - match: {resource_attribute: k, value: v, regex: r}\n"
                         "        pipelines: [profiles/a]\n"),
                 "t.yaml:9:9: error: connectors.routing.routes[0]: match: resource_attribute "
                 "needs exactly one of value or regex");
    expect_error(ROUTING("    routes:\n      - match: {value: v}\n"
                         "        pipelines: [profiles/a]\n"),
                 "match: needs resource_attribute");
    expect_error(ROUTING("    routes:\n      - match: {tenant: t, regex: r}\n"
                         "        pipelines: [profiles/a]\n"),
                 "match: value and regex only mean something with resource_attribute");
    expect_error(ROUTING("    routes:\n      - match: {tenant: t}\n"),
                 "t.yaml:9:9: error: connectors.routing.routes[0]: pipelines: a route needs at "
                 "least one pipeline");
    expect_error(ROUTING("    routes:\n      - match: {resource_attribute: k, regex: 'a(b'}\n"
                         "        pipelines: [profiles/a]\n"),
                 "t.yaml:9:47: error: connectors.routing.routes[0].match.regex: invalid regex");
    expect_error(ROUTING("    error_mode: loud\n    default_pipelines: [profiles/a]\n"),
                 "t.yaml:8:17: error: connectors.routing.error_mode: invalid value \"loud\"");
    expect_error(ROUTING("    match_once: true\n"),
                 "t.yaml:7:3: error: connectors.routing: needs routes or default_pipelines");
    expect_error(ROUTING("    routes:\n      - match: {tenant: t}\n        pipelines: [profiles/a]\n"
                         "        via: x\n"),
                 "t.yaml:11:9: error: connectors.routing.routes[0].via: unknown key");
#undef ROUTING
}

static void test_connector_ends(void **state)
{
    /* exported to, but feeding nothing */
    expect_error("receivers:\n  otlp:\n    protocols: {http: }\nexporters:\n  debug:\n"
                 "connectors:\n  forward:\n"
                 "service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n"
                 "      exporters: [debug, forward]\n",
                 "t.yaml:12:26: error: service.pipelines.profiles.exporters: connector "
                 "\"forward\" is used as an exporter here but no pipeline lists it among its "
                 "receivers");
    /* a receiver that nothing exports to */
    expect_error("receivers:\n  otlp:\n    protocols: {http: }\nexporters:\n  debug:\n"
                 "connectors:\n  forward:\n"
                 "service:\n  pipelines:\n    profiles:\n      receivers: [otlp, forward]\n"
                 "      exporters: [debug]\n",
                 "t.yaml:11:25: error: service.pipelines.profiles.receivers: connector "
                 "\"forward\" is used as a receiver here but no pipeline lists it among its "
                 "exporters");
    /* a connector is not a processor */
    expect_error("receivers:\n  otlp:\n    protocols: {http: }\nexporters:\n  debug:\n"
                 "connectors:\n  forward:\n"
                 "service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n"
                 "      processors: [forward]\n      exporters: [debug]\n",
                 "t.yaml:12:20: error: service.pipelines.profiles.processors: processor "
                 "\"forward\" is not defined in processors");
    /* undefined ids mention connectors when there are some */
    expect_error("receivers:\n  otlp:\n    protocols: {http: }\nexporters:\n  debug:\n"
                 "connectors:\n  forward:\n"
                 "service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n"
                 "      exporters: [debug, forward/2]\n",
                 "t.yaml:12:26: error: service.pipelines.profiles.exporters: exporter "
                 "\"forward/2\" is not defined in exporters or connectors");
    /* defined but unused: a warning, like any component */
    struct fg_config *cfg = NULL;
    struct fg_diag d;
    int rc = load(BASE "connectors:\n  forward/spare:\n" PIPE, &cfg, &d);
    if (rc)
        fail_msg("%s", diag_text(&d));
    assert_int_equal(d.warnings, 1);
    assert_diag(&d, "t.yaml:7:3: warning: connectors.forward/spare: connector \"forward/spare\" "
                    "is not used in any pipeline");
    fg_config_free(cfg);
    fg_diag_free(&d);
}

static void test_connector_cycles(void **state)
{
    /* a -> forward/1 -> b -> forward/2 -> a; reported where the loop closes */
    const char *two =
        "receivers:\n  otlp:\n    protocols: {http: }\nexporters:\n  debug:\n" /* 1-5 */
        "connectors:\n  forward/1:\n  forward/2:\n"                            /* 6-8 */
        "service:\n  pipelines:\n"                                              /* 9-10 */
        "    profiles/a:\n      receivers: [otlp, forward/2]\n"                 /* 11-12 */
        "      exporters: [forward/1, debug]\n"                                  /* 13 */
        "    profiles/b:\n      receivers: [forward/1]\n"                       /* 14-15 */
        "      exporters: [forward/2]\n";                                        /* 16 */
    expect_error(two, "t.yaml:16:19: error: service.pipelines.profiles/b.exporters: connector "
                      "\"forward/2\" closes a cycle of pipelines (profiles/a -> forward/1 -> "
                      "profiles/b -> forward/2 -> profiles/a): data would loop forever");
    /* a pipeline feeding itself */
    expect_error("receivers:\n  otlp:\n    protocols: {http: }\nexporters:\n  debug:\n"
                 "connectors:\n  forward:\n"
                 "service:\n  pipelines:\n    profiles:\n      receivers: [otlp, forward]\n"
                 "      exporters: [debug, forward]\n",
                 "t.yaml:12:26: error: service.pipelines.profiles.exporters: connector "
                 "\"forward\" closes a cycle of pipelines (profiles -> forward -> profiles)");
    /* a cycle through routing, found although the route goes elsewhere: the graph is made of
     * the pipelines' lists, as in the Collector */
    expect_error("receivers:\n  otlp:\n    protocols: {http: }\nexporters:\n  debug:\n"
                 "connectors:\n  routing:\n    default_pipelines: [profiles/b]\n"
                 "service:\n  pipelines:\n"
                 "    profiles/a:\n      receivers: [otlp, routing]\n"
                 "      exporters: [routing]\n"
                 "    profiles/b:\n      receivers: [routing]\n      exporters: [debug]\n",
                 "closes a cycle of pipelines (profiles/a -> routing -> profiles/a)");
}

/* A chain of n pipelines joined by forward connectors, optionally closed into a ring: the
 * cycle check must not recurse per pipeline. */
static char *chain_yaml(int n, bool ring)
{
    struct fg_buf b;
    fg_buf_init(&b, 0);
    assert_int_equal(fg_buf_printf(&b, "receivers:\n  otlp:\n    protocols: {http: }\n"
                                       "exporters:\n  debug:\nconnectors:\n"), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(fg_buf_printf(&b, "  forward/%d:\n", i), 0);
    assert_int_equal(fg_buf_printf(&b, "service:\n  pipelines:\n"), 0);
    for (int i = 0; i < n; i++) {
        char recv[64];
        if (i == 0)
            snprintf(recv, sizeof(recv), ring ? "otlp, forward/%d" : "otlp", n - 1);
        else
            snprintf(recv, sizeof(recv), "forward/%d", i - 1);
        if (i < n - 1 || ring)
            assert_int_equal(fg_buf_printf(&b, "    profiles/%d:\n      receivers: [%s]\n"
                                               "      exporters: [forward/%d]\n",
                                           i, recv, i), 0);
        else
            assert_int_equal(fg_buf_printf(&b, "    profiles/%d:\n      receivers: [%s]\n"
                                               "      exporters: [debug]\n",
                                           i, recv), 0);
    }
    assert_int_equal(fg_buf_append(&b, "", 1), 0);
    return (char *)b.data;
}

static void test_connector_long_chain(void **state)
{
    char *yaml = chain_yaml(3000, false);
    struct fg_config *cfg = NULL;
    struct fg_diag d;
    /* the last connector is unused: one warning */
    int rc = load(yaml, &cfg, &d);
    if (rc)
        fail_msg("%.400s", diag_text(&d));
    assert_int_equal(cfg->n_pipelines, 3000);
    fg_config_free(cfg);
    fg_diag_free(&d);
    fg_free(yaml);

    yaml = chain_yaml(3000, true);
    cfg = (struct fg_config *)1;
    assert_int_equal(load(yaml, &cfg, &d), FG_EINVAL);
    assert_int_equal(d.errors, 1);
    assert_diag(&d, "service.pipelines.profiles/2999.exporters: connector \"forward/2999\" "
                    "closes a cycle of pipelines (profiles/0 -> forward/0 -> profiles/1 -> ");
    fg_diag_free(&d);
    fg_free(yaml);
}

static void test_connectors_alloc_failures(void **state)
{
    unsigned long n = walk_alloc_failures("t.yaml", conn_ok, true);
    assert_true(n > 50 && n < 100000);
}

static void test_alloc_failures_full(void **state)
{
    /* the bigger config touches maps, nested blocks, several pipelines */
    unsigned long n = walk_alloc_failures("t.yaml", full_config, false);
    assert_true(n > 50 && n < 100000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_config),
        cmocka_unit_test(test_default_config_alloc_failures),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range_and_enum),
        cmocka_unit_test(test_validate_hook),
        cmocka_unit_test(test_pipeline_errors),
        cmocka_unit_test(test_unused_is_warning),
        cmocka_unit_test(test_errors_collected),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_null_and_lists),
        cmocka_unit_test(test_alloc_failures_full),
        cmocka_unit_test(test_connectors_ok),
        cmocka_unit_test(test_connector_pipeline_refs),
        cmocka_unit_test(test_connector_route_checks),
        cmocka_unit_test(test_connector_ends),
        cmocka_unit_test(test_connector_cycles),
        cmocka_unit_test(test_connector_long_chain),
        cmocka_unit_test(test_connectors_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
