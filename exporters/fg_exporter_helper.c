/* Exporter helper: the settings tables, a bounded FIFO of batches drained by worker
 * threads, and the retry loop with exponential backoff (the Collector's exporterhelper). */
#include "fg_exporter_helper.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_log.h"
#include "fg_model.h"

const struct fg_option fg_retry_options[] = {
    FG_OPT_BOOLEAN("enabled", struct fg_retry_settings, enabled, "true", "retry at all"),
    FG_OPT_DUR("initial_interval", struct fg_retry_settings, initial_interval_ns, "5s", 0,
               INT64_C(3600000000000), "first wait"),
    FG_OPT_DUR("max_interval", struct fg_retry_settings, max_interval_ns, "30s", 0,
               INT64_C(3600000000000), "longest wait between attempts"),
    FG_OPT_DUR("max_elapsed_time", struct fg_retry_settings, max_elapsed_time_ns, "300s", 0,
               INT64_C(86400000000000), "give up after this long (0 = never)"),
    FG_OPT_END,
};

const struct fg_option fg_queue_options[] = {
    FG_OPT_BOOLEAN("enabled", struct fg_queue_settings, enabled, "true", "queue at all"),
    FG_OPT_INTEGER("num_consumers", struct fg_queue_settings, num_consumers, "10", 1, 1000,
                   "worker threads sending in parallel"),
    FG_OPT_INTEGER("queue_size", struct fg_queue_settings, queue_size, "1000", 1, 10000000,
                   "batches the queue holds"),
    FG_OPT_END,
};

/* ---- the queue, workers and retry loop ---- */

struct fg_exporter {
    char id[128];
    struct fg_exporter_settings settings;
    fg_export_fn send;
    void *ctx;

    pthread_mutex_t mu;
    pthread_cond_t work; /* queue gained a batch, or shutdown began */
    pthread_cond_t wake; /* shutdown aborts: waiting retries and the shutdown waiter */
    struct fg_profiles **ring;
    size_t cap, head, len;
    bool started, stopping, aborting;
    bool deadline_hit; /* shutdown's deadline cut something off */
    int64_t deadline_ns;
    int active; /* workers still running + synchronous sends in flight */

    pthread_t *threads;
    size_t n_threads;
    struct fg_exporter_stats stats; /* under mu, queue_size filled in on read */
};

static int64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec to_timespec(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    return ts;
}

/* xorshift64*: jitter only needs to decorrelate workers, not to be unpredictable. */
static double rand_unit(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (double)((x * UINT64_C(2685821657736338717)) >> 11) / 9007199254740992.0;
}

static uint64_t seed_next(void)
{
    static _Atomic uint64_t counter;
    uint64_t n = atomic_fetch_add(&counter, 1) + 1;
    uint64_t s = (uint64_t)mono_now() ^ (n * UINT64_C(0x9E3779B97F4A7C15));
    return s ? s : 1;
}

static uint64_t batch_samples(const struct fg_profiles *b)
{
    return b ? b->n_samples : 0;
}

/* Sleeps until until_ns or until shutdown aborts. Called with mu held. Returns false when
 * woken by the abort. While shutting down a wait never goes past the deadline. */
static bool wait_until(struct fg_exporter *e, int64_t until_ns)
{
    for (;;) {
        if (e->aborting) {
            e->deadline_hit = true;
            return false;
        }
        int64_t now = mono_now();
        if (e->stopping && now >= e->deadline_ns) {
            e->deadline_hit = true;
            return false;
        }
        if (now >= until_ns)
            return true;
        int64_t target = until_ns;
        if (e->stopping && e->deadline_ns < target)
            target = e->deadline_ns;
        struct timespec ts = to_timespec(target);
        pthread_cond_timedwait(&e->wake, &e->mu, &ts);
    }
}

static void count_failed(struct fg_exporter *e, const struct fg_profiles *batch)
{
    pthread_mutex_lock(&e->mu);
    e->stats.failed_batches++;
    e->stats.failed_samples += batch_samples(batch);
    pthread_mutex_unlock(&e->mu);
}

