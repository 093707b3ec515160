/* The pyroscope receiver: name/type/time/query parsing, legacy format detection, and the
 * HTTP endpoints (/ingest folded, lines, pprof raw and multipart; Connect Push) with every
 * error status, checking what reaches the next consumer. */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_gzip.h"
#include "fg_log.h"
#include "fg_model.h"
#include "push/v1/push.pb-c.h"
#include "pyroscope_receiver.h"
#include "testutil.h"

/* ---- parsing ---- */

static void test_parse_name(void **state)
{
    struct pyro_name n;
    struct fg_err err = {{0}};
    const char *t = " my-app.cpu { env = prod , region=eu-west-1,} ";
    assert_int_equal(pyro_parse_name(t, strlen(t), &n, &err), 0);
    assert_int_equal(n.app_len, 10);
    assert_memory_equal(n.app, "my-app.cpu", 10);
    assert_int_equal(n.n_labels, 2);
    assert_memory_equal(n.labels[0].key, "env", 3);
    assert_int_equal(n.labels[0].key_len, 3);
    assert_memory_equal(n.labels[0].value, "prod", 4);
    assert_int_equal(n.labels[0].value_len, 4);
    assert_memory_equal(n.labels[1].value, "eu-west-1", 9);
    assert_int_equal(pyro_parse_name("app", 3, &n, &err), 0);
    assert_int_equal(n.n_labels, 0);
    assert_int_equal(pyro_parse_name("app{__name__=x}", 15, &n, &err), 0);

    static const struct {
        const char *name;
        const char *msg;
    } bad[] = {
        {"", "empty application name"},
        {"  {a=b}", "empty application name"},
        {"app{a=b", "unclosed '{'"},
        {"app{a=b}x", "text after '}'"},
        {"app{ab}", "without '='"},
        {"app{1a=b}", "invalid label name"},
        {"app{a-b=c}", "invalid label name"},
        {"app{a=1,a=2}", "duplicate label"},
        {"app}", "'}' without '{'"},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(bad); i++) {
        assert_int_equal(pyro_parse_name(bad[i].name, strlen(bad[i].name), &n, &err), FG_EINVAL);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].name, err.msg, bad[i].msg);
    }
    char many[2048] = "app{";
    for (int i = 0; i <= PYRO_MAX_LABELS; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "k%d=v,", i);
    snprintf(many + strlen(many), sizeof(many) - strlen(many), "}");
    assert_int_equal(pyro_parse_name(many, strlen(many), &n, &err), FG_EINVAL);
    assert_non_null(strstr(err.msg, "more than"));
}

static void test_split_type(void **state)
{
    size_t base;
    const struct pyro_type *t;
    assert_int_equal(pyro_split_type("app", 3, &base, &t), 0);
    assert_int_equal(base, 3);
    assert_string_equal(t->type, "cpu");
    assert_true(t->time);
    assert_int_equal(pyro_split_type("my.app.inuse_space", 18, &base, &t), 0);
    assert_int_equal(base, 6);
    assert_string_equal(t->type, "inuse_space");
    assert_string_equal(t->unit, "bytes");
    assert_false(t->time);
    assert_int_equal(pyro_split_type("a.mutex_duration", 16, &base, &t), 0);
    assert_string_equal(t->type, "delay");
    assert_int_equal(pyro_split_type("a.wall", 6, &base, &t), 0);
    assert_true(t->time);
    assert_int_equal(pyro_split_type("my.app", 6, &base, &t), FG_ENOTFOUND);
    assert_null(t);
    assert_int_equal(base, 6);
}

static void test_parse_time(void **state)
{
    int64_t ns, now = INT64_C(1700000000123456789);
    assert_int_equal(pyro_parse_time("1700000000", now, &ns), 0);
    assert_true(ns == INT64_C(1700000000000000000));
    assert_int_equal(pyro_parse_time("1700000000123", now, &ns), 0);
    assert_true(ns == INT64_C(1700000000123000000));
    assert_int_equal(pyro_parse_time("1700000000123456", now, &ns), 0);
    assert_true(ns == INT64_C(1700000000123456000));
    assert_int_equal(pyro_parse_time("1700000000123456789", now, &ns), 0);
    assert_true(ns == INT64_C(1700000000123456789));
    assert_int_equal(pyro_parse_time("20231114", now, &ns), 0);
    assert_true(ns == INT64_C(1699920000) * 1000000000);
    assert_int_equal(pyro_parse_time("now", now, &ns), 0);
    assert_true(ns == now);
    assert_int_equal(pyro_parse_time("now-1h", now, &ns), 0);
    assert_true(ns == now - INT64_C(3600000000000));
    assert_int_equal(pyro_parse_time("now+10s", now, &ns), 0);
    assert_true(ns == now + INT64_C(10000000000));
    const char *bad[] = {"", "yesterday", "now-", "now-5y", "12345678901234567890", "2023-11-14",
                         "20231314"};
    for (size_t i = 0; i < FG_ARRAY_LEN(bad); i++)
        if (pyro_parse_time(bad[i], now, &ns) != FG_EINVAL)
            fail_msg("\"%s\" parsed", bad[i]);
}

