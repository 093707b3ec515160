/* Exporter "otlp": OTLP profiles over gRPC (unary Export on HTTP/2, via libcurl), gzip
 * message compression, grpc-status from the trailers, retry with backoff (WIRE.md §3.2). */
#include "otlp_exporter.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fg_alloc.h"
#include "fg_base64.h"
#include "fg_buf.h"
#include "fg_curl_exporter.h"
#include "fg_gzip.h"
#include "fg_log.h"
#include "fg_otlp.h"
#include "fg_otlp_pb.h"
#include "fg_pprof.h"
#include "fg_text.h"

#define EXPORT_PATH "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
#define POOL_MAX 64                      /* idle easy handles kept: one per worker */
#define RESPONSE_LIMIT ((size_t)4 << 20) /* WIRE.md §3.1: 4 MiB response cap */
#define REQUEST_LIMIT ((size_t)64 << 20) /* WIRE.md §3.1: clients cap requests at 64 MiB */

static const char *const compression_names[] = {"gzip", "none", NULL};

static const struct fg_option otlp_options[] = {
    FG_OPT_STR("endpoint", struct otlp_config, endpoint, NULL,
               "host:port (TLS unless tls.insecure), http://host:port (h2c) or "
               "https://host:port"),
    FG_OPT_BLOCK("tls", struct otlp_config, tls, fg_tls_client_options,
                 "transport security (insecure: h2c for an endpoint without a scheme)"),
    FG_OPT_CHOICE("compression", struct otlp_config, compression, "gzip", compression_names,
                  "gzip or none (grpc-encoding)"),
    FG_OPT_MAP("headers", struct otlp_config, headers, "gRPC metadata sent with every call"),
    FG_OPT_BOOLEAN("include_original_payload", struct otlp_config, include_original_payload,
                   "false",
                   "put each profile's pprof encoding (gzip) into original_payload, with "
                   "original_payload_format \"pprof\""),
    FG_EXPORTER_SETTINGS_OPTIONS(struct otlp_config, exporter),
    FG_OPT_BLOCK("auth", struct otlp_config, auth, fg_auth_options,
                 "send the Authorization of an authenticator extension"),
    FG_OPT_END,
};

/* ---- gRPC client helpers (exposed to the unit test through otlp_exporter.h) ---- */

