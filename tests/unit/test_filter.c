/* Processor "filter": pprof's drop_frames/keep_frames pruning rule (google/pprof
 * profile/prune.go, including its documented [A,B,C,B,D] example, the first-user-frame guard,
 * inlined frames and function-name simplification), profile and sample filters, min_value,
 * and config errors with positions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procutil.h"

struct fg_bytes fg__pprof_simplify(struct fg_bytes name);

/* Runs one stack (root first) through a filter with the given YAML body; returns the
 * pruned stack text. */
static const char *prune_one(const char *body, const char *frames, char *buf, size_t size)
{
    struct pu_fixture f;
    pu_setup(&f, "filter", body);
    struct fg_profiles *in;
    assert_int_equal(fg_profiles_new(&in), 0);
    struct fg_profile *prof = pu_profile(in, "service.name=svc", "cpu", "");
    pu_sample(in, prof, frames, 10, "");
    struct fg_profiles *out = pu_run(&f, in);
    assert_non_null(out);
    const struct fg_profile *op = &out->resources[0].scopes[0].profiles[0];
    assert_int_equal(op->n_samples, 1);
    assert_int_equal(op->samples[0].values[0], 10); /* pruning never changes values */
    pu_stack_text(out, &op->samples[0], buf, size);
    pu_teardown(&f);
    return buf;
}

struct prune_case {
    const char *drop, *keep, *in, *want;
};

static void test_prune_rule(void **state)
{
    (void)state;
    static const struct prune_case cases[] = {
        /* prune.go's own example: sample [A,B,C,B,D] leaf first, D the root */
        {"A", NULL, "D;B;C;B;A", "D;B;C;B"},
        {"B", NULL, "D;B;C;B;A", "D"},
        {"C", NULL, "D;B;C;B;A", "D;B"},
        {"D", NULL, "D;B;C;B;A", "D;B;C;B;A"}, /* the root itself: no user frame above it */
        /* fully anchored: "work" does not match "worker" */
        {"work", NULL, "main;worker;leaf", "main;worker;leaf"},
        {"work.*", NULL, "main;worker;leaf", "main"},
        /* keep overrides drop */
        {"work.*", "worker", "main;worker;leaf", "main;worker;leaf"},
        {"work.*", "worker", "main;work2;leaf", "main"},
        /* frames toward the root before the first non-matching frame are never pruned */
        {"runtime\\..*", NULL, "runtime.goexit;runtime.main;main.main;work",
         "runtime.goexit;runtime.main;main.main;work"},
        {"main\\.main", NULL, "runtime.goexit;runtime.main;main.main;work",
         "runtime.goexit;runtime.main"},
        {"runtime\\..*", NULL, "runtime.goexit;main.main;runtime.mallocgc;memclr",
         "runtime.goexit;main.main"},
        /* inlined frames: "a+b" is one location, b inlined into a */
        {"b", NULL, "main;a+b;leaf", "main;a"},  /* inner line matched: callers kept */
        {"a", NULL, "main;a+b;leaf", "main"},    /* outermost line matched: location goes */
        {"b", NULL, "a+b;main", "a;main"},       /* trimmed even where nothing is cut */
        {"c", NULL, "main;a+b+c;x", "main;a+b"},
        /* names are simplified before matching */
        {"std::sort", NULL, "main;std::sort(int*, int*);cmp", "main"},
        {"ns::f", NULL, "main;.ns::f;g", "main"},
    };
    char buf[512], body[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct prune_case *c = &cases[i];
        if (c->keep)
            snprintf(body, sizeof(body), "    drop_frames: '%s'\n    keep_frames: '%s'\n", c->drop,
                     c->keep);
        else
            snprintf(body, sizeof(body), "    drop_frames: '%s'\n", c->drop);
        const char *got = prune_one(body, c->in, buf, sizeof(buf));
        if (strcmp(got, c->want) != 0)
            fail_msg("drop %s keep %s on %s: got %s, want %s", c->drop, c->keep ? c->keep : "-",
                     c->in, got, c->want);
    }
}

