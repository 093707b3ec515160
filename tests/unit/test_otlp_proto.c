/* OTLP protobuf codec: real eBPF-profiler payload, round trips, and every kind of bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "fg_alloc.h"
#include "fg_arena.h"
#include "fg_otlp.h"
#include "fg_otlp_pb.h"

static int64_t total_of_type(const struct fg_profiles *p, const char *type)
{
    int64_t total = 0;
    for (uint32_t r = 0; r < p->n_resources; r++)
        for (uint32_t s = 0; s < p->resources[r].n_scopes; s++)
            for (uint32_t i = 0; i < p->resources[r].scopes[s].n_profiles; i++) {
                const struct fg_profile *prof = &p->resources[r].scopes[s].profiles[i];
                struct fg_bytes t = fg_dict_get_string(p, prof->sample_type.type);
                if (t.len == strlen(type) && memcmp(t.ptr, type, t.len) == 0)
                    total += fg_profile_total(prof);
            }
    return total;
}

static void test_ebpf_corpus_payload(void **state)
{
    char path[4096];
    if (!tu_corpus_path("pyroscope_otel_ebpf_v1.10.otlp.pb", path, sizeof(path))) {
        printf("SKIP: corpus absent (set FG_CORPUS)\n");
        skip();
    }
    size_t len;
    uint8_t *data = tu_read_file(path, &len);
    assert_non_null(data);
    struct fg_profiles *p;
    struct fg_err err = {{0}};
    assert_int_equal(fg_otlp_decode_proto(data, len, &p, &err), 0);
    /* manifest.csv: 317 samples; off_cpu 267302249331, samples 10 (timestamps count 1 each) */
    assert_int_equal(p->n_samples, 317);
    assert_int_equal(total_of_type(p, "off_cpu"), 267302249331LL);
    assert_int_equal(total_of_type(p, "samples"), 10);
    assert_true(fg_dict_len(p, FG_TABLE_LOCATION) <= 401);

    /* encode → decode → same canonical content, and a second encode is byte-identical */
    struct fg_buf out1, out2;
    fg_buf_init(&out1, 0);
    fg_buf_init(&out2, 0);
    assert_int_equal(fg_otlp_encode_proto(p, &out1), 0);
    struct fg_profiles *q;
    assert_int_equal(fg_otlp_decode_proto(out1.data, out1.len, &q, &err), 0);
    char *c1 = tu_canon(p), *c2 = tu_canon(q);
    assert_string_equal(c1, c2);
    assert_int_equal(fg_otlp_encode_proto(q, &out2), 0);
    assert_int_equal(out1.len, out2.len);
    assert_memory_equal(out1.data, out2.data, out1.len);
    fg_free(c1);
    fg_free(c2);
    fg_buf_free(&out1);
    fg_buf_free(&out2);
    fg_profiles_unref(p);
    fg_profiles_unref(q);
    fg_free(data);
}

static void test_round_trip_synthetic(void **state)
{
    struct fg_profiles *p = tu_make_batch("checkout", 7);
    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_otlp_encode_proto(p, &out), 0);
    struct fg_profiles *q;
    struct fg_err err;
    assert_int_equal(fg_otlp_decode_proto(out.data, out.len, &q, &err), 0);
    char *c1 = tu_canon(p), *c2 = tu_canon(q);
    assert_string_equal(c1, c2);
    assert_non_null(strstr(c1, "\"checkout\""));
    assert_non_null(strstr(c1, "\"worker-1\""));
    assert_non_null(strstr(c1, "0102030405060708090a0b0c0d0e0f10/0a0b0c0d0e0f0102"));
    assert_int_equal(q->n_samples, 7);
    fg_free(c1);
    fg_free(c2);
    fg_buf_free(&out);
    fg_profiles_unref(p);
    fg_profiles_unref(q);
}

/* Encodes a batch, lets mutate() change the decoded wire struct, re-packs, and expects the
 * decoder to refuse it with a message containing want. */