void fg__grpcc_frame_prefix(uint8_t out[5], bool compressed, uint32_t len)
{
    out[0] = compressed ? 1 : 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

int fg__grpcc_unframe(const uint8_t *body, size_t len, const char *encoding, struct fg_buf *msg,
                      struct fg_err *err)
{
    if (len == 0)
        return 0;
    if (len < 5)
        return fg_err_set(err, FG_EINVAL, "response: %zu bytes, shorter than a message prefix",
                          len);
    if (body[0] > 1)
        return fg_err_set(err, FG_EINVAL, "response: bad compressed flag %u", body[0]);
    uint32_t n = (uint32_t)body[1] << 24 | (uint32_t)body[2] << 16 | (uint32_t)body[3] << 8 |
                 (uint32_t)body[4];
    if (n != len - 5)
        return fg_err_set(err, FG_EINVAL,
                          "response: message prefix says %u bytes, body holds %zu", n, len - 5);
    if (body[0] == 0)
        return fg_buf_append(msg, body + 5, n) == 0
                   ? 0
                   : fg_err_set(err, FG_ETOOBIG, "response message of %u bytes too large", n);
    if (!encoding || strcasecmp(encoding, "gzip") != 0)
        return fg_err_set(err, FG_EINVAL, "response: compressed message with grpc-encoding '%s'",
                          encoding ? encoding : "");
    return fg_gunzip(body + 5, n, msg, err);
}

void fg__grpcc_timeout_value(int64_t ns, char *out, size_t size)
{
    /* The finest unit whose value fits the 8 digits gRPC allows. */
    static const struct {
        char unit;
        int64_t ns;
    } units[] = {{'n', 1},
                 {'u', 1000},
                 {'m', 1000000},
                 {'S', INT64_C(1000000000)},
                 {'M', INT64_C(60000000000)},
                 {'H', INT64_C(3600000000000)}};
    if (ns < 1)
        ns = 1;
    for (size_t i = 0; i < FG_ARRAY_LEN(units); i++) {
        int64_t v = ns / units[i].ns + (ns % units[i].ns != 0);
        if (v <= 99999999 || i + 1 == FG_ARRAY_LEN(units)) {
            snprintf(out, size, "%lld%c", (long long)FG_MIN(v, 99999999), units[i].unit);
            return;
        }
    }
}

/* grpc-message is percent-encoded UTF-8; a bad escape is kept as it is, and decoded control
 * bytes (a "%00" too) become '.' so the message stays one printable log line. */
static void percent_decode(const char *v, size_t len, char *out, size_t size)
{
    size_t n = 0;
    (void)fg_percent_decode(v, len, out, size, 0, &n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20)
            out[i] = '.';
}

int fg__grpcc_status_details(const char *b64, size_t len, int64_t *retry_delay_ns, char *msg,
                             size_t msgsize)
{
    struct fg_buf raw;
    pb_status *st = NULL;
    int rc;

    *retry_delay_ns = -1;
    fg_buf_init(&raw, RESPONSE_LIMIT);
    /* -bin metadata: base64, padding optional (gRPC's PROTOCOL-HTTP2.md) */
    rc = fg_buf_reserve(&raw, FG_BASE64_DECODED_MAX(len));
    if (rc == 0)
        rc = fg_base64_decode(b64, len, FG_BASE64_LENIENT, raw.data, FG_BASE64_DECODED_MAX(len),
                              &raw.len);
    if (rc != 0)
        goto fail;
    st = google__rpc__status__unpack(NULL, raw.len, raw.data);
    if (!st) {
        rc = FG_EINVAL;
        goto fail;
    }
    if (msg && msgsize > 0)
        snprintf(msg, msgsize, "%s", st->message ? st->message : "");
    static const char retry_type[] = "google.rpc.RetryInfo";
    for (size_t i = 0; i < st->n_details; i++) {
        const Google__Protobuf__Any *any = st->details[i];
        const char *t = any && any->type_url ? any->type_url : "";
        const char *slash = strrchr(t, '/');
        if (strcmp(slash ? slash + 1 : t, retry_type) != 0)
            continue;
        Google__Rpc__RetryInfo *ri =
            google__rpc__retry_info__unpack(NULL, any->value.len, any->value.data);
        if (!ri)
            continue;
        int64_t ns = 0;
        if (ri->retry_delay && ri->retry_delay->seconds >= 0 && ri->retry_delay->nanos >= 0 &&
            ri->retry_delay->seconds < INT64_C(86400) * 365)
            ns = ri->retry_delay->seconds * 1000000000 + ri->retry_delay->nanos;
        *retry_delay_ns = ns;
        google__rpc__retry_info__free_unpacked(ri, NULL);
        break;
    }
    rc = 0;
fail:
    if (st)
        google__rpc__status__free_unpacked(st, NULL);
    fg_buf_free(&raw);
    return rc;
}

/* Matches "name:" at the start of a header line; returns the trimmed value. */
static bool header_value(const char *line, size_t len, const char *name, const char **v,
                         size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    const char *p = line + n + 1, *end = line + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *v = p;
    *vlen = (size_t)(end - p);
    return true;
}

void fg__grpcc_header_line(struct fg__grpcc_result *r, const char *line, size_t len)
{
    const char *v;
    size_t vlen;
    char text[32];

    if (header_value(line, len, "grpc-status", &v, &vlen)) {
        int64_t code = -1;
        if (vlen > 0 && vlen < sizeof(text)) {
            memcpy(text, v, vlen);
            text[vlen] = '\0';
            if (fg_parse_int(text, &code) != 0 || code < 0 || code > 1000)
                code = -1;
        }
        r->have_status = true;
        r->status = code < 0 ? FG_GRPC_UNKNOWN : (int)code;
    } else if (header_value(line, len, "grpc-message", &v, &vlen)) {
        percent_decode(v, vlen, r->message, sizeof(r->message));
    } else if (header_value(line, len, "grpc-status-details-bin", &v, &vlen)) {
        char msg[sizeof(r->message)];
        int64_t delay = -1;
        if (fg__grpcc_status_details(v, vlen, &delay, msg, sizeof(msg)) == 0) {
            if (delay >= 0) {
                r->have_retry_info = true;
                r->retry_delay_ns = delay;
            }
            if (!r->message[0])
                snprintf(r->message, sizeof(r->message), "%s", msg);
        }
    } else if (header_value(line, len, "grpc-encoding", &v, &vlen)) {
        snprintf(r->encoding, sizeof(r->encoding), "%.*s", (int)vlen, v);
    } else if (header_value(line, len, "content-type", &v, &vlen)) {
        snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int)vlen, v);
    }
}

