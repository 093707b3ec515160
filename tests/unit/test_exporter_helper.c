/* The exporter helper's queue, retry loop and shutdown against a scripted fake sender. */
#include "testutil.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_exporter_helper.h"
#include "fg_log.h"
#include "fg_model.h"
#include "file_storage.h"

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
    assert_int_equal(st.lost_batches, 2); /* the exact count shutdown logs */
    assert_int_equal(st.lost_samples, 11);
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


/* ---- sizers and block_on_overflow ---- */

static void test_sizer_samples(void **state)
{
    struct fake f;
    fake_init(&f);
    struct fg_exporter_settings s = settings(true, 1, 10);
    s.queue.sizer = FG_SIZER_SAMPLES;
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};
    assert_int_equal(fg_exporter_enqueue(e, make_batch(4), &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(4), &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(4), &err), FG_EFULL);
    assert_non_null(strstr(err.msg, "samples"));
    assert_int_equal(fg_exporter_enqueue(e, make_batch(2), &err), 0);
    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_int_equal(st.queue_units, 10);
    assert_int_equal(st.queue_size, 3);
    assert_int_equal(st.enqueue_failed_samples, 4);
    fg_exporter_free(e);

    /* an empty queue takes one batch larger than queue_size, so it is not refused forever */
    e = make(&s, &f);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(50), &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(1), &err), FG_EFULL);
    fg_exporter_free(e);
}

static void test_sizer_bytes(void **state)
{
    struct fake f;
    fake_init(&f);
    struct fg_profiles *probe = make_batch(8);
    size_t one = fg_profiles_memory(probe);
    fg_profiles_unref(probe);
    assert_true(one > 100);
    struct fg_exporter_settings s = settings(true, 1, (int)(one * 2 + one / 2));
    s.queue.sizer = FG_SIZER_BYTES;
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};
    assert_int_equal(fg_exporter_enqueue(e, make_batch(8), &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(8), &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, make_batch(8), &err), FG_EFULL);
    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_int_equal(st.queue_units, 2 * one);
    fg_exporter_free(e);
}

static void test_block_on_overflow(void **state)
{
    struct fake f;
    fake_init(&f);
    f.sleep_ms = 40;
    struct fg_exporter_settings s = settings(true, 1, 1);
    s.queue.block_on_overflow = true;
    struct fg_exporter *e = make(&s, &f);
    struct fg_err err = {{0}};
    assert_int_equal(fg_exporter_start(e, &err), 0);
    int64_t t0 = now_ns();
    for (int i = 0; i < 5; i++)
        assert_int_equal(fg_exporter_enqueue(e, make_batch(1), &err), 0); /* waits, never full */
    /* five sends of 40 ms, one at a time, with room for one waiting batch */
    assert_true(now_ns() - t0 >= 100 * MS);
    assert_int_equal(fg_exporter_shutdown(e, now_ns() + 2000 * MS), 0);
    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_int_equal(st.sent_batches, 5);
    assert_int_equal(st.enqueue_failed_batches, 0);
    fg_exporter_free(e);
}

/* ---- persistent queue through a file_storage extension ---- */

struct recorder {
    pthread_mutex_t mu;
    int rc; /* what send answers */
    int sent;
    uint64_t samples;
    char tenant[128];
    char *canon[8];
};

static int recorder_send(void *ctx, struct fg_profiles *batch, int64_t *retry_after_ns,
                         struct fg_err *err)
{
    struct recorder *r = ctx;
    pthread_mutex_lock(&r->mu);
    int rc = r->rc;
    if (rc == 0) {
        if (r->sent < 8)
            r->canon[r->sent] = tu_canon(batch);
        r->sent++;
        r->samples += batch->n_samples;
        snprintf(r->tenant, sizeof(r->tenant), "%s", batch->tenant);
    }
    pthread_mutex_unlock(&r->mu);
    if (rc)
        fg_err_set(err, rc, "recorder says no");
    return rc;
}

