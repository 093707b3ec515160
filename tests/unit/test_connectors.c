/* Unit tests for the forward and routing connectors: which resources reach which pipeline
 * (checked sample for sample against batches built alone), shared versus copied batches,
 * subsets that carry only the dictionary entries they use, tenants, error modes, allocation
 * failures, and a service built with connectors starting downstream pipelines first. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_config.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_service.h"

/* A consumer that keeps what it gets (one reference each) and answers with rc. */
struct rec {
    struct fg_consumer c;
    struct fg_profiles *got[8];
    int n;
    int rc;
};

static int rec_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct rec *r = (struct rec *)self;
    if (r->rc) {
        fg_profiles_unref(batch);
        return fg_err_set(err, r->rc, "refused by the test");
    }
    assert_true(r->n < 8);
    r->got[r->n++] = batch;
    return 0;
}

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    r->c.consume = rec_consume;
}

static void rec_clear(struct rec *r)
{
    for (int i = 0; i < r->n; i++)
        fg_profiles_unref(r->got[i]);
    r->n = 0;
}

/* A batch of one resource per service; service i gets samples[i] samples. */
static struct fg_profiles *batch_of(const char *const *services, const int *samples, size_t n)
{
    struct fg_profiles *out;
    assert_int_equal(fg_profiles_new(&out), 0);
    for (size_t i = 0; i < n; i++) {
        struct fg_profiles *one = tu_make_batch(services[i], samples[i]);
        assert_non_null(one);
        struct fg_err err;
        assert_int_equal(fg_profiles_merge(out, one, &err), 0);
        fg_profiles_unref(one);
    }
    assert_int_equal(out->n_resources, n);
    return out;
}

/* The data of the given services alone, to compare a routed batch with. */
static char *canon_of(const char *const *services, const int *samples, size_t n)
{
    struct fg_profiles *b = batch_of(services, samples, n);
    char *c = tu_canon(b);
    fg_profiles_unref(b);
    return c;
}

static void assert_carries(const struct fg_profiles *got, const char *const *services,
                           const int *samples, size_t n)
{
    char *want = canon_of(services, samples, n), *have = tu_canon(got);
    assert_non_null(want);
    assert_non_null(have);
    if (strcmp(want, have) != 0)
        fail_msg("routed batch differs\nwant:\n%.1500s\ngot:\n%.1500s", want, have);
    fg_free(want);
    fg_free(have);
}

/* A string of the batch's dictionary equal to s? */
static bool has_string(const struct fg_profiles *p, const char *s)
{
    for (uint32_t i = 0; i < fg_dict_len(p, FG_TABLE_STRING); i++) {
        struct fg_bytes b = fg_dict_get_string(p, i);
        if (b.len == strlen(s) && memcmp(b.ptr, s, b.len) == 0)
            return true;
    }
    return false;
}

/* ---- a connector built from a configuration, its downstream pipelines recorded ---- */

struct rig {
    struct fg_config *cfg;
    struct fg_component *conn;
    const char *names[8];
    struct fg_consumer *heads[8];
    struct rec recs[8];
    size_t n;
};

/* Loads yaml (which must be valid) and creates connector id the way the service does: its
 * downstream pipelines in configuration order, each ending in a recorder. */
static int rig_make(struct rig *g, const char *yaml, const char *id, struct fg_err *err)
{
    memset(g, 0, sizeof(*g));
    g->cfg = tu_config_load(yaml);
    for (size_t p = 0; p < g->cfg->n_pipelines; p++) {
        const struct fg_config_pipeline *pl = &g->cfg->pipelines[p];
        for (size_t k = 0; k < pl->n_receivers; k++) {
            if (strcmp(pl->receivers[k], id) != 0)
                continue;
            assert_true(g->n < 8);
            rec_init(&g->recs[g->n]);
            g->names[g->n] = pl->name;
            g->heads[g->n] = &g->recs[g->n].c;
            g->n++;
        }
    }
    const struct fg_config_component *cc = fg_config_find(g->cfg, FG_KIND_CONNECTOR, id);
    assert_non_null(cc);
    struct fg_create_args args = {.id = id,
                                  .config = cc->config,
                                  .pipelines = g->names,
                                  .pipeline_heads = g->heads,
                                  .n_pipelines = g->n};
    int rc = cc->factory->create(&args, &g->conn, err);
    if (rc == 0) {
        g->conn->factory = cc->factory;
        snprintf(g->conn->id, sizeof(g->conn->id), "%s", id);
    }
    return rc;
}

