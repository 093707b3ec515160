/* Unit tests for the option tables: value parsers, defaults, bounds and freeing. */
#include "testutil.h"

#include <stdbool.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_common.h"
#include "fg_option.h"
#include "fg_option_internal.h"

static void test_parse_duration(void **state)
{
    static const struct {
        const char *text;
        int64_t ns;
    } ok[] = {
        {"0", 0},
        {"5s", 5000000000LL},
        {"200ms", 200000000LL},
        {"1m30s", 90000000000LL},
        {"1h", 3600000000000LL},
        {"1.5s", 1500000000LL},
        {".5s", 500000000LL},
        {"100us", 100000LL},
        {"100\xc2\xb5s", 100000LL},
        {"100\xce\xbcs", 100000LL},
        {"10ns", 10LL},
        {"1h2m3s4ms5us6ns", 3723004005006LL},
        {"0s", 0},
        {"2562047h", 2562047LL * 3600000000000LL},
        {"9223372036854775807ns", INT64_MAX},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(ok); i++) {
        int64_t ns = -1;
        assert_int_equal(fg_parse_duration(ok[i].text, &ns), 0);
        assert_int_equal(ns, ok[i].ns);
    }
    static const char *const bad[] = {
        "", "5", "s", "5 s", "5sec", "-5s", "5s ", " 5s", "1.s.", ".s", "5 parsecs",
        "2562048h",                /* > int64 ns */
        "9223372036854775808ns",   /* int64 max + 1 */
        "99999999999999999999999h", "9223372036854775807ns1ns", "1e3s", "1d",
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(bad); i++) {
        int64_t ns = 42;
        assert_int_equal(fg_parse_duration(bad[i], &ns), FG_EINVAL);
        assert_int_equal(ns, 42);
    }
    assert_int_equal(fg_parse_duration(NULL, &(int64_t){0}), FG_EINVAL);
}

static void test_parse_size(void **state)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } ok[] = {
        {"0", 0},
        {"1024", 1024},
        {"4MiB", 4ULL << 20},
        {"20MB", 20000000ULL},
        {"512KiB", 512ULL << 10},
        {"1GiB", 1ULL << 30},
        {"3KB", 3000},
        {"7B", 7},
        {"2GB", 2000000000ULL},
        {"1 MiB", 1ULL << 20},
        {"1mib", 1ULL << 20},
        {"18446744073709551615", UINT64_MAX},
        {"16777215TiB", 16777215ULL << 40},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(ok); i++) {
        uint64_t v = 1;
        assert_int_equal(fg_parse_size(ok[i].text, &v), 0);
        assert_int_equal(v, ok[i].bytes);
    }
    static const char *const bad[] = {
        "", "MiB", "-1", "4Mi", "4 parsecs", "1.5MiB", "18446744073709551616",
        "16777216TiB", "17179869184GiB", "4MiBx", " 4", "0x10",
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(bad); i++) {
        uint64_t v = 42;
        assert_int_equal(fg_parse_size(bad[i], &v), FG_EINVAL);
        assert_int_equal(v, 42);
    }
}

