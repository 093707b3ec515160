/* The exporter helper's queue, retry loop and shutdown against a scripted fake sender. */
#include "testutil.h"

#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fg_exporter_helper.h"
#include "fg_log.h"
#include "fg_model.h"

#define MS INT64_C(1000000)

struct fake {
    pthread_mutex_t mu;
    int calls;
    int script[16];          /* results of the first n_script calls */
    int64_t retry_after[16]; /* Retry-After reported with them */
    int n_script;
    int default_rc; /* after the script */
    int sleep_ms;   /* time each call takes */
    int64_t times[64];
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int fake_send(void *ctx, struct fg_profiles *batch, int64_t *retry_after_ns,
                     struct fg_err *err)
{
    struct fake *f = ctx;
    FG_UNUSED(batch); /* no cmocka asserts here: this runs on worker threads */
    pthread_mutex_lock(&f->mu);
    int i = f->calls++;
    if (i < (int)FG_ARRAY_LEN(f->times))
        f->times[i] = now_ns();
    int rc = i < f->n_script ? f->script[i] : f->default_rc;
    if (i < f->n_script)
        *retry_after_ns = f->retry_after[i];
    int sleep_ms = f->sleep_ms;
    pthread_mutex_unlock(&f->mu);
    if (sleep_ms > 0)
        usleep((useconds_t)sleep_ms * 1000);
    if (rc != 0)
        fg_err_set(err, rc, "fake failure %d", i);
    return rc;
}

static int fake_calls(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->calls;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
}

/* A batch with n samples (one resource, scope and profile). */
static struct fg_profiles *make_batch(uint32_t n)
{
    struct fg_profiles *p = NULL;
    assert_int_equal(fg_profiles_new(&p), 0);
    struct fg_resource res = {0};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "", 0);
    assert_non_null(rp);
    struct fg_scope scope = {0};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(p, rp, &scope, "", 0);
    assert_non_null(sp);
    struct fg_profile proto = {0};
    struct fg_profile *prof = fg_profiles_add_profile(p, sp, &proto);
    assert_non_null(prof);
    for (uint32_t i = 0; i < n; i++) {
        int64_t v = i + 1;
        struct fg_sample s = {.n_values = 1, .values = &v};
        assert_int_equal(fg_profiles_add_sample(p, prof, &s), 0);
    }
    assert_int_equal(p->n_samples, n);
    return p;
}

static struct fg_exporter_settings settings(bool queue, int consumers, int size)
{
    struct fg_exporter_settings s = {
        .timeout_ns = 1000 * MS,
        .retry = {.enabled = true,
                  .initial_interval_ns = 10 * MS,
                  .max_interval_ns = 50 * MS,
                  .max_elapsed_time_ns = 2000 * MS},
        .queue = {.enabled = queue, .num_consumers = consumers, .queue_size = size},
    };
    return s;
}

static struct fg_exporter *make(const struct fg_exporter_settings *s, struct fake *f)
{
    struct fg_exporter *e = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_exporter_new("test", s, fake_send, f, &e, &err), 0);
    return e;
}

static void test_queue_full(void **state)
{
    struct fake f;
    fake_init(&f);
    struct fg_exporter_settings s = settings(true, 1, 2);
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};

    /* Not started yet: nothing drains, so the third batch finds the queue full. */
    assert_int_equal(fg_exporter_enqueue(e, make_batch(1), &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(2), &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(3), &err), FG_EFULL);
    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_int_equal(st.queue_size, 2);
    assert_int_equal(st.enqueue_failed_batches, 1);
    assert_int_equal(st.enqueue_failed_samples, 3);

    assert_int_equal(fg_exporter_start(e, &err), 0);
    assert_int_equal(fg_exporter_shutdown(e, now_ns() + 2000 * MS), 0);
    fg_exporter_stats(e, &st);
    assert_int_equal(st.sent_batches, 2);
    assert_int_equal(st.sent_samples, 3);
    assert_int_equal(st.queue_size, 0);
    assert_int_equal(fake_calls(&f), 2);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(1), &err), FG_ESTOPPED);
    fg_exporter_free(e);
}

