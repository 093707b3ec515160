/* The samples receiver: the JSON schema (frames as names or objects, both stack orders,
 * attributes, timestamps, errors naming the path) and the HTTP endpoint with folded text,
 * query metadata, labels, tenants and error statuses. */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_http_receiver.h"
#include "fg_log.h"
#include "fg_model.h"
#include "samples_receiver.h"
#include "testutil.h"

static const char *str(const struct fg_profiles *p, uint32_t idx)
{
    return fg_dict_get_string(p, idx).ptr;
}

/* "root;…;leaf" of a sample, with file:line when set. */
static void stack_text(const struct fg_profiles *p, const struct fg_sample *s, char *out,
                       size_t size)
{
    const struct fg_stack *st = fg_dict_get_stack(p, s->stack);
    size_t n = 0;
    out[0] = '\0';
    for (uint32_t k = st->n_locations; k-- > 0;) {
        const struct fg_location *loc = fg_dict_get_location(p, st->locations[k]);
        const struct fg_function *fn = fg_dict_get_function(p, loc->lines[0].function);
        n += (size_t)snprintf(out + n, size - n, "%s%s", n ? ";" : "", str(p, fn->name));
        if (fn->filename)
            n += (size_t)snprintf(out + n, size - n, "@%s:%lld", str(p, fn->filename),
                                  (long long)loc->lines[0].line);
    }
}

static struct fg_profiles *decode(const char *json, int expect, const char *msg)
{
    struct fg_profiles *p = NULL;
    assert_int_equal(fg_profiles_new(&p), 0);
    struct fg_err err = {{0}};
    int rc = fg_samples_json_decode((const uint8_t *)json, strlen(json), 42, p, &err);
    if (rc != expect)
        fail_msg("rc %d (%s), want %d", rc, err.msg, expect);
    if (msg && !strstr(err.msg, msg))
        fail_msg("\"%s\" lacks \"%s\"", err.msg, msg);
    if (rc != 0) {
        fg_profiles_unref(p);
        return NULL;
    }
    return p;
}

static void test_json_full(void **state)
{
    const char *doc =
        "{\"resource\": {\"service.name\": \"api\", \"host.cpus\": 8, \"canary\": true},"
        " \"scope\": {\"name\": \"myagent\", \"version\": \"1.2\"},"
        " \"sample_type\": {\"type\": \"cpu\", \"unit\": \"nanoseconds\"},"
        " \"period_type\": {\"type\": \"cpu\", \"unit\": \"nanoseconds\"},"
        " \"period\": 10000000, \"time_unix_nano\": \"1700000000000000000\","
        " \"duration_nano\": 5000000000, \"stack_order\": \"root_first\","
        " \"samples\": ["
        "  {\"stack\": [\"main\", {\"function\": \"work\", \"file\": \"w.c\", \"line\": 7}],"
        "   \"value\": 30000000, \"timestamp_unix_nano\": 1700000000000000001,"
        "   \"attributes\": {\"thread.name\": \"t1\", \"thread.id\": 5}},"
        "  {\"stack\": [\"main\"]}]}";
    struct fg_profiles *p = decode(doc, 0, NULL);
    assert_int_equal(p->n_resources, 1);
    const struct fg_resource_profiles *rp = &p->resources[0];
    assert_int_equal(rp->resource.n_attrs, 3);
    assert_int_equal(rp->scopes[0].scope.version.len, 3);
    const struct fg_profile *prof = &rp->scopes[0].profiles[0];
    assert_string_equal(str(p, prof->sample_type.type), "cpu");
    assert_string_equal(str(p, prof->period_type.unit), "nanoseconds");
    assert_int_equal(prof->period, 10000000);
    assert_true(prof->time_unix_nano == UINT64_C(1700000000000000000));
    assert_true(prof->duration_nano == UINT64_C(5000000000));
    assert_int_equal(prof->n_samples, 2);
    char buf[256];
    stack_text(p, &prof->samples[0], buf, sizeof(buf));
    assert_string_equal(buf, "main;work@w.c:7");
    assert_int_equal(prof->samples[0].values[0], 30000000);
    assert_int_equal(prof->samples[0].n_timestamps, 1);
    assert_true(prof->samples[0].timestamps[0] == UINT64_C(1700000000000000001));
    assert_int_equal(prof->samples[0].n_attrs, 2);
    assert_int_equal(prof->samples[1].values[0], 1); /* value defaults to 1 */
    assert_int_equal(prof->samples[1].n_timestamps, 0);
    fg_profiles_unref(p);
}

