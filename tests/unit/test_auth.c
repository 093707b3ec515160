/* The authenticator extensions: bearertokenauth (token, file, scheme) and basicauth
 * ({SHA}, crypt(3) hashes made here with crypt_gensalt/crypt_r, plain, the verified-value
 * cache, client credentials), the lookup by id, and the constant-time compare. */
#include "fg_auth.h"

#include <crypt.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_config.h"
#include "fg_tls.h"
#include "testutil.h"

struct ext {
    struct fg_config *cfg;
    struct fg_component *c;
    struct fg_authenticator *a;
};

/* Loads a config with one extension `id` (body: its YAML mapping, indented 4) and starts
 * it. Returns 0 or the failing code (err has the message). */
static int ext_start(const char *id, const char *body, struct ext *e, struct fg_err *err)
{
    char yaml[4096];
    snprintf(yaml, sizeof(yaml),
             "extensions:\n  %s:\n%s\n"
             "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\n"
             "exporters:\n  debug: {}\n"
             "service:\n  extensions: [%s]\n  pipelines:\n    profiles:\n"
             "      receivers: [otlp]\n      exporters: [debug]\n",
             id, body, id);
    struct fg_diag d;
    fg_diag_init(&d);
    memset(e, 0, sizeof(*e));
    int rc = fg_config_load_string("test", yaml, strlen(yaml), &e->cfg, &d);
    if (rc != 0) {
        fg_err_set(err, rc, "%.*s", (int)d.text.len, (const char *)d.text.data);
        fg_diag_free(&d);
        return rc;
    }
    fg_diag_free(&d);
    const struct fg_config_component *cc = fg_config_find(e->cfg, FG_KIND_EXTENSION, id);
    assert_non_null(cc);
    struct fg_create_args args = {.id = id, .config = cc->config};
    if ((rc = cc->factory->create(&args, &e->c, err)) != 0)
        return rc;
    e->c->factory = cc->factory;
    if ((rc = e->c->ops->start(e->c, err)) != 0)
        return rc;
    e->a = fg_authenticator_of(e->c);
    assert_non_null(e->a);
    return 0;
}

static void ext_free(struct ext *e)
{
    if (e->c) {
        e->c->ops->shutdown(e->c, 0);
        e->c->ops->destroy(e->c);
    }
    fg_config_free(e->cfg);
}

static void test_ct_equal(void **state)
{
    assert_true(fg_ct_equal("abc", 3, "abc", 3));
    assert_false(fg_ct_equal("abd", 3, "abc", 3));
    assert_false(fg_ct_equal("ab", 2, "abc", 3));
    assert_false(fg_ct_equal("abcd", 4, "abc", 3));
    assert_false(fg_ct_equal("", 0, "abc", 3));
    assert_true(fg_ct_equal("", 0, "", 0));
    /* a prefix repeated must not pass (the loop wraps over the shorter input) */
    assert_false(fg_ct_equal("ab", 2, "abab", 4));
    assert_true(fg_auth_equal("Bearer x", "Bearer x"));
    assert_false(fg_auth_equal(NULL, "Bearer x"));
}

static void test_bearer_token(void **state)
{
    struct ext e;
    struct fg_err err = {{0}};
    assert_int_equal(ext_start("bearertokenauth/t", "    token: tok-123", &e, &err), 0);
    assert_int_equal(e.a->check(e.a, "Bearer tok-123"), 0);
    assert_int_not_equal(e.a->check(e.a, NULL), 0);
    assert_int_not_equal(e.a->check(e.a, ""), 0);
    assert_int_not_equal(e.a->check(e.a, "Bearer tok-12"), 0);
    assert_int_not_equal(e.a->check(e.a, "Bearer tok-1234"), 0);
    assert_int_not_equal(e.a->check(e.a, "bearer tok-123x"), 0);
    assert_int_not_equal(e.a->check(e.a, "tok-123"), 0);
    char v[64];
    assert_int_equal(e.a->client_value(e.a, v, sizeof(v)), 0);
    assert_string_equal(v, "Bearer tok-123");
    assert_int_equal(e.a->client_value(e.a, v, 5), FG_ETOOBIG);
    /* the server hook adapter says the same */
    assert_int_equal(fg_auth_http_check(e.a, "Bearer tok-123"), 0);
    assert_int_not_equal(fg_auth_http_check(e.a, "Bearer nope"), 0);
    ext_free(&e);
}

static void test_bearer_file_and_errors(void **state)
{
    char dir[256], path[300], body[400];
    tu_tempdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/token", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("\n  from-file-tok \n", f);
    fclose(f);
    struct ext e;
    struct fg_err err = {{0}};
    snprintf(body, sizeof(body), "    filename: %s\n    scheme: Token", path);
    assert_int_equal(ext_start("bearertokenauth", body, &e, &err), 0);
    assert_int_equal(e.a->check(e.a, "Token from-file-tok"), 0);
    assert_int_not_equal(e.a->check(e.a, "Bearer from-file-tok"), 0);
    ext_free(&e);
    /* both or neither of token and filename: a config error */
    assert_int_not_equal(ext_start("bearertokenauth", "    scheme: Bearer", &e, &err), 0);
    assert_non_null(strstr(err.msg, "exactly one of token and filename"));
    ext_free(&e);
    /* a missing file fails start */
    snprintf(body, sizeof(body), "    filename: %s/absent", dir);
    assert_int_not_equal(ext_start("bearertokenauth", body, &e, &err), 0);
    assert_non_null(strstr(err.msg, "cannot open"));
    ext_free(&e);
    tu_rmtree(dir);
}