static void expect_refused(void (*mutate)(pb_request *), const char *want)
{
    struct fg_profiles *p = tu_make_batch("svc", 3);
    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_otlp_encode_proto(p, &out), 0);
    /* unpacked into an arena, so mutations may point anywhere */
    struct fg_arena *arena;
    assert_int_equal(fg_arena_new(&arena), 0);
    ProtobufCAllocator alloc;
    fg__pb_arena_allocator(arena, &alloc);
    pb_request *req = (pb_request *)protobuf_c_message_unpack(
        &opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__descriptor,
        &alloc, out.len, out.data);
    assert_non_null(req);
    mutate(req);
    size_t size = protobuf_c_message_get_packed_size(&req->base);
    uint8_t *bytes = malloc(size);
    protobuf_c_message_pack(&req->base, bytes);
    struct fg_profiles *q = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_otlp_decode_proto(bytes, size, &q, &err), FG_EINVAL);
    assert_null(q);
    if (!strstr(err.msg, want))
        fail_msg("error \"%s\" does not mention \"%s\"", err.msg, want);
    free(bytes);
    fg_arena_free(arena);
    fg_buf_free(&out);
    fg_profiles_unref(p);
}

static void bad_stack_index(pb_request *r)
{
    r->resource_profiles[0]->scope_profiles[0]->profiles[0]->samples[1]->stack_index = 999;
}
static void bad_location_index(pb_request *r)
{
    r->dictionary->stack_table[1]->location_indices[0] = 5000;
}
static void negative_function_index(pb_request *r)
{
    r->dictionary->location_table[1]->lines[0]->function_index = -1;
}
static void bad_string_index(pb_request *r)
{
    r->dictionary->function_table[1]->name_strindex = 100000;
}
static void bad_attribute_index(pb_request *r)
{
    r->resource_profiles[0]->scope_profiles[0]->profiles[0]->samples[0]->attribute_indices[0] = 77;
}
static void bad_link_index(pb_request *r)
{
    r->resource_profiles[0]->scope_profiles[0]->profiles[0]->samples[0]->link_index = 3;
}
static void nonzero_first_function(pb_request *r)
{
    r->dictionary->function_table[0]->name_strindex = 1;
}
static void nonempty_first_string(pb_request *r)
{
    r->dictionary->string_table[0] = "oops";
}
static void no_values_no_timestamps(pb_request *r)
{
    pb_sample *s = r->resource_profiles[0]->scope_profiles[0]->profiles[0]->samples[2];
    s->n_values = 0;
    s->n_timestamps_unix_nano = 0;
}
static void empty_stack_table(pb_request *r)
{
    r->dictionary->n_stack_table = 0;
}
static void short_trace_id(pb_request *r)
{
    r->dictionary->link_table[1]->trace_id.len = 5;
}
static void bad_mapping_index(pb_request *r)
{
    r->dictionary->location_table[2]->mapping_index = 42;
}
static void mismatched_values(pb_request *r)
{
    r->resource_profiles[0]->scope_profiles[0]->profiles[0]->samples[0]->n_values = 1;
}

static void test_refuses_bad_indices(void **state)
{
    expect_refused(bad_stack_index, "samples[1].stack_index: index 999 out of range");
    expect_refused(bad_location_index, "dictionary.stack_table[1].location_indices[0]");
    expect_refused(negative_function_index, "lines[0].function_index: index -1");
    expect_refused(bad_string_index, "dictionary.function_table[1].name_strindex");
    expect_refused(bad_attribute_index, "samples[0].attribute_indices[0]");
    expect_refused(bad_link_index, "samples[0].link_index");
    expect_refused(bad_mapping_index, "dictionary.location_table[2].mapping_index");
}

static void test_refuses_bad_structure(void **state)
{
    expect_refused(nonzero_first_function, "dictionary.function_table[0]: must be the zero value");
    expect_refused(nonempty_first_string, "dictionary.string_table[0]");
    expect_refused(no_values_no_timestamps, "has neither values nor timestamps_unix_nano");
    expect_refused(empty_stack_table, "dictionary.stack_table: empty");
    expect_refused(short_trace_id, "trace_id: must be 16 bytes");
    expect_refused(mismatched_values, "must pair up");
}

static void test_garbage_and_truncation(void **state)
{
    struct fg_profiles *p = tu_make_batch("svc", 5);
    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_otlp_encode_proto(p, &out), 0);
    struct fg_err err;
    /* every truncation either fails cleanly or (rarely) is itself a valid request */
    for (size_t cut = 1; cut < out.len; cut += 7) {
        struct fg_profiles *q = NULL;
        int rc = fg_otlp_decode_proto(out.data, cut, &q, &err);
        assert_true(rc == 0 || rc == FG_EINVAL);
        assert_true((rc == 0) == (q != NULL));
        fg_profiles_unref(q);
    }
    srand(7);
    uint8_t noise[512];
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(noise); i++)
            noise[i] = (uint8_t)rand();
        struct fg_profiles *q = NULL;
        int rc = fg_otlp_decode_proto(noise, sizeof(noise), &q, &err);
        assert_true(rc == 0 || rc == FG_EINVAL);
        fg_profiles_unref(q);
    }
    fg_buf_free(&out);
    fg_profiles_unref(p);
}