static void rig_init(struct rig *g, const char *yaml, const char *id)
{
    struct fg_err err = {{0}};
    if (rig_make(g, yaml, id, &err) != 0)
        fail_msg("create %s: %s", id, err.msg);
}

static struct rec *rig_rec(struct rig *g, const char *pipeline)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->names[i], pipeline) == 0)
            return &g->recs[i];
    fail_msg("no pipeline %s downstream", pipeline);
    return NULL;
}

static int rig_send(struct rig *g, struct fg_profiles *batch, struct fg_err *err)
{
    return fg_consume(&g->conn->consumer, batch, err);
}

static void rig_clear(struct rig *g)
{
    for (size_t i = 0; i < g->n; i++)
        rec_clear(&g->recs[i]);
}

static void rig_free(struct rig *g)
{
    rig_clear(g);
    if (g->conn) {
        g->conn->ops->shutdown(g->conn, 0);
        g->conn->ops->destroy(g->conn);
    }
    fg_config_free(g->cfg);
}

/* A routing connector "routing" with downstream pipelines a, b and c (in that order),
 * configured by body. */
static char *routing_yaml(const char *body)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "receivers:\n  otlp:\n    protocols: {http: }\n"
             "exporters:\n  debug:\n"
             "connectors:\n  routing:\n%s"
             "service:\n  pipelines:\n"
             "    profiles/in:\n      receivers: [otlp]\n      exporters: [routing]\n"
             "    profiles/a:\n      receivers: [routing]\n      exporters: [debug]\n"
             "    profiles/b:\n      receivers: [routing]\n      exporters: [debug]\n"
             "    profiles/c:\n      receivers: [routing]\n      exporters: [debug]\n",
             body);
    return buf;
}

static const char *const SVC[] = {"svc-a", "svc-b", "svc-c", "other"};
/* Different sample counts give different stacks (leaf_0..leaf_2), so a subset's dictionary
 * can be seen to lack what only the others used. */
static const int SAMPLES[] = {1, 3, 2, 2};

/* svc-a to profiles/a, svc-b to profiles/b, the rest to profiles/c. */
static const char ROUTES_BY_SERVICE[] =
    "    default_pipelines: [profiles/c]\n"
    "    routes:\n"
    "      - match: {resource_attribute: service.name, value: svc-a}\n"
    "        pipelines: [profiles/a]\n"
    "      - match: {resource_attribute: service.name, value: svc-b}\n"
    "        pipelines: [profiles/b]\n";

static void test_route_by_value_and_default(void **state)
{
    struct rig g;
    rig_init(&g, routing_yaml(ROUTES_BY_SERVICE), "routing");
    struct fg_profiles *in = batch_of(SVC, SAMPLES, 4);
    struct fg_err err = {{0}};
    assert_int_equal(rig_send(&g, in, &err), 0);
    struct rec *a = rig_rec(&g, "profiles/a"), *b = rig_rec(&g, "profiles/b"),
               *c = rig_rec(&g, "profiles/c");
    assert_int_equal(a->n, 1);
    assert_int_equal(b->n, 1);
    assert_int_equal(c->n, 1);
    assert_carries(a->got[0], SVC, SAMPLES, 1);
    assert_carries(b->got[0], SVC + 1, SAMPLES + 1, 1);
    assert_carries(c->got[0], SVC + 2, SAMPLES + 2, 2);
    assert_int_equal(a->got[0]->n_samples + b->got[0]->n_samples + c->got[0]->n_samples,
                     1 + 3 + 2 + 2);
    /* a's copy holds only what svc-a's one sample uses */
    assert_true(has_string(a->got[0], "leaf_0"));
    assert_false(has_string(a->got[0], "leaf_1"));
    assert_true(has_string(b->got[0], "leaf_2"));
    rig_free(&g);
}