bool fg__grpcc_retryable(int status, bool have_retry_info)
{
    switch (status) {
    case FG_GRPC_CANCELLED:
    case FG_GRPC_DEADLINE_EXCEEDED:
    case FG_GRPC_ABORTED:
    case FG_GRPC_OUT_OF_RANGE:
    case FG_GRPC_UNAVAILABLE:
    case FG_GRPC_DATA_LOSS:
        return true;
    case FG_GRPC_RESOURCE_EXHAUSTED:
        return have_retry_info;
    default:
        return false;
    }
}

int fg__grpcc_status_from_http(long http_status)
{
    switch (http_status) {
    case 400:
        return FG_GRPC_INTERNAL;
    case 401:
        return FG_GRPC_UNAUTHENTICATED;
    case 403:
        return 7; /* PERMISSION_DENIED */
    case 404:
        return FG_GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return FG_GRPC_UNAVAILABLE;
    default:
        return FG_GRPC_UNKNOWN;
    }
}

const char *fg__grpcc_status_name(int status)
{
    static const char *const names[] = {
        "OK",                "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED", "NOT_FOUND",         "ALREADY_EXISTS", "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",     "OUT_OF_RANGE",
        "UNIMPLEMENTED",     "INTERNAL",          "UNAVAILABLE",    "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    return status >= 0 && (size_t)status < FG_ARRAY_LEN(names) ? names[status] : "UNKNOWN_CODE";
}

/* ---- the exporter ---- */

struct otlp_exporter {
    struct fg_curl_exporter cx; /* first: base, helper, auth, headers, handle pool */
    char *url;                /* scheme://host:port/<Export path> */
    bool tls;
    long http_version;        /* CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE or _2TLS */
    int compression;
    bool include_original_payload;
    int64_t timeout_ns;
    struct fg_tls_client *tls_client; /* CA, client certificate, verification */
    char user_agent[64];
};

struct response {
    struct fg_buf body;
    bool truncated;
    struct fg__grpcc_result grpc;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct response *r = userdata;
    size_t n = size * nmemb;
    if (!r->truncated && fg_buf_append(&r->body, ptr, n) != 0)
        r->truncated = true;
    return n;
}

/* Headers, then (HTTP/2) the trailers after the body: libcurl gives both here. */
static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct response *r = userdata;
    size_t n = size * nitems;
    fg__grpcc_header_line(&r->grpc, buf, n);
    return n;
}

/* The OK response message: partial success is logged, never turned into a failure. */
static void check_response(struct otlp_exporter *x, const struct response *resp)
{
    struct fg_buf msg;
    struct fg_err err = {{0}};
    fg_buf_init(&msg, RESPONSE_LIMIT);
    if (resp->truncated || fg__grpcc_unframe(resp->body.data, resp->body.len,
                                             resp->grpc.encoding, &msg, &err) != 0) {
        fg_log(FG_LOG_DEBUG, x->cx.base.id, "OK response message unreadable: %s",
               resp->truncated ? "too large" : err.msg);
        goto done;
    }
    if (msg.len == 0)
        goto done;
    pb_response *pr =
        opentelemetry__proto__collector__profiles__v1development__export_profiles_service_response__unpack(
            NULL, msg.len, msg.data);
    if (!pr) {
        fg_log(FG_LOG_DEBUG, x->cx.base.id, "OK response message does not decode");
        goto done;
    }
    const pb_partial_success *ps = pr->partial_success;
    if (ps && ps->rejected_profiles > 0)
        fg_log(FG_LOG_WARN, x->cx.base.id, "server rejected %lld profiles: %s",
               (long long)ps->rejected_profiles, ps->error_message ? ps->error_message : "");
    else if (ps && ps->error_message && *ps->error_message)
        fg_log(FG_LOG_WARN, x->cx.base.id, "server warning: %s", ps->error_message);
    opentelemetry__proto__collector__profiles__v1development__export_profiles_service_response__free_unpacked(
        pr, NULL);
done:
    fg_buf_free(&msg);
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

/* Frame + protobuf (gzip'd when configured) into body: the 5 prefix bytes go first and are
 * filled in once the message length is known, so nothing is copied. */
static int build_body(struct otlp_exporter *x, const struct fg_profiles *batch,
                      struct fg_buf *body, struct fg_err *err)
{
    static const uint8_t zero[5];
    struct fg_buf payload;
    int rc;

    fg_buf_init(&payload, REQUEST_LIMIT);
    if (fg_buf_append(body, zero, sizeof(zero)) != 0)
        return fg_err_set(err, FG_ERETRYABLE, "out of memory");
    bool gzip = x->compression == OTLP_COMPRESSION_GZIP;
    rc = fg_otlp_encode_proto(batch, gzip ? &payload : body);
    if (rc != 0) {
        rc = fg_err_set(err, FG_EPERMANENT, "cannot encode batch: %s%s", fg_strerror(rc),
                        rc == FG_ETOOBIG ? " (over the 64 MiB request limit)" : "");
        goto fail;
    }
    if (gzip) {
        rc = fg_gzip(payload.data, payload.len, FG_GZIP_LEVEL, body);
        if (rc != 0) {
            rc = fg_err_set(err, FG_ERETRYABLE, "gzip: %s", fg_strerror(rc));
            goto fail;
        }
    }
    fg__grpcc_frame_prefix(body->data, gzip, (uint32_t)(body->len - 5));
    rc = 0;
fail:
    fg_buf_free(&payload);
    return rc;
}

static void response_reset(struct response *r)
{
    r->body.len = 0;
    r->truncated = false;
    memset(&r->grpc, 0, sizeof(r->grpc));
}

/* One POST on h. Returns the curl code; *version is the HTTP version the answer came in,
 * *new_conns the number of connections curl had to open for it. */
static CURLcode perform(struct otlp_exporter *x, CURL *h, long want_version,
                        const struct fg_buf *body, struct response *resp, char *curl_err,
                        long *version, long *new_conns)
{
    curl_err[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, x->url);
    if (fg_tls_client_apply(x->tls_client, h, x->url) != 0)
        return CURLE_URL_MALFORMAT;
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, want_version);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)body->data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->cx.headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, x->user_agent);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)FG_MAX(1, x->timeout_ns / 1000000));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL); /* it lives on the caller's stack */
    *version = 0;
    *new_conns = 0;
    curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, version);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, new_conns);
    return cc;
}

