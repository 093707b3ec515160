/* Exporter "pyroscope": each profile group converted to pprof and sent to Grafana Pyroscope,
 * by the legacy /ingest API (one POST per pprof) or push.v1.PusherService/Push (Connect,
 * one request per batch), with the batch's tenant as X-Scope-OrgID. */
#include "pyroscope_exporter.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fg_alloc.h"
#include "fg_buf.h"
#include "fg_curl_exporter.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_pprof.h"
#include "push/v1/push.pb-c.h"

static const char *const api_names[] = {"ingest", "push", NULL};

static const struct fg_option basic_auth_options[] = {
    FG_OPT_STR("username", struct pyroscope_basic_auth, username, NULL, "basic auth user"),
    FG_OPT_STR("password", struct pyroscope_basic_auth, password, NULL, "basic auth password"),
    FG_OPT_END,
};

static const struct fg_option pyroscope_options[] = {
    FG_OPT_STR("endpoint", struct pyroscope_exporter_config, endpoint, NULL,
               "Pyroscope base URL, e.g. http://pyroscope:4040"),
    FG_OPT_CHOICE("api", struct pyroscope_exporter_config, api, "ingest", api_names,
                  "ingest (POST /ingest, one pprof per request) or push "
                  "(POST /push.v1.PusherService/Push, Connect protobuf)"),
    FG_OPT_BLOCK("basic_auth", struct pyroscope_exporter_config, basic_auth, basic_auth_options,
                 "HTTP basic authentication"),
    FG_OPT_STR("bearer_token", struct pyroscope_exporter_config, bearer_token, NULL,
               "sent as Authorization: Bearer <token>"),
    FG_OPT_MAP("headers", struct pyroscope_exporter_config, headers, "extra request headers"),
    FG_OPT_STR("tenant_id", struct pyroscope_exporter_config, tenant_id, NULL,
               "X-Scope-OrgID for batches that arrived without a tenant"),
    FG_OPT_MAP("external_labels", struct pyroscope_exporter_config, external_labels,
               "labels added to every series"),
    FG_EXPORTER_SETTINGS_OPTIONS(struct pyroscope_exporter_config, exporter),
    FG_OPT_BLOCK("tls", struct pyroscope_exporter_config, tls, fg_tls_client_options,
                 "TLS for https:// endpoints: CA, client certificate, verification"),
    FG_OPT_BLOCK("auth", struct pyroscope_exporter_config, auth, fg_auth_options,
                 "send the Authorization of an authenticator extension"),
    FG_OPT_END,
};

static int pyroscope_validate(const void *config, struct fg_err *err)
{
    const struct pyroscope_exporter_config *cfg = config;
    if (!cfg->endpoint || !*cfg->endpoint)
        return fg_err_set(err, FG_EINVAL, "endpoint: required");
    if (cfg->bearer_token && *cfg->bearer_token && cfg->basic_auth.username)
        return fg_err_set(err, FG_EINVAL, "bearer_token: cannot be used with basic_auth");
    if (cfg->basic_auth.password && !cfg->basic_auth.username)
        return fg_err_set(err, FG_EINVAL, "basic_auth.username: required with a password");
    if (cfg->tenant_id && strpbrk(cfg->tenant_id, "\r\n"))
        return fg_err_set(err, FG_EINVAL, "tenant_id: invalid characters");
    for (size_t i = 0; i < cfg->external_labels.n; i++)
        if (!cfg->external_labels.keys[i][0])
            return fg_err_set(err, FG_EINVAL, "external_labels: empty label name");
    return 0;
}

#define POOL_MAX 16
#define RESPONSE_LIMIT ((size_t)1 << 20)
#define BODY_IN_ERROR 160
#define FAMILY_ATTR "pyroscope.profile.family"
#define MAX_TENANT 128
/* Batches whose /ingest sends failed part-way, remembered so that the retry skips the
 * pprofs already accepted. Each entry holds a reference (so its address cannot be reused
 * by another batch); the oldest is forgotten when full, which only costs duplicates. */
#define MAX_PROGRESS 32

struct progress {
    struct fg_profiles *batch;
    uint32_t sent; /* pprofs of this batch already accepted */
};

