/* Processor "batch": merges incoming batches through the dictionary merge and sends them on
 * when send_batch_size samples are pending or timeout has passed since the first one. Batches
 * of different tenants are never merged: each tenant has its own pending batch. An input
 * larger than send_batch_max_size is cut into parts of at most that many samples. */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_model_select.h"
#include "fg_service.h"

struct batch_config {
    int64_t timeout_ns;
    int64_t send_batch_size;
    int64_t send_batch_max_size;
};

static const struct fg_option batch_options[] = {
    FG_OPT_DUR("timeout", struct batch_config, timeout_ns, "200ms", 0, INT64_C(3600000000000),
               "send a partial batch after this long"),
    FG_OPT_INTEGER("send_batch_size", struct batch_config, send_batch_size, "8192", 1, INT32_MAX,
                   "samples that trigger a send"),
    FG_OPT_INTEGER("send_batch_max_size", struct batch_config, send_batch_max_size, "0", 0,
                   INT32_MAX, "upper bound on samples per batch sent (0 = no bound)"),
    FG_OPT_END,
};

static int batch_validate(const void *config, struct fg_err *err)
{
    const struct batch_config *cfg = config;
    if (cfg->send_batch_max_size && cfg->send_batch_max_size < cfg->send_batch_size)
        return fg_err_set(err, FG_EINVAL,
                          "send_batch_max_size: must be 0 or at least send_batch_size");
    return 0;
}

/* What one tenant has pending: merged so far, never empty. */
struct pending {
    struct fg_profiles *batch;
    int64_t since_ns;
};

struct batch_processor {
    struct fg_component base;
    struct batch_config cfg;
    struct fg_consumer *next;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    struct pending *pending; /* one per tenant with data waiting, in no order */
    size_t n_pending, cap_pending;
    /* Batches the next component refused with a retryable error: acknowledged data, so
     * they are kept and offered again, oldest first; while any is held, new data is
     * refused (backpressure) instead of piling up. */
    struct fg_profiles **held;
    size_t n_held, cap_held;
    uint64_t held_samples;
    int64_t retry_at_ns;
    int64_t backoff_ns;
    bool stopping;
    bool timer_running;
    pthread_t timer;
};

#define HOLD_BACKOFF_MIN_NS (100 * INT64_C(1000000))
#define HOLD_BACKOFF_MAX_NS (5 * INT64_C(1000000000))

static bool retryable(int rc)
{
    return rc == FG_EFULL || rc == FG_ERETRYABLE || rc == FG_ENOMEM || rc == FG_ESTOPPED;
}

/* Keeps a refused batch (at the front when it was the oldest); called with the lock held.
 * Returns false when even the bookkeeping cannot grow. */
static bool hold(struct batch_processor *b, struct fg_profiles *batch, bool front)
{
    if (b->n_held == b->cap_held) {
        size_t cap = b->cap_held ? b->cap_held * 2 : 4;
        struct fg_profiles **bigger = fg_realloc(b->held, cap * sizeof(*bigger));
        if (!bigger)
            return false;
        b->held = bigger;
        b->cap_held = cap;
    }
    if (front) {
        memmove(b->held + 1, b->held, b->n_held * sizeof(*b->held));
        b->held[0] = batch;
    } else {
        b->held[b->n_held] = batch;
    }
    b->n_held++;
    b->held_samples += batch->n_samples;
    int64_t now = fg_now_ns();
    b->backoff_ns = b->backoff_ns ? FG_MIN(b->backoff_ns * 2, HOLD_BACKOFF_MAX_NS)
                                  : HOLD_BACKOFF_MIN_NS;
    b->retry_at_ns = now + b->backoff_ns;
    pthread_cond_signal(&b->wake);
    return true;
}

/* Sends one merged batch on; the caller holds no lock. A retryable refusal keeps the batch
 * (it holds data already acknowledged); a permanent one drops it and says so. */