static void test_json_defaults_and_leaf_first(void **state)
{
    struct fg_profiles *p = decode("{\"samples\": [{\"stack\": [\"leaf\", \"mid\", \"root\"], "
                                   "\"value\": 2}]}", 0, NULL);
    const struct fg_resource_profiles *rp = &p->resources[0];
    assert_string_equal(rp->resource.attrs[0].key.ptr, "service.name");
    assert_string_equal(rp->resource.attrs[0].value.u.s.ptr, "unknown_service");
    const struct fg_profile *prof = &rp->scopes[0].profiles[0];
    assert_string_equal(str(p, prof->sample_type.type), "samples");
    assert_string_equal(str(p, prof->sample_type.unit), "count");
    assert_true(prof->time_unix_nano == 42); /* now as given */
    char buf[128];
    stack_text(p, &prof->samples[0], buf, sizeof(buf));
    assert_string_equal(buf, "root;mid;leaf");
    fg_profiles_unref(p);
}

static void test_json_errors(void **state)
{
    static const struct {
        const char *doc;
        const char *msg;
    } bad[] = {
        {"[]", "not a JSON object"},
        {"{\"samples\": [", "not a JSON object"},
        {"{\"sample\": []}", "sample: unknown field"},
        {"{}", "samples: expected an array"},
        {"{\"samples\": [{\"stack\": []}]}", "samples[0].stack: expected a non-empty array"},
        {"{\"samples\": [{\"stack\": [\"a\"]}, {\"stack\": [\"a\", 3]}]}", "samples[1].stack[1]"},
        {"{\"samples\": [{\"stack\": [{\"file\": \"x\"}]}]}", "function"},
        {"{\"samples\": [{\"stack\": [{\"function\": \"f\", \"line\": -1}]}]}", "line"},
        {"{\"samples\": [{\"stack\": [\"a\"], \"value\": 1.5}]}", "samples[0].value"},
        {"{\"samples\": [{\"stack\": [\"a\"], \"timestamp_unix_nano\": -1}]}", "timestamp"},
        {"{\"samples\": [{\"stack\": [\"a\"], \"attributes\": {\"k\": [1]}}]}",
         "samples[0].attributes.k"},
        {"{\"stack_order\": \"up\", \"samples\": []}", "stack_order"},
        {"{\"resource\": {\"a\": {}}, \"samples\": []}", "resource.a"},
        {"{\"sample_type\": {\"type\": 1}, \"samples\": []}", "sample_type"},
        {"{\"period\": \"x\", \"samples\": []}", "period"},
        {"{\"a\": 1, \"a\": 2}", "not a JSON object"},
        {"{\"samples\": [{\"stack\": [\"\"]}]}", "empty frame name"},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(bad); i++)
        decode(bad[i].doc, FG_EINVAL, bad[i].msg);
}

static void test_json_allocation_failures(void **state)
{
    const char *doc = "{\"resource\": {\"service.name\": \"a\", \"n\": 1}, \"samples\": ["
                      "{\"stack\": [\"x\", {\"function\": \"y\", \"file\": \"f\"}],"
                      " \"attributes\": {\"k\": \"v\"}, \"timestamp_unix_nano\": 5}]}";
    for (unsigned long n = 1; n < 400; n++) {
        struct fg_profiles *p = NULL;
        assert_int_equal(fg_profiles_new(&p), 0);
        struct fg_err err = {{0}};
        fg_alloc_fail_after(n);
        int rc = fg_samples_json_decode((const uint8_t *)doc, strlen(doc), 1, p, &err);
        fg_alloc_fail_after(0);
        fg_profiles_unref(p);
        if (rc == 0)
            return;
        assert_int_equal(rc, FG_ENOMEM);
    }
    fail_msg("decode never succeeded");
}

/* ---- over HTTP ---- */

struct recorder {
    struct fg_consumer base;
    pthread_mutex_t mu;
    struct fg_profiles *last;
};

static int record_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct recorder *r = (struct recorder *)self;
    pthread_mutex_lock(&r->mu);
    fg_profiles_unref(r->last);
    r->last = batch;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

struct fixture {
    struct recorder rec;
    struct fg_component *comp;
};