static int collect_param(void *ctx, const char *key, const char *value)
{
    struct fg_buf *b = ctx;
    return fg_buf_printf(b, "[%s=%s]", key, value);
}

static void test_query(void **state)
{
    char v[32];
    const char *q = "name=my%2Bapp%7Bk%3Dv%7D&x&format=folded&sp=a+b";
    assert_int_equal(fg__query_get(q, "name", v, sizeof(v)), 11);
    assert_string_equal(v, "my+app{k=v}");
    assert_int_equal(fg__query_get(q, "format", v, sizeof(v)), 6);
    assert_int_equal(fg__query_get(q, "x", v, sizeof(v)), 0);
    assert_int_equal(fg__query_get(q, "sp", v, sizeof(v)), 3);
    assert_string_equal(v, "a b");
    assert_int_equal(fg__query_get(q, "nam", v, sizeof(v)), -1);
    assert_int_equal(fg__query_get("a=%zz", "a", v, sizeof(v)), FG_EINVAL);
    assert_int_equal(fg__query_get("a=%4", "a", v, sizeof(v)), FG_EINVAL);
    assert_int_equal(fg__query_get("a=%00", "a", v, sizeof(v)), FG_EINVAL);
    assert_int_equal(fg__query_get("a=0123456789", "a", v, 5), FG_ETOOBIG);
    struct fg_buf b;
    fg_buf_init(&b, 0);
    struct fg_err err = {{0}};
    assert_int_equal(fg__query_each("a=1&&b=%41&c", collect_param, &b, &err), 0);
    fg_buf_append(&b, "", 1);
    assert_string_equal((char *)b.data, "[a=1][b=A][c=]");
    fg_buf_free(&b);
    assert_int_equal(fg__query_each("a=%g1", collect_param, &b, &err), FG_EINVAL);
    fg_buf_free(&b);
}

