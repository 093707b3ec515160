/* The debug exporter: what it logs at each verbosity (stderr captured into a file). */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "debug_exporter.h"
#include "fg_alloc.h"
#include "fg_log.h"
#include "fg_model.h"

/* n samples with values 1..n on the stack work < main, cpu/nanoseconds, 2 timestamps each. */
static struct fg_profiles *make_batch(uint32_t n)
{
    struct fg_profiles *p = NULL;
    assert_int_equal(fg_profiles_new(&p), 0);
    struct fg_resource res = {0};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "", 0);
    assert_non_null(rp);
    struct fg_scope scope = {0};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(p, rp, &scope, "", 0);
    assert_non_null(sp);
    const char *names[2] = {"work", "main"};
    uint32_t locs[2];
    for (int i = 0; i < 2; i++) {
        struct fg_function f = {.name = (uint32_t)fg_dict_string(p, names[i], 4)};
        struct fg_line line = {.function = (uint32_t)fg_dict_function(p, &f)};
        struct fg_location loc = {.n_lines = 1, .lines = &line};
        locs[i] = (uint32_t)fg_dict_location(p, &loc);
    }
    struct fg_stack st = {.n_locations = 2, .locations = locs};
    int32_t si = fg_dict_stack(p, &st);
    assert_true(si > 0);
    struct fg_profile proto = {
        .sample_type = {(uint32_t)fg_dict_string(p, "cpu", 3),
                        (uint32_t)fg_dict_string(p, "nanoseconds", 11)},
    };
    struct fg_profile *prof = fg_profiles_add_profile(p, sp, &proto);
    assert_non_null(prof);
    for (uint32_t i = 0; i < n; i++) {
        int64_t v = (int64_t)i + 1;
        uint64_t ts[2] = {1, 2};
        struct fg_sample s = {.stack = (uint32_t)si, .n_values = 1, .values = &v,
                              .n_timestamps = 2, .timestamps = ts};
        assert_int_equal(fg_profiles_add_sample(p, prof, &s), 0);
    }
    return p;
}

/* Runs one batch through a debug exporter of the given verbosity; returns what it logged. */
static char *run(int verbosity, uint32_t n)
{
    struct debug_config cfg;
    struct fg_err err = {{0}};
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(fg_options_defaults(fg_debug_exporter_factory.options, &cfg, &err), 0);
    assert_int_equal(cfg.verbosity, DEBUG_BASIC);
    cfg.verbosity = verbosity;
    struct fg_create_args args = {.id = "debug/test", .config = &cfg};
    struct fg_component *c = NULL;
    assert_int_equal(fg_debug_exporter_factory.create(&args, &c, &err), 0);
    assert_int_equal(c->ops->start(c, &err), 0);

    char tmp[256], path[512];
    assert_non_null(tu_tempdir(tmp, sizeof(tmp)));
    snprintf(path, sizeof(path), "%s/log", tmp);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    fg_log_set_level(FG_LOG_INFO);
    int rc = fg_consume(&c->consumer, make_batch(n), &err);
    fg_log_set_level(FG_LOG_OFF);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc, 0);

    assert_int_equal(c->ops->shutdown(c, 0), 0);
    c->ops->destroy(c);
    fg_options_free(fg_debug_exporter_factory.options, &cfg);
    size_t len = 0;
    uint8_t *text = tu_read_file(path, &len);
    assert_non_null(text);
    char *s = fg_strndup((const char *)text, len);
    fg_free(text);
    tu_rmtree(tmp);
    return s;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_basic(void **state)
{
    char *log = run(DEBUG_BASIC, 3);
    assert_non_null(strstr(log, "debug/test: batch: 1 resources, 1 profiles, 3 samples"));
    assert_int_equal(count_lines(log), 1);
    fg_free(log);
}

static void test_normal(void **state)
{
    char *log = run(DEBUG_NORMAL, 3);
    assert_non_null(strstr(log, "batch: 1 resources, 1 profiles, 3 samples"));
    assert_non_null(strstr(log, "profile: sample type cpu/nanoseconds, 3 samples, total 6"));
    assert_int_equal(count_lines(log), 2);
    fg_free(log);
}

static void test_detailed(void **state)
{
    char *log = run(DEBUG_DETAILED, 3);
    assert_non_null(strstr(log, "sample 0: values=[1] timestamps=2 stack: work < main"));
    assert_non_null(strstr(log, "sample 2: values=[3] timestamps=2 stack: work < main"));
    assert_int_equal(count_lines(log), 5);
    fg_free(log);
}

static void test_quiet_when_level_off(void **state)
{
    struct debug_config cfg = {.verbosity = DEBUG_DETAILED};
    struct fg_create_args args = {.id = "debug", .config = &cfg};
    struct fg_component *c = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_debug_exporter_factory.create(&args, &c, &err), 0);
    /* Still consumes (and releases: the leak checker would tell) the batch. */
    assert_int_equal(fg_consume(&c->consumer, make_batch(2), &err), 0);
    c->ops->destroy(c);
}

int main(void)
{
    fg_log_set_level(FG_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_normal),
        cmocka_unit_test(test_detailed),
        cmocka_unit_test(test_quiet_when_level_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
