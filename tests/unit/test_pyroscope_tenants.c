/* Tenant pass-through inside the pipeline: the batch processor keeps batches of different
 * tenants (X-Scope-OrgID) apart, by size trigger, timer and shutdown flush, and each batch
 * it sends carries its tenant. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include "fg_component.h"
#include "fg_config.h"
#include "fg_model.h"
#include "fg_service.h"


static void send(struct tu_proc_fixture *f, const char *tenant, const char *service, int n)
{
    struct fg_profiles *p = tu_make_batch(service, n);
    snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
    struct fg_err err;
    assert_int_equal(fg_consume(&f->proc->consumer, p, &err), 0);
}

/* The sent batch of tenant t (exactly one expected). */
static struct fg_profiles *of_tenant(struct tu_proc_fixture *f, const char *t)
{
    struct fg_profiles *found = NULL;
    for (int i = 0; i < f->rec.n; i++)
        if (strcmp(f->rec.batches[i]->tenant, t) == 0) {
            assert_null(found);
            found = f->rec.batches[i];
        }
    assert_non_null(found);
    return found;
}

static void test_timer_keeps_tenants_apart(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch", "    timeout: 50ms\n    send_batch_size: 1000");
    send(&f, "a", "svc1", 2);
    send(&f, "b", "svc1", 3);
    send(&f, "", "svc1", 4);
    send(&f, "a", "svc2", 5);
    for (int i = 0; i < 200 && tu_recorder_count(&f.rec) < 3; i++)
        usleep(10000);
    usleep(100000); /* nothing more may come */
    assert_int_equal(tu_recorder_count(&f.rec), 3);
    assert_int_equal(of_tenant(&f, "a")->n_samples, 7);
    assert_int_equal(of_tenant(&f, "a")->n_resources, 2);
    assert_int_equal(of_tenant(&f, "b")->n_samples, 3);
    assert_int_equal(of_tenant(&f, "")->n_samples, 4);
    tu_proc_fixture_stop(&f, true);
}

static void test_size_trigger_per_tenant_and_shutdown(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch", "    timeout: 10s\n    send_batch_size: 5");
    send(&f, "a", "svc", 3);
    send(&f, "b", "svc", 3);
    assert_int_equal(tu_recorder_count(&f.rec), 0); /* 6 samples pending, but 3 per tenant */
    send(&f, "a", "svc", 3);
    assert_int_equal(tu_recorder_count(&f.rec), 1);
    assert_string_equal(f.rec.batches[0]->tenant, "a");
    assert_int_equal(f.rec.batches[0]->n_samples, 6);
    f.proc->ops->shutdown(f.proc, fg_now_ns() + 1000000000);
    assert_int_equal(tu_recorder_count(&f.rec), 2);
    assert_string_equal(f.rec.batches[1]->tenant, "b");
    assert_int_equal(f.rec.batches[1]->n_samples, 3);
    tu_proc_fixture_stop(&f, true);
}

static void test_max_size_per_tenant(void **state)
{
    struct tu_proc_fixture f;
    tu_proc_fixture_start(&f, "batch",
                          "    timeout: 10s\n    send_batch_size: 100\n"
                          "    send_batch_max_size: 100");
    send(&f, "a", "svc", 60);
    send(&f, "b", "svc", 60);
    assert_int_equal(tu_recorder_count(&f.rec), 0);
    send(&f, "a", "svc", 60); /* a's pending 60 go first, alone */
    assert_int_equal(tu_recorder_count(&f.rec), 1);
    assert_string_equal(f.rec.batches[0]->tenant, "a");
    assert_int_equal(f.rec.batches[0]->n_samples, 60);
    tu_proc_fixture_stop(&f, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_keeps_tenants_apart),
        cmocka_unit_test(test_size_trigger_per_tenant_and_shutdown),
        cmocka_unit_test(test_max_size_per_tenant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
