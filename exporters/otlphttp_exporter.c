/* Exporter "otlphttp": OTLP profiles over HTTP with libcurl, gzip, retry with backoff. */
#include "otlphttp_exporter.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_buf.h"
#include "fg_curl_exporter.h"
#include "fg_gzip.h"
#include "fg_log.h"
#include "fg_otlp.h"
#include "fg_otlp_pb.h"
#include "fg_pprof.h"

static const char *const encoding_names[] = {"proto", "json", NULL};
static const char *const compression_names[] = {"gzip", "none", NULL};

static const struct fg_option otlphttp_options[] = {
    FG_OPT_STR("endpoint", struct otlphttp_config, endpoint, NULL,
               "base URL; profiles go to <endpoint>/v1development/profiles"),
    FG_OPT_STR("profiles_endpoint", struct otlphttp_config, profiles_endpoint, NULL,
               "full URL for profiles, overriding endpoint"),
    FG_OPT_CHOICE("encoding", struct otlphttp_config, encoding, "proto", encoding_names,
                  "proto or json"),
    FG_OPT_CHOICE("compression", struct otlphttp_config, compression, "gzip", compression_names,
                  "gzip or none"),
    FG_OPT_MAP("headers", struct otlphttp_config, headers, "extra request headers"),
    FG_OPT_BOOLEAN("include_original_payload", struct otlphttp_config, include_original_payload,
                   "false",
                   "put each profile's pprof encoding (gzip) into original_payload, with "
                   "original_payload_format \"pprof\""),
    FG_EXPORTER_SETTINGS_OPTIONS(struct otlphttp_config, exporter),
    FG_OPT_BLOCK("tls", struct otlphttp_config, tls, fg_tls_client_options,
                 "TLS for https:// endpoints: CA, client certificate, verification"),
    FG_OPT_BLOCK("auth", struct otlphttp_config, auth, fg_auth_options,
                 "send the Authorization of an authenticator extension"),
    FG_OPT_END,
};

static int otlphttp_validate(const void *config, struct fg_err *err)
{
    const struct otlphttp_config *cfg = config;
    if ((!cfg->endpoint || !*cfg->endpoint) && (!cfg->profiles_endpoint || !*cfg->profiles_endpoint))
        return fg_err_set(err, FG_EINVAL, "endpoint: required (or profiles_endpoint)");
    return 0;
}

#define POOL_MAX 32                          /* idle easy handles kept for reuse */
#define RESPONSE_LIMIT ((size_t)4 << 20)     /* WIRE.md §3.1: 4 MiB response cap */
#define BODY_IN_ERROR 160                    /* bytes of a non-decodable error body quoted */

struct otlphttp_exporter {
    struct fg_curl_exporter cx; /* first: base, helper, auth, headers, handle pool */
    char *url;
    struct fg_tls_client *tls;          /* URL and TLS options of each request */
    int encoding;
    int compression;
    bool include_original_payload;
    long timeout_ms;
    char user_agent[64];
};

struct response {
    struct fg_buf body;
    int64_t retry_after_ns;
    bool truncated;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct response *r = userdata;
    size_t n = size * nmemb;
    /* A huge body is of no use; keep the start (for the error message) and go on. */
    if (!r->truncated && fg_buf_append(&r->body, ptr, n) != 0)
        r->truncated = true;
    return n;
}

/* Retry-After: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). */
static int64_t parse_retry_after(const char *v, size_t len)
{
    char text[128];
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
        len--;
    if (len == 0 || len >= sizeof(text))
        return 0;
    memcpy(text, v, len);
    text[len] = '\0';

    bool digits = true;
    for (size_t i = 0; i < len; i++)
        if (text[i] < '0' || text[i] > '9')
            digits = false;
    if (digits) {
        int64_t secs;
        if (len > 9 || fg_parse_int(text, &secs) != 0)
            return 0;
        return secs * 1000000000;
    }
    time_t when = curl_getdate(text, NULL);
    if (when == (time_t)-1)
        return 0;
    time_t now = time(NULL);
    return when > now ? (int64_t)(when - now) * 1000000000 : 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct response *r = userdata;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    if (n > sizeof(name) - 1 && strncasecmp(buf, name, sizeof(name) - 1) == 0)
        r->retry_after_ns = parse_retry_after(buf + sizeof(name) - 1, n - (sizeof(name) - 1));
    return n;
}

