/* core/fg_base64 (RFC 4648 vectors, strict and lenient decoding, OpenSSL as the independent
 * encoder) and core/fg_sha1 (FIPS 180 vectors, OpenSSL's SHA1 over every padding case). */
#include "fg_base64.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

#include "fg_common.h"
#include "fg_sha1.h"
#include "testutil.h"

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *plain, *enc;
    } v[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},     {"foo", "Zm9v"},
             {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char out[16];
        size_t n = fg_base64_encode(v[i].plain, strlen(v[i].plain), out);
        assert_int_equal(n, strlen(v[i].enc));
        assert_string_equal(out, v[i].enc);
        uint8_t dec[16];
        size_t len = 99;
        assert_int_equal(fg_base64_decode(v[i].enc, n, FG_BASE64_STRICT, dec, sizeof(dec), &len),
                         0);
        assert_int_equal(len, strlen(v[i].plain));
        assert_memory_equal(dec, v[i].plain, len);
    }
}

static void test_matches_openssl(void **state)
{
    (void)state;
    uint8_t data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 131 + 7);
    for (size_t n = 0; n <= sizeof(data); n += (n < 10 ? 1 : 37)) {
        char ours[FG_BASE64_ENCODED_LEN(sizeof(data)) + 1];
        unsigned char theirs[sizeof(ours)];
        size_t len = fg_base64_encode(data, n, ours);
        assert_int_equal(len, (size_t)EVP_EncodeBlock(theirs, data, (int)n));
        assert_string_equal(ours, (const char *)theirs);
        uint8_t back[sizeof(data)];
        size_t back_len = 0;
        assert_int_equal(
            fg_base64_decode(ours, len, FG_BASE64_STRICT, back, sizeof(back), &back_len), 0);
        assert_int_equal(back_len, n);
        assert_memory_equal(back, data, n);
    }
}

static void test_strict_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {"Zg=", "Zg", "Zm9", "Z===", "Zg==Zg==", "Zm 9",
                                      "Zm-_", "Zm9v\n", "Zg=a"};
    uint8_t out[16];
    size_t len;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(
            fg_base64_decode(bad[i], strlen(bad[i]), FG_BASE64_STRICT, out, sizeof(out), &len),
            FG_EINVAL);
    /* the output buffer bounds the result */
    assert_int_equal(fg_base64_decode("Zm9vYmFy", 8, FG_BASE64_STRICT, out, 5, &len),
                     FG_ETOOBIG);
    assert_int_equal(fg_base64_decode("Zm9vYmFy", 8, FG_BASE64_STRICT, out, 6, &len), 0);
    assert_int_equal(len, 6);
}

static void test_lenient(void **state)
{
    (void)state;
    uint8_t out[16];
    size_t len;
    /* URL alphabet, no padding: 0xfb 0xff 0xbf is "+/+/" or "-_-_" */
    assert_int_equal(fg_base64_decode("-_-_", 4, FG_BASE64_LENIENT, out, sizeof(out), &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(out, "\xfb\xff\xbf", 3);
    assert_int_equal(fg_base64_decode("Zm8", 3, FG_BASE64_LENIENT, out, sizeof(out), &len), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(out, "fo", 2);
    assert_int_equal(fg_base64_decode("Zg=", 3, FG_BASE64_LENIENT, out, sizeof(out), &len), 0);
    assert_int_equal(len, 1);
    /* a lone character of a group, or one outside both alphabets */
    assert_int_equal(fg_base64_decode("Zm9vY", 5, FG_BASE64_LENIENT, out, sizeof(out), &len),
                     FG_EINVAL);
    assert_int_equal(fg_base64_decode("Zm.v", 4, FG_BASE64_LENIENT, out, sizeof(out), &len),
                     FG_EINVAL);
}

static void test_sha1_vectors(void **state)
{
    (void)state;
    uint8_t d[FG_SHA1_LEN];
    fg_sha1("abc", 3, d);
    assert_memory_equal(d, "\xa9\x99\x3e\x36\x47\x06\x81\x6a\xba\x3e\x25\x71\x78\x50\xc2\x6c"
                           "\x9c\xd0\xd8\x9d", FG_SHA1_LEN);
    fg_sha1("", 0, d);
    assert_memory_equal(d, "\xda\x39\xa3\xee\x5e\x6b\x4b\x0d\x32\x55\xbf\xef\x95\x60\x18\x90"
                           "\xaf\xd8\x07\x09", FG_SHA1_LEN);
    /* every length around the one- and two-block padding boundaries, against OpenSSL */
    uint8_t data[200];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 29 + 3);
    for (size_t n = 0; n <= sizeof(data); n++) {
        uint8_t want[SHA_DIGEST_LENGTH];
        SHA1(data, n, want);
        fg_sha1(data, n, d);
        assert_memory_equal(d, want, FG_SHA1_LEN);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors), cmocka_unit_test(test_matches_openssl),
        cmocka_unit_test(test_strict_rejects),  cmocka_unit_test(test_lenient),
        cmocka_unit_test(test_sha1_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