static int send_on(struct batch_processor *b, struct fg_profiles *batch, bool front,
                   struct fg_err *err)
{
    uint64_t samples = batch->n_samples;
    struct fg_err local = {{0}};
    fg_profiles_ref(batch); /* the next component takes one reference whatever happens */
    int rc = fg_consume(b->next, batch, &local);
    if (rc == 0) {
        fg_profiles_unref(batch);
        pthread_mutex_lock(&b->mu);
        b->backoff_ns = 0;
        pthread_mutex_unlock(&b->mu);
        return 0;
    }
    if (err)
        *err = local;
    if (retryable(rc)) {
        pthread_mutex_lock(&b->mu);
        bool kept = hold(b, batch, front);
        pthread_mutex_unlock(&b->mu);
        if (kept) {
            fg_log(FG_LOG_WARN, b->base.id,
                   "next component refused a batch of %llu samples (%s); holding it and "
                   "refusing new data until it is accepted",
                   (unsigned long long)samples, local.msg);
            return rc;
        }
    }
    fg_log(FG_LOG_ERROR, b->base.id, "dropped a batch of %llu samples: %s",
           (unsigned long long)samples, local.msg);
    fg_profiles_unref(batch);
    return rc;
}

/* Sends the batches of ready that are not NULL, in order. A held batch counts as accepted:
 * it carries the request's data safely; the first permanent refusal is returned. */
static int send_ready(struct batch_processor *b, struct fg_profiles **ready, size_t n,
                      struct fg_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ready[i])
            continue;
        int send_rc = send_on(b, ready[i], false, err);
        if (send_rc && !retryable(send_rc) && !rc)
            rc = send_rc;
    }
    return rc;
}

/* Offers the oldest held batch again; returns false when there was none. */
static bool retry_held(struct batch_processor *b)
{
    pthread_mutex_lock(&b->mu);
    if (b->n_held == 0) {
        pthread_mutex_unlock(&b->mu);
        return false;
    }
    struct fg_profiles *batch = b->held[0];
    memmove(b->held, b->held + 1, (b->n_held - 1) * sizeof(*b->held));
    b->n_held--;
    b->held_samples -= batch->n_samples;
    pthread_mutex_unlock(&b->mu);
    send_on(b, batch, true, NULL);
    return true;
}

/* Removes tenant slot i (the last slot moves into its place) and returns its batch. */
static struct fg_profiles *take_pending(struct batch_processor *b, size_t i)
{
    struct fg_profiles *out = b->pending[i].batch;
    b->pending[i] = b->pending[--b->n_pending];
    return out;
}

static size_t find_pending(struct batch_processor *b, const char *tenant)
{
    for (size_t i = 0; i < b->n_pending; i++)
        if (strcmp(b->pending[i].batch->tenant, tenant) == 0)
            return i;
    return b->n_pending;
}

/* A new slot holding batch (taken on success); returns its index or n_pending on out of
 * memory. */
static size_t adopt_pending(struct batch_processor *b, struct fg_profiles *batch)
{
    if (b->n_pending == b->cap_pending) {
        size_t cap = b->cap_pending ? b->cap_pending * 2 : 4;
        struct pending *p = fg_realloc(b->pending, cap * sizeof(*p));
        if (!p)
            return b->n_pending;
        b->pending = p;
        b->cap_pending = cap;
    }
    b->pending[b->n_pending] = (struct pending){batch, fg_now_ns()};
    pthread_cond_signal(&b->wake);
    return b->n_pending++;
}

/* A new empty slot for tenant; returns its index or n_pending on out of memory. */
static size_t add_pending(struct batch_processor *b, const char *tenant)
{
    struct fg_profiles *batch = NULL;
    if (fg_profiles_new(&batch) != 0)
        return b->n_pending;
    /* merge leaves the tenant alone: the slot's batch carries it on */
    snprintf(batch->tenant, sizeof(batch->tenant), "%s", tenant);
    size_t slot = adopt_pending(b, batch);
    if (slot == b->n_pending)
        fg_profiles_unref(batch);
    return slot;
}

