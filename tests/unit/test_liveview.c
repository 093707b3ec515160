/* Unit tests of the live view: the tap registry, the rolling aggregate (exact sums per
 * frame path against an independent count, window, ranges, bounds), JSON and query
 * helpers, and the extension started in a service (tap → ring → aggregate → HTTP). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fg_alloc.h"
#include "fg_config.h"
#include "fg_model.h"
#include "fg_service.h"
#include "fg_tap.h"
#include "liveview.h"
#include "liveview_agg.h"
#include "testutil.h"

#define SEC INT64_C(1000000000)

/* ---- building batches ---- */

static struct fg_profile *new_profile(struct fg_profiles *b, const char *service, const char *type,
                                      const char *unit)
{
    struct fg_keyvalue kv = {{"service.name", 12}, {.kind = FG_VALUE_STRING}};
    kv.value.u.s = (struct fg_bytes){service, (uint32_t)strlen(service)};
    struct fg_resource res = {.n_attrs = 1, .attrs = &kv};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(b, &res, "", 0);
    assert_non_null(rp);
    struct fg_scope sc = {0};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(b, rp, &sc, "", 0);
    assert_non_null(sp);
    struct fg_profile proto = {0};
    proto.sample_type.type = (uint32_t)fg_dict_string(b, type, strlen(type));
    proto.sample_type.unit = (uint32_t)fg_dict_string(b, unit, strlen(unit));
    struct fg_profile *p = fg_profiles_add_profile(b, sp, &proto);
    assert_non_null(p);
    return p;
}

/* frames: root first, separated by ';' ("" = empty stack); an entry "@0x..." is an
 * unsymbolized location in mapping /usr/lib/libx.so. */
static void add_sample(struct fg_profiles *b, struct fg_profile *p, const char *frames,
                       int64_t value, int n_timestamps)
{
    uint32_t locs[64];
    uint32_t n = 0;
    char copy[512];
    snprintf(copy, sizeof(copy), "%s", frames);
    char *save = NULL;
    for (char *f = strtok_r(copy, ";", &save); f; f = strtok_r(NULL, ";", &save)) {
        struct fg_location loc = {0};
        struct fg_line line = {0};
        if (f[0] == '@') {
            struct fg_mapping m = {0x1000, 0x9000, 0, 0, 0, NULL};
            m.filename = (uint32_t)fg_dict_string(b, "/usr/lib/libx.so", 16);
            loc.mapping = (uint32_t)fg_dict_mapping(b, &m);
            loc.address = strtoull(f + 1, NULL, 16);
        } else {
            struct fg_function fn = {0};
            fn.name = (uint32_t)fg_dict_string(b, f, strlen(f));
            line.function = (uint32_t)fg_dict_function(b, &fn);
            loc.n_lines = 1;
            loc.lines = &line;
        }
        int32_t li = fg_dict_location(b, &loc);
        assert_true(li > 0);
        locs[n++] = (uint32_t)li;
    }
    /* the model keeps stacks leaf first */
    uint32_t leaf_first[64];
    for (uint32_t i = 0; i < n; i++)
        leaf_first[i] = locs[n - 1 - i];
    struct fg_stack st = {n, leaf_first};
    int32_t si = n ? fg_dict_stack(b, &st) : 0;
    assert_true(si >= 0);
    uint64_t ts[8] = {0};
    struct fg_sample s = {0};
    s.stack = (uint32_t)si;
    if (n_timestamps) {
        s.n_timestamps = (uint32_t)n_timestamps;
        s.timestamps = ts;
    } else {
        s.n_values = 1;
        s.values = &value;
    }
    assert_int_equal(fg_profiles_add_sample(b, p, &s), 0);
}

/* ---- an independent count: every prefix path of every sample, summed ---- */

struct expect {
    char path[512];
    int64_t value;
};