static void test_legacy_detection(void **state)
{
    static const uint8_t gperf64[24] = {0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t gperf32[12] = {0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t pprof[4] = {0x0a, 0x04, 0x08, 0x01};
    assert_non_null(strstr(pyro_legacy_format(gperf64, sizeof(gperf64)), "gperftools"));
    assert_non_null(strstr(pyro_legacy_format(gperf32, sizeof(gperf32)), "gperftools"));
    assert_null(pyro_legacy_format(pprof, sizeof(pprof)));
    const char *heap = "heap profile:    1:  2 [ 3: 4] @ heapz_v2/524288\n";
    assert_non_null(strstr(pyro_legacy_format((const uint8_t *)heap, strlen(heap)), "heap"));
    const char *files[] = {"pprof_cppbench.cpu", "gperftools-2.10.c.cpu.prof",
                           "pprof_cppbench.heap"};
    char path[512];
    for (size_t i = 0; i < FG_ARRAY_LEN(files); i++) {
        if (!tu_corpus_path(files[i], path, sizeof(path))) {
            printf("SKIP corpus file %s: corpus absent\n", files[i]);
            continue;
        }
        size_t len = 0;
        uint8_t *d = tu_read_file(path, &len);
        assert_non_null(d);
        assert_non_null(pyro_legacy_format(d, len));
        fg_free(d);
    }
}

/* ---- the receiver over HTTP ---- */

struct recorder {
    struct fg_consumer base; /* first */
    pthread_mutex_t mu;
    int calls;
    struct fg_profiles *last; /* one reference kept for inspection */
    int answer;
};

static int record_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct recorder *r = (struct recorder *)self;
    pthread_mutex_lock(&r->mu);
    r->calls++;
    int answer = r->answer;
    if (!answer) {
        fg_profiles_unref(r->last);
        r->last = batch;
        batch = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    fg_profiles_unref(batch);
    if (answer)
        return fg_err_set(err, answer, "recorder says %s", fg_strerror(answer));
    return 0;
}

struct fixture {
    struct recorder rec;
    struct fg_http_receiver_config *cfg;
    struct fg_component *comp;
    unsigned port;
};

static int make_receiver(struct fixture *f, uint64_t max_body, const char *tenant_header)
{
    const struct fg_factory *fac = fg_factory_find(FG_KIND_RECEIVER, "pyroscope");
    struct fg_err err = {{0}};
    if (!fac)
        return -1;
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->rec.mu, NULL);
    f->rec.base.consume = record_consume;
    f->cfg = fg_calloc(1, fac->config_size);
    if (!f->cfg || fg_options_defaults(fac->options, f->cfg, &err) != 0)
        return -1;
    if (strcmp(f->cfg->endpoint, "127.0.0.1:4040") != 0 ||
        f->cfg->max_request_body_size != 20u << 20)
        return -1; /* the documented defaults */
    fg_free(f->cfg->endpoint);
    f->cfg->endpoint = fg_strdup("127.0.0.1:0");
    if (max_body)
        f->cfg->max_request_body_size = max_body;
    if (tenant_header) {
        f->cfg->tenant_headers.items = fg_calloc(1, sizeof(char *));
        f->cfg->tenant_headers.items[0] = fg_strdup(tenant_header);
        f->cfg->tenant_headers.n = 1;
    }
    struct fg_create_args args = {.id = "pyroscope/test", .config = f->cfg, .next = &f->rec.base};
    if (fac->create(&args, &f->comp, &err) != 0) {
        fprintf(stderr, "create: %s\n", err.msg);
        return -1;
    }
    /* the options are ours to free now: the receiver keeps its own copies */
    fg_options_free(fac->options, f->cfg);
    fg_free(f->cfg);
    f->cfg = NULL;
    fg_log_set_level(FG_LOG_WARN);
    if (f->comp->ops->start(f->comp, &err) != 0) {
        fprintf(stderr, "start: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int setup(void **state)
{
    static struct fixture f;
    if (make_receiver(&f, 1 << 20, NULL) != 0)
        return -1;
    *state = &f;
    return 0;
}

static void stop_receiver(struct fixture *f)
{
    f->comp->ops->shutdown(f->comp, 0);
    f->comp->ops->destroy(f->comp);
    fg_profiles_unref(f->rec.last);
    pthread_mutex_destroy(&f->rec.mu);
}

static int teardown(void **state)
{
    stop_receiver(*state);
    return 0;
}


struct reply {
    long status;
    struct fg_buf body;
    char retry_after[32];
    char content_type[64];
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    fg_buf_append(&r->body, p, size * n);
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    size_t len = size * n;
    if (len > 13 && strncasecmp(p, "Retry-After:", 12) == 0)
        snprintf(r->retry_after, sizeof(r->retry_after), "%.*s", (int)strcspn(p + 13, "\r\n"),
                 p + 13);
    if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0)
        snprintf(r->content_type, sizeof(r->content_type), "%.*s",
                 (int)strcspn(p + 14, "\r\n"), p + 14);
    return len;
}

static void post(struct fixture *f, const char *path_query, const char *ctype,
                 const char *const *headers, const void *body, size_t len, struct reply *out)
{
    char url[4096];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)fg_http_receiver_port(f->comp),
             path_query);
    memset(out, 0, sizeof(*out));
    CURL *h = curl_easy_init();
    struct curl_slist *hl = NULL;
    char ct[256];
    snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "");
    hl = curl_slist_append(hl, ct);
    hl = curl_slist_append(hl, "Expect:");
    for (const char *const *p = headers; p && *p; p++)
        hl = curl_slist_append(hl, *p);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, len ? body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    fg_buf_append(&out->body, "", 1);
    out->body.len--;
}

/* Asserts a Pyroscope JSON error with status and a message containing msg. */
static void expect_error(struct reply *r, long status, const char *code, const char *msg)
{
    if (r->status != status)
        fail_msg("status %ld, want %ld (%s)", r->status, status, (char *)r->body.data);
    json_t *j = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "code")), code);
    const char *m = json_string_value(json_object_get(j, "message"));
    assert_non_null(m);
    if (!strstr(m, msg))
        fail_msg("message \"%s\" lacks \"%s\"", m, msg);
    json_decref(j);
    fg_buf_free(&r->body);
}