static size_t parts_needed(const struct fg_profiles *batch, uint64_t max)
{
    return (size_t)((batch->n_samples + max - 1) / max);
}

/* Cuts batch into parts_needed(batch, max) new batches of max samples each (the last one
 * may hold fewer), in order, each with a dictionary of only what its part uses; parts must
 * have room for them. On failure no part is left. */
static int split_batch(const struct fg_profiles *batch, uint64_t max, struct fg_profiles **parts)
{
    size_t n = parts_needed(batch, max);
    size_t made = 0;
    for (; made < n; made++) {
        struct fg_profiles *part = NULL;
        struct fg_copier *copier = NULL;
        int rc = fg_profiles_new(&part);
        if (rc == 0) {
            snprintf(part->tenant, sizeof(part->tenant), "%s", batch->tenant);
            rc = fg_copier_new(part, batch, &copier);
        }
        if (rc == 0)
            rc = fg_copier_sample_range(copier, made * max, max);
        fg_copier_free(copier);
        if (rc) {
            fg_profiles_unref(part);
            goto fail;
        }
        parts[made] = part;
    }
    return 0;
fail:
    while (made)
        fg_profiles_unref(parts[--made]);
    return FG_ENOMEM;
}

/* Why new data is refused right now (called with the lock held), or 0. */
static int refuse_new_data(struct batch_processor *b, struct fg_err *err)
{
    if (b->stopping)
        return fg_err_set(err, FG_ESTOPPED, "shutting down");
    if (b->n_held)
        return fg_err_set(err, FG_ERETRYABLE,
                          "downstream is refusing data; %llu samples waiting to be sent",
                          (unsigned long long)b->held_samples);
    return 0;
}

/* Without batching (timeout 0) an oversized input still leaves in parts, as in the
 * Collector. The first refusal is the answer; parts already sent may arrive twice when the
 * sender retries (at least once). */
static int pass_through_split(struct batch_processor *b, struct fg_profiles *batch,
                              struct fg_err *err)
{
    uint64_t max = (uint64_t)b->cfg.send_batch_max_size;
    size_t n = parts_needed(batch, max);
    struct fg_profiles **parts = fg_calloc(n, sizeof(*parts));
    int rc = parts ? split_batch(batch, max, parts) : FG_ENOMEM;
    fg_profiles_unref(batch);
    if (rc) {
        fg_free(parts);
        return fg_err_set(err, rc, "out of memory splitting a batch");
    }
    size_t i = 0;
    while (i < n && rc == 0)
        rc = fg_consume(b->next, parts[i++], err);
    while (i < n)
        fg_profiles_unref(parts[i++]);
    fg_free(parts);
    return rc;
}

/* Takes an input larger than send_batch_max_size: the tenant's pending batch leaves first,
 * then the input's full parts; its last part becomes the pending batch when it is below
 * send_batch_size. The input is accepted as a whole or refused as a whole (nothing of it
 * is sent before it is split). */
static int consume_oversized(struct batch_processor *b, struct fg_profiles *batch,
                             struct fg_err *err)
{
    uint64_t max = (uint64_t)b->cfg.send_batch_max_size;
    pthread_mutex_lock(&b->mu);
    int rc = refuse_new_data(b, err); /* before the work of splitting */
    pthread_mutex_unlock(&b->mu);
    size_t n = parts_needed(batch, max);
    /* ready[0] is for the pending batch, the parts follow */
    struct fg_profiles **ready = rc ? NULL : fg_calloc(n + 1, sizeof(*ready));
    if (!rc && (!ready || split_batch(batch, max, ready + 1)))
        rc = fg_err_set(err, FG_ENOMEM, "out of memory splitting a batch of %llu samples",
                        (unsigned long long)batch->n_samples);
    fg_profiles_unref(batch);
    if (rc) {
        fg_free(ready);
        return rc;
    }
    pthread_mutex_lock(&b->mu);
    if ((rc = refuse_new_data(b, err)) != 0) {
        pthread_mutex_unlock(&b->mu);
        for (size_t i = 1; i <= n; i++)
            fg_profiles_unref(ready[i]);
        fg_free(ready);
        return rc;
    }
    size_t slot = find_pending(b, ready[1]->tenant);
    if (slot < b->n_pending)
        ready[0] = take_pending(b, slot);
    struct fg_profiles *last = ready[n];
    /* a pending batch needs its slot; without one the part is simply sent now */
    if (last->n_samples < (uint64_t)b->cfg.send_batch_size &&
        adopt_pending(b, last) < b->n_pending)
        ready[n] = NULL;
    pthread_mutex_unlock(&b->mu);
    rc = send_ready(b, ready, n + 1, err);
    fg_free(ready);
    return rc;
}