static void expect_add(struct expect *e, size_t *n, const char *frames, int64_t v)
{
    char path[512] = "all";
    char copy[512];
    snprintf(copy, sizeof(copy), "%s", frames);
    char *save = NULL;
    for (char *f = strtok_r(copy, ";", &save);; f = strtok_r(NULL, ";", &save)) {
        size_t i = 0;
        while (i < *n && strcmp(e[i].path, path) != 0)
            i++;
        if (i == *n) {
            snprintf(e[i].path, sizeof(e[i].path), "%s", path);
            e[i].value = 0;
            (*n)++;
        }
        e[i].value += v;
        if (!f)
            break;
        size_t len = strlen(path);
        if (f[0] == '@')
            snprintf(path + len, sizeof(path) - len, ";libx.so+0x%s", f + 3);
        else
            snprintf(path + len, sizeof(path) - len, ";%s", f);
    }
}

/* A minimal reader of the tree JSON: walks {"name":..,"value":..} nesting and records each
 * node's path. The tree JSON has no strings with quotes or braces in these tests. */
static size_t collect_paths(const char *json, struct expect *got, size_t max)
{
    char stack[64][128];
    int depth = -1;
    size_t n = 0;
    for (const char *p = json; *p; p++) {
        if (strncmp(p, "{\"name\":\"", 9) == 0) {
            const char *s = p + 9, *q = strchr(s, '"');
            depth++;
            snprintf(stack[depth], sizeof(stack[depth]), "%.*s", (int)(q - s), s);
            const char *v = strstr(q, "\"value\":");
            assert_non_null(v);
            assert_true(n < max);
            got[n].path[0] = '\0';
            for (int d = 0; d <= depth; d++) {
                size_t len = strlen(got[n].path);
                snprintf(got[n].path + len, sizeof(got[n].path) - len, "%s%s", d ? ";" : "",
                         stack[d]);
            }
            got[n].value = strtoll(v + 8, NULL, 10);
            n++;
            p = q;
        } else if (strncmp(p, "]}", 2) == 0) {
            depth--;
            p++;
        }
    }
    return n;
}

static void assert_tree_equals(const char *json, struct expect *want, size_t n_want)
{
    struct expect got[256];
    size_t n_got = collect_paths(json, got, 256);
    assert_int_equal(n_got, n_want);
    for (size_t i = 0; i < n_want; i++) {
        size_t j = 0;
        while (j < n_got && strcmp(got[j].path, want[i].path) != 0)
            j++;
        if (j == n_got)
            fail_msg("path %s missing from %s", want[i].path, json);
        if (got[j].value != want[i].value)
            fail_msg("path %s: got %lld, want %lld", want[i].path, (long long)got[j].value,
                     (long long)want[i].value);
    }
}

static char *buf_str(struct fg_buf *b)
{
    fg_buf_append(b, "", 1);
    return (char *)b->data;
}

static struct fg_lv_agg *new_agg(int64_t window, size_t services, size_t stacks)
{
    struct fg_lv_agg_options o = {window, services, stacks};
    struct fg_lv_agg *a = NULL;
    assert_int_equal(fg_lv_agg_new(&o, &a), 0);
    return a;
}

static const struct {
    const char *frames;
    int64_t value;
} cases[] = {
    {"main;run;parse;lex", 5},  {"main;run;parse", 3},    {"main;run;eval;add", 7},
    {"main;run;eval;mul", 2},   {"main;gc", 11},          {"", 4},
    {"main;run;parse;lex", 1},  {"main;@0x1234", 6},      {"main;run;eval;add", 9},
    {"start;main;run", 13},
};