static struct fg_profiles *last_batch(struct fixture *f)
{
    pthread_mutex_lock(&f->rec.mu);
    struct fg_profiles *p = f->rec.last;
    pthread_mutex_unlock(&f->rec.mu);
    assert_non_null(p);
    return p;
}

static const char *resource_attr(const struct fg_resource_profiles *rp, const char *key)
{
    static char buf[256];
    for (uint32_t i = 0; i < rp->resource.n_attrs; i++) {
        const struct fg_keyvalue *kv = &rp->resource.attrs[i];
        if (kv->key.len == strlen(key) && memcmp(kv->key.ptr, key, kv->key.len) == 0) {
            snprintf(buf, sizeof(buf), "%.*s", (int)kv->value.u.s.len, kv->value.u.s.ptr);
            return buf;
        }
    }
    return NULL;
}

static const char *str(const struct fg_profiles *p, uint32_t idx)
{
    return fg_dict_get_string(p, idx).ptr;
}

static void test_ingest_folded(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    const char *body = "main;work;leaf 3\nmain;idle 2\nmain;work;leaf 1\n";
    const char *hdr[] = {"X-Scope-OrgID: tenant-a", NULL};
    post(f, "/ingest?name=shop.cpu%7Benv%3Dprod%2Cregion%3Deu%7D&from=1700000000&until="
            "1700000010&sampleRate=100&spyName=gospy",
         "text/plain", hdr, body, strlen(body), &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    fg_buf_free(&r.body);
    struct fg_profiles *p = last_batch(f);
    assert_string_equal(p->tenant, "tenant-a");
    assert_int_equal(p->n_resources, 1);
    const struct fg_resource_profiles *rp = &p->resources[0];
    assert_string_equal(resource_attr(rp, "service.name"), "shop");
    assert_string_equal(resource_attr(rp, "env"), "prod");
    assert_string_equal(resource_attr(rp, "region"), "eu");
    assert_int_equal(rp->n_scopes, 1);
    assert_int_equal(rp->scopes[0].scope.name.len, 5);
    assert_memory_equal(rp->scopes[0].scope.name.ptr, "gospy", 5);
    const struct fg_profile *prof = &rp->scopes[0].profiles[0];
    assert_string_equal(str(p, prof->sample_type.type), "cpu");
    assert_string_equal(str(p, prof->sample_type.unit), "nanoseconds");
    assert_string_equal(str(p, prof->period_type.type), "cpu");
    assert_int_equal(prof->period, 10000000);
    assert_true(prof->time_unix_nano == UINT64_C(1700000000000000000));
    assert_true(prof->duration_nano == UINT64_C(10000000000));
    assert_int_equal(prof->n_samples, 2);
    assert_int_equal(prof->samples[0].values[0], 4 * 10000000);
    assert_int_equal(prof->samples[1].values[0], 2 * 10000000);
}

static void test_ingest_lines_and_units(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    const char *body = "a;b\na;b\na;c\n";
    post(f, "/pyroscope/ingest?name=svc.alloc_objects&format=lines&units=objects&"
            "aggregationType=average",
         NULL, NULL, body, strlen(body), &r);
    assert_int_equal(r.status, 200);
    fg_buf_free(&r.body);
    struct fg_profiles *p = last_batch(f);
    assert_string_equal(p->tenant, "");
    const struct fg_profile *prof = &p->resources[0].scopes[0].profiles[0];
    assert_string_equal(str(p, prof->sample_type.type), "alloc_objects");
    assert_string_equal(str(p, prof->sample_type.unit), "count");
    assert_int_equal(prof->n_samples, 2);
    assert_int_equal(prof->samples[0].values[0], 2);
    assert_int_equal(prof->n_attrs, 1);
    const struct fg_attribute *a = fg_dict_get_attribute(p, prof->attrs[0]);
    assert_string_equal(str(p, a->key), "pyroscope.aggregation");
    assert_true(prof->time_unix_nano > UINT64_C(1700000000000000000)); /* now */
}

static void test_ingest_errors(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    const char *body = "a;b 1\n";
    post(f, "/ingest?from=1", NULL, NULL, body, strlen(body), &r);
    expect_error(&r, 400, "invalid_argument", "name");
    post(f, "/ingest?name=app%7Bk%3Dv", NULL, NULL, body, strlen(body), &r);
    expect_error(&r, 400, "invalid_argument", "unclosed '{'");
    post(f, "/ingest?name=app.bogus", NULL, NULL, body, strlen(body), &r);
    expect_error(&r, 400, "invalid_argument", "unknown profile type suffix");
    post(f, "/ingest?name=app&format=jfr", NULL, NULL, body, strlen(body), &r);
    expect_error(&r, 415, "unimplemented", "JFR is not supported");
    post(f, "/ingest?name=app&format=trie", NULL, NULL, body, strlen(body), &r);
    expect_error(&r, 415, "unimplemented", "not supported");
    post(f, "/ingest?name=app", "binary/octet-stream+tree", NULL, body, strlen(body), &r);
    expect_error(&r, 415, "unimplemented", "not supported");
    post(f, "/ingest?name=app&format=xml", NULL, NULL, body, strlen(body), &r);
    expect_error(&r, 415, "unimplemented", "unknown format");
    post(f, "/ingest?name=app&from=tomorrow", NULL, NULL, body, strlen(body), &r);
    expect_error(&r, 400, "invalid_argument", "from");
    post(f, "/ingest?name=app", NULL, NULL, "a;b x\n", 6, &r);
    expect_error(&r, 400, "invalid_argument", "line 1");
    static const uint8_t gperf[32] = {0, 0, 0, 0, 0, 0, 0, 0, 3};
    post(f, "/ingest?name=app&format=pprof", NULL, NULL, gperf, sizeof(gperf), &r);
    expect_error(&r, 400, "invalid_argument", "gperftools legacy binary CPU profile");
    post(f, "/ingest?name=app", NULL, NULL, gperf, sizeof(gperf), &r);
    expect_error(&r, 400, "invalid_argument", "unsupported profile format");
    const char *heap = "heap profile: 1: 2 [3: 4] @ heapz_v2/1\n";
    post(f, "/ingest?name=app&format=pprof", NULL, NULL, heap, strlen(heap), &r);
    expect_error(&r, 400, "invalid_argument", "legacy text heap profile");
    post(f, "/ingest?name=app&format=pprof", NULL, NULL, "\x0a\xff\xff", 3, &r);
    expect_error(&r, 400, "invalid_argument", "pprof");
    const char *mp = "--B\r\nContent-Disposition: form-data; name=\"profile\"\r\n\r\nx\r\n"
                     "--B\r\nContent-Disposition: form-data; name=\"prev_profile\"\r\n\r\ny\r\n"
                     "--B--\r\n";
    post(f, "/ingest?name=app", "multipart/form-data; boundary=B", NULL, mp, strlen(mp), &r);
    expect_error(&r, 400, "invalid_argument", "prev_profile");
    const char *mp2 = "--B\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--B--";
    post(f, "/ingest?name=app", "multipart/form-data; boundary=B", NULL, mp2, strlen(mp2), &r);
    expect_error(&r, 400, "invalid_argument", "without a \"profile\" field");
    const char *hdr[] = {"X-Scope-OrgID: "
                         "0123456789012345678901234567890123456789012345678901234567890123456789"
                         "0123456789012345678901234567890123456789012345678901234567890123456789",
                         NULL};
    post(f, "/ingest?name=app", NULL, hdr, body, strlen(body), &r);
    expect_error(&r, 400, "invalid_argument", "tenant id longer");
    /* body over the route limit (1 MiB here): the server answers 413 */
    size_t big = (1u << 20) + 10;
    char *b = fg_malloc(big);
    memset(b, 'a', big);
    post(f, "/ingest?name=app", NULL, NULL, b, big, &r);
    assert_int_equal(r.status, 413);
    fg_buf_free(&r.body);
    fg_free(b);
}

static void test_ingest_backpressure(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    const int answers[] = {FG_EFULL, FG_ERETRYABLE, FG_ESTOPPED, FG_EINVAL, FG_EPERMANENT};
    const long statuses[] = {429, 429, 503, 400, 422};
    for (size_t i = 0; i < FG_ARRAY_LEN(answers); i++) {
        pthread_mutex_lock(&f->rec.mu);
        f->rec.answer = answers[i];
        pthread_mutex_unlock(&f->rec.mu);
        post(f, "/ingest?name=app", NULL, NULL, "a;b 1", 5, &r);
        assert_int_equal(r.status, statuses[i]);
        if (statuses[i] == 429 || statuses[i] == 503)
            assert_string_equal(r.retry_after, "1");
        fg_buf_free(&r.body);
    }
    pthread_mutex_lock(&f->rec.mu);
    f->rec.answer = 0;
    pthread_mutex_unlock(&f->rec.mu);
}

static void test_custom_tenant_header(void **state)
{
    struct fixture f;
    assert_int_equal(make_receiver(&f, 0, "X-Tenant"), 0);
    struct reply r;
    const char *hdr[] = {"X-Scope-OrgID: ignored", "X-Tenant: t2", NULL};
    post(&f, "/ingest?name=app", NULL, hdr, "a;b 1", 5, &r);
    assert_int_equal(r.status, 200);
    fg_buf_free(&r.body);
    assert_string_equal(last_batch(&f)->tenant, "t2");
    stop_receiver(&f);
}

/* ---- pprof (needs the converter) ---- */

static uint8_t *corpus(const char *name, size_t *len)
{
    char path[512];
    if (!tu_corpus_path(name, path, sizeof(path))) {
        printf("SKIP: corpus file %s absent\n", name);
        return NULL;
    }
    uint8_t *d = tu_read_file(path, len);
    assert_non_null(d);
    return d;
}

static uint32_t count_profiles(const struct fg_profiles *p)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < p->n_resources; i++)
        for (uint32_t s = 0; s < p->resources[i].n_scopes; s++)
            n += p->resources[i].scopes[s].n_profiles;
    return n;
}