static void test_parse_bool_int(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "True", "yes", "on", "ON"};
    static const char *const no[] = {"false", "False", "no", "NO", "off"};
    for (size_t i = 0; i < FG_ARRAY_LEN(yes); i++) {
        bool v = false;
        assert_int_equal(fg_parse_bool(yes[i], &v), 0);
        assert_true(v);
    }
    for (size_t i = 0; i < FG_ARRAY_LEN(no); i++) {
        bool v = true;
        assert_int_equal(fg_parse_bool(no[i], &v), 0);
        assert_false(v);
    }
    bool b;
    assert_int_equal(fg_parse_bool("1", &b), FG_EINVAL);
    assert_int_equal(fg_parse_bool("", &b), FG_EINVAL);
    assert_int_equal(fg_parse_bool("truex", &b), FG_EINVAL);

    int64_t v = 0;
    assert_int_equal(fg_parse_int("42", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(fg_parse_int("-7", &v), 0);
    assert_int_equal(v, -7);
    assert_int_equal(fg_parse_int("+3", &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(fg_parse_int("9223372036854775807", &v), 0);
    assert_int_equal(v, INT64_MAX);
    assert_int_equal(fg_parse_int("-9223372036854775808", &v), 0);
    assert_int_equal(v, INT64_MIN);
    v = 5;
    static const char *const bad[] = {"", "-", "1.0", "12a", " 1", "9223372036854775808",
                                      "0x10", "1e3"};
    for (size_t i = 0; i < FG_ARRAY_LEN(bad); i++)
        assert_int_equal(fg_parse_int(bad[i], &v), FG_EINVAL);
    assert_int_equal(v, 5);
}

/* A table using every option type. */
struct inner {
    char *name;
    int64_t count;
};

struct sample {
    char *str;
    char *nodefault;
    bool flag;
    int64_t n;
    int64_t dur;
    uint64_t size;
    int mode;
    struct fg_strmap map;
    struct fg_strlist list;
    bool inner_present;
    struct inner inner;
};

static const char *const mode_names[] = {"alpha", "beta", "gamma", NULL};

static const struct fg_option inner_options[] = {
    FG_OPT_STR("name", struct inner, name, "inner-default", "a name"),
    FG_OPT_INTEGER("count", struct inner, count, "3", 1, 10, "a count"),
    FG_OPT_END,
};

static const struct fg_option sample_options[] = {
    FG_OPT_STR("str", struct sample, str, "hello", "a string"),
    FG_OPT_STR("nodefault", struct sample, nodefault, NULL, "unset string"),
    FG_OPT_BOOLEAN("flag", struct sample, flag, "yes", "a flag"),
    FG_OPT_INTEGER("n", struct sample, n, "7", -10, 100, "an int"),
    FG_OPT_DUR("dur", struct sample, dur, "1m30s", 1000000, INT64_C(3600000000000), "a duration"),
    FG_OPT_BYTES("size", struct sample, size, "4MiB", 1, (int64_t)1 << 30, "a size"),
    FG_OPT_CHOICE("mode", struct sample, mode, "beta", mode_names, "an enum"),
    FG_OPT_MAP("map", struct sample, map, "a map"),
    FG_OPT_LIST("list", struct sample, list, "a list"),
    FG_OPT_BLOCK_PRESENT("inner", struct sample, inner, inner_options, inner_present, "nested"),
    FG_OPT_END,
};

static void test_defaults(void **state)
{
    struct sample s;
    memset(&s, 0, sizeof(s));
    struct fg_err err = {{0}};
    assert_int_equal(fg_options_defaults(sample_options, &s, &err), 0);
    assert_string_equal(s.str, "hello");
    assert_null(s.nodefault);
    assert_true(s.flag);
    assert_int_equal(s.n, 7);
    assert_int_equal(s.dur, 90000000000LL);
    assert_int_equal(s.size, 4ULL << 20);
    assert_int_equal(s.mode, 1);
    assert_int_equal(s.map.n, 0);
    assert_int_equal(s.list.n, 0);
    assert_false(s.inner_present);
    assert_string_equal(s.inner.name, "inner-default");
    assert_int_equal(s.inner.count, 3);
    fg_options_free(sample_options, &s);
    assert_null(s.str);
    assert_null(s.inner.name);
    fg_options_free(sample_options, NULL);
}

static void test_bad_default(void **state)
{
    struct broken {
        int64_t n;
    } b = {0};
    const struct fg_option table[] = {
        FG_OPT_INTEGER("n", struct broken, n, "500", 0, 10, "out of its own bounds"),
        FG_OPT_END,
    };
    struct fg_err err = {{0}};
    assert_int_equal(fg_options_defaults(table, &b, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "default of n"));
    assert_non_null(strstr(err.msg, "between 0 and 10"));
}

static void test_set_scalar(void **state)
{
    struct sample s;
    memset(&s, 0, sizeof(s));
    struct fg_err err = {{0}};
    assert_int_equal(fg_options_defaults(sample_options, &s, &err), 0);

    /* string replaces the default without leaking it (ASan checks) */
    assert_int_equal(fg__option_set_scalar(&sample_options[0], &s, "world", &err), 0);
    assert_string_equal(s.str, "world");

    assert_int_equal(fg__option_set_scalar(&sample_options[3], &s, "101", &err), FG_EINVAL);
    assert_string_equal(err.msg, "101 is out of range (must be between -10 and 100)");
    assert_int_equal(s.n, 7);
    assert_int_equal(fg__option_set_scalar(&sample_options[3], &s, "-10", &err), 0);
    assert_int_equal(s.n, -10);
    assert_int_equal(fg__option_set_scalar(&sample_options[3], &s, "ten", &err), FG_EINVAL);
    assert_string_equal(err.msg, "invalid integer \"ten\"");

    assert_int_equal(fg__option_set_scalar(&sample_options[4], &s, "2h", &err), FG_EINVAL);
    assert_string_equal(err.msg, "2h is out of range (must be between 1ms and 1h)");
    assert_int_equal(fg__option_set_scalar(&sample_options[4], &s, "5 parsecs", &err),
                     FG_EINVAL);
    assert_non_null(strstr(err.msg, "invalid duration \"5 parsecs\""));
    assert_int_equal(fg__option_set_scalar(&sample_options[4], &s, "1h", &err), 0);
    assert_int_equal(s.dur, 3600000000000LL);

    assert_int_equal(fg__option_set_scalar(&sample_options[5], &s, "2GiB", &err), FG_EINVAL);
    assert_string_equal(err.msg, "2GiB is out of range (must be between 1 and 1GiB)");
    assert_int_equal(fg__option_set_scalar(&sample_options[5], &s, "0", &err), FG_EINVAL);
    assert_int_equal(fg__option_set_scalar(&sample_options[5], &s, "1GiB", &err), 0);
    assert_int_equal(s.size, 1ULL << 30);

    assert_int_equal(fg__option_set_scalar(&sample_options[6], &s, "delta", &err), FG_EINVAL);
    assert_string_equal(err.msg, "invalid value \"delta\" (allowed: alpha, beta, gamma)");
    assert_int_equal(fg__option_set_scalar(&sample_options[6], &s, "gamma", &err), 0);
    assert_int_equal(s.mode, 2);

    assert_int_equal(fg__option_set_scalar(&sample_options[2], &s, "maybe", &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "invalid boolean \"maybe\""));
    assert_int_equal(fg__option_set_scalar(&sample_options[2], &s, "off", &err), 0);
    assert_false(s.flag);

    assert_int_equal(fg__option_set_scalar(&sample_options[8], &s, "x", &err), FG_EINVAL);

    char names[128];
    fg__option_names(inner_options, names, sizeof(names));
    assert_string_equal(names, "name, count");
    fg_options_free(sample_options, &s);
}

static void test_defaults_alloc_failure(void **state)
{
    /* Every allocation failure in defaults returns an error and leaks nothing. */
    for (unsigned long n = 1;; n++) {
        struct sample s;
        memset(&s, 0, sizeof(s));
        struct fg_err err = {{0}};
        fg_alloc_fail_after(n);
        int rc = fg_options_defaults(sample_options, &s, &err);
        fg_alloc_fail_after(0);
        fg_options_free(sample_options, &s);
        if (rc == 0)
            break;
        assert_int_equal(rc, FG_ENOMEM);
        assert_true(n < 100);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_bool_int),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad_default),
        cmocka_unit_test(test_set_scalar),
        cmocka_unit_test(test_defaults_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