static void test_tree_sums_match_independent_count(void **state)
{
    struct fg_lv_agg *a = new_agg(60 * SEC, 10, 1000);
    struct expect want[64];
    size_t n_want = 0;
    int64_t now = 1000 * SEC;
    /* two batches, the second repeating stacks of the first in other dictionary order */
    for (int round = 0; round < 2; round++) {
        struct fg_profiles *b;
        assert_int_equal(fg_profiles_new(&b), 0);
        struct fg_profile *p = new_profile(b, "checkout", "cpu", "nanoseconds");
        struct fg_profile *q = new_profile(b, "checkout", "alloc", "bytes");
        for (size_t k = 0; k < FG_ARRAY_LEN(cases); k++) {
            size_t i = round ? FG_ARRAY_LEN(cases) - 1 - k : k;
            add_sample(b, p, cases[i].frames, cases[i].value * (round + 1), 0);
            expect_add(want, &n_want, cases[i].frames, cases[i].value * (round + 1));
            add_sample(b, q, cases[i].frames, 1000, 0);
        }
        /* timestamps-only samples weigh one per timestamp */
        add_sample(b, p, "main;gc", 0, 3);
        expect_add(want, &n_want, "main;gc", 3);
        assert_int_equal(fg_lv_agg_add(a, b, now + round * SEC), 0);
        fg_profiles_unref(b);
    }
    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_lv_agg_tree_json(a, "checkout", "cpu/nanoseconds", (struct fg_lv_range){0, 0}, &out), 0);
    assert_tree_equals(buf_str(&out), want, n_want);
    fg_buf_free(&out);

    /* folded: one line per stack with frames, values summed over both batches */
    fg_buf_init(&out, 0);
    assert_int_equal(fg_lv_agg_folded(a, "checkout", "cpu/nanoseconds", (struct fg_lv_range){0, 0}, &out), 0);
    char *folded = buf_str(&out);
    assert_non_null(strstr(folded, "main;run;parse;lex 18\n")); /* (5+1) * (1+2) */
    assert_non_null(strstr(folded, "main;libx.so+0x1234 18\n"));
    assert_non_null(strstr(folded, "main;gc 39\n"));            /* 11*3 + 3 + 3 */
    assert_null(strstr(folded, "\n 4"));                        /* the empty stack is left out */
    fg_buf_free(&out);

    fg_buf_init(&out, 0);
    assert_int_equal(fg_lv_agg_tree_json(a, "checkout", "nope/x", (struct fg_lv_range){0, 0}, &out),
                     FG_ENOTFOUND);
    fg_buf_free(&out);

    fg_buf_init(&out, 0);
    assert_int_equal(fg_lv_agg_services_json(a, &out), 0);
    char *js = buf_str(&out);
    assert_non_null(strstr(js, "{\"name\":\"checkout\",\"types\":[{\"type\":\"alloc/bytes\",\"value\":20000,"));
    assert_non_null(strstr(js, "\"type\":\"cpu/nanoseconds\""));
    fg_buf_free(&out);
    fg_lv_agg_free(a);
}

static void add_one(struct fg_lv_agg *a, const char *service, const char *frames, int64_t v,
                    int64_t now)
{
    struct fg_profiles *b;
    assert_int_equal(fg_profiles_new(&b), 0);
    struct fg_profile *p = new_profile(b, service, "samples", "count");
    add_sample(b, p, frames, v, 0);
    assert_int_equal(fg_lv_agg_add(a, b, now), 0);
    fg_profiles_unref(b);
}

static int64_t tree_total(struct fg_lv_agg *a, const char *service, struct fg_lv_range r)
{
    struct fg_buf out;
    fg_buf_init(&out, 0);
    int rc = fg_lv_agg_tree_json(a, service, "samples/count", r, &out);
    int64_t total = -1;
    if (rc == 0)
        total = strtoll(strstr(buf_str(&out), "\"total\":") + 8, NULL, 10);
    fg_buf_free(&out);
    return total;
}

static void test_window_and_ranges(void **state)
{
    /* 30 s window: one-second buckets */
    struct fg_lv_agg *a = new_agg(30 * SEC, 10, 1000);
    int64_t t0 = 5000 * SEC;
    add_one(a, "s", "a;b", 1, t0);
    add_one(a, "s", "a;c", 10, t0 + 10 * SEC);
    add_one(a, "s", "a;b", 100, t0 + 20 * SEC);
    fg_lv_agg_tick(a, t0 + 20 * SEC);
    assert_int_equal(tree_total(a, "s", (struct fg_lv_range){0, 0}), 111);
    /* the last 5 s: only the newest; 15..5 s ago: the middle one */
    assert_int_equal(tree_total(a, "s", (struct fg_lv_range){5, 0}), 100);
    assert_int_equal(tree_total(a, "s", (struct fg_lv_range){15, 5}), 10);
    assert_int_equal(tree_total(a, "s", (struct fg_lv_range){30, 15}), 1);
    /* the oldest falls out of the window */
    fg_lv_agg_tick(a, t0 + 31 * SEC);
    assert_int_equal(tree_total(a, "s", (struct fg_lv_range){0, 0}), 110);
    /* all of it falls out: the series goes too */
    fg_lv_agg_tick(a, t0 + 100 * SEC);
    assert_int_equal(tree_total(a, "s", (struct fg_lv_range){0, 0}), -1);
    struct fg_lv_agg_stats st;
    fg_lv_agg_stats(a, &st);
    assert_int_equal(st.series, 0);
    assert_int_equal(st.stacks, 0);
    fg_lv_agg_free(a);
}

