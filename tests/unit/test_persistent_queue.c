/* The persistent queue: order, ack/nack, replay after reopen, torn and corrupt records,
 * segment rollover and deletion, max_size, attach/lock, waiting, allocation failures. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_log.h"
#include "fg_persistent_queue.h"

#define HDR 24

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct env {
    char dir[PATH_MAX];
    struct fg_pqueue_options o;
};

static int setup(void **state)
{
    static struct env e;
    memset(&e, 0, sizeof(e));
    tu_tempdir(e.dir, sizeof(e.dir));
    e.o.directory = e.dir;
    e.o.fsync = FG_FSYNC_BATCH;
    e.o.fsync_interval_ns = 10000000;
    *state = &e;
    fg_log_set_level(FG_LOG_OFF);
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    tu_rmtree(e->dir);
    return 0;
}

static struct fg_pqueue *open_q(struct env *e)
{
    struct fg_pqueue *q = NULL;
    struct fg_err err = {{0}};
    int rc = fg_pqueue_open(&e->o, &q, &err);
    if (rc != 0)
        fail_msg("open: %s", err.msg);
    return q;
}

static void append_n(struct fg_pqueue *q, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        char rec[64];
        int len = snprintf(rec, sizeof(rec), "record-%04d", i);
        struct fg_err err = {{0}};
        assert_int_equal(fg_pqueue_append(q, rec, (size_t)len, (uint64_t)i, &err), 0);
    }
}

/* Takes one record and checks it is record-<want>. */
static uint64_t take_expect(struct fg_pqueue *q, int want)
{
    struct fg_pqueue_item it;
    assert_int_equal(fg_pqueue_take(q, now_ns() + 1000000000, NULL, &it), 0);
    char expect[64];
    int len = snprintf(expect, sizeof(expect), "record-%04d", want);
    assert_int_equal(it.len, (size_t)len);
    assert_memory_equal(it.data, expect, (size_t)len);
    assert_int_equal(it.samples, (uint64_t)want);
    fg_free(it.data);
    return it.ticket;
}

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        n += strncmp(de->d_name, "seg-", 4) == 0;
    closedir(d);
    return n;
}

static void first_segment(const char *dir, char *path, size_t size)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    path[0] = '\0';
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "seg-", 4) == 0 &&
            (!path[0] || strcmp(de->d_name, strrchr(path, '/') + 1) < 0))
            snprintf(path, size, "%s/%s", dir, de->d_name);
    closedir(d);
    assert_true(path[0]);
}

static void test_fifo_ack_nack(void **state)
{
    struct env *e = *state;
    struct fg_pqueue *q = open_q(e);
    append_n(q, 1, 3);
    struct fg_pqueue_stats st;
    fg_pqueue_stats(q, &st);
    assert_int_equal(st.pending_records, 3);
    assert_int_equal(st.pending_samples, 6);

    uint64_t t1 = take_expect(q, 1);
    uint64_t t2 = take_expect(q, 2);
    fg_pqueue_nack(q, t1); /* back to the front */
    fg_pqueue_ack(q, t2);
    fg_pqueue_ack(q, t2); /* twice: ignored */
    fg_pqueue_ack(q, take_expect(q, 1));
    fg_pqueue_ack(q, take_expect(q, 3));
    fg_pqueue_stats(q, &st);
    assert_int_equal(st.pending_records, 0);
    assert_int_equal(st.pending_samples, 0);
    assert_int_equal(st.inflight_records, 0);

    /* empty: take waits until its deadline */
    struct fg_pqueue_item it;
    int64_t t0 = now_ns();
    assert_int_equal(fg_pqueue_take(q, t0 + 50000000, NULL, &it), FG_ENOTFOUND);
    assert_true(now_ns() - t0 >= 45000000);
    /* a set cancel flag returns at once */
    atomic_bool cancel = true;
    t0 = now_ns();
    assert_int_equal(fg_pqueue_take(q, t0 + 5000000000, &cancel, &it), FG_ENOTFOUND);
    assert_true(now_ns() - t0 < 1000000000);
    fg_pqueue_close(q);
}

