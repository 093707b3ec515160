/* Processor "batch": size and time triggers, max size (splitting one oversized input), shutdown
 * flush, one shared dictionary. */
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include "fg_component.h"
#include "fg_config.h"
#include "fg_alloc.h"
#include "fg_model.h"
#include "fg_service.h"


static int send(struct tu_proc_fixture *f, const char *service, int samples)
{
    struct fg_err err;
    return fg_consume(&f->proc->consumer, tu_make_batch(service, samples), &err);
}

static void test_size_trigger_merges_into_one_dictionary(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch", "    timeout: 10s\n    send_batch_size: 10");
    assert_int_equal(send(&f, "a", 3), 0);
    assert_int_equal(send(&f, "a", 3), 0);
    assert_int_equal(send(&f, "b", 3), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 0);
    assert_int_equal(send(&f, "a", 3), 0); /* 12 >= 10: sent on this call */
    assert_int_equal(tu_recorder_count(&f.rec), 1);
    struct fg_profiles *out = f.rec.batches[0];
    assert_int_equal(out->n_samples, 12);
    assert_int_equal(out->n_resources, 2); /* "a" three times coalesced, "b" once */
    /* one dictionary: the stacks of identical batches are stored once */
    struct fg_profiles *one = tu_make_batch("a", 3);
    assert_int_equal(fg_dict_len(out, FG_TABLE_STACK), fg_dict_len(one, FG_TABLE_STACK));
    fg_profiles_unref(one);
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    assert_int_equal(tu_recorder_count(&f.rec), 1); /* nothing pending */
    tu_proc_fixture_stop(&f, false);
}

static void test_timeout_trigger(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch", "    timeout: 50ms");
    int64_t start = fg_now_ns();
    assert_int_equal(send(&f, "a", 2), 0);
    for (int i = 0; i < 200 && tu_recorder_count(&f.rec) == 0; i++)
        usleep(5000);
    assert_int_equal(tu_recorder_count(&f.rec), 1);
    int64_t waited = f.rec.arrived_ns[0] - start;
    assert_true(waited >= 45 * 1000000LL);
    assert_true(waited < 900 * 1000000LL);
    assert_int_equal(f.rec.batches[0]->n_samples, 2);
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    tu_proc_fixture_stop(&f, false);
}

static void test_shutdown_flushes_pending(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch", "    timeout: 1h");
    assert_int_equal(send(&f, "a", 5), 0);
    assert_int_equal(send(&f, "b", 5), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 0);
    assert_int_equal(f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 1);
    assert_int_equal(f.rec.batches[0]->n_samples, 10);
    /* after shutdown new data is refused, not silently dropped */
    assert_int_equal(send(&f, "c", 1), FG_ESTOPPED);
    tu_proc_fixture_stop(&f, false);
}

static void test_max_size_splits_between_requests(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch",
                          "    timeout: 1h\n    send_batch_size: 8\n    send_batch_max_size: 8");
    assert_int_equal(send(&f, "a", 5), 0);
    assert_int_equal(send(&f, "a", 5), 0); /* 5 + 5 > 8: the first 5 leave alone */
    assert_int_equal(tu_recorder_count(&f.rec), 1);
    assert_int_equal(f.rec.batches[0]->n_samples, 5);
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    assert_int_equal(tu_recorder_count(&f.rec), 2);
    assert_int_equal(f.rec.batches[1]->n_samples, 5);
    tu_proc_fixture_stop(&f, false);
}

static void test_refused_batch_is_held_and_backpressure_applies(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch", "    timeout: 1h\n    send_batch_size: 4");
    f.rec.refuse = 1;
    /* the size flush is refused: the batch is kept, so this request is still accepted */
    assert_int_equal(send(&f, "a", 5), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 0);
    /* while it is held, new data is refused with a retryable error, not dropped */
    assert_int_equal(send(&f, "b", 1), FG_ERETRYABLE);
    pthread_mutex_lock(&f.rec.mu);
    f.rec.refuse = 0;
    pthread_mutex_unlock(&f.rec.mu);
    /* the timer offers it again (first retry after 100 ms) */
    for (int i = 0; i < 400 && tu_recorder_count(&f.rec) == 0; i++)
        usleep(5000);
    assert_int_equal(tu_recorder_count(&f.rec), 1);
    assert_int_equal(f.rec.batches[0]->n_samples, 5);
    assert_int_equal(send(&f, "b", 1), 0);
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    assert_int_equal(tu_recorder_count(&f.rec), 2);
    tu_proc_fixture_stop(&f, false);
}

