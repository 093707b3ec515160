/* The otlp receiver over real HTTP: status codes, response bodies (ExportProfilesServiceResponse
 * and google.rpc.Status in the request's encoding) and what reaches the next consumer. */
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_config.h"
#include "fg_gzip.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_option.h"
#include "google/rpc/status.pb-c.h"
#include "opentelemetry/proto/collector/profiles/v1development/profiles_service.pb-c.h"
#include "otlp_receiver.h"
#include "testutil.h"

#define PB(name) Opentelemetry__Proto__Profiles__V1development__##name
#define PB_INIT(NAME) OPENTELEMETRY__PROTO__PROFILES__V1DEVELOPMENT__##NAME##__INIT

/* ---- a consumer that records what it gets and answers what the test says ---- */

struct recorder {
    struct fg_consumer base; /* first */
    pthread_mutex_t mu;
    int calls;
    uint32_t last_resources;
    uint64_t samples;
    int answer; /* what consume returns */
};

static int record_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct recorder *r = (struct recorder *)self;
    pthread_mutex_lock(&r->mu);
    r->calls++;
    r->last_resources = batch->n_resources;
    r->samples += batch->n_samples;
    int answer = r->answer;
    pthread_mutex_unlock(&r->mu);
    fg_profiles_unref(batch);
    if (answer)
        return fg_err_set(err, answer, "recorder says %s", fg_strerror(answer));
    return 0;
}

struct fixture {
    struct recorder rec;
    struct otlp_receiver_config *cfg;
    struct fg_component *comp;
    unsigned port;
};

/* Runs start with stderr captured, and finds the port in the log line integration tests
 * rely on. */
static int start_and_find_port(struct fg_component *c, unsigned *port)
{
    struct tu_capture cap;
    tu_capture_stderr(&cap);
    struct fg_err err = {{0}};
    int rc = c->ops->start(c, &err);
    size_t len = 0;
    char *log = tu_capture_end(&cap, &len);
    if (rc != 0) {
        fprintf(stderr, "start: %s\n", err.msg);
        fg_free(log);
        return rc;
    }
    rc = -1;
    const char *p = log ? memmem(log, len, "listening on ", 13) : NULL;
    if (p) {
        /* "listening on HOST:PORT (OTLP/HTTP)": the port follows the last ':' before " (" */
        const char *end = memmem(p, len - (size_t)(p - log), " (OTLP/HTTP)", 12);
        const char *colon = end ? memrchr(p, ':', (size_t)(end - p)) : NULL;
        if (colon && sscanf(colon + 1, "%u", port) == 1 && *port > 0)
            rc = 0;
    }
    fprintf(stderr, "%.*s", (int)len, log ? log : "");
    fg_free(log);
    return rc;
}

static const struct fg_factory *otlp_factory(void)
{
    return fg_factory_find(FG_KIND_RECEIVER, "otlp");
}

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    pthread_mutex_init(&f.rec.mu, NULL);
    f.rec.base.consume = record_consume;
    const struct fg_factory *fac = otlp_factory();
    if (!fac)
        return -1;
    struct fg_err err = {{0}};
    f.cfg = fg_calloc(1, fac->config_size);
    if (!f.cfg || fg_options_defaults(fac->options, f.cfg, &err) != 0)
        return -1;
    f.cfg->protocols.http_enabled = true;
    fg_free(f.cfg->protocols.http.endpoint);
    f.cfg->protocols.http.endpoint = fg_strdup("127.0.0.1:0");
    f.cfg->protocols.http.max_request_body_size = 4 << 20;
    if (fac->validate && fac->validate(f.cfg, &err) != 0)
        return -1;
    struct fg_create_args args = {.id = "otlp/test", .config = f.cfg, .next = &f.rec.base};
    if (fac->create(&args, &f.comp, &err) != 0) {
        fprintf(stderr, "create: %s\n", err.msg);
        return -1;
    }
    if (strcmp(f.comp->id, "otlp/test") != 0 || f.comp->factory != fac)
        return -1;
    if (start_and_find_port(f.comp, &f.port) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    f->comp->ops->shutdown(f->comp, 0);
    f->comp->ops->destroy(f->comp);
    fg_options_free(otlp_factory()->options, f->cfg);
    fg_free(f->cfg);
    pthread_mutex_destroy(&f->rec.mu);
    return 0;
}