static int batch_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct batch_processor *b = (struct batch_processor *)((char *)self -
                                                           offsetof(struct fg_component, consumer));
    bool oversized = b->cfg.send_batch_max_size &&
                     batch->n_samples > (uint64_t)b->cfg.send_batch_max_size;
    if (b->cfg.timeout_ns == 0) /* Collector semantics: no timeout means no batching */
        return oversized ? pass_through_split(b, batch, err) : fg_consume(b->next, batch, err);
    if (oversized)
        return consume_oversized(b, batch, err);
    struct fg_profiles *ready[2] = {NULL, NULL};
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    if ((rc = refuse_new_data(b, err)) != 0) {
        pthread_mutex_unlock(&b->mu);
        fg_profiles_unref(batch);
        return rc;
    }
    size_t slot = find_pending(b, batch->tenant);
    /* keep sent batches under send_batch_max_size when both together would pass it */
    if (slot < b->n_pending && b->cfg.send_batch_max_size &&
        b->pending[slot].batch->n_samples + batch->n_samples > (uint64_t)b->cfg.send_batch_max_size) {
        ready[0] = take_pending(b, slot);
        slot = b->n_pending;
    }
    if (slot == b->n_pending && (slot = add_pending(b, batch->tenant)) == b->n_pending) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto out;
    }
    struct fg_profiles *pend = b->pending[slot].batch;
    if ((rc = fg_profiles_merge(pend, batch, err)) != 0) {
        /* the accumulated batch stays valid (a merge only ever appends whole entries), so
         * send what it holds; the sender retries this request: at least once, never lost */
        fg_log(FG_LOG_ERROR, b->base.id, "merge failed (%s); sending %llu pending samples early",
               err ? err->msg : "out of memory", (unsigned long long)pend->n_samples);
        ready[1] = take_pending(b, slot);
        rc = FG_ERETRYABLE;
        goto out;
    }
    if (pend->n_samples >= (uint64_t)b->cfg.send_batch_size)
        ready[1] = take_pending(b, slot);
out:
    pthread_mutex_unlock(&b->mu);
    fg_profiles_unref(batch);
    int send_rc = send_ready(b, ready, 2, err);
    return rc ? rc : send_rc;
}