static void test_shutdown_retries_held_until_the_deadline(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch", "    timeout: 1h");
    assert_int_equal(send(&f, "a", 3), 0);
    f.rec.refuse = 1;
    /* refused on the shutdown flush and still refused at the deadline: reported lost */
    assert_int_equal(f.proc->ops->shutdown(f.proc, fg_now_ns() + 300000000), FG_ETIMEOUT);
    assert_int_equal(tu_recorder_count(&f.rec), 0);
    tu_proc_fixture_stop(&f, false);
}

static void test_zero_timeout_passes_through(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch", "    timeout: 0s");
    assert_int_equal(send(&f, "a", 1), 0);
    assert_int_equal(send(&f, "a", 1), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 2);
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    tu_proc_fixture_stop(&f, false);
}

static void *sender(void *arg)
{
    struct tu_proc_fixture *f = arg;
    for (int i = 0; i < 50; i++)
        if (send(f, i % 2 ? "x" : "y", 2) != 0)
            return (void *)1;
    return NULL;
}

static void test_concurrent_senders_lose_nothing(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch", "    timeout: 20ms\n    send_batch_size: 30");
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&threads[i], NULL, sender, &f);
    for (int i = 0; i < 4; i++) {
        void *res;
        pthread_join(threads[i], &res);
        assert_null(res);
    }
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    uint64_t total = 0;
    for (int i = 0; i < f.rec.n; i++)
        total += f.rec.batches[i]->n_samples;
    assert_int_equal(total, 4 * 50 * 2);
    assert_true(f.rec.n < 200);
    tu_proc_fixture_stop(&f, false);
}

/* One resource and scope, profiles of the given sample counts; every sample has a stack of
 * its own (leaf function f<profile>_<i> above main), so a part's dictionary has one
 * function, location and stack per sample plus main's. Each profile has its own id, time
 * and attribute. */
static struct fg_profiles *distinct_batch(const int *profile_samples, int n_profiles)
{
    struct fg_profiles *p;
    if (fg_profiles_new(&p) != 0)
        return NULL;
    struct fg_keyvalue res_attr = {{"service.name", 12},
                                   {.kind = FG_VALUE_STRING, .u.s = {"big", 3}}};
    struct fg_resource res = {.n_attrs = 1, .attrs = &res_attr};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "", 0);
    struct fg_scope scope = {.name = {"split-test", 10}};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(p, rp, &scope, "", 0);
    uint32_t file = (uint32_t)fg_dict_string(p, "app.c", 5);
    struct fg_function main_fn = {(uint32_t)fg_dict_string(p, "main", 4), 0, file, 1};
    struct fg_line main_line = {(uint32_t)fg_dict_function(p, &main_fn), 3, 0};
    struct fg_location main_loc = {0, 0x1000, 1, 0, &main_line, NULL};
    uint32_t loc_main = (uint32_t)fg_dict_location(p, &main_loc);
    for (int j = 0; j < n_profiles; j++) {
        char id[16];
        snprintf(id, sizeof(id), "profile-id-%04d", j);
        struct fg_attribute attr = {.key = (uint32_t)fg_dict_string(p, "profile.kind", 12),
                                    .value = {.kind = FG_VALUE_INT, .u.i = j}};
        uint32_t attr_idx = (uint32_t)fg_dict_attribute(p, &attr);
        struct fg_profile hdr = {
            .sample_type = {(uint32_t)fg_dict_string(p, "cpu", 3),
                            (uint32_t)fg_dict_string(p, "nanoseconds", 11)},
            .period_type = {(uint32_t)fg_dict_string(p, "cpu", 3),
                            (uint32_t)fg_dict_string(p, "nanoseconds", 11)},
            .time_unix_nano = 1700000000000000000ULL + (uint64_t)j,
            .duration_nano = 10000000000ULL + (uint64_t)j,
            .period = 10000000 + j,
            .profile_id = {id, (uint32_t)strlen(id)},
            .n_attrs = 1,
            .attrs = &attr_idx,
        };
        struct fg_profile *prof = fg_profiles_add_profile(p, sp, &hdr);
        for (int i = 0; i < profile_samples[j]; i++) {
            char name[32];
            int len = snprintf(name, sizeof(name), "f%d_%d", j, i);
            struct fg_function fn = {(uint32_t)fg_dict_string(p, name, (size_t)len), 0, file, 1};
            struct fg_line line = {(uint32_t)fg_dict_function(p, &fn), 2, 0};
            struct fg_location loc = {0, 0x2000 + (uint64_t)i, 1, 0, &line, NULL};
            uint32_t locs[2] = {(uint32_t)fg_dict_location(p, &loc), loc_main};
            struct fg_stack st = {2, locs};
            int64_t value = i + 1;
            struct fg_sample smp = {.stack = (uint32_t)fg_dict_stack(p, &st), .n_values = 1,
                                    .values = &value};
            fg_profiles_add_sample(p, prof, &smp);
        }
    }
    return p;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The canonical lines of every recorded batch, sorted, as one text (free() it). */