struct pyroscope_exporter {
    struct fg_curl_exporter cx; /* first: base, helper, auth, headers, handle pool */
    char *ingest_url;         /* <endpoint>/ingest */
    char *push_url;           /* <endpoint>/push.v1.PusherService/Push */
    int api;
    long timeout_ms;
    char *username, *password;
    char *tenant_id;
    struct fg_tls_client *tls;      /* TLS options of each request */
    struct fg_strmap labels;    /* external labels, names sanitized */
    char user_agent[64];
    pthread_mutex_t progress_mu;
    struct progress progress[MAX_PROGRESS];
    size_t n_progress;
};

/* ---- labels ---- */

/* Pyroscope label names: [a-zA-Z_][a-zA-Z0-9_]*; dots and anything else become '_'. */
static int append_label_name(struct fg_buf *b, const char *s, size_t len)
{
    if (len == 0)
        return fg_buf_append_str(b, "_");
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (i == 0 && c >= '0' && c <= '9') {
            int rc = fg_buf_append(b, "_", 1);
            if (rc)
                return rc;
            ok = true;
        }
        char out = ok ? c : '_';
        int rc = fg_buf_append(b, &out, 1);
        if (rc)
            return rc;
    }
    return 0;
}

/* A scalar attribute value as label text; false for arrays, maps and empty values. */
static bool value_text(const struct fg_value *v, char *buf, size_t size, const char **out,
                       size_t *len)
{
    switch (v->kind) {
    case FG_VALUE_STRING:
        *out = v->u.s.ptr;
        *len = v->u.s.len;
        return true;
    case FG_VALUE_INT:
        *len = (size_t)snprintf(buf, size, "%lld", (long long)v->u.i);
        break;
    case FG_VALUE_DOUBLE:
        *len = (size_t)snprintf(buf, size, "%.17g", v->u.d);
        break;
    case FG_VALUE_BOOL:
        *len = (size_t)snprintf(buf, size, "%s", v->u.b ? "true" : "false");
        break;
    default:
        return false;
    }
    *out = buf;
    return true;
}

/* One label as the exporter collects them before writing either wire form. */
struct label {
    char *name;
    char *value;
};

struct labels {
    struct label *items;
    size_t n, cap;
};

static void labels_free(struct labels *l)
{
    for (size_t i = 0; i < l->n; i++) {
        fg_free(l->items[i].name);
        fg_free(l->items[i].value);
    }
    fg_free(l->items);
    memset(l, 0, sizeof(*l));
}

/* Adds or replaces (later sources win: external labels over resource attributes). */
static int labels_set(struct labels *l, const char *name, const char *value, size_t vlen)
{
    char *v = fg_strndup(value, vlen);
    if (!v)
        return FG_ENOMEM;
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->items[i].name, name)) {
            fg_free(l->items[i].value);
            l->items[i].value = v;
            return 0;
        }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct label *it = fg_realloc(l->items, cap * sizeof(*it));
        if (!it) {
            fg_free(v);
            return FG_ENOMEM;
        }
        l->items = it;
        l->cap = cap;
    }
    char *n = fg_strdup(name);
    if (!n) {
        fg_free(v);
        return FG_ENOMEM;
    }
    l->items[l->n++] = (struct label){n, v};
    return 0;
}

/* Pyroscope's __name__ for a profile whose resource did not bring one. */
static const char *family_of(const struct fg_profiles *p, const struct fg_profile *prof)
{
    struct fg_bytes t = fg_dict_get_string(p, prof->sample_type.type);
    static const struct {
        const char *prefix;
        const char *family;
    } map[] = {
        {"cpu", "process_cpu"},       {"samples", "process_cpu"}, {"wall", "wall"},
        {"alloc_", "memory"},         {"inuse_", "memory"},       {"space", "memory"},
        {"objects", "memory"},        {"live", "memory"},         {"goroutine", "goroutine"},
        {"contentions", "mutex"},     {"delay", "mutex"},         {"lock_", "mutex"},
        {"exception", "exceptions"},  {"off_cpu", "off_cpu"},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(map); i++) {
        size_t n = strlen(map[i].prefix);
        if (t.len >= n && memcmp(t.ptr, map[i].prefix, n) == 0)
            return map[i].family;
    }
    return "process_cpu";
}

