/* Exporter helper: the settings tables, a bounded FIFO of batches drained by worker
 * threads, and the retry loop with exponential backoff (the Collector's exporterhelper). */
#include "fg_exporter_helper.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_otlp.h"
#include "fg_persistent_queue.h"
#include "file_storage.h"

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

static const char *const sizer_names[] = {"requests", "samples", "bytes", NULL};

const struct fg_option fg_queue_options[] = {
    FG_OPT_BOOLEAN("enabled", struct fg_queue_settings, enabled, "true", "queue at all"),
    FG_OPT_INTEGER("num_consumers", struct fg_queue_settings, num_consumers, "10", 1, 1000,
                   "worker threads sending in parallel"),
    FG_OPT_INTEGER("queue_size", struct fg_queue_settings, queue_size, "1000", 1,
                   INT64_C(1) << 50, "what the queue holds, in sizer units"),
    FG_OPT_CHOICE("sizer", struct fg_queue_settings, sizer, "requests", sizer_names,
                  "what queue_size counts: requests (batches), samples or bytes"),
    FG_OPT_BOOLEAN("block_on_overflow", struct fg_queue_settings, block_on_overflow, "false",
                   "wait for room instead of refusing data"),
    FG_OPT_STR("storage", struct fg_queue_settings, storage, NULL,
               "id of a file_storage extension: keep the queue on disk"),
    FG_OPT_END,
};

/* ---- the queue, workers and retry loop ---- */

struct slot {
    struct fg_profiles *batch;
    uint64_t units;
};

struct fg_exporter {
    char id[128];
    struct fg_exporter_settings settings;
    fg_export_fn send;
    void *ctx;

    pthread_mutex_t mu;
    pthread_cond_t work;  /* queue gained a batch, or shutdown began */
    pthread_cond_t wake;  /* shutdown aborts: waiting retries and the shutdown waiter */
    pthread_cond_t space; /* the memory queue lost a batch (block_on_overflow) */
    struct slot *ring;    /* memory queue: grows up to what queue_size allows */
    size_t cap, head, len;
    uint64_t units;       /* memory queue content in sizer units */
    bool started, stopping, aborting;
    bool deadline_hit; /* shutdown's deadline cut something off */
    int64_t deadline_ns;
    int active; /* workers still running + synchronous sends in flight */
    int blocked; /* enqueue calls waiting for room */

    /* persistent queue: the extension at create, the open queue from start */
    struct fg_component *storage;
    struct fg_pqueue *pq;
    atomic_bool cancel;

    pthread_t *threads;
    size_t n_threads;
    struct fg_exporter_stats stats; /* under mu, queue_size filled in on read */
    struct fg_exporter *registry_next; /* under registry_mu */
};

/* Every live exporter, newest first, so pages can read counters by component id. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fg_exporter *registry;

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
 * with its message in *last (or FG_ESTOPPED when shutdown cut a wait short: not counted). */
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
            /* The caller decides: lost (memory) or left on disk (persistent). */
            fg_err_set(last, FG_ESTOPPED, "shutdown deadline reached while retrying: %s",
                       err.msg);
            return FG_ESTOPPED;
        }
    }
}

static uint64_t units_of(const struct fg_exporter *e, const struct fg_profiles *b)
{
    switch (e->settings.queue.sizer) {
    case FG_SIZER_SAMPLES:
        return batch_samples(b);
    case FG_SIZER_BYTES:
        return fg_profiles_memory(b);
    default:
        return 1;
    }
}

/* A memory-queue batch the shutdown deadline cut off (with mu held). */
static void count_lost(struct fg_exporter *e, uint64_t samples)
{
    e->stats.failed_batches++;
    e->stats.failed_samples += samples;
    e->stats.lost_batches++;
    e->stats.lost_samples += samples;
}

