/* The model: interning, zero entries, merge with index remapping, resource coalescing,
 * mapping one dictionary into another. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "fg_alloc.h"
#include "fg_model.h"
#include "fg_model_select.h"

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

/* ---- fg_dict_map_into ---- */

/* What entry i of table t means, written out through its references. */
static void entry_text(const struct fg_profiles *p, enum fg_table t, uint32_t i, char *buf,
                       size_t size)
{
#define STR(idx) (int)fg_dict_get_string(p, idx).len, fg_dict_get_string(p, idx).ptr
    size_t used = 0;
    buf[0] = '\0';
    switch (t) {
    case FG_TABLE_STRING:
        snprintf(buf, size, "%.*s", STR(i));
        break;
    case FG_TABLE_FUNCTION: {
        const struct fg_function *f = fg_dict_get_function(p, i);
        snprintf(buf, size, "%.*s/%.*s/%.*s/%lld", STR(f->name), STR(f->system_name),
                 STR(f->filename), (long long)f->start_line);
        break;
    }
    case FG_TABLE_MAPPING: {
        const struct fg_mapping *m = fg_dict_get_mapping(p, i);
        used = (size_t)snprintf(buf, size, "%.*s@%llx:", STR(m->filename),
                                (unsigned long long)m->memory_start);
        for (uint32_t k = 0; k < m->n_attrs && used < size; k++) {
            entry_text(p, FG_TABLE_ATTRIBUTE, m->attrs[k], buf + used, size - used);
            used = strlen(buf);
        }
        break;
    }
    case FG_TABLE_LOCATION: {
        const struct fg_location *l = fg_dict_get_location(p, i);
        char m[128];
        entry_text(p, FG_TABLE_MAPPING, l->mapping, m, sizeof(m));
        used = (size_t)snprintf(buf, size, "[%s]%llx", m, (unsigned long long)l->address);
        for (uint32_t k = 0; k < l->n_lines && used < size; k++) {
            char fn[128];
            entry_text(p, FG_TABLE_FUNCTION, l->lines[k].function, fn, sizeof(fn));
            used += (size_t)snprintf(buf + used, size - used, " %s:%lld", fn,
                                     (long long)l->lines[k].line);
        }
        break;
    }
    case FG_TABLE_LINK:
        snprintf(buf, size, "%02x%02x", fg_dict_get_link(p, i)->trace_id[0],
                 fg_dict_get_link(p, i)->span_id[7]);
        break;
    case FG_TABLE_ATTRIBUTE: {
        const struct fg_attribute *a = fg_dict_get_attribute(p, i);
        snprintf(buf, size, "%.*s=%.*s(%.*s)", STR(a->key), (int)a->value.u.s.len,
                 a->value.u.s.ptr ? a->value.u.s.ptr : "", STR(a->unit));
        break;
    }
    case FG_TABLE_STACK: {
        const struct fg_stack *st = fg_dict_get_stack(p, i);
        for (uint32_t k = 0; k < st->n_locations && used < size; k++) {
            char loc[256];
            entry_text(p, FG_TABLE_LOCATION, st->locations[k], loc, sizeof(loc));
            used += (size_t)snprintf(buf + used, size - used, "%s;", loc);
        }
        break;
    }
    default:
        break;
    }
#undef STR
}

/* A small dictionary; `shift` puts other entries first, so that equal entries of two such
 * dictionaries sit at different indices and the indices collide with other entries. */
static struct fg_profiles *dict_batch(int shift, int n_stacks)
{
    struct fg_profiles *p;
    assert_int_equal(fg_profiles_new(&p), 0);
    char name[32];
    for (int k = 0; k < shift; k++) {
        snprintf(name, sizeof(name), "decoy_%d_%d", shift, k);
        assert_true(fg_dict_string(p, name, strlen(name)) > 0);
        struct fg_link l;
        memset(&l, 0x40 + k, sizeof(l));
        assert_true(fg_dict_link(p, &l) > 0);
    }
    int32_t file = fg_dict_string(p, "lib.c", 5), key = fg_dict_string(p, "build.id", 8);
    struct fg_attribute id = {.key = (uint32_t)key,
                              .value = {.kind = FG_VALUE_STRING, .u.s = {"b1", 2}}};
    uint32_t id_attr = (uint32_t)fg_dict_attribute(p, &id);
    struct fg_mapping m = {.memory_start = 0x1000, .filename = (uint32_t)file, .n_attrs = 1,
                           .attrs = &id_attr};
    uint32_t mapping = (uint32_t)fg_dict_mapping(p, &m);
    uint32_t locs[8];
    for (int k = 0; k < 8; k++) {
        int f = (k + shift) % 8; /* functions and locations in a rotated order */
        snprintf(name, sizeof(name), "fn_%d", f);
        struct fg_function fn = {.name = (uint32_t)fg_dict_string(p, name, strlen(name)),
                                 .filename = (uint32_t)file, .start_line = f};
        struct fg_line line = {.function = (uint32_t)fg_dict_function(p, &fn), .line = 10 + f};
        struct fg_location loc = {.mapping = mapping, .address = 0x1000 + 16 * (uint64_t)f,
                                  .n_lines = 1, .lines = &line};
        locs[f] = (uint32_t)fg_dict_location(p, &loc);
    }
    for (int k = 0; k < n_stacks; k++) {
        uint32_t frames[3] = {locs[k % 8], locs[(k + 1) % 8], locs[(k + 3) % 8]};
        struct fg_stack st = {3, frames};
        assert_true(fg_dict_stack(p, &st) > 0);
    }
    struct fg_link l;
    memset(&l, 0x11, sizeof(l));
    assert_true(fg_dict_link(p, &l) > 0);
    return p;
}