static int recorder_sent(struct recorder *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->sent;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void recorder_free(struct recorder *r)
{
    for (int i = 0; i < 8; i++)
        fg_free(r->canon[i]);
    pthread_mutex_destroy(&r->mu);
}

struct storage_env {
    char dir[PATH_MAX];
    struct fg_component *ext;
    void *config;
};

static struct fg_component *find_ext(void *ctx, const char *id)
{
    struct storage_env *env = ctx;
    return strcmp(id, env->ext->id) == 0 ? env->ext : NULL;
}

static void storage_up(struct storage_env *env)
{
    const struct fg_factory *f = fg_factory_find(FG_KIND_EXTENSION, "file_storage");
    assert_non_null(f);
    tu_tempdir(env->dir, sizeof(env->dir));
    env->config = fg_calloc(1, f->config_size);
    struct fg_err err = {{0}};
    assert_int_equal(fg_options_defaults(f->options, env->config, &err), 0);
    struct file_storage_config *c = env->config;
    fg_free(c->directory);
    c->directory = fg_strdup(env->dir);
    struct fg_create_args args = {.id = "file_storage/q", .config = env->config};
    assert_int_equal(f->create(&args, &env->ext, &err), 0);
    assert_int_equal(env->ext->ops->start(env->ext, &err), 0);
}

static void storage_down(struct storage_env *env)
{
    const struct fg_factory *f = fg_factory_find(FG_KIND_EXTENSION, "file_storage");
    env->ext->ops->shutdown(env->ext, 0);
    env->ext->ops->destroy(env->ext);
    fg_options_free(f->options, env->config);
    fg_free(env->config);
    tu_rmtree(env->dir);
}

/* fg_exporter_new as a factory's create calls it: inside the service's create context. */
static int make_persistent(struct storage_env *env, const char *storage_id, struct recorder *r,
                           struct fg_exporter **out, struct fg_err *err)
{
    struct fg_exporter_settings s = settings(true, 2, 100);
    s.retry.max_elapsed_time_ns = 0;
    s.retry.initial_interval_ns = 20 * MS;
    char id[64];
    snprintf(id, sizeof(id), "%s", storage_id);
    s.queue.storage = id;
    struct fg_create_args args = {.id = "otlphttp", .find_extension = find_ext, .find_ctx = env};
    fg_create_args_set_current(&args);
    int rc = fg_exporter_new("otlphttp", &s, recorder_send, r, out, err);
    fg_create_args_set_current(NULL);
    return rc;
}

static void test_persistent_survives_restart(void **state)
{
    struct storage_env env;
    storage_up(&env);
    struct recorder down = {.mu = PTHREAD_MUTEX_INITIALIZER, .rc = FG_ERETRYABLE};
    struct fg_exporter *e = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(make_persistent(&env, "file_storage/q", &down, &e, &err), 0);
    assert_int_equal(fg_exporter_start(e, &err), 0);
    char *want[3];
    for (int i = 0; i < 3; i++) {
        struct fg_profiles *b = tu_make_batch("svc", 2 + i);
        snprintf(b->tenant, sizeof(b->tenant), "tenant-%d", 7);
        want[i] = tu_canon(b);
        assert_int_equal(fg_exporter_enqueue(e, b, &err), 0);
    }
    usleep(50000);
    int64_t t0 = now_ns();
    /* the upstream stays down: the deadline ends the drain, the batches stay on disk */
    assert_int_equal(fg_exporter_shutdown(e, t0 + 150 * MS), FG_ETIMEOUT);
    assert_true(now_ns() - t0 < 1000 * MS);
    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_int_equal(st.kept_batches, 3);
    assert_int_equal(st.kept_samples, 2 + 3 + 4);
    assert_int_equal(st.lost_batches, 0);
    assert_int_equal(st.sent_batches, 0);
    assert_int_equal(fg_exporter_enqueue(e, tu_make_batch("x", 1), &err), FG_ESTOPPED);
    fg_exporter_free(e);

    /* a new exporter on the same storage sends them, decoded back to the same data */
    struct recorder up = {.mu = PTHREAD_MUTEX_INITIALIZER, .rc = 0};
    assert_int_equal(make_persistent(&env, "file_storage/q", &up, &e, &err), 0);
    assert_int_equal(fg_exporter_start(e, &err), 0);
    for (int i = 0; i < 300 && recorder_sent(&up) < 3; i++)
        usleep(10000);
    assert_int_equal(fg_exporter_shutdown(e, now_ns() + 1000 * MS), 0);
    fg_exporter_stats(e, &st);
    assert_int_equal(st.sent_batches, 3);
    assert_int_equal(st.sent_samples, 9);
    assert_int_equal(st.kept_batches, 0);
    assert_string_equal(up.tenant, "tenant-7");
    for (int i = 0; i < 3; i++) {
        bool found = false;
        for (int j = 0; j < 3; j++)
            found |= strcmp(want[i], up.canon[j]) == 0;
        assert_true(found);
        fg_free(want[i]);
    }
    fg_exporter_free(e);
    recorder_free(&up);
    recorder_free(&down);
    storage_down(&env);
}

static void test_persistent_handover(void **state)
{
    struct storage_env env;
    storage_up(&env);
    struct recorder down = {.mu = PTHREAD_MUTEX_INITIALIZER, .rc = FG_ERETRYABLE};
    struct recorder up = {.mu = PTHREAD_MUTEX_INITIALIZER, .rc = 0};
    struct fg_exporter *old = NULL, *next = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(make_persistent(&env, "file_storage/q", &down, &old, &err), 0);
    assert_int_equal(fg_exporter_start(old, &err), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(fg_exporter_enqueue(old, tu_make_batch("svc", 1), &err), 0);
    usleep(50000); /* the old workers hold two batches in their retry loops */
    /* a reload: the successor attaches to the same queue, then the old one stops */
    assert_int_equal(make_persistent(&env, "file_storage/q", &up, &next, &err), 0);
    assert_int_equal(fg_exporter_start(next, &err), 0);
    int64_t t0 = now_ns();
    assert_int_equal(fg_exporter_shutdown(old, t0 + 10000 * MS), 0);
    assert_true(now_ns() - t0 < 2000 * MS); /* handed over, not drained for 10 s */
    for (int i = 0; i < 300 && recorder_sent(&up) < 4; i++)
        usleep(10000);
    assert_int_equal(recorder_sent(&up), 4);
    assert_int_equal(fg_exporter_enqueue(next, tu_make_batch("svc", 1), &err), 0);
    for (int i = 0; i < 300 && recorder_sent(&up) < 5; i++)
        usleep(10000);
    assert_int_equal(recorder_sent(&up), 5);
    fg_exporter_free(old);
    assert_int_equal(fg_exporter_shutdown(next, now_ns() + 1000 * MS), 0);
    fg_exporter_free(next);
    recorder_free(&up);
    recorder_free(&down);
    storage_down(&env);
}

static void test_persistent_full_is_retryable(void **state)
{
    struct storage_env env;
    storage_up(&env);
    struct recorder down = {.mu = PTHREAD_MUTEX_INITIALIZER, .rc = FG_ERETRYABLE};
    struct fg_exporter_settings s = settings(true, 1, 2); /* 2 batches */
    char id[] = "file_storage/q";
    s.queue.storage = id;
    struct fg_create_args args = {.id = "x", .find_extension = find_ext, .find_ctx = &env};
    struct fg_exporter *e = NULL;
    struct fg_err err = {{0}};
    fg_create_args_set_current(&args);
    assert_int_equal(fg_exporter_new("x", &s, recorder_send, &down, &e, &err), 0);
    fg_create_args_set_current(NULL);
    assert_int_equal(fg_exporter_start(e, &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, tu_make_batch("a", 1), &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, tu_make_batch("a", 1), &err), 0);
    assert_int_equal(fg_exporter_enqueue(e, tu_make_batch("a", 1), &err), FG_EFULL);
    struct fg_exporter_stats st;
    fg_exporter_stats(e, &st);
    assert_int_equal(st.enqueue_failed_batches, 1);
    assert_int_equal(st.queue_size, 2);
    fg_exporter_shutdown(e, now_ns() + 50 * MS);
    fg_exporter_free(e);
    recorder_free(&down);
    storage_down(&env);
}

static void test_storage_lookup_errors(void **state)
{
    struct storage_env env;
    storage_up(&env);
    struct recorder r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct fg_exporter *e = NULL;
    struct fg_err err = {{0}};
    /* not defined */
    assert_int_equal(make_persistent(&env, "file_storage/other", &r, &e, &err), FG_EINVAL);
    assert_null(e);
    assert_non_null(strstr(err.msg, "file_storage/other"));
    /* outside a service's create there is nothing to look it up in */
    struct fg_exporter_settings s = settings(true, 1, 10);
    char id[] = "file_storage/q";
    s.queue.storage = id;
    assert_int_equal(fg_exporter_new("x", &s, recorder_send, &r, &e, &err), FG_EINVAL);
    /* an extension of another type */
    struct fg_component other = {.factory = fg_factory_find(FG_KIND_PROCESSOR, "batch")};
    snprintf(other.id, sizeof(other.id), "file_storage/q");
    struct storage_env fake = env;
    fake.ext = &other;
    struct fg_create_args args = {.id = "x", .find_extension = find_ext, .find_ctx = &fake};
    fg_create_args_set_current(&args);
    assert_int_equal(fg_exporter_new("x", &s, recorder_send, &r, &e, &err), FG_EINVAL);
    fg_create_args_set_current(NULL);
    assert_non_null(strstr(err.msg, "not a file_storage"));
    recorder_free(&r);
    storage_down(&env);
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
        cmocka_unit_test(test_sizer_samples),
        cmocka_unit_test(test_sizer_bytes),
        cmocka_unit_test(test_block_on_overflow),
        cmocka_unit_test(test_persistent_survives_restart),
        cmocka_unit_test(test_persistent_handover),
        cmocka_unit_test(test_persistent_full_is_retryable),
        cmocka_unit_test(test_storage_lookup_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
