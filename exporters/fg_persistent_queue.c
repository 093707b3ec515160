/* The persistent queue: segment files "seg-NNNNNNNNNNNNNNNN.log" holding records
 * [magic u32][len u32][samples u64][crc u32][state u32][payload], little-endian; the CRC
 * covers len, samples and payload; state is rewritten in place when the record is acked
 * (losing that write only causes a duplicate). */
#include "fg_persistent_queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fg_alloc.h"
#include "fg_log.h"

#define REC_MAGIC UINT32_C(0x31514746) /* "FGQ1" */
#define REC_ACKED UINT32_C(0x4B434121) /* "!ACK" */
#define HDR_SIZE 24
#define STATE_OFF 20
#define MAX_RECORD (UINT32_C(1) << 30)

struct segment {
    uint64_t no;
    int fd;
    uint64_t size;
    uint64_t live; /* records not acknowledged */
    struct segment *next;
};

struct entry {
    struct segment *seg;
    uint64_t off; /* of the header */
    uint32_t len; /* payload */
    uint64_t samples;
    uint64_t ticket;
};

struct fg_pqueue {
    char *dir;
    struct fg_pqueue_options opts;
    int lock_fd;
    int refs; /* under registry_mu */
    struct fg_pqueue *next_open;

    pthread_mutex_t mu;
    pthread_cond_t avail; /* pending gained an entry, or a kick */
    pthread_cond_t flush; /* the fsync thread's sleep */
    struct segment *segs, *last; /* oldest first */
    struct segment *wseg;        /* where appends go; NULL = start a new one */
    uint64_t next_no;
    struct entry *ring; /* pending, FIFO with push-front for nacks */
    size_t cap, head, len;
    struct entry *inflight;
    size_t n_inflight, cap_inflight;
    uint64_t next_ticket;
    uint64_t kicks;
    bool dirty, dir_dirty, closing;
    pthread_t flusher;
    bool has_flusher;
    struct fg_pqueue_stats stats;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fg_pqueue *registry;

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

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint32_t record_crc(const uint8_t *hdr, const uint8_t *payload, size_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, hdr + 4, 12);
    /* zlib takes uInt lengths; records are below 1 GiB */
    c = crc32(c, payload, (uInt)len);
    return (uint32_t)c;
}

static void seg_path(const struct fg_pqueue *q, uint64_t no, char *buf, size_t size)
{
    snprintf(buf, size, "%s/seg-%016" PRIu64 ".log", q->dir, no);
}