static int setup(void **state)
{
    static struct fixture f;
    const struct fg_factory *fac = fg_factory_find(FG_KIND_RECEIVER, "samples");
    struct fg_err err = {{0}};
    if (!fac)
        return -1;
    memset(&f, 0, sizeof(f));
    pthread_mutex_init(&f.rec.mu, NULL);
    f.rec.base.consume = record_consume;
    struct fg_http_receiver_config *cfg = fg_calloc(1, fac->config_size);
    if (!cfg || fg_options_defaults(fac->options, cfg, &err) != 0)
        return -1;
    if (strcmp(cfg->endpoint, "127.0.0.1:4041") != 0)
        return -1;
    fg_free(cfg->endpoint);
    cfg->endpoint = fg_strdup("127.0.0.1:0");
    struct fg_create_args args = {.id = "samples", .config = cfg, .next = &f.rec.base};
    int rc = fac->create(&args, &f.comp, &err);
    fg_options_free(fac->options, cfg);
    fg_free(cfg);
    if (rc != 0)
        return -1;
    fg_log_set_level(FG_LOG_WARN);
    if (f.comp->ops->start(f.comp, &err) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    f->comp->ops->shutdown(f->comp, 0);
    f->comp->ops->destroy(f->comp);
    fg_profiles_unref(f->rec.last);
    pthread_mutex_destroy(&f->rec.mu);
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    fg_buf_append(ud, p, size * n);
    return size * n;
}

static long post(struct fixture *f, const char *pq, const char *ctype, const char *hdr,
                 const char *body, char *msg, size_t msgsize)
{
    char url[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)fg_http_receiver_port(f->comp),
             pq);
    CURL *h = curl_easy_init();
    struct curl_slist *hl = NULL;
    char ct[128];
    snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
    hl = curl_slist_append(hl, ct);
    if (hdr)
        hl = curl_slist_append(hl, hdr);
    struct fg_buf out;
    fg_buf_init(&out, 0);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    msg[0] = '\0';
    json_t *j = out.len ? json_loadb((const char *)out.data, out.len, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(j, "message"));
    snprintf(msg, msgsize, "%s", m ? m : "");
    json_decref(j);
    fg_buf_free(&out);
    return status;
}

static void test_http_text(void **state)
{
    struct fixture *f = *state;
    char msg[256];
    long st = post(f, "/v1/samples?service=batchjob&type=cpu&unit=nanoseconds&period=10000000&"
                      "label.env=prod&label.host.name=h%201&scope=perf",
                   "text/plain", "X-Scope-OrgID: acme", "perf;main;f 3\nperf;main 1\n", msg,
                   sizeof(msg));
    if (st != 200)
        fail_msg("HTTP %ld: %s", st, msg);
    struct fg_profiles *p = f->rec.last;
    assert_non_null(p);
    assert_string_equal(p->tenant, "acme");
    const struct fg_resource_profiles *rp = &p->resources[0];
    assert_int_equal(rp->resource.n_attrs, 3);
    assert_string_equal(rp->resource.attrs[0].value.u.s.ptr, "batchjob");
    assert_string_equal(rp->resource.attrs[2].key.ptr, "host.name");
    assert_string_equal(rp->resource.attrs[2].value.u.s.ptr, "h 1");
    assert_string_equal(rp->scopes[0].scope.name.ptr, "perf");
    const struct fg_profile *prof = &rp->scopes[0].profiles[0];
    assert_string_equal(str(p, prof->sample_type.unit), "nanoseconds");
    assert_string_equal(str(p, prof->period_type.type), "cpu"); /* from type */
    assert_int_equal(prof->period, 10000000);
    assert_int_equal(prof->n_samples, 2);
    assert_int_equal(fg_profile_total(prof), 4);
}

static void test_http_json_and_errors(void **state)
{
    struct fixture *f = *state;
    char msg[256];
    assert_int_equal(post(f, "/v1/samples", "application/json", NULL,
                          "{\"samples\": [{\"stack\": [\"a\"], \"value\": 5}]}", msg,
                          sizeof(msg)), 200);
    assert_int_equal(fg_profile_total(&f->rec.last->resources[0].scopes[0].profiles[0]), 5);
    assert_int_equal(post(f, "/v1/samples?service=x", "application/json", NULL, "{}", msg,
                          sizeof(msg)), 400);
    assert_non_null(strstr(msg, "query parameters"));
    assert_int_equal(post(f, "/v1/samples", "application/json", NULL, "{\"samples\": 1}", msg,
                          sizeof(msg)), 400);
    assert_non_null(strstr(msg, "samples"));
    assert_int_equal(post(f, "/v1/samples?servce=x", "text/plain", NULL, "a 1", msg,
                          sizeof(msg)), 400);
    assert_non_null(strstr(msg, "unknown query parameter \"servce\""));
    assert_int_equal(post(f, "/v1/samples?period=-1", "text/plain", NULL, "a 1", msg,
                          sizeof(msg)), 400);
    assert_int_equal(post(f, "/v1/samples", "text/plain", NULL, "a b", msg, sizeof(msg)), 400);
    assert_non_null(strstr(msg, "line 1"));
    assert_int_equal(post(f, "/v1/samples", "application/xml", NULL, "<a/>", msg, sizeof(msg)),
                     415);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_full),
        cmocka_unit_test(test_json_defaults_and_leaf_first),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_json_allocation_failures),
        cmocka_unit_test(test_http_text),
        cmocka_unit_test(test_http_json_and_errors),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
