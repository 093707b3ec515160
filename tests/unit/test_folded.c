/* The folded / lines parser: stacks come out leaf first with the right names, identical
 * stacks are summed, malformed counts are errors naming the line. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_folded.h"
#include "fg_model.h"

struct fx {
    struct fg_profiles *p;
    struct fg_profile *prof;
};

static void fx_init(struct fx *f)
{
    assert_int_equal(fg_profiles_new(&f->p), 0);
    struct fg_resource res = {0};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(f->p, &res, "", 0);
    assert_non_null(rp);
    struct fg_scope scope = {0};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(f->p, rp, &scope, "", 0);
    assert_non_null(sp);
    struct fg_profile proto = {0};
    f->prof = fg_profiles_add_profile(f->p, sp, &proto);
    assert_non_null(f->prof);
}

/* "root;...;leaf" of sample i (stacks are stored leaf first). */
static void stack_text(struct fx *f, uint32_t i, char *out, size_t size)
{
    const struct fg_stack *st = fg_dict_get_stack(f->p, f->prof->samples[i].stack);
    size_t n = 0;
    out[0] = '\0';
    for (uint32_t k = st->n_locations; k-- > 0;) {
        const struct fg_location *loc = fg_dict_get_location(f->p, st->locations[k]);
        assert_int_equal(loc->n_lines, 1);
        const struct fg_function *fn = fg_dict_get_function(f->p, loc->lines[0].function);
        struct fg_bytes name = fg_dict_get_string(f->p, fn->name);
        n += (size_t)snprintf(out + n, size - n, "%s%.*s", n ? ";" : "", (int)name.len, name.ptr);
        assert_true(n < size);
    }
}

static int parse(struct fx *f, const char *body, bool lines, int64_t scale, uint32_t *n,
                 struct fg_err *err)
{
    struct fg_folded_opts o = {.lines = lines, .scale = scale};
    return fg_folded_parse((const uint8_t *)body, strlen(body), &o, f->p, f->prof, n, err);
}