static void test_retry_then_success(void **state)
{
    struct fake f;
    fake_init(&f);
    f.script[0] = FG_ERETRYABLE;
    f.script[1] = FG_ERETRYABLE;
    f.n_script = 2;
    struct fg_exporter_settings s = settings(false, 1, 1);
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};
    assert_int_equal(fg_exporter_start(e, &err), 0);

    int64_t t0 = now_ns();
    assert_int_equal(fg_exporter_enqueue(e, make_batch(4), &err), 0);
    int64_t took = now_ns() - t0;
    assert_int_equal(fake_calls(&f), 3);
    /* Two waits: at least half of 10 ms, then half of 15 ms. */
    assert_true(took >= 12 * MS);
    assert_true(f.times[1] - f.times[0] >= 5 * MS);
    assert_true(f.times[1] - f.times[0] <= 50 * MS + 20 * MS);

    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_int_equal(st.sent_batches, 1);
    assert_int_equal(st.sent_samples, 4);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.failed_batches, 0);
    assert_int_equal(fg_exporter_shutdown(e, now_ns() + 1000 * MS), 0);
    fg_exporter_free(e);
}

static void test_retry_after_respected(void **state)
{
    struct fake f;
    fake_init(&f);
    f.script[0] = FG_ERETRYABLE;
    f.retry_after[0] = 150 * MS; /* well above the 10 ms backoff and the 50 ms cap */
    f.n_script = 1;
    struct fg_exporter_settings s = settings(true, 1, 4);
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};
    assert_int_equal(fg_exporter_start(e, &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(1), &err), 0);
    for (int i = 0; i < 200 && fake_calls(&f) < 2; i++)
        usleep(10000);
    assert_int_equal(fake_calls(&f), 2);
    assert_true(f.times[1] - f.times[0] >= 150 * MS);
    assert_int_equal(fg_exporter_shutdown(e, now_ns() + 1000 * MS), 0);
    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_int_equal(st.sent_batches, 1);
    assert_int_equal(st.retries, 1);
    fg_exporter_free(e);
}

static void test_permanent_not_retried(void **state)
{
    struct fake f;
    fake_init(&f);
    f.script[0] = FG_EPERMANENT;
    f.n_script = 1;
    struct fg_exporter_settings s = settings(false, 1, 1);
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};
    assert_int_equal(fg_exporter_start(e, &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(7), &err), FG_EPERMANENT);
    assert_int_equal(fake_calls(&f), 1);
    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_int_equal(st.failed_batches, 1);
    assert_int_equal(st.failed_samples, 7);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.sent_batches, 0);
    fg_exporter_shutdown(e, now_ns());
    fg_exporter_free(e);
}

static void test_retry_disabled_one_attempt(void **state)
{
    struct fake f;
    fake_init(&f);
    f.default_rc = FG_ERETRYABLE;
    struct fg_exporter_settings s = settings(false, 1, 1);
    s.retry.enabled = false;
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};
    assert_int_equal(fg_exporter_start(e, &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(1), &err), FG_ERETRYABLE);
    assert_int_equal(fake_calls(&f), 1);
    fg_exporter_shutdown(e, now_ns());
    fg_exporter_free(e);
}

static void test_max_elapsed_gives_up(void **state)
{
    struct fake f;
    fake_init(&f);
    f.default_rc = FG_ERETRYABLE;
    struct fg_exporter_settings s = settings(false, 1, 1);
    s.retry.max_interval_ns = 20 * MS;
    s.retry.max_elapsed_time_ns = 100 * MS;
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};
    assert_int_equal(fg_exporter_start(e, &err), 0);
    int64_t t0 = now_ns();
    assert_int_equal(fg_exporter_enqueue(e, make_batch(3), &err), FG_ERETRYABLE);
    int64_t took = now_ns() - t0;
    assert_true(took >= 100 * MS);
    assert_true(took < 1000 * MS);
    assert_true(fake_calls(&f) >= 4); /* waits are at most 20 ms */
    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_int_equal(st.failed_batches, 1);
    assert_int_equal(st.failed_samples, 3);
    assert_int_equal(st.retries, (uint64_t)fake_calls(&f) - 1);
    fg_exporter_shutdown(e, now_ns());
    fg_exporter_free(e);
}

