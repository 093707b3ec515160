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

/* ---- the public codec (JSON ⇄ model) ---- */

static struct fg_profiles *decode_ok(const void *data, size_t len)
{
    struct fg_profiles *p = NULL;
    struct fg_err err = {{0}};
    int rc = fg_otlp_decode_json(data, len, &p, &err);
    if (rc != 0)
        fail_msg("decode_json: %s (%s)", fg_strerror(rc), err.msg);
    assert_non_null(p);
    return p;
}

static struct fg_profiles *decode_str(const char *json)
{
    return decode_ok(json, strlen(json));
}

/* Encodes p to JSON (NUL-terminated for strstr); fg_buf_free it. */
static void encode_ok(const struct fg_profiles *p, struct fg_buf *out)
{
    fg_buf_init(out, 0);
    assert_int_equal(fg_otlp_encode_json(p, out), 0);
    assert_int_equal(fg_buf_append(out, "", 1), 0);
    out->len--;
}

static void assert_same_data(const struct fg_profiles *a, const struct fg_profiles *b)
{
    char *ca = tu_canon(a), *cb = tu_canon(b);
    assert_non_null(ca);
    assert_non_null(cb);
    assert_string_equal(ca, cb);
    fg_free(ca);
    fg_free(cb);
}

static void assert_contains(const struct fg_buf *b, const char *want)
{
    if (!strstr((const char *)b->data, want))
        fail_msg("output lacks %s:\n%.*s", want, (int)FG_MIN(b->len, 4000), b->data);
}

/* The real JSON request and its protobuf twin decode to the same batch. */
static void test_corpus_json_equals_proto(void **state)
{
    char jp[1024], pp[1024];
    if (!tu_corpus_path("pyroscope_otel_ebpf_v1.10.otlp.json", jp, sizeof(jp)) ||
        !tu_corpus_path("pyroscope_otel_ebpf_v1.10.otlp.pb", pp, sizeof(pp))) {
        print_message("corpus absent (set FG_CORPUS): skipping\n");
        skip();
    }
    size_t jlen, plen;
    uint8_t *jdata = tu_read_file(jp, &jlen), *pdata = tu_read_file(pp, &plen);
    assert_non_null(jdata);
    assert_non_null(pdata);
    struct fg_profiles *a = decode_ok(jdata, jlen), *b = NULL;
    struct fg_err err;
    assert_int_equal(fg_otlp_decode_proto(pdata, plen, &b, &err), 0);
    assert_int_equal(a->n_resources, 77);
    assert_same_data(a, b);

    /* and JSON → model → JSON → model keeps it, with a stable text form */
    struct fg_buf j1, j2;
    encode_ok(a, &j1);
    struct fg_profiles *c = decode_ok(j1.data, j1.len);
    assert_same_data(a, c);
    encode_ok(c, &j2);
    assert_int_equal(j1.len, j2.len);
    assert_memory_equal(j1.data, j2.data, j1.len);

    fg_buf_free(&j1);
    fg_buf_free(&j2);
    fg_profiles_unref(a);
    fg_profiles_unref(b);
    fg_profiles_unref(c);
    fg_free(jdata);
    fg_free(pdata);
}

static void test_round_trip_synthetic(void **state)
{
    struct fg_profiles *p = tu_make_batch("svc \"quoted\"", 9);
    assert_non_null(p);
    struct fg_buf out;
    encode_ok(p, &out);
    struct fg_profiles *q = decode_ok(out.data, out.len);
    assert_same_data(p, q);
    assert_int_equal(q->n_samples, p->n_samples);

    /* the document's shape: all seven tables, each with its [0] entry, 64-bit as strings */
    json_error_t jerr;
    json_t *root = json_loadb((const char *)out.data, out.len, 0, &jerr);
    assert_non_null(root);
    json_t *dict = json_object_get(root, "dictionary");
    static const char *const tables[] = {"mappingTable", "locationTable", "functionTable",
                                         "linkTable", "stringTable", "attributeTable",
                                         "stackTable"};
    for (size_t t = 0; t < FG_ARRAY_LEN(tables); t++) {
        json_t *tab = json_object_get(dict, tables[t]);
        assert_true(json_is_array(tab));
        assert_true(json_array_size(tab) >= 1);
        json_t *zero = json_array_get(tab, 0);
        if (strcmp(tables[t], "stringTable") == 0)
            assert_string_equal(json_string_value(zero), "");
        else
            assert_int_equal(json_object_size(zero), 0);
    }
    json_t *links = json_object_get(dict, "linkTable");
    assert_true(json_array_size(links) >= 2);
    const char *trace = json_string_value(json_object_get(json_array_get(links, 1), "traceId"));
    assert_non_null(trace);
    assert_int_equal(strlen(trace), 32);
    assert_int_equal(strspn(trace, "0123456789abcdef"), 32);
    json_t *prof = json_array_get(
        json_object_get(json_array_get(json_object_get(json_array_get(json_object_get(root,
                                                                                      "resourceProfiles"),
                                                                      0),
                                                       "scopeProfiles"),
                                       0),
                        "profiles"),
        0);
    json_t *sample = json_array_get(json_object_get(prof, "samples"), 0);
    assert_true(json_is_string(json_array_get(json_object_get(sample, "values"), 0)));
    assert_true(json_is_string(json_array_get(json_object_get(sample, "timestampsUnixNano"), 0)));
    assert_true(json_is_integer(json_object_get(sample, "stackIndex")));
    json_t *rattr = json_array_get(
        json_object_get(json_object_get(json_array_get(json_object_get(root, "resourceProfiles"), 0),
                                        "resource"),
                        "attributes"),
        0);
    assert_string_equal(json_string_value(json_object_get(rattr, "key")), "service.name");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(rattr, "value"), "stringValue")),
        "svc \"quoted\"");
    json_decref(root);

    fg_buf_free(&out);
    fg_profiles_unref(p);
    fg_profiles_unref(q);
}

