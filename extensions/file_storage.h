/* Extension "file_storage": a directory in which exporters keep their persistent sending
 * queues (one sub-directory per exporter id), with the fsync policy and size limit. */
#ifndef FG_FILE_STORAGE_H
#define FG_FILE_STORAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "fg_common.h"
#include "fg_component.h"
#include "fg_persistent_queue.h"

struct file_storage_config {
    char *directory;
    int fsync; /* enum fg_fsync_mode */
    int64_t fsync_interval_ns;
    uint64_t max_size;
    uint64_t segment_size;
};

extern const struct fg_factory fg_file_storage_factory;

/* Whether c is a file_storage instance. */
bool fg_file_storage_is(const struct fg_component *c);
/* Opens (or attaches to) the queue of owner_id inside the extension's directory. The
 * extension must be started; the queue is closed with fg_pqueue_close. */
int fg_file_storage_open_queue(struct fg_component *c, const char *owner_id,
                               struct fg_pqueue **out, struct fg_err *err);

#endif
