/* Tests for the OTLP/JSON codec: JSON → protobuf-c against the protobuf twin of a real
 * request, the public decode/encode round trip, error messages, escaping and responses. */
#include "testutil.h"

/* The internal JSON → protobuf-c step (otlp_json_to_pb) is static: reach it directly. */
#include "fg_otlp_json.c"

#include "fg_alloc.h"

#define REQ_DESC \
    opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__descriptor

/* ---- helpers ---- */

struct pbdoc {
    struct fg_arena *arena;
    json_t *root;
    pb_request *req;
    struct fg_err err;
};

static int pb_from_json(struct pbdoc *doc, const char *json)
{
    memset(doc, 0, sizeof(*doc));
    assert_int_equal(fg_arena_new(&doc->arena), 0);
    return otlp_json_to_pb((const uint8_t *)json, strlen(json), doc->arena, &doc->root,
                           &doc->req, &doc->err);
}

static void pbdoc_free(struct pbdoc *doc)
{
    json_decref(doc->root);
    fg_arena_free(doc->arena);
}

static uint8_t *pack(const ProtobufCMessage *msg, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = fg_malloc(*len ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(protobuf_c_message_pack(msg, buf), *len);
    return buf;
}

/* Expects the pb step to fail with FG_EINVAL and a message containing want. */
static void expect_pb_error(const char *json, const char *want)
{
    struct pbdoc doc;
    int rc = pb_from_json(&doc, json);
    if (rc != FG_EINVAL || !strstr(doc.err.msg, want))
        fail_msg("input %s\n  rc %d, message \"%s\"\n  wanted a message containing \"%s\"", json,
                 rc, doc.err.msg, want);
    pbdoc_free(&doc);
}

/* ---- JSON → protobuf-c ---- */

/* The same request, once as OTLP/JSON and once as protobuf (both written by the Collector's
 * pdata marshalers): the JSON must decode to exactly the protobuf message. */
static void test_corpus_json_matches_protobuf(void **state)
{
    char jp[1024], pp[1024];
    if (!tu_corpus_path("pyroscope_otel_ebpf_v1.10.otlp.json", jp, sizeof(jp)) ||
        !tu_corpus_path("pyroscope_otel_ebpf_v1.10.otlp.pb", pp, sizeof(pp))) {
        print_message("corpus absent (set FG_CORPUS): skipping\n");
        skip();
    }
    size_t jlen, plen;
    uint8_t *jdata = tu_read_file(jp, &jlen);
    uint8_t *pdata = tu_read_file(pp, &plen);
    assert_non_null(jdata);
    assert_non_null(pdata);

    struct fg_arena *arena;
    json_t *root = NULL;
    pb_request *req;
    struct fg_err err = {{0}};
    assert_int_equal(fg_arena_new(&arena), 0);
    int rc = otlp_json_to_pb(jdata, jlen, arena, &root, &req, &err);
    if (rc != 0)
        fail_msg("decode: %s", err.msg);

    ProtobufCMessage *twin = protobuf_c_message_unpack(&REQ_DESC, NULL, plen, pdata);
    assert_non_null(twin);
    size_t l1, l2;
    uint8_t *b1 = pack(&req->base, &l1);
    uint8_t *b2 = pack(twin, &l2);
    assert_true(req->n_resource_profiles > 0);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);

    fg_free(b1);
    fg_free(b2);
    protobuf_c_message_free_unpacked(twin, NULL);
    json_decref(root);
    fg_arena_free(arena);
    fg_free(jdata);
    fg_free(pdata);
}

