/* Processor "batch": size and time triggers, max size, shutdown flush, one shared dictionary. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include "fg_component.h"
#include "fg_config.h"
#include "fg_model.h"
#include "fg_service.h"

/* A consumer that records what reaches it. */
struct recorder {
    struct fg_consumer consumer;
    pthread_mutex_t mu;
    struct fg_profiles *batches[64];
    int64_t arrived_ns[64];
    int n;
    int refuse; /* return FG_EFULL when set */
};

static int record(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct recorder *r = (struct recorder *)self;
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    if (r->refuse) {
        rc = fg_err_set(err, FG_EFULL, "full");
        fg_profiles_unref(batch);
    } else {
        r->arrived_ns[r->n] = fg_now_ns();
        r->batches[r->n++] = batch;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static int count(struct recorder *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

struct fixture {
    struct fg_config *cfg;
    struct fg_component *batch;
    struct recorder rec;
};

static void setup(struct fixture *f, const char *batch_yaml)
{
    memset(&f->rec, 0, sizeof(f->rec));
    f->rec.consumer.consume = record;
    pthread_mutex_init(&f->rec.mu, NULL);
    f->batch = tu_processor_start("batch", batch_yaml, &f->rec.consumer, &f->cfg);
}

static void teardown(struct fixture *f)
{
    f->batch->ops->destroy(f->batch);
    for (int i = 0; i < f->rec.n; i++)
        fg_profiles_unref(f->rec.batches[i]);
    pthread_mutex_destroy(&f->rec.mu);
    fg_config_free(f->cfg);
}

static int send(struct fixture *f, const char *service, int samples)
{
    struct fg_err err;
    return fg_consume(&f->batch->consumer, tu_make_batch(service, samples), &err);
}

static void test_size_trigger_merges_into_one_dictionary(void **state)
{
    struct fixture f;
    setup(&f, "    timeout: 10s\n    send_batch_size: 10");
    assert_int_equal(send(&f, "a", 3), 0);
    assert_int_equal(send(&f, "a", 3), 0);
    assert_int_equal(send(&f, "b", 3), 0);
    assert_int_equal(count(&f.rec), 0);
    assert_int_equal(send(&f, "a", 3), 0); /* 12 >= 10: sent on this call */
    assert_int_equal(count(&f.rec), 1);
    struct fg_profiles *out = f.rec.batches[0];
    assert_int_equal(out->n_samples, 12);
    assert_int_equal(out->n_resources, 2); /* "a" three times coalesced, "b" once */
    /* one dictionary: the stacks of identical batches are stored once */
    struct fg_profiles *one = tu_make_batch("a", 3);
    assert_int_equal(fg_dict_len(out, FG_TABLE_STACK), fg_dict_len(one, FG_TABLE_STACK));
    fg_profiles_unref(one);
    f.batch->ops->shutdown(f.batch, fg_now_ns() + 1000000000);
    assert_int_equal(count(&f.rec), 1); /* nothing pending */
    teardown(&f);
}

static void test_timeout_trigger(void **state)
{
    struct fixture f;
    setup(&f, "    timeout: 50ms");
    int64_t start = fg_now_ns();
    assert_int_equal(send(&f, "a", 2), 0);
    for (int i = 0; i < 200 && count(&f.rec) == 0; i++)
        usleep(5000);
    assert_int_equal(count(&f.rec), 1);
    int64_t waited = f.rec.arrived_ns[0] - start;
    assert_true(waited >= 45 * 1000000LL);
    assert_true(waited < 900 * 1000000LL);
    assert_int_equal(f.rec.batches[0]->n_samples, 2);
    f.batch->ops->shutdown(f.batch, fg_now_ns() + 1000000000);
    teardown(&f);
}

static void test_shutdown_flushes_pending(void **state)
{
    struct fixture f;
    setup(&f, "    timeout: 1h");
    assert_int_equal(send(&f, "a", 5), 0);
    assert_int_equal(send(&f, "b", 5), 0);
    assert_int_equal(count(&f.rec), 0);
    assert_int_equal(f.batch->ops->shutdown(f.batch, fg_now_ns() + 1000000000), 0);
    assert_int_equal(count(&f.rec), 1);
    assert_int_equal(f.rec.batches[0]->n_samples, 10);
    /* after shutdown new data is refused, not silently dropped */
    assert_int_equal(send(&f, "c", 1), FG_ESTOPPED);
    teardown(&f);
}

static void test_max_size_splits_between_requests(void **state)
{
    struct fixture f;
    setup(&f, "    timeout: 1h\n    send_batch_size: 8\n    send_batch_max_size: 8");
    assert_int_equal(send(&f, "a", 5), 0);
    assert_int_equal(send(&f, "a", 5), 0); /* 5 + 5 > 8: the first 5 leave alone */
    assert_int_equal(count(&f.rec), 1);
    assert_int_equal(f.rec.batches[0]->n_samples, 5);
    f.batch->ops->shutdown(f.batch, fg_now_ns() + 1000000000);
    assert_int_equal(count(&f.rec), 2);
    assert_int_equal(f.rec.batches[1]->n_samples, 5);
    teardown(&f);
}

static void test_refused_batch_is_held_and_backpressure_applies(void **state)
{
    struct fixture f;
    setup(&f, "    timeout: 1h\n    send_batch_size: 4");
    f.rec.refuse = 1;
    /* the size flush is refused: the batch is kept, so this request is still accepted */
    assert_int_equal(send(&f, "a", 5), 0);
    assert_int_equal(count(&f.rec), 0);
    /* while it is held, new data is refused with a retryable error, not dropped */
    assert_int_equal(send(&f, "b", 1), FG_ERETRYABLE);
    pthread_mutex_lock(&f.rec.mu);
    f.rec.refuse = 0;
    pthread_mutex_unlock(&f.rec.mu);
    /* the timer offers it again (first retry after 100 ms) */
    for (int i = 0; i < 400 && count(&f.rec) == 0; i++)
        usleep(5000);
    assert_int_equal(count(&f.rec), 1);
    assert_int_equal(f.rec.batches[0]->n_samples, 5);
    assert_int_equal(send(&f, "b", 1), 0);
    f.batch->ops->shutdown(f.batch, fg_now_ns() + 1000000000);
    assert_int_equal(count(&f.rec), 2);
    teardown(&f);
}

static void test_shutdown_retries_held_until_the_deadline(void **state)
{
    struct fixture f;
    setup(&f, "    timeout: 1h");
    assert_int_equal(send(&f, "a", 3), 0);
    f.rec.refuse = 1;
    /* refused on the shutdown flush and still refused at the deadline: reported lost */
    assert_int_equal(f.batch->ops->shutdown(f.batch, fg_now_ns() + 300000000), FG_ETIMEOUT);
    assert_int_equal(count(&f.rec), 0);
    teardown(&f);
}

static void test_zero_timeout_passes_through(void **state)
{
    struct fixture f;
    setup(&f, "    timeout: 0s");
    assert_int_equal(send(&f, "a", 1), 0);
    assert_int_equal(send(&f, "a", 1), 0);
    assert_int_equal(count(&f.rec), 2);
    f.batch->ops->shutdown(f.batch, fg_now_ns() + 1000000000);
    teardown(&f);
}

static void *sender(void *arg)
{
    struct fixture *f = arg;
    for (int i = 0; i < 50; i++)
        if (send(f, i % 2 ? "x" : "y", 2) != 0)
            return (void *)1;
    return NULL;
}

static void test_concurrent_senders_lose_nothing(void **state)
{
    struct fixture f;
    setup(&f, "    timeout: 20ms\n    send_batch_size: 30");
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&threads[i], NULL, sender, &f);
    for (int i = 0; i < 4; i++) {
        void *res;
        pthread_join(threads[i], &res);
        assert_null(res);
    }
    f.batch->ops->shutdown(f.batch, fg_now_ns() + 1000000000);
    uint64_t total = 0;
    for (int i = 0; i < f.rec.n; i++)
        total += f.rec.batches[i]->n_samples;
    assert_int_equal(total, 4 * 50 * 2);
    assert_true(f.rec.n < 200);
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_trigger_merges_into_one_dictionary),
        cmocka_unit_test(test_timeout_trigger),
        cmocka_unit_test(test_shutdown_flushes_pending),
        cmocka_unit_test(test_max_size_splits_between_requests),
        cmocka_unit_test(test_refused_batch_is_held_and_backpressure_applies),
        cmocka_unit_test(test_shutdown_retries_held_until_the_deadline),
        cmocka_unit_test(test_zero_timeout_passes_through),
        cmocka_unit_test(test_concurrent_senders_lose_nothing),
    };
    return cmocka_run_group_tests_name("batch_processor", tests, NULL, NULL);
}