/* Every entry of src lands on an entry of dst that means the same. */
static void assert_mapped(const struct fg_profiles *dst, const struct fg_profiles *src,
                          const struct fg_dict_map *m)
{
    for (int t = 0; t < FG_TABLE_COUNT; t++)
        for (uint32_t i = 0; i < fg_dict_len(src, (enum fg_table)t); i++) {
            char a[1024], b[1024];
            assert_true(m->idx[t][i] < fg_dict_len(dst, (enum fg_table)t));
            entry_text(src, (enum fg_table)t, i, a, sizeof(a));
            entry_text(dst, (enum fg_table)t, m->idx[t][i], b, sizeof(b));
            if (strcmp(a, b) != 0)
                fail_msg("table %d entry %u: \"%s\" mapped to \"%s\"", t, i, a, b);
        }
}

static void test_map_into_dictionary(void **state)
{
    FG_UNUSED(state);
    struct fg_profiles *a = dict_batch(0, 5), *b = dict_batch(3, 7), *dst;
    assert_int_equal(fg_profiles_new(&dst), 0);
    struct fg_dict_map m = {0};
    assert_int_equal(fg_dict_map_into(dst, a, &m), 0);
    assert_mapped(dst, a, &m);
    for (int t = 0; t < FG_TABLE_COUNT; t++) /* into an empty dst: nothing merges */
        assert_int_equal(fg_dict_len(dst, (enum fg_table)t), fg_dict_len(a, (enum fg_table)t));
    uint32_t stack_of_a = m.idx[FG_TABLE_STACK][3];
    /* the same struct again, for another source whose indices mean other things */
    assert_int_equal(fg_dict_map_into(dst, b, &m), 0);
    assert_mapped(dst, b, &m);
    /* b's first 5 stacks are a's: stored once */
    assert_int_equal(fg_dict_len(dst, FG_TABLE_STACK), 8);
    assert_int_equal(fg_dict_len(dst, FG_TABLE_FUNCTION), 9);
    assert_int_equal(fg_dict_len(dst, FG_TABLE_LINK), 5); /* zero, a's, b's 3 decoys */
    uint32_t n_strings = fg_dict_len(dst, FG_TABLE_STRING);
    char want[1024], got[1024];
    entry_text(a, FG_TABLE_STACK, 3, want, sizeof(want));
    for (uint32_t i = 1; i < fg_dict_len(b, FG_TABLE_STACK); i++) {
        entry_text(b, FG_TABLE_STACK, i, got, sizeof(got));
        if (strcmp(want, got) == 0)
            assert_int_equal(m.idx[FG_TABLE_STACK][i], stack_of_a);
    }
    /* entries interned the ordinary way (the copier remaps and hashes them in dst) find
     * the mapped ones: a hash reused from src equals the one dst computes */
    struct fg_copier *c;
    assert_int_equal(fg_copier_new(dst, b, &c), 0);
    for (int t = 0; t < FG_TABLE_COUNT; t++)
        for (uint32_t i = 0; i < fg_dict_len(b, (enum fg_table)t); i++)
            assert_int_equal(fg_copier_index(c, (enum fg_table)t, i), (int32_t)m.idx[t][i]);
    fg_copier_free(c);
    assert_int_equal(fg_dict_len(dst, FG_TABLE_STRING), n_strings);
    /* mapping a source again adds nothing */
    assert_int_equal(fg_dict_map_into(dst, a, &m), 0);
    assert_mapped(dst, a, &m);
    assert_int_equal(fg_dict_len(dst, FG_TABLE_STRING), n_strings);
    assert_int_equal(m.idx[FG_TABLE_STACK][3], stack_of_a);
    fg_dict_map_release(&m);
    fg_dict_map_release(&m); /* released twice: a no-op */
    fg_profiles_unref(dst);

    /* allocation failures: an error, never a wrong mapping; dst stays usable */
    int succeeded = 0;
    for (unsigned long n = 1; n < 2000 && !succeeded; n++) {
        assert_int_equal(fg_profiles_new(&dst), 0);
        assert_int_equal(fg_dict_map_into(dst, a, &m), 0);
        fg_alloc_fail_after(n);
        int rc = fg_dict_map_into(dst, b, &m);
        fg_alloc_fail_after(0);
        if (rc == 0) {
            assert_mapped(dst, b, &m);
            succeeded = 1;
        } else {
            assert_int_equal(rc, FG_ENOMEM);
            assert_int_equal(fg_dict_map_into(dst, b, &m), 0); /* a retry completes it */
            assert_mapped(dst, b, &m);
        }
        fg_dict_map_release(&m);
        fg_profiles_unref(dst);
    }
    assert_true(succeeded);
    fg_profiles_unref(a);
    fg_profiles_unref(b);
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
        cmocka_unit_test(test_map_into_dictionary),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_profile_total),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