static void set_answer(struct fixture *f, int answer)
{
    pthread_mutex_lock(&f->rec.mu);
    f->rec.answer = answer;
    pthread_mutex_unlock(&f->rec.mu);
}

static int recorder_calls(struct fixture *f)
{
    pthread_mutex_lock(&f->rec.mu);
    int n = f->rec.calls;
    pthread_mutex_unlock(&f->rec.mu);
    return n;
}

/* ---- requests ---- */

/* A small valid ExportProfilesServiceRequest: one resource, one profile, two samples. */
static void build_request(struct fg_buf *out)
{
    char *strings[] = {"", "samples", "count", "main", "service.name", "demo", "main.c"};
    PB(Mapping) map0 = PB_INIT(MAPPING);
    PB(Mapping) *maps[] = {&map0};
    PB(Function) fn0 = PB_INIT(FUNCTION), fn1 = PB_INIT(FUNCTION);
    fn1.name_strindex = 3;
    fn1.filename_strindex = 6;
    PB(Function) *fns[] = {&fn0, &fn1};
    PB(Line) line = PB_INIT(LINE);
    line.function_index = 1;
    line.line = 42;
    PB(Line) *lines[] = {&line};
    PB(Location) loc0 = PB_INIT(LOCATION), loc1 = PB_INIT(LOCATION);
    loc1.address = 0x1000;
    loc1.n_lines = 1;
    loc1.lines = lines;
    PB(Location) *locs[] = {&loc0, &loc1};
    int32_t loc_idx[] = {1};
    PB(Stack) st0 = PB_INIT(STACK), st1 = PB_INIT(STACK);
    st1.n_location_indices = 1;
    st1.location_indices = loc_idx;
    PB(Stack) *stacks[] = {&st0, &st1};
    PB(Link) link0 = PB_INIT(LINK);
    PB(Link) *links[] = {&link0};
    PB(KeyValueAndUnit) attr0 = PB_INIT(KEY_VALUE_AND_UNIT);
    PB(KeyValueAndUnit) *attrs[] = {&attr0};
    PB(ProfilesDictionary) dict = PB_INIT(PROFILES_DICTIONARY);
    dict.n_string_table = FG_ARRAY_LEN(strings);
    dict.string_table = strings;
    dict.n_mapping_table = 1;
    dict.mapping_table = maps;
    dict.n_function_table = 2;
    dict.function_table = fns;
    dict.n_location_table = 2;
    dict.location_table = locs;
    dict.n_stack_table = 2;
    dict.stack_table = stacks;
    dict.n_link_table = 1;
    dict.link_table = links;
    dict.n_attribute_table = 1;
    dict.attribute_table = attrs;

    int64_t v1[] = {5}, v2[] = {7};
    PB(Sample) s1 = PB_INIT(SAMPLE), s2 = PB_INIT(SAMPLE);
    s1.stack_index = 1;
    s1.n_values = 1;
    s1.values = v1;
    s2.stack_index = 1;
    s2.n_values = 1;
    s2.values = v2;
    PB(Sample) *samples[] = {&s1, &s2};
    PB(ValueType) vt = PB_INIT(VALUE_TYPE);
    vt.type_strindex = 1;
    vt.unit_strindex = 2;
    PB(Profile) prof = PB_INIT(PROFILE);
    prof.sample_type = &vt;
    prof.n_samples = 2;
    prof.samples = samples;
    prof.time_unix_nano = 1700000000000000000ull;
    prof.duration_nano = 1000000000ull;
    PB(Profile) *profs[] = {&prof};
    PB(ScopeProfiles) sp = PB_INIT(SCOPE_PROFILES);
    sp.n_profiles = 1;
    sp.profiles = profs;
    PB(ScopeProfiles) *sps[] = {&sp};

    Opentelemetry__Proto__Common__V1__AnyValue val = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    val.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    val.string_value = "demo";
    Opentelemetry__Proto__Common__V1__KeyValue kv = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
    kv.key = "service.name";
    kv.value = &val;
    Opentelemetry__Proto__Common__V1__KeyValue *kvs[] = {&kv};
    Opentelemetry__Proto__Resource__V1__Resource res = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    res.n_attributes = 1;
    res.attributes = kvs;
    PB(ResourceProfiles) rp = PB_INIT(RESOURCE_PROFILES);
    rp.resource = &res;
    rp.n_scope_profiles = 1;
    rp.scope_profiles = sps;
    PB(ResourceProfiles) *rps[] = {&rp};

    Opentelemetry__Proto__Collector__Profiles__V1development__ExportProfilesServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__PROFILES__V1DEVELOPMENT__EXPORT_PROFILES_SERVICE_REQUEST__INIT;
    req.n_resource_profiles = 1;
    req.resource_profiles = rps;
    req.dictionary = &dict;
    size_t len = opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__get_packed_size(&req);
    assert_int_equal(fg_buf_reserve(out, len), 0);
    opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__pack(&req, out->data + out->len);
    out->len += len;
}