/* service name, labels from the resource (sanitized names) and the external labels. */
static int group_labels(struct pyroscope_exporter *x, const struct fg_profiles *p,
                        const struct fg_pprof_group *g, char **service, char **family,
                        struct labels *out)
{
    struct fg_buf name;
    char num[64];
    int rc = 0;
    *service = NULL;
    *family = NULL;
    fg_buf_init(&name, 0);
    const struct fg_resource *res = &g->resource->resource;
    for (uint32_t i = 0; rc == 0 && i < res->n_attrs; i++) {
        const struct fg_keyvalue *kv = &res->attrs[i];
        const char *v;
        size_t vlen;
        if (!value_text(&kv->value, num, sizeof(num), &v, &vlen) || vlen == 0)
            continue;
        if (kv->key.len == 12 && !memcmp(kv->key.ptr, "service.name", 12)) {
            if (!(*service = fg_strndup(v, vlen)))
                rc = FG_ENOMEM;
            continue;
        }
        if (kv->key.len == sizeof(FAMILY_ATTR) - 1 && !memcmp(kv->key.ptr, FAMILY_ATTR, kv->key.len)) {
            if (!(*family = fg_strndup(v, vlen)))
                rc = FG_ENOMEM;
            continue;
        }
        name.len = 0;
        if ((rc = append_label_name(&name, kv->key.ptr, kv->key.len)) == 0 &&
            (rc = fg_buf_append(&name, "", 1)) == 0)
            rc = labels_set(out, (const char *)name.data, v, vlen);
    }
    for (size_t i = 0; rc == 0 && i < x->labels.n; i++)
        rc = labels_set(out, x->labels.keys[i], x->labels.values[i],
                        strlen(x->labels.values[i]));
    if (rc == 0 && !*service && !(*service = fg_strdup("unknown_service")))
        rc = FG_ENOMEM;
    if (rc == 0 && !*family) {
        const struct fg_profile *prof = &g->scope->profiles[g->profiles[0]];
        if (!(*family = fg_strdup(family_of(p, prof))))
            rc = FG_ENOMEM;
    }
    fg_buf_free(&name);
    return rc;
}

/* ---- HTTP ---- */

struct response {
    struct fg_buf body;
    int64_t retry_after_ns;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct response *r = userdata;
    fg_buf_append(&r->body, ptr, size * nmemb); /* past the limit: keep the start */
    return size * nmemb;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct response *r = userdata;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    if (n > sizeof(name) - 1 && strncasecmp(buf, name, sizeof(name) - 1) == 0) {
        char text[32];
        size_t len = n - (sizeof(name) - 1);
        const char *v = buf + sizeof(name) - 1;
        while (len && (*v == ' ' || *v == '\t')) {
            v++;
            len--;
        }
        while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        int64_t secs;
        if (len > 0 && len < 10) {
            memcpy(text, v, len);
            text[len] = '\0';
            if (fg_parse_int(text, &secs) == 0 && secs >= 0)
                r->retry_after_ns = secs * 1000000000;
        }
    }
    return n;
}

/* The message of a Pyroscope/Connect JSON error body, else its printable start. */
static void describe_error(const struct fg_buf *body, char *out, size_t size)
{
    out[0] = '\0';
    json_t *root = body->len ? json_loadb((const char *)body->data, body->len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(root, "message"));
    if (msg && *msg) {
        snprintf(out, size, "%s", msg);
    } else {
        size_t j = 0;
        for (size_t i = 0; i < body->len && i < BODY_IN_ERROR && j + 1 < size; i++)
            out[j++] = body->data[i] >= 0x20 && body->data[i] < 0x7f ? (char)body->data[i] : '.';
        out[j] = '\0';
    }
    json_decref(root);
}