static void test_snake_and_camel_case(void **state)
{
    struct pbdoc a, b;
    int rc = pb_from_json(&a, "{\"resourceProfiles\":[{\"schemaUrl\":\"u\",\"scopeProfiles\":[{"
                              "\"profiles\":[{\"timeUnixNano\":\"5\",\"durationNano\":7,"
                              "\"sampleType\":{\"typeStrindex\":1,\"unitStrindex\":2},"
                              "\"droppedAttributesCount\":3}]}]}],"
                              "\"dictionary\":{\"stringTable\":[\"\",\"a\",\"b\"]}}");
    assert_int_equal(rc, 0);
    rc = pb_from_json(&b, "{\"resource_profiles\":[{\"schema_url\":\"u\",\"scope_profiles\":[{"
                          "\"profiles\":[{\"time_unix_nano\":5,\"duration_nano\":\"7\","
                          "\"sample_type\":{\"type_strindex\":1,\"unit_strindex\":2},"
                          "\"dropped_attributes_count\":3}]}]}],"
                          "\"dictionary\":{\"string_table\":[\"\",\"a\",\"b\"]}}");
    assert_int_equal(rc, 0);
    for (int k = 0; k < 2; k++) {
        pb_request *r = k ? b.req : a.req;
        assert_int_equal(r->n_resource_profiles, 1);
        assert_string_equal(r->resource_profiles[0]->schema_url, "u");
        assert_int_equal(r->resource_profiles[0]->n_scope_profiles, 1);
        pb_profile *pr = r->resource_profiles[0]->scope_profiles[0]->profiles[0];
        assert_int_equal(pr->time_unix_nano, 5);
        assert_int_equal(pr->duration_nano, 7);
        assert_non_null(pr->sample_type);
        assert_int_equal(pr->sample_type->type_strindex, 1);
        assert_int_equal(pr->sample_type->unit_strindex, 2);
        assert_int_equal(pr->dropped_attributes_count, 3);
        assert_int_equal(r->dictionary->n_string_table, 3);
        assert_string_equal(r->dictionary->string_table[1], "a");
    }
    size_t l1, l2;
    uint8_t *p1 = pack(&a.req->base, &l1), *p2 = pack(&b.req->base, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(p1, p2, l1);
    fg_free(p1);
    fg_free(p2);
    pbdoc_free(&a);
    pbdoc_free(&b);
}

static void test_numbers_as_strings_or_numbers(void **state)
{
    struct pbdoc d;
    int rc = pb_from_json(
        &d, "{\"resourceProfiles\":[{\"scopeProfiles\":[{\"profiles\":[{\"samples\":[{"
            "\"stackIndex\":\"7\",\"linkIndex\":2.0,\"attributeIndices\":[1,\"2\"],"
            "\"values\":[\"1\",2,-3,\"-4\",5.0,\"9223372036854775807\",\"-9223372036854775808\"],"
            "\"timestampsUnixNano\":[\"18446744073709551615\",3,\"0\"]}],"
            "\"period\":-10,\"timeUnixNano\":1e3}]}]}]}");
    if (rc != 0)
        fail_msg("%s", d.err.msg);
    pb_profile *pr = d.req->resource_profiles[0]->scope_profiles[0]->profiles[0];
    pb_sample *s = pr->samples[0];
    assert_int_equal(s->stack_index, 7);
    assert_int_equal(s->link_index, 2);
    assert_int_equal(s->n_attribute_indices, 2);
    assert_int_equal(s->attribute_indices[1], 2);
    int64_t want[] = {1, 2, -3, -4, 5, INT64_MAX, INT64_MIN};
    assert_int_equal(s->n_values, FG_ARRAY_LEN(want));
    for (size_t i = 0; i < FG_ARRAY_LEN(want); i++)
        assert_true(s->values[i] == want[i]);
    assert_int_equal(s->n_timestamps_unix_nano, 3);
    assert_true(s->timestamps_unix_nano[0] == UINT64_MAX);
    assert_int_equal(s->timestamps_unix_nano[1], 3);
    assert_int_equal(s->timestamps_unix_nano[2], 0);
    assert_int_equal(pr->period, -10);
    assert_int_equal(pr->time_unix_nano, 1000);
    pbdoc_free(&d);
}

static void test_any_value_kinds(void **state)
{
    struct pbdoc d;
    int rc = pb_from_json(
        &d, "{\"dictionary\":{\"attributeTable\":[{},"
            "{\"value\":{\"stringValue\":\"s\"}},"
            "{\"value\":{\"boolValue\":true}},"
            "{\"value\":{\"intValue\":\"-42\"}},"
            "{\"value\":{\"doubleValue\":1.5}},"
            "{\"value\":{\"doubleValue\":\"NaN\"}},"
            "{\"value\":{\"doubleValue\":\"-Infinity\"}},"
            "{\"value\":{\"bytesValue\":\"AAEC/w==\"}},"
            "{\"value\":{\"bytesValue\":\"AAEC_w\"}},"
            "{\"value\":{\"stringValueStrindex\":3}},"
            "{\"value\":{\"arrayValue\":{\"values\":[{\"intValue\":1},{\"stringValue\":\"x\"}]}}},"
            "{\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"k\",\"value\":{\"boolValue\":"
            "false}}]}}},"
            "{\"keyStrindex\":1,\"unitStrindex\":2,\"value\":{}}"
            "]}}");
    if (rc != 0)
        fail_msg("%s", d.err.msg);
    pb_kvu **t = d.req->dictionary->attribute_table;
    assert_int_equal(d.req->dictionary->n_attribute_table, 13);
    assert_null(t[0]->value);
    assert_int_equal(t[1]->value->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
    assert_string_equal(t[1]->value->string_value, "s");
    assert_true(t[2]->value->bool_value);
    assert_int_equal(t[3]->value->int_value, -42);
    assert_true(t[4]->value->double_value == 1.5);
    assert_true(isnan(t[5]->value->double_value));
    assert_true(isinf(t[6]->value->double_value) && t[6]->value->double_value < 0);
    static const uint8_t bytes[] = {0, 1, 2, 0xff};
    for (int i = 7; i <= 8; i++) {
        assert_int_equal(t[i]->value->value_case,
                         OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE);
        assert_int_equal(t[i]->value->bytes_value.len, 4);
        assert_memory_equal(t[i]->value->bytes_value.data, bytes, 4);
    }
    assert_int_equal(t[9]->value->string_value_strindex, 3);
    pb_array_value *arr = t[10]->value->array_value;
    assert_int_equal(arr->n_values, 2);
    assert_int_equal(arr->values[0]->int_value, 1);
    assert_string_equal(arr->values[1]->string_value, "x");
    pb_kvlist *kv = t[11]->value->kvlist_value;
    assert_int_equal(kv->n_values, 1);
    assert_string_equal(kv->values[0]->key, "k");
    assert_int_equal(kv->values[0]->value->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE);
    assert_false(kv->values[0]->value->bool_value);
    assert_int_equal(t[12]->key_strindex, 1);
    assert_int_equal(t[12]->unit_strindex, 2);
    assert_non_null(t[12]->value);
    assert_int_equal(t[12]->value->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET);
    pbdoc_free(&d);
}

static void test_hex_ids(void **state)
{
    struct pbdoc d;
    int rc = pb_from_json(
        &d, "{\"resourceProfiles\":[{\"scopeProfiles\":[{\"profiles\":[{\"profileId\":\"\"},"
            "{\"profileId\":\"00FF10aB\"}]}]}],\"dictionary\":{\"linkTable\":[{},"
            "{\"traceId\":\"0102030405060708090A0B0C0D0E0F10\",\"spanId\":\"a1b2c3d4e5f60718\"}"
            "]}}");
    if (rc != 0)
        fail_msg("%s", d.err.msg);
    pb_profile **prs = d.req->resource_profiles[0]->scope_profiles[0]->profiles;
    assert_int_equal(prs[0]->profile_id.len, 0);
    static const uint8_t pid[] = {0x00, 0xff, 0x10, 0xab};
    assert_int_equal(prs[1]->profile_id.len, 4);
    assert_memory_equal(prs[1]->profile_id.data, pid, 4);
    pb_link *l = d.req->dictionary->link_table[1];
    assert_int_equal(l->trace_id.len, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(l->trace_id.data[i], i + 1);
    static const uint8_t span[] = {0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18};
    assert_int_equal(l->span_id.len, 8);
    assert_memory_equal(l->span_id.data, span, 8);
    assert_int_equal(d.req->dictionary->link_table[0]->trace_id.len, 0);
    pbdoc_free(&d);
}

static void test_null_absent_and_unknown_keys(void **state)
{
    struct pbdoc d;
    int rc = pb_from_json(&d, "{\"resourceProfiles\":[{\"resource\":null,\"unknownKey\":"
                              "{\"deep\":[1,2,{\"x\":null}]},\"scopeProfiles\":null}],"
                              "\"dictionary\":{\"stringTable\":null,\"futureTable\":[{}]},"
                              "\"extension\":true}");
    if (rc != 0)
        fail_msg("%s", d.err.msg);
    assert_int_equal(d.req->n_resource_profiles, 1);
    assert_null(d.req->resource_profiles[0]->resource);
    assert_int_equal(d.req->resource_profiles[0]->n_scope_profiles, 0);
    assert_non_null(d.req->dictionary);
    assert_int_equal(d.req->dictionary->n_string_table, 0);
    pbdoc_free(&d);

    /* an empty document is an empty request */
    rc = pb_from_json(&d, "{}");
    assert_int_equal(rc, 0);
    assert_int_equal(d.req->n_resource_profiles, 0);
    assert_null(d.req->dictionary);
    pbdoc_free(&d);
}

static void test_pb_errors(void **state)
{
    expect_pb_error("{\"resourceProfiles\":[", "invalid JSON at line 1");
    expect_pb_error("{\n\"a\":1,\n\"b\" 2}", "invalid JSON at line 3");
    expect_pb_error("[]", "expected a JSON object at the top level");
    expect_pb_error("\"x\"", "invalid JSON"); /* jansson refuses non-container roots */
    expect_pb_error("{\"resourceProfiles\":{}}", "resourceProfiles: expected an array");
    expect_pb_error("{\"resourceProfiles\":[1]}", "resourceProfiles[0]: expected an object");
    expect_pb_error("{\"resourceProfiles\":[{\"scopeProfiles\":[{\"profiles\":[{},{},{\"samples\":"
                    "[{},{},{},{},{},{\"values\":[\"1\",true]}]}]}]}]}",
                    "resourceProfiles[0].scopeProfiles[0].profiles[2].samples[5].values[1]: "
                    "expected an integer or a decimal string");
    expect_pb_error("{\"dictionary\":{\"stackTable\":[{\"locationIndices\":[2147483648]}]}}",
                    "dictionary.stackTable[0].locationIndices[0]: integer out of range");
    expect_pb_error("{\"dictionary\":{\"stackTable\":[{\"location_indices\":[\"-2147483649\"]}]}}",
                    "dictionary.stackTable[0].location_indices[0]: integer out of range");
    expect_pb_error("{\"resourceProfiles\":[{\"scopeProfiles\":[{\"profiles\":[{\"timeUnixNano\":"
                    "\"-1\"}]}]}]}",
                    "profiles[0].timeUnixNano: integer out of range");
    expect_pb_error("{\"resourceProfiles\":[{\"scopeProfiles\":[{\"profiles\":[{\"durationNano\":"
                    "\"18446744073709551616\"}]}]}]}",
                    "durationNano: expected an integer or a decimal string");
    expect_pb_error("{\"dictionary\":{\"mappingTable\":[{\"memoryStart\":\" 1\"}]}}",
                    "dictionary.mappingTable[0].memoryStart: expected an integer");
    expect_pb_error("{\"dictionary\":{\"mappingTable\":[{\"memoryStart\":1.5}]}}",
                    "memoryStart: expected an integer");
    expect_pb_error("{\"dictionary\":{\"mappingTable\":[{\"filenameStrindex\":\"\"}]}}",
                    "filenameStrindex: expected an integer");
    expect_pb_error("{\"dictionary\":{\"linkTable\":[{\"traceId\":\"0g\"}]}}",
                    "dictionary.linkTable[0].traceId: expected a hex string");
    expect_pb_error("{\"dictionary\":{\"linkTable\":[{\"spanId\":\"abc\"}]}}",
                    "spanId: expected a hex string of even length");
    expect_pb_error("{\"dictionary\":{\"linkTable\":[{\"spanId\":12}]}}",
                    "spanId: expected a hex string");
    expect_pb_error("{\"dictionary\":{\"attributeTable\":[{\"value\":{\"bytesValue\":\"A\"}}]}}",
                    "dictionary.attributeTable[0].value.bytesValue: invalid base64");
    expect_pb_error("{\"dictionary\":{\"attributeTable\":[{\"value\":{\"bytesValue\":\"AA*A\"}}]}}",
                    "bytesValue: invalid base64");
    expect_pb_error("{\"dictionary\":{\"attributeTable\":[{\"value\":{\"stringValue\":5}}]}}",
                    "value.stringValue: expected a string");
    expect_pb_error("{\"dictionary\":{\"attributeTable\":[{\"value\":{\"boolValue\":\"true\"}}]}}",
                    "value.boolValue: expected true or false");
    expect_pb_error("{\"dictionary\":{\"attributeTable\":[{\"value\":{\"doubleValue\":\"inf\"}}]}}",
                    "value.doubleValue: expected a number");
    expect_pb_error("{\"dictionary\":{\"attributeTable\":[{\"value\":{\"stringValue\":\"a\","
                    "\"intValue\":1}}]}}",
                    "more than one value given for a oneof");
    expect_pb_error("{\"dictionary\":{\"stringTable\":[\"\",null]}}",
                    "dictionary.stringTable[1]: null is not allowed in an array");
    expect_pb_error("{\"dictionary\":{\"stringTable\":[\"\\u0000\"]}}", "invalid JSON");

    /* nesting deeper than jansson's limit is refused by the parser, not by our recursion */
    struct fg_buf deep;
    fg_buf_init(&deep, 0);
    assert_int_equal(fg_buf_append_str(&deep, "{\"dictionary\":{\"attributeTable\":[{\"value\":"), 0);
    for (int i = 0; i < 3000; i++)
        assert_int_equal(fg_buf_append_str(&deep, "{\"arrayValue\":{\"values\":["), 0);
    assert_int_equal(fg_buf_append(&deep, "", 1), 0);
    expect_pb_error((const char *)deep.data, "invalid JSON");
    fg_buf_free(&deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_json_matches_protobuf),
        cmocka_unit_test(test_snake_and_camel_case),
        cmocka_unit_test(test_numbers_as_strings_or_numbers),
        cmocka_unit_test(test_any_value_kinds),
        cmocka_unit_test(test_hex_ids),
        cmocka_unit_test(test_null_absent_and_unknown_keys),
        cmocka_unit_test(test_pb_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