static void test_max_stacks_drops_smallest(void **state)
{
    struct fg_lv_agg *a = new_agg(60 * SEC, 10, 20);
    int64_t now = 100 * SEC;
    char frames[64];
    for (int i = 1; i <= 20; i++) {
        snprintf(frames, sizeof(frames), "main;f%02d", i);
        add_one(a, "s", frames, i * 10, now);
    }
    struct fg_lv_agg_stats st;
    fg_lv_agg_stats(a, &st);
    assert_int_equal(st.evictions, 0);
    /* the 21st stack makes room by dropping the smallest tenth: f01 and f02 */
    add_one(a, "s", "main;new", 5, now);
    fg_lv_agg_stats(a, &st);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.evicted_stacks, 2);
    assert_int_equal(st.evicted_value, 30);
    assert_int_equal(st.stacks, 19);
    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_lv_agg_folded(a, "s", "samples/count", (struct fg_lv_range){0, 0}, &out), 0);
    char *f = buf_str(&out);
    assert_null(strstr(f, "main;f01 "));
    assert_null(strstr(f, "main;f02 "));
    assert_non_null(strstr(f, "main;f03 30\n"));
    assert_non_null(strstr(f, "main;new 5\n"));
    fg_buf_free(&out);
    fg_buf_init(&out, 0);
    assert_int_equal(fg_lv_agg_services_json(a, &out), 0);
    assert_non_null(strstr(buf_str(&out), "\"dropped_stacks\":2,\"dropped_value\":30"));
    fg_buf_free(&out);
    fg_lv_agg_free(a);
}

static void test_max_services_refuses_and_counts(void **state)
{
    struct fg_lv_agg *a = new_agg(60 * SEC, 2, 100);
    add_one(a, "one", "x", 1, SEC);
    add_one(a, "two", "x", 1, SEC);
    add_one(a, "three", "x", 1, SEC);
    struct fg_lv_agg_stats st;
    fg_lv_agg_stats(a, &st);
    assert_int_equal(st.series, 2);
    assert_int_equal(st.refused_series_samples, 1);
    assert_int_equal(tree_total(a, "three", (struct fg_lv_range){0, 0}), -1);
    assert_int_equal(tree_total(a, "two", (struct fg_lv_range){0, 0}), 1);
    fg_lv_agg_free(a);
}

static void test_frame_names_are_collected(void **state)
{
    /* many distinct names over time: the table is compacted once they leave the window */
    struct fg_lv_agg *a = new_agg(30 * SEC, 10, 100000);
    char frames[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(frames, sizeof(frames), "main;jit_%d", i);
        add_one(a, "s", frames, 1, 10 * SEC);
    }
    add_one(a, "s", "main;keep", 1, 50 * SEC); /* the first batch is out of the window now */
    fg_lv_agg_tick(a, 50 * SEC);
    add_one(a, "s", "main;after", 2, 51 * SEC);
    fg_lv_agg_tick(a, 52 * SEC);
    struct fg_lv_agg_stats st;
    fg_lv_agg_stats(a, &st);
    assert_true(st.frames <= 3);
    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_lv_agg_folded(a, "s", "samples/count", (struct fg_lv_range){0, 0}, &out), 0);
    char *f = buf_str(&out);
    assert_non_null(strstr(f, "main;keep 1\n"));
    assert_non_null(strstr(f, "main;after 2\n"));
    fg_buf_free(&out);
    fg_lv_agg_free(a);
}

