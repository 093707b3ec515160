/* The service with extensions: created from a config, started before the exporters that
 * look them up, stopped after them; lookup errors name the id; stop_intake then shutdown. */
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fg_config.h"
#include "fg_log.h"
#include "fg_service.h"

static void yaml_for(char *buf, size_t size, const char *dir, const char *service_ext,
                     const char *storage)
{
    snprintf(buf, size,
             "receivers:\n  otlp:\n    protocols: {http: {endpoint: '127.0.0.1:0'}}\n"
             "processors:\n  memory_limiter: {limit_mib: 100000, check_interval: 10ms}\n"
             "exporters:\n"
             "  otlphttp/up:\n    endpoint: http://127.0.0.1:1\n"
             "    sending_queue: {storage: %s}\n"
             "extensions:\n  file_storage/q: {directory: '%s', fsync: always}\n"
             "service:\n  extensions: [%s]\n  shutdown_timeout: 1s\n"
             "  pipelines:\n    profiles:\n      receivers: [otlp]\n"
             "      processors: [memory_limiter]\n      exporters: [otlphttp/up]\n",
             storage, dir, service_ext);
}

static void test_extension_started_first(void **state)
{
    char dir[PATH_MAX], yaml[2048], qdir[PATH_MAX + 32];
    tu_tempdir(dir, sizeof(dir));
    char store[PATH_MAX + 8];
    snprintf(store, sizeof(store), "%s/store", dir); /* made by the extension's start */
    yaml_for(yaml, sizeof(yaml), store, "file_storage/q", "file_storage/q");
    struct fg_config *cfg = tu_config_load(yaml);
    assert_int_equal(cfg->shutdown_timeout_ns, 1000000000);

    struct fg_service *s = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_service_build(cfg, &s, &err), 0);
    snprintf(qdir, sizeof(qdir), "%s/otlphttp_up/LOCK", store);
    assert_int_not_equal(access(qdir, F_OK), 0); /* build opens nothing */
    if (fg_service_start(s, &err) != 0)
        fail_msg("start: %s", err.msg);
    /* the exporter found the extension and opened its queue under it */
    assert_int_equal(access(qdir, F_OK), 0);
    fg_service_stop_intake(s, 1000000000);
    fg_service_shutdown(s, 1000000000);
    fg_service_shutdown(s, 1000000000); /* twice: a no-op */
    fg_service_free(s);
    fg_config_free(cfg);
    tu_rmtree(dir);
}

static void test_extension_not_enabled(void **state)
{
    char dir[PATH_MAX], yaml[2048];
    tu_tempdir(dir, sizeof(dir));
    /* defined, but not in service.extensions (the loader only warns): the exporter that
     * names it cannot be created */
    snprintf(yaml, sizeof(yaml),
             "receivers:\n  otlp:\n    protocols: {http: {endpoint: '127.0.0.1:0'}}\n"
             "exporters:\n"
             "  otlphttp:\n    endpoint: http://127.0.0.1:1\n"
             "    sending_queue: {storage: file_storage/q}\n"
             "extensions:\n  file_storage/q: {directory: '%s'}\n"
             "service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n"
             "      exporters: [otlphttp]\n",
             dir);
    struct fg_config *cfg = tu_config_load(yaml);
    struct fg_service *s = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_service_build(cfg, &s, &err), FG_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err.msg, "exporter otlphttp"));
    assert_non_null(strstr(err.msg, "file_storage/q"));
    fg_config_free(cfg);
    tu_rmtree(dir);
}

static void test_two_services_share_queue(void **state)
{
    char dir[PATH_MAX], yaml[2048];
    tu_tempdir(dir, sizeof(dir));
    yaml_for(yaml, sizeof(yaml), dir, "file_storage/q", "file_storage/q");
    struct fg_config *cfg = tu_config_load(yaml);
    /* the same directory open twice in one process is shared (reload); two services both
     * running is that case, so both start */
    struct fg_service *a = NULL, *b = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_service_build(cfg, &a, &err), 0);
    assert_int_equal(fg_service_start(a, &err), 0);
    fg_service_stop_intake(a, 1000000000);
    assert_int_equal(fg_service_build(cfg, &b, &err), 0);
    if (fg_service_start(b, &err) != 0)
        fail_msg("second start: %s", err.msg);
    fg_service_shutdown(a, 1000000000);
    fg_service_free(a);
    fg_service_shutdown(b, 1000000000);
    fg_service_free(b);
    fg_config_free(cfg);
    tu_rmtree(dir);
}

int main(void)
{
    fg_log_set_level(FG_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extension_started_first),
        cmocka_unit_test(test_extension_not_enabled),
        cmocka_unit_test(test_two_services_share_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