static void test_replay_skips_acked(void **state)
{
    struct env *e = *state;
    struct fg_pqueue *q = open_q(e);
    append_n(q, 1, 5);
    fg_pqueue_ack(q, take_expect(q, 1));
    fg_pqueue_ack(q, take_expect(q, 2));
    uint64_t t3 = take_expect(q, 3); /* in flight at "crash": must come back */
    FG_UNUSED(t3);
    fg_pqueue_close(q);

    q = open_q(e);
    struct fg_pqueue_stats st;
    fg_pqueue_stats(q, &st);
    assert_int_equal(st.replayed_records, 3);
    assert_int_equal(st.torn_records, 0);
    fg_pqueue_ack(q, take_expect(q, 3));
    /* new appends go after the replayed ones, into a new segment */
    append_n(q, 6, 1);
    assert_int_equal(count_segments(e->dir), 2);
    fg_pqueue_ack(q, take_expect(q, 4));
    fg_pqueue_ack(q, take_expect(q, 5));
    /* the old segment is fully acknowledged: deleted */
    assert_int_equal(count_segments(e->dir), 1);
    fg_pqueue_ack(q, take_expect(q, 6));
    fg_pqueue_close(q);
    q = open_q(e);
    fg_pqueue_stats(q, &st);
    assert_int_equal(st.pending_records, 0);
    assert_int_equal(count_segments(e->dir), 0); /* nothing live: removed on replay */
    fg_pqueue_close(q);
}

static void test_torn_tail_and_corrupt_middle(void **state)
{
    struct env *e = *state;
    struct fg_pqueue *q = open_q(e);
    append_n(q, 1, 6);
    fg_pqueue_close(q);

    char seg[PATH_MAX];
    first_segment(e->dir, seg, sizeof(seg));
    struct stat sb;
    assert_int_equal(stat(seg, &sb), 0);
    size_t rec = HDR + strlen("record-0001");
    assert_int_equal((size_t)sb.st_size, 6 * rec);
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    /* record 2 (index 1): flip a payload byte; record 6: cut short by 3 bytes */
    char b;
    assert_int_equal(pread(fd, &b, 1, (off_t)(rec + HDR + 2)), 1);
    b ^= 0x20;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)(rec + HDR + 2)), 1);
    assert_int_equal(ftruncate(fd, (off_t)(6 * rec - 3)), 0);
    close(fd);

    q = open_q(e);
    struct fg_pqueue_stats st;
    fg_pqueue_stats(q, &st);
    assert_int_equal(st.torn_records, 2);
    assert_int_equal(st.replayed_records, 4);
    fg_pqueue_ack(q, take_expect(q, 1));
    fg_pqueue_ack(q, take_expect(q, 3));
    fg_pqueue_ack(q, take_expect(q, 4));
    fg_pqueue_ack(q, take_expect(q, 5));
    struct fg_pqueue_item it;
    assert_int_equal(fg_pqueue_take(q, now_ns(), NULL, &it), FG_ENOTFOUND);
    fg_pqueue_close(q);
}