/* One batch through send with the retry policy. Borrows batch. Returns send's last result
 * with its message in *last (or FG_ESTOPPED when shutdown cut a wait short). */
static int send_with_retry(struct fg_exporter *e, struct fg_profiles *batch, uint64_t *rng,
                           struct fg_err *last)
{
    const struct fg_retry_settings *rs = &e->settings.retry;
    int64_t start = mono_now();
    int64_t interval = rs->initial_interval_ns;
    uint64_t samples = batch_samples(batch);

    for (;;) {
        struct fg_err err = {{0}};
        int64_t retry_after = 0;
        int rc = e->send(e->ctx, batch, &retry_after, &err);
        *last = err;
        if (rc == 0) {
            pthread_mutex_lock(&e->mu);
            e->stats.sent_batches++;
            e->stats.sent_samples += samples;
            pthread_mutex_unlock(&e->mu);
            return 0;
        }
        if (rc != FG_ERETRYABLE) {
            fg_log(FG_LOG_ERROR, e->id, "dropping batch of %llu samples: %s (%s)",
                   (unsigned long long)samples, err.msg[0] ? err.msg : "send failed",
                   fg_strerror(rc));
            count_failed(e, batch);
            return rc;
        }
        if (!rs->enabled) {
            fg_log(FG_LOG_ERROR, e->id,
                   "dropping batch of %llu samples: %s (retry_on_failure disabled)",
                   (unsigned long long)samples, err.msg[0] ? err.msg : "send failed");
            count_failed(e, batch);
            return rc;
        }

        int64_t now = mono_now();
        int64_t elapsed = now - start;
        if (rs->max_elapsed_time_ns > 0 && elapsed >= rs->max_elapsed_time_ns) {
            fg_log(FG_LOG_ERROR, e->id,
                   "dropping batch of %llu samples: retries exhausted after %lld ms: %s",
                   (unsigned long long)samples, (long long)(elapsed / 1000000),
                   err.msg[0] ? err.msg : "send failed");
            count_failed(e, batch);
            return rc;
        }

        /* Randomised within ±50% of the current interval, as the Collector's backoff. */
        int64_t wait = (int64_t)((double)interval * (0.5 + rand_unit(rng)));
        if (rs->max_interval_ns > 0 && wait > rs->max_interval_ns)
            wait = rs->max_interval_ns;
        if (retry_after > wait)
            wait = retry_after;
        if (rs->max_elapsed_time_ns > 0 && wait > rs->max_elapsed_time_ns - elapsed)
            wait = rs->max_elapsed_time_ns - elapsed;
        double next = (double)interval * 1.5;
        interval = rs->max_interval_ns > 0 && next > (double)rs->max_interval_ns
                       ? rs->max_interval_ns
                       : (int64_t)next;

        fg_log(FG_LOG_WARN, e->id, "send failed, retrying in %lld ms: %s",
               (long long)(wait / 1000000), err.msg[0] ? err.msg : "retryable error");
        pthread_mutex_lock(&e->mu);
        e->stats.retries++;
        bool go_on = wait_until(e, now + wait);
        pthread_mutex_unlock(&e->mu);
        if (!go_on) {
            fg_log(FG_LOG_ERROR, e->id,
                   "dropping batch of %llu samples: shutdown deadline reached while retrying",
                   (unsigned long long)samples);
            count_failed(e, batch);
            fg_err_set(last, FG_ESTOPPED, "shutdown deadline reached while retrying: %s",
                       err.msg);
            return FG_ESTOPPED;
        }
    }
}