static void *memory_worker(void *arg)
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
        struct slot sl = e->ring[e->head];
        e->ring[e->head].batch = NULL;
        e->head = (e->head + 1) % e->cap;
        e->len--;
        e->units -= sl.units;
        pthread_cond_broadcast(&e->space);
        pthread_mutex_unlock(&e->mu);

        struct fg_err err;
        uint64_t samples = batch_samples(sl.batch);
        int rc = send_with_retry(e, sl.batch, &rng, &err);
        fg_profiles_unref(sl.batch);

        pthread_mutex_lock(&e->mu);
        if (rc == FG_ESTOPPED)
            count_lost(e, samples);
    }
    e->active--;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* Record layout in the persistent queue: [u16 tenant length][tenant][OTLP protobuf]. */
static int encode_record(const struct fg_profiles *b, struct fg_buf *out)
{
    size_t tlen = strnlen(b->tenant, sizeof(b->tenant) - 1);
    uint8_t pre[2] = {(uint8_t)(tlen & 0xff), (uint8_t)(tlen >> 8)};
    int rc = fg_buf_append(out, pre, 2);
    if (rc == 0)
        rc = fg_buf_append(out, b->tenant, tlen);
    if (rc == 0)
        rc = fg_otlp_encode_proto(b, out);
    return rc;
}

static int decode_record(const uint8_t *data, size_t len, struct fg_profiles **out,
                         struct fg_err *err)
{
    *out = NULL;
    if (len < 2)
        return fg_err_set(err, FG_EINVAL, "record too short");
    size_t tlen = (size_t)data[0] | (size_t)data[1] << 8;
    if (tlen > len - 2 || tlen >= sizeof((*out)->tenant))
        return fg_err_set(err, FG_EINVAL, "record: bad tenant length %zu", tlen);
    int rc = fg_otlp_decode_proto(data + 2 + tlen, len - 2 - tlen, out, err);
    if (rc != 0)
        return rc;
    memcpy((*out)->tenant, data + 2, tlen);
    (*out)->tenant[tlen] = '\0';
    return 0;
}

static bool pq_has_ready(struct fg_exporter *e)
{
    struct fg_pqueue_stats st;
    fg_pqueue_stats(e->pq, &st);
    return st.pending_records > st.inflight_records;
}