struct reply {
    long status;
    struct fg_buf body;
    struct fg_buf headers;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    return fg_buf_append(ud, p, size * n) == 0 ? size * n : 0;
}

static void post(struct fixture *f, const char *path, const char *ctype, const char *encoding,
                 const void *body, size_t len, struct reply *out)
{
    memset(out, 0, sizeof(*out));
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[128], ct[128], ce[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", f->port, path);
    struct curl_slist *hl = NULL;
    if (ctype) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
        hl = curl_slist_append(hl, ct);
    }
    if (encoding) {
        snprintf(ce, sizeof(ce), "Content-Encoding: %s", encoding);
        hl = curl_slist_append(hl, ce);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &out->headers);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fprintf(stderr, "curl: %s\n", curl_easy_strerror(rc));
    assert_int_equal(rc, CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    fg_buf_append(&out->headers, "", 1);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
}

static void reply_free(struct reply *r)
{
    fg_buf_free(&r->body);
    fg_buf_free(&r->headers);
}

static bool has_header(const struct reply *r, const char *line)
{
    return strcasestr((const char *)r->headers.data, line) != NULL;
}

/* A 200 with an ExportProfilesServiceResponse that reports full success. */
static void assert_proto_success(const struct reply *r)
{
    assert_int_equal(r->status, 200);
    assert_true(has_header(r, "Content-Type: application/x-protobuf"));
    Opentelemetry__Proto__Collector__Profiles__V1development__ExportProfilesServiceResponse *resp =
        opentelemetry__proto__collector__profiles__v1development__export_profiles_service_response__unpack(
            NULL, r->body.len, r->body.data);
    assert_non_null(resp);
    if (resp->partial_success)
        assert_int_equal(resp->partial_success->rejected_profiles, 0);
    opentelemetry__proto__collector__profiles__v1development__export_profiles_service_response__free_unpacked(
        resp, NULL);
}

static void assert_proto_status(const struct reply *r, int code)
{
    assert_true(has_header(r, "Content-Type: application/x-protobuf"));
    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, r->body.len, r->body.data);
    assert_non_null(st);
    assert_int_equal(st->code, code);
    assert_true(strlen(st->message) > 0);
    google__rpc__status__free_unpacked(st, NULL);
}

/* ---- tests ---- */

static const char *const PROTO = "application/x-protobuf";

static void test_proto_ok(void **state)
{
    struct fixture *f = *state;
    struct fg_buf req = {0};
    build_request(&req);
    struct reply r;
    post(f, "/v1development/profiles", PROTO, NULL, req.data, req.len, &r);
    assert_proto_success(&r);
    reply_free(&r);
    assert_int_equal(recorder_calls(f), 1);
    assert_int_equal(f->rec.last_resources, 1);
    assert_int_equal(f->rec.samples, 2);

    /* parameters and case in the media type do not matter; application/protobuf too */
    post(f, "/v1development/profiles", "Application/X-Protobuf; charset=utf-8", NULL, req.data,
         req.len, &r);
    assert_proto_success(&r);
    reply_free(&r);
    post(f, "/v1development/profiles", "application/protobuf", NULL, req.data, req.len, &r);
    assert_proto_success(&r);
    reply_free(&r);

    /* gzip is undone by the server before the decoder sees it */
    struct fg_buf gz = {0};
    assert_int_equal(fg_gzip(req.data, req.len, 6, &gz), 0);
    post(f, "/v1development/profiles", PROTO, "gzip", gz.data, gz.len, &r);
    assert_proto_success(&r);
    reply_free(&r);
    assert_int_equal(recorder_calls(f), 4);
    assert_int_equal(f->rec.samples, 8);
    fg_buf_free(&gz);
    fg_buf_free(&req);
}