/* One POST; returns 0, FG_ERETRYABLE or FG_EPERMANENT. */
static int http_post(struct pyroscope_exporter *x, const char *url, const char *content_type,
                     const char *tenant, const uint8_t *body, size_t len,
                     int64_t *retry_after_ns, struct fg_err *err)
{
    struct response resp = {.retry_after_ns = 0};
    struct curl_slist *hl = NULL;
    char line[256];
    int rc = 0;
    fg_buf_init(&resp.body, RESPONSE_LIMIT);
    struct fg_curl_conn conn;
    if (fg_curl_pool_take(&x->cx.pool, &conn) != 0)
        return fg_err_set(err, FG_ERETRYABLE, "cannot create a curl handle");
    CURL *h = conn.h;
    for (struct curl_slist *s = x->cx.headers; s; s = s->next)
        if (!(hl = curl_slist_append(hl, s->data)))
            goto nomem;
    snprintf(line, sizeof(line), "Content-Type: %s", content_type);
    if (!(hl = curl_slist_append(hl, line)))
        goto nomem;
    if (x->api == PYROSCOPE_API_PUSH && !(hl = curl_slist_append(hl, "Connect-Protocol-Version: 1")))
        goto nomem;
    if (tenant && *tenant) {
        snprintf(line, sizeof(line), "X-Scope-OrgID: %s", tenant);
        if (!(hl = curl_slist_append(hl, line)))
            goto nomem;
    }
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (fg_tls_client_apply(x->tls, h, url) != 0) {
        rc = fg_err_set(err, FG_EPERMANENT, "tls: cannot apply server_name_override to %s", url);
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, len ? (const char *)body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_USERAGENT, x->user_agent);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, x->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp);
    if (x->username) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, x->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, x->password ? x->password : "");
    }
    CURLcode cc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    if (cc != CURLE_OK) {
        bool permanent = cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT;
        rc = fg_err_set(err, permanent ? FG_EPERMANENT : FG_ERETRYABLE, "POST %s: %s", url,
                        curl_err[0] ? curl_err : curl_easy_strerror(cc));
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300)
        goto out;
    char detail[200];
    describe_error(&resp.body, detail, sizeof(detail));
    bool retry = status == 429 || status == 502 || status == 503 || status == 504 ||
                 status == 408;
    if (retry)
        *retry_after_ns = resp.retry_after_ns;
    rc = fg_err_set(err, retry ? FG_ERETRYABLE : FG_EPERMANENT, "POST %s: HTTP %ld%s%s", url,
                    status, detail[0] ? ": " : "", detail);
    goto out;
nomem:
    rc = fg_err_set(err, FG_ERETRYABLE, "out of memory");
out:
    fg_curl_pool_give(&x->cx.pool, &conn);
    curl_slist_free_all(hl);
    fg_buf_free(&resp.body);
    return rc;
}

/* ---- the two APIs ---- */

struct send_ctx {
    struct pyroscope_exporter *x;
    const struct fg_profiles *batch;
    const char *tenant;
    int64_t *retry_after_ns;
    uint32_t index; /* ingest: pprofs seen so far in this attempt */
    uint32_t skip;  /* ingest: accepted by an earlier attempt */
    /* push: the series gathered for one request */
    Push__V1__RawProfileSeries **series;
    size_t n_series, cap_series;
    int n_sent;
};

/* Label values inside name={…} cannot hold the separators of that syntax. */
static int append_name_value(struct fg_buf *b, const char *v)
{
    for (; *v; v++) {
        char c = strchr(",{}=", *v) ? '_' : *v;
        int rc = fg_buf_append(b, &c, 1);
        if (rc)
            return rc;
    }
    return 0;
}

static int append_escaped(struct fg_buf *b, CURL *h, const char *s, size_t len)
{
    char *e = curl_easy_escape(h, s, (int)len);
    if (!e)
        return FG_ENOMEM;
    int rc = fg_buf_append_str(b, e);
    curl_free(e);
    return rc;
}

