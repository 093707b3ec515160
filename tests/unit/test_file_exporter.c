/* The file exporter: complete files with the right names that decode back, no leftovers. */
#include "testutil.h"

#include <dirent.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fg_alloc.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_otlp.h"
#include "fg_pprof.h"
#include "file_exporter.h"

/* A batch of n samples with values 1..n on a one-frame stack. */
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
    struct fg_function f = {.name = (uint32_t)fg_dict_string(p, "main", 4)};
    struct fg_line line = {.function = (uint32_t)fg_dict_function(p, &f)};
    struct fg_location loc = {.n_lines = 1, .lines = &line};
    uint32_t li = (uint32_t)fg_dict_location(p, &loc);
    struct fg_stack st = {.n_locations = 1, .locations = &li};
    int32_t si = fg_dict_stack(p, &st);
    assert_true(si > 0);
    struct fg_profile proto = {
        .sample_type = {(uint32_t)fg_dict_string(p, "samples", 7),
                        (uint32_t)fg_dict_string(p, "count", 5)},
    };
    struct fg_profile *prof = fg_profiles_add_profile(p, sp, &proto);
    assert_non_null(prof);
    for (uint32_t i = 0; i < n; i++) {
        int64_t v = (int64_t)i + 1;
        struct fg_sample s = {.stack = (uint32_t)si, .n_values = 1, .values = &v};
        assert_int_equal(fg_profiles_add_sample(p, prof, &s), 0);
    }
    return p;
}

static struct fg_component *make(const char *path, int format)
{
    struct file_config cfg;
    struct fg_err err = {{0}};
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(fg_options_defaults(fg_file_exporter_factory.options, &cfg, &err), 0);
    assert_string_equal(cfg.path, "./flamegate-data");
    fg_free(cfg.path);
    cfg.path = fg_strdup(path);
    cfg.format = format;
    struct fg_create_args args = {.id = "file/test", .config = &cfg};
    struct fg_component *c = NULL;
    assert_int_equal(fg_file_exporter_factory.create(&args, &c, &err), 0);
    fg_options_free(fg_file_exporter_factory.options, &cfg); /* the exporter keeps a copy */
    return c;
}

/* Checks every file in dir: no dot-files, names profiles-<ns>-<seq>.<ext>, each decodes to
 * a batch whose sample count is one of want[] (each used once). Returns the file count. */
static int check_dir(const char *dir, const char *ext, int format, uint32_t *want, int n_want)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (de->d_name[0] == '.')
            fail_msg("left-over temporary file %s", de->d_name);
        assert_int_equal(strncmp(de->d_name, "profiles-", 9), 0);
        const char *dot = strrchr(de->d_name, '.');
        assert_non_null(dot);
        assert_string_equal(dot + 1, ext);
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        size_t len = 0;
        uint8_t *data = tu_read_file(path, &len);
        assert_non_null(data);
        struct fg_profiles *p = NULL;
        struct fg_err err = {{0}};
        int rc = format == FILE_FORMAT_OTLP_JSON ? fg_otlp_decode_json(data, len, &p, &err)
                                                 : fg_otlp_decode_proto(data, len, &p, &err);
        if (rc != 0)
            fail_msg("%s: %s", de->d_name, err.msg);
        int matched = 0;
        for (int i = 0; i < n_want; i++)
            if (want[i] == p->n_samples) {
                want[i] = UINT32_MAX;
                matched = 1;
                break;
            }
        assert_true(matched);
        const struct fg_profile *prof = &p->resources[0].scopes[0].profiles[0];
        assert_int_equal(fg_profile_total(prof), (int64_t)p->n_samples * (p->n_samples + 1) / 2);
        fg_profiles_unref(p);
        fg_free(data);
        files++;
    }
    closedir(d);
    return files;
}