static void *worker_main(void *arg)
{
    struct fg_exporter *e = arg;
    uint64_t rng = seed_next();

    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (e->len == 0 && !e->stopping)
            pthread_cond_wait(&e->work, &e->mu);
        /* Past the deadline nothing new is started; shutdown drops the rest. */
        if (e->aborting || e->len == 0 || (e->stopping && mono_now() >= e->deadline_ns))
            break;
        struct fg_profiles *batch = e->ring[e->head];
        e->ring[e->head] = NULL;
        e->head = (e->head + 1) % e->cap;
        e->len--;
        pthread_mutex_unlock(&e->mu);

        struct fg_err err;
        send_with_retry(e, batch, &rng, &err);
        fg_profiles_unref(batch);

        pthread_mutex_lock(&e->mu);
    }
    e->active--;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int fg_exporter_new(const char *id, const struct fg_exporter_settings *settings,
                    fg_export_fn send, void *ctx, struct fg_exporter **out, struct fg_err *err)
{
    struct fg_exporter *e = fg_calloc(1, sizeof(*e));
    pthread_condattr_t attr;
    bool attr_ok = false, mu_ok = false, work_ok = false;
    int rc = FG_ENOMEM;

    *out = NULL;
    if (!e)
        goto fail;
    snprintf(e->id, sizeof(e->id), "%s", id ? id : "exporter");
    e->settings = *settings;
    e->send = send;
    e->ctx = ctx;
    if (e->settings.queue.enabled) {
        if (e->settings.queue.queue_size < 1 || e->settings.queue.num_consumers < 1) {
            rc = fg_err_set(err, FG_EINVAL,
                            "sending_queue: queue_size and num_consumers must be >= 1");
            goto fail;
        }
        e->cap = (size_t)e->settings.queue.queue_size;
        e->ring = fg_calloc(e->cap, sizeof(*e->ring));
        if (!e->ring)
            goto fail;
    }
    if (pthread_mutex_init(&e->mu, NULL) != 0)
        goto fail;
    mu_ok = true;
    if (pthread_condattr_init(&attr) != 0)
        goto fail;
    attr_ok = true;
    /* Waits are against CLOCK_MONOTONIC so wall-clock jumps do not stretch backoffs. */
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&e->work, &attr) != 0)
        goto fail;
    work_ok = true;
    if (pthread_cond_init(&e->wake, &attr) != 0)
        goto fail;
    pthread_condattr_destroy(&attr);
    *out = e;
    return 0;

fail:
    if (rc == FG_ENOMEM)
        fg_err_set(err, FG_ENOMEM, "exporter %s: out of memory", id ? id : "");
    if (attr_ok)
        pthread_condattr_destroy(&attr);
    if (e) {
        if (work_ok)
            pthread_cond_destroy(&e->work);
        if (mu_ok)
            pthread_mutex_destroy(&e->mu);
        fg_free(e->ring);
        fg_free(e);
    }
    return rc;
}

int fg_exporter_start(struct fg_exporter *e, struct fg_err *err)
{
    pthread_mutex_lock(&e->mu);
    if (e->started || e->stopping) {
        pthread_mutex_unlock(&e->mu);
        return fg_err_set(err, FG_EINVAL, "%s: started twice", e->id);
    }
    e->started = true;
    pthread_mutex_unlock(&e->mu);
    if (!e->settings.queue.enabled)
        return 0;

    size_t n = (size_t)e->settings.queue.num_consumers;
    e->threads = fg_calloc(n, sizeof(*e->threads));
    if (!e->threads)
        return fg_err_set(err, FG_ENOMEM, "%s: out of memory", e->id);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&e->mu);
        e->active++;
        pthread_mutex_unlock(&e->mu);
        int rc = pthread_create(&e->threads[i], NULL, worker_main, e);
        if (rc != 0) {
            pthread_mutex_lock(&e->mu);
            e->active--;
            pthread_mutex_unlock(&e->mu);
            /* The workers already running are stopped by shutdown / free. */
            return fg_err_set(err, FG_ENOMEM, "%s: cannot start worker thread: %s", e->id,
                              strerror(rc));
        }
        e->n_threads++;
    }
    return 0;
}

