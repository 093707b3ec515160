/* The model: interning, zero entries, merge with index remapping, resource coalescing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "fg_alloc.h"
#include "fg_model.h"

static void test_new_batch_has_zero_entries(void **state)
{
    struct fg_profiles *p;
    assert_int_equal(fg_profiles_new(&p), 0);
    for (int t = 0; t < FG_TABLE_COUNT; t++)
        assert_int_equal(fg_dict_len(p, (enum fg_table)t), 1);
    assert_int_equal(fg_dict_get_string(p, 0).len, 0);
    assert_int_equal(fg_dict_string(p, "", 0), 0);
    struct fg_function zero = {0};
    assert_int_equal(fg_dict_function(p, &zero), 0);
    struct fg_attribute empty = {0};
    assert_int_equal(fg_dict_attribute(p, &empty), 0);
    fg_profiles_unref(p);
}

static void test_interning_dedupes_by_value(void **state)
{
    struct fg_profiles *p;
    assert_int_equal(fg_profiles_new(&p), 0);
    char a[] = "main", b[] = "main";
    int32_t s1 = fg_dict_string(p, a, 4), s2 = fg_dict_string(p, b, 4);
    assert_int_equal(s1, s2);
    assert_true(s1 > 0);
    assert_int_not_equal(fg_dict_string(p, "mai", 3), s1);
    uint32_t locs1[2] = {1, 2}, locs2[2] = {1, 2}, locs3[2] = {2, 1};
    struct fg_stack st1 = {2, locs1}, st2 = {2, locs2}, st3 = {2, locs3};
    assert_int_equal(fg_dict_stack(p, &st1), fg_dict_stack(p, &st2));
    assert_int_not_equal(fg_dict_stack(p, &st1), fg_dict_stack(p, &st3));
    /* values compare by meaning: string "1" is not int 1, doubles -0.0 == 0.0 */
    struct fg_attribute as = {.key = (uint32_t)s1, .value = {.kind = FG_VALUE_STRING, .u.s = {"1", 1}}};
    struct fg_attribute ai = {.key = (uint32_t)s1, .value = {.kind = FG_VALUE_INT, .u.i = 1}};
    assert_int_not_equal(fg_dict_attribute(p, &as), fg_dict_attribute(p, &ai));
    struct fg_attribute d1 = {.key = (uint32_t)s1, .value = {.kind = FG_VALUE_DOUBLE, .u.d = 0.0}};
    struct fg_attribute d2 = {.key = (uint32_t)s1, .value = {.kind = FG_VALUE_DOUBLE, .u.d = -0.0}};
    assert_int_equal(fg_dict_attribute(p, &d1), fg_dict_attribute(p, &d2));
    /* many strings: the index grows and every one stays findable */
    char buf[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(buf, sizeof(buf), "fn_%d", i);
        assert_true(fg_dict_string(p, buf, strlen(buf)) > 0);
    }
    uint32_t before = fg_dict_len(p, FG_TABLE_STRING);
    for (int i = 0; i < 5000; i++) {
        snprintf(buf, sizeof(buf), "fn_%d", i);
        assert_string_equal(fg_dict_get_string(p, (uint32_t)fg_dict_string(p, buf, strlen(buf))).ptr, buf);
    }
    assert_int_equal(fg_dict_len(p, FG_TABLE_STRING), before);
    fg_profiles_unref(p);
}

static void test_merge_keeps_meaning(void **state)
{
    struct fg_profiles *a = tu_make_batch("cart", 5);
    struct fg_profiles *b = tu_make_batch("checkout", 4);
    struct fg_profiles *dst;
    assert_int_equal(fg_profiles_new(&dst), 0);
    struct fg_err err;
    assert_int_equal(fg_profiles_merge(dst, a, &err), 0);
    assert_int_equal(fg_profiles_merge(dst, b, &err), 0);
    assert_int_equal(dst->n_samples, 9);
    assert_int_equal(dst->n_resources, 2);
    /* the merged canonical form is the union of both (every sample line is distinct) */
    char *ca = tu_canon(a), *cb = tu_canon(b), *cd = tu_canon(dst);
    size_t lines = 0;
    for (char *src = ca; src; src = src == ca ? cb : NULL)
        for (char *line = src; *line;) {
            char *nl = strchr(line, '\n');
            *nl = '\0';
            if (!strstr(cd, line))
                fail_msg("merged batch lacks: %s", line);
            *nl = '\n';
            line = nl + 1;
            lines++;
        }
    size_t merged_lines = 0;
    for (char *c = cd; *c; c++)
        merged_lines += *c == '\n';
    assert_int_equal(lines, merged_lines);
    /* shared entries were stored once: both batches use the same functions */
    assert_true(fg_dict_len(dst, FG_TABLE_FUNCTION) == fg_dict_len(a, FG_TABLE_FUNCTION));
    assert_true(fg_dict_len(dst, FG_TABLE_STRING) < fg_dict_len(a, FG_TABLE_STRING) +
                                                         fg_dict_len(b, FG_TABLE_STRING));
    fg_free(ca);
    fg_free(cb);
    fg_free(cd);
    fg_profiles_unref(a);
    fg_profiles_unref(b);
    fg_profiles_unref(dst);
}

