/* Counting consumers: the series are made once here, the hot path only adds atomically
 * (a receiver's transport series are made the first time that transport is seen). */
#include "fg_counting.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_metrics.h"
#include "fg_model.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct transport {
    _Atomic(const char *) name; /* points at text; set last, once the counters are there */
    char text[24];
    struct fg_counter *accepted, *refused, *failed, *requests, *bytes;
};

struct fg_counting {
    struct fg_consumer consumer;
    struct fg_consumer *next;
    enum fg_counting_role role;
    char id[128];
    struct fg_counter *ok, *bad;
    struct fg_histogram *latency;
    pthread_mutex_t mu; /* adding a transport */
    struct transport tr[8];
};

static struct transport *transport_of(struct fg_counting *t, const char *name)
{
    for (size_t i = 0; i < FG_ARRAY_LEN(t->tr); i++) {
        const char *n = atomic_load_explicit(&t->tr[i].name, memory_order_acquire);
        if (n && strncmp(n, name, sizeof(t->tr[i].text) - 1) == 0)
            return &t->tr[i];
    }
    struct transport *found = NULL;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < FG_ARRAY_LEN(t->tr) && !found; i++) {
        const char *n = atomic_load(&t->tr[i].name);
        if (n && strncmp(n, name, sizeof(t->tr[i].text) - 1) == 0) {
            found = &t->tr[i];
        } else if (!n) {
            struct transport *x = &t->tr[i];
            char l[256];
            fg_metrics_labels(l, sizeof(l), "receiver", t->id, "transport", name, NULL);
            fg_metrics_counter("otelcol_receiver_accepted_profile_samples",
                               "Samples the pipeline accepted.", l, &x->accepted);
            fg_metrics_counter("otelcol_receiver_refused_profile_samples",
                               "Samples the pipeline refused (full, stopping, invalid).", l,
                               &x->refused);
            fg_metrics_counter("otelcol_receiver_failed_profile_samples",
                               "Samples lost to an internal error (out of memory ...).", l,
                               &x->failed);
            fg_metrics_counter("otelcol_receiver_requests",
                               "Requests whose data reached the pipeline.", l, &x->requests);
            fg_metrics_counter("flamegate_receiver_received_bytes",
                               "Request bytes (decompressed) that reached the pipeline.", l,
                               &x->bytes);
            snprintf(x->text, sizeof(x->text), "%s", name);
            atomic_store_explicit(&x->name, x->text, memory_order_release);
            found = x;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return found;
}

static int counting_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct fg_counting *t = (struct fg_counting *)self;
    uint64_t n = batch ? batch->n_samples : 0;
    if (t->role == FG_COUNT_PROCESSOR_IN || t->role == FG_COUNT_PROCESSOR_OUT) {
        fg_counter_add(t->ok, n);
        return fg_consume(t->next, batch, err);
    }
    if (t->role == FG_COUNT_EXPORTER) {
        int rc = fg_consume(t->next, batch, err);
        fg_counter_add(rc == 0 ? t->ok : t->bad, n);
        return rc;
    }
    const char *name = fg_metrics_request_transport();
    uint64_t bytes = fg_metrics_request_bytes();
    fg_metrics_set_request(NULL, 0); /* a later batch without a request is not this one */
    struct transport *tr = transport_of(t, name);
    int64_t t0 = now_ns();
    int rc = fg_consume(t->next, batch, err);
    fg_histogram_observe_ns(t->latency, now_ns() - t0);
    if (tr) {
        fg_counter_add(tr->requests, 1);
        fg_counter_add(tr->bytes, bytes);
        bool refused = rc == FG_EFULL || rc == FG_ERETRYABLE || rc == FG_ESTOPPED ||
                       rc == FG_EINVAL || rc == FG_EPERMANENT || rc == FG_ETOOBIG;
        fg_counter_add(rc == 0 ? tr->accepted : refused ? tr->refused : tr->failed, n);
    }
    return rc;
}

struct fg_consumer *fg_counting_consumer(struct fg_counting *c)
{
    return &c->consumer;
}

int fg_counting_new(enum fg_counting_role role, const char *id, struct fg_consumer *next,
                    struct fg_counting **out)
{
    struct fg_counting *t = fg_calloc(1, sizeof(*t));
    *out = NULL;
    if (!t)
        return FG_ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    t->consumer.consume = counting_consume;
    t->next = next;
    t->role = role;
    snprintf(t->id, sizeof(t->id), "%s", id);
    char l[256];
    int rc;
    if (role == FG_COUNT_RECEIVER) {
        fg_metrics_labels(l, sizeof(l), "receiver", id, NULL);
        rc = fg_metrics_histogram("flamegate_receiver_request_duration_seconds",
                                  "Time a request's batch took through the pipeline to the "
                                  "exporters' queues.",
                                  l, &t->latency);
    } else if (role == FG_COUNT_EXPORTER) {
        fg_metrics_labels(l, sizeof(l), "exporter", id, NULL);
        rc = fg_metrics_counter("otelcol_exporter_sent_profile_samples",
                                "Samples successfully sent (or written) by the exporter.", l,
                                &t->ok);
        if (rc == 0)
            rc = fg_metrics_counter("otelcol_exporter_send_failed_profile_samples",
                                    "Samples the exporter failed to send (after retries).", l,
                                    &t->bad);
    } else {
        fg_metrics_labels(l, sizeof(l), "processor", id, "otel_signal", "profiles", NULL);
        if (role == FG_COUNT_PROCESSOR_IN)
            rc = fg_metrics_counter("otelcol_processor_incoming_items",
                                    "Samples passed to the processor.", l, &t->ok);
        else
            rc = fg_metrics_counter("otelcol_processor_outgoing_items",
                                    "Samples the processor passed on.", l, &t->ok);
    }
    if (rc) {
        fg_counting_free(t);
        return FG_ENOMEM;
    }
    *out = t;
    return 0;
}

void fg_counting_free(struct fg_counting *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    fg_free(c);
}
