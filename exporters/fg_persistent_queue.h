/* A persistent FIFO of opaque records for the exporter helper: an append-only log of
 * segment files in one directory, records length-prefixed with a CRC, acknowledged in place,
 * replayed on open. See docs/reliability.md for the on-disk format and the guarantees.
 * Every function may be called from any thread. */
#ifndef FG_PERSISTENT_QUEUE_H
#define FG_PERSISTENT_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_common.h"

enum fg_fsync_mode { FG_FSYNC_ALWAYS, FG_FSYNC_BATCH, FG_FSYNC_NEVER };

struct fg_pqueue_options {
    const char *directory;     /* created if missing (one level) */
    int fsync;                 /* enum fg_fsync_mode */
    int64_t fsync_interval_ns; /* FG_FSYNC_BATCH: how often written data is synced */
    uint64_t max_size;         /* bytes of segment files; 0 = unlimited */
    uint64_t segment_size;     /* a new segment starts past this many bytes */
};

struct fg_pqueue;

/* Opens (replaying what is left) or, when this process already has the directory open,
 * attaches to the same queue: a reload hands a queue from the old exporter to the new one
 * this way. The directory is locked against other processes. */
int fg_pqueue_open(const struct fg_pqueue_options *opts, struct fg_pqueue **out,
                   struct fg_err *err);
/* Detaches; the last one syncs and closes the files (records not acknowledged stay). */
void fg_pqueue_close(struct fg_pqueue *q);
/* How many fg_pqueue_open calls share q right now. */
int fg_pqueue_attached(struct fg_pqueue *q);

/* Appends one record (copied). Returns when the data is in the file (and synced with
 * FG_FSYNC_ALWAYS). FG_EFULL when max_size would be exceeded; FG_EIO. */
int fg_pqueue_append(struct fg_pqueue *q, const void *data, size_t len, uint64_t samples,
                     struct fg_err *err);

struct fg_pqueue_item {
    uint8_t *data; /* fg_free it */
    size_t len;
    uint64_t samples;
    uint64_t ticket; /* for ack / nack */
};

/* Takes the oldest record not handed out yet, waiting until until_ns (monotonic) for one.
 * Returns 0, FG_ENOTFOUND (nothing before until_ns, or *cancel became true, or
 * fg_pqueue_kick), FG_EIO. */
int fg_pqueue_take(struct fg_pqueue *q, int64_t until_ns, const atomic_bool *cancel,
                   struct fg_pqueue_item *item);
/* The record was delivered or rejected for good: it is never handed out again. */
void fg_pqueue_ack(struct fg_pqueue *q, uint64_t ticket);
/* The record was not delivered: it goes back to the front of the queue. */
void fg_pqueue_nack(struct fg_pqueue *q, uint64_t ticket);
/* Wakes every fg_pqueue_take waiter (they re-check their cancel flag). */
void fg_pqueue_kick(struct fg_pqueue *q);

struct fg_pqueue_stats {
    uint64_t pending_records, pending_samples, pending_bytes; /* not acknowledged yet */
    uint64_t inflight_records;                               /* taken, not acked/nacked */
    uint64_t disk_bytes;                                     /* segment files */
    uint64_t segments;
    uint64_t replayed_records; /* found on open */
    uint64_t torn_records;     /* skipped on open: bad length, magic or CRC */
};
void fg_pqueue_stats(struct fg_pqueue *q, struct fg_pqueue_stats *out);

#endif