/* Copies up to max bytes of printable text for an error message. */
static void quote_body(const uint8_t *p, size_t len, char *out, size_t outsize)
{
    size_t j = 0;
    for (size_t i = 0; i < len && i < BODY_IN_ERROR && j + 1 < outsize; i++)
        out[j++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
    out[j] = '\0';
}

static const char *json_str(json_t *obj, const char *camel, const char *snake)
{
    json_t *v = json_object_get(obj, camel);
    if (!v)
        v = json_object_get(obj, snake);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Proto3 JSON writes int64 as a string; accept a number too. */
static int64_t json_int64(json_t *obj, const char *camel, const char *snake)
{
    json_t *v = json_object_get(obj, camel);
    if (!v)
        v = json_object_get(obj, snake);
    if (json_is_integer(v))
        return json_integer_value(v);
    int64_t n = 0;
    if (json_is_string(v) && fg_parse_int(json_string_value(v), &n) == 0)
        return n;
    return 0;
}

/* A 2xx body: log partial success; never turns a success into a failure. */
static void check_success_body(struct otlphttp_exporter *x, const struct fg_buf *body)
{
    if (body->len == 0)
        return;
    if (x->encoding == ENCODING_PROTO) {
        pb_response *resp =
            opentelemetry__proto__collector__profiles__v1development__export_profiles_service_response__unpack(
                NULL, body->len, body->data);
        if (!resp) {
            fg_log(FG_LOG_DEBUG, x->cx.base.id, "success response body does not decode");
            return;
        }
        const pb_partial_success *ps = resp->partial_success;
        if (ps && ps->rejected_profiles > 0)
            fg_log(FG_LOG_WARN, x->cx.base.id, "server rejected %lld profiles: %s",
                   (long long)ps->rejected_profiles,
                   ps->error_message ? ps->error_message : "");
        else if (ps && ps->error_message && *ps->error_message)
            fg_log(FG_LOG_WARN, x->cx.base.id, "server warning: %s", ps->error_message);
        opentelemetry__proto__collector__profiles__v1development__export_profiles_service_response__free_unpacked(
            resp, NULL);
        return;
    }
    json_t *root = json_loadb((const char *)body->data, body->len, 0, NULL);
    json_t *ps = json_object_get(root, "partialSuccess");
    if (!ps)
        ps = json_object_get(root, "partial_success");
    if (json_is_object(ps)) {
        int64_t rejected = json_int64(ps, "rejectedProfiles", "rejected_profiles");
        const char *msg = json_str(ps, "errorMessage", "error_message");
        if (rejected > 0)
            fg_log(FG_LOG_WARN, x->cx.base.id, "server rejected %lld profiles: %s",
                   (long long)rejected, msg ? msg : "");
        else if (msg && *msg)
            fg_log(FG_LOG_WARN, x->cx.base.id, "server warning: %s", msg);
    }
    json_decref(root);
}

/* An error body: google.rpc.Status (proto or JSON per our Content-Type), else its text. */
static void describe_error_body(struct otlphttp_exporter *x, const struct fg_buf *body, char *out,
                                size_t outsize)
{
    out[0] = '\0';
    if (body->len == 0)
        return;
    if (x->encoding == ENCODING_PROTO) {
        pb_status *st = google__rpc__status__unpack(NULL, body->len, body->data);
        if (st && st->message && *st->message) {
            snprintf(out, outsize, "%s", st->message);
            google__rpc__status__free_unpacked(st, NULL);
            return;
        }
        if (st)
            google__rpc__status__free_unpacked(st, NULL);
    } else {
        json_t *root = json_loadb((const char *)body->data, body->len, 0, NULL);
        const char *msg = json_is_object(root) ? json_str(root, "message", "message") : NULL;
        if (msg && *msg) {
            snprintf(out, outsize, "%s", msg);
            json_decref(root);
            return;
        }
        json_decref(root);
    }
    quote_body(body->data, body->len, out, outsize);
}

static bool curl_error_is_permanent(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return true;
    default:
        return false;
    }
}

static int otlphttp_send(void *ctx, struct fg_profiles *batch, int64_t *retry_after_ns,
                         struct fg_err *err)
{
    struct otlphttp_exporter *x = ctx;
    struct fg_buf payload, zipped;
    struct response resp;
    struct fg_profiles *with_payload = NULL;
    CURL *h = NULL;
    struct fg_curl_conn conn = {NULL, false};
    int rc;

    fg_buf_init(&payload, 0);
    fg_buf_init(&zipped, 0);
    memset(&resp, 0, sizeof(resp));
    fg_buf_init(&resp.body, RESPONSE_LIMIT);
    if ((rc = fg_curl_global_init(err)) != 0)
        goto fail;

    if (x->include_original_payload) {
        /* the queued batch may be shared with other exporters: attach to a copy (redone on
         * a retry, which keeps the queue free of the larger form) */
        rc = fg_pprof_copy_with_original_payload(batch, &with_payload, err);
        if (rc != 0) {
            rc = rc == FG_ENOMEM ? FG_ERETRYABLE : FG_EPERMANENT;
            goto fail;
        }
        batch = with_payload;
    }

    rc = x->encoding == ENCODING_JSON ? fg_otlp_encode_json(batch, &payload)
                                      : fg_otlp_encode_proto(batch, &payload);
    if (rc != 0) {
        rc = fg_err_set(err, FG_EPERMANENT, "cannot encode batch: %s", fg_strerror(rc));
        goto fail;
    }
    const struct fg_buf *body = &payload;
    if (x->compression == COMPRESSION_GZIP) {
        rc = fg_gzip(payload.data, payload.len, FG_GZIP_LEVEL, &zipped);
        if (rc != 0) {
            rc = fg_err_set(err, FG_ERETRYABLE, "gzip: %s", fg_strerror(rc));
            goto fail;
        }
        body = &zipped;
    }

    if (fg_curl_pool_take(&x->cx.pool, &conn) == 0)
        h = conn.h;
    if (!h) {
        rc = fg_err_set(err, FG_ERETRYABLE, "cannot create a curl handle");
        goto fail;
    }
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, x->url);
    if (fg_tls_client_apply(x->tls, h, x->url) != 0) {
        rc = fg_err_set(err, FG_EPERMANENT, "tls: cannot apply server_name_override");
        goto fail;
    }
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->len ? (const char *)body->data : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->cx.headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, x->user_agent);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, x->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp);

    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        /* Refused, reset, timed out: the server may come back (WIRE.md §3.3). */
        rc = fg_err_set(err, curl_error_is_permanent(cc) ? FG_EPERMANENT : FG_ERETRYABLE,
                        "POST %s: %s", x->url, curl_err[0] ? curl_err : curl_easy_strerror(cc));
        goto fail;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        check_success_body(x, &resp.body);
        rc = 0;
        goto fail;
    }
    char detail[200];
    describe_error_body(x, &resp.body, detail, sizeof(detail));
    if (status == 429 || status == 502 || status == 503 || status == 504) {
        *retry_after_ns = resp.retry_after_ns;
        rc = fg_err_set(err, FG_ERETRYABLE, "POST %s: HTTP %ld%s%s", x->url, status,
                        detail[0] ? ": " : "", detail);
    } else {
        rc = fg_err_set(err, FG_EPERMANENT, "POST %s: HTTP %ld%s%s", x->url, status,
                        detail[0] ? ": " : "", detail);
    }

