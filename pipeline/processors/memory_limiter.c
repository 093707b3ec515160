/* Processor "memory_limiter": refuses new data with a retryable error while the process's
 * resident memory (RSS from /proc/self/statm, measured every check_interval) is above the
 * soft limit (limit - spike limit), as the Collector's memorylimiter does. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_service.h"

#define MIB (UINT64_C(1) << 20)

struct memory_limiter_config {
    int64_t check_interval_ns;
    int64_t limit_mib;
    int64_t spike_limit_mib;
    int64_t limit_percentage;
    int64_t spike_limit_percentage;
};

static const struct fg_option memory_limiter_options[] = {
    FG_OPT_DUR("check_interval", struct memory_limiter_config, check_interval_ns, "1s",
               1000000, INT64_C(60000000000), "how often memory usage is measured"),
    FG_OPT_INTEGER("limit_mib", struct memory_limiter_config, limit_mib, "0", 0,
                   INT64_C(1) << 30, "hard limit on resident memory in MiB"),
    FG_OPT_INTEGER("spike_limit_mib", struct memory_limiter_config, spike_limit_mib, "0", 0,
                   INT64_C(1) << 30,
                   "headroom below the limit; data is refused above limit - spike "
                   "(default 20% of the limit)"),
    FG_OPT_INTEGER("limit_percentage", struct memory_limiter_config, limit_percentage, "0", 0,
                   100, "limit as a percentage of the cgroup memory limit (or of the machine's "
                        "memory when there is none)"),
    FG_OPT_INTEGER("spike_limit_percentage", struct memory_limiter_config,
                   spike_limit_percentage, "0", 0, 100, "spike limit as a percentage, likewise"),
    FG_OPT_END,
};

static int memory_limiter_validate(const void *config, struct fg_err *err)
{
    const struct memory_limiter_config *c = config;
    if (c->limit_mib == 0 && c->limit_percentage == 0)
        return fg_err_set(err, FG_EINVAL, "limit_mib: required (or limit_percentage)");
    if (c->limit_mib > 0 && c->limit_percentage > 0)
        return fg_err_set(err, FG_EINVAL,
                          "limit_percentage: set either limit_mib or limit_percentage");
    if (c->limit_mib > 0 && c->spike_limit_mib >= c->limit_mib)
        return fg_err_set(err, FG_EINVAL, "spike_limit_mib: must be below limit_mib");
    if (c->limit_percentage > 0 && c->spike_limit_percentage >= c->limit_percentage)
        return fg_err_set(err, FG_EINVAL,
                          "spike_limit_percentage: must be below limit_percentage");
    return 0;
}

/* ---- measuring (cross-file internals so the unit test can point them at fixtures) ---- */

/* Resident set size of this process in bytes, 0 when unknown. */
uint64_t fg__memory_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long size = 0, resident = 0;
    if (!f)
        return 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    if (n != 2)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}

/* A limit file: a byte count, or "max" / a huge value for "no limit" (0). */
static int read_limit_file(const char *path, uint64_t *out)
{
    char text[64] = "";
    FILE *f = fopen(path, "re");
    if (!f)
        return FG_ENOTFOUND;
    bool ok = fgets(text, sizeof(text), f) != NULL;
    fclose(f);
    if (!ok)
        return FG_EIO;
    text[strcspn(text, "\r\n")] = '\0';
    if (strcmp(text, "max") == 0) {
        *out = 0;
        return 0;
    }
    int64_t v;
    if (fg_parse_int(text, &v) != 0 || v < 0)
        return FG_EINVAL;
    /* cgroup v1 reports "unlimited" as a page-rounded LONG_MAX */
    *out = (uint64_t)v >= (UINT64_C(1) << 60) ? 0 : (uint64_t)v;
    return 0;
}

/* The memory limit of this process's cgroup (v2, then v1), 0 when none is set. root is the
 * cgroup mount ("/sys/fs/cgroup"), self_cgroup the /proc/self/cgroup file. */