static void test_folded_basic(void **state)
{
    struct fx f;
    fx_init(&f);
    struct fg_err err = {{0}};
    uint32_t n = 0;
    const char *body = "main;work;leaf 3\n"
                       "main;work 2\r\n"
                       "  main;work;leaf\t4  \n"  /* same stack again: summed */
                       "no_count_here\n"          /* ignored */
                       "\n"
                       "main;do something;with spaces 7"; /* no final newline */
    assert_int_equal(parse(&f, body, false, 0, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(f.prof->n_samples, 3);
    char buf[256];
    stack_text(&f, 0, buf, sizeof(buf));
    assert_string_equal(buf, "main;work;leaf");
    assert_int_equal(f.prof->samples[0].values[0], 7);
    stack_text(&f, 1, buf, sizeof(buf));
    assert_string_equal(buf, "main;work");
    assert_int_equal(f.prof->samples[1].values[0], 2);
    stack_text(&f, 2, buf, sizeof(buf));
    assert_string_equal(buf, "main;do something;with spaces");
    assert_int_equal(fg_profile_total(f.prof), 16);
    /* the leaf is the first location */
    const struct fg_stack *st = fg_dict_get_stack(f.p, f.prof->samples[0].stack);
    const struct fg_location *leaf = fg_dict_get_location(f.p, st->locations[0]);
    const struct fg_function *fn = fg_dict_get_function(f.p, leaf->lines[0].function);
    assert_string_equal(fg_dict_get_string(f.p, fn->name).ptr, "leaf");
    fg_profiles_unref(f.p);
}

static void test_folded_scale_and_zero(void **state)
{
    struct fx f;
    fx_init(&f);
    struct fg_err err = {{0}};
    uint32_t n = 0;
    assert_int_equal(parse(&f, "a;b 0\na;c 2\n", false, 10000000, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(f.prof->samples[0].values[0], 20000000);
    fg_profiles_unref(f.p);
}

static void test_folded_errors(void **state)
{
    static const struct {
        const char *body;
        const char *msg;
    } cases[] = {
        {"a;b 1\na;b 1.5\n", "line 2: count \"1.5\""},
        {"a;b -3\n", "line 1: count \"-3\""},
        {"a;b 99999999999999999999\n", "line 1: count"},
        {"a;b 9223372036854775807\na;b 1\n", "line 2: total count overflows"},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(cases); i++) {
        struct fx f;
        fx_init(&f);
        struct fg_err err = {{0}};
        assert_int_equal(parse(&f, cases[i].body, false, 0, NULL, &err), FG_EINVAL);
        if (!strstr(err.msg, cases[i].msg))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].msg);
        fg_profiles_unref(f.p);
    }
    /* scaling overflow */
    struct fx f;
    fx_init(&f);
    struct fg_err err = {{0}};
    assert_int_equal(parse(&f, "a 4611686018427387904\n", false, 4, NULL, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "overflows"));
    fg_profiles_unref(f.p);
}

static void test_folded_depth_limit(void **state)
{
    struct fx f;
    fx_init(&f);
    struct fg_buf b;
    fg_buf_init(&b, 0);
    for (int i = 0; i <= FG_FOLDED_MAX_DEPTH; i++)
        assert_int_equal(fg_buf_printf(&b, "%sf%d", i ? ";" : "", i), 0);
    assert_int_equal(fg_buf_append_str(&b, " 1\n"), 0);
    struct fg_folded_opts o = {0};
    struct fg_err err = {{0}};
    assert_int_equal(fg_folded_parse(b.data, b.len, &o, f.p, f.prof, NULL, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "deeper than"));
    fg_buf_free(&b);
    fg_profiles_unref(f.p);
}

static void test_lines_format(void **state)
{
    struct fx f;
    fx_init(&f);
    struct fg_err err = {{0}};
    uint32_t n = 0;
    /* every line counts once; a trailing number is part of the frame name here */
    assert_int_equal(parse(&f, "main;work\nmain;work\nmain;idle 5\n;;\n", true, 3, &n, &err),
                     0);
    assert_int_equal(n, 2);
    char buf[128];
    stack_text(&f, 0, buf, sizeof(buf));
    assert_string_equal(buf, "main;work");
    assert_int_equal(f.prof->samples[0].values[0], 6);
    stack_text(&f, 1, buf, sizeof(buf));
    assert_string_equal(buf, "main;idle 5");
    assert_int_equal(f.prof->samples[1].values[0], 3);
    fg_profiles_unref(f.p);
}

static void test_frames_are_shared(void **state)
{
    struct fx f;
    fx_init(&f);
    struct fg_err err = {{0}};
    assert_int_equal(parse(&f, "a;b 1\nb;a 1\n", false, 0, NULL, &err), 0);
    /* two functions, two locations, two stacks (plus the zero entries) */
    assert_int_equal(fg_dict_len(f.p, FG_TABLE_FUNCTION), 3);
    assert_int_equal(fg_dict_len(f.p, FG_TABLE_LOCATION), 3);
    assert_int_equal(fg_dict_len(f.p, FG_TABLE_STACK), 3);
    fg_profiles_unref(f.p);
}

/* Every allocation of a parse failing in turn: an error, never a crash or a leak. */
static void test_allocation_failures(void **state)
{
    const char *body = "main;work;leaf 3\nmain;idle 2\nx;y;z;w 1\nmain;work;leaf 1\n";
    for (unsigned long n = 1; n < 400; n++) {
        struct fx f;
        fx_init(&f);
        struct fg_err err = {{0}};
        fg_alloc_fail_after(n);
        int rc = parse(&f, body, false, 0, NULL, &err);
        fg_alloc_fail_after(0);
        if (rc == 0) {
            assert_int_equal(f.prof->n_samples, 3);
            fg_profiles_unref(f.p);
            return; /* n passed the number of allocations a parse makes */
        }
        assert_int_equal(rc, FG_ENOMEM);
        fg_profiles_unref(f.p);
    }
    fail_msg("parse never succeeded");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folded_basic),
        cmocka_unit_test(test_folded_scale_and_zero),
        cmocka_unit_test(test_folded_errors),
        cmocka_unit_test(test_folded_depth_limit),
        cmocka_unit_test(test_lines_format),
        cmocka_unit_test(test_frames_are_shared),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