/* Every field and value kind survives JSON → model → JSON in its OTLP/JSON spelling. */
static const char full_doc[] =
    "{\"resourceProfiles\":[{\"resource\":{\"attributes\":["
    "{\"key\":\"s\",\"value\":{\"stringValue\":\"v\"}},"
    "{\"key\":\"i\",\"value\":{\"intValue\":-42}},"
    "{\"key\":\"d\",\"value\":{\"doubleValue\":0.1}},"
    "{\"key\":\"n\",\"value\":{\"doubleValue\":\"NaN\"}},"
    "{\"key\":\"inf\",\"value\":{\"doubleValue\":\"-Infinity\"}},"
    "{\"key\":\"b\",\"value\":{\"boolValue\":false}},"
    "{\"key\":\"y\",\"value\":{\"bytesValue\":\"AAEC/w==\"}},"
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"intValue\":\"1\"},{}]}}},"
    "{\"key\":\"k\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"x\",\"value\":"
    "{\"boolValue\":true}}]}}},"
    "{\"keyStrindex\":3,\"value\":{\"stringValueStrindex\":4}}],"
    "\"droppedAttributesCount\":2,"
    "\"entityRefs\":[{\"schemaUrl\":\"su\",\"type\":\"service\",\"idKeys\":[\"s\"],"
    "\"descriptionKeys\":[\"i\",\"d\"]}]},"
    "\"scopeProfiles\":[{\"scope\":{\"name\":\"agent\",\"version\":\"1.2\",\"attributes\":"
    "[{\"key\":\"sc\",\"value\":{\"stringValue\":\"z\"}}],\"droppedAttributesCount\":1},"
    "\"profiles\":[{\"sampleType\":{\"typeStrindex\":1,\"unitStrindex\":2},"
    "\"samples\":[{\"stackIndex\":1,\"attributeIndices\":[1],\"linkIndex\":1,"
    "\"values\":[\"-5\",\"9223372036854775807\"],\"timestampsUnixNano\":[\"18446744073709551615\","
    "\"1\"]}],"
    "\"timeUnixNano\":\"1700000000000000001\",\"durationNano\":\"20\",\"periodType\":"
    "{\"typeStrindex\":1,\"unitStrindex\":2},\"period\":\"-3\",\"profileId\":"
    "\"00112233445566778899AABBCCDDEEFF\",\"droppedAttributesCount\":4,"
    "\"originalPayloadFormat\":\"pprof\",\"originalPayload\":\"aGVsbG8\","
    "\"attributeIndices\":[2]}],\"schemaUrl\":\"ss\"}],\"schemaUrl\":\"rs\"}],"
    "\"dictionary\":{\"mappingTable\":[{},{\"memoryStart\":\"4096\",\"memoryLimit\":8192,"
    "\"fileOffset\":\"18446744073709551615\",\"filenameStrindex\":5,\"attributeIndices\":[2]}],"
    "\"locationTable\":[{},{\"mappingIndex\":1,\"address\":\"4100\",\"lines\":[{\"functionIndex\":"
    "1,\"line\":\"12\",\"column\":\"-3\"},{}],\"attributeIndices\":[1]}],"
    "\"functionTable\":[{},{\"nameStrindex\":6,\"systemNameStrindex\":7,\"filenameStrindex\":5,"
    "\"startLine\":\"9\"}],"
    "\"linkTable\":[{},{\"traceId\":\"0102030405060708090A0B0C0D0E0F10\",\"spanId\":"
    "\"a1b2c3d4e5f60718\"}],"
    "\"stringTable\":[\"\",\"cpu\",\"nanoseconds\",\"key.from.table\",\"value.from.table\","
    "\"/bin/x\",\"main\",\"_main\"],"
    "\"attributeTable\":[{},{\"keyStrindex\":3,\"value\":{\"stringValue\":\"t\"}},"
    "{\"keyStrindex\":4,\"value\":{\"intValue\":\"7\"},\"unitStrindex\":2}],"
    "\"stackTable\":[{},{\"locationIndices\":[1,1]}]}}";