static int emit_ingest(void *ctx, const struct fg_pprof_group *g, const uint8_t *data,
                       size_t len, struct fg_err *err)
{
    struct send_ctx *sc = ctx;
    struct pyroscope_exporter *x = sc->x;
    if (sc->index++ < sc->skip)
        return 0; /* sent by an earlier attempt at this batch */
    struct labels labels = {0};
    char *service = NULL, *family = NULL;
    struct fg_buf name, url;
    CURL *esc = curl_easy_init();
    int rc;
    fg_buf_init(&name, 0);
    fg_buf_init(&url, 0);
    if (!esc || (rc = group_labels(x, sc->batch, g, &service, &family, &labels)) != 0) {
        rc = fg_err_set(err, FG_ERETRYABLE, "out of memory");
        goto out;
    }
    rc = append_name_value(&name, service);
    if (rc == 0)
        rc = fg_buf_append_str(&name, "{");
    for (size_t i = 0; rc == 0 && i < labels.n; i++) {
        rc = fg_buf_printf(&name, "%s%s=", i ? "," : "", labels.items[i].name);
        if (rc == 0)
            rc = append_name_value(&name, labels.items[i].value);
    }
    if (rc == 0)
        rc = fg_buf_append_str(&name, "}");
    if (rc == 0)
        rc = fg_buf_printf(&url, "%s?name=", x->ingest_url);
    if (rc == 0)
        rc = append_escaped(&url, esc, (const char *)name.data, name.len);
    const struct fg_profile *prof = &g->scope->profiles[g->profiles[0]];
    if (rc == 0 && prof->time_unix_nano > 0)
        rc = fg_buf_printf(&url, "&from=%llu&until=%llu",
                           (unsigned long long)prof->time_unix_nano,
                           (unsigned long long)(prof->time_unix_nano + prof->duration_nano));
    if (rc == 0)
        rc = fg_buf_append_str(&url, "&format=pprof");
    if (rc == 0 && g->scope->scope.name.len > 0) {
        rc = fg_buf_append_str(&url, "&spyName=");
        if (rc == 0)
            rc = append_escaped(&url, esc, g->scope->scope.name.ptr, g->scope->scope.name.len);
    }
    if (rc == 0)
        rc = fg_buf_append(&url, "", 1);
    if (rc != 0) {
        rc = fg_err_set(err, FG_ERETRYABLE, "out of memory");
        goto out;
    }
    rc = http_post(x, (const char *)url.data, "application/octet-stream", sc->tenant, data, len,
                   sc->retry_after_ns, err);
    if (rc == 0)
        sc->n_sent++;
out:
    if (esc)
        curl_easy_cleanup(esc);
    labels_free(&labels);
    fg_free(service);
    fg_free(family);
    fg_buf_free(&name);
    fg_buf_free(&url);
    return rc;
}

static void free_series(Push__V1__RawProfileSeries *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_labels; i++) {
        fg_free(s->labels[i]->name);
        fg_free(s->labels[i]->value);
        fg_free(s->labels[i]);
    }
    fg_free(s->labels);
    for (size_t i = 0; i < s->n_samples; i++) {
        fg_free(s->samples[i]->raw_profile.data);
        fg_free(s->samples[i]);
    }
    fg_free(s->samples);
    fg_free(s);
}

static int add_pair(Push__V1__RawProfileSeries *s, const char *name, const char *value)
{
    Types__V1__LabelPair *lp = fg_malloc(sizeof(*lp));
    if (!lp)
        return FG_ENOMEM;
    types__v1__label_pair__init(lp);
    lp->name = fg_strdup(name);
    lp->value = fg_strdup(value);
    s->labels[s->n_labels++] = lp;
    return lp->name && lp->value ? 0 : FG_ENOMEM;
}