/* Every allocation of add, tick and render failing in turn: an error comes back, nothing
 * leaks or crashes, and the aggregate stays usable (the last add without failure counts). */
static void alloc_walk(size_t max_stacks)
{
    struct fg_lv_agg *a = new_agg(30 * SEC, 10, max_stacks);
    struct fg_profiles *b;
    assert_int_equal(fg_profiles_new(&b), 0);
    struct fg_profile *p = new_profile(b, "alloc", "samples", "count");
    for (size_t i = 0; i < FG_ARRAY_LEN(cases); i++)
        add_sample(b, p, cases[i].frames, cases[i].value, 0);
    int failed = 0;
    for (unsigned long n = 1; n < 500; n++) {
        fg_alloc_fail_after(n);
        int rc = fg_lv_agg_add(a, b, (100 + (int64_t)n) * SEC); /* ticks too */
        struct fg_buf out;
        fg_buf_init(&out, 0);
        int rc2 = fg_lv_agg_tree_json(a, "alloc", "samples/count", (struct fg_lv_range){0, 0}, &out);
        int rc3 = fg_lv_agg_services_json(a, &out);
        fg_buf_free(&out);
        unsigned long made = fg_alloc_fail_after(0);
        assert_true(rc == 0 || rc == FG_ENOMEM);
        assert_true(rc2 == 0 || rc2 == FG_ENOMEM || rc2 == FG_ENOTFOUND);
        assert_true(rc3 == 0 || rc3 == FG_ENOMEM);
        failed += rc || rc2 || rc3;
        if (made < n)
            break; /* the whole walk ran without reaching the failing allocation */
    }
    assert_true(failed > 0);
    /* still usable: a fresh window holds exactly one clean add */
    fg_lv_agg_tick(a, 10000 * SEC);
    assert_int_equal(fg_lv_agg_add(a, b, 10000 * SEC), 0);
    int64_t total = 0;
    for (size_t i = 0; i < FG_ARRAY_LEN(cases); i++)
        total += cases[i].value;
    if (max_stacks >= 8) /* the 8 distinct stacks fit */
        assert_int_equal(tree_total(a, "alloc", (struct fg_lv_range){0, 0}), total);
    else
        assert_true(tree_total(a, "alloc", (struct fg_lv_range){0, 0}) < total);
    fg_profiles_unref(b);
    fg_lv_agg_free(a);
}

static void test_allocation_failures(void **state)
{
    for (size_t max = 8; max >= 6; max -= 2) /* 6: evictions run into failures too */
        alloc_walk(max);
}

static void test_json_str_and_query(void **state)
{
    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_lv_json_str(&out, "a\"b\\c\n\xc3\xa9\xff\xe2\x82", 11), 0);
    assert_string_equal(buf_str(&out), "\"a\\\"b\\\\c\\u000a\xc3\xa9\\ufffd\\ufffd\\ufffd\"");
    fg_buf_free(&out);

    char v[16];
    assert_true(fg_lv_query_get("service=a%2Fb+c&type=cpu%2fns", "service", v, sizeof(v)));
    assert_string_equal(v, "a/b c");
    assert_true(fg_lv_query_get("service=a%2Fb+c&type=cpu%2fns", "type", v, sizeof(v)));
    assert_string_equal(v, "cpu/ns");
    assert_false(fg_lv_query_get("services=x", "service", v, sizeof(v)));
    assert_true(fg_lv_query_get("x=%4", "x", v, sizeof(v)));
    assert_string_equal(v, "%4");
    assert_true(fg_lv_query_get("x=0123456789abcdefghij", "x", v, sizeof(v)));
    assert_int_equal(strlen(v), sizeof(v) - 1);
}

static int seen;
static void count_tap(void *ctx, const char *pipeline, struct fg_profiles *b)
{
    seen += strcmp(pipeline, ctx) == 0 ? (int)b->n_samples : 1000;
}