static void test_every_field_round_trips(void **state)
{
    struct fg_profiles *p = decode_str(full_doc);
    struct fg_buf out;
    encode_ok(p, &out);
    static const char *const want[] = {
        "{\"key\":\"s\",\"value\":{\"stringValue\":\"v\"}}",
        "{\"key\":\"i\",\"value\":{\"intValue\":\"-42\"}}",
        "{\"key\":\"d\",\"value\":{\"doubleValue\":0.1}}",
        "{\"key\":\"n\",\"value\":{\"doubleValue\":\"NaN\"}}",
        "{\"key\":\"inf\",\"value\":{\"doubleValue\":\"-Infinity\"}}",
        "{\"key\":\"b\",\"value\":{\"boolValue\":false}}",
        "{\"key\":\"y\",\"value\":{\"bytesValue\":\"AAEC/w==\"}}",
        "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"intValue\":\"1\"},{}]}}}",
        "{\"key\":\"k\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"x\",\"value\":"
        "{\"boolValue\":true}}]}}}",
        /* key_strindex / string_value_strindex resolved and written inline */
        "{\"key\":\"key.from.table\",\"value\":{\"stringValue\":\"value.from.table\"}}",
        "\"droppedAttributesCount\":2",
        "\"entityRefs\":[{\"schemaUrl\":\"su\",\"type\":\"service\",\"idKeys\":[\"s\"],"
        "\"descriptionKeys\":[\"i\",\"d\"]}]",
        "\"scope\":{\"name\":\"agent\",\"version\":\"1.2\",\"attributes\":[{\"key\":\"sc\","
        "\"value\":{\"stringValue\":\"z\"}}],\"droppedAttributesCount\":1}",
        "\"values\":[\"-5\",\"9223372036854775807\"]",
        "\"timestampsUnixNano\":[\"18446744073709551615\",\"1\"]",
        "\"timeUnixNano\":\"1700000000000000001\"",
        "\"durationNano\":\"20\"",
        "\"period\":\"-3\"",
        "\"profileId\":\"00112233445566778899aabbccddeeff\"",
        "\"droppedAttributesCount\":4",
        "\"originalPayloadFormat\":\"pprof\"",
        "\"originalPayload\":\"aGVsbG8=\"",
        "\"schemaUrl\":\"ss\"",
        "\"schemaUrl\":\"rs\"",
        "\"memoryStart\":\"4096\",\"memoryLimit\":\"8192\",\"fileOffset\":\"18446744073709551615\"",
        "\"lines\":[{\"functionIndex\":1,\"line\":\"12\",\"column\":\"-3\"},{}]",
        "\"startLine\":\"9\"",
        "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"a1b2c3d4e5f60718\"",
        "\"unitStrindex\":",
        "\"stackTable\":[{},{\"locationIndices\":[1,1]}]",
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(want); i++)
        assert_contains(&out, want[i]);
    struct fg_profiles *q = decode_ok(out.data, out.len);
    assert_same_data(p, q);
    fg_buf_free(&out);
    fg_profiles_unref(p);
    fg_profiles_unref(q);
}