static void test_garbage_files(void **state)
{
    struct env *e = *state;
    char path[PATH_MAX];
    /* a segment of pure garbage and one of zero length: replay survives both */
    snprintf(path, sizeof(path), "%s/seg-0000000000000003.log", e->dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 1000; i++)
        fputc((i * 37) & 0xff, f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/seg-0000000000000004.log", e->dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/not-a-segment.txt", e->dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fclose(f);
    struct fg_pqueue *q = open_q(e);
    struct fg_pqueue_stats st;
    fg_pqueue_stats(q, &st);
    assert_int_equal(st.replayed_records, 0);
    assert_int_equal(st.torn_records, 1);
    /* numbering continues after the highest existing segment */
    append_n(q, 1, 1);
    snprintf(path, sizeof(path), "%s/seg-0000000000000005.log", e->dir);
    assert_int_equal(access(path, F_OK), 0);
    fg_pqueue_ack(q, take_expect(q, 1));
    fg_pqueue_close(q);
}

static void test_rollover_and_max_size(void **state)
{
    struct env *e = *state;
    e->o.segment_size = 4096;
    e->o.max_size = 65536; /* segment_size stays 4096 (≤ max_size / 4) */
    e->o.fsync = FG_FSYNC_ALWAYS;
    struct fg_pqueue *q = open_q(e);
    char big[1000];
    memset(big, 'x', sizeof(big));
    struct fg_err err = {{0}};
    int n = 0, rc;
    while ((rc = fg_pqueue_append(q, big, sizeof(big), 1, &err)) == 0)
        n++;
    assert_int_equal(rc, FG_EFULL);
    assert_non_null(strstr(err.msg, "full"));
    /* ~1 KiB records, 4 per 4 KiB segment, 64 KiB in all */
    assert_true(n >= 56 && n <= 64);
    assert_true(count_segments(e->dir) >= 14);
    struct fg_pqueue_stats st;
    fg_pqueue_stats(q, &st);
    assert_true(st.disk_bytes <= 65536);

    /* acknowledging the oldest segment's records deletes it and makes room */
    for (int i = 0; i < 8; i++) {
        struct fg_pqueue_item it;
        assert_int_equal(fg_pqueue_take(q, now_ns(), NULL, &it), 0);
        fg_free(it.data);
        fg_pqueue_ack(q, it.ticket);
    }
    assert_int_equal(fg_pqueue_append(q, big, sizeof(big), 1, &err), 0);
    fg_pqueue_stats(q, &st);
    assert_int_equal(st.pending_records, (uint64_t)n - 8 + 1);
    fg_pqueue_close(q);

    /* everything comes back after reopen, in order of appending */
    q = open_q(e);
    fg_pqueue_stats(q, &st);
    assert_int_equal(st.replayed_records, (uint64_t)n - 8 + 1);
    for (;;) {
        struct fg_pqueue_item it;
        if (fg_pqueue_take(q, now_ns(), NULL, &it) != 0)
            break;
        assert_int_equal(it.len, sizeof(big));
        fg_free(it.data);
        fg_pqueue_ack(q, it.ticket);
    }
    fg_pqueue_stats(q, &st);
    assert_int_equal(st.pending_records, 0);
    assert_true(count_segments(e->dir) <= 1); /* at most the one being written */
    fg_pqueue_close(q);
}

static void test_attach_and_lock(void **state)
{
    struct env *e = *state;
    struct fg_pqueue *a = open_q(e), *b = open_q(e);
    assert_ptr_equal(a, b);
    assert_int_equal(fg_pqueue_attached(a), 2);
    append_n(a, 1, 1);
    fg_pqueue_close(a);
    assert_int_equal(fg_pqueue_attached(b), 1);
    fg_pqueue_ack(b, take_expect(b, 1));
    fg_pqueue_close(b);

    /* another holder of the directory lock (another process) keeps us out */
    char lock[PATH_MAX + 8];
    snprintf(lock, sizeof(lock), "%s/LOCK", e->dir);
    int fd = open(lock, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    struct fg_pqueue *q = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_pqueue_open(&e->o, &q, &err), FG_EIO);
    assert_null(q);
    assert_non_null(strstr(err.msg, "in use"));
    close(fd);
    q = open_q(e);
    fg_pqueue_close(q);
}

static void test_fsync_never_and_missing_dir(void **state)
{
    struct env *e = *state;
    char sub[PATH_MAX + 8];
    snprintf(sub, sizeof(sub), "%s/sub", e->dir);
    e->o.directory = sub; /* created on open */
    e->o.fsync = FG_FSYNC_NEVER;
    struct fg_pqueue *q = open_q(e);
    append_n(q, 7, 2);
    fg_pqueue_close(q);
    q = open_q(e);
    fg_pqueue_ack(q, take_expect(q, 7));
    fg_pqueue_ack(q, take_expect(q, 8));
    fg_pqueue_close(q);

    struct fg_err err = {{0}};
    struct fg_pqueue_options bad = e->o;
    bad.directory = "/nonexistent-dir/for/sure";
    assert_int_equal(fg_pqueue_open(&bad, &q, &err), FG_EIO);
    bad.directory = "";
    assert_int_equal(fg_pqueue_open(&bad, &q, &err), FG_EINVAL);
}

static void test_alloc_failures(void **state)
{
    struct env *e = *state;
    struct fg_pqueue *q = open_q(e);
    append_n(q, 1, 3);
    fg_pqueue_close(q);
    /* open (with replay) and append under every failing allocation: an error or success,
     * never a crash or a leak (checked under the sanitizer build) */
    for (unsigned long n = 1; n < 40; n++) {
        struct fg_err err = {{0}};
        fg_alloc_fail_after(n);
        int rc = fg_pqueue_open(&e->o, &q, &err);
        if (rc == 0) {
            fg_pqueue_append(q, "abc", 3, 1, &err);
            fg_alloc_fail_after(0);
            fg_pqueue_close(q);
        }
        fg_alloc_fail_after(0);
    }
    q = open_q(e);
    struct fg_pqueue_stats st;
    fg_pqueue_stats(q, &st);
    assert_true(st.pending_records >= 3);
    fg_pqueue_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fifo_ack_nack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_skips_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_and_corrupt_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollover_and_max_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_never_and_missing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