static int emit_push(void *ctx, const struct fg_pprof_group *g, const uint8_t *data, size_t len,
                     struct fg_err *err)
{
    struct send_ctx *sc = ctx;
    struct labels labels = {0};
    char *service = NULL, *family = NULL, *spy = NULL;
    Push__V1__RawProfileSeries *s = NULL;
    int rc = group_labels(sc->x, sc->batch, g, &service, &family, &labels);
    if (rc != 0)
        goto out;
    if (sc->n_series == sc->cap_series) {
        size_t cap = sc->cap_series ? sc->cap_series * 2 : 8;
        Push__V1__RawProfileSeries **n = fg_realloc(sc->series, cap * sizeof(*n));
        if (!n) {
            rc = FG_ENOMEM;
            goto out;
        }
        sc->series = n;
        sc->cap_series = cap;
    }
    if (!(s = fg_calloc(1, sizeof(*s)))) {
        rc = FG_ENOMEM;
        goto out;
    }
    push__v1__raw_profile_series__init(s);
    s->labels = fg_calloc(labels.n + 4, sizeof(*s->labels));
    s->samples = fg_calloc(1, sizeof(*s->samples));
    if (!s->labels || !s->samples) {
        rc = FG_ENOMEM;
        goto out;
    }
    if ((rc = add_pair(s, "__name__", family)) != 0 ||
        (rc = add_pair(s, "service_name", service)) != 0 ||
        (rc = add_pair(s, "__delta__", "false")) != 0) /* per-interval data, not cumulative */
        goto out;
    if (g->scope->scope.name.len > 0) {
        if (!(spy = fg_strndup(g->scope->scope.name.ptr, g->scope->scope.name.len)) ||
            (rc = add_pair(s, "pyroscope_spy", spy)) != 0) {
            rc = FG_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < labels.n; i++) {
        if (!strcmp(labels.items[i].name, "service_name") ||
            !strcmp(labels.items[i].name, "pyroscope_spy") ||
            !strcmp(labels.items[i].name, "__name__"))
            continue; /* set above */
        if ((rc = add_pair(s, labels.items[i].name, labels.items[i].value)) != 0)
            goto out;
    }
    Push__V1__RawSample *rs = fg_malloc(sizeof(*rs));
    if (!rs) {
        rc = FG_ENOMEM;
        goto out;
    }
    push__v1__raw_sample__init(rs);
    s->samples[s->n_samples++] = rs;
    rs->raw_profile.data = fg_malloc(len ? len : 1);
    if (!rs->raw_profile.data) {
        rc = FG_ENOMEM;
        goto out;
    }
    memcpy(rs->raw_profile.data, data, len);
    rs->raw_profile.len = len;
    sc->series[sc->n_series++] = s;
    s = NULL;
out:
    free_series(s);
    labels_free(&labels);
    fg_free(service);
    fg_free(family);
    fg_free(spy);
    if (rc != 0)
        return fg_err_set(err, FG_ERETRYABLE, "out of memory");
    return 0;
}

/* How many pprofs of batch an earlier attempt got accepted (the entry is removed). */
static uint32_t progress_take(struct pyroscope_exporter *x, struct fg_profiles *batch)
{
    struct fg_profiles *drop = NULL;
    uint32_t sent = 0;
    pthread_mutex_lock(&x->progress_mu);
    for (size_t i = 0; i < x->n_progress; i++)
        if (x->progress[i].batch == batch) {
            sent = x->progress[i].sent;
            drop = batch;
            memmove(&x->progress[i], &x->progress[i + 1],
                    (x->n_progress - i - 1) * sizeof(x->progress[0]));
            x->n_progress--;
            break;
        }
    pthread_mutex_unlock(&x->progress_mu);
    fg_profiles_unref(drop); /* the caller still holds its own reference */
    return sent;
}

static void progress_put(struct pyroscope_exporter *x, struct fg_profiles *batch, uint32_t sent)
{
    struct fg_profiles *drop = NULL;
    pthread_mutex_lock(&x->progress_mu);
    if (x->n_progress == MAX_PROGRESS) {
        drop = x->progress[0].batch; /* forget the oldest */
        memmove(&x->progress[0], &x->progress[1], (MAX_PROGRESS - 1) * sizeof(x->progress[0]));
        x->n_progress--;
    }
    x->progress[x->n_progress++] = (struct progress){fg_profiles_ref(batch), sent};
    pthread_mutex_unlock(&x->progress_mu);
    fg_profiles_unref(drop);
}

static int pyroscope_send(void *ctx, struct fg_profiles *batch, int64_t *retry_after_ns,
                          struct fg_err *err)
{
    struct pyroscope_exporter *x = ctx;
    char tenant[MAX_TENANT];
    /* tenant pass-through: the batch's own tenant wins over the configured one */
    snprintf(tenant, sizeof(tenant), "%s",
             batch->tenant[0] ? batch->tenant : x->tenant_id ? x->tenant_id : "");
    if (strpbrk(tenant, "\r\n"))
        return fg_err_set(err, FG_EPERMANENT, "tenant id with a line break");
    struct send_ctx sc = {.x = x, .batch = batch, .tenant = tenant,
                          .retry_after_ns = retry_after_ns};
    int rc = fg_curl_global_init(err);
    if (rc != 0)
        return rc;
    if (x->api == PYROSCOPE_API_INGEST) {
        /* Pyroscope dedupes nothing: a retry resends only the pprofs not yet accepted (the
         * encoder emits a batch's pprofs in the same order every time). */
        sc.skip = progress_take(x, batch);
        rc = fg_pprof_encode(batch, true, emit_ingest, &sc, err);
        if (rc != 0 && rc != FG_ERETRYABLE && rc != FG_EPERMANENT)
            rc = FG_EPERMANENT; /* the batch does not convert: retrying cannot help */
        if (rc == FG_ERETRYABLE && sc.skip + (uint32_t)sc.n_sent > 0)
            progress_put(x, batch, sc.skip + (uint32_t)sc.n_sent);
        return rc;
    }
    rc = fg_pprof_encode(batch, true, emit_push, &sc, err);
    if (rc != 0 && rc != FG_ERETRYABLE && rc != FG_EPERMANENT)
        rc = FG_EPERMANENT;
    if (rc == 0 && sc.n_series > 0) {
        Push__V1__PushRequest req = PUSH__V1__PUSH_REQUEST__INIT;
        req.n_series = sc.n_series;
        req.series = sc.series;
        size_t n = push__v1__push_request__get_packed_size(&req);
        uint8_t *buf = fg_malloc(n ? n : 1);
        if (!buf) {
            rc = fg_err_set(err, FG_ERETRYABLE, "out of memory");
        } else {
            push__v1__push_request__pack(&req, buf);
            rc = http_post(x, x->push_url, "application/proto", tenant, buf, n, retry_after_ns,
                           err);
            fg_free(buf);
        }
    }
    for (size_t i = 0; i < sc.n_series; i++)
        free_series(sc.series[i]);
    fg_free(sc.series);
    return rc;
}

/* ---- lifecycle ---- */

static struct pyroscope_exporter *from_component(struct fg_component *c)
{
    return (struct pyroscope_exporter *)c;
}

static void pyroscope_destroy(struct fg_component *c)
{
    struct pyroscope_exporter *x = from_component(c);
    if (!x)
        return;
    fg_curl_exporter_release(&x->cx);
    for (size_t i = 0; i < x->n_progress; i++)
        fg_profiles_unref(x->progress[i].batch);
    pthread_mutex_destroy(&x->progress_mu);
    fg_tls_client_free(x->tls);
    for (size_t i = 0; i < x->labels.n; i++) {
        fg_free(x->labels.keys[i]);
        fg_free(x->labels.values[i]);
    }
    fg_free(x->labels.keys);
    fg_free(x->labels.values);
    fg_free(x->ingest_url);
    fg_free(x->push_url);
    fg_free(x->username);
    fg_free(x->password);
    fg_free(x->tenant_id);
    fg_free(x);
}

static const struct fg_component_ops pyroscope_ops = {
    .start = fg_curl_exporter_start,
    .shutdown = fg_curl_exporter_shutdown,
    .destroy = pyroscope_destroy,
};

static char *join_url(const char *base, const char *path)
{
    size_t len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        len--;
    struct fg_buf b;
    fg_buf_init(&b, 0);
    if (fg_buf_append(&b, base, len) || fg_buf_append_str(&b, path) || fg_buf_append(&b, "", 1)) {
        fg_buf_free(&b);
        return NULL;
    }
    return (char *)fg_buf_steal(&b, NULL);
}

static char *dup_opt(const char *s, bool *fail)
{
    if (!s)
        return NULL;
    char *d = fg_strdup(s);
    if (!d)
        *fail = true;
    return d;
}

static int pyroscope_create(const struct fg_create_args *args, struct fg_component **out,
                            struct fg_err *err)
{
    const struct pyroscope_exporter_config *cfg = args->config;
    struct pyroscope_exporter *x = NULL;
    int rc;