static void test_shutdown_drains(void **state)
{
    struct fake f;
    fake_init(&f);
    f.sleep_ms = 5;
    struct fg_exporter_settings s = settings(true, 2, 100);
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};
    for (int i = 0; i < 20; i++)
        assert_int_equal(fg_exporter_enqueue(e, make_batch(2), &err), 0);
    assert_int_equal(fg_exporter_start(e, &err), 0);
    int64_t t0 = now_ns();
    assert_int_equal(fg_exporter_shutdown(e, t0 + 3000 * MS), 0);
    assert_true(now_ns() - t0 < 3000 * MS);
    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_int_equal(st.sent_batches, 20);
    assert_int_equal(st.sent_samples, 40);
    assert_int_equal(st.failed_batches, 0);
    assert_int_equal(fake_calls(&f), 20);
    fg_exporter_free(e);
}

static void test_shutdown_deadline_drops_rest(void **state)
{
    struct fake f;
    fake_init(&f);
    f.sleep_ms = 100;
    struct fg_exporter_settings s = settings(true, 1, 10);
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};
    for (int i = 0; i < 5; i++)
        assert_int_equal(fg_exporter_enqueue(e, make_batch(1), &err), 0);
    assert_int_equal(fg_exporter_start(e, &err), 0);
    int64_t t0 = now_ns();
    assert_int_equal(fg_exporter_shutdown(e, t0 + 150 * MS), FG_ETIMEOUT);
    /* The send in flight at the deadline finishes (at most one call, 100 ms) before the join. */
    assert_true(now_ns() - t0 < 400 * MS);
    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_true(st.sent_batches >= 1 && st.sent_batches <= 3);
    assert_int_equal(st.sent_batches + st.failed_batches, 5);
    assert_int_equal(st.queue_size, 0);
    fg_exporter_free(e);
}

static void test_shutdown_stuck_retry(void **state)
{
    struct fake f;
    fake_init(&f);
    f.default_rc = FG_ERETRYABLE;
    struct fg_exporter_settings s = settings(true, 1, 10);
    s.retry.initial_interval_ns = 10000 * MS; /* the worker would sleep for seconds */
    s.retry.max_interval_ns = 30000 * MS;
    s.retry.max_elapsed_time_ns = 0;
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};
    assert_int_equal(fg_exporter_start(e, &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(5), &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(6), &err), 0);
    for (int i = 0; i < 200 && fake_calls(&f) < 1; i++)
        usleep(5000);
    assert_int_equal(fake_calls(&f), 1);

    int64_t t0 = now_ns();
    assert_int_equal(fg_exporter_shutdown(e, t0 + 200 * MS), FG_ETIMEOUT);
    int64_t took = now_ns() - t0;
    assert_true(took >= 190 * MS);
    assert_true(took < 700 * MS);
    assert_int_equal(fake_calls(&f), 1);
    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_int_equal(st.failed_batches, 2); /* the one retrying and the one still queued */
    assert_int_equal(st.failed_samples, 11);
    assert_int_equal(st.sent_batches, 0);
    fg_exporter_free(e);
}

static void test_free_without_start(void **state)
{
    struct fake f;
    fake_init(&f);
    struct fg_exporter_settings s = settings(true, 3, 10);
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};
    assert_int_equal(fg_exporter_enqueue(e, make_batch(1), &err), 0);
    fg_exporter_free(e); /* releases the queued batch: the leak checker would tell */
    fg_exporter_free(NULL);
    assert_int_equal(fake_calls(&f), 0);
}

int main(void)
{
    fg_log_set_level(FG_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_retry_then_success),
        cmocka_unit_test(test_retry_after_respected),
        cmocka_unit_test(test_permanent_not_retried),
        cmocka_unit_test(test_retry_disabled_one_attempt),
        cmocka_unit_test(test_max_elapsed_gives_up),
        cmocka_unit_test(test_shutdown_drains),
        cmocka_unit_test(test_shutdown_deadline_drops_rest),
        cmocka_unit_test(test_shutdown_stuck_retry),
        cmocka_unit_test(test_free_without_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
