/* The memory_limiter processor: RSS measurement, cgroup v2/v1 limit discovery from fixture
 * trees, limit arithmetic, config validation, and refusing / passing batches for real. */
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_log.h"
#include "fg_model.h"

uint64_t fg__memory_rss(void);
int fg__memory_cgroup_limit(const char *root, const char *self_cgroup, uint64_t *out);
int fg__memory_limits(int64_t limit_mib, int64_t spike_mib, int64_t limit_pct, int64_t spike_pct,
                      uint64_t base, uint64_t *limit, uint64_t *spike);

#define MIB (UINT64_C(1) << 20)

static void write_file(const char *dir, const char *rel, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    /* make the parents */
    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        mkdir(path, 0700);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_rss(void **state)
{
    uint64_t before = fg__memory_rss();
    assert_true(before > 256 * 1024);     /* a process has some resident memory */
    assert_true(before < 4096 * MIB);
    /* touching 32 MiB shows up in the measurement */
    size_t n = 32 * MIB;
    char *p = malloc(n);
    assert_non_null(p);
    memset(p, 1, n);
    uint64_t after = fg__memory_rss();
    assert_true(after >= before + 24 * MIB);
    free(p);
}

static void test_cgroup_v2(void **state)
{
    char root[PATH_MAX], self[PATH_MAX + 16];
    tu_tempdir(root, sizeof(root));
    snprintf(self, sizeof(self), "%s/self-cgroup", root);
    uint64_t v;

    /* the process's own group */
    write_file(root, "self-cgroup", "0::/system.slice/fg.service\n");
    write_file(root, "system.slice/fg.service/memory.max", "536870912\n");
    write_file(root, "memory.max", "max\n");
    assert_int_equal(fg__memory_cgroup_limit(root, self, &v), 0);
    assert_int_equal(v, 512 * MIB);

    /* "max": no limit */
    write_file(root, "system.slice/fg.service/memory.max", "max\n");
    assert_int_equal(fg__memory_cgroup_limit(root, self, &v), 0);
    assert_int_equal(v, 0);

    /* a namespaced container sees "/" and reads the mount's root */
    write_file(root, "self-cgroup", "0::/\n");
    write_file(root, "memory.max", "1073741824\n");
    assert_int_equal(fg__memory_cgroup_limit(root, self, &v), 0);
    assert_int_equal(v, 1024 * MIB);

    /* garbage is an error, not a limit */
    write_file(root, "memory.max", "lots\n");
    assert_int_not_equal(fg__memory_cgroup_limit(root, self, &v), 0);
    tu_rmtree(root);
}

static void test_cgroup_v1(void **state)
{
    char root[PATH_MAX], self[PATH_MAX + 16];
    tu_tempdir(root, sizeof(root));
    snprintf(self, sizeof(self), "%s/self-cgroup", root);
    uint64_t v;
    write_file(root, "self-cgroup",
               "12:cpu,cpuacct:/docker/abc\n11:memory:/docker/abc\n1:name=systemd:/x\n");
    write_file(root, "memory/docker/abc/memory.limit_in_bytes", "268435456\n");
    assert_int_equal(fg__memory_cgroup_limit(root, self, &v), 0);
    assert_int_equal(v, 256 * MIB);
    /* v1's "unlimited" is a page-rounded LONG_MAX */
    write_file(root, "memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n");
    assert_int_equal(fg__memory_cgroup_limit(root, self, &v), 0);
    assert_int_equal(v, 0);
    /* no cgroup files at all */
    tu_rmtree(root);
    tu_tempdir(root, sizeof(root));
    snprintf(self, sizeof(self), "%s/self-cgroup", root);
    assert_int_equal(fg__memory_cgroup_limit(root, self, &v), FG_ENOTFOUND);
    tu_rmtree(root);
}

static void test_limits(void **state)
{
    uint64_t limit, spike;
    assert_int_equal(fg__memory_limits(100, 30, 0, 0, 0, &limit, &spike), 0);
    assert_int_equal(limit, 100 * MIB);
    assert_int_equal(spike, 30 * MIB);
    /* default spike: 20% of the limit */
    assert_int_equal(fg__memory_limits(100, 0, 0, 0, 0, &limit, &spike), 0);
    assert_int_equal(spike, 20 * MIB);
    /* percentages of a 1000 MiB base */
    assert_int_equal(fg__memory_limits(0, 0, 80, 25, 1000 * MIB, &limit, &spike), 0);
    assert_int_equal(limit, 1000 * MIB / 100 * 80);
    assert_int_equal(spike, 1000 * MIB / 100 * 25);
    /* a percentage without a base, or a spike not below the limit */
    assert_int_equal(fg__memory_limits(0, 0, 80, 0, 0, &limit, &spike), FG_EINVAL);
    assert_int_equal(fg__memory_limits(10, 10, 0, 0, 0, &limit, &spike), FG_EINVAL);
}

/* ---- the processor through its factory ---- */

struct counting {
    struct fg_consumer c;
    int batches;
    uint64_t samples;
};

static int counting_consume(struct fg_consumer *self, struct fg_profiles *b, struct fg_err *err)
{
    struct counting *k = (struct counting *)self;
    k->batches++;
    k->samples += b->n_samples;
    fg_profiles_unref(b);
    return 0;
}

struct ml_config {
    int64_t check_interval_ns, limit_mib, spike_limit_mib, limit_percentage,
        spike_limit_percentage;
};

static const struct fg_factory *factory(void)
{
    const struct fg_factory *f = fg_factory_find(FG_KIND_PROCESSOR, "memory_limiter");
    assert_non_null(f);
    assert_int_equal(f->config_size, sizeof(struct ml_config));
    return f;
}

static struct ml_config defaults(void)
{
    struct ml_config c;
    memset(&c, 0, sizeof(c));
    struct fg_err err = {{0}};
    assert_int_equal(fg_options_defaults(factory()->options, &c, &err), 0);
    assert_int_equal(c.check_interval_ns, 1000000000);
    return c;
}

static void test_validate(void **state)
{
    const struct fg_factory *f = factory();
    struct fg_err err = {{0}};
    struct ml_config c = defaults();
    assert_int_equal(f->validate(&c, &err), FG_EINVAL); /* no limit at all */
    assert_non_null(strstr(err.msg, "limit_mib"));
    c.limit_mib = 100;
    assert_int_equal(f->validate(&c, &err), 0);
    c.spike_limit_mib = 100;
    assert_int_equal(f->validate(&c, &err), FG_EINVAL);
    c.spike_limit_mib = 0;
    c.limit_percentage = 50;
    assert_int_equal(f->validate(&c, &err), FG_EINVAL); /* both */
    c.limit_mib = 0;
    c.spike_limit_percentage = 60;
    assert_int_equal(f->validate(&c, &err), FG_EINVAL);
    c.spike_limit_percentage = 10;
    assert_int_equal(f->validate(&c, &err), 0);
}

static struct fg_component *make(struct ml_config *c, struct counting *next)
{
    struct fg_create_args args = {.id = "memory_limiter", .config = c, .next = &next->c};
    struct fg_component *comp = NULL;
    struct fg_err err = {{0}};
    int rc = factory()->create(&args, &comp, &err);
    if (rc != 0)
        fail_msg("create: %s", err.msg);
    comp->factory = factory();
    assert_int_equal(comp->ops->start(comp, &err), 0);
    return comp;
}

static void test_passes_under_limit(void **state)
{
    struct counting next = {.c = {counting_consume}};
    struct ml_config c = defaults();
    c.limit_mib = 1 << 20; /* 1 TiB */
    c.check_interval_ns = 10000000;
    struct fg_component *m = make(&c, &next);
    struct fg_err err = {{0}};
    assert_int_equal(fg_consume(&m->consumer, tu_make_batch("a", 5), &err), 0);
    assert_int_equal(next.batches, 1);
    assert_int_equal(next.samples, 5);
    assert_int_equal(m->ops->shutdown(m, 0), 0);
    m->ops->destroy(m);
}

static void test_refuses_over_soft_limit(void **state)
{
    struct counting next = {.c = {counting_consume}};
    struct ml_config c = defaults();
    c.limit_mib = 2; /* a running process is over 2 - 0.4 MiB */
    c.check_interval_ns = 10000000;
    struct fg_component *m = make(&c, &next);
    struct fg_err err = {{0}};
    assert_int_equal(fg_consume(&m->consumer, tu_make_batch("a", 5), &err), FG_ERETRYABLE);
    assert_non_null(strstr(err.msg, "soft limit"));
    assert_int_equal(next.batches, 0);
    usleep(30000); /* the checker keeps measuring; still over */
    assert_int_equal(fg_consume(&m->consumer, tu_make_batch("b", 1), &err), FG_ERETRYABLE);
    assert_int_equal(m->ops->shutdown(m, 0), 0);
    m->ops->destroy(m);
}

static void test_percentage_of_machine(void **state)
{
    /* outside a memory cgroup the base is the machine's memory: 90% is far above us */
    struct counting next = {.c = {counting_consume}};
    struct ml_config c = defaults();
    c.limit_percentage = 90;
    c.spike_limit_percentage = 10;
    struct fg_component *m = make(&c, &next);
    struct fg_err err = {{0}};
    int rc = fg_consume(&m->consumer, tu_make_batch("a", 3), &err);
    assert_int_equal(rc, 0);
    assert_int_equal(next.samples, 3);
    m->ops->shutdown(m, 0);
    m->ops->destroy(m);
}

int main(void)
{
    fg_log_set_level(FG_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rss),
        cmocka_unit_test(test_cgroup_v2),
        cmocka_unit_test(test_cgroup_v1),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_passes_under_limit),
        cmocka_unit_test(test_refuses_over_soft_limit),
        cmocka_unit_test(test_percentage_of_machine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