static void test_escaping(void **state)
{
    struct fg_profiles *p;
    assert_int_equal(fg_profiles_new(&p), 0);
    static const struct {
        const char *in;
        size_t len;
        const char *json; /* how it must be written */
        const char *back; /* what a JSON parser reads back */
    } cases[] = {
        {"q\"b\\s/", 6, "\"q\\\"b\\\\s/\"", "q\"b\\s/"},
        {"\x01\x1f\n\r\t\b\f\x7f", 8, "\"\\u0001\\u001f\\n\\r\\t\\b\\f\x7f\"",
         "\x01\x1f\n\r\t\b\f\x7f"},
        {"a\0b", 3, "\"a\\u0000b\"", NULL},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
         "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        /* invalid UTF-8: stray continuation, truncated sequence, overlong, surrogate */
        {"x\x80y\xc3", 4, "\"x\\ufffdy\\ufffd\"", "x\xef\xbf\xbdy\xef\xbf\xbd"},
        {"\xc0\xaf\xed\xa0\x80", 5, "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"",
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    };
    int32_t idx[FG_ARRAY_LEN(cases)];
    for (size_t i = 0; i < FG_ARRAY_LEN(cases); i++) {
        idx[i] = fg_dict_string(p, cases[i].in, cases[i].len);
        assert_true(idx[i] > 0);
    }
    struct fg_buf out;
    encode_ok(p, &out);
    for (size_t i = 0; i < FG_ARRAY_LEN(cases); i++)
        assert_contains(&out, cases[i].json);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)out.data, out.len, JSON_ALLOW_NUL, &jerr);
    if (!root)
        fail_msg("our output is not JSON: %s", jerr.text);
    json_t *strings = json_object_get(json_object_get(root, "dictionary"), "stringTable");
    for (size_t i = 0; i < FG_ARRAY_LEN(cases); i++) {
        json_t *s = json_array_get(strings, (size_t)idx[i]);
        if (cases[i].back)
            assert_string_equal(json_string_value(s), cases[i].back);
        else
            assert_int_equal(json_string_length(s), cases[i].len);
    }
    json_decref(root);
    fg_buf_free(&out);
    fg_profiles_unref(p);
}

/* Errors found by the model conversion after the JSON step (indices, [0] entries). */
static void expect_decode_error(const char *json, const char *want)
{
    struct fg_profiles *p = (struct fg_profiles *)1;
    struct fg_err err = {{0}};
    int rc = fg_otlp_decode_json((const uint8_t *)json, strlen(json), &p, &err);
    if (rc != FG_EINVAL || !strstr(err.msg, want))
        fail_msg("input %s\n  rc %d, message \"%s\"\n  wanted a message containing \"%s\"", json,
                 rc, err.msg, want);
    assert_null(p);
}

#define EMPTY_TABLES                                                                           \
    "\"mappingTable\":[{}],\"locationTable\":[{}],\"functionTable\":[{}],\"linkTable\":[{}]," \
    "\"attributeTable\":[{}]"

static void test_model_errors(void **state)
{
    expect_decode_error("{\"resourceProfiles\":[{\"scopeProfiles\":[{\"profiles\":[{\"samples\":"
                        "[{\"stackIndex\":5,\"values\":[1]}]}]}]}],\"dictionary\":{" EMPTY_TABLES
                        ",\"stringTable\":[\"\"],\"stackTable\":[{}]}}",
                        "index 5 out of range");
    expect_decode_error("{\"resourceProfiles\":[{}],\"dictionary\":{" EMPTY_TABLES
                        ",\"stringTable\":[\"\"],\"stackTable\":[{},{\"locationIndices\":[0,1]}]}}",
                        "dictionary.stack_table[1].location_indices[1]: index 1 out of range");
    expect_decode_error("{\"resourceProfiles\":[{\"scopeProfiles\":[{\"profiles\":[{\"sampleType\":"
                        "{\"typeStrindex\":-1}}]}]}],\"dictionary\":{" EMPTY_TABLES
                        ",\"stringTable\":[\"\"],\"stackTable\":[{}]}}",
                        "out of range");
    /* missing [0] entries */
    expect_decode_error("{\"resourceProfiles\":[{}]}", "dictionary");
    expect_decode_error("{\"resourceProfiles\":[{}],\"dictionary\":{" EMPTY_TABLES
                        ",\"stackTable\":[{}]}}",
                        "string_table: empty");
    expect_decode_error("{\"resourceProfiles\":[{}],\"dictionary\":{" EMPTY_TABLES
                        ",\"stringTable\":[\"x\"],\"stackTable\":[{}]}}",
                        "string_table[0]: must be the zero value");
    expect_decode_error("{\"resourceProfiles\":[{}],\"dictionary\":{\"mappingTable\":"
                        "[{\"memoryStart\":\"1\"}],\"locationTable\":[{}],\"functionTable\":[{}],"
                        "\"linkTable\":[{}],\"attributeTable\":[{}],\"stringTable\":[\"\"],"
                        "\"stackTable\":[{}]}}",
                        "mapping_table[0]: must be the zero value");
    /* ids of the wrong size */
    expect_decode_error("{\"resourceProfiles\":[{}],\"dictionary\":{\"mappingTable\":[{}],"
                        "\"locationTable\":[{}],\"functionTable\":[{}],\"linkTable\":[{},"
                        "{\"traceId\":\"0102\"}],\"attributeTable\":[{}],\"stringTable\":[\"\"],"
                        "\"stackTable\":[{}]}}",
                        "trace_id: must be 16 bytes");
    /* and the JSON step's own errors come through the public function unchanged */
    expect_decode_error("{\"resourceProfiles\":[{\"scopeProfiles\":[{\"profiles\":[{\"samples\":"
                        "[{\"values\":[\"x\"]}]}]}]}]}",
                        "resourceProfiles[0].scopeProfiles[0].profiles[0].samples[0].values[0]: "
                        "expected an integer or a decimal string");
    expect_decode_error("not json", "invalid JSON at line 1 column");
}