int fg_exporter_enqueue(struct fg_exporter *e, struct fg_profiles *batch, struct fg_err *err)
{
    uint64_t samples = batch_samples(batch);

    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        fg_profiles_unref(batch);
        return fg_err_set(err, FG_ESTOPPED, "%s: shutting down", e->id);
    }
    if (!e->settings.queue.enabled) {
        e->active++;
        pthread_mutex_unlock(&e->mu);
        uint64_t rng = seed_next();
        struct fg_err last = {{0}};
        int rc = send_with_retry(e, batch, &rng, &last);
        fg_profiles_unref(batch);
        pthread_mutex_lock(&e->mu);
        e->active--;
        pthread_cond_broadcast(&e->wake);
        pthread_mutex_unlock(&e->mu);
        if (rc != 0)
            return fg_err_set(err, rc, "%s: batch of %llu samples not delivered: %s", e->id,
                              (unsigned long long)samples, last.msg);
        return 0;
    }
    if (e->len == e->cap) {
        e->stats.enqueue_failed_batches++;
        e->stats.enqueue_failed_samples += samples;
        pthread_mutex_unlock(&e->mu);
        fg_profiles_unref(batch);
        return fg_err_set(err, FG_EFULL, "%s: sending queue is full (%zu batches)", e->id,
                          e->cap);
    }
    e->ring[(e->head + e->len) % e->cap] = batch;
    e->len++;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int fg_exporter_shutdown(struct fg_exporter *e, int64_t deadline_ns)
{
    pthread_mutex_lock(&e->mu);
    if (!e->stopping) {
        e->stopping = true;
        e->deadline_ns = deadline_ns;
    } else if (deadline_ns < e->deadline_ns) {
        e->deadline_ns = deadline_ns;
    }
    pthread_cond_broadcast(&e->work);
    pthread_cond_broadcast(&e->wake); /* retry waits re-check against the deadline */

    /* Workers drain the queue and exit when it is empty; wait for that or the deadline. */
    while (e->active > 0 && !e->aborting) {
        if (mono_now() >= e->deadline_ns)
            break;
        struct timespec ts = to_timespec(e->deadline_ns);
        pthread_cond_timedwait(&e->wake, &e->mu, &ts);
    }
    e->aborting = true;
    pthread_cond_broadcast(&e->work);
    pthread_cond_broadcast(&e->wake);
    /* A send already inside its request cannot be interrupted; it ends within timeout. */
    while (e->active > 0)
        pthread_cond_wait(&e->wake, &e->mu);

    size_t dropped = e->len;
    uint64_t dropped_samples = 0;
    while (e->len > 0) {
        struct fg_profiles *b = e->ring[e->head];
        e->ring[e->head] = NULL;
        e->head = (e->head + 1) % e->cap;
        e->len--;
        dropped_samples += batch_samples(b);
        fg_profiles_unref(b);
    }
    e->stats.failed_batches += dropped;
    e->stats.failed_samples += dropped_samples;
    size_t n_threads = e->n_threads;
    e->n_threads = 0;
    bool cut = e->deadline_hit || dropped > 0;
    pthread_mutex_unlock(&e->mu);

    for (size_t i = 0; i < n_threads; i++)
        pthread_join(e->threads[i], NULL);
    if (dropped > 0)
        fg_log(FG_LOG_ERROR, e->id,
               "shutdown deadline reached: dropped %zu queued batches (%llu samples)", dropped,
               (unsigned long long)dropped_samples);
    return cut ? FG_ETIMEOUT : 0;
}

void fg_exporter_free(struct fg_exporter *e)
{
    if (!e)
        return;
    /* Freed without a shutdown (failed start-up): stop at once. */
    fg_exporter_shutdown(e, mono_now());
    fg_free(e->threads);
    fg_free(e->ring);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->work);
    pthread_mutex_destroy(&e->mu);
    fg_free(e);
}

void fg_exporter_stats(struct fg_exporter *e, struct fg_exporter_stats *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    out->queue_size = e->len;
    pthread_mutex_unlock(&e->mu);
}
