/* Processors "attributes" and "resource": each Collector action, include/exclude match sets,
 * sample vs profile targets, the input left untouched, and config errors with positions. */
#include <stdio.h>
#include <string.h>

#include "procutil.h"

#include "fg_attr_actions.h"
#include "fg_digest.h"

static char buf[2048];

static struct fg_profiles *one_profile(const char *res, const char *prof_attrs)
{
    struct fg_profiles *p;
    assert_int_equal(fg_profiles_new(&p), 0);
    struct fg_profile *prof = pu_profile(p, res, "cpu", prof_attrs);
    pu_sample(p, prof, "main;work", 5, "thread.name=worker-0");
    pu_sample(p, prof, "main;idle", 7, "thread.name=worker-1,tmp.x=1");
    return p;
}

static const struct fg_profile *first_profile(const struct fg_profiles *p)
{
    assert_true(p->n_resources >= 1);
    return &p->resources[0].scopes[0].profiles[0];
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    char hex[65];
    fg_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    fg_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    fg_sha256_hex(two_blocks, strlen(two_blocks), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_insert_update_upsert_delete(void **state)
{
    (void)state;
    struct pu_fixture f;
    pu_setup(&f, "attributes",
             "    actions:\n"
             "      - {key: env, action: insert, value: prod}\n"     /* exists: no change */
             "      - {key: region, action: insert, value: eu-1}\n"  /* new */
             "      - {key: missing, action: update, value: x}\n"    /* absent: nothing */
             "      - {key: team, action: update, value: core}\n"    /* exists: updated */
             "      - {key: copy, action: upsert, from_attribute: team}\n"
             "      - {key: nothere, action: insert, from_attribute: nosuch}\n"
             "      - {key: port, action: upsert, value: 8080}\n"
             "      - {key: ratio, action: upsert, value: 0.5}\n"
             "      - {key: on, action: upsert, value: true}\n"
             "      - {key: literal, action: upsert, value: 8080, value_type: string}\n"
             "      - {key: secret, action: delete}\n");
    struct fg_profiles *in = one_profile("service.name=svc", "env=dev,team=web,secret=s3cr3t");
    char *before = tu_canon(in);
    fg_profiles_ref(in);
    struct fg_profiles *out = pu_run(&f, in);
    assert_non_null(out);
    assert_ptr_not_equal(out, in);
    const struct fg_profile *prof = first_profile(out);
    assert_string_equal(pu_dict_text(out, prof->attrs, prof->n_attrs, buf, sizeof(buf)),
                        "copy=core,env=dev,literal=8080,on=true,port=#8080,ratio=0.5,"
                        "region=eu-1,team=core");
    /* default target is the profile: sample attributes stay */
    assert_string_equal(pu_dict_text(out, prof->samples[0].attrs, prof->samples[0].n_attrs, buf,
                                     sizeof(buf)),
                        "thread.name=worker-0");
    /* the shared input is read-only */
    char *after = tu_canon(in);
    assert_string_equal(before, after);
    fg_free(before);
    fg_free(after);
    fg_profiles_unref(in);
    pu_teardown(&f);
}

static void test_hash_extract_convert(void **state)
{
    (void)state;
    struct pu_fixture f;
    pu_setup(&f, "attributes",
             "    actions:\n"
             "      - {key: user, action: hash}\n"
             "      - {key: uid, action: hash}\n"
             "      - {key: empty, action: hash}\n"
             "      - key: url\n"
             "        action: extract\n"
             "        pattern: '^(?P<scheme>[a-z]+)://(?P<host>[^/:]+)(:(?P<port>\\d+))?(?P<path>/[^?]*)'\n"
             "      - {key: count, action: convert, converted_type: int}\n"
             "      - {key: bad, action: convert, converted_type: int}\n"
             "      - {key: n, action: convert, converted_type: string}\n"
             "      - {key: d, action: convert, converted_type: double}\n"
             "      - {pattern: '^tmp\\.', action: delete}\n");
    struct fg_profiles *in = one_profile(
        "service.name=svc",
        "empty=,user=alice,uid=#42,url=https://example.com/api/v1?q=1,count=123,bad=12x,n=#7,d=#3,"
        "tmp.a=1,tmp.b=2,keep.tmp=3");
    struct fg_profiles *out = pu_run(&f, in);
    const struct fg_profile *prof = first_profile(out);
    assert_string_equal(
        pu_dict_text(out, prof->attrs, prof->n_attrs, buf, sizeof(buf)),
        "bad=12x,count=#123,d=3,"
        "empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855,host=example.com,keep.tmp=3,n=7,path=/api/v1,port=,"
        "scheme=https,uid=ed049108bc18f2c64369e8d0ea42850bdd1a7d1dd340cfde716315579702a76c,"
        "url=https://example.com/api/v1?q=1,"
        "user=2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90");
    pu_teardown(&f);
}

static void test_sample_target_and_match_sets(void **state)
{
    (void)state;
    struct pu_fixture f;
    pu_setup(&f, "attributes",
             "    apply_to: [sample]\n"
             "    include: {match_type: regexp, services: ['^svc-a$', '^svc-c$']}\n"
             "    exclude: {sample_types: [alloc_space]}\n"
             "    actions:\n"
             "      - {key: thread.name, action: update, value: redacted}\n"
             "      - {pattern: '^tmp\\.', action: delete}\n");
    struct fg_profiles *in;
    assert_int_equal(fg_profiles_new(&in), 0);
    const char *services[] = {"service.name=svc-a", "service.name=svc-b", "service.name=svc-c"};
    for (int i = 0; i < 3; i++) {
        struct fg_profile *prof = pu_profile(in, services[i], "cpu", "");
        pu_sample(in, prof, "main", 1, "thread.name=t1,tmp.x=1");
    }
    struct fg_profile *alloc = pu_profile(in, "service.name=svc-a", "alloc_space", "");
    pu_sample(in, alloc, "main", 1, "thread.name=t1");
    struct fg_profiles *out = pu_run(&f, in);
    int edited = 0, untouched = 0;
    for (uint32_t r = 0; r < out->n_resources; r++) {
        const struct fg_resource_profiles *rp = &out->resources[r];
        char res[256];
        pu_kv_text(rp->resource.attrs, rp->resource.n_attrs, res, sizeof(res));
        for (uint32_t i = 0; i < rp->scopes[0].n_profiles; i++) {
            const struct fg_profile *prof = &rp->scopes[0].profiles[i];
            struct fg_bytes type = fg_dict_get_string(out, prof->sample_type.type);
            const char *attrs =
                pu_dict_text(out, prof->samples[0].attrs, prof->samples[0].n_attrs, buf, sizeof(buf));
            bool want = strcmp(res, "service.name=svc-b") != 0 && type.len == 3;
            if (want) {
                assert_string_equal(attrs, "thread.name=redacted");
                edited++;
            } else {
                assert_true(strncmp(attrs, "thread.name=t1", 14) == 0);
                untouched++;
            }
        }
    }
    assert_int_equal(edited, 2);
    assert_int_equal(untouched, 2);
    pu_teardown(&f);
}

static void test_nothing_selected_passes_through(void **state)
{
    (void)state;
    struct pu_fixture f;
    pu_setup(&f, "attributes",
             "    include: {services: [other]}\n"
             "    actions: [{key: a, action: upsert, value: b}]\n");
    struct fg_profiles *in = one_profile("service.name=svc", "");
    struct fg_profiles *out = pu_run(&f, in);
    assert_ptr_equal(out, in); /* no copy when nothing changes */
    pu_teardown(&f);
}

static void test_resource_processor(void **state)
{
    (void)state;
    struct pu_fixture f;
    pu_setup(&f, "resource",
             "    attributes:\n"
             "      - {key: deployment.environment.name, action: insert, value: prod}\n"
             "      - {key: service.name, action: upsert, from_attribute: app}\n"
             "      - {key: app, action: delete}\n"
             "      - {key: host.name, action: hash}\n");
    struct fg_profiles *in;
    assert_int_equal(fg_profiles_new(&in), 0);
    struct fg_profile *p1 = pu_profile(in, "service.name=old,app=checkout,host.name=alice", "cpu", "");
    pu_sample(in, p1, "main", 1, "");
    struct fg_profile *p2 = pu_profile(in, "service.name=keep", "cpu", "");
    pu_sample(in, p2, "main", 2, "");
    char *before = tu_canon(in);
    fg_profiles_ref(in);
    struct fg_profiles *out = pu_run(&f, in);
    assert_int_equal(out->n_resources, 2);
    const struct fg_resource *r0 = &out->resources[0].resource;
    const struct fg_resource *r1 = &out->resources[1].resource;
    assert_string_equal(pu_kv_text(r0->attrs, r0->n_attrs, buf, sizeof(buf)),
                        "deployment.environment.name=prod,"
                        "host.name=2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90,"
                        "service.name=checkout");
    assert_string_equal(pu_kv_text(r1->attrs, r1->n_attrs, buf, sizeof(buf)),
                        "deployment.environment.name=prod,service.name=keep");
    assert_int_equal(out->n_samples, 2);
    char *after = tu_canon(in);
    assert_string_equal(before, after);
    fg_free(before);
    fg_free(after);
    fg_profiles_unref(in);
    pu_teardown(&f);
}

static void test_config_errors(void **state)
{
    (void)state;
    /* processors: starts on line 2, the component body on line 4 */
    pu_expect_error("attributes", "    actions:\n      - {key: a, action: frobnicate}\n",
                    "test.yaml:5:", "unknown action \"frobnicate\"");
    pu_expect_error("attributes", "    actions:\n      - {pattern: '(unclosed', action: delete}\n",
                    "test.yaml:5:", "invalid regex");
    pu_expect_error("attributes", "    actions:\n      - {key: a, action: insert}\n",
                    "test.yaml:5:", "exactly one of value and from_attribute");
    pu_expect_error("attributes",
                    "    actions:\n      - {key: a, action: extract, pattern: '(x)'}\n",
                    "test.yaml:5:", "named group");
    pu_expect_error("attributes",
                    "    apply_to: [spans]\n    actions: [{key: a, action: delete}]\n",
                    "test.yaml:4:", "unknown target");
    pu_expect_error("attributes",
                    "    actions:\n      - {key: a, action: convert, converted_type: x}\n",
                    "test.yaml:5:", "unknown converted_type");
    pu_expect_error("resource",
                    "    attributes:\n      - {key: a, action: upsert, value: x, "
                    "value_type: int}\n",
                    "test.yaml:5:", "not an int");
    pu_expect_error("attributes",
                    "    include: {match_type: regexp, services: ['[']}\n"
                    "    actions: [{key: a, action: delete}]\n",
                    "test.yaml:", "services[0]");
}

static struct fg_profiles *walk_batch(void)
{
    struct fg_profiles *p = tu_make_batch("svc", 12);
    return p;
}

static void test_allocation_failures(void **state)
{
    (void)state;
    pu_alloc_walk("attributes",
                  "    apply_to: [profile, sample]\n"
                  "    actions:\n"
                  "      - {key: thread.name, action: hash}\n"
                  "      - {key: t, action: extract, pattern: '(?P<w>w)'}\n"
                  "      - {key: x, action: upsert, value: '1'}\n"
                  "      - {key: x, action: convert, converted_type: string}\n",
                  walk_batch);
    pu_alloc_walk("resource",
                  "    attributes:\n"
                  "      - {key: host.cores, action: convert, converted_type: string}\n"
                  "      - {key: env, action: insert, value: prod}\n",
                  walk_batch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_insert_update_upsert_delete),
        cmocka_unit_test(test_hash_extract_convert),
        cmocka_unit_test(test_sample_target_and_match_sets),
        cmocka_unit_test(test_nothing_selected_passes_through),
        cmocka_unit_test(test_resource_processor),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