static char *canon_of_recorded(struct tu_recorder *r)
{
    size_t n = 0, cap = 1024, total = 1;
    char **lines = malloc(cap * sizeof(*lines));
    char *texts[256];
    for (int i = 0; i < r->n; i++) {
        texts[i] = tu_canon(r->batches[i]);
        for (char *save = NULL, *l = strtok_r(texts[i], "\n", &save); l;
             l = strtok_r(NULL, "\n", &save)) {
            if (n == cap)
                lines = realloc(lines, (cap *= 2) * sizeof(*lines));
            lines[n++] = l;
            total += strlen(l) + 1;
        }
    }
    qsort(lines, n, sizeof(*lines), cmp_line);
    char *out = malloc(total), *w = out;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(lines[i]);
        memcpy(w, lines[i], len);
        w[len] = '\n';
        w += len + 1;
    }
    *w = '\0';
    for (int i = 0; i < r->n; i++)
        fg_free(texts[i]);
    free(lines);
    return out;
}

static int64_t batch_total(const struct fg_profiles *p)
{
    int64_t total = 0;
    for (uint32_t r = 0; r < p->n_resources; r++)
        for (uint32_t s = 0; s < p->resources[r].n_scopes; s++)
            for (uint32_t i = 0; i < p->resources[r].scopes[s].n_profiles; i++)
                total += fg_profile_total(&p->resources[r].scopes[s].profiles[i]);
    return total;
}

/* The recorded batches carry exactly want's samples (as a multiset), none above max. */
static void assert_recorded_equal(struct tu_recorder *r, const struct fg_profiles *want,
                                  uint64_t max)
{
    uint64_t samples = 0;
    int64_t total = 0;
    for (int i = 0; i < r->n; i++) {
        if (max)
            assert_true(r->batches[i]->n_samples <= max);
        samples += r->batches[i]->n_samples;
        total += batch_total(r->batches[i]);
    }
    assert_int_equal(samples, want->n_samples);
    assert_int_equal(total, batch_total(want));
    char *expected = tu_canon(want);
    char *got = canon_of_recorded(r);
    assert_string_equal(got, expected);
    free(got);
    fg_free(expected);
}

static const struct fg_profile *find_profile(const struct fg_profiles *p, const char *id)
{
    const struct fg_scope_profiles *sp = &p->resources[0].scopes[0];
    for (uint32_t i = 0; i < sp->n_profiles; i++)
        if (sp->profiles[i].profile_id.len == strlen(id) &&
            memcmp(sp->profiles[i].profile_id.ptr, id, strlen(id)) == 0)
            return &sp->profiles[i];
    return NULL;
}