static void run_format(int format, const char *ext)
{
    char tmp[256], dir[512];
    assert_non_null(tu_tempdir(tmp, sizeof(tmp)));
    snprintf(dir, sizeof(dir), "%s/a/b", tmp); /* created at start, parents too */
    struct fg_component *c = make(dir, format);
    struct fg_err err = {{0}};
    assert_int_equal(c->ops->start(c, &err), 0);
    uint32_t want[3] = {1, 4, 9};
    for (int i = 0; i < 3; i++)
        assert_int_equal(fg_consume(&c->consumer, make_batch(want[i]), &err), 0);
    assert_int_equal(check_dir(dir, ext, format, want, 3), 3);
    assert_int_equal(c->ops->shutdown(c, 0), 0);
    c->ops->destroy(c);
    tu_rmtree(tmp);
}

static void test_proto_files(void **state)
{
    run_format(FILE_FORMAT_OTLP_PROTO, "pb");
}

static void test_json_files(void **state)
{
    run_format(FILE_FORMAT_OTLP_JSON, "json");
}

static void test_path_is_a_file(void **state)
{
    char tmp[256], path[512];
    assert_non_null(tu_tempdir(tmp, sizeof(tmp)));
    snprintf(path, sizeof(path), "%s/plain", tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    struct fg_component *c = make(path, FILE_FORMAT_OTLP_PROTO);
    struct fg_err err = {{0}};
    assert_int_equal(c->ops->start(c, &err), FG_EIO);
    assert_non_null(strstr(err.msg, "not a directory"));
    c->ops->destroy(c);
    tu_rmtree(tmp);
}

static void test_write_error(void **state)
{
    char tmp[256], dir[512];
    assert_non_null(tu_tempdir(tmp, sizeof(tmp)));
    snprintf(dir, sizeof(dir), "%s/out", tmp);
    struct fg_component *c = make(dir, FILE_FORMAT_OTLP_PROTO);
    struct fg_err err = {{0}};
    assert_int_equal(c->ops->start(c, &err), 0);
    tu_rmtree(dir); /* the directory vanishes under the exporter */
    assert_int_equal(fg_consume(&c->consumer, make_batch(2), &err), FG_EIO);
    assert_true(err.msg[0] != '\0');
    c->ops->destroy(c);
    tu_rmtree(tmp);
}

/* Names of the complete files in dir, sorted; no temporary dot-files may be left. */
static int list_dir(const char *dir, char names[][256], int max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (de->d_name[0] == '.')
            fail_msg("left-over temporary file %s", de->d_name);
        assert_true(n < max);
        snprintf(names[n++], 256, "%s", de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, 256, (int (*)(const void *, const void *))strcmp);
    return n;
}

static void test_pprof_files(void **state)
{
    char tmp[256];
    assert_non_null(tu_tempdir(tmp, sizeof(tmp)));
    struct fg_component *c = make(tmp, FILE_FORMAT_PPROF);
    struct fg_err err = {{0}};
    assert_int_equal(c->ops->start(c, &err), 0);
    /* a service name that is no file name, and a batch without one */
    assert_int_equal(fg_consume(&c->consumer, tu_make_batch("my svc/x", 5), &err), 0);
    assert_int_equal(fg_consume(&c->consumer, make_batch(3), &err), 0);
    char names[8][256];
    assert_int_equal(list_dir(tmp, names, 8), 2);
    assert_string_equal(names[0], "pprof-my_svc_x-cpu-1700000000000000000-0.pb.gz");
    assert_int_equal(strncmp(names[1], "pprof-unknown_service-samples-", 30), 0);
    assert_non_null(strstr(names[1], "-1.pb.gz"));
    const int64_t want[2] = {3 * (1 + 2 + 3 + 4 + 5), 1 + 2 + 3};
    for (int i = 0; i < 2; i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", tmp, names[i]);
        size_t len = 0;
        uint8_t *data = tu_read_file(path, &len);
        assert_non_null(data);
        assert_true(len > 2 && data[0] == 0x1f && data[1] == 0x8b);
        struct fg_profiles *p = NULL;
        assert_int_equal(fg_profiles_new(&p), 0);
        if (fg_pprof_decode(data, len, 0, NULL, p, &err) != 0)
            fail_msg("%s: %s", names[i], err.msg);
        assert_int_equal(p->resources[0].scopes[0].n_profiles, 1);
        assert_int_equal(fg_profile_total(&p->resources[0].scopes[0].profiles[0]), want[i]);
        fg_profiles_unref(p);
        fg_free(data);
    }
    c->ops->destroy(c);
    tu_rmtree(tmp);
}

static void test_folded_files(void **state)
{
    char tmp[256];
    assert_non_null(tu_tempdir(tmp, sizeof(tmp)));
    struct fg_component *c = make(tmp, FILE_FORMAT_FOLDED);
    struct fg_err err = {{0}};
    assert_int_equal(c->ops->start(c, &err), 0);
    assert_int_equal(fg_consume(&c->consumer, tu_make_batch("svc", 4), &err), 0);
    char names[8][256];
    assert_int_equal(list_dir(tmp, names, 8), 1);
    assert_string_equal(names[0], "folded-svc-cpu-1700000000000000000-0.folded");
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", tmp, names[0]);
    size_t len = 0;
    char *text = (char *)tu_read_file(path, &len);
    assert_non_null(text);
    /* root first, the inlined helper after its caller, equal stacks summed (values
     * [i+1, 2(i+1)] weigh 3(i+1); leaf_0 gets samples 0 and 3) */
    const char *want = "main;work;helper;leaf_0 15\n"
                       "main;work;helper;leaf_1 6\n"
                       "main;work;helper;leaf_2 9\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(text, want, len);
    fg_free(text);
    c->ops->destroy(c);
    tu_rmtree(tmp);
}

/* Frames without a function: mapping file name + address, or the bare address; a ';' in a
 * name cannot split the frame. */
static void test_folded_unsymbolized(void **state)
{
    struct fg_profiles *p = make_batch(1);
    struct fg_mapping m = {.filename = (uint32_t)fg_dict_string(p, "/usr/lib/libc.so.6", 18)};
    struct fg_location bare = {.address = 0x1234};
    struct fg_location in_lib = {.mapping = (uint32_t)fg_dict_mapping(p, &m), .address = 0xab};
    struct fg_function odd = {.name = (uint32_t)fg_dict_string(p, "a;b", 3)};
    struct fg_line odd_line = {.function = (uint32_t)fg_dict_function(p, &odd)};
    struct fg_location named = {.address = 1, .n_lines = 1, .lines = &odd_line};
    uint32_t locs[3] = {(uint32_t)fg_dict_location(p, &named),
                        (uint32_t)fg_dict_location(p, &in_lib),
                        (uint32_t)fg_dict_location(p, &bare)};
    struct fg_stack st = {3, locs};
    p->resources[0].scopes[0].profiles[0].samples[0].stack = (uint32_t)fg_dict_stack(p, &st);

    char tmp[256];
    assert_non_null(tu_tempdir(tmp, sizeof(tmp)));
    struct fg_component *c = make(tmp, FILE_FORMAT_FOLDED);
    struct fg_err err = {{0}};
    assert_int_equal(c->ops->start(c, &err), 0);
    assert_int_equal(fg_consume(&c->consumer, p, &err), 0);
    char names[4][256];
    assert_int_equal(list_dir(tmp, names, 4), 1);
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", tmp, names[0]);
    size_t len = 0;
    char *text = (char *)tu_read_file(path, &len);
    assert_non_null(text);
    const char *want = "0x1234;libc.so.6+0xab;a:b 1\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(text, want, len);
    fg_free(text);
    c->ops->destroy(c);
    tu_rmtree(tmp);
}

int main(void)
{
    fg_log_set_level(FG_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_files),
        cmocka_unit_test(test_json_files),
        cmocka_unit_test(test_path_is_a_file),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_pprof_files),
        cmocka_unit_test(test_folded_files),
        cmocka_unit_test(test_folded_unsymbolized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