static int otlp_send(void *ctx, struct fg_profiles *batch, int64_t *retry_after_ns,
                     struct fg_err *err)
{
    struct otlp_exporter *x = ctx;
    struct fg_buf body;
    struct response resp;
    struct fg_curl_conn c = {NULL, false};
    struct fg_profiles *with_payload = NULL;
    char curl_err[CURL_ERROR_SIZE];
    int rc;

    fg_buf_init(&body, REQUEST_LIMIT + 5);
    memset(&resp, 0, sizeof(resp));
    fg_buf_init(&resp.body, RESPONSE_LIMIT);
    if ((rc = fg_curl_global_init(err)) != 0)
        goto fail;
    if (!(curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_HTTP2)) {
        rc = fg_err_set(err, FG_EPERMANENT, "libcurl was built without HTTP/2");
        goto fail;
    }

    if (x->include_original_payload) {
        /* The queued batch may be shared with other exporters: attach to a copy, redone on
         * a retry, so the queue keeps the smaller form. */
        rc = fg_pprof_copy_with_original_payload(batch, &with_payload, err);
        if (rc != 0) {
            rc = rc == FG_ENOMEM ? FG_ERETRYABLE : FG_EPERMANENT;
            goto fail;
        }
        batch = with_payload;
    }
    rc = build_body(x, batch, &body, err);
    if (rc != 0)
        goto fail;
    if (fg_curl_pool_take(&x->cx.pool, &c) != 0) {
        rc = fg_err_set(err, FG_ERETRYABLE, "cannot create a curl handle");
        goto fail;
    }
    /* libcurl 7.88 (Debian 12) breaks a reused prior-knowledge connection ("Error in the
     * HTTP2 framing layer", curl issue #10634, fixed in 8.0): on a warm handle ask for plain
     * HTTP/2, which reuses the open h2c connection as it is. Should curl have to connect
     * anew, it then tries HTTP/1.1 Upgrade, which a gRPC server refuses without handling
     * the call, so the request is sent again at once with prior knowledge. */
    bool warm = c.warm && !x->tls;
    long version, new_conns;
    CURLcode cc = perform(x, c.h, warm ? CURL_HTTP_VERSION_2_0 : x->http_version, &body, &resp,
                          curl_err, &version, &new_conns);
    if (warm && new_conns > 0 && (cc != CURLE_OK || version != CURL_HTTP_VERSION_2_0)) {
        fg_log(FG_LOG_DEBUG, x->cx.base.id, "connection gone; connecting again (prior knowledge)");
        curl_easy_cleanup(c.h);
        c.h = curl_easy_init();
        if (!c.h) {
            rc = fg_err_set(err, FG_ERETRYABLE, "cannot create a curl handle");
            goto fail;
        }
        response_reset(&resp);
        cc = perform(x, c.h, x->http_version, &body, &resp, curl_err, &version, &new_conns);
    }
    c.warm = cc == CURLE_OK && version == CURL_HTTP_VERSION_2_0;
    if (cc != CURLE_OK) {
        /* Refused, reset, timed out, stream closed: the server may come back. */
        rc = fg_err_set(err, curl_error_is_permanent(cc) ? FG_EPERMANENT : FG_ERETRYABLE,
                        "Export to %s: %s", x->url,
                        curl_err[0] ? curl_err : curl_easy_strerror(cc));
        goto fail;
    }
    long http_status = 0;
    curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &http_status);
    if (version != CURL_HTTP_VERSION_2_0) {
        rc = fg_err_set(err, FG_EPERMANENT,
                        "Export to %s: the server did not answer over HTTP/2 (HTTP %ld)",
                        x->url, http_status);
        goto fail;
    }

    int status;
    const char *message = resp.grpc.message;
    if (http_status != 200) {
        /* Not a gRPC answer (a proxy's error page, say): map the HTTP status. */
        status = fg__grpcc_status_from_http(http_status);
        message = "";
    } else if (!resp.grpc.have_status) {
        status = FG_GRPC_INTERNAL; /* stream ended without trailers */
        message = "no grpc-status in the response";
    } else {
        status = resp.grpc.status;
    }
    if (status == FG_GRPC_OK) {
        check_response(x, &resp);
        rc = 0;
        goto fail;
    }

    bool retry = fg__grpcc_retryable(status, resp.grpc.have_retry_info);
    if (retry && resp.grpc.have_retry_info)
        *retry_after_ns = resp.grpc.retry_delay_ns;
    char http_note[24] = "";
    if (http_status != 200)
        snprintf(http_note, sizeof(http_note), " (HTTP %ld)", http_status);
    rc = fg_err_set(err, retry ? FG_ERETRYABLE : FG_EPERMANENT, "Export to %s: %s%s%s%s",
                    x->url, fg__grpcc_status_name(status), http_note, message[0] ? ": " : "",
                    message);