static void test_route_by_regex_and_int(void **state)
{
    struct rig g;
    rig_init(&g, routing_yaml("    routes:\n"
                              "      - match: {resource_attribute: service.name, "
                              "regex: '^svc-[ab]$'}\n"
                              "        pipelines: [profiles/a]\n"
                              "      - match: {resource_attribute: service.name, regex: '-c'}\n"
                              "        pipelines: [profiles/b]\n"
                              "      - match: {resource_attribute: host.cores, value: '8'}\n"
                              "        pipelines: [profiles/c]\n"),
             "routing");
    struct fg_err err = {{0}};
    struct fg_profiles *in = batch_of(SVC, SAMPLES, 4);
    assert_int_equal(rig_send(&g, fg_profiles_ref(in), &err), 0);
    struct rec *a = rig_rec(&g, "profiles/a"), *b = rig_rec(&g, "profiles/b"),
               *c = rig_rec(&g, "profiles/c");
    assert_int_equal(a->n, 1);
    assert_carries(a->got[0], SVC, SAMPLES, 2);
    /* unanchored: "svc-c" contains "-c" */
    assert_int_equal(b->n, 1);
    assert_carries(b->got[0], SVC + 2, SAMPLES + 2, 1);
    /* every resource has host.cores = 8 (an int, compared by its text): c gets the input
     * batch itself, shared, not a copy */
    assert_int_equal(c->n, 1);
    assert_ptr_equal(c->got[0], in);
    fg_profiles_unref(in);
    rig_free(&g);
}

static void test_route_by_tenant(void **state)
{
    struct rig g;
    rig_init(&g, routing_yaml("    default_pipelines: [profiles/c]\n"
                              "    routes:\n"
                              "      - match: {tenant: acme}\n"
                              "        pipelines: [profiles/a]\n"
                              "      - match: {tenant: acme, resource_attribute: service.name, "
                              "value: svc-b}\n"
                              "        pipelines: [profiles/b]\n"),
             "routing");
    struct fg_err err = {{0}};
    struct fg_profiles *in = batch_of(SVC, SAMPLES, 4);
    snprintf(in->tenant, sizeof(in->tenant), "acme");
    assert_int_equal(rig_send(&g, fg_profiles_ref(in), &err), 0);
    struct rec *a = rig_rec(&g, "profiles/a"), *b = rig_rec(&g, "profiles/b"),
               *c = rig_rec(&g, "profiles/c");
    assert_int_equal(a->n, 1);
    assert_ptr_equal(a->got[0], in);
    assert_int_equal(b->n, 1);
    assert_carries(b->got[0], SVC + 1, SAMPLES + 1, 1);
    assert_string_equal(b->got[0]->tenant, "acme"); /* the copy keeps the tenant */
    assert_int_equal(c->n, 0);
    rig_clear(&g);
    /* another tenant: nothing matches, all goes to the default */
    snprintf(in->tenant, sizeof(in->tenant), "globex");
    assert_int_equal(rig_send(&g, fg_profiles_ref(in), &err), 0);
    assert_int_equal(a->n + b->n, 0);
    assert_int_equal(c->n, 1);
    assert_ptr_equal(c->got[0], in);
    rig_clear(&g);
    /* no tenant at all */
    in->tenant[0] = '\0';
    assert_int_equal(rig_send(&g, in, &err), 0);
    assert_int_equal(a->n + b->n, 0);
    assert_int_equal(c->n, 1);
    rig_free(&g);
}

static void test_every_match_once_per_pipeline(void **state)
{
    const char *routes = "    routes:\n"
                         "      - match: {resource_attribute: service.name, regex: 'svc'}\n"
                         "        pipelines: [profiles/a, profiles/b]\n"
                         "      - match: {resource_attribute: service.name, value: svc-a}\n"
                         "        pipelines: [profiles/a, profiles/c]\n";
    char body[1024];
    struct rig g;
    struct fg_err err = {{0}};
    /* every matching route counts, and a pipeline named by two of them gets a resource once */
    rig_init(&g, routing_yaml(routes), "routing");
    assert_int_equal(rig_send(&g, batch_of(SVC, SAMPLES, 4), &err), 0);
    struct rec *a = rig_rec(&g, "profiles/a"), *b = rig_rec(&g, "profiles/b"),
               *c = rig_rec(&g, "profiles/c");
    assert_int_equal(a->n, 1);
    assert_int_equal(b->n, 1);
    assert_carries(a->got[0], SVC, SAMPLES, 3);
    /* a and b get the same resources: one copy, shared */
    assert_ptr_equal(a->got[0], b->got[0]);
    assert_int_equal(c->n, 1);
    assert_carries(c->got[0], SVC, SAMPLES, 1);
    rig_free(&g);

    /* match_once: the first matching route wins */
    snprintf(body, sizeof(body), "    match_once: true\n%s", routes);
    rig_init(&g, routing_yaml(body), "routing");
    assert_int_equal(rig_send(&g, batch_of(SVC, SAMPLES, 4), &err), 0);
    a = rig_rec(&g, "profiles/a");
    c = rig_rec(&g, "profiles/c");
    assert_int_equal(a->n, 1);
    assert_carries(a->got[0], SVC, SAMPLES, 3);
    assert_int_equal(c->n, 0);
    rig_free(&g);
}