static void test_corpus_proto(void **state)
{
    struct fixture *f = *state;
    char path[512];
    if (!tu_corpus_path("pyroscope_otel_ebpf_v1.10.otlp.pb", path, sizeof(path))) {
        fprintf(stderr, "skipping: corpus absent (set FG_CORPUS)\n");
        return;
    }
    size_t len = 0;
    uint8_t *data = tu_read_file(path, &len);
    assert_non_null(data);
    struct reply r;
    post(f, "/v1development/profiles", PROTO, NULL, data, len, &r);
    assert_proto_success(&r);
    reply_free(&r);
    assert_int_equal(recorder_calls(f), 1);
    assert_true(f->rec.samples > 0);
    fg_free(data);
}

static void test_empty_request(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    post(f, "/v1development/profiles", PROTO, NULL, "", 0, &r);
    assert_proto_success(&r);
    reply_free(&r);
    assert_int_equal(recorder_calls(f), 0);
}

static void test_unsupported_media_type(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    post(f, "/v1development/profiles", "text/plain", NULL, "hello", 5, &r);
    assert_int_equal(r.status, 415);
    assert_true(has_header(&r, "Content-Type: text/plain"));
    assert_non_null(memmem(r.body.data, r.body.len, "application/x-protobuf", 22));
    assert_non_null(memmem(r.body.data, r.body.len, "application/json", 16));
    reply_free(&r);
    post(f, "/v1development/profiles", NULL, NULL, "hello", 5, &r);
    assert_int_equal(r.status, 415);
    reply_free(&r);
    /* a media type that merely starts like an accepted one */
    post(f, "/v1development/profiles", "application/x-protobuffer", NULL, "", 0, &r);
    assert_int_equal(r.status, 415);
    reply_free(&r);
    assert_int_equal(recorder_calls(f), 0);
}

static void test_garbage_then_ok(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
    post(f, "/v1development/profiles", PROTO, NULL, garbage, sizeof(garbage), &r);
    assert_int_equal(r.status, 400);
    assert_proto_status(&r, 3);
    reply_free(&r);

    post(f, "/v1development/profiles", PROTO, "gzip", garbage, sizeof(garbage), &r);
    assert_int_equal(r.status, 400);
    reply_free(&r);
    assert_int_equal(recorder_calls(f), 0);

    /* the server is still fine */
    struct fg_buf req = {0};
    build_request(&req);
    post(f, "/v1development/profiles", PROTO, NULL, req.data, req.len, &r);
    assert_proto_success(&r);
    reply_free(&r);
    fg_buf_free(&req);
    assert_int_equal(recorder_calls(f), 1);
}

static void test_consumer_refuses(void **state)
{
    struct fixture *f = *state;
    struct fg_buf req = {0};
    build_request(&req);
    struct reply r;
    const int retryable[] = {FG_EFULL, FG_ERETRYABLE, FG_ESTOPPED, FG_ENOMEM};
    for (size_t i = 0; i < FG_ARRAY_LEN(retryable); i++) {
        set_answer(f, retryable[i]);
        post(f, "/v1development/profiles", PROTO, NULL, req.data, req.len, &r);
        assert_int_equal(r.status, 503);
        assert_true(has_header(&r, "Retry-After: 1"));
        assert_proto_status(&r, 14);
        reply_free(&r);
    }
    set_answer(f, FG_EINVAL);
    post(f, "/v1development/profiles", PROTO, NULL, req.data, req.len, &r);
    assert_int_equal(r.status, 400);
    assert_false(has_header(&r, "Retry-After"));
    assert_proto_status(&r, 3);
    reply_free(&r);

    set_answer(f, 0);
    post(f, "/v1development/profiles", PROTO, NULL, req.data, req.len, &r);
    assert_proto_success(&r);
    reply_free(&r);
    assert_int_equal(recorder_calls(f), 6);
    fg_buf_free(&req);
}

/* ---- gRPC on the same listener ---- */

#define EXPORT_PATH "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"