static void *batch_timer(void *arg)
{
    struct batch_processor *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->stopping) {
        int64_t now = fg_now_ns();
        if (b->n_held && now >= b->retry_at_ns) {
            pthread_mutex_unlock(&b->mu);
            retry_held(b);
            pthread_mutex_lock(&b->mu);
            continue;
        }
        if (b->n_pending == 0 && b->n_held == 0) {
            pthread_cond_wait(&b->wake, &b->mu);
            continue;
        }
        int64_t due = INT64_MAX;
        size_t oldest = b->n_pending;
        for (size_t i = 0; i < b->n_pending; i++)
            if (oldest == b->n_pending || b->pending[i].since_ns < b->pending[oldest].since_ns)
                oldest = i;
        if (oldest < b->n_pending)
            due = b->pending[oldest].since_ns + b->cfg.timeout_ns;
        if (b->n_held)
            due = FG_MIN(due, b->retry_at_ns);
        if (now < due) {
            struct timespec ts = {due / 1000000000, due % 1000000000};
            pthread_cond_timedwait(&b->wake, &b->mu, &ts);
            continue;
        }
        if (oldest == b->n_pending || now < b->pending[oldest].since_ns + b->cfg.timeout_ns)
            continue; /* a held batch is due: handled at the top */
        struct fg_profiles *ready = take_pending(b, oldest);
        pthread_mutex_unlock(&b->mu);
        send_on(b, ready, false, NULL);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static int batch_start(struct fg_component *c, struct fg_err *err)
{
    struct batch_processor *b = (struct batch_processor *)c;
    if (b->cfg.timeout_ns == 0)
        return 0;
    int rc = pthread_create(&b->timer, NULL, batch_timer, b);
    if (rc)
        return fg_err_set(err, FG_ENOMEM, "cannot start timer thread: %s", strerror(rc));
    b->timer_running = true;
    return 0;
}

static int batch_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    struct batch_processor *b = (struct batch_processor *)c;
    pthread_mutex_lock(&b->mu);
    b->stopping = true;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->mu);
    if (b->timer_running) {
        pthread_join(b->timer, NULL);
        b->timer_running = false;
    }
    int rc = 0;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        struct fg_profiles *rest = b->n_pending ? take_pending(b, b->n_pending - 1) : NULL;
        pthread_mutex_unlock(&b->mu);
        if (!rest)
            break;
        fg_log(FG_LOG_DEBUG, c->id, "flushing %llu samples on shutdown",
               (unsigned long long)rest->n_samples);
        int send_rc = send_on(b, rest, false, NULL);
        if (send_rc && !rc)
            rc = send_rc;
    }
    /* offer what is held until the deadline; what is left then is lost, and said so */
    for (;;) {
        pthread_mutex_lock(&b->mu);
        size_t n = b->n_held;
        int64_t wait = b->retry_at_ns - fg_now_ns();
        pthread_mutex_unlock(&b->mu);
        if (n == 0)
            break;
        if (fg_now_ns() >= deadline_ns) {
            pthread_mutex_lock(&b->mu);
            fg_log(FG_LOG_ERROR, c->id,
                   "shutdown deadline passed: lost %zu batches (%llu samples) the next "
                   "component kept refusing",
                   b->n_held, (unsigned long long)b->held_samples);
            pthread_mutex_unlock(&b->mu);
            return FG_ETIMEOUT;
        }
        if (wait > 0) {
            int64_t nap = FG_MIN(wait, deadline_ns - fg_now_ns());
            struct timespec ts = {nap / 1000000000, nap % 1000000000};
            nanosleep(&ts, NULL);
        }
        retry_held(b);
    }
    return rc;
}

static void batch_destroy(struct fg_component *c)
{
    struct batch_processor *b = (struct batch_processor *)c;
    for (size_t i = 0; i < b->n_pending; i++)
        fg_profiles_unref(b->pending[i].batch);
    fg_free(b->pending);
    for (size_t i = 0; i < b->n_held; i++)
        fg_profiles_unref(b->held[i]);
    fg_free(b->held);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->wake);
    fg_free(b);
}

static const struct fg_component_ops batch_ops = {
    .start = batch_start,
    .shutdown = batch_shutdown,
    .destroy = batch_destroy,
};

static int batch_create(const struct fg_create_args *args, struct fg_component **out,
                        struct fg_err *err)
{
    struct batch_processor *b = fg_calloc(1, sizeof(*b));
    if (!b)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    b->base.ops = &batch_ops;
    b->base.consumer.consume = batch_consume;
    b->cfg = *(const struct batch_config *)args->config;
    b->next = args->next;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&b->wake, &attr);
    pthread_condattr_destroy(&attr);
    *out = &b->base;
    return 0;
}

const struct fg_factory fg_batch_processor_factory = {
    .type = "batch",
    .kind = FG_KIND_PROCESSOR,
    .config_size = sizeof(struct batch_config),
    .options = batch_options,
    .validate = batch_validate,
    .create = batch_create,
};