static void test_empty_request(void **state)
{
    struct fg_profiles *q;
    struct fg_err err;
    assert_int_equal(fg_otlp_decode_proto((const uint8_t *)"", 0, &q, &err), 0);
    assert_int_equal(q->n_resources, 0);
    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_otlp_encode_proto(q, &out), 0);
    assert_int_equal(out.len, 0);
    fg_profiles_unref(q);
}

static void test_duplicates_on_the_wire_collapse(void **state)
{
    struct fg_profiles *p = tu_make_batch("svc", 3);
    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_otlp_encode_proto(p, &out), 0);
    pb_request *req = (pb_request *)protobuf_c_message_unpack(
        &opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__descriptor,
        NULL, out.len, out.data);
    /* append a duplicate of string 1 and point function 1's name at it */
    pb_dictionary *d = req->dictionary;
    char **strings = malloc((d->n_string_table + 1) * sizeof(char *));
    memcpy(strings, d->string_table, d->n_string_table * sizeof(char *));
    strings[d->n_string_table] = d->string_table[1];
    char **old = d->string_table;
    d->string_table = strings;
    d->function_table[1]->name_strindex = (int32_t)d->n_string_table;
    d->n_string_table++;
    size_t size = protobuf_c_message_get_packed_size(&req->base);
    uint8_t *bytes = malloc(size);
    protobuf_c_message_pack(&req->base, bytes);
    struct fg_profiles *q;
    struct fg_err err;
    assert_int_equal(fg_otlp_decode_proto(bytes, size, &q, &err), 0);
    assert_int_equal(fg_dict_len(q, FG_TABLE_STRING), fg_dict_len(p, FG_TABLE_STRING));
    d->string_table = old;
    d->n_string_table--;
    free(strings);
    free(bytes);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    fg_buf_free(&out);
    fg_profiles_unref(p);
    fg_profiles_unref(q);
}

static void test_allocation_failures(void **state)
{
    struct fg_profiles *p = tu_make_batch("svc", 4);
    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_otlp_encode_proto(p, &out), 0);
    int succeeded = 0;
    for (unsigned long n = 1; n < 2000 && !succeeded; n++) {
        struct fg_profiles *q = NULL;
        struct fg_err err;
        fg_alloc_fail_after(n);
        int rc = fg_otlp_decode_proto(out.data, out.len, &q, &err);
        fg_alloc_fail_after(0);
        if (rc == 0) {
            succeeded = 1;
            fg_profiles_unref(q);
        } else {
            assert_null(q);
        }
    }
    assert_true(succeeded);
    fg_buf_free(&out);
    fg_profiles_unref(p);
}

static void test_response_and_status(void **state)
{
    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_otlp_encode_response_proto(0, NULL, &out), 0);
    assert_int_equal(out.len, 0); /* full success: partial_success unset */
    assert_int_equal(fg_otlp_encode_response_proto(3, "dropped", &out), 0);
    pb_response *resp = (pb_response *)protobuf_c_message_unpack(
        &opentelemetry__proto__collector__profiles__v1development__export_profiles_service_response__descriptor,
        NULL, out.len, out.data);
    assert_non_null(resp);
    assert_int_equal(resp->partial_success->rejected_profiles, 3);
    assert_string_equal(resp->partial_success->error_message, "dropped");
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    out.len = 0;
    assert_int_equal(fg_otlp_encode_status_proto(3, "bad index", &out), 0);
    pb_status *st = (pb_status *)protobuf_c_message_unpack(&google__rpc__status__descriptor, NULL,
                                                           out.len, out.data);
    assert_int_equal(st->code, 3);
    assert_string_equal(st->message, "bad index");
    protobuf_c_message_free_unpacked(&st->base, NULL);
    fg_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ebpf_corpus_payload),
        cmocka_unit_test(test_round_trip_synthetic),
        cmocka_unit_test(test_refuses_bad_indices),
        cmocka_unit_test(test_refuses_bad_structure),
        cmocka_unit_test(test_garbage_and_truncation),
        cmocka_unit_test(test_empty_request),
        cmocka_unit_test(test_duplicates_on_the_wire_collapse),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_response_and_status),
    };
    return cmocka_run_group_tests_name("otlp_proto", tests, NULL, NULL);
}
