/* Processor "relabel": the cases of Prometheus's own relabel tests (model/relabel/
 * relabel_test.go) on resource attributes, sample-scope relabeling inside a profile, the
 * RE2-on-POSIX regex layer, and config errors with positions. */
#include <stdio.h>
#include <string.h>

#include "procutil.h"

#include "fg_proc_regex.h"

uint64_t fg__relabel_hashmod(const char *s, size_t len, uint64_t m);

struct rl_case {
    const char *name;
    const char *input;  /* "k=v,..." or "|k=v|..." */
    const char *rules;  /* YAML list items, indented for relabel_configs */
    const char *output; /* NULL = the resource is dropped */
};

/* The config loader expands ${...} like the Collector, so ${1} is written $${1}. */
static const struct rl_case cases[] = {
    {"replace with ${1}", "a=foo,b=bar,c=baz",
     "      - {source_labels: [a], regex: 'f(.*)', target_label: d, separator: ';', "
     "replacement: 'ch$${1}-ch$${1}', action: replace}\n",
     "a=foo,b=bar,c=baz,d=choo-choo"},
    {"two replaces, joined sources", "a=foo,b=bar,c=baz",
     "      - {source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, separator: ';', "
     "replacement: 'b$${1}$${2}m', action: replace}\n"
     "      - {source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, "
     "separator: ';', replacement: '$1$2$2$3', action: replace}\n",
     "a=boobam,b=bar,c=baz,d=boooom"},
    {"drop stops the chain", "a=foo",
     "      - {source_labels: [a], regex: '.*o.*', action: drop}\n"
     "      - {source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch$1-ch$1'}\n",
     NULL},
    {"drop", "a=foo,b=bar", "      - {source_labels: [a], regex: '.*o.*', action: drop}\n", NULL},
    {"capture in the middle", "a=abc",
     "      - {source_labels: [a], regex: '.*(b).*', target_label: d, replacement: '$1'}\n",
     "a=abc,d=b"},
    {"drop without a match", "a=foo",
     "      - {source_labels: [a], regex: no-match, action: drop}\n", "a=foo"},
    {"drop regex is anchored", "a=foo",
     "      - {source_labels: [a], regex: 'f|o', action: drop}\n", "a=foo"},
    {"keep without a match", "a=foo",
     "      - {source_labels: [a], regex: no-match, action: keep}\n", NULL},
    {"keep with a match", "a=foo", "      - {source_labels: [a], regex: 'f.*', action: keep}\n",
     "a=foo"},
    {"no replacement without a match", "a=boo",
     "      - {source_labels: [a], regex: f, target_label: b, replacement: bar}\n", "a=boo"},
    {"hashmod", "a=foo,b=bar,c=baz",
     "      - {source_labels: [c], target_label: d, action: hashmod, modulus: 1000}\n",
     "a=foo,b=bar,c=baz,d=976"},
    {"hashmod of a value with a newline", "a=foo\nbar",
     "      - {source_labels: [a], target_label: b, action: hashmod, modulus: 1000}\n",
     "a=foo\nbar,b=734"},
    {"labelmap", "a=foo,b1=bar,b2=baz",
     "      - {regex: '(b.*)', replacement: 'bar_$${1}', action: labelmap}\n",
     "a=foo,b1=bar,b2=baz,bar_b1=bar,bar_b2=baz"},
    {"labelmap of meta labels", "a=foo,__meta_my_bar=aaa,__meta_my_baz=bbb,__meta_other=ccc",
     "      - {regex: '__meta_(my.*)', replacement: '$${1}', action: labelmap}\n",
     "a=foo,__meta_my_bar=aaa,__meta_my_baz=bbb,__meta_other=ccc,my_bar=aaa,my_baz=bbb"},
    {"target from a group", "a=some-name-value",
     "      - {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', action: replace, "
     "replacement: '$${2}', target_label: '$${1}'}\n",
     "a=some-name-value,name=value"},
    {"empty replacement deletes", "a=some-name-value",
     "      - {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', action: replace, "
     "replacement: '$${3}', target_label: '$${1}'}\n",
     "a=some-name-value"},
    {"empty target is skipped", "a=some-name-0",
     "      - {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', action: replace, "
     "replacement: '$${1}', target_label: '$${3}'}\n"
     "      - {source_labels: [a], regex: 'some-([^-]+)(-[^,]+)', action: replace, "
     "replacement: '$${1}', target_label: '$${3}'}\n",
     "a=some-name-0"},
    {"real-life tags", "|__meta_sd_tags=path:/secret,job:some-job,label:foo=bar",
     "      - {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)path:(/[^,]+).*', "
     "action: replace, replacement: '$${1}', target_label: __metrics_path__}\n"
     "      - {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)job:([^,]+).*', "
     "action: replace, replacement: '$${1}', target_label: job}\n"
     "      - {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', "
     "action: replace, replacement: '$${2}', target_label: '$${1}'}\n",
     "|__meta_sd_tags=path:/secret,job:some-job,label:foo=bar|__metrics_path__=/secret|"
     "job=some-job|foo=bar"},
    {"prometheus#12283", "__meta_kubernetes_pod_container_port_name=foo,"
                         "__meta_kubernetes_pod_annotation_XXX_metrics_port=9091",
     "      - {regex: '^__meta_kubernetes_pod_container_port_name$', action: labeldrop}\n"
     "      - {source_labels: [__meta_kubernetes_pod_annotation_XXX_metrics_port], "
     "regex: '(.+)', action: replace, replacement: metrics, "
     "target_label: __meta_kubernetes_pod_container_port_name}\n"
     "      - {source_labels: [__meta_kubernetes_pod_container_port_name], regex: '^metrics$', "
     "action: keep}\n",
     "__meta_kubernetes_pod_annotation_XXX_metrics_port=9091,"
     "__meta_kubernetes_pod_container_port_name=metrics"},
    {"labelkeep", "a=foo,b1=bar,b2=baz", "      - {regex: '(b.*)', action: labelkeep}\n",
     "b1=bar,b2=baz"},
    {"labeldrop", "a=foo,b1=bar,b2=baz", "      - {regex: '(b.*)', action: labeldrop}\n",
     "a=foo"},
    {"upper and lower case", "foo=bAr123Foo",
     "      - {source_labels: [foo], action: uppercase, target_label: foo_uppercase}\n"
     "      - {source_labels: [foo], action: lowercase, target_label: foo_lowercase}\n",
     "foo=bAr123Foo,foo_lowercase=bar123foo,foo_uppercase=BAR123FOO"},
    {"keepequal kept", "__tmp_port=1234,__port1=1234,__port2=5678",
     "      - {source_labels: [__tmp_port], action: keepequal, target_label: __port1}\n",
     "__tmp_port=1234,__port1=1234,__port2=5678"},
    {"dropequal dropped", "__tmp_port=1234,__port1=1234,__port2=5678",
     "      - {source_labels: [__tmp_port], action: dropequal, target_label: __port1}\n", NULL},
    {"dropequal kept", "__tmp_port=1234,__port1=1234,__port2=5678",
     "      - {source_labels: [__tmp_port], action: dropequal, target_label: __port2}\n",
     "__tmp_port=1234,__port1=1234,__port2=5678"},
    {"keepequal dropped", "__tmp_port=1234,__port1=1234,__port2=5678",
     "      - {source_labels: [__tmp_port], action: keepequal, target_label: __port2}\n", NULL},
    /* from the Prometheus configuration docs: default action replace, $1 default */
    {"defaults: replace with $1", "__address__=10.0.0.1:9100",
     "      - {source_labels: [__address__], regex: '([^:]+):\\d+', target_label: host}\n",
     "__address__=10.0.0.1:9100,host=10.0.0.1"},
};

