/* Processor "batch": merges incoming batches through the dictionary merge and sends them on
 * when send_batch_size samples are pending or timeout has passed since the first one. */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_log.h"
#include "fg_model.h"
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

struct batch_processor {
    struct fg_component base;
    struct batch_config cfg;
    struct fg_consumer *next;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    struct fg_profiles *pending; /* merged so far; NULL when empty */
    int64_t pending_since_ns;
    bool stopping;
    bool timer_running;
    pthread_t timer;
};

/* Sends one merged batch on; the caller holds no lock. */
static int send_on(struct batch_processor *b, struct fg_profiles *batch, struct fg_err *err)
{
    uint64_t samples = batch->n_samples;
    struct fg_err local = {{0}};
    int rc = fg_consume(b->next, batch, &local);
    if (rc) {
        fg_log(FG_LOG_WARN, b->base.id, "next component refused a batch of %llu samples: %s",
               (unsigned long long)samples, local.msg);
        if (err)
            *err = local;
    }
    return rc;
}

static struct fg_profiles *take_pending(struct batch_processor *b)
{
    struct fg_profiles *out = b->pending;
    b->pending = NULL;
    return out;
}

static int batch_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct batch_processor *b = (struct batch_processor *)((char *)self -
                                                           offsetof(struct fg_component, consumer));
    if (b->cfg.timeout_ns == 0) /* Collector semantics: no timeout means no batching */
        return send_on(b, batch, err);
    struct fg_profiles *ready[2] = {NULL, NULL};
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    if (b->stopping) {
        pthread_mutex_unlock(&b->mu);
        fg_profiles_unref(batch);
        return fg_err_set(err, FG_ESTOPPED, "shutting down");
    }
    /* keep sent batches under send_batch_max_size when both together would pass it */
    if (b->pending && b->cfg.send_batch_max_size &&
        b->pending->n_samples + batch->n_samples > (uint64_t)b->cfg.send_batch_max_size)
        ready[0] = take_pending(b);
    if (!b->pending) {
        if ((rc = fg_profiles_new(&b->pending)) != 0) {
            fg_err_set(err, rc, "out of memory");
            goto out;
        }
        b->pending_since_ns = fg_now_ns();
        pthread_cond_signal(&b->wake);
    }
    if ((rc = fg_profiles_merge(b->pending, batch, err)) != 0) {
        /* the accumulated batch stays valid (a merge only ever appends whole entries), so
         * send what it holds; the sender retries this request: at least once, never lost */
        fg_log(FG_LOG_ERROR, b->base.id, "merge failed (%s); sending %llu pending samples early",
               err ? err->msg : "out of memory", (unsigned long long)b->pending->n_samples);
        ready[1] = take_pending(b);
        rc = FG_ERETRYABLE;
        goto out;
    }
    if (b->pending->n_samples >= (uint64_t)b->cfg.send_batch_size)
        ready[1] = take_pending(b);
out:
    pthread_mutex_unlock(&b->mu);
    fg_profiles_unref(batch);
    for (int i = 0; i < 2; i++) {
        if (!ready[i])
            continue;
        int send_rc = send_on(b, ready[i], err);
        if (send_rc && !rc)
            rc = send_rc;
    }
    return rc;
}

static void *batch_timer(void *arg)
{
    struct batch_processor *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->stopping) {
        if (!b->pending) {
            pthread_cond_wait(&b->wake, &b->mu);
            continue;
        }
        int64_t due = b->pending_since_ns + b->cfg.timeout_ns;
        int64_t now = fg_now_ns();
        if (now < due) {
            struct timespec ts = {due / 1000000000, due % 1000000000};
            pthread_cond_timedwait(&b->wake, &b->mu, &ts);
            continue;
        }
        struct fg_profiles *ready = take_pending(b);
        pthread_mutex_unlock(&b->mu);
        send_on(b, ready, NULL);
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
    struct fg_profiles *rest = take_pending(b);
    pthread_mutex_unlock(&b->mu);
    if (b->timer_running) {
        pthread_join(b->timer, NULL);
        b->timer_running = false;
    }
    if (rest) {
        fg_log(FG_LOG_DEBUG, c->id, "flushing %llu samples on shutdown",
               (unsigned long long)rest->n_samples);
        return send_on(b, rest, NULL);
    }
    return 0;
}

static void batch_destroy(struct fg_component *c)
{
    struct batch_processor *b = (struct batch_processor *)c;
    fg_profiles_unref(b->pending);
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