fail:
    if (h) {
        /* The headers list and error buffer belong to us and this call; unhook them. */
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
        conn.h = h;
        fg_curl_pool_give(&x->cx.pool, &conn);
    }
    fg_buf_free(&resp.body);
    fg_buf_free(&zipped);
    fg_buf_free(&payload);
    fg_profiles_unref(with_payload);
    return rc;
}

static struct otlphttp_exporter *from_component(struct fg_component *c)
{
    return (struct otlphttp_exporter *)c;
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    return fg_curl_add_header(list, name, value, false);
}

static void otlphttp_destroy(struct fg_component *c)
{
    struct otlphttp_exporter *x = from_component(c);
    if (!x)
        return;
    fg_curl_exporter_release(&x->cx);
    fg_tls_client_free(x->tls);
    fg_free(x->url);
    fg_free(x);
}

static const struct fg_component_ops otlphttp_ops = {
    .start = fg_curl_exporter_start,
    .shutdown = fg_curl_exporter_shutdown,
    .destroy = otlphttp_destroy,
};


static int otlphttp_create(const struct fg_create_args *args, struct fg_component **out,
                           struct fg_err *err)
{
    const struct otlphttp_config *cfg = args->config;
    struct otlphttp_exporter *x = NULL;
    int rc;

    *out = NULL;
    rc = otlphttp_validate(cfg, err);
    if (rc != 0)
        return rc;