static void test_tap_registry(void **state)
{
    struct fg_profiles *b = tu_make_batch("svc", 3);
    seen = 0;
    fg_tap_publish("p", b); /* nobody listens */
    assert_int_equal(fg_tap_add(count_tap, "p"), 0);
    fg_tap_publish("p", b);
    assert_int_equal(seen, 3);
    fg_tap_remove(count_tap, "p");
    fg_tap_publish("p", b);
    assert_int_equal(seen, 3);
    char ctx[FG_TAP_MAX + 1];
    for (int i = 0; i < FG_TAP_MAX; i++)
        assert_int_equal(fg_tap_add(count_tap, &ctx[i]), 0);
    assert_int_equal(fg_tap_add(count_tap, &ctx[FG_TAP_MAX]), FG_EFULL);
    for (int i = 0; i < FG_TAP_MAX; i++)
        fg_tap_remove(count_tap, &ctx[i]);
    fg_profiles_unref(b);
}

/* The extension started by a service: a batch through a pipeline's fan-out reaches the
 * aggregate via the tap; shutdown lets go of every reference (ASan checks the leaks). */
static void test_extension_in_service(void **state)
{
    static const char yaml[] =
        "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\n"
        "exporters:\n  debug: {}\n"
        "extensions:\n  liveview:\n    endpoint: 127.0.0.1:0\n    window: 1m\n"
        "service:\n  extensions: [liveview]\n  pipelines:\n    profiles/main:\n"
        "      receivers: [otlp]\n      exporters: [debug]\n";
    struct fg_config *cfg = tu_config_load(yaml);
    struct fg_service *s = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_service_build(cfg, &s, &err), 0);
    assert_int_equal(fg_service_start(s, &err), 0);

    /* a second live view outside the service, so the test can reach its aggregate */
    const struct fg_config_component *cc = fg_config_find(cfg, FG_KIND_EXTENSION, "liveview");
    assert_non_null(cc);
    struct fg_create_args args = {.id = "liveview/t", .config = cc->config};
    struct fg_component *c = NULL;
    assert_int_equal(fg_liveview_factory.create(&args, &c, &err), 0);
    assert_int_equal(c->ops->start(c, &err), 0);
    assert_true(fg_lv_port(c) > 0);

    struct fg_profiles *b = tu_make_batch("tapped-svc", 7);
    fg_tap_publish("profiles/main", b);
    fg_profiles_unref(b);
    struct fg_lv_agg_stats st = {0};
    for (int i = 0; i < 500 && st.samples < 7; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        fg_lv_agg_stats(fg_lv_aggregate(c), &st);
    }
    assert_int_equal(st.batches, 1);
    assert_int_equal(st.samples, 7);

    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_lv_overview_json(c, &out), 0);
    char *js = buf_str(&out);
    /* the running service's pipeline (from its config) with the batch counted */
    assert_non_null(strstr(js, "{\"name\":\"profiles/main\",\"receivers\":[\"otlp\"],"
                               "\"processors\":[],\"exporters\":[\"debug\"],\"batches\":1,"
                               "\"samples\":7,\"in_view\":true}"));
    assert_non_null(strstr(js, "\"dropped_batches\":0"));
    fg_buf_free(&out);
    fg_buf_init(&out, 0);
    assert_int_equal(fg_lv_page_overview(c, &out), 0);
    assert_non_null(strstr(buf_str(&out), "<tr data-pipeline=\"profiles/main\">"));
    fg_buf_free(&out);

    /* batches published after shutdown are not taken */
    assert_int_equal(c->ops->shutdown(c, fg_now_ns() + 5 * SEC), 0);
    b = tu_make_batch("late", 2);
    fg_tap_publish("profiles/main", b);
    fg_profiles_unref(b);
    fg_lv_agg_stats(fg_lv_aggregate(c), &st);
    assert_int_equal(st.batches, 1);
    c->ops->destroy(c);

    fg_service_shutdown(s, 5 * SEC);
    fg_service_free(s);
    fg_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_sums_match_independent_count),
        cmocka_unit_test(test_window_and_ranges),
        cmocka_unit_test(test_max_stacks_drops_smallest),
        cmocka_unit_test(test_max_services_refuses_and_counts),
        cmocka_unit_test(test_frame_names_are_collected),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_json_str_and_query),
        cmocka_unit_test(test_tap_registry),
        cmocka_unit_test(test_extension_in_service),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