static void test_simplify(void **state)
{
    (void)state;
    struct {
        const char *in, *want;
    } cases[] = {
        {"main.main", "main.main"},
        {"foo(int)", "foo"},
        {".ppc_func(x)", "ppc_func"},
        {"(anonymous namespace)::bar(int)", "(anonymous namespace)::bar"},
        {"Foo::operator()(int) const", "Foo::operator()"},
        {"(x)", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fg_bytes got = fg__pprof_simplify((struct fg_bytes){cases[i].in, (uint32_t)strlen(cases[i].in)});
        if (got.len != strlen(cases[i].want) || memcmp(got.ptr, cases[i].want, got.len) != 0)
            fail_msg("%s: got %.*s, want %s", cases[i].in, (int)got.len, got.ptr, cases[i].want);
    }
}

static void test_profiles_and_samples(void **state)
{
    (void)state;
    struct pu_fixture f;
    pu_setup(&f, "filter",
             "    profiles:\n"
             "      exclude: {sample_types: [alloc_space]}\n"
             "      include: {match_type: regexp, resources: [{key: service.name, value: '^prod-'}]}\n"
             "    samples:\n"
             "      exclude: {attributes: [{key: thread.name, value: idle}]}\n"
             "    min_value: 5\n");
    struct fg_profiles *in;
    assert_int_equal(fg_profiles_new(&in), 0);
    struct fg_profile *cpu = pu_profile(in, "service.name=prod-api", "cpu", "");
    for (int i = 0; i < 10; i++)
        pu_sample(in, cpu, i % 2 ? "main;a" : "main;b", i, i % 3 == 0 ? "thread.name=idle" : "thread.name=w");
    struct fg_profile *alloc = pu_profile(in, "service.name=prod-api", "alloc_space", "");
    pu_sample(in, alloc, "main", 100, "");
    struct fg_profile *dev = pu_profile(in, "service.name=dev-api", "cpu", "");
    pu_sample(in, dev, "main", 100, "");
    /* a profile whose every sample goes is removed too */
    struct fg_profile *tiny = pu_profile(in, "service.name=prod-db", "cpu", "");
    pu_sample(in, tiny, "main", 1, "");
    char *before = tu_canon(in);
    fg_profiles_ref(in);
    struct fg_profiles *out = pu_run(&f, in);
    assert_non_null(out);
    assert_int_equal(out->n_resources, 1);
    const struct fg_scope_profiles *sp = &out->resources[0].scopes[0];
    assert_int_equal(sp->n_profiles, 1);
    const struct fg_profile *op = &sp->profiles[0];
    assert_memory_equal(fg_dict_get_string(out, op->sample_type.type).ptr, "cpu", 3);
    /* kept: i in 5..9 with i % 3 != 0 → 5, 7, 8 */
    assert_int_equal(op->n_samples, 3);
    assert_int_equal(fg_profile_total(op), 5 + 7 + 8);
    assert_int_equal(out->n_samples, 3);
    char *after = tu_canon(in);
    assert_string_equal(before, after);
    fg_free(before);
    fg_free(after);
    fg_profiles_unref(in);
    pu_teardown(&f);
}

static void test_nothing_left_and_nothing_changed(void **state)
{
    (void)state;
    struct pu_fixture f;
    pu_setup(&f, "filter", "    profiles:\n      exclude: {services: [svc]}\n");
    struct fg_profiles *in;
    assert_int_equal(fg_profiles_new(&in), 0);
    struct fg_profile *prof = pu_profile(in, "service.name=svc", "cpu", "");
    pu_sample(in, prof, "main", 1, "");
    assert_null(pu_run(&f, in));
    assert_int_equal(fg_profiles_new(&in), 0);
    prof = pu_profile(in, "service.name=other", "cpu", "");
    pu_sample(in, prof, "main", 1, "");
    assert_ptr_equal(pu_run(&f, in), in); /* untouched batches go on as they are */
    pu_teardown(&f);
}

static void test_timestamps_only_weight(void **state)
{
    (void)state;
    struct pu_fixture f;
    pu_setup(&f, "filter", "    min_value: 2\n");
    struct fg_profiles *in = tu_make_batch("svc", 6); /* values i+1 and 2(i+1) per sample */
    struct fg_profiles *out = pu_run(&f, in);
    const struct fg_profile *op = &out->resources[0].scopes[0].profiles[0];
    /* weights 3, 6, 9, ...: nothing below 2 */
    assert_int_equal(op->n_samples, 6);
    pu_teardown(&f);
    pu_setup(&f, "filter", "    min_value: 7\n");
    in = tu_make_batch("svc", 6);
    out = pu_run(&f, in);
    op = &out->resources[0].scopes[0].profiles[0];
    assert_int_equal(op->n_samples, 4); /* 9, 12, 15, 18 */
    pu_teardown(&f);
}

static void test_config_errors(void **state)
{
    (void)state;
    pu_expect_error("filter", "    drop_frames: 'runtime\\.(gc'\n",
                    "test.yaml:4:18:", "invalid regex");
    pu_expect_error("filter", "    keep_frames: main\n",
                    "test.yaml:", "only means something with drop_frames");
    pu_expect_error("filter", "    min_value: -1\n", "test.yaml:4:", "out of range");
    pu_expect_error("filter", "    samples:\n      exclude: {sample_types: [cpu]}\n",
                    "test.yaml:5:17:", "unknown key");
    pu_expect_error("filter", "    profiles:\n      exclude: {match_type: fuzzy}\n",
                    "test.yaml:5:", "invalid value \"fuzzy\"");
}

/* The real binary's `validate` reports each processor's config error at its value. */
static void test_flamegate_validate(void **state)
{
    (void)state;
    const char *bin = getenv("FG_BINARY");
    if (!bin || access(bin, X_OK) != 0) {
        print_message("skipped: FG_BINARY not set (run through ctest)\n");
        return;
    }
    char dir[256], path[512], cmd[1024];
    tu_tempdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/bad.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}\n"
          "processors:\n"
          "  filter:\n"
          "    drop_frames: 'runtime\\.(gc'\n"
          "  attributes:\n"
          "    actions: [{key: a, action: explode}]\n"
          "  relabel:\n"
          "    relabel_configs: [{source_labels: [a], regex: '[z-a]', target_label: b}]\n"
          "  resourcedetection:\n"
          "    detectors: [env, ec2]\n"
          "exporters: {debug: {}}\n"
          "service: {pipelines: {profiles: {receivers: [otlp], processors: [filter, "
          "attributes, relabel, resourcedetection], exporters: [debug]}}}\n",
          f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "'%s' validate --config '%s' 2>&1", bin, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[8192];
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    const char *want[] = {":4:18: error: processors.filter.drop_frames: invalid regex",
                          ":6:32: error: processors.attributes.actions[0].action: unknown action",
                          ":8:51: error: processors.relabel.relabel_configs[0].regex: invalid regex",
                          ":10:22: error: processors.resourcedetection.detectors: unknown detector"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(out, want[i]))
            fail_msg("missing \"%s\" in:\n%s", want[i], out);
    tu_rmtree(dir);
}

static struct fg_profiles *walk_batch(void)
{
    return tu_make_batch("svc", 12);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    pu_alloc_walk("filter",
                  "    drop_frames: 'helper|leaf_1'\n"
                  "    keep_frames: main\n"
                  "    min_value: 4\n"
                  "    samples: {exclude: {attributes: [{key: thread.name, value: worker-1}]}}\n",
                  walk_batch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prune_rule),
        cmocka_unit_test(test_simplify),
        cmocka_unit_test(test_profiles_and_samples),
        cmocka_unit_test(test_nothing_left_and_nothing_changed),
        cmocka_unit_test(test_timestamps_only_weight),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_flamegate_validate),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