    x = fg_calloc(1, sizeof(*x));
    if (!x)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    if (fg_curl_exporter_init(&x->cx, &fg_otlphttp_exporter_factory, &otlphttp_ops, args->id,
                              POOL_MAX, "Authorization", false) != 0) {
        fg_free(x);
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    }
    x->encoding = cfg->encoding;
    x->compression = cfg->compression;
    x->include_original_payload = cfg->include_original_payload;
    x->timeout_ms = (long)(cfg->exporter.timeout_ns / 1000000);
    if (x->timeout_ms < 1)
        x->timeout_ms = 1;
    snprintf(x->user_agent, sizeof(x->user_agent), "flamegate/%s", FG_VERSION);

    struct fg_buf url;
    fg_buf_init(&url, 0);
    if (cfg->profiles_endpoint && *cfg->profiles_endpoint) {
        rc = fg_buf_append_str(&url, cfg->profiles_endpoint);
    } else {
        size_t len = strlen(cfg->endpoint);
        while (len > 0 && cfg->endpoint[len - 1] == '/')
            len--;
        rc = fg_buf_append(&url, cfg->endpoint, len);
        if (rc == 0)
            rc = fg_buf_append_str(&url, "/v1development/profiles");
    }
    if (rc == 0)
        rc = fg_buf_append(&url, "", 1);
    x->url = rc == 0 ? (char *)fg_buf_steal(&url, NULL) : NULL;
    fg_buf_free(&url);
    if (!x->url) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }

    if ((rc = fg_tls_client_new(&cfg->tls, x->url, &x->tls, err)) != 0 ||
        (rc = fg_auth_resolve(args, &cfg->auth, &x->cx.auth, err)) != 0)
        goto fail;
    rc = add_header(&x->cx.headers, "Content-Type",
                    x->encoding == ENCODING_JSON ? "application/json" : "application/x-protobuf");
    if (rc == 0 && x->compression == COMPRESSION_GZIP)
        rc = add_header(&x->cx.headers, "Content-Encoding", "gzip");
    /* No "Expect: 100-continue" round trip for large bodies. */
    if (rc == 0) {
        struct curl_slist *l = curl_slist_append(x->cx.headers, "Expect:");
        rc = l ? 0 : FG_ENOMEM;
        if (l)
            x->cx.headers = l;
    }
    for (size_t i = 0; rc == 0 && i < cfg->headers.n; i++) {
        const char *k = cfg->headers.keys[i], *v = cfg->headers.values[i];
        if (strpbrk(k, ":\r\n") || strpbrk(v ? v : "", "\r\n")) {
            rc = fg_err_set(err, FG_EINVAL, "headers.%s: invalid header name or value", k);
            goto fail;
        }
        rc = add_header(&x->cx.headers, k, v ? v : "");
    }
    if (rc != 0) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }

    rc = fg_exporter_new(x->cx.base.id, &cfg->exporter, otlphttp_send, x, &x->cx.helper, err);
    if (rc != 0)
        goto fail;
    *out = &x->cx.base;
    return 0;

fail:
    otlphttp_destroy(&x->cx.base);
    return rc;
}

const struct fg_factory fg_otlphttp_exporter_factory = {
    .type = "otlphttp",
    .kind = FG_KIND_EXPORTER,
    .config_size = sizeof(struct otlphttp_config),
    .options = otlphttp_options,
    .validate = otlphttp_validate,
    .create = otlphttp_create,
};