int fg__memory_cgroup_limit(const char *root, const char *self_cgroup, uint64_t *out)
{
    char line[512], path[1024];
    char v2[512] = "", v1[512] = "";
    *out = 0;
    FILE *f = fopen(self_cgroup, "re");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            line[strcspn(line, "\r\n")] = '\0';
            if (strncmp(line, "0::", 3) == 0) {
                snprintf(v2, sizeof(v2), "%s", line + 3);
                continue;
            }
            /* "N:controller,list:/path" */
            char *c1 = strchr(line, ':');
            char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (!c2)
                continue;
            *c2 = '\0';
            for (char *tok = c1 + 1; tok && *tok;) {
                char *comma = strchr(tok, ',');
                size_t n = comma ? (size_t)(comma - tok) : strlen(tok);
                if (n == 6 && strncmp(tok, "memory", 6) == 0)
                    snprintf(v1, sizeof(v1), "%s", c2 + 1);
                tok = comma ? comma + 1 : NULL;
            }
        }
        fclose(f);
    }
    /* v2: the process's own group first, then the root of the (namespaced) mount */
    const char *v2_paths[] = {v2, ""};
    for (size_t i = 0; i < FG_ARRAY_LEN(v2_paths); i++) {
        if (i == 0 && (!v2[0] || strcmp(v2, "/") == 0))
            continue;
        snprintf(path, sizeof(path), "%s%s/memory.max", root, v2_paths[i]);
        if (read_limit_file(path, out) == 0)
            return 0;
    }
    const char *v1_paths[] = {v1, ""};
    for (size_t i = 0; i < FG_ARRAY_LEN(v1_paths); i++) {
        if (i == 0 && (!v1[0] || strcmp(v1, "/") == 0))
            continue;
        snprintf(path, sizeof(path), "%s/memory%s/memory.limit_in_bytes", root, v1_paths[i]);
        if (read_limit_file(path, out) == 0)
            return 0;
    }
    return FG_ENOTFOUND;
}

static uint64_t total_ram(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

/* The limit and spike limit in bytes from the config; base is the cgroup limit (or total
 * memory) for the percentages. */
int fg__memory_limits(int64_t limit_mib, int64_t spike_mib, int64_t limit_pct, int64_t spike_pct,
                      uint64_t base, uint64_t *limit, uint64_t *spike)
{
    if (limit_pct > 0) {
        if (base == 0)
            return FG_EINVAL;
        *limit = base / 100 * (uint64_t)limit_pct;
        *spike = spike_pct > 0 ? base / 100 * (uint64_t)spike_pct : *limit / 5;
    } else {
        *limit = (uint64_t)limit_mib * MIB;
        *spike = spike_mib > 0 ? (uint64_t)spike_mib * MIB : *limit / 5;
    }
    return *spike < *limit ? 0 : FG_EINVAL;
}

/* ---- the processor ---- */

struct memory_limiter {
    struct fg_component base; /* first */
    struct memory_limiter_config cfg;
    struct fg_consumer *next;
    uint64_t limit, soft;
    atomic_bool refusing;
    atomic_uint_fast64_t rss;
    atomic_uint_fast64_t refused_batches, refused_samples;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stopping, thread_running;
    pthread_t thread;
};

/* One measurement; above the soft limit the allocator first gives free memory back, so
 * that RSS measures what is live rather than what glibc keeps cached. */
static void check(struct memory_limiter *m)
{
    uint64_t rss = fg__memory_rss();
    if (rss > m->soft) {
        malloc_trim(0);
        rss = fg__memory_rss();
    }
    atomic_store(&m->rss, rss);
    bool over = rss > m->soft;
    bool was = atomic_exchange(&m->refusing, over);
    if (over != was)
        fg_log(over ? FG_LOG_WARN : FG_LOG_INFO, m->base.id,
               "memory usage %" PRIu64 " MiB is %s the soft limit %" PRIu64
               " MiB: %s new data",
               rss / MIB, over ? "above" : "back below", m->soft / MIB,
               over ? "refusing" : "accepting");
}

static void *checker_main(void *arg)
{
    struct memory_limiter *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t until = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + m->cfg.check_interval_ns;
        ts.tv_sec = until / 1000000000;
        ts.tv_nsec = until % 1000000000;
        pthread_cond_timedwait(&m->wake, &m->mu, &ts);
        if (m->stopping)
            break;
        pthread_mutex_unlock(&m->mu);
        check(m);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static int memory_limiter_consume(struct fg_consumer *self, struct fg_profiles *batch,
                                  struct fg_err *err)
{
    struct memory_limiter *m =
        (struct memory_limiter *)((char *)self - offsetof(struct fg_component, consumer));
    if (atomic_load(&m->refusing)) {
        atomic_fetch_add(&m->refused_batches, 1);
        atomic_fetch_add(&m->refused_samples, batch->n_samples);
        fg_profiles_unref(batch);
        return fg_err_set(err, FG_ERETRYABLE,
                          "memory usage %" PRIu64 " MiB is above the soft limit %" PRIu64
                          " MiB, retry later",
                          (uint64_t)atomic_load(&m->rss) / MIB, m->soft / MIB);
    }
    return fg_consume(m->next, batch, err);
}

static int memory_limiter_start(struct fg_component *c, struct fg_err *err)
{
    struct memory_limiter *m = (struct memory_limiter *)c;
    check(m);
    if (pthread_create(&m->thread, NULL, checker_main, m) != 0)
        return fg_err_set(err, FG_ENOMEM, "%s: cannot start the checker thread", c->id);
    m->thread_running = true;
    fg_log(FG_LOG_INFO, c->id,
           "limit %" PRIu64 " MiB, refusing data above %" PRIu64 " MiB (RSS now %" PRIu64
           " MiB)",
           m->limit / MIB, m->soft / MIB, (uint64_t)atomic_load(&m->rss) / MIB);
    return 0;
}

static int memory_limiter_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    struct memory_limiter *m = (struct memory_limiter *)c;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    pthread_cond_broadcast(&m->wake);
    pthread_mutex_unlock(&m->mu);
    if (m->thread_running)
        pthread_join(m->thread, NULL);
    m->thread_running = false;
    /* Nothing is held here; refusing stays as measured so late callers still get told. */
    return 0;
}

static void memory_limiter_destroy(struct fg_component *c)
{
    struct memory_limiter *m = (struct memory_limiter *)c;
    if (!m)
        return;
    memory_limiter_shutdown(c, 0);
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->mu);
    fg_free(m);
}