static void test_unrouted_dropped(void **state)
{
    struct rig g;
    rig_init(&g, routing_yaml("    routes:\n"
                              "      - match: {resource_attribute: service.name, value: svc-b}\n"
                              "        pipelines: [profiles/b]\n"
                              "      - match: {resource_attribute: no.such.key, regex: '.*'}\n"
                              "        pipelines: [profiles/c]\n"),
             "routing");
    struct fg_err err = {{0}};
    assert_int_equal(rig_send(&g, batch_of(SVC, SAMPLES, 4), &err), 0);
    assert_int_equal(rig_rec(&g, "profiles/a")->n, 0);
    assert_int_equal(rig_rec(&g, "profiles/c")->n, 0); /* a missing key matches nothing */
    struct rec *b = rig_rec(&g, "profiles/b");
    assert_int_equal(b->n, 1);
    assert_carries(b->got[0], SVC + 1, SAMPLES + 1, 1);
    rig_clear(&g);
    /* an empty batch goes nowhere */
    struct fg_profiles *empty;
    assert_int_equal(fg_profiles_new(&empty), 0);
    assert_int_equal(rig_send(&g, empty, &err), 0);
    assert_int_equal(rig_rec(&g, "profiles/b")->n, 0);
    rig_free(&g);
}

static void test_error_modes(void **state)
{
    static const char *const modes[] = {"propagate", "ignore", "silent"};
    for (size_t m = 0; m < 3; m++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "    error_mode: %s\n    default_pipelines: [profiles/a, profiles/b, "
                 "profiles/c]\n",
                 modes[m]);
        struct rig g;
        rig_init(&g, routing_yaml(body), "routing");
        rig_rec(&g, "profiles/a")->rc = FG_EFULL;
        struct fg_err err = {{0}};
        int rc = rig_send(&g, batch_of(SVC, SAMPLES, 2), &err);
        /* the refusal does not keep the data from the others */
        assert_int_equal(rig_rec(&g, "profiles/b")->n, 1);
        assert_int_equal(rig_rec(&g, "profiles/c")->n, 1);
        if (m == 0) {
            assert_int_equal(rc, FG_EFULL);
            assert_non_null(strstr(err.msg, "refused by the test"));
        } else {
            assert_int_equal(rc, 0);
        }
        rig_free(&g);
    }
}

static void test_forward(void **state)
{
    const char *yaml = "receivers:\n  otlp:\n    protocols: {http: }\n"
                       "exporters:\n  debug:\n"
                       "connectors:\n  forward:\n"
                       "service:\n  pipelines:\n"
                       "    profiles/in:\n      receivers: [otlp]\n      exporters: [forward]\n"
                       "    profiles/a:\n      receivers: [forward]\n      exporters: [debug]\n"
                       "    profiles/b:\n      receivers: [otlp, forward]\n"
                       "      exporters: [debug]\n";
    struct rig g;
    rig_init(&g, yaml, "forward");
    assert_int_equal(g.n, 2);
    struct fg_profiles *in = batch_of(SVC, SAMPLES, 4);
    struct fg_err err = {{0}};
    assert_int_equal(rig_send(&g, fg_profiles_ref(in), &err), 0);
    struct rec *a = rig_rec(&g, "profiles/a"), *b = rig_rec(&g, "profiles/b");
    assert_int_equal(a->n, 1);
    assert_int_equal(b->n, 1);
    /* the same batch, shared read-only: one reference each plus ours */
    assert_ptr_equal(a->got[0], in);
    assert_ptr_equal(b->got[0], in);
    assert_int_equal(in->refcount, 3);
    rig_clear(&g);
    assert_int_equal(in->refcount, 1);
    /* b refuses: a still gets it, the error goes back */
    b->rc = FG_ERETRYABLE;
    assert_int_equal(rig_send(&g, in, &err), FG_ERETRYABLE);
    assert_int_equal(a->n, 1);
    rig_free(&g);
}

