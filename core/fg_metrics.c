/* The metrics registry: families of series kept in creation order, get-or-create under one
 * mutex at build time, atomic updates afterwards, Prometheus text on scrape. */
#include "fg_metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"

enum metric_type { M_COUNTER, M_GAUGE, M_HISTOGRAM };

static const double bucket_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,    1,     2.5,  5,     10};
#define N_BUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

struct fg_histogram {
    _Atomic uint64_t buckets[N_BUCKETS + 1]; /* not cumulative; the last is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
};

struct series {
    struct series *next;
    char *labels;
    union {
        struct fg_counter counter;
        struct fg_gauge gauge;
        struct fg_histogram hist;
    } u;
};

struct family {
    struct family *next;
    char *name;
    char *help;
    enum metric_type type;
    struct series *first, **tail;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct family *families, **families_tail = &families;

static int64_t process_start_ns;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((constructor)) static void note_process_start(void)
{
    process_start_ns = mono_ns();
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = fg_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* With reg_mu held. */
static struct series *get_or_create(const char *name, const char *help, enum metric_type type,
                                    const char *labels)
{
    struct family *f;
    for (f = families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            break;
    if (f && f->type != type)
        return NULL; /* one name, one type: a programming error, counted as no series */
    if (!f) {
        f = fg_calloc(1, sizeof(*f));
        if (!f)
            return NULL;
        f->name = dup_str(name);
        f->help = dup_str(help ? help : "");
        if (!f->name || !f->help) {
            fg_free(f->name);
            fg_free(f->help);
            fg_free(f);
            return NULL;
        }
        f->type = type;
        f->tail = &f->first;
        *families_tail = f;
        families_tail = &f->next;
    }
    for (struct series *s = f->first; s; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            return s;
    struct series *s = fg_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->labels = dup_str(labels);
    if (!s->labels) {
        fg_free(s);
        return NULL;
    }
    *f->tail = s;
    f->tail = &s->next;
    return s;
}

static struct series *lookup(const char *name, const char *help, enum metric_type type,
                             const char *labels)
{
    pthread_mutex_lock(&reg_mu);
    struct series *s = get_or_create(name, help, type, labels ? labels : "");
    pthread_mutex_unlock(&reg_mu);
    return s;
}

int fg_metrics_counter(const char *name, const char *help, const char *labels,
                       struct fg_counter **out)
{
    struct series *s = lookup(name, help, M_COUNTER, labels);
    *out = s ? &s->u.counter : NULL;
    return s ? 0 : FG_ENOMEM;
}

int fg_metrics_gauge(const char *name, const char *help, const char *labels,
                     struct fg_gauge **out)
{
    struct series *s = lookup(name, help, M_GAUGE, labels);
    *out = s ? &s->u.gauge : NULL;
    return s ? 0 : FG_ENOMEM;
}

int fg_metrics_histogram(const char *name, const char *help, const char *labels,
                         struct fg_histogram **out)
{
    struct series *s = lookup(name, help, M_HISTOGRAM, labels);
    *out = s ? &s->u.hist : NULL;
    return s ? 0 : FG_ENOMEM;
}

void fg_histogram_observe_ns(struct fg_histogram *h, int64_t ns)
{
    if (!h)
        return;
    if (ns < 0)
        ns = 0;
    double sec = (double)ns / 1e9;
    size_t i = 0;
    while (i < N_BUCKETS && sec > bucket_bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

const char *fg_metrics_labels(char *out, size_t size, ...)
{
    va_list ap;
    size_t j = 0;
    if (size == 0)
        return out;
    va_start(ap, size);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
        const char *v = va_arg(ap, const char *);
        int n = snprintf(out + j, size - j, "%s%s=\"", j ? "," : "", k);
        if (n < 0 || (size_t)n >= size - j)
            break;
        j += (size_t)n;
        for (const char *p = v ? v : ""; *p && j + 3 < size; p++) {
            if (*p == '\\' || *p == '"') {
                out[j++] = '\\';
                out[j++] = *p;
            } else if (*p == '\n') {
                out[j++] = '\\';
                out[j++] = 'n';
            } else {
                out[j++] = *p;
            }
        }
        if (j + 1 < size)
            out[j++] = '"';
    }
    va_end(ap);
    out[j < size ? j : size - 1] = '\0';
    return out;
}

static void render_value_line(struct fg_buf *out, const char *name, const char *suffix,
                              const char *labels, const char *extra, const char *value)
{
    bool any = labels[0] || extra[0];
    fg_buf_printf(out, "%s%s%s%s%s%s%s %s\n", name, suffix, any ? "{" : "", labels,
                  labels[0] && extra[0] ? "," : "", extra, any ? "}" : "", value);
}

static void render_histogram(struct fg_buf *out, const struct family *f, struct series *s)
{
    uint64_t cum = 0;
    char le[48], v[32];
    for (size_t i = 0; i <= N_BUCKETS; i++) {
        cum += atomic_load_explicit(&s->u.hist.buckets[i], memory_order_relaxed);
        if (i < N_BUCKETS)
            snprintf(le, sizeof(le), "le=\"%g\"", bucket_bounds[i]);
        else
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        snprintf(v, sizeof(v), "%llu", (unsigned long long)cum);
        render_value_line(out, f->name, "_bucket", s->labels, le, v);
    }
    snprintf(v, sizeof(v), "%.9f",
             (double)atomic_load_explicit(&s->u.hist.sum_ns, memory_order_relaxed) / 1e9);
    render_value_line(out, f->name, "_sum", s->labels, "", v);
    snprintf(v, sizeof(v), "%llu",
             (unsigned long long)atomic_load_explicit(&s->u.hist.count, memory_order_relaxed));
    render_value_line(out, f->name, "_count", s->labels, "", v);
}

static void render_process(struct fg_buf *out)
{
    struct rusage ru;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    long long rss = 0, pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lld %lld", &pages, &resident) == 2)
            rss = resident * (long long)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    fg_buf_printf(out,
                  "# HELP otelcol_process_uptime_total Uptime of the process in seconds.\n"
                  "# TYPE otelcol_process_uptime_total counter\n"
                  "otelcol_process_uptime_total %.3f\n"
                  "# HELP otelcol_process_memory_rss Total physical memory (resident set size) "
                  "in bytes.\n"
                  "# TYPE otelcol_process_memory_rss gauge\n"
                  "otelcol_process_memory_rss %lld\n"
                  "# HELP otelcol_process_cpu_seconds_total Total CPU user and system time in "
                  "seconds.\n"
                  "# TYPE otelcol_process_cpu_seconds_total counter\n"
                  "otelcol_process_cpu_seconds_total %.3f\n",
                  (double)(mono_ns() - process_start_ns) / 1e9, rss, cpu);
}

int fg_metrics_render(struct fg_buf *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    render_process(out);
    pthread_mutex_lock(&reg_mu);
    for (struct family *f = families; f; f = f->next) {
        const char *suffix = f->type == M_COUNTER ? "_total" : "";
        fg_buf_printf(out, "# HELP %s%s %s\n# TYPE %s%s %s\n", f->name, suffix, f->help,
                      f->name, suffix, type_names[f->type]);
        for (struct series *s = f->first; s; s = s->next) {
            char v[32];
            if (f->type == M_HISTOGRAM) {
                render_histogram(out, f, s);
                continue;
            }
            if (f->type == M_COUNTER)
                snprintf(v, sizeof(v), "%llu", (unsigned long long)fg_counter_get(&s->u.counter));
            else
                snprintf(v, sizeof(v), "%lld", (long long)fg_gauge_get(&s->u.gauge));
            render_value_line(out, f->name, suffix, s->labels, "", v);
        }
    }
    pthread_mutex_unlock(&reg_mu);
    return out->len && out->data ? 0 : FG_ENOMEM;
}

void fg_metrics_each(const char *name, void (*fn)(void *ctx, const char *labels, int64_t value),
                     void *ctx)
{
    pthread_mutex_lock(&reg_mu);
    for (struct family *f = families; f; f = f->next) {
        if (strcmp(f->name, name) != 0 || f->type == M_HISTOGRAM)
            continue;
        for (struct series *s = f->first; s; s = s->next)
            fn(ctx, s->labels,
               f->type == M_COUNTER ? (int64_t)fg_counter_get(&s->u.counter)
                                    : fg_gauge_get(&s->u.gauge));
    }
    pthread_mutex_unlock(&reg_mu);
}

void fg_metrics_reset(void)
{
    pthread_mutex_lock(&reg_mu);
    while (families) {
        struct family *f = families;
        families = f->next;
        while (f->first) {
            struct series *s = f->first;
            f->first = s->next;
            fg_free(s->labels);
            fg_free(s);
        }
        fg_free(f->name);
        fg_free(f->help);
        fg_free(f);
    }
    families_tail = &families;
    pthread_mutex_unlock(&reg_mu);
}

/* ---- request context of the receiver thread ---- */

static _Thread_local const char *req_transport;
static _Thread_local uint64_t req_bytes;

void fg_metrics_set_request(const char *transport, uint64_t bytes)
{
    req_transport = transport;
    req_bytes = bytes;
}

const char *fg_metrics_request_transport(void)
{
    return req_transport ? req_transport : "";
}

uint64_t fg_metrics_request_bytes(void)
{
    return req_bytes;
}

/* ---- run state ---- */

static _Atomic int run_state = FG_RUN_STARTING;
static _Atomic(const void *) run_owner;
static _Atomic int64_t run_since;

void fg_run_state_set(const void *owner, enum fg_run_state state)
{
    atomic_store(&run_owner, owner);
    if (state == FG_RUN_RUNNING && atomic_load(&run_state) != FG_RUN_RUNNING)
        atomic_store(&run_since, (int64_t)time(NULL));
    atomic_store(&run_state, (int)state);
}

void fg_run_state_release(const void *owner, enum fg_run_state state)
{
    /* Not atomic as a pair; the owner changes only on the main thread (start, reload). */
    if (atomic_load(&run_owner) == owner)
        atomic_store(&run_state, (int)state);
}

enum fg_run_state fg_run_state_get(void)
{
    return (enum fg_run_state)atomic_load(&run_state);
}

int64_t fg_run_state_since(void)
{
    return atomic_load(&run_since);
}
