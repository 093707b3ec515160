/* libFuzzer target: persistent-queue replay of an arbitrary segment file; every record
 * handed out must be intact, and replay must never fail on file contents. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_log.h"
#include "fg_persistent_queue.h"

static char dir[64];

static void cleanup(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/seg-0000000000000001.log", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/seg-0000000000000002.log", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[PATH_MAX];
    fg_log_set_level(FG_LOG_OFF);
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/fg-fuzz-pq-XXXXXX");
        if (!mkdtemp(dir))
            abort();
        atexit(cleanup);
    }
    snprintf(path, sizeof(path), "%s/seg-0000000000000001.log", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();

    struct fg_pqueue_options o = {.directory = dir, .fsync = FG_FSYNC_NEVER};
    struct fg_pqueue *q = NULL;
    struct fg_err err;
    if (fg_pqueue_open(&o, &q, &err) != 0)
        abort(); /* contents never make replay fail */
    struct fg_pqueue_stats st;
    fg_pqueue_stats(q, &st);
    uint64_t n = 0;
    struct fg_pqueue_item it;
    while (fg_pqueue_take(q, 0, NULL, &it) == 0) {
        if (it.len > size)
            abort();
        fg_free(it.data);
        fg_pqueue_ack(q, it.ticket);
        n++;
    }
    if (n != st.replayed_records)
        abort();
    fg_pqueue_close(q);
    cleanup();
    if (mkdir(dir, 0700) != 0)
        abort();
    return 0;
}