static void test_ingest_pprof_raw_and_gzip(void **state)
{
    struct fixture *f = *state;
    size_t len;
    uint8_t *gz = corpus("go119.cpu.pb.gz", &len);
    if (!gz)
        skip();
    struct reply r;
    post(f, "/ingest?name=goapp.cpu%7Bpod%3Dp1%7D&format=pprof&spyName=gospy",
         "application/octet-stream", NULL, gz, len, &r);
    if (r.status != 200)
        fail_msg("HTTP %ld: %s", r.status, (char *)r.body.data);
    fg_buf_free(&r.body);
    struct fg_profiles *p = last_batch(f);
    assert_int_equal(count_profiles(p), 2); /* samples/count and cpu/nanoseconds */
    assert_string_equal(resource_attr(&p->resources[0], "service.name"), "goapp");
    assert_string_equal(resource_attr(&p->resources[0], "pod"), "p1");
    char *canon_gz = tu_canon(p);

    /* the same bytes gunzipped give the same data */
    struct fg_buf plain;
    fg_buf_init(&plain, 0);
    struct fg_err err = {{0}};
    assert_int_equal(fg_gunzip(gz, len, &plain, &err), 0);
    post(f, "/ingest?name=goapp.cpu%7Bpod%3Dp1%7D&format=pprof&spyName=gospy",
         "application/octet-stream", NULL, plain.data, plain.len, &r);
    assert_int_equal(r.status, 200);
    fg_buf_free(&r.body);
    char *canon_raw = tu_canon(last_batch(f));
    assert_string_equal(canon_gz, canon_raw);
    fg_free(canon_gz);
    fg_free(canon_raw);
    fg_buf_free(&plain);
    fg_free(gz);
}

