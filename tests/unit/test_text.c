/* Unit tests for the text codecs: every byte through fg_hex_digit, and fg_percent_decode's
 * table of inputs × flags × output sizes (bad escapes, '+', embedded NUL, bounds). */
#include "testutil.h"

#include <string.h>

#include "fg_common.h"
#include "fg_text.h"

static void test_hex_digit(void **state)
{
    static const char digits[] = "0123456789abcdef";
    (void)state;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        const char *at = b ? strchr(digits, c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c) : NULL;
        assert_int_equal(fg_hex_digit(c), at ? (int)(at - digits) : -1);
    }
}

#define PLUS FG_PERCENT_PLUS_SPACE
#define STRICT FG_PERCENT_STRICT
#define NO_NUL FG_PERCENT_NO_NUL

static void test_percent_decode(void **state)
{
    static const struct {
        const char *in;
        unsigned flags;
        size_t outsize;
        int rc;
        const char *out; /* what out holds; out_len is its length unless nul_at says */
        size_t nul_at;   /* > 0: out_len, when the result has an embedded NUL */
    } cases[] = {
        {"", 0, 8, 0, "", 0},
        {"plain", 0, 8, 0, "plain", 0},
        {"a%20b%2Fc%2fd", 0, 32, 0, "a b/c/d", 0},
        {"%C3%BC", STRICT, 8, 0, "\xc3\xbc", 0},
        {"a+b", 0, 8, 0, "a+b", 0},
        {"a+b", PLUS, 8, 0, "a b", 0},
        {"%2B+", PLUS, 8, 0, "+ ", 0}, /* an escaped '+' stays '+' */
        /* malformed escapes: kept as they are, or FG_EINVAL with what came before */
        {"bad %zz %4", 0, 32, 0, "bad %zz %4", 0},
        {"%", 0, 8, 0, "%", 0},
        {"x%4", 0, 8, 0, "x%4", 0},
        {"%g1", 0, 8, 0, "%g1", 0},
        {"ab%zz", STRICT, 8, FG_EINVAL, "ab", 0},
        {"ab%4", STRICT, 8, FG_EINVAL, "ab", 0},
        {"ab%", STRICT | PLUS, 8, FG_EINVAL, "ab", 0},
        {"%%41", 0, 8, 0, "%A", 0}, /* the first '%' is literal, then "%41" */
        /* embedded NUL */
        {"a%00b", 0, 8, 0, "a", 3},
        {"a%00b", STRICT, 8, 0, "a", 3},
        {"a%00b", NO_NUL, 8, FG_EINVAL, "a", 0},
        /* bounds: the NUL always fits; a long result is cut at whole bytes */
        {"abcd", 0, 5, 0, "abcd", 0},
        {"abcde", 0, 5, FG_ETOOBIG, "abcd", 0},
        {"abc%41", 0, 4, FG_ETOOBIG, "abc", 0},
        {"ab%41", 0, 4, 0, "abA", 0},
        {"abc", 0, 1, FG_ETOOBIG, "", 0},
        {"", 0, 1, 0, "", 0},
        {"", 0, 0, FG_ETOOBIG, NULL, 0},
        {"abc", 0, 0, FG_ETOOBIG, NULL, 0},
        /* the first problem in input order decides the error */
        {"abcd%zz", STRICT, 4, FG_ETOOBIG, "abc", 0},
        {"a%zzbcdef", STRICT, 4, FG_EINVAL, "a", 0},
        {"a%00bcdef", NO_NUL, 4, FG_EINVAL, "a", 0},
    };
    (void)state;
    for (size_t i = 0; i < FG_ARRAY_LEN(cases); i++) {
        char out[40];
        size_t len = 12345;
        memset(out, '#', sizeof(out));
        int rc = fg_percent_decode(cases[i].in, strlen(cases[i].in), out, cases[i].outsize,
                                   cases[i].flags, &len);
        print_message("case %zu: \"%s\"\n", i, cases[i].in);
        assert_int_equal(rc, cases[i].rc);
        if (cases[i].out) {
            size_t want = cases[i].nul_at ? cases[i].nul_at : strlen(cases[i].out);
            assert_int_equal(len, want);
            assert_string_equal(out, cases[i].out);
            assert_int_equal(out[len], '\0');
        } else {
            assert_int_equal(len, 0);
        }
        /* nothing past outsize is written */
        for (size_t j = cases[i].outsize; j < sizeof(out); j++)
            assert_int_equal(out[j], '#');
    }
}

/* An escape must lie whole inside the given length: the bytes after it are not read. */
static void test_percent_decode_length_bound(void **state)
{
    char out[8];
    size_t len;
    (void)state;
    assert_int_equal(fg_percent_decode("a%41", 2, out, sizeof(out), 0, &len), 0);
    assert_string_equal(out, "a%");
    assert_int_equal(fg_percent_decode("a%41", 3, out, sizeof(out), STRICT, &len), FG_EINVAL);
    assert_int_equal(fg_percent_decode("a%41&b", 4, out, sizeof(out), STRICT, NULL), 0);
    assert_string_equal(out, "aA");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_digit),
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_percent_decode_length_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