static void basic_value(const char *user, const char *pw, char *out, size_t outsz)
{
    char plain[256];
    int n = snprintf(plain, sizeof(plain), "%s:%s", user, pw);
    memcpy(out, "Basic ", 6);
    assert_true((size_t)(n + 2) / 3 * 4 + 7 <= outsz);
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)plain, n);
}

static void test_basicauth_hashes(void **state)
{
    /* {SHA} of "sha-pw", a $6$ and a bcrypt hash made now by libcrypt itself */
    uint8_t d[SHA_DIGEST_LENGTH];
    char sha[64], six[256], bcrypt[256], body[1024], v[256];
    SHA1((const unsigned char *)"sha-pw", 6, d);
    EVP_EncodeBlock((unsigned char *)sha, d, sizeof(d));
    struct crypt_data cd;
    memset(&cd, 0, sizeof(cd));
    const char *s6 = crypt_gensalt("$6$", 0, NULL, 0);
    assert_non_null(s6);
    snprintf(six, sizeof(six), "%s", crypt_r("six-pw", s6, &cd));
    const char *s2 = crypt_gensalt("$2b$", 4, NULL, 0);
    assert_non_null(s2);
    snprintf(bcrypt, sizeof(bcrypt), "%s", crypt_r("bc-pw", s2, &cd));
    assert_true(six[0] == '$' && bcrypt[0] == '$');
    snprintf(body, sizeof(body),
             "    htpasswd:\n      inline: |\n        # comment\n        shauser:{SHA}%s\n"
             "        sixuser:%s\n        bcuser:%s\n        plainuser:plain-pw\n"
             "    client_auth:\n      username: me\n      password: my-pw",
             sha, six, bcrypt);
    struct ext e;
    struct fg_err err = {{0}};
    assert_int_equal(ext_start("basicauth", body, &e, &err), 0);
    static const char *const good[][2] = {
        {"shauser", "sha-pw"}, {"sixuser", "six-pw"}, {"bcuser", "bc-pw"},
        {"plainuser", "plain-pw"}};
    for (size_t i = 0; i < FG_ARRAY_LEN(good); i++) {
        basic_value(good[i][0], good[i][1], v, sizeof(v));
        assert_int_equal(e.a->check(e.a, v), 0);
        assert_int_equal(e.a->check(e.a, v), 0); /* cached for slow hashes */
        basic_value(good[i][0], "wrong", v, sizeof(v));
        assert_int_not_equal(e.a->check(e.a, v), 0);
        basic_value(good[i][0], "wrong", v, sizeof(v));
        assert_int_not_equal(e.a->check(e.a, v), 0); /* a failure is never cached */
    }
    basic_value("nobody", "plain-pw", v, sizeof(v));
    assert_int_not_equal(e.a->check(e.a, v), 0);
    basic_value("sixuser", "bc-pw", v, sizeof(v)); /* another user's password */
    assert_int_not_equal(e.a->check(e.a, v), 0);
    assert_int_not_equal(e.a->check(e.a, "Basic"), 0);
    assert_int_not_equal(e.a->check(e.a, "Basic ***"), 0);
    assert_int_not_equal(e.a->check(e.a, "Basic bm9jb2xvbg=="), 0); /* "nocolon" */
    assert_int_not_equal(e.a->check(e.a, "Bearer x"), 0);
    assert_int_not_equal(e.a->check(e.a, NULL), 0);
    assert_int_equal(e.a->client_value(e.a, v, sizeof(v)), 0);
    assert_string_equal(v, "Basic bWU6bXktcHc="); /* me:my-pw */
    ext_free(&e);
}

static void test_basicauth_bad_entries(void **state)
{
    struct ext e;
    struct fg_err err = {{0}};
    assert_int_not_equal(ext_start("basicauth",
                                   "    htpasswd:\n      inline: \"u:$apr1$abc$defghijk\"",
                                   &e, &err), 0);
    assert_non_null(strstr(err.msg, "$apr1$ is not supported"));
    ext_free(&e);
    assert_int_not_equal(ext_start("basicauth", "    htpasswd:\n      inline: \"nocolon\"", &e,
                                   &err), 0);
    assert_non_null(strstr(err.msg, "expected user:hash"));
    ext_free(&e);
    assert_int_not_equal(ext_start("basicauth", "    htpasswd: {}", &e, &err), 0);
    ext_free(&e);
}

static struct fg_component *find_ext(void *ctx, const char *id)
{
    return strcmp(id, "basicauth/x") == 0 ? ctx : NULL;
}

static void test_resolve(void **state)
{
    struct ext e;
    struct fg_err err = {{0}};
    assert_int_equal(ext_start("basicauth/x", "    htpasswd:\n      inline: \"u:p\"", &e, &err),
                     0);
    struct fg_create_args args = {.id = "otlp", .find_extension = find_ext, .find_ctx = e.c};
    struct fg_auth_config ac = {.authenticator = "basicauth/x"};
    struct fg_authenticator *a = NULL;
    assert_int_equal(fg_auth_resolve(&args, &ac, &a, &err), 0);
    assert_ptr_equal(a, e.a);
    ac.authenticator = "basicauth/y";
    assert_int_equal(fg_auth_resolve(&args, &ac, &a, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "basicauth/y"));
    ac.authenticator = NULL;
    assert_int_equal(fg_auth_resolve(&args, &ac, &a, &err), 0);
    assert_null(a);
    ext_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_bearer_token),
        cmocka_unit_test(test_bearer_file_and_errors),
        cmocka_unit_test(test_basicauth_hashes),
        cmocka_unit_test(test_basicauth_bad_entries),
        cmocka_unit_test(test_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