static void test_ingest_pprof_multipart(void **state)
{
    struct fixture *f = *state;
    size_t len;
    uint8_t *gz = corpus("go119.mutex.pb.gz", &len);
    if (!gz)
        skip();
    struct fg_buf body;
    fg_buf_init(&body, 0);
    fg_buf_append_str(&body, "--XXB\r\nContent-Disposition: form-data; name=\"profile\"; "
                             "filename=\"profile.pprof\"\r\nContent-Type: "
                             "application/octet-stream\r\n\r\n");
    fg_buf_append(&body, gz, len);
    fg_buf_append_str(&body, "\r\n--XXB\r\nContent-Disposition: form-data; name=\""
                             "sample_type_config\"; filename=\"sample_type_config.json\"\r\n\r\n"
                             "{\"contentions\":{\"units\":\"lock_samples\",\"display-name\":"
                             "\"mutex_count\"},\"delay\":{\"units\":\"lock_nanoseconds\","
                             "\"display-name\":\"mutex_duration\"}}\r\n--XXB--\r\n");
    struct reply r;
    post(f, "/ingest?name=goapp", "multipart/form-data; boundary=XXB", NULL, body.data,
         body.len, &r);
    if (r.status != 200)
        fail_msg("HTTP %ld: %s", r.status, (char *)r.body.data);
    fg_buf_free(&r.body);
    struct fg_profiles *p = last_batch(f);
    assert_int_equal(count_profiles(p), 2);
    const struct fg_scope_profiles *sp = &p->resources[0].scopes[0];
    assert_string_equal(str(p, sp->profiles[0].sample_type.type), "mutex_count");
    assert_string_equal(str(p, sp->profiles[0].sample_type.unit), "count");
    assert_string_equal(str(p, sp->profiles[1].sample_type.type), "mutex_duration");
    assert_string_equal(str(p, sp->profiles[1].sample_type.unit), "nanoseconds");
    /* bad sample_type_config JSON */
    body.len = 0;
    fg_buf_append_str(&body, "--XXB\r\nContent-Disposition: form-data; name=\"profile\"\r\n\r\n");
    fg_buf_append(&body, gz, len);
    fg_buf_append_str(&body, "\r\n--XXB\r\nContent-Disposition: form-data; name=\""
                             "sample_type_config\"\r\n\r\n{nope\r\n--XXB--\r\n");
    post(f, "/ingest?name=goapp", "multipart/form-data; boundary=XXB", NULL, body.data,
         body.len, &r);
    expect_error(&r, 400, "invalid_argument", "sample_type_config");
    fg_buf_free(&body);
    fg_free(gz);
}