    *out = NULL;
    if ((rc = pyroscope_validate(cfg, err)) != 0)
        return rc;
    x = fg_calloc(1, sizeof(*x));
    if (!x)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    if (fg_curl_exporter_init(&x->cx, &fg_pyroscope_exporter_factory, &pyroscope_ops, args->id,
                              POOL_MAX, "Authorization", false) != 0) {
        fg_free(x);
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    }
    if (pthread_mutex_init(&x->progress_mu, NULL) != 0) {
        fg_curl_pool_free(&x->cx.pool);
        fg_free(x);
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    }
    x->api = cfg->api;
    x->timeout_ms = (long)(cfg->exporter.timeout_ns / 1000000);
    if (x->timeout_ms < 1)
        x->timeout_ms = 1;
    snprintf(x->user_agent, sizeof(x->user_agent), "flamegate/%s", FG_VERSION);
    bool fail = false;
    x->ingest_url = join_url(cfg->endpoint, "/ingest");
    x->push_url = join_url(cfg->endpoint, "/push.v1.PusherService/Push");
    x->username = dup_opt(cfg->basic_auth.username, &fail);
    x->password = dup_opt(cfg->basic_auth.password, &fail);
    x->tenant_id = cfg->tenant_id && *cfg->tenant_id ? dup_opt(cfg->tenant_id, &fail) : NULL;
    if (fail || !x->ingest_url || !x->push_url)
        goto nomem;