static int full_pread(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FG_EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return FG_EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* ---- pending ring (under mu) ---- */

static int ring_grow(struct fg_pqueue *q)
{
    size_t cap = q->cap ? q->cap * 2 : 64;
    struct entry *r = fg_malloc(cap * sizeof(*r));
    if (!r)
        return FG_ENOMEM;
    for (size_t i = 0; i < q->len; i++)
        r[i] = q->ring[(q->head + i) % q->cap];
    fg_free(q->ring);
    q->ring = r;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static int ring_push_back(struct fg_pqueue *q, const struct entry *e)
{
    if (q->len == q->cap && ring_grow(q) != 0)
        return FG_ENOMEM;
    q->ring[(q->head + q->len) % q->cap] = *e;
    q->len++;
    return 0;
}

static int ring_push_front(struct fg_pqueue *q, const struct entry *e)
{
    if (q->len == q->cap && ring_grow(q) != 0)
        return FG_ENOMEM;
    q->head = (q->head + q->cap - 1) % q->cap;
    q->ring[q->head] = *e;
    q->len++;
    return 0;
}

/* ---- segments (under mu) ---- */

static void seg_delete(struct fg_pqueue *q, struct segment *s)
{
    char path[PATH_MAX];
    struct segment **pp = &q->segs, *prev = NULL;
    while (*pp && *pp != s) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp)
        *pp = s->next;
    if (q->last == s)
        q->last = prev;
    if (q->wseg == s)
        q->wseg = NULL;
    seg_path(q, s->no, path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT)
        fg_log(FG_LOG_WARN, "file_storage", "cannot delete %s: %s", path, strerror(errno));
    if (s->fd >= 0)
        close(s->fd);
    q->stats.disk_bytes -= s->size;
    q->stats.segments--;
    fg_free(s);
}

static struct segment *seg_add(struct fg_pqueue *q, uint64_t no, int fd, uint64_t size)
{
    struct segment *s = fg_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->no = no;
    s->fd = fd;
    s->size = size;
    if (q->last)
        q->last->next = s;
    else
        q->segs = s;
    q->last = s;
    q->stats.disk_bytes += size;
    q->stats.segments++;
    return s;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static int seg_new(struct fg_pqueue *q, struct fg_err *err)
{
    char path[PATH_MAX];
    uint64_t no = q->next_no++;
    seg_path(q, no, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return fg_err_set(err, FG_EIO, "cannot create %s: %s", path, strerror(errno));
    if (!(q->wseg = seg_add(q, no, fd, 0))) {
        close(fd);
        unlink(path);
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    }
    /* The new name must survive a power failure too: at once for fsync: always, with the
     * next background sync for batch. */
    if (q->opts.fsync == FG_FSYNC_ALWAYS)
        fsync_dir(q->dir);
    else
        q->dir_dirty = true;
    return 0;
}

/* ---- replay ---- */

/* Is there a whole, intact record at off? */
static bool record_ok(const uint8_t *buf, size_t size, size_t off, uint32_t *len)
{
    if (size - off < HDR_SIZE || get32(buf + off) != REC_MAGIC)
        return false;
    uint32_t n = get32(buf + off + 4);
    if (n > MAX_RECORD || n > size - off - HDR_SIZE)
        return false;
    if (record_crc(buf + off, buf + off + HDR_SIZE, n) != get32(buf + off + 16))
        return false;
    *len = n;
    return true;
}

static int replay_segment(struct fg_pqueue *q, uint64_t no, struct fg_err *err)
{
    char path[PATH_MAX];
    uint8_t *buf = NULL;
    int rc = 0;
    seg_path(q, no, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = fg_err_set(err, FG_EIO, "cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    size_t size = (size_t)st.st_size;
    buf = fg_malloc(size ? size : 1);
    if (!buf) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory reading %s", path);
        goto fail;
    }
    if (size && full_pread(fd, buf, size, 0) != 0) {
        rc = fg_err_set(err, FG_EIO, "cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    struct segment *s = seg_add(q, no, fd, size);
    if (!s) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }
    fd = -1;
    size_t off = 0;
    while (off < size) {
        uint32_t len;
        if (!record_ok(buf, size, off, &len)) {
            /* Torn (cut short by a crash) or corrupt: skip to the next intact record. */
            size_t next = off + 1;
            while (next < size && !record_ok(buf, size, next, &len))
                next++;
            q->stats.torn_records++;
            fg_log(FG_LOG_WARN, "file_storage",
                   "%s: skipped a torn or corrupt record at offset %zu (%zu bytes)", path, off,
                   next - off);
            off = next;
            continue;
        }
        if (get32(buf + off + STATE_OFF) != REC_ACKED) {
            struct entry e = {.seg = s, .off = off, .len = len, .samples = get64(buf + off + 8)};
            if (ring_push_back(q, &e) != 0) {
                rc = fg_err_set(err, FG_ENOMEM, "out of memory");
                goto fail;
            }
            s->live++;
            q->stats.pending_records++;
            q->stats.pending_samples += e.samples;
            q->stats.pending_bytes += len;
            q->stats.replayed_records++;
        }
        off += HDR_SIZE + len;
    }
    if (s->live == 0)
        seg_delete(q, s);
fail:
    if (fd >= 0)
        close(fd);
    fg_free(buf);
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int replay(struct fg_pqueue *q, struct fg_err *err)
{
    DIR *d = opendir(q->dir);
    uint64_t *nos = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!d)
        return fg_err_set(err, FG_EIO, "cannot read %s: %s", q->dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned long long no;
        char tail;
        if (sscanf(de->d_name, "seg-%16llu.lo%c", &no, &tail) != 2 || tail != 'g' ||
            strlen(de->d_name) != 24)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            uint64_t *bigger = fg_realloc(nos, ncap * sizeof(*nos));
            if (!bigger) {
                rc = fg_err_set(err, FG_ENOMEM, "out of memory");
                goto fail;
            }
            nos = bigger;
            cap = ncap;
        }
        nos[n++] = no;
    }
    if (n > 1)
        qsort(nos, n, sizeof(*nos), cmp_u64);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = replay_segment(q, nos[i], err);
        if (nos[i] >= q->next_no)
            q->next_no = nos[i] + 1;
    }
    /* Appends always start a fresh segment (wseg is NULL): never after a torn tail. */
fail:
    closedir(d);
    fg_free(nos);
    return rc;
}

/* ---- background sync for FG_FSYNC_BATCH ---- */

static void *flusher_main(void *arg)
{
    struct fg_pqueue *q = arg;
    pthread_mutex_lock(&q->mu);
    while (!q->closing) {
        struct timespec ts = to_timespec(mono_now() + q->opts.fsync_interval_ns);
        pthread_cond_timedwait(&q->flush, &q->mu, &ts);
        if (!q->dirty || !q->wseg || q->wseg->fd < 0)
            continue;
        q->dirty = false;
        bool dir_too = q->dir_dirty;
        q->dir_dirty = false;
        int fd = dup(q->wseg->fd); /* the segment may roll over while we sync */
        pthread_mutex_unlock(&q->mu);
        if (fd >= 0) {
            fdatasync(fd);
            close(fd);
        }
        if (dir_too)
            fsync_dir(q->dir);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* ---- open / close ---- */

static void destroy(struct fg_pqueue *q)
{
    if (q->has_flusher) {
        pthread_mutex_lock(&q->mu);
        q->closing = true;
        pthread_cond_broadcast(&q->flush);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->flusher, NULL);
    }
    while (q->segs) {
        struct segment *s = q->segs;
        q->segs = s->next;
        if (s->fd >= 0) {
            if (q->opts.fsync != FG_FSYNC_NEVER)
                fdatasync(s->fd);
            close(s->fd);
        }
        fg_free(s);
    }
    if (q->lock_fd >= 0)
        close(q->lock_fd); /* releases the flock */
    fg_free(q->ring);
    fg_free(q->inflight);
    pthread_cond_destroy(&q->flush);
    pthread_cond_destroy(&q->avail);
    pthread_mutex_destroy(&q->mu);
    fg_free(q->dir);
    fg_free(q);
}

int fg_pqueue_open(const struct fg_pqueue_options *opts, struct fg_pqueue **out,
                   struct fg_err *err)
{
    char real[PATH_MAX], lock_path[PATH_MAX + 8];
    struct fg_pqueue *q = NULL;
    pthread_condattr_t attr;
    int rc;

    *out = NULL;
    if (!opts->directory || !*opts->directory)
        return fg_err_set(err, FG_EINVAL, "no directory");
    if (mkdir(opts->directory, 0700) != 0 && errno != EEXIST)
        return fg_err_set(err, FG_EIO, "cannot create %s: %s", opts->directory, strerror(errno));
    if (!realpath(opts->directory, real))
        return fg_err_set(err, FG_EIO, "%s: %s", opts->directory, strerror(errno));

    pthread_mutex_lock(&registry_mu);
    for (struct fg_pqueue *o = registry; o; o = o->next_open)
        if (strcmp(o->dir, real) == 0) {
            o->refs++;
            pthread_mutex_unlock(&registry_mu);
            *out = o;
            return 0;
        }

    q = fg_calloc(1, sizeof(*q));
    if (!q || !(q->dir = fg_strdup(real))) {
        fg_free(q);
        pthread_mutex_unlock(&registry_mu);
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    }
    q->opts = *opts;
    q->opts.directory = q->dir;
    if (q->opts.segment_size == 0)
        q->opts.segment_size = UINT64_C(8) << 20;
    /* A few segments fit under max_size, so acknowledged ones can be deleted in time. */
    if (q->opts.max_size > 0 && q->opts.segment_size > q->opts.max_size / 4)
        q->opts.segment_size = FG_MAX(q->opts.max_size / 4, 4096);
    if (q->opts.fsync_interval_ns <= 0)
        q->opts.fsync_interval_ns = 1000000000;
    q->lock_fd = -1;
    q->refs = 1;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->avail, &attr);
    pthread_cond_init(&q->flush, &attr);
    pthread_condattr_destroy(&attr);

    snprintf(lock_path, sizeof(lock_path), "%s/LOCK", real);
    q->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (q->lock_fd < 0) {
        rc = fg_err_set(err, FG_EIO, "cannot open %s: %s", lock_path, strerror(errno));
        goto fail;
    }
    if (flock(q->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = fg_err_set(err, FG_EIO, "%s is in use by another process (%s)", real,
                        strerror(errno));
        goto fail;
    }
    if ((rc = replay(q, err)) != 0)
        goto fail;
    if (q->opts.fsync == FG_FSYNC_BATCH) {
        if (pthread_create(&q->flusher, NULL, flusher_main, q) != 0) {
            rc = fg_err_set(err, FG_ENOMEM, "cannot start the sync thread");
            goto fail;
        }
        q->has_flusher = true;
    }
    if (q->stats.replayed_records || q->stats.torn_records)
        fg_log(FG_LOG_INFO, "file_storage",
               "%s: replaying %" PRIu64 " records (%" PRIu64 " samples); %" PRIu64
               " torn records skipped",
               real, q->stats.replayed_records, q->stats.pending_samples, q->stats.torn_records);
    q->next_open = registry;
    registry = q;
    pthread_mutex_unlock(&registry_mu);
    *out = q;
    return 0;
fail:
    pthread_mutex_unlock(&registry_mu);
    fg_err_prefix(err, "persistent queue");
    destroy(q);
    return rc;
}

void fg_pqueue_close(struct fg_pqueue *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&registry_mu);
    if (--q->refs > 0) {
        pthread_mutex_unlock(&registry_mu);
        return;
    }
    for (struct fg_pqueue **pp = &registry; *pp; pp = &(*pp)->next_open)
        if (*pp == q) {
            *pp = q->next_open;
            break;
        }
    pthread_mutex_unlock(&registry_mu);
    destroy(q);
}

int fg_pqueue_attached(struct fg_pqueue *q)
{
    pthread_mutex_lock(&registry_mu);
    int n = q->refs;
    pthread_mutex_unlock(&registry_mu);
    return n;
}

/* ---- append / take / ack ---- */

int fg_pqueue_append(struct fg_pqueue *q, const void *data, size_t len, uint64_t samples,
                     struct fg_err *err)
{
    if (len > MAX_RECORD)
        return fg_err_set(err, FG_ETOOBIG, "record of %zu bytes is too large", len);
    uint8_t hdr[HDR_SIZE];
    put32(hdr, REC_MAGIC);
    put32(hdr + 4, (uint32_t)len);
    put64(hdr + 8, samples);
    put32(hdr + 16, record_crc(hdr, data, len));
    put32(hdr + STATE_OFF, 0);
    uint8_t *rec = fg_malloc(HDR_SIZE + len);
    if (!rec)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    memcpy(rec, hdr, HDR_SIZE);
    memcpy(rec + HDR_SIZE, data, len);
    uint64_t rec_len = HDR_SIZE + len;
    int rc = 0;

    pthread_mutex_lock(&q->mu);
    struct segment *t = q->wseg;
    /* A tail segment holding only acknowledged records goes before it can block us. */
    bool roll = t && t->size > 0 && t->size + rec_len > q->opts.segment_size;
    if (t && t->live == 0 && (roll || (q->opts.max_size > 0 &&
                                       q->stats.disk_bytes + rec_len > q->opts.max_size))) {
        seg_delete(q, t);
        t = NULL;
    } else if (roll) {
        if (q->opts.fsync != FG_FSYNC_NEVER)
            fdatasync(t->fd);
        q->wseg = t = NULL; /* the old one stays until its records are acknowledged */
    }
    if (q->opts.max_size > 0 && q->stats.disk_bytes + rec_len > q->opts.max_size) {
        rc = fg_err_set(err, FG_EFULL,
                        "persistent queue %s is full (%" PRIu64 " of %" PRIu64 " bytes)", q->dir,
                        q->stats.disk_bytes, q->opts.max_size);
        goto out;
    }
    if (!t) {
        if ((rc = seg_new(q, err)) != 0)
            goto out;
        t = q->wseg;
    }
    if (full_pwrite(t->fd, rec, rec_len, t->size) != 0) {
        rc = fg_err_set(err, FG_EIO, "write to %s: %s", q->dir, strerror(errno));
        /* A partial write would be skipped as torn on replay; start clean anyway. */
        if (ftruncate(t->fd, (off_t)t->size) != 0)
            fg_log(FG_LOG_WARN, "file_storage", "cannot truncate a failed write in %s", q->dir);
        goto out;
    }
    struct entry e = {.seg = t, .off = t->size, .len = (uint32_t)len, .samples = samples};
    t->size += rec_len;
    q->stats.disk_bytes += rec_len;
    t->live++;
    q->stats.pending_records++;
    q->stats.pending_samples += samples;
    q->stats.pending_bytes += len;
    q->dirty = true;
    if (ring_push_back(q, &e) != 0) {
        /* Refused: mark it delivered so that a restart does not send it besides the
         * agent's retry. */
        uint8_t state[4];
        put32(state, REC_ACKED);
        if (full_pwrite(t->fd, state, 4, e.off + STATE_OFF) != 0)
            fg_log(FG_LOG_WARN, "file_storage", "%s: cannot void a refused record", q->dir);
        t->live--;
        q->stats.pending_records--;
        q->stats.pending_samples -= samples;
        q->stats.pending_bytes -= len;
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto out;
    }
    /* fsync: always syncs outside the lock, so that concurrent appenders' syncs overlap
     * (the filesystem commits them together) instead of queueing behind one another. The
     * duplicate descriptor stays valid if the segment is deleted meanwhile. */
    int sync_fd = q->opts.fsync == FG_FSYNC_ALWAYS ? dup(t->fd) : -1;
    bool want_sync = q->opts.fsync == FG_FSYNC_ALWAYS;
    pthread_cond_signal(&q->avail);
    pthread_mutex_unlock(&q->mu);
    fg_free(rec);
    if (want_sync && (sync_fd < 0 || fdatasync(sync_fd) != 0)) {
        /* Already queued: it may still be sent; the agent's retry makes a duplicate at worst. */
        rc = fg_err_set(err, FG_EIO, "fdatasync in %s: %s", q->dir, strerror(errno));
    }
    if (sync_fd >= 0)
        close(sync_fd);
    return rc;
out:
    pthread_mutex_unlock(&q->mu);
    fg_free(rec);
    return rc;
}

int fg_pqueue_take(struct fg_pqueue *q, int64_t until_ns, const atomic_bool *cancel,
                   struct fg_pqueue_item *item)
{
    memset(item, 0, sizeof(*item));
    pthread_mutex_lock(&q->mu);
    uint64_t kicks = q->kicks;
    while (q->len == 0) {
        if ((cancel && atomic_load(cancel)) || q->kicks != kicks || mono_now() >= until_ns) {
            pthread_mutex_unlock(&q->mu);
            return FG_ENOTFOUND;
        }
        struct timespec ts = to_timespec(until_ns);
        pthread_cond_timedwait(&q->avail, &q->mu, &ts);
    }
    if (q->n_inflight == q->cap_inflight) {
        size_t cap = q->cap_inflight ? q->cap_inflight * 2 : 16;
        struct entry *bigger = fg_realloc(q->inflight, cap * sizeof(*bigger));
        if (!bigger) {
            pthread_mutex_unlock(&q->mu);
            return FG_ENOMEM;
        }
        q->inflight = bigger;
        q->cap_inflight = cap;
    }
    struct entry e = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    e.ticket = ++q->next_ticket;
    q->inflight[q->n_inflight++] = e;
    q->stats.inflight_records++;
    int fd = e.seg->fd; /* stays open: the segment has a live record, ours */
    pthread_mutex_unlock(&q->mu);

    uint8_t *data = fg_malloc(e.len ? e.len : 1);
    uint8_t hdr[HDR_SIZE];
    int rc = data ? 0 : FG_ENOMEM;
    if (rc == 0 && (full_pread(fd, hdr, HDR_SIZE, e.off) != 0 ||
                    (e.len && full_pread(fd, data, e.len, e.off + HDR_SIZE) != 0)))
        rc = FG_EIO;
    if (rc == 0 && record_crc(hdr, data, e.len) != get32(hdr + 16))
        rc = FG_EIO; /* changed under us on disk: treat as unreadable */
    if (rc != 0) {
        fg_free(data);
        /* Unreadable records are acknowledged away, or they would come back forever. */
        if (rc == FG_EIO) {
            fg_log(FG_LOG_ERROR, "file_storage", "%s: unreadable record dropped (segment %" PRIu64
                   " offset %" PRIu64 ")", q->dir, e.seg->no, e.off);
            fg_pqueue_ack(q, e.ticket);
        } else {
            fg_pqueue_nack(q, e.ticket);
        }
        return rc;
    }
    item->data = data;
    item->len = e.len;
    item->samples = e.samples;
    item->ticket = e.ticket;
    return 0;
}

/* Removes the in-flight entry with ticket into *e (under mu). */
static bool inflight_remove(struct fg_pqueue *q, uint64_t ticket, struct entry *e)
{
    for (size_t i = 0; i < q->n_inflight; i++)
        if (q->inflight[i].ticket == ticket) {
            *e = q->inflight[i];
            q->inflight[i] = q->inflight[--q->n_inflight];
            q->stats.inflight_records--;
            return true;
        }
    return false;
}

void fg_pqueue_ack(struct fg_pqueue *q, uint64_t ticket)
{
    struct entry e;
    pthread_mutex_lock(&q->mu);
    if (!inflight_remove(q, ticket, &e)) {
        pthread_mutex_unlock(&q->mu);
        return;
    }
    uint8_t state[4];
    put32(state, REC_ACKED);
    /* Not synced: losing this write means the record is sent once more after a crash. */
    if (full_pwrite(e.seg->fd, state, 4, e.off + STATE_OFF) != 0)
        fg_log(FG_LOG_WARN, "file_storage", "%s: cannot mark a record delivered: %s", q->dir,
               strerror(errno));
    q->stats.pending_records--;
    q->stats.pending_samples -= e.samples;
    q->stats.pending_bytes -= e.len;
    if (--e.seg->live == 0 && e.seg != q->wseg)
        seg_delete(q, e.seg);
    pthread_mutex_unlock(&q->mu);
}

void fg_pqueue_nack(struct fg_pqueue *q, uint64_t ticket)
{
    struct entry e;
    pthread_mutex_lock(&q->mu);
    if (inflight_remove(q, ticket, &e)) {
        if (ring_push_front(q, &e) != 0)
            fg_log(FG_LOG_WARN, "file_storage",
                   "%s: out of memory: a record waits for the next restart", q->dir);
        pthread_cond_signal(&q->avail);
    }
    pthread_mutex_unlock(&q->mu);
}

void fg_pqueue_kick(struct fg_pqueue *q)
{
    pthread_mutex_lock(&q->mu);
    q->kicks++;
    pthread_cond_broadcast(&q->avail);
    pthread_mutex_unlock(&q->mu);
}

void fg_pqueue_stats(struct fg_pqueue *q, struct fg_pqueue_stats *out)
{
    pthread_mutex_lock(&q->mu);
    *out = q->stats;
    pthread_mutex_unlock(&q->mu);
}