/* One unary call over h2c; headers and trailers land in out->headers. */
static void grpc_post(unsigned port, const char *path, const void *msg, size_t len, bool gz,
                      struct reply *out)
{
    memset(out, 0, sizeof(*out));
    struct fg_buf framed = {0}, z = {0};
    if (gz) {
        assert_int_equal(fg_gzip(msg, len, 6, &z), 0);
        msg = z.data;
        len = z.len;
    }
    uint8_t prefix[5] = {gz, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                         (uint8_t)len};
    fg_buf_append(&framed, prefix, 5);
    fg_buf_append(&framed, msg, len);
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/grpc");
    hl = curl_slist_append(hl, "TE: trailers");
    if (gz)
        hl = curl_slist_append(hl, "grpc-encoding: gzip");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, framed.data);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)framed.len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &out->headers);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    fg_buf_append(&out->headers, "", 1);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    fg_buf_free(&framed);
    fg_buf_free(&z);
}

/* The value of a header or trailer line (NUL-terminated copy), or "" when absent. */
static const char *header_value(const struct reply *r, const char *name, char *buf, size_t n)
{
    buf[0] = '\0';
    const char *p = strcasestr((const char *)r->headers.data, name);
    if (!p)
        return buf;
    p += strlen(name);
    while (*p == ':' || *p == ' ')
        p++;
    size_t k = strcspn(p, "\r\n");
    snprintf(buf, n, "%.*s", (int)k, p);
    return buf;
}

static void test_grpc_status_mapping(void **state)
{
    struct fixture *f = *state;
    struct fg_buf req = {0};
    build_request(&req);
    struct reply r;
    char v[512];

    grpc_post(f->port, EXPORT_PATH, req.data, req.len, false, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header_value(&r, "grpc-status", v, sizeof(v)), "0");
    assert_int_equal(r.body.len, 5); /* an empty ExportProfilesServiceResponse */
    reply_free(&r);
    grpc_post(f->port, EXPORT_PATH, req.data, req.len, true, &r);
    assert_string_equal(header_value(&r, "grpc-status", v, sizeof(v)), "0");
    reply_free(&r);
    assert_int_equal(recorder_calls(f), 2);
    assert_int_equal(f->rec.samples, 4);

    /* overloaded: UNAVAILABLE with google.rpc.Status + RetryInfo in the details */
    const int retryable[] = {FG_EFULL, FG_ERETRYABLE, FG_ESTOPPED, FG_ENOMEM};
    for (size_t i = 0; i < FG_ARRAY_LEN(retryable); i++) {
        set_answer(f, retryable[i]);
        grpc_post(f->port, EXPORT_PATH, req.data, req.len, false, &r);
        assert_string_equal(header_value(&r, "grpc-status", v, sizeof(v)), "14");
        uint8_t det[512];
        size_t n = tu_b64_decode(header_value(&r, "grpc-status-details-bin", v, sizeof(v)), det,
                              sizeof(det));
        Google__Rpc__Status *st = google__rpc__status__unpack(NULL, n, det);
        assert_non_null(st);
        assert_int_equal(st->code, 14);
        assert_int_equal(st->n_details, 1);
        assert_string_equal(st->details[0]->type_url, "type.googleapis.com/google.rpc.RetryInfo");
        Google__Rpc__RetryInfo *ri = google__rpc__retry_info__unpack(
            NULL, st->details[0]->value.len, st->details[0]->value.data);
        assert_non_null(ri);
        assert_int_equal(ri->retry_delay->seconds, 1);
        google__rpc__retry_info__free_unpacked(ri, NULL);
        google__rpc__status__free_unpacked(st, NULL);
        reply_free(&r);
    }
    set_answer(f, FG_EINVAL);
    grpc_post(f->port, EXPORT_PATH, req.data, req.len, false, &r);
    assert_string_equal(header_value(&r, "grpc-status", v, sizeof(v)), "3");
    reply_free(&r);
    set_answer(f, FG_EPERMANENT);
    grpc_post(f->port, EXPORT_PATH, req.data, req.len, false, &r);
    assert_string_equal(header_value(&r, "grpc-status", v, sizeof(v)), "13");
    reply_free(&r);
    set_answer(f, 0);

    /* bad payload: INVALID_ARGUMENT naming the field, and the decoder never reached next */
    int calls = recorder_calls(f);
    static const uint8_t garbage[] = {0x0a, 0x7f, 0x01}; /* a field longer than the message */
    grpc_post(f->port, EXPORT_PATH, garbage, sizeof(garbage), false, &r);
    assert_string_equal(header_value(&r, "grpc-status", v, sizeof(v)), "3");
    assert_true(strlen(header_value(&r, "grpc-message", v, sizeof(v))) > 0);
    reply_free(&r);
    assert_int_equal(recorder_calls(f), calls);

    grpc_post(f->port, "/opentelemetry.proto.collector.profiles.v1experimental.ProfilesService/"
                       "Export", req.data, req.len, false, &r);
    assert_string_equal(header_value(&r, "grpc-status", v, sizeof(v)), "12");
    assert_non_null(strstr(header_value(&r, "grpc-message", v, sizeof(v)), "v1development"));
    reply_free(&r);

    /* an empty request is a success that passes nothing on */
    grpc_post(f->port, EXPORT_PATH, "", 0, false, &r);
    assert_string_equal(header_value(&r, "grpc-status", v, sizeof(v)), "0");
    reply_free(&r);
    assert_int_equal(recorder_calls(f), calls);
    fg_buf_free(&req);
}