static const struct fg_component_ops memory_limiter_ops = {
    .start = memory_limiter_start,
    .shutdown = memory_limiter_shutdown,
    .destroy = memory_limiter_destroy,
};

extern const struct fg_factory fg_memory_limiter_processor_factory;

static int memory_limiter_create(const struct fg_create_args *args, struct fg_component **out,
                                 struct fg_err *err)
{
    const struct memory_limiter_config *cfg = args->config;
    *out = NULL;
    int rc = memory_limiter_validate(cfg, err);
    if (rc)
        return rc;
    if (!args->next)
        return fg_err_set(err, FG_EINVAL, "no next consumer");
    uint64_t base = 0, limit, spike;
    if (cfg->limit_percentage > 0) {
        if (fg__memory_cgroup_limit("/sys/fs/cgroup", "/proc/self/cgroup", &base) != 0 ||
            base == 0)
            base = total_ram();
    }
    if (fg__memory_limits(cfg->limit_mib, cfg->spike_limit_mib, cfg->limit_percentage,
                          cfg->spike_limit_percentage, base, &limit, &spike) != 0)
        return fg_err_set(err, FG_EINVAL, "cannot work out the memory limit");
    struct memory_limiter *m = fg_calloc(1, sizeof(*m));
    if (!m)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->wake, &attr);
    pthread_condattr_destroy(&attr);
    m->base.ops = &memory_limiter_ops;
    m->base.factory = &fg_memory_limiter_processor_factory;
    m->base.consumer.consume = memory_limiter_consume;
    snprintf(m->base.id, sizeof(m->base.id), "%s", args->id ? args->id : "memory_limiter");
    m->cfg = *cfg;
    m->next = args->next;
    m->limit = limit;
    m->soft = limit - spike;
    *out = &m->base;
    return 0;
}

const struct fg_factory fg_memory_limiter_processor_factory = {
    .type = "memory_limiter",
    .kind = FG_KIND_PROCESSOR,
    .config_size = sizeof(struct memory_limiter_config),
    .options = memory_limiter_options,
    .validate = memory_limiter_validate,
    .create = memory_limiter_create,
};