static void *persistent_worker(void *arg)
{
    struct fg_exporter *e = arg;
    uint64_t rng = seed_next();

    for (;;) {
        pthread_mutex_lock(&e->mu);
        bool stopping = e->stopping;
        bool stop = e->aborting || (stopping && mono_now() >= e->deadline_ns);
        pthread_mutex_unlock(&e->mu);
        if (stop || (stopping && !pq_has_ready(e)))
            break;
        struct fg_pqueue_item item;
        int64_t until = mono_now() + (stopping ? 0 : INT64_C(1000000000));
        int rc = fg_pqueue_take(e->pq, until, &e->cancel, &item);
        if (rc == FG_ENOTFOUND)
            continue;
        if (rc != 0) {
            /* I/O or memory trouble: do not spin on it. */
            pthread_mutex_lock(&e->mu);
            wait_until(e, mono_now() + 100 * INT64_C(1000000));
            pthread_mutex_unlock(&e->mu);
            continue;
        }
        struct fg_profiles *batch = NULL;
        struct fg_err err = {{0}};
        rc = decode_record(item.data, item.len, &batch, &err);
        fg_free(item.data);
        if (rc != 0) {
            fg_log(FG_LOG_ERROR, e->id, "dropping a stored batch of %llu samples: %s",
                   (unsigned long long)item.samples, err.msg);
            pthread_mutex_lock(&e->mu);
            e->stats.failed_batches++;
            e->stats.failed_samples += item.samples;
            pthread_mutex_unlock(&e->mu);
            fg_pqueue_ack(e->pq, item.ticket);
            continue;
        }
        rc = send_with_retry(e, batch, &rng, &err);
        fg_profiles_unref(batch);
        if (rc == FG_ESTOPPED)
            fg_pqueue_nack(e->pq, item.ticket); /* stays on disk */
        else
            fg_pqueue_ack(e->pq, item.ticket); /* sent, or dropped for good and counted */
    }
    pthread_mutex_lock(&e->mu);
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
    bool attr_ok = false, mu_ok = false, work_ok = false, wake_ok = false;
    int rc = FG_ENOMEM;

    *out = NULL;
    if (!e)
        goto fail;
    snprintf(e->id, sizeof(e->id), "%s", id ? id : "exporter");
    e->settings = *settings;
    e->settings.queue.storage = NULL; /* the config's string; only used here */
    e->send = send;
    e->ctx = ctx;
    if (!e->settings.queue.enabled && settings->queue.storage && *settings->queue.storage) {
        rc = fg_err_set(err, FG_EINVAL,
                        "sending_queue.storage: needs the queue (sending_queue.enabled: true)");
        goto fail;
    }
    if (e->settings.queue.enabled) {
        if (e->settings.queue.queue_size < 1 || e->settings.queue.num_consumers < 1) {
            rc = fg_err_set(err, FG_EINVAL,
                            "sending_queue: queue_size and num_consumers must be >= 1");
            goto fail;
        }
        const char *sid = settings->queue.storage;
        if (sid && *sid) {
            const struct fg_create_args *args = fg_create_args_current();
            struct fg_component *x = NULL;
            if (args && args->find_extension)
                x = args->find_extension(args->find_ctx, sid);
            if (!x) {
                rc = fg_err_set(err, FG_EINVAL,
                                "sending_queue.storage: extension \"%s\" is not defined or not "
                                "enabled in service.extensions",
                                sid);
                goto fail;
            }
            if (!fg_file_storage_is(x)) {
                rc = fg_err_set(err, FG_EINVAL,
                                "sending_queue.storage: \"%s\" is not a file_storage extension",
                                sid);
                goto fail;
            }
            e->storage = x;
        }
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
    wake_ok = true;
    if (pthread_cond_init(&e->space, &attr) != 0)
        goto fail;
    pthread_condattr_destroy(&attr);
    pthread_mutex_lock(&registry_mu);
    e->registry_next = registry;
    registry = e;
    pthread_mutex_unlock(&registry_mu);
    *out = e;
    return 0;

fail:
    if (rc == FG_ENOMEM)
        fg_err_set(err, FG_ENOMEM, "exporter %s: out of memory", id ? id : "");
    if (attr_ok)
        pthread_condattr_destroy(&attr);
    if (e) {
        if (wake_ok)
            pthread_cond_destroy(&e->wake);
        if (work_ok)
            pthread_cond_destroy(&e->work);
        if (mu_ok)
            pthread_mutex_destroy(&e->mu);
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

    if (e->storage) {
        int rc = fg_file_storage_open_queue(e->storage, e->id, &e->pq, err);
        if (rc != 0) {
            fg_err_prefix(err, "%s", e->id);
            return rc;
        }
        struct fg_pqueue_stats st;
        fg_pqueue_stats(e->pq, &st);
        pthread_mutex_lock(&e->mu);
        e->stats.torn_records = st.torn_records;
        pthread_mutex_unlock(&e->mu);
        if (st.pending_records > 0)
            fg_log(FG_LOG_INFO, e->id,
                   "persistent queue holds %llu batches (%llu samples) from before",
                   (unsigned long long)st.pending_records,
                   (unsigned long long)st.pending_samples);
    }

    size_t n = (size_t)e->settings.queue.num_consumers;
    e->threads = fg_calloc(n, sizeof(*e->threads));
    if (!e->threads)
        return fg_err_set(err, FG_ENOMEM, "%s: out of memory", e->id);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&e->mu);
        e->active++;
        pthread_mutex_unlock(&e->mu);
        int rc = pthread_create(&e->threads[i], NULL, e->pq ? persistent_worker : memory_worker,
                                e);
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

/* Would u more units overflow the queue? (mu held) An empty queue takes any one batch, so a
 * batch larger than queue_size is not refused forever. */
static bool memory_full(const struct fg_exporter *e, uint64_t u)
{
    return e->len > 0 && e->units + u > (uint64_t)e->settings.queue.queue_size;
}

static bool persistent_full(struct fg_exporter *e, uint64_t u)
{
    struct fg_pqueue_stats st;
    fg_pqueue_stats(e->pq, &st);
    uint64_t have = e->settings.queue.sizer == FG_SIZER_SAMPLES ? st.pending_samples
                    : e->settings.queue.sizer == FG_SIZER_BYTES ? st.pending_bytes
                                                                : st.pending_records;
    return st.pending_records > 0 && have + u > (uint64_t)e->settings.queue.queue_size;
}

static int enqueue_sync(struct fg_exporter *e, struct fg_profiles *batch, struct fg_err *err)
{
    uint64_t samples = batch_samples(batch);
    e->active++;
    pthread_mutex_unlock(&e->mu);
    uint64_t rng = seed_next();
    struct fg_err last = {{0}};
    int rc = send_with_retry(e, batch, &rng, &last);
    fg_profiles_unref(batch);
    pthread_mutex_lock(&e->mu);
    if (rc == FG_ESTOPPED)
        count_lost(e, samples);
    e->active--;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->mu);
    if (rc != 0)
        return fg_err_set(err, rc, "%s: batch of %llu samples not delivered: %s", e->id,
                          (unsigned long long)samples, last.msg);
    return 0;
}

static int enqueue_persistent(struct fg_exporter *e, struct fg_profiles *batch,
                              struct fg_err *err)
{
    uint64_t samples = batch_samples(batch);
    struct fg_buf rec;
    fg_buf_init(&rec, 0);
    int rc = encode_record(batch, &rec);
    fg_profiles_unref(batch);
    if (rc != 0) {
        fg_buf_free(&rec);
        return fg_err_set(err, rc == FG_ENOMEM ? FG_ENOMEM : FG_EINVAL,
                          "%s: cannot encode batch: %s", e->id, fg_strerror(rc));
    }
    uint64_t u = e->settings.queue.sizer == FG_SIZER_SAMPLES ? samples
                 : e->settings.queue.sizer == FG_SIZER_BYTES ? rec.len
                                                             : 1;
    for (;;) {
        bool full = persistent_full(e, u);
        if (full && e->settings.queue.block_on_overflow) {
            pthread_mutex_lock(&e->mu);
            bool stopping = e->stopping;
            if (!stopping) {
                struct timespec ts = to_timespec(mono_now() + 50 * INT64_C(1000000));
                pthread_cond_timedwait(&e->space, &e->mu, &ts);
            }
            pthread_mutex_unlock(&e->mu);
            if (stopping) {
                rc = fg_err_set(err, FG_ESTOPPED, "%s: shutting down", e->id);
                break;
            }
            continue;
        }
        if (full)
            rc = fg_err_set(err, FG_EFULL, "%s: sending queue is full (queue_size %lld)", e->id,
                            (long long)e->settings.queue.queue_size);
        else
            rc = fg_pqueue_append(e->pq, rec.data, rec.len, samples, err);
        if (rc == FG_EFULL && e->settings.queue.block_on_overflow) {
            usleep(50000);
            continue;
        }
        break;
    }
    fg_buf_free(&rec);
    if (rc != 0 && rc != FG_ESTOPPED) {
        pthread_mutex_lock(&e->mu);
        e->stats.enqueue_failed_batches++;
        e->stats.enqueue_failed_samples += samples;
        pthread_mutex_unlock(&e->mu);
        if (rc != FG_EFULL)
            fg_err_prefix(err, "%s", e->id);
    }
    return rc;
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
    if (!e->settings.queue.enabled)
        return enqueue_sync(e, batch, err); /* unlocks */
    if (e->pq) {
        /* Counted as in flight so shutdown waits for the write before closing the queue. */
        e->active++;
        pthread_mutex_unlock(&e->mu);
        int rc = enqueue_persistent(e, batch, err);
        pthread_mutex_lock(&e->mu);
        e->active--;
        pthread_cond_broadcast(&e->wake);
        pthread_mutex_unlock(&e->mu);
        return rc;
    }
    uint64_t u = units_of(e, batch);
    while (memory_full(e, u) && e->settings.queue.block_on_overflow && !e->stopping) {
        e->blocked++;
        pthread_cond_wait(&e->space, &e->mu);
        e->blocked--;
    }
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        fg_profiles_unref(batch);
        return fg_err_set(err, FG_ESTOPPED, "%s: shutting down", e->id);
    }
    if (memory_full(e, u)) {
        e->stats.enqueue_failed_batches++;
        e->stats.enqueue_failed_samples += samples;
        uint64_t have = e->units;
        pthread_mutex_unlock(&e->mu);
        fg_profiles_unref(batch);
        return fg_err_set(err, FG_EFULL, "%s: sending queue is full (%llu of %lld %s)", e->id,
                          (unsigned long long)have, (long long)e->settings.queue.queue_size,
                          sizer_names[e->settings.queue.sizer]);
    }
    if (e->len == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 16;
        struct slot *r = fg_malloc(cap * sizeof(*r));
        if (!r) {
            e->stats.enqueue_failed_batches++;
            e->stats.enqueue_failed_samples += samples;
            pthread_mutex_unlock(&e->mu);
            fg_profiles_unref(batch);
            return fg_err_set(err, FG_ENOMEM, "%s: out of memory", e->id);
        }
        for (size_t i = 0; i < e->len; i++)
            r[i] = e->ring[(e->head + i) % e->cap];
        fg_free(e->ring);
        e->ring = r;
        e->cap = cap;
        e->head = 0;
    }
    e->ring[(e->head + e->len) % e->cap] = (struct slot){batch, u};
    e->len++;
    e->units += u;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int fg_exporter_shutdown(struct fg_exporter *e, int64_t deadline_ns)
{
    pthread_mutex_lock(&e->mu);
    bool first = !e->stopping;
    if (first) {
        e->stopping = true;
        e->deadline_ns = deadline_ns;
    } else if (deadline_ns < e->deadline_ns) {
        e->deadline_ns = deadline_ns;
    }
    /* A reload's successor has attached to our persistent queue: hand it over now. */
    if (e->pq && fg_pqueue_attached(e->pq) > 1) {
        e->aborting = true;
        atomic_store(&e->cancel, true);
    }
    pthread_cond_broadcast(&e->work);
    pthread_cond_broadcast(&e->wake); /* retry waits re-check against the deadline */
    pthread_cond_broadcast(&e->space);
    if (e->pq)
        fg_pqueue_kick(e->pq);

    /* Workers drain the queue and exit when it is empty; wait for that or the deadline. */
    while (e->active > 0 && !e->aborting) {
        if (mono_now() >= e->deadline_ns)
            break;
        struct timespec ts = to_timespec(e->deadline_ns);
        pthread_cond_timedwait(&e->wake, &e->mu, &ts);
    }
    e->aborting = true;
    atomic_store(&e->cancel, true);
    pthread_cond_broadcast(&e->work);
    pthread_cond_broadcast(&e->wake);
    if (e->pq)
        fg_pqueue_kick(e->pq);
    /* A send already inside its request cannot be interrupted; it ends within timeout. */
    while (e->active > 0)
        pthread_cond_wait(&e->wake, &e->mu);

    size_t dropped = e->len;
    uint64_t dropped_samples = 0;
    while (e->len > 0) {
        struct fg_profiles *b = e->ring[e->head].batch;
        e->ring[e->head].batch = NULL;
        e->head = (e->head + 1) % e->cap;
        e->len--;
        dropped_samples += batch_samples(b);
        fg_profiles_unref(b);
        count_lost(e, 0);
    }
    e->stats.failed_samples += dropped_samples;
    e->stats.lost_samples += dropped_samples;
    e->units = 0;
    size_t n_threads = e->n_threads;
    e->n_threads = 0;
    bool cut = e->deadline_hit || dropped > 0 || e->stats.lost_batches > 0;
    uint64_t lost_b = e->stats.lost_batches, lost_s = e->stats.lost_samples;
    pthread_mutex_unlock(&e->mu);

    for (size_t i = 0; i < n_threads; i++)
        pthread_join(e->threads[i], NULL);
    if (first && lost_b > 0)
        fg_log(FG_LOG_ERROR, e->id,
               "shutdown deadline reached: lost %llu batches (%llu samples) still queued or "
               "being retried (%zu were queued)",
               (unsigned long long)lost_b, (unsigned long long)lost_s, dropped);
    if (e->pq) {
        struct fg_pqueue_stats st;
        fg_pqueue_stats(e->pq, &st);
        bool handover = fg_pqueue_attached(e->pq) > 1;
        pthread_mutex_lock(&e->mu);
        e->stats.kept_batches = st.pending_records;
        e->stats.kept_samples = st.pending_samples;
        pthread_mutex_unlock(&e->mu);
        if (handover)
            fg_log(FG_LOG_INFO, e->id,
                   "persistent queue handed over with %llu batches (%llu samples)",
                   (unsigned long long)st.pending_records,
                   (unsigned long long)st.pending_samples);
        else if (st.pending_records > 0)
            fg_log(FG_LOG_WARN, e->id,
                   "shutdown: %llu batches (%llu samples) stay in the persistent queue and are "
                   "sent after the next start",
                   (unsigned long long)st.pending_records,
                   (unsigned long long)st.pending_samples);
        pthread_mutex_lock(&e->mu);
        struct fg_pqueue *pq = e->pq;
        e->pq = NULL;
        pthread_mutex_unlock(&e->mu);
        fg_pqueue_close(pq);
        cut = cut && !handover && st.pending_records > 0;
    }
    return cut ? FG_ETIMEOUT : 0;
}

void fg_exporter_free(struct fg_exporter *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&registry_mu);
    for (struct fg_exporter **pp = &registry; *pp; pp = &(*pp)->registry_next)
        if (*pp == e) {
            *pp = e->registry_next;
            break;
        }
    pthread_mutex_unlock(&registry_mu);
    /* Freed without a shutdown (failed start-up): stop at once. */
    fg_exporter_shutdown(e, mono_now());
    fg_free(e->threads);
    fg_free(e->ring);
    pthread_cond_destroy(&e->space);
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
    out->queue_units = e->units;
    if (e->pq) { /* e->mu keeps shutdown from closing it meanwhile */
        struct fg_pqueue_stats st;
        fg_pqueue_stats(e->pq, &st);
        out->queue_size = st.pending_records;
        out->queue_units = e->settings.queue.sizer == FG_SIZER_SAMPLES ? st.pending_samples
                           : e->settings.queue.sizer == FG_SIZER_BYTES ? st.pending_bytes
                                                                       : st.pending_records;
    }
    pthread_mutex_unlock(&e->mu);
}

int fg_exporter_stats_by_id(const char *id, struct fg_exporter_stats *out, uint64_t *capacity)
{
    int rc = FG_ENOTFOUND;
    pthread_mutex_lock(&registry_mu);
    for (struct fg_exporter *e = registry; e; e = e->registry_next)
        if (strcmp(e->id, id) == 0) {
            fg_exporter_stats(e, out);
            *capacity = e->settings.queue.enabled ? (uint64_t)e->settings.queue.queue_size : 0;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&registry_mu);
    return rc;
}