/* Both protocols: two listeners, each logged with its label; each serves both. */
static void test_grpc_listener(void **state)
{
    const struct fg_factory *fac = otlp_factory();
    struct otlp_receiver_config *cfg = fg_calloc(1, fac->config_size);
    struct fg_err err = {{0}};
    assert_int_equal(fg_options_defaults(fac->options, cfg, &err), 0);
    assert_string_equal(cfg->protocols.grpc.endpoint, "127.0.0.1:4317");
    assert_int_equal(cfg->protocols.grpc.max_recv_msg_size_mib, 4);
    assert_int_equal(cfg->protocols.grpc.limits.max_concurrent_streams, 100);
    cfg->protocols.grpc_enabled = cfg->protocols.http_enabled = true;
    /* the same fixed endpoint twice is refused */
    fg_free(cfg->protocols.grpc.endpoint);
    cfg->protocols.grpc.endpoint = fg_strdup("127.0.0.1:4318");
    assert_int_equal(fac->validate(cfg, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "protocols.grpc.endpoint"));
    fg_free(cfg->protocols.grpc.endpoint);
    fg_free(cfg->protocols.http.endpoint);
    cfg->protocols.grpc.endpoint = fg_strdup("127.0.0.1:0");
    cfg->protocols.http.endpoint = fg_strdup("127.0.0.1:0");
    assert_int_equal(fac->validate(cfg, &err), 0);

    struct recorder rec = {.base.consume = record_consume};
    pthread_mutex_init(&rec.mu, NULL);
    struct fg_create_args args = {.id = "otlp", .config = cfg, .next = &rec.base};
    struct fg_component *c = NULL;
    assert_int_equal(fac->create(&args, &c, &err), 0);
    struct tu_capture cap;
    tu_capture_stderr(&cap);
    int rc = c->ops->start(c, &err);
    char *log = tu_capture_end(&cap, NULL);
    assert_int_equal(rc, 0);
    unsigned gport = 0, hport = 0;
    const char *g = strstr(log, "(OTLP/gRPC)");
    const char *hh = strstr(log, "(OTLP/HTTP)");
    assert_non_null(g);
    assert_non_null(hh);
    const char *gc = memrchr(log, ':', (size_t)(g - log));
    const char *hc = memrchr(log, ':', (size_t)(hh - log));
    assert_int_equal(sscanf(gc + 1, "%u", &gport), 1);
    assert_int_equal(sscanf(hc + 1, "%u", &hport), 1);
    fg_free(log);
    assert_int_not_equal(gport, hport);

    struct fg_buf req = {0};
    build_request(&req);
    struct reply r;
    char v[64];
    unsigned ports[] = {gport, hport};
    for (size_t i = 0; i < 2; i++) {
        grpc_post(ports[i], EXPORT_PATH, req.data, req.len, false, &r);
        assert_string_equal(header_value(&r, "grpc-status", v, sizeof(v)), "0");
        reply_free(&r);
        struct fixture fx = {.port = ports[i]};
        post(&fx, "/v1development/profiles", PROTO, NULL, req.data, req.len, &r);
        assert_proto_success(&r);
        reply_free(&r);
    }
    assert_int_equal(rec.calls, 4);
    fg_buf_free(&req);
    c->ops->shutdown(c, 0);
    c->ops->destroy(c);
    fg_options_free(fac->options, cfg);
    fg_free(cfg);
    pthread_mutex_destroy(&rec.mu);
}

