/* Shared by the network exporters: the Collector's timeout / retry_on_failure /
 * sending_queue settings, a bounded queue drained by worker threads, and retry with
 * exponential backoff (×1.5, jitter 0.5, honouring a server's Retry-After). */
#ifndef FG_EXPORTER_HELPER_H
#define FG_EXPORTER_HELPER_H

#include <stdbool.h>
#include <stdint.h>

#include "fg_common.h"
#include "fg_option.h"

struct fg_profiles;

struct fg_retry_settings {
    bool enabled;
    int64_t initial_interval_ns;
    int64_t max_interval_ns;
    int64_t max_elapsed_time_ns; /* 0 = retry forever */
};

/* What queue_size counts. */
enum fg_queue_sizer { FG_SIZER_REQUESTS, FG_SIZER_SAMPLES, FG_SIZER_BYTES };

struct fg_queue_settings {
    bool enabled;
    int64_t num_consumers;
    int64_t queue_size;     /* in sizer units (batches by default) */
    int sizer;              /* enum fg_queue_sizer; bytes = in memory, or encoded on disk */
    bool block_on_overflow; /* wait for room instead of refusing with FG_EFULL */
    char *storage;          /* id of a file_storage extension: persistent queue; NULL = memory */
};

struct fg_exporter_settings {
    int64_t timeout_ns;
    struct fg_retry_settings retry;
    struct fg_queue_settings queue;
};

extern const struct fg_option fg_retry_options[];
extern const struct fg_option fg_queue_options[];

/* Option rows for an embedded struct fg_exporter_settings named field. */
#define FG_EXPORTER_SETTINGS_OPTIONS(type_, field)                                           \
    FG_OPT_DUR("timeout", type_, field.timeout_ns, "5s", 1000000, INT64_C(3600000000000),     \
               "per-request timeout"),                                                       \
        FG_OPT_BLOCK("retry_on_failure", type_, field.retry, fg_retry_options,                \
                     "retry with backoff on retryable failures"),                            \
        FG_OPT_BLOCK("sending_queue", type_, field.queue, fg_queue_options,                   \
                     "bounded queue in front of the workers")

/* One attempt at sending. Returns 0 (sent), FG_ERETRYABLE (try again; *retry_after_ns > 0
 * when the server said how long to wait) or FG_EPERMANENT (drop, counted). */
typedef int (*fg_export_fn)(void *ctx, struct fg_profiles *batch, int64_t *retry_after_ns,
                            struct fg_err *err);

struct fg_exporter;

/* id names the component in logs. send runs on worker threads (num_consumers of them).
 * With queue.storage set, call it from the factory's create (the extension is found through
 * fg_create_args_current()); the queue is opened by fg_exporter_start. A persistent queue
 * holds batches as OTLP protobuf plus the tenant; send gets them decoded again. */
int fg_exporter_new(const char *id, const struct fg_exporter_settings *settings,
                    fg_export_fn send, void *ctx, struct fg_exporter **out, struct fg_err *err);
int fg_exporter_start(struct fg_exporter *e, struct fg_err *err);
/* Takes ownership of one reference. FG_EFULL when the queue is full (the batch is dropped
 * and counted; the caller reports a retryable error upstream) unless block_on_overflow,
 * FG_ESTOPPED after shutdown. With a persistent queue, 0 means the batch is in the file. */
int fg_exporter_enqueue(struct fg_exporter *e, struct fg_profiles *batch, struct fg_err *err);
/* Stops taking batches, sends what is queued until deadline_ns (monotonic), then stops the
 * workers; what is still queued then is dropped and logged with exact counts (memory), or
 * stays on disk for the next start (persistent). A persistent queue that another exporter
 * has attached to (a reload's successor) is handed over at once instead of drained. */
int fg_exporter_shutdown(struct fg_exporter *e, int64_t deadline_ns);
void fg_exporter_free(struct fg_exporter *e);

struct fg_exporter_stats {
    uint64_t sent_batches, sent_samples;
    uint64_t failed_batches, failed_samples; /* permanent errors or retries exhausted */
    uint64_t enqueue_failed_batches, enqueue_failed_samples;
    uint64_t retries;
    uint64_t queue_size; /* batches queued (memory) or not yet acknowledged (persistent) */
    /* added with the persistent queue */
    uint64_t queue_units;                 /* in sizer units */
    uint64_t lost_batches, lost_samples;  /* thrown away by a shutdown that timed out */
    uint64_t kept_batches, kept_samples;  /* left on disk by shutdown, sent after restart */
    uint64_t torn_records;                /* skipped on replay */
};
void fg_exporter_stats(struct fg_exporter *e, struct fg_exporter_stats *out);
/* The counters of the newest live exporter named id (for the live view), and its queue
 * capacity in sizer units (0 without a queue); FG_ENOTFOUND when there is none. */
int fg_exporter_stats_by_id(const char *id, struct fg_exporter_stats *out, uint64_t *capacity);

#endif
