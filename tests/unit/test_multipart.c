/* multipart/form-data splitting: names, filenames, binary data with CRLFs inside, and
 * each malformed shape rejected with a message. */
#include "testutil.h"

#include <string.h>

#include "fg_multipart.h"

#define CT "multipart/form-data; boundary=XyZ"

static void test_boundary(void **state)
{
    char b[FG_MULTIPART_MAX_BOUNDARY + 1];
    struct fg_err err = {{0}};
    assert_int_equal(fg_multipart_boundary("multipart/form-data; boundary=abc", b, sizeof(b), &err), 0);
    assert_string_equal(b, "abc");
    assert_int_equal(fg_multipart_boundary("multipart/form-data;charset=x;BOUNDARY=\"a b;c\"",
                                           b, sizeof(b), &err), 0);
    assert_string_equal(b, "a b;c");
    assert_int_equal(fg_multipart_boundary("multipart/form-data", b, sizeof(b), &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "without a boundary"));
    assert_int_equal(fg_multipart_boundary("multipart/form-data; boundary=", b, sizeof(b), &err),
                     FG_EINVAL);
    char longct[200] = "multipart/form-data; boundary=";
    memset(longct + strlen(longct), 'a', 71);
    assert_int_equal(fg_multipart_boundary(longct, b, sizeof(b), &err), FG_EINVAL);
}

static void test_two_parts(void **state)
{
    static const char body[] =
        "preamble is ignored\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\n"
        "Content-Type: application/octet-stream\r\n"
        "\r\n"
        "\x1f\x8b\r\n--Xy\0Z\r\n"
        "--XyZ  \r\n"
        "content-disposition: form-data; name=sample_type_config\r\n"
        "\r\n"
        "{\"cpu\":{}}\r\n"
        "--XyZ--\r\n"
        "epilogue";
    struct fg_multipart_part parts[4];
    size_t n = 0;
    struct fg_err err = {{0}};
    assert_int_equal(fg_multipart_parse(CT, (const uint8_t *)body, sizeof(body) - 1, parts, 4,
                                        &n, &err), 0);
    assert_int_equal(n, 2);
    const struct fg_multipart_part *p = fg_multipart_find(parts, n, "profile");
    assert_non_null(p);
    assert_int_equal(p->filename_len, 13);
    assert_memory_equal(p->filename, "profile.pprof", 13);
    assert_int_equal(p->len, 10); /* the CRLF before a delimiter belongs to it */
    assert_memory_equal(p->data, "\x1f\x8b\r\n--Xy\0Z", 10);
    p = fg_multipart_find(parts, n, "sample_type_config");
    assert_non_null(p);
    assert_null(p->filename);
    assert_int_equal(p->len, 10);
    assert_memory_equal(p->data, "{\"cpu\":{}}", 10);
    assert_null(fg_multipart_find(parts, n, "prof"));
}

static void test_empty_part_and_no_headers(void **state)
{
    static const char body[] = "--XyZ\r\n\r\nraw\r\n--XyZ\r\nContent-Disposition: form-data; "
                               "name=\"e\"\r\n\r\n\r\n--XyZ--";
    struct fg_multipart_part parts[4];
    size_t n = 0;
    struct fg_err err = {{0}};
    assert_int_equal(fg_multipart_parse(CT, (const uint8_t *)body, sizeof(body) - 1, parts, 4,
                                        &n, &err), 0);
    assert_int_equal(n, 2);
    assert_null(parts[0].name);
    assert_int_equal(parts[0].len, 3);
    assert_int_equal(parts[1].len, 0);
    assert_int_equal(parts[1].name_len, 1);
}

static void test_malformed(void **state)
{
    static const struct {
        const char *body;
        const char *msg;
    } cases[] = {
        {"no delimiter at all", "without a \"--XyZ\" delimiter"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\ndata", "no closing delimiter"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a\r\ndata\r\n--XyZ--",
         "not terminated by a blank line"},
        {"--XyZgarbage\r\n\r\nx\r\n--XyZ--", "no CRLF after the delimiter"},
        {"--XyZ\r\n\r\na\r\n--XyZ\r\n\r\nb\r\n--XyZ\r\n\r\nc\r\n--XyZ--", "more than 2 parts"},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(cases); i++) {
        struct fg_multipart_part parts[2];
        size_t n = 0;
        struct fg_err err = {{0}};
        int rc = fg_multipart_parse(CT, (const uint8_t *)cases[i].body, strlen(cases[i].body),
                                    parts, 2, &n, &err);
        assert_int_equal(rc, FG_EINVAL);
        if (!strstr(err.msg, cases[i].msg))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_two_parts),
        cmocka_unit_test(test_empty_part_and_no_headers),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