static void test_create_rejects_foreign_pipeline(void **state)
{
    /* a hand-built set of downstream pipelines that lacks a routed one: create refuses */
    struct rig g;
    struct fg_err err = {{0}};
    const char *yaml = routing_yaml("    default_pipelines: [profiles/c]\n");
    assert_int_equal(rig_make(&g, yaml, "routing", &err), 0);
    rig_free(&g);
    memset(&g, 0, sizeof(g));
    g.cfg = tu_config_load(yaml);
    const struct fg_config_component *cc = fg_config_find(g.cfg, FG_KIND_CONNECTOR, "routing");
    struct rec r;
    rec_init(&r);
    const char *names[] = {"profiles/a"};
    struct fg_consumer *heads[] = {&r.c};
    struct fg_create_args args = {.id = "routing", .config = cc->config, .pipelines = names,
                                  .pipeline_heads = heads, .n_pipelines = 1};
    struct fg_component *c = NULL;
    assert_int_equal(cc->factory->create(&args, &c, &err), FG_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err.msg, "profiles/c"));
    fg_config_free(g.cfg);
}

static void test_routing_alloc_failures(void **state)
{
    struct rig g;
    rig_init(&g, routing_yaml(ROUTES_BY_SERVICE), "routing");
    unsigned long n;
    for (n = 1; n < 100000; n++) {
        struct fg_profiles *in = batch_of(SVC, SAMPLES, 4);
        struct fg_err err = {{0}};
        fg_alloc_fail_after(n);
        int rc = rig_send(&g, in, &err);
        fg_alloc_fail_after(0);
        size_t delivered = 0;
        for (size_t i = 0; i < g.n; i++)
            delivered += (size_t)g.recs[i].n;
        rig_clear(&g);
        if (rc == 0) {
            assert_int_equal(delivered, 3);
            break;
        }
        /* all or nothing: a failed split sends no part of the batch */
        assert_int_equal(rc, FG_ENOMEM);
        assert_int_equal(delivered, 0);
    }
    assert_true(n > 3 && n < 100000);
    rig_free(&g);
}

/* ---- the service ---- */

static void test_service_start_order(void **state)
{
    /* in -> batch/in -> routing -> {a: batch/a, b} -> debug; b also gets everything through
     * forward from in. Start order must be downstream first. */
    const char *yaml =
        "receivers:\n  otlp:\n    protocols: {http: {endpoint: '127.0.0.1:0'}}\n"
        "processors:\n  batch/in:\n  batch/a:\n"
        "exporters:\n  debug:\n"
        "connectors:\n  forward:\n  routing:\n    default_pipelines: [profiles/a]\n"
        "service:\n  pipelines:\n"
        "    profiles/in:\n      receivers: [otlp]\n      processors: [batch/in]\n"
        "      exporters: [routing, forward]\n"
        "    profiles/a:\n      receivers: [routing]\n      processors: [batch/a]\n"
        "      exporters: [debug]\n"
        "    profiles/b:\n      receivers: [forward]\n      exporters: [debug]\n";
    struct fg_config *cfg = tu_config_load(yaml);
    struct fg_service *s = NULL;
    struct fg_err err = {{0}};
    if (fg_service_build(cfg, &s, &err) != 0)
        fail_msg("build: %s", err.msg);

    /* the service logs each start at debug level: capture stderr around the start */
    struct tu_capture cap;
    tu_capture_stderr(&cap);
    fg_log_set_level(FG_LOG_DEBUG);
    int rc = fg_service_start(s, &err);
    fg_log_set_level(FG_LOG_WARN);
    char *log = tu_capture_end(&cap, NULL);
    if (rc)
        fail_msg("start: %s", err.msg);
    /* each pair: the first starts before the second */
    static const char *const before[][2] = {
        {"exporter debug", "processor batch/a"},
        {"processor batch/a", "connector routing"}, /* a connector after what it feeds */
        {"connector routing", "processor batch/in"}, /* and before what feeds it */
        {"connector forward", "processor batch/in"},
        {"processor batch/in", "receiver otlp"},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(before); i++) {
        char x[64], y[64];
        snprintf(x, sizeof(x), "started %s\n", before[i][0]);
        snprintf(y, sizeof(y), "started %s\n", before[i][1]);
        const char *at_x = strstr(log, x), *at_y = strstr(log, y);
        if (!at_x || !at_y || at_x > at_y)
            fail_msg("want \"%s\" before \"%s\" in:\n%s", x, y, log);
    }
    fg_free(log);
    fg_service_stop_intake(s, 1000000000);
    fg_service_shutdown(s, 1000000000);
    fg_service_free(s);
    fg_config_free(cfg);
}