static void test_max_size_splits_one_oversized_input(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch",
                          "    timeout: 1h\n    send_batch_size: 3000\n"
                          "    send_batch_max_size: 3000");
    const int sizes[] = {4000, 3500, 2500};
    struct fg_profiles *in = distinct_batch(sizes, 3);
    snprintf(in->tenant, sizeof(in->tenant), "acme");
    fg_profiles_ref(in); /* kept to compare with */
    struct fg_err err;
    assert_int_equal(fg_consume(&f.proc->consumer, in, &err), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 3); /* three full parts; 1,000 samples pending */
    assert_int_equal(f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 4);
    const uint64_t want[] = {3000, 3000, 3000, 1000};
    for (int i = 0; i < 4; i++) {
        struct fg_profiles *part = f.rec.batches[i];
        assert_int_equal(part->n_samples, want[i]);
        assert_string_equal(part->tenant, "acme");
        /* only what its samples use: one function, location and stack each, plus main's
         * (and the zero entries) */
        assert_int_equal(fg_dict_len(part, FG_TABLE_STACK), want[i] + 1);
        assert_int_equal(fg_dict_len(part, FG_TABLE_LOCATION), want[i] + 2);
        assert_int_equal(fg_dict_len(part, FG_TABLE_FUNCTION), want[i] + 2);
        for (int t = 0; t < FG_TABLE_COUNT; t++)
            assert_true(fg_dict_len(part, (enum fg_table)t) <= fg_dict_len(in, (enum fg_table)t));
        assert_true(fg_dict_len(part, FG_TABLE_STRING) < fg_dict_len(in, FG_TABLE_STRING));
    }
    /* profile 0 (4,000 samples) is cut between parts 0 and 1, and keeps its header in both */
    const struct fg_profile *orig = find_profile(in, "profile-id-0000");
    const struct fg_profile *head = find_profile(f.rec.batches[0], "profile-id-0000");
    const struct fg_profile *tail = find_profile(f.rec.batches[1], "profile-id-0000");
    assert_non_null(head);
    assert_non_null(tail);
    assert_int_equal(head->n_samples, 3000);
    assert_int_equal(tail->n_samples, 1000);
    const struct fg_profile *parts[2] = {head, tail};
    for (int k = 0; k < 2; k++) {
        struct fg_profiles *owner = f.rec.batches[k];
        assert_int_equal(parts[k]->time_unix_nano, orig->time_unix_nano);
        assert_int_equal(parts[k]->duration_nano, orig->duration_nano);
        assert_int_equal(parts[k]->period, orig->period);
        assert_int_equal(parts[k]->n_attrs, 1);
        assert_int_equal(fg_dict_get_attribute(owner, parts[k]->attrs[0])->value.u.i, 0);
        struct fg_bytes st = fg_dict_get_string(owner, parts[k]->sample_type.type);
        assert_string_equal(st.ptr, "cpu");
    }
    assert_recorded_equal(&f.rec, in, 3000);
    fg_profiles_unref(in);
    tu_proc_fixture_stop(&f, false);
}

static void test_max_size_split_after_pending_data(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch",
                          "    timeout: 1h\n    send_batch_size: 3000\n"
                          "    send_batch_max_size: 3000");
    const int small[] = {2000}, big[] = {5000};
    struct fg_profiles *first = distinct_batch(small, 1);
    struct fg_profiles *second = distinct_batch(big, 1);
    struct fg_err err;
    assert_int_equal(fg_consume(&f.proc->consumer, fg_profiles_ref(first), &err), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 0);
    assert_int_equal(fg_consume(&f.proc->consumer, fg_profiles_ref(second), &err), 0);
    /* the pending 2,000 leave alone, then a full part; the last 2,000 wait */
    assert_int_equal(tu_recorder_count(&f.rec), 2);
    assert_int_equal(f.rec.batches[0]->n_samples, 2000);
    assert_int_equal(f.rec.batches[1]->n_samples, 3000);
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    assert_int_equal(tu_recorder_count(&f.rec), 3);
    assert_int_equal(f.rec.batches[2]->n_samples, 2000);
    assert_int_equal(fg_profiles_merge(first, second, &err), 0);
    assert_recorded_equal(&f.rec, first, 3000);
    fg_profiles_unref(first);
    fg_profiles_unref(second);
    tu_proc_fixture_stop(&f, false);
}

static void test_max_size_zero_sends_an_input_whole(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch", "    timeout: 1h\n    send_batch_size: 3000");
    const int sizes[] = {10000};
    assert_int_equal(fg_consume(&f.proc->consumer, distinct_batch(sizes, 1), NULL), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 1);
    assert_int_equal(f.rec.batches[0]->n_samples, 10000);
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    tu_proc_fixture_stop(&f, false);
}

static void test_max_size_one_and_small_inputs(void **state)
{
    struct tu_proc_fixture f;
    /* every sample alone; a profile without samples goes with the last part */
    tu_proc_fixture_start(&f, "batch",
                          "    timeout: 1h\n    send_batch_size: 1\n    send_batch_max_size: 1");
    const int sizes[] = {2, 0, 1, 0};
    struct fg_profiles *in = distinct_batch(sizes, 4);
    assert_int_equal(fg_consume(&f.proc->consumer, fg_profiles_ref(in), NULL), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 3);
    assert_int_equal(f.rec.batches[0]->resources[0].scopes[0].n_profiles, 1);
    assert_int_equal(f.rec.batches[1]->resources[0].scopes[0].n_profiles, 1);
    assert_int_equal(f.rec.batches[2]->resources[0].scopes[0].n_profiles, 3);
    assert_non_null(find_profile(f.rec.batches[2], "profile-id-0003"));
    assert_non_null(find_profile(f.rec.batches[2], "profile-id-0001"));
    assert_recorded_equal(&f.rec, in, 1);
    fg_profiles_unref(in);
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    tu_proc_fixture_stop(&f, false);

    /* a one-sample input under a large bound is not split */
    tu_proc_fixture_start(&f, "batch",
                          "    timeout: 1h\n    send_batch_size: 1\n    send_batch_max_size: 3000");
    const int one[] = {1};
    assert_int_equal(fg_consume(&f.proc->consumer, distinct_batch(one, 1), NULL), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 1);
    assert_int_equal(f.rec.batches[0]->n_samples, 1);
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    tu_proc_fixture_stop(&f, false);
}