static void test_responses(void **state)
{
    struct fg_buf out;
    fg_buf_init(&out, 0);
    assert_int_equal(fg_otlp_encode_response_json(0, NULL, &out), 0);
    assert_int_equal(out.len, 2);
    assert_memory_equal(out.data, "{}", 2);
    out.len = 0;
    assert_int_equal(fg_otlp_encode_response_json(0, "", &out), 0);
    assert_memory_equal(out.data, "{}", 2);
    out.len = 0;

    json_error_t jerr;
    assert_int_equal(fg_otlp_encode_response_json(3, "dropped \"3\"\n", &out), 0);
    json_t *r = json_loadb((const char *)out.data, out.len, 0, &jerr);
    assert_non_null(r);
    json_t *ps = json_object_get(r, "partialSuccess");
    assert_string_equal(json_string_value(json_object_get(ps, "rejectedProfiles")), "3");
    assert_string_equal(json_string_value(json_object_get(ps, "errorMessage")), "dropped \"3\"\n");
    json_decref(r);
    out.len = 0;

    assert_int_equal(fg_otlp_encode_response_json(0, "warning only", &out), 0);
    r = json_loadb((const char *)out.data, out.len, 0, &jerr);
    ps = json_object_get(r, "partialSuccess");
    assert_null(json_object_get(ps, "rejectedProfiles"));
    assert_string_equal(json_string_value(json_object_get(ps, "errorMessage")), "warning only");
    json_decref(r);
    out.len = 0;

    assert_int_equal(fg_otlp_encode_status_json(3, "bad index: \"x\"", &out), 0);
    r = json_loadb((const char *)out.data, out.len, 0, &jerr);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "code")), 3);
    assert_string_equal(json_string_value(json_object_get(r, "message")), "bad index: \"x\"");
    json_decref(r);
    out.len = 0;
    assert_int_equal(fg_otlp_encode_status_json(14, NULL, &out), 0);
    assert_int_equal(out.len, strlen("{\"code\":14,\"message\":\"\"}"));
    assert_memory_equal(out.data, "{\"code\":14,\"message\":\"\"}", out.len);
    fg_buf_free(&out);
}

/* A full buffer fails cleanly and leaves what was there before. */
static void test_encode_limit(void **state)
{
    struct fg_profiles *p = tu_make_batch("svc", 3);
    struct fg_buf out;
    fg_buf_init(&out, 64);
    assert_int_equal(fg_buf_append_str(&out, "prefix"), 0);
    assert_int_equal(fg_otlp_encode_json(p, &out), FG_ETOOBIG);
    assert_int_equal(out.len, 6);
    assert_memory_equal(out.data, "prefix", 6);
    fg_buf_free(&out);
    fg_profiles_unref(p);
}

/* Every allocation, including jansson's, may fail: no crash, no leak, a clean error. */
static void test_allocation_failures(void **state)
{
    int succeeded = 0;
    for (unsigned long n = 1; n < 5000 && !succeeded; n++) {
        struct fg_profiles *q = NULL;
        struct fg_err err;
        fg_alloc_fail_after(n);
        int rc = fg_otlp_decode_json((const uint8_t *)full_doc, strlen(full_doc), &q, &err);
        fg_alloc_fail_after(0);
        if (rc == 0) {
            succeeded = 1;
            fg_profiles_unref(q);
        } else {
            if (rc != FG_ENOMEM)
                fail_msg("allocation %lu failing gave %d: %s", n, rc, err.msg);
            assert_null(q);
        }
    }
    assert_true(succeeded);
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
        cmocka_unit_test(test_corpus_json_equals_proto),
        cmocka_unit_test(test_round_trip_synthetic),
        cmocka_unit_test(test_every_field_round_trips),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_model_errors),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_encode_limit),
        cmocka_unit_test(test_allocation_failures),
    };
    /* route jansson through the test allocator so failure injection reaches it */
    json_set_alloc_funcs(fg_malloc, fg_free);
    return cmocka_run_group_tests_name("otlp_json", tests, NULL, NULL);
}