fail:
    if (c.h)
        fg_curl_pool_give(&x->cx.pool, &c);
    fg_profiles_unref(with_payload);
    fg_buf_free(&resp.body);
    fg_buf_free(&body);
    return rc;
}

static struct otlp_exporter *from_component(struct fg_component *c)
{
    return (struct otlp_exporter *)c;
}

static void otlp_destroy(struct fg_component *c)
{
    struct otlp_exporter *x = from_component(c);
    if (!x)
        return;
    fg_curl_exporter_release(&x->cx);
    fg_tls_client_free(x->tls_client);
    fg_free(x->url);
    fg_free(x);
}

static const struct fg_component_ops otlp_ops = {
    .start = fg_curl_exporter_start,
    .shutdown = fg_curl_exporter_shutdown,
    .destroy = otlp_destroy,
};

/* gRPC metadata: lowercase names, "name;" for an empty value. */
static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    return fg_curl_add_header(list, name, value, true);
}

/* endpoint → scheme, authority; the gRPC path is fixed, so any other path is an error. */
static int parse_endpoint(const struct otlp_config *cfg, bool *tls, const char **host,
                          size_t *host_len, struct fg_err *err)
{
    const char *e = cfg->endpoint;
    if (!e || !*e)
        return fg_err_set(err, FG_EINVAL, "endpoint: required");
    if (strncasecmp(e, "http://", 7) == 0) {
        *tls = false;
        e += 7;
    } else if (strncasecmp(e, "https://", 8) == 0) {
        *tls = true;
        e += 8;
    } else if (strstr(e, "://")) {
        return fg_err_set(err, FG_EINVAL, "endpoint: '%s': scheme must be http or https",
                          cfg->endpoint);
    } else {
        *tls = !cfg->tls.insecure;
    }
    size_t len = strlen(e);
    while (len > 0 && e[len - 1] == '/')
        len--;
    if (len == 0 || memchr(e, '/', len) || strpbrk(e, " \t\r\n?#@"))
        return fg_err_set(err, FG_EINVAL, "endpoint: '%s': want host:port (no path)",
                          cfg->endpoint);
    *host = e;
    *host_len = len;
    return 0;
}