static void test_service_build_alloc_failures(void **state)
{
    const char *yaml =
        "receivers:\n  otlp:\n    protocols: {http: {endpoint: '127.0.0.1:0'}}\n"
        "processors:\n  batch:\n"
        "exporters:\n  debug:\n"
        "connectors:\n  forward:\n  routing:\n    default_pipelines: [profiles/a]\n"
        "    routes:\n      - match: {tenant: t}\n        pipelines: [profiles/b]\n"
        "service:\n  pipelines:\n"
        "    profiles/in:\n      receivers: [otlp]\n      exporters: [routing, forward]\n"
        "    profiles/a:\n      receivers: [routing]\n      processors: [batch]\n"
        "      exporters: [debug]\n"
        "    profiles/b:\n      receivers: [routing, forward]\n      exporters: [debug]\n";
    struct fg_config *cfg = tu_config_load(yaml);
    unsigned long n;
    for (n = 1; n < 100000; n++) {
        struct fg_service *s = NULL;
        struct fg_err err = {{0}};
        fg_alloc_fail_after(n);
        int rc = fg_service_build(cfg, &s, &err);
        fg_alloc_fail_after(0);
        if (rc == 0) {
            fg_service_free(s);
            break;
        }
        assert_int_equal(rc, FG_ENOMEM);
    }
    assert_true(n > 10 && n < 100000);
    fg_config_free(cfg);
}

/* A chain of pipelines listed upstream first, joined by forward connectors: the service
 * orders it downstream first without recursion (2000 deep), every pipeline built once. */
static void test_service_long_chain(void **state)
{
    const int n = 2000;
    struct fg_buf b;
    fg_buf_init(&b, 0);
    assert_int_equal(fg_buf_printf(&b, "receivers:\n  otlp:\n    protocols: {http: {endpoint: "
                                       "'127.0.0.1:0'}}\nexporters:\n  debug:\nconnectors:\n"),
                     0);
    for (int i = 0; i < n - 1; i++)
        assert_int_equal(fg_buf_printf(&b, "  forward/%d:\n", i), 0);
    assert_int_equal(fg_buf_printf(&b, "service:\n  pipelines:\n"), 0);
    for (int i = 0; i < n; i++) {
        char recv[32], exp[32];
        if (i == 0)
            snprintf(recv, sizeof(recv), "otlp");
        else
            snprintf(recv, sizeof(recv), "forward/%d", i - 1);
        if (i < n - 1)
            snprintf(exp, sizeof(exp), "forward/%d", i);
        else
            snprintf(exp, sizeof(exp), "debug");
        assert_int_equal(fg_buf_printf(&b, "    profiles/%d:\n      receivers: [%s]\n"
                                           "      exporters: [%s]\n",
                                       i, recv, exp),
                         0);
    }
    struct fg_config *cfg = NULL;
    struct fg_diag d;
    fg_diag_init(&d);
    if (fg_config_load_string("t.yaml", (const char *)b.data, b.len, &cfg, &d) != 0)
        fail_msg("%.300s", (char *)d.text.data);
    fg_diag_free(&d);
    fg_buf_free(&b);
    struct fg_service *s = NULL;
    struct fg_err err = {{0}};
    if (fg_service_build(cfg, &s, &err) != 0)
        fail_msg("build: %s", err.msg);
    fg_service_free(s);
    fg_config_free(cfg);
}

int main(void)
{
    fg_log_set_level(FG_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_by_value_and_default),
        cmocka_unit_test(test_route_by_regex_and_int),
        cmocka_unit_test(test_route_by_tenant),
        cmocka_unit_test(test_every_match_once_per_pipeline),
        cmocka_unit_test(test_unrouted_dropped),
        cmocka_unit_test(test_error_modes),
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_create_rejects_foreign_pipeline),
        cmocka_unit_test(test_routing_alloc_failures),
        cmocka_unit_test(test_service_start_order),
        cmocka_unit_test(test_service_build_alloc_failures),
        cmocka_unit_test(test_service_long_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