    x->labels.keys = fg_calloc(cfg->external_labels.n + 1, sizeof(char *));
    x->labels.values = fg_calloc(cfg->external_labels.n + 1, sizeof(char *));
    if (!x->labels.keys || !x->labels.values)
        goto nomem;
    for (size_t i = 0; i < cfg->external_labels.n; i++) {
        struct fg_buf name;
        fg_buf_init(&name, 0);
        const char *k = cfg->external_labels.keys[i];
        if (append_label_name(&name, k, strlen(k)) || fg_buf_append(&name, "", 1)) {
            fg_buf_free(&name);
            goto nomem;
        }
        x->labels.keys[i] = (char *)fg_buf_steal(&name, NULL);
        x->labels.values[i] = fg_strdup(cfg->external_labels.values[i] ?
                                            cfg->external_labels.values[i] : "");
        x->labels.n++;
        if (!x->labels.values[i])
            goto nomem;
    }

    if ((rc = fg_tls_client_new(&cfg->tls, x->ingest_url, &x->tls, err)) != 0 ||
        (rc = fg_auth_resolve(args, &cfg->auth, &x->cx.auth, err)) != 0)
        goto fail;
    if (x->cx.auth && (x->username || (cfg->bearer_token && *cfg->bearer_token))) {
        rc = fg_err_set(err, FG_EINVAL, "auth: use either auth.authenticator or "
                                        "basic_auth/bearer_token, not both");
        goto fail;
    }
    if (!(x->cx.headers = curl_slist_append(NULL, "Expect:")))
        goto nomem;
    if (cfg->bearer_token && *cfg->bearer_token) {
        if (strpbrk(cfg->bearer_token, "\r\n")) {
            rc = fg_err_set(err, FG_EINVAL, "bearer_token: invalid characters");
            goto fail;
        }
        struct fg_buf v;
        fg_buf_init(&v, 0);
        rc = fg_buf_printf(&v, "Bearer %s", cfg->bearer_token);
        if (rc == 0)
            rc = fg_buf_append(&v, "", 1);
        if (rc == 0)
            rc = fg_curl_add_header(&x->cx.headers, "Authorization", (const char *)v.data, false);
        fg_buf_free(&v);
        if (rc != 0)
            goto nomem;
    }
    for (size_t i = 0; i < cfg->headers.n; i++) {
        const char *k = cfg->headers.keys[i], *v = cfg->headers.values[i];
        if (!*k || strpbrk(k, ": \r\n") || strpbrk(v ? v : "", "\r\n")) {
            rc = fg_err_set(err, FG_EINVAL, "headers.%s: invalid header name or value", k);
            goto fail;
        }
        if (fg_curl_add_header(&x->cx.headers, k, v ? v : "", false) != 0)
            goto nomem;
    }
    rc = fg_exporter_new(x->cx.base.id, &cfg->exporter, pyroscope_send, x, &x->cx.helper, err);
    if (rc != 0)
        goto fail;
    *out = &x->cx.base;
    return 0;
nomem:
    rc = fg_err_set(err, FG_ENOMEM, "out of memory");
fail:
    pyroscope_destroy(&x->cx.base);
    return rc;
}

const struct fg_factory fg_pyroscope_exporter_factory = {
    .type = "pyroscope",
    .kind = FG_KIND_EXPORTER,
    .config_size = sizeof(struct pyroscope_exporter_config),
    .options = pyroscope_options,
    .validate = pyroscope_validate,
    .create = pyroscope_create,
};