static int otlp_validate(const void *config, struct fg_err *err)
{
    const struct otlp_config *cfg = config;
    bool tls;
    const char *host;
    size_t host_len;
    int rc = parse_endpoint(cfg, &tls, &host, &host_len, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < cfg->headers.n; i++) {
        const char *k = cfg->headers.keys[i], *v = cfg->headers.values[i];
        if (!*k || strpbrk(k, ": \t\r\n") || strpbrk(v ? v : "", "\r\n"))
            return fg_err_set(err, FG_EINVAL, "headers.%s: invalid metadata key or value", k);
        if (strncasecmp(k, "grpc-", 5) == 0 || strcasecmp(k, "te") == 0 ||
            strcasecmp(k, "content-type") == 0)
            return fg_err_set(err, FG_EINVAL, "headers.%s: reserved by gRPC", k);
    }
    return 0;
}

static int otlp_create(const struct fg_create_args *args, struct fg_component **out,
                       struct fg_err *err)
{
    const struct otlp_config *cfg = args->config;
    struct otlp_exporter *x = NULL;
    bool tls;
    const char *host;
    size_t host_len;
    int rc;

    *out = NULL;
    rc = otlp_validate(cfg, err);
    if (rc != 0)
        return rc;
    rc = parse_endpoint(cfg, &tls, &host, &host_len, err);
    if (rc != 0)
        return rc;

    x = fg_calloc(1, sizeof(*x));
    if (!x)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    if (fg_curl_exporter_init(&x->cx, &fg_otlp_exporter_factory, &otlp_ops, args->id,
                              POOL_MAX, "authorization", true) != 0) {
        fg_free(x);
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    }
    x->compression = cfg->compression;
    x->include_original_payload = cfg->include_original_payload;
    x->timeout_ns = cfg->exporter.timeout_ns;
    x->tls = tls;
    x->http_version = tls ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
    snprintf(x->user_agent, sizeof(x->user_agent), "flamegate/%s grpc-c-curl", FG_VERSION);

    struct fg_buf url;
    fg_buf_init(&url, 0);
    rc = fg_buf_printf(&url, "%s://%.*s%s", tls ? "https" : "http", (int)host_len, host,
                       EXPORT_PATH);
    if (rc == 0)
        rc = fg_buf_append(&url, "", 1);
    x->url = rc == 0 ? (char *)fg_buf_steal(&url, NULL) : NULL;
    fg_buf_free(&url);
    if (!x->url) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }

    char timeout[16];
    fg__grpcc_timeout_value(x->timeout_ns, timeout, sizeof(timeout));
    rc = add_header(&x->cx.headers, "content-type", "application/grpc");
    if (rc == 0)
        rc = add_header(&x->cx.headers, "te", "trailers");
    if (rc == 0)
        rc = add_header(&x->cx.headers, "grpc-timeout", timeout);
    if (rc == 0)
        rc = add_header(&x->cx.headers, "grpc-accept-encoding", "identity,gzip");
    if (rc == 0 && x->compression == OTLP_COMPRESSION_GZIP)
        rc = add_header(&x->cx.headers, "grpc-encoding", "gzip");
    if (rc == 0) {
        /* No "Expect: 100-continue" round trip for large bodies. */
        struct curl_slist *l = curl_slist_append(x->cx.headers, "Expect:");
        rc = l ? 0 : FG_ENOMEM;
        if (l)
            x->cx.headers = l;
    }
    for (size_t i = 0; rc == 0 && i < cfg->headers.n; i++)
        rc = add_header(&x->cx.headers, cfg->headers.keys[i],
                        cfg->headers.values[i] ? cfg->headers.values[i] : "");
    if (rc != 0) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }

    if ((rc = fg_tls_client_new(&cfg->tls, x->url, &x->tls_client, err)) != 0 ||
        (rc = fg_auth_resolve(args, &cfg->auth, &x->cx.auth, err)) != 0)
        goto fail;
    rc = fg_exporter_new(x->cx.base.id, &cfg->exporter, otlp_send, x, &x->cx.helper, err);
    if (rc != 0)
        goto fail;
    *out = &x->cx.base;
    return 0;

fail:
    otlp_destroy(&x->cx.base);
    return rc;
}

const struct fg_factory fg_otlp_exporter_factory = {
    .type = "otlp",
    .kind = FG_KIND_EXPORTER,
    .config_size = sizeof(struct otlp_config),
    .options = otlp_options,
    .validate = otlp_validate,
    .create = otlp_create,
};