/* ---- push.v1.PusherService/Push ---- */

static void test_push_errors(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    post(f, "/push.v1.PusherService/Push", "text/plain", NULL, "x", 1, &r);
    expect_error(&r, 415, "unimplemented", "application/proto");
    post(f, "/push.v1.PusherService/Push", "application/grpc", NULL, "x", 1, &r);
    expect_error(&r, 415, "unimplemented", "HTTP/2");
    post(f, "/push.v1.PusherService/Push", "application/proto", NULL, "\xff\xff\xff", 3, &r);
    expect_error(&r, 400, "invalid_argument", "PushRequest");
    post(f, "/push.v1.PusherService/Push", "application/json", NULL, "[1]", 3, &r);
    expect_error(&r, 400, "invalid_argument", "JSON");
    const char *bad64 = "{\"series\":[{\"labels\":[],\"samples\":[{\"rawProfile\":\"***\"}]}]}";
    post(f, "/push.v1.PusherService/Push", "application/json", NULL, bad64, strlen(bad64), &r);
    expect_error(&r, 400, "invalid_argument", "rawProfile");
    const char *badlabel = "{\"series\":[{\"labels\":[{\"name\":\"a-b\",\"value\":\"x\"}],"
                           "\"samples\":[{\"rawProfile\":\"\"}]}]}";
    post(f, "/push.v1.PusherService/Push", "application/json", NULL, badlabel,
         strlen(badlabel), &r);
    expect_error(&r, 400, "invalid_argument", "invalid label name");
    const char *dup = "{\"series\":[{\"labels\":[{\"name\":\"service_name\",\"value\":\"a\"},"
                      "{\"name\":\"service_name\",\"value\":\"b\"}],\"samples\":[]}]}";
    post(f, "/push.v1.PusherService/Push", "application/json", NULL, dup, strlen(dup), &r);
    expect_error(&r, 400, "invalid_argument", "given twice");
    /* empty requests are fine: {} / an empty protobuf */
    int calls = f->rec.calls;
    post(f, "/push.v1.PusherService/Push", "application/json", NULL, "{}", 2, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body.data, "{}");
    fg_buf_free(&r.body);
    post(f, "/push.v1.PusherService/Push", "application/proto", NULL, "", 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    fg_buf_free(&r.body);
    assert_int_equal(f->rec.calls, calls);
}

static void test_push_proto_and_json(void **state)
{
    struct fixture *f = *state;
    size_t len;
    uint8_t *gz = corpus("go119.heap.pb.gz", &len);
    if (!gz)
        skip();
    Types__V1__LabelPair l[4] = {TYPES__V1__LABEL_PAIR__INIT, TYPES__V1__LABEL_PAIR__INIT,
                                 TYPES__V1__LABEL_PAIR__INIT, TYPES__V1__LABEL_PAIR__INIT};
    const char *kv[4][2] = {{"service_name", "api"}, {"__name__", "memory"},
                            {"__delta__", "false"}, {"pyroscope_spy", "gospy"}};
    Types__V1__LabelPair *lp[4];
    for (int i = 0; i < 4; i++) {
        l[i].name = (char *)kv[i][0];
        l[i].value = (char *)kv[i][1];
        lp[i] = &l[i];
    }
    Push__V1__RawSample s = PUSH__V1__RAW_SAMPLE__INIT;
    s.raw_profile.data = gz;
    s.raw_profile.len = len;
    Push__V1__RawSample *sp[1] = {&s};
    Push__V1__RawProfileSeries ser = PUSH__V1__RAW_PROFILE_SERIES__INIT;
    ser.n_labels = 4;
    ser.labels = lp;
    ser.n_samples = 1;
    ser.samples = sp;
    Push__V1__RawProfileSeries *serp[1] = {&ser};
    Push__V1__PushRequest req = PUSH__V1__PUSH_REQUEST__INIT;
    req.n_series = 1;
    req.series = serp;
    size_t n = push__v1__push_request__get_packed_size(&req);
    uint8_t *buf = fg_malloc(n);
    push__v1__push_request__pack(&req, buf);
    struct reply r;
    const char *hdr[] = {"X-Scope-OrgID: t9", "Connect-Protocol-Version: 1", NULL};
    post(f, "/push.v1.PusherService/Push", "application/proto", hdr, buf, n, &r);
    if (r.status != 200)
        fail_msg("HTTP %ld: %s", r.status, (char *)r.body.data);
    assert_int_equal(r.body.len, 0);
    assert_string_equal(r.content_type, "application/proto");
    fg_buf_free(&r.body);
    struct fg_profiles *p = last_batch(f);
    assert_string_equal(p->tenant, "t9");
    assert_int_equal(count_profiles(p), 4);
    const struct fg_resource_profiles *rp = &p->resources[0];
    assert_string_equal(resource_attr(rp, "service.name"), "api");
    assert_string_equal(resource_attr(rp, "pyroscope.profile.family"), "memory");
    assert_null(resource_attr(rp, "__delta__"));
    assert_null(resource_attr(rp, "pyroscope_spy"));
    assert_memory_equal(rp->scopes[0].scope.name.ptr, "gospy", 5);
    char *c1 = tu_canon(p);

    /* the same as Connect JSON with base64 */
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct fg_buf j;
    fg_buf_init(&j, 0);
    fg_buf_append_str(&j, "{\"series\":[{\"labels\":[{\"name\":\"service_name\",\"value\":\"api\"},"
                          "{\"name\":\"__name__\",\"value\":\"memory\"},{\"name\":"
                          "\"pyroscope_spy\",\"value\":\"gospy\"}],\"samples\":[{\"rawProfile\":\"");
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)gz[i] << 16 | (i + 1 < len ? (uint32_t)gz[i + 1] << 8 : 0) |
                     (i + 2 < len ? gz[i + 2] : 0);
        char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], i + 1 < len ? b64[(v >> 6) & 63] : '=',
                     i + 2 < len ? b64[v & 63] : '='};
        fg_buf_append(&j, q, 4);
    }
    fg_buf_append_str(&j, "\",\"ID\":\"abc\"}]}]}");
    post(f, "/push.v1.PusherService/Push", "application/json", hdr, j.data, j.len, &r);
    if (r.status != 200)
        fail_msg("HTTP %ld: %s", r.status, (char *)r.body.data);
    assert_string_equal((char *)r.body.data, "{}");
    fg_buf_free(&r.body);
    char *c2 = tu_canon(last_batch(f));
    assert_string_equal(c1, c2);
    fg_free(c1);
    fg_free(c2);
    fg_buf_free(&j);
    fg_free(buf);
    fg_free(gz);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_name),
        cmocka_unit_test(test_split_type),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_legacy_detection),
        cmocka_unit_test(test_ingest_folded),
        cmocka_unit_test(test_ingest_lines_and_units),
        cmocka_unit_test(test_ingest_errors),
        cmocka_unit_test(test_ingest_backpressure),
        cmocka_unit_test(test_custom_tenant_header),
        cmocka_unit_test(test_ingest_pprof_raw_and_gzip),
        cmocka_unit_test(test_ingest_pprof_multipart),
        cmocka_unit_test(test_push_errors),
        cmocka_unit_test(test_push_proto_and_json),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