static void test_prometheus_cases(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const struct rl_case *tc = &cases[c];
        char body[4096];
        snprintf(body, sizeof(body), "    scope: resource\n    relabel_configs:\n%s", tc->rules);
        struct pu_fixture f;
        pu_setup(&f, "relabel", body);
        struct fg_profiles *in;
        assert_int_equal(fg_profiles_new(&in), 0);
        struct fg_profile *prof = pu_profile(in, tc->input, "cpu", "");
        pu_sample(in, prof, "main", 1, "");
        struct fg_profiles *out = pu_run(&f, in);
        if (!tc->output) {
            /* the only resource dropped: nothing goes on */
            if (out)
                fail_msg("%s: expected a drop", tc->name);
            pu_teardown(&f);
            continue;
        }
        if (!out || out->n_resources != 1)
            fail_msg("%s: the resource was dropped", tc->name);
        char got[1024], want[1024];
        const struct fg_resource *res = &out->resources[0].resource;
        pu_kv_text(res->attrs, res->n_attrs, got, sizeof(got));
        struct fg_profiles *tmp;
        assert_int_equal(fg_profiles_new(&tmp), 0);
        struct fg_keyvalue kv[16];
        uint32_t n = pu_kvs(tmp, tc->output, kv, 16);
        pu_kv_text(kv, n, want, sizeof(want));
        fg_profiles_unref(tmp);
        if (strcmp(got, want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", tc->name, got, want);
        assert_int_equal(out->n_samples, 1);
        pu_teardown(&f);
    }
}

static void test_hashmod_md5(void **state)
{
    (void)state;
    /* md5("") = d41d8cd98f00b204e9800998ecf8427e: last 8 bytes e9800998ecf8427e */
    assert_true(fg__relabel_hashmod("", 0, UINT64_MAX) == 0xe9800998ecf8427eULL);
    /* md5("abc") = 900150983cd24fb0d6963f7d28e17f72 */
    assert_true(fg__relabel_hashmod("abc", 3, UINT64_MAX) == 0xd6963f7d28e17f72ULL);
    /* two blocks: 64 bytes of 'a' → md5 014842d480b571495a4a0363793f7367 */
    char a64[64];
    memset(a64, 'a', sizeof(a64));
    assert_true(fg__relabel_hashmod(a64, 64, UINT64_MAX) == 0x5a4a0363793f7367ULL);
    /* 56 bytes: the padding spills into a second tail block (md5 ...4c6c197006d17218) */
    assert_true(fg__relabel_hashmod(a64, 56, UINT64_MAX) == 0x4c6c197006d17218ULL);
}

static void test_sample_scope(void **state)
{
    (void)state;
    struct pu_fixture f;
    pu_setup(&f, "relabel",
             "    scope: sample\n"
             "    relabel_configs:\n"
             "      - {source_labels: [thread.name], regex: idle, action: drop}\n"
             "      - {source_labels: [thread.name], regex: 'worker-(\\d+)', "
             "target_label: worker, replacement: 'w$1'}\n"
             "      - {regex: 'thread\\.name', action: labeldrop}\n");
    struct fg_profiles *in;
    assert_int_equal(fg_profiles_new(&in), 0);
    struct fg_profile *prof = pu_profile(in, "service.name=svc", "cpu", "");
    int64_t kept_total = 0;
    for (int i = 0; i < 300; i++) {
        char attrs[64];
        bool idle = i % 3 == 0;
        snprintf(attrs, sizeof(attrs), "thread.name=%s", idle ? "idle" : (i % 2 ? "worker-1" : "worker-22"));
        pu_sample(in, prof, i % 2 ? "main;a" : "main;b", i + 1, attrs);
        if (!idle)
            kept_total += i + 1;
    }
    char *before = tu_canon(in);
    fg_profiles_ref(in);
    struct fg_profiles *out = pu_run(&f, in);
    const struct fg_profile *op = &out->resources[0].scopes[0].profiles[0];
    assert_int_equal(op->n_samples, 200);
    assert_int_equal(out->n_samples, 200);
    assert_int_equal(fg_profile_total(op), kept_total);
    int w1 = 0, w22 = 0;
    char buf[256];
    for (uint32_t k = 0; k < op->n_samples; k++) {
        const char *t = pu_dict_text(out, op->samples[k].attrs, op->samples[k].n_attrs, buf, sizeof(buf));
        if (strcmp(t, "worker=w1") == 0)
            w1++;
        else if (strcmp(t, "worker=w22") == 0)
            w22++;
        else
            fail_msg("unexpected labels %s", t);
    }
    assert_int_equal(w1, 100);
    assert_int_equal(w22, 100);
    char *after = tu_canon(in);
    assert_string_equal(before, after);
    fg_free(before);
    fg_free(after);
    fg_profiles_unref(in);
    pu_teardown(&f);
}

static void test_everything_dropped_sends_nothing(void **state)
{
    (void)state;
    struct pu_fixture f;
    pu_setup(&f, "relabel",
             "    relabel_configs:\n      - {source_labels: [service.name], regex: '.*', action: drop}\n");
    struct fg_profiles *in;
    assert_int_equal(fg_profiles_new(&in), 0);
    struct fg_profile *prof = pu_profile(in, "service.name=svc", "cpu", "");
    pu_sample(in, prof, "main", 1, "");
    assert_null(pu_run(&f, in));
    pu_teardown(&f);
}

static void test_regex_layer(void **state)
{
    (void)state;
    struct fg_err err = {{0}};
    struct fg_regex *re = NULL;
    struct fg_regex_match m;
    /* named groups, \d, escapes inside a class, an optional group that does not take part */
    assert_int_equal(fg_regex_compile("(?P<host>[\\w.-]+)(?::(?P<port>\\d+))?(?<rest>/.*)?",
                                      FG_REGEX_ANCHORED, &re, &err), 0);
    assert_int_equal(fg_regex_groups(re), 3);
    assert_string_equal(fg_regex_group_name(re, 1), "host");
    assert_string_equal(fg_regex_group_name(re, 3), "rest");
    const char *s = "my-host.example:8080/x";
    assert_true(fg_regex_exec(re, s, strlen(s), &m));
    struct fg_buf out = {0};
    assert_int_equal(fg_regex_expand(re, "${host}|$2|$port|$3x|$$|${nope}|$", s, &m, &out), 0);
    /* "$3x" names a group "3x", which does not exist: empty, as in Go */
    assert_int_equal((int)out.len, (int)strlen("my-host.example|8080|8080||$||$"));
    assert_memory_equal(out.data, "my-host.example|8080|8080||$||$", out.len);
    fg_buf_free(&out);
    assert_false(fg_regex_match(re, "bad host", 8));
    assert_true(fg_regex_exec(re, "h", 1, &m));
    assert_true(m.so[2] == -1);
    fg_regex_free(re);

    /* unanchored search, ']' '-' and '^' as literals in classes, (?i) */
    assert_int_equal(fg_regex_compile("(?i)[\\]\\-^x]{2}Z", 0, &re, &err), 0);
    assert_true(fg_regex_match(re, "ab]-z", 5));
    assert_true(fg_regex_match(re, "^xZ", 3));
    assert_false(fg_regex_match(re, "abz", 3));
    fg_regex_free(re);

    /* NUL-free matching of a length, not a C string */
    assert_int_equal(fg_regex_compile("abc", FG_REGEX_ANCHORED, &re, &err), 0);
    assert_true(fg_regex_match(re, "abcdef", 3));
    assert_false(fg_regex_match(re, "abcdef", 4));
    fg_regex_free(re);

    const char *bad[] = {"a*?", "(?P<x>a", "\\p{L}", "(?=x)", "[z-a]", "\\Qx\\E"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        re = NULL;
        if (fg_regex_compile(bad[i], 0, &re, &err) == 0)
            fail_msg("\"%s\" should not compile", bad[i]);
        assert_null(re);
    }
}

static void test_config_errors(void **state)
{
    (void)state;
    pu_expect_error("relabel",
                    "    relabel_configs:\n      - {source_labels: [a], action: explode}\n",
                    "test.yaml:5:", "unknown relabel action \"explode\"");
    pu_expect_error("relabel",
                    "    relabel_configs:\n      - {source_labels: [a], regex: '([a-', "
                    "target_label: b}\n",
                    "test.yaml:5:", "invalid regex");
    pu_expect_error("relabel",
                    "    relabel_configs:\n      - {source_labels: [a], action: hashmod, "
                    "target_label: b}\n",
                    "test.yaml:5:", "modulus");
    pu_expect_error("relabel",
                    "    relabel_configs:\n      - {source_labels: [a], action: replace}\n",
                    "test.yaml:5:", "target_label");
    pu_expect_error(
        "relabel",
        "    relabel_configs:\n      - {source_labels: [a], regex: x, action: labeldrop}\n",
        "test.yaml:5:", "only a regex");
    pu_expect_error(
        "relabel", "    scope: span\n    relabel_configs:\n      - {regex: x, action: labeldrop}\n",
        "test.yaml:4:", "invalid value \"span\"");
}

static struct fg_profiles *walk_batch(void)
{
    return tu_make_batch("svc", 12);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    pu_alloc_walk("relabel",
                  "    scope: sample\n"
                  "    relabel_configs:\n"
                  "      - {source_labels: [thread.name], regex: 'worker-1', action: drop}\n"
                  "      - {source_labels: [thread.name], regex: 'worker-(.*)', target_label: w}\n"
                  "      - {regex: '(t.*)', replacement: 'x_$1', action: labelmap}\n"
                  "      - {source_labels: [w], target_label: h, action: hashmod, modulus: 8}\n",
                  walk_batch);
    pu_alloc_walk("relabel",
                  "    relabel_configs:\n"
                  "      - {source_labels: [service.name], target_label: svc}\n"
                  "      - {source_labels: [host.cores], regex: '9', action: drop}\n",
                  walk_batch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prometheus_cases),
        cmocka_unit_test(test_hashmod_md5),
        cmocka_unit_test(test_sample_scope),
        cmocka_unit_test(test_everything_dropped_sends_nothing),
        cmocka_unit_test(test_regex_layer),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