static void test_routing(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    post(f, "/v1/profiles", PROTO, NULL, "", 0, &r);
    assert_int_equal(r.status, 404);
    reply_free(&r);

    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1development/profiles", f->port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    struct fg_buf sink = {0};
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 405);
    curl_easy_cleanup(c);
    fg_buf_free(&sink);
}

static void test_json(void **state)
{
    struct fixture *f = *state;
    char path[512];
    struct reply r;
    const char *bad = "{\"resourceProfiles\": [";
    post(f, "/v1development/profiles", "application/json", NULL, bad, strlen(bad), &r);
    assert_int_equal(r.status, 400);
    assert_true(has_header(&r, "Content-Type: application/json"));
    json_error_t jerr;
    json_t *st = json_loadb((const char *)r.body.data, r.body.len, 0, &jerr);
    assert_non_null(st);
    assert_int_equal(json_integer_value(json_object_get(st, "code")), 3);
    assert_true(json_is_string(json_object_get(st, "message")));
    json_decref(st);
    reply_free(&r);

    const char *empty = "{}";
    post(f, "/v1development/profiles", "application/json; charset=utf-8", NULL, empty, 2, &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: application/json"));
    reply_free(&r);
    assert_int_equal(recorder_calls(f), 0);

    if (!tu_corpus_path("pyroscope_otel_ebpf_v1.10.otlp.json", path, sizeof(path))) {
        fprintf(stderr, "skipping JSON corpus request: corpus absent (set FG_CORPUS)\n");
        return;
    }
    size_t len = 0;
    uint8_t *data = tu_read_file(path, &len);
    assert_non_null(data);
    post(f, "/v1development/profiles", "application/json", NULL, data, len, &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: application/json"));
    assert_true(r.body.len >= 2 && r.body.data[0] == '{');
    reply_free(&r);
    fg_free(data);
    assert_int_equal(recorder_calls(f), 1);
    assert_true(f->rec.samples > 0);
}

static void test_config_errors(void **state)
{
    const struct fg_factory *fac = otlp_factory();
    assert_non_null(fac);
    struct otlp_receiver_config *cfg = fg_calloc(1, fac->config_size);
    struct fg_err err = {{0}};
    assert_int_equal(fg_options_defaults(fac->options, cfg, &err), 0);
    /* no protocol enabled */
    assert_int_equal(fac->validate(cfg, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "protocols"));

    /* a port already taken fails start with the endpoint in the message */
    struct recorder rec = {.base.consume = record_consume};
    pthread_mutex_init(&rec.mu, NULL);
    cfg->protocols.http_enabled = true;
    fg_free(cfg->protocols.http.endpoint);
    cfg->protocols.http.endpoint = fg_strdup("127.0.0.1:0");
    struct fg_create_args args = {.id = "otlp", .config = cfg, .next = &rec.base};
    struct fg_component *a = NULL, *b = NULL;
    assert_int_equal(fac->create(&args, &a, &err), 0);
    unsigned port = 0;
    assert_int_equal(start_and_find_port(a, &port), 0);
    char ep[64];
    snprintf(ep, sizeof(ep), "127.0.0.1:%u", port);
    fg_free(cfg->protocols.http.endpoint);
    cfg->protocols.http.endpoint = fg_strdup(ep);
    assert_int_equal(fac->create(&args, &b, &err), 0);
    assert_int_not_equal(b->ops->start(b, &err), 0);
    assert_non_null(strstr(err.msg, ep));
    b->ops->destroy(b);
    a->ops->shutdown(a, 0);
    a->ops->destroy(a);
    fg_options_free(fac->options, cfg);
    fg_free(cfg);
    pthread_mutex_destroy(&rec.mu);
}

/* The option table as the YAML loader sees it: presence of "http" enables it, sizes parse. */
static void test_yaml_config(void **state)
{
    const char *yaml = "receivers:\n"
                       "  otlp/y:\n"
                       "    protocols:\n"
                       "      http:\n"
                       "        endpoint: \"127.0.0.1:0\"\n"
                       "        max_request_body_size: 1MiB\n"
                       "exporters:\n"
                       "  debug:\n"
                       "service:\n"
                       "  pipelines:\n"
                       "    profiles:\n"
                       "      receivers: [otlp/y]\n"
                       "      exporters: [debug]\n";
    struct fg_config *cfg = tu_config_load(yaml);
    struct fg_diag diag;
    const struct fg_config_component *cc = fg_config_find(cfg, FG_KIND_RECEIVER, "otlp/y");
    assert_non_null(cc);
    const struct otlp_receiver_config *oc = cc->config;
    assert_true(oc->protocols.http_enabled);
    assert_string_equal(oc->protocols.http.endpoint, "127.0.0.1:0");
    assert_int_equal(oc->protocols.http.max_request_body_size, 1 << 20);
    fg_config_free(cfg);

    /* without any protocol the receiver is refused, naming the key */
    const char *none = "receivers:\n"
                       "  otlp:\n"
                       "exporters:\n"
                       "  debug:\n"
                       "service:\n"
                       "  pipelines:\n"
                       "    profiles:\n"
                       "      receivers: [otlp]\n"
                       "      exporters: [debug]\n";
    fg_diag_init(&diag);
    assert_int_not_equal(fg_config_load_string("none.yaml", none, strlen(none), &cfg, &diag), 0);
    assert_null(cfg);
    assert_non_null(memmem(diag.text.data, diag.text.len, "protocols", 9));
    fg_diag_free(&diag);
}

/* The grpc block as the YAML loader sees it: Collector-shaped keys and their bounds. */
static void test_yaml_grpc(void **state)
{
    const char *yaml = "receivers:\n"
                       "  otlp:\n"
                       "    protocols:\n"
                       "      grpc:\n"
                       "        endpoint: \"127.0.0.1:0\"\n"
                       "        max_recv_msg_size_mib: 32\n"
                       "        max_concurrent_streams: 7\n"
                       "        max_resets_per_second: 9\n"
                       "        keepalive:\n"
                       "          server_parameters:\n"
                       "            max_connection_idle: 3s\n"
                       "            max_connection_age: 1m\n"
                       "exporters:\n"
                       "  debug:\n"
                       "service:\n"
                       "  pipelines:\n"
                       "    profiles:\n"
                       "      receivers: [otlp]\n"
                       "      exporters: [debug]\n";
    struct fg_config *cfg = tu_config_load(yaml);
    struct fg_diag diag;
    const struct otlp_receiver_config *oc =
        fg_config_find(cfg, FG_KIND_RECEIVER, "otlp")->config;
    assert_true(oc->protocols.grpc_enabled);
    assert_false(oc->protocols.http_enabled);
    assert_int_equal(oc->protocols.grpc.max_recv_msg_size_mib, 32);
    assert_int_equal(oc->protocols.grpc.limits.max_concurrent_streams, 7);
    assert_int_equal(oc->protocols.grpc.limits.max_resets_per_second, 9);
    assert_int_equal(oc->protocols.grpc.limits.max_streams_per_second, 10000);
    assert_int_equal(oc->protocols.grpc.keepalive.server_parameters.max_connection_idle,
                     3000000000LL);
    assert_int_equal(oc->protocols.grpc.keepalive.server_parameters.max_connection_age,
                     60000000000LL);
    fg_config_free(cfg);

    /* 64 MiB is the ceiling */
    char bad[1024];
    const char *at = strstr(yaml, "32");
    snprintf(bad, sizeof(bad), "%.*s65%s", (int)(at - yaml), yaml, at + 2);
    fg_diag_init(&diag);
    assert_int_not_equal(fg_config_load_string("b.yaml", bad, strlen(bad), &cfg, &diag), 0);
    assert_non_null(memmem(diag.text.data, diag.text.len, "max_recv_msg_size_mib", 21));
    fg_diag_free(&diag);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_proto_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corpus_proto, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_media_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_then_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consumer_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grpc_status_mapping, setup, teardown),
        cmocka_unit_test(test_grpc_listener),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_yaml_config),
        cmocka_unit_test(test_yaml_grpc),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