static void test_zero_timeout_still_splits(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch",
                          "    timeout: 0s\n    send_batch_size: 4\n    send_batch_max_size: 4");
    const int sizes[] = {3, 7};
    struct fg_profiles *in = distinct_batch(sizes, 2);
    assert_int_equal(fg_consume(&f.proc->consumer, fg_profiles_ref(in), NULL), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 3);
    assert_recorded_equal(&f.rec, in, 4);
    fg_profiles_unref(in);
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    tu_proc_fixture_stop(&f, false);
}

static void test_refused_parts_are_held(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch",
                          "    timeout: 1h\n    send_batch_size: 4\n    send_batch_max_size: 4");
    f.rec.refuse = 1;
    const int sizes[] = {10};
    struct fg_profiles *in = distinct_batch(sizes, 1);
    /* accepted once: the refused full parts are held, the last one is pending */
    assert_int_equal(fg_consume(&f.proc->consumer, fg_profiles_ref(in), NULL), 0);
    assert_int_equal(send(&f, "b", 1), FG_ERETRYABLE);
    pthread_mutex_lock(&f.rec.mu);
    f.rec.refuse = 0;
    pthread_mutex_unlock(&f.rec.mu);
    assert_int_equal(f.proc->ops->shutdown(f.proc, fg_now_ns() + 5000000000LL), 0);
    assert_int_equal(tu_recorder_count(&f.rec), 3);
    assert_recorded_equal(&f.rec, in, 4);
    fg_profiles_unref(in);
    tu_proc_fixture_stop(&f, false);
}

/* Under an allocation failure at any point an oversized input is either refused whole
 * (nothing of it sent) or accepted whole (all of it sent by shutdown). */
static void test_split_allocation_failures(void **state)
{
    const char *cfg = "    timeout: 1h\n    send_batch_size: 8\n    send_batch_max_size: 8";
    const int sizes[] = {13, 4, 13};
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch", cfg);
    fg_alloc_fail_after(ULONG_MAX);
    assert_int_equal(fg_consume(&f.proc->consumer, distinct_batch(sizes, 3), NULL), 0);
    unsigned long allocations = fg_alloc_fail_after(0);
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    tu_proc_fixture_stop(&f, false);
    int refused = 0;
    for (unsigned long n = 1; n <= allocations; n++) {
        tu_proc_fixture_start(&f, "batch", cfg);
        struct fg_profiles *in = distinct_batch(sizes, 3);
        fg_profiles_ref(in);
        struct fg_err err;
        fg_alloc_fail_after(n);
        int rc = fg_consume(&f.proc->consumer, in, &err);
        fg_alloc_fail_after(0);
        assert_true(rc == 0 || rc == FG_ENOMEM);
        if (rc)
            assert_int_equal(tu_recorder_count(&f.rec), 0);
        refused += rc != 0;
        f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
        if (rc == 0)
            assert_recorded_equal(&f.rec, in, 8);
        fg_profiles_unref(in);
        tu_proc_fixture_stop(&f, false);
    }
    printf("oversized input under allocation failures: %lu walked, %d refused\n", allocations,
           refused);
    assert_true(refused > 0);
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
        cmocka_unit_test(test_max_size_splits_one_oversized_input),
        cmocka_unit_test(test_max_size_split_after_pending_data),
        cmocka_unit_test(test_max_size_zero_sends_an_input_whole),
        cmocka_unit_test(test_max_size_one_and_small_inputs),
        cmocka_unit_test(test_zero_timeout_still_splits),
        cmocka_unit_test(test_refused_parts_are_held),
        cmocka_unit_test(test_split_allocation_failures),
    };
    return cmocka_run_group_tests_name("batch_processor", tests, NULL, NULL);
}