static void test_merge_coalesces_equal_resources(void **state)
{
    struct fg_profiles *dst;
    assert_int_equal(fg_profiles_new(&dst), 0);
    struct fg_err err;
    for (int i = 0; i < 10; i++) {
        struct fg_profiles *one = tu_make_batch("same-service", 3);
        assert_int_equal(fg_profiles_merge(dst, one, &err), 0);
        fg_profiles_unref(one);
    }
    assert_int_equal(dst->n_resources, 1);
    assert_int_equal(dst->resources[0].n_scopes, 1);
    assert_int_equal(dst->resources[0].scopes[0].n_profiles, 10);
    assert_int_equal(dst->n_samples, 30);
    /* ten identical dictionaries collapse into one */
    struct fg_profiles *one = tu_make_batch("same-service", 3);
    for (int t = 0; t < FG_TABLE_COUNT; t++)
        assert_int_equal(fg_dict_len(dst, (enum fg_table)t), fg_dict_len(one, (enum fg_table)t));
    fg_profiles_unref(one);
    fg_profiles_unref(dst);
}

static void test_merge_survives_allocation_failures(void **state)
{
    struct fg_profiles *src = tu_make_batch("svc", 6);
    int succeeded = 0;
    for (unsigned long n = 1; n < 5000 && !succeeded; n++) {
        struct fg_profiles *dst;
        if (fg_profiles_new(&dst) != 0)
            continue;
        struct fg_err err;
        fg_alloc_fail_after(n);
        int rc = fg_profiles_merge(dst, src, &err);
        fg_alloc_fail_after(0);
        if (rc == 0) {
            char *a = tu_canon(src), *b = tu_canon(dst);
            assert_string_equal(a, b);
            fg_free(a);
            fg_free(b);
            succeeded = 1;
        } else {
            assert_int_equal(rc, FG_ENOMEM);
            /* a failed merge leaves a batch that is still consistent */
            char *partial = tu_canon(dst);
            fg_free(partial);
        }
        fg_profiles_unref(dst);
    }
    assert_true(succeeded);
    fg_profiles_unref(src);
}

static void test_refcount(void **state)
{
    struct fg_profiles *p = tu_make_batch("svc", 1);
    fg_profiles_ref(p);
    fg_profiles_unref(p);
    assert_int_equal(p->n_samples, 1); /* still alive */
    fg_profiles_unref(p);
    fg_profiles_unref(NULL);
}

static void test_profile_total(void **state)
{
    struct fg_profiles *p = tu_make_batch("svc", 4);
    /* values (i+1) and 2(i+1) for i = 0..3 */
    assert_int_equal(fg_profile_total(&p->resources[0].scopes[0].profiles[0]), 30);
    struct fg_profile timestamps_only = {0};
    uint64_t ts[3] = {1, 2, 3};
    struct fg_sample s = {.n_timestamps = 3, .timestamps = ts};
    timestamps_only.samples = &s;
    timestamps_only.n_samples = 1;
    assert_int_equal(fg_profile_total(&timestamps_only), 3);
    fg_profiles_unref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_batch_has_zero_entries),
        cmocka_unit_test(test_interning_dedupes_by_value),
        cmocka_unit_test(test_merge_keeps_meaning),
        cmocka_unit_test(test_merge_coalesces_equal_resources),
        cmocka_unit_test(test_merge_survives_allocation_failures),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_profile_total),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
