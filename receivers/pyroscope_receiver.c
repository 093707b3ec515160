/* Receiver "pyroscope": Grafana Pyroscope's ingest API (WIRE.md §6): POST /ingest and
 * /pyroscope/ingest (pprof raw/gzip/multipart, folded, lines) and the Connect unary form of
 * POST /push.v1.PusherService/Push, into the model, with the tenant header passed on. */
#include "pyroscope_receiver.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_folded.h"
#include "fg_grpc.h"
#include "fg_gzip.h"
#include "fg_log.h"
#include "fg_metrics.h"
#include "fg_model.h"
#include "fg_multipart.h"
#include "fg_pprof.h"
#include "fg_text.h"
#include "push/v1/push.pb-c.h"

#define INGEST_PATH "/ingest"
#define INGEST_PATH_PREFIXED "/pyroscope/ingest"
#define PUSH_PATH "/push.v1.PusherService/Push"
#define DEFAULT_TENANT_HEADER "X-Scope-OrgID"
#define DEFAULT_SAMPLE_RATE 100
#define MAX_NAME 4096   /* a decoded name=… parameter */
#define MAX_PARAM 256   /* other query parameters */
#define MAX_PARTS 8     /* multipart parts of one ingest request */
#define RETRY_DELAY_NS INT64_C(1000000000) /* what we ask refused clients to wait */
/* Resource attribute that carries Pyroscope's __name__ (profile family) of a push series. */
#define FAMILY_ATTR "pyroscope.profile.family"

static const struct fg_option pyroscope_options[] = {
    FG_HTTP_RECEIVER_OPTIONS("127.0.0.1:4040"),
    FG_OPT_END,
};

/* ---------------------------------------------------------------------------------------
 * Query strings */

/* Percent-decodes s[0..len) into out; returns the length or a negative FG_E*. */
static int url_decode(const char *s, size_t len, char *out, size_t outsize)
{
    size_t n;
    /* truncated, not hex, or an embedded NUL: FG_EINVAL */
    int rc = fg_percent_decode(s, len, out, outsize,
                               FG_PERCENT_PLUS_SPACE | FG_PERCENT_STRICT | FG_PERCENT_NO_NUL, &n);
    return rc ? rc : (int)n;
}

int fg__query_get(const char *query, const char *key, char *out, size_t outsize)
{
    size_t klen = strlen(key);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t kl = eq ? (size_t)(eq - p) : plen;
        /* keys are compared raw: ours never need escaping */
        if (kl == klen && memcmp(p, key, klen) == 0) {
            if (!eq)
                return url_decode("", 0, out, outsize);
            return url_decode(eq + 1, plen - kl - 1, out, outsize);
        }
        p = amp ? amp + 1 : NULL;
    }
    return -1;
}

int fg__query_each(const char *query, int (*fn)(void *ctx, const char *key, const char *value),
                   void *ctx, struct fg_err *err)
{
    char key[MAX_PARAM], *value = fg_malloc(MAX_NAME);
    const char *p = query;
    int rc = 0;
    if (!value)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t kl = eq ? (size_t)(eq - p) : plen;
        if (kl > 0) {
            int kn = url_decode(p, kl, key, sizeof(key));
            int vn = kn < 0 ? kn : url_decode(eq ? eq + 1 : "", eq ? plen - kl - 1 : 0, value,
                                              MAX_NAME);
            if (kn < 0 || vn < 0) {
                rc = fg_err_set(err, FG_EINVAL, "query parameter \"%.*s\": bad %%-escape or "
                                "too long", (int)FG_MIN(kl, (size_t)64), p);
                goto out;
            }
            if ((rc = fn(ctx, key, value)) != 0)
                goto out;
        }
        p = amp ? amp + 1 : NULL;
    }
out:
    fg_free(value);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Replies and tenants */

static const char *connect_code(int status)
{
    switch (status) {
    case 400: return "invalid_argument";
    case 408: return "deadline_exceeded";
    case 413: return "resource_exhausted";
    case 415: return "unimplemented";
    case 429: return "resource_exhausted";
    case 503: return "unavailable";
    case 504: return "deadline_exceeded";
    default: return status >= 500 ? "internal" : "unknown";
    }
}

void fg__reply_error(struct fg_http_response *resp, int status, const char *message)
{
    fg_buf_free(&resp->body);
    resp->status = status;
    snprintf(resp->content_type, sizeof(resp->content_type), "application/json");
    json_t *o = json_pack("{s:s, s:s}", "code", connect_code(status), "message", message);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text)
        fg_buf_append_str(&resp->body, text);
    free(text);
    json_decref(o);
    if (status == 429 || status == 503)
        snprintf(resp->retry_after, sizeof(resp->retry_after), "1");
}

int fg__consume_status(int rc)
{
    switch (rc) {
    case 0: return 200;
    case FG_EINVAL: return 400;
    case FG_EFULL:
    case FG_ERETRYABLE:
    case FG_ENOMEM:
    case FG_ETOOBIG: return 429; /* Pyroscope's answer to backpressure: clients retry */
    case FG_ESTOPPED: return 503;
    case FG_EPERMANENT: return 422;
    default: return 500;
    }
}

typedef const char *(*header_lookup)(const void *ctx, const char *name);

static int tenant_from(header_lookup lookup, const void *ctx, const struct fg_strlist *headers,
                       struct fg_profiles *batch, struct fg_err *err)
{
    static const char *const fallback[] = {DEFAULT_TENANT_HEADER};
    const char *const *names = headers->n ? (const char *const *)headers->items : fallback;
    size_t n = headers->n ? headers->n : 1;
    batch->tenant[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *v = lookup(ctx, names[i]);
        if (!v || !*v)
            continue;
        size_t len = strlen(v);
        if (len >= sizeof(batch->tenant))
            return fg_err_set(err, FG_EINVAL, "%s: tenant id longer than %zu bytes", names[i],
                              sizeof(batch->tenant) - 1);
        memcpy(batch->tenant, v, len + 1);
        return 0;
    }
    return 0;
}

static const char *http_lookup(const void *ctx, const char *name)
{
    return fg_http_header(ctx, name);
}

static const char *grpc_lookup(const void *ctx, const char *name)
{
    return fg_grpc_metadata(ctx, name);
}

int fg__tenant_from_headers(const struct fg_http_request *req, const struct fg_strlist *headers,
                            struct fg_profiles *batch, struct fg_err *err)
{
    return tenant_from(http_lookup, req, headers, batch, err);
}

/* ---------------------------------------------------------------------------------------
 * Names, types, times */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_space((*s)[*len - 1]))
        (*len)--;
}

static bool valid_label_name(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

int pyro_parse_name(const char *text, size_t len, struct pyro_name *out, struct fg_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *brace = memchr(text, '{', len);
    const char *app = text;
    size_t app_len = brace ? (size_t)(brace - text) : len;
    trim(&app, &app_len);
    if (app_len == 0)
        return fg_err_set(err, FG_EINVAL, "name: empty application name");
    if (memchr(app, '}', app_len))
        return fg_err_set(err, FG_EINVAL, "name: '}' without '{'");
    out->app = app;
    out->app_len = app_len;
    if (!brace)
        return 0;
    const char *end = text + len;
    const char *close = memchr(brace, '}', (size_t)(end - brace));
    if (!close)
        return fg_err_set(err, FG_EINVAL, "name: unclosed '{' in \"%.*s\"",
                          (int)FG_MIN(len, (size_t)128), text);
    for (const char *t = close + 1; t < end; t++)
        if (!is_space(*t))
            return fg_err_set(err, FG_EINVAL, "name: text after '}'");
    const char *p = brace + 1;
    while (p < close) {
        const char *comma = memchr(p, ',', (size_t)(close - p));
        const char *item_end = comma ? comma : close;
        const char *k = p;
        size_t item_len = (size_t)(item_end - p);
        p = comma ? comma + 1 : close;
        trim(&k, &item_len);
        if (item_len == 0)
            continue; /* "{}" or a trailing comma */
        const char *eq = memchr(k, '=', item_len);
        if (!eq)
            return fg_err_set(err, FG_EINVAL, "name: label \"%.*s\" without '='",
                              (int)FG_MIN(item_len, (size_t)64), k);
        size_t klen = (size_t)(eq - k);
        const char *v = eq + 1;
        size_t vlen = item_len - klen - 1;
        trim(&k, &klen);
        trim(&v, &vlen);
        if (!valid_label_name(k, klen))
            return fg_err_set(err, FG_EINVAL, "name: invalid label name \"%.*s\"",
                              (int)FG_MIN(klen, (size_t)64), k);
        for (size_t i = 0; i < out->n_labels; i++)
            if (out->labels[i].key_len == klen && memcmp(out->labels[i].key, k, klen) == 0)
                return fg_err_set(err, FG_EINVAL, "name: duplicate label \"%.*s\"",
                                  (int)FG_MIN(klen, (size_t)64), k);
        if (out->n_labels == PYRO_MAX_LABELS)
            return fg_err_set(err, FG_EINVAL, "name: more than %d labels", PYRO_MAX_LABELS);
        out->labels[out->n_labels++] = (struct pyro_label){k, klen, v, vlen};
    }
    return 0;
}

static const struct pyro_type pyro_types[] = {
    {"cpu", "cpu", "nanoseconds", "cpu", "nanoseconds", true},
    {"itimer", "cpu", "nanoseconds", "cpu", "nanoseconds", true},
    {"wall", "wall", "nanoseconds", "wall", "nanoseconds", true},
    {"inuse_objects", "inuse_objects", "count", "space", "bytes", false},
    {"inuse_space", "inuse_space", "bytes", "space", "bytes", false},
    {"alloc_objects", "alloc_objects", "count", "space", "bytes", false},
    {"alloc_space", "alloc_space", "bytes", "space", "bytes", false},
    {"goroutines", "goroutine", "count", "goroutine", "count", false},
    {"mutex_count", "contentions", "count", "contentions", "count", false},
    {"mutex_duration", "delay", "nanoseconds", "contentions", "count", false},
    {"block_count", "contentions", "count", "contentions", "count", false},
    {"block_duration", "delay", "nanoseconds", "contentions", "count", false},
    {"lock_count", "lock_count", "count", "contentions", "count", false},
    {"lock_duration", "lock_time", "nanoseconds", "contentions", "count", false},
    {"alloc_in_new_tlab_objects", "alloc_in_new_tlab_objects", "count", "space", "bytes", false},
    {"alloc_in_new_tlab_bytes", "alloc_in_new_tlab_bytes", "bytes", "space", "bytes", false},
    {"alloc_outside_tlab_objects", "alloc_outside_tlab_objects", "count", "space", "bytes",
     false},
    {"alloc_outside_tlab_bytes", "alloc_outside_tlab_bytes", "bytes", "space", "bytes", false},
    {"live", "live", "count", "space", "bytes", false},
    {"exceptions", "exceptions", "count", "exceptions", "count", false},
};

int pyro_split_type(const char *app, size_t len, size_t *base_len, const struct pyro_type **type)
{
    const char *dot = NULL;
    for (size_t i = len; i-- > 0;)
        if (app[i] == '.') {
            dot = app + i;
            break;
        }
    *base_len = len;
    *type = NULL;
    if (!dot) {
        *type = &pyro_types[0];
        return 0;
    }
    const char *suffix = dot + 1;
    size_t slen = len - (size_t)(suffix - app);
    for (size_t i = 0; i < FG_ARRAY_LEN(pyro_types); i++) {
        if (strlen(pyro_types[i].suffix) == slen &&
            memcmp(pyro_types[i].suffix, suffix, slen) == 0) {
            *type = &pyro_types[i];
            *base_len = (size_t)(dot - app);
            return 0;
        }
    }
    return FG_ENOTFOUND;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int pyro_parse_time(const char *text, int64_t now_ns, int64_t *out_ns)
{
    size_t len = strlen(text);
    if (len == 0)
        return FG_EINVAL;
    bool digits = true;
    for (size_t i = 0; i < len; i++)
        if (text[i] < '0' || text[i] > '9')
            digits = false;
    if (digits) {
        if (len > 19)
            return FG_EINVAL;
        int64_t v;
        if (fg_parse_int(text, &v) != 0)
            return FG_EINVAL;
        if (len == 8) {
            int64_t y = v / 10000, m = v / 100 % 100, d = v % 100;
            if (m < 1 || m > 12 || d < 1 || d > 31)
                return FG_EINVAL;
            *out_ns = days_from_civil(y, m, d) * 86400 * INT64_C(1000000000);
        } else if (len == 19) {
            *out_ns = v;
        } else if (len == 16) {
            *out_ns = v * 1000;
        } else if (len == 13) {
            *out_ns = v * 1000000;
        } else {
            if (v > INT64_MAX / 1000000000)
                return FG_EINVAL;
            *out_ns = v * 1000000000;
        }
        return 0;
    }
    if (strncmp(text, "now", 3) != 0)
        return FG_EINVAL;
    const char *p = text + 3;
    if (*p == '\0') {
        *out_ns = now_ns;
        return 0;
    }
    int sign = *p == '-' ? -1 : *p == '+' ? 1 : 0;
    if (!sign)
        return FG_EINVAL;
    p++;
    int64_t n = 0;
    const char *num = p;
    while (*p >= '0' && *p <= '9' && p - num < 12)
        n = n * 10 + (*p++ - '0');
    if (p == num)
        return FG_EINVAL;
    int64_t unit;
    if (strcmp(p, "s") == 0)
        unit = 1;
    else if (strcmp(p, "m") == 0)
        unit = 60;
    else if (strcmp(p, "h") == 0)
        unit = 3600;
    else if (strcmp(p, "d") == 0)
        unit = 86400;
    else
        return FG_EINVAL;
    *out_ns = now_ns + sign * n * unit * INT64_C(1000000000);
    return 0;
}

const char *pyro_legacy_format(const uint8_t *d, size_t len)
{
    /* gperftools CPU profile: header words 0, 3, 0, period, 0 in 64- or 32-bit native words
     * (a protobuf never starts with a zero byte: field number 0 does not exist). */
    static const uint8_t w64le[16] = {0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t w64be[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3};
    static const uint8_t w32le[8] = {0, 0, 0, 0, 3, 0, 0, 0};
    static const uint8_t w32be[8] = {0, 0, 0, 0, 0, 0, 0, 3};
    if ((len >= 16 && (memcmp(d, w64le, 16) == 0 || memcmp(d, w64be, 16) == 0)) ||
        (len >= 8 && (memcmp(d, w32le, 8) == 0 || memcmp(d, w32be, 8) == 0)))
        return "gperftools legacy binary CPU profile";
    static const struct {
        const char *prefix;
        const char *name;
    } text[] = {
        {"heap profile:", "legacy text heap profile"},
        {"--- heapz", "legacy text heap profile"},
        {"heap_v2/", "legacy text heap profile"},
        {"--- contention", "legacy text contention profile"},
        {"--- contentionz", "legacy text contention profile"},
        {"goroutine profile:", "legacy text goroutine profile"},
        {"threadcreate profile:", "legacy text threadcreate profile"},
        {"--- threadz", "legacy text thread profile"},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(text); i++) {
        size_t n = strlen(text[i].prefix);
        if (len >= n && memcmp(d, text[i].prefix, n) == 0)
            return text[i].name;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * The receiver */

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Hands the batch downstream and answers; takes the batch. */
static void deliver(struct fg_http_receiver *r, struct fg_profiles *batch,
                    struct fg_http_response *resp, bool connect_json)
{
    struct fg_err err = {{0}};
    uint64_t n_samples = batch->n_samples;
    if (batch->n_resources == 0) {
        fg_profiles_unref(batch);
        goto ok;
    }
    fg_metrics_set_request("http", 0); /* labels the service's counters */
    int rc = fg_consume(r->next, batch, &err);
    if (rc != 0) {
        int status = fg__consume_status(rc);
        fg_log(FG_LOG_DEBUG, r->base.id, "refusing request (HTTP %d): %s", status,
               err.msg[0] ? err.msg : fg_strerror(rc));
        fg__reply_error(resp, status, err.msg[0] ? err.msg : fg_strerror(rc));
        return;
    }
    fg_log(FG_LOG_DEBUG, r->base.id, "accepted %llu samples", (unsigned long long)n_samples);
ok:
    resp->status = 200;
    if (connect_json) {
        snprintf(resp->content_type, sizeof(resp->content_type), "application/json");
        fg_buf_append_str(&resp->body, "{}");
    }
}

/* Undoes a gzip body that the server did not (no Content-Encoding), so that legacy
 * detection and the parsers see the real bytes. */
static int maybe_gunzip(struct fg_http_receiver *r, const uint8_t **data, size_t *len,
                        struct fg_buf *plain, struct fg_err *err)
{
    if (!fg_is_gzip(*data, *len))
        return 0;
    fg_buf_init(plain, (size_t)r->max_body);
    int rc = fg_gunzip(*data, *len, plain, err);
    if (rc == FG_ETOOBIG)
        return fg_err_set(err, rc, "decompressed body over the limit of %llu bytes",
                          (unsigned long long)r->max_body);
    if (rc != 0) {
        fg_err_prefix(err, "gzip body");
        return FG_EINVAL;
    }
    *data = plain->data;
    *len = plain->len;
    return 0;
}

/* Pyroscope's "units" parameter → a pprof unit. */
static const char *units_to_unit(const char *units)
{
    if (!strcmp(units, "bytes"))
        return "bytes";
    if (!strcmp(units, "lock_nanoseconds") || !strcmp(units, "nanoseconds"))
        return "nanoseconds";
    if (!strcmp(units, "samples") || !strcmp(units, "objects") || !strcmp(units, "goroutines") ||
        !strcmp(units, "lock_samples"))
        return "count";
    return NULL;
}

struct ingest_params {
    struct pyro_name name;
    size_t base_len;
    const struct pyro_type *type; /* NULL: unknown suffix (fine for pprof only) */
    int64_t from_ns, until_ns;
    int64_t sample_rate;
    char spy[MAX_PARAM];
    char units[MAX_PARAM];
    bool average;
};

/* Interns s into p; on failure returns 0 and sets *rc. */
static uint32_t str_idx(struct fg_profiles *p, const char *s, int *rc)
{
    int32_t i = fg_dict_string(p, s, strlen(s));
    if (i < 0) {
        *rc = i;
        return 0;
    }
    return (uint32_t)i;
}

/* Resource attributes of an ingest request: service.name, then the labels of name (a
 * service.name label would be a second value for one key: the app name wins). */
static void build_resource_attrs(const struct ingest_params *ip, struct fg_keyvalue *kv,
                                 uint32_t *n)
{
    kv[0] = (struct fg_keyvalue){.key = {"service.name", 12},
                                 .value = {.kind = FG_VALUE_STRING,
                                           .u.s = {ip->name.app, (uint32_t)ip->base_len}}};
    *n = 1;
    for (size_t i = 0; i < ip->name.n_labels; i++) {
        const struct pyro_label *l = &ip->name.labels[i];
        if (l->key_len == 12 && memcmp(l->key, "service.name", 12) == 0)
            continue;
        kv[(*n)++] = (struct fg_keyvalue){
            .key = {l->key, (uint32_t)l->key_len},
            .value = {.kind = FG_VALUE_STRING, .u.s = {l->value, (uint32_t)l->value_len}}};
    }
}

/* folded / lines body → one profile. */
static int ingest_text(const struct ingest_params *ip, bool lines, const uint8_t *body,
                       size_t len, struct fg_profiles *batch, struct fg_err *err)
{
    struct fg_keyvalue kv[PYRO_MAX_LABELS + 1];
    uint32_t n_kv;
    build_resource_attrs(ip, kv, &n_kv);
    struct fg_resource res = {.n_attrs = n_kv, .attrs = kv};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(batch, &res, "", 0);
    struct fg_scope scope = {.name = {ip->spy, (uint32_t)strlen(ip->spy)}};
    struct fg_scope_profiles *sp = rp ? fg_profiles_add_scope(batch, rp, &scope, "", 0) : NULL;
    if (!sp)
        return fg_err_set(err, FG_ENOMEM, "out of memory");

    const struct pyro_type *t = ip->type;
    int rc = 0;
    struct fg_profile proto = {0};
    int64_t scale = 1;
    proto.sample_type.type = str_idx(batch, t->type, &rc);
    if (t->time && ip->sample_rate > 0) {
        proto.period = 1000000000 / ip->sample_rate;
        if (proto.period < 1)
            proto.period = 1;
        scale = proto.period;
        proto.sample_type.unit = str_idx(batch, t->unit, &rc);
    } else if (t->time) {
        proto.sample_type.unit = str_idx(batch, "count", &rc);
    } else {
        const char *unit = ip->units[0] ? units_to_unit(ip->units) : NULL;
        proto.sample_type.unit = str_idx(batch, unit ? unit : t->unit, &rc);
    }
    proto.period_type.type = str_idx(batch, t->period_type, &rc);
    proto.period_type.unit = str_idx(batch, t->period_unit, &rc);
    proto.time_unix_nano = ip->from_ns > 0 ? (uint64_t)ip->from_ns : 0;
    proto.duration_nano = ip->until_ns > ip->from_ns ? (uint64_t)(ip->until_ns - ip->from_ns) : 0;
    uint32_t attr = 0;
    if (ip->average) {
        struct fg_attribute a = {.key = str_idx(batch, "pyroscope.aggregation", &rc),
                                 .value = {.kind = FG_VALUE_STRING, .u.s = {"average", 7}}};
        int32_t ai = rc ? rc : fg_dict_attribute(batch, &a);
        if (ai < 0)
            rc = ai;
        else
            attr = (uint32_t)ai;
        proto.n_attrs = 1;
        proto.attrs = &attr;
    }
    if (rc != 0)
        return fg_err_set(err, rc, "out of memory");
    struct fg_profile *prof = fg_profiles_add_profile(batch, sp, &proto);
    if (!prof)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    struct fg_folded_opts o = {.lines = lines, .scale = scale};
    rc = fg_folded_parse(body, len, &o, batch, prof, NULL, err);
    if (rc != 0)
        fg_err_prefix(err, "%s body", lines ? "lines" : "folded");
    return rc;
}

/* sample_type_config: {"<sample type>": {"units": …, "display-name": …, …}} renames sample
 * types and sets their units on every profile of the batch. */
static int apply_sample_type_config(struct fg_profiles *batch, const uint8_t *json, size_t len,
                                    struct fg_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)json, len, 0, &jerr);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = fg_err_set(err, FG_EINVAL, "sample_type_config: %s",
                        root ? "not a JSON object" : jerr.text);
        goto out;
    }
    for (uint32_t r = 0; r < batch->n_resources; r++) {
        struct fg_resource_profiles *rp = &batch->resources[r];
        for (uint32_t s = 0; s < rp->n_scopes; s++) {
            struct fg_scope_profiles *sp = &rp->scopes[s];
            for (uint32_t i = 0; i < sp->n_profiles; i++) {
                struct fg_profile *prof = &sp->profiles[i];
                struct fg_bytes type = fg_dict_get_string(batch, prof->sample_type.type);
                json_t *c = json_object_getn(root, type.ptr, type.len);
                if (!c)
                    continue;
                if (!json_is_object(c)) {
                    rc = fg_err_set(err, FG_EINVAL, "sample_type_config.%s: not an object",
                                    type.ptr);
                    goto out;
                }
                json_t *units = json_object_get(c, "units");
                json_t *display = json_object_get(c, "display-name");
                if (json_is_string(units)) {
                    const char *u = units_to_unit(json_string_value(units));
                    uint32_t idx = str_idx(batch, u ? u : json_string_value(units), &rc);
                    if (rc)
                        goto nomem;
                    prof->sample_type.unit = idx;
                }
                if (json_is_string(display) && json_string_length(display) > 0) {
                    uint32_t idx = str_idx(batch, json_string_value(display), &rc);
                    if (rc)
                        goto nomem;
                    prof->sample_type.type = idx;
                }
            }
        }
    }
    goto out;
nomem:
    rc = fg_err_set(err, rc, "out of memory");
out:
    json_decref(root);
    return rc;
}

static int decode_pprof(struct fg_http_receiver *r, const uint8_t *data, size_t len,
                        const struct fg_keyvalue *kv, uint32_t n_kv, const char *scope,
                        size_t scope_len, struct fg_profiles *batch, struct fg_err *err)
{
    struct fg_buf plain = {0};
    int rc = maybe_gunzip(r, &data, &len, &plain, err);
    if (rc != 0)
        goto out;
    const char *legacy = pyro_legacy_format(data, len);
    if (legacy) {
        rc = fg_err_set(err, FG_EINVAL, "unsupported profile format: %s (convert it with "
                        "`go tool pprof -proto` first)", legacy);
        goto out;
    }
    if (len == 0) {
        rc = fg_err_set(err, FG_EINVAL, "empty pprof body");
        goto out;
    }
    struct fg_pprof_origin origin = {.resource_attrs = kv,
                                     .n_resource_attrs = n_kv,
                                     .scope_name = {scope, (uint32_t)scope_len}};
    rc = fg_pprof_decode(data, len, (size_t)r->max_body, &origin, batch, err);
    if (rc != 0 && rc != FG_ENOMEM && rc != FG_ETOOBIG)
        rc = FG_EINVAL;
    if (rc != 0)
        fg_err_prefix(err, "pprof");
out:
    fg_buf_free(&plain);
    return rc;
}

/* pprof body, raw or multipart. */
static int ingest_pprof(struct fg_http_receiver *r, const struct ingest_params *ip,
                        const struct fg_http_request *req, const uint8_t *body, size_t len,
                        struct fg_profiles *batch, struct fg_err *err)
{
    const uint8_t *profile = body, *config = NULL;
    size_t profile_len = len, config_len = 0;
    if (strcasestr(req->content_type, "multipart/form-data")) {
        struct fg_multipart_part parts[MAX_PARTS];
        size_t n = 0;
        int rc = fg_multipart_parse(req->content_type, body, len, parts, MAX_PARTS, &n, err);
        if (rc != 0)
            return rc;
        if (fg_multipart_find(parts, n, "prev_profile"))
            return fg_err_set(err, FG_EINVAL, "multipart field prev_profile is not supported "
                              "(cumulative profiles of old clients): send delta profiles");
        const struct fg_multipart_part *p = fg_multipart_find(parts, n, "profile");
        if (!p)
            return fg_err_set(err, FG_EINVAL, "multipart body without a \"profile\" field");
        profile = p->data;
        profile_len = p->len;
        const struct fg_multipart_part *c = fg_multipart_find(parts, n, "sample_type_config");
        if (c) {
            config = c->data;
            config_len = c->len;
        }
    }
    struct fg_keyvalue kv[PYRO_MAX_LABELS + 1];
    uint32_t n_kv;
    build_resource_attrs(ip, kv, &n_kv);
    int rc = decode_pprof(r, profile, profile_len, kv, n_kv, ip->spy, strlen(ip->spy), batch,
                          err);
    if (rc == 0 && config)
        rc = apply_sample_type_config(batch, config, config_len, err);
    if (rc == 0 && (ip->from_ns > 0 || ip->until_ns > 0)) {
        /* from/until only fill in what the pprof does not say */
        for (uint32_t i = 0; i < batch->n_resources; i++)
            for (uint32_t s = 0; s < batch->resources[i].n_scopes; s++) {
                struct fg_scope_profiles *sp = &batch->resources[i].scopes[s];
                for (uint32_t k = 0; k < sp->n_profiles; k++) {
                    struct fg_profile *prof = &sp->profiles[k];
                    if (prof->time_unix_nano == 0 && ip->from_ns > 0)
                        prof->time_unix_nano = (uint64_t)ip->from_ns;
                    if (prof->duration_nano == 0 && ip->until_ns > ip->from_ns)
                        prof->duration_nano = (uint64_t)(ip->until_ns - ip->from_ns);
                }
            }
    }
    return rc;
}

enum ingest_format { FMT_FOLDED, FMT_LINES, FMT_PPROF, FMT_UNSUPPORTED };

static void ingest_handle(void *ctx, const struct fg_http_request *req,
                          struct fg_http_response *resp)
{
    struct fg_http_receiver *r = ctx;
    struct ingest_params *ip = fg_calloc(1, sizeof(*ip));
    char *name = fg_malloc(MAX_NAME);
    char fmt[MAX_PARAM], val[MAX_PARAM];
    struct fg_profiles *batch = NULL;
    struct fg_buf plain = {0};
    struct fg_err err = {{0}};
    int status = 400, rc;

    if (!ip || !name) {
        fg__reply_error(resp, 503, "out of memory");
        goto out;
    }
    int n = fg__query_get(req->query, "name", name, MAX_NAME);
    if (n < 0) {
        fg__reply_error(resp, 400, n == -1 ? "name: required query parameter is missing"
                                           : "name: bad %-escape or too long");
        goto out;
    }
    if (pyro_parse_name(name, (size_t)n, &ip->name, &err) != 0) {
        fg__reply_error(resp, 400, err.msg);
        goto out;
    }
    bool known = pyro_split_type(ip->name.app, ip->name.app_len, &ip->base_len, &ip->type) == 0;

    /* format selection in Pyroscope's order (WIRE.md §6.1) */
    enum ingest_format format = FMT_FOLDED;
    const char *unsupported = NULL;
    bool have_fmt = fg__query_get(req->query, "format", fmt, sizeof(fmt)) >= 0;
    if (!have_fmt)
        fmt[0] = '\0';
    if (!strcmp(fmt, "trie") || !strcmp(fmt, "tree") || !strcmp(fmt, "speedscope") ||
        strcasestr(req->content_type, "octet-stream+trie") ||
        strcasestr(req->content_type, "octet-stream+tree")) {
        unsupported = "the trie, tree and speedscope formats are not supported (use pprof, "
                      "folded or lines)";
    } else if (!strcmp(fmt, "jfr")) {
        unsupported = "JFR is not supported (use pprof, folded or lines)";
    } else if (!strcmp(fmt, "lines")) {
        format = FMT_LINES;
    } else if (!strcmp(fmt, "pprof")) {
        format = FMT_PPROF;
    } else if (have_fmt && strcmp(fmt, "folded") != 0 && strcmp(fmt, "groups") != 0) {
        unsupported = "unknown format (supported: pprof, folded, lines)";
    } else if (!have_fmt && strcasestr(req->content_type, "multipart/form-data")) {
        format = FMT_PPROF;
    }
    if (unsupported) {
        fg__reply_error(resp, 415, unsupported);
        goto out;
    }
    if (format != FMT_PPROF && !known) {
        char msg[200];
        snprintf(msg, sizeof(msg), "name: unknown profile type suffix in \"%.*s\"",
                 (int)FG_MIN(ip->name.app_len, (size_t)100), ip->name.app);
        fg__reply_error(resp, 400, msg);
        goto out;
    }
    if (format == FMT_PPROF && !known)
        ip->base_len = ip->name.app_len; /* the name is only a prefix for pprof */

    int64_t now = realtime_ns();
    ip->from_ns = ip->until_ns = 0;
    if (fg__query_get(req->query, "from", val, sizeof(val)) >= 0 && val[0] &&
        pyro_parse_time(val, now, &ip->from_ns) != 0) {
        fg__reply_error(resp, 400, "from: not a time (Unix s/ms/µs/ns, YYYYMMDD or now-N)");
        goto out;
    }
    if (fg__query_get(req->query, "until", val, sizeof(val)) >= 0 && val[0] &&
        pyro_parse_time(val, now, &ip->until_ns) != 0) {
        fg__reply_error(resp, 400, "until: not a time (Unix s/ms/µs/ns, YYYYMMDD or now-N)");
        goto out;
    }
    if (format != FMT_PPROF && ip->from_ns == 0)
        ip->from_ns = ip->until_ns ? ip->until_ns : now;
    ip->sample_rate = DEFAULT_SAMPLE_RATE;
    int64_t rate;
    if (fg__query_get(req->query, "sampleRate", val, sizeof(val)) >= 0 &&
        fg_parse_int(val, &rate) == 0 && rate >= 0 && rate <= 1000000000)
        ip->sample_rate = rate; /* invalid ⇒ default, as Pyroscope does */
    if (fg__query_get(req->query, "spyName", ip->spy, sizeof(ip->spy)) < 0)
        ip->spy[0] = '\0';
    if (fg__query_get(req->query, "units", ip->units, sizeof(ip->units)) < 0)
        ip->units[0] = '\0';
    ip->average = fg__query_get(req->query, "aggregationType", val, sizeof(val)) >= 0 &&
                  !strcmp(val, "average");

    if ((rc = fg_profiles_new(&batch)) != 0) {
        fg__reply_error(resp, 503, "out of memory");
        goto out;
    }
    if (fg__tenant_from_headers(req, &r->tenant_headers, batch, &err) != 0) {
        fg__reply_error(resp, 400, err.msg);
        goto out;
    }
    const uint8_t *body = req->body;
    size_t len = req->body_len;
    if (format == FMT_PPROF) {
        rc = ingest_pprof(r, ip, req, body, len, batch, &err);
    } else if ((rc = maybe_gunzip(r, &body, &len, &plain, &err)) == 0) {
        const char *legacy = pyro_legacy_format(body, len);
        if (legacy)
            rc = fg_err_set(&err, FG_EINVAL, "unsupported profile format: %s", legacy);
        else if (memchr(body, '\0', len))
            rc = fg_err_set(&err, FG_EINVAL, "binary body: format=%s expects text",
                            format == FMT_LINES ? "lines" : "folded");
        else
            rc = ingest_text(ip, format == FMT_LINES, body, len, batch, &err);
    }
    if (rc != 0) {
        status = rc == FG_ENOMEM ? 503 : rc == FG_ETOOBIG ? 413 : 400;
        fg_log(FG_LOG_DEBUG, r->base.id, "rejecting ingest (HTTP %d): %s", status, err.msg);
        fg__reply_error(resp, status, err.msg);
        goto out;
    }
    deliver(r, batch, resp, false);
    batch = NULL;
out:
    fg_profiles_unref(batch);
    fg_buf_free(&plain);
    fg_free(name);
    fg_free(ip);
}

/* ---------------------------------------------------------------------------------------
 * push.v1.PusherService/Push (Connect unary) */

/* One series: its labels as resource attributes, its samples decoded under them. */
struct push_series {
    size_t n_labels;
    const char *const *names;  /* label names */
    const char *const *values; /* label values */
    size_t n_samples;
    const uint8_t *const *raw;
    const size_t *raw_len;
};

static int push_series(struct fg_http_receiver *r, const struct push_series *s,
                       struct fg_profiles *batch, size_t index, struct fg_err *err)
{
    struct fg_keyvalue *kv = fg_calloc(s->n_labels + 1, sizeof(*kv));
    const char *scope = "";
    uint32_t n = 0;
    int rc = 0;
    if (!kv)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->n_labels; i++) {
        const char *k = s->names[i] ? s->names[i] : "", *v = s->values[i] ? s->values[i] : "";
        if (!strcmp(k, "service_name"))
            k = "service.name";
        else if (!strcmp(k, "__name__"))
            k = FAMILY_ATTR;
        else if (!strcmp(k, "pyroscope_spy")) {
            scope = v;
            continue;
        } else if (k[0] == '_' && k[1] == '_') {
            continue; /* Pyroscope's internal labels (__delta__, __profile_type__, …) */
        } else if (!valid_label_name(k, strlen(k))) {
            rc = fg_err_set(err, FG_EINVAL, "series[%zu]: invalid label name \"%.64s\"", index,
                            k);
            goto out;
        }
        for (uint32_t j = 0; j < n; j++)
            if (!strcmp(kv[j].key.ptr, k)) {
                rc = fg_err_set(err, FG_EINVAL, "series[%zu]: label \"%.64s\" given twice",
                                index, s->names[i]);
                goto out;
            }
        kv[n++] = (struct fg_keyvalue){
            .key = {k, (uint32_t)strlen(k)},
            .value = {.kind = FG_VALUE_STRING, .u.s = {v, (uint32_t)strlen(v)}}};
    }
    for (size_t i = 0; i < s->n_samples; i++) {
        rc = decode_pprof(r, s->raw[i], s->raw_len[i], kv, n, scope, strlen(scope), batch, err);
        if (rc != 0) {
            fg_err_prefix(err, "series[%zu].samples[%zu]", index, i);
            goto out;
        }
    }
out:
    fg_free(kv);
    return rc;
}

static int push_from_proto(struct fg_http_receiver *r, const uint8_t *body, size_t len,
                           struct fg_profiles *batch, struct fg_err *err)
{
    Push__V1__PushRequest *req = push__v1__push_request__unpack(NULL, len, body);
    int rc = 0;
    if (!req)
        return fg_err_set(err, FG_EINVAL, "body is not a push.v1.PushRequest");
    for (size_t i = 0; rc == 0 && i < req->n_series; i++) {
        const Push__V1__RawProfileSeries *ps = req->series[i];
        const char **names = fg_calloc(ps->n_labels + 1, sizeof(*names));
        const char **values = fg_calloc(ps->n_labels + 1, sizeof(*values));
        const uint8_t **raw = fg_calloc(ps->n_samples + 1, sizeof(*raw));
        size_t *raw_len = fg_calloc(ps->n_samples + 1, sizeof(*raw_len));
        if (!names || !values || !raw || !raw_len) {
            rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        } else {
            for (size_t k = 0; k < ps->n_labels; k++) {
                names[k] = ps->labels[k]->name;
                values[k] = ps->labels[k]->value;
            }
            for (size_t k = 0; k < ps->n_samples; k++) {
                raw[k] = ps->samples[k]->raw_profile.data;
                raw_len[k] = ps->samples[k]->raw_profile.len;
            }
            struct push_series s = {ps->n_labels, names, values, ps->n_samples, raw, raw_len};
            rc = push_series(r, &s, batch, i, err);
        }
        fg_free(names);
        fg_free(values);
        fg_free(raw);
        fg_free(raw_len);
    }
    push__v1__push_request__free_unpacked(req, NULL);
    return rc;
}

/* Standard or URL-safe base64, padding optional (proto3 JSON accepts both). */
static int base64_decode(const char *s, size_t len, struct fg_buf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+' || c == '-')
            v = 62;
        else if (c == '/' || c == '_')
            v = 63;
        else if (c == '=')
            break;
        else
            return FG_EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            uint8_t b = (uint8_t)(acc >> bits);
            int rc = fg_buf_append(out, &b, 1);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int push_from_json(struct fg_http_receiver *r, const uint8_t *body, size_t len,
                          struct fg_profiles *batch, struct fg_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, len, 0, &jerr);
    struct fg_buf *bufs = NULL;
    size_t n_bufs = 0;
    int rc = 0;
    if (!json_is_object(root)) {
        rc = fg_err_set(err, FG_EINVAL, "body is not a JSON PushRequest: %s",
                        root ? "not an object" : jerr.text);
        goto out;
    }
    json_t *series = json_object_get(root, "series");
    if (series && !json_is_array(series)) {
        rc = fg_err_set(err, FG_EINVAL, "series: not an array");
        goto out;
    }
    for (size_t i = 0; rc == 0 && i < json_array_size(series); i++) {
        json_t *js = json_array_get(series, i);
        json_t *labels = json_object_get(js, "labels");
        json_t *samples = json_object_get(js, "samples");
        size_t nl = json_array_size(labels), ns = json_array_size(samples);
        const char **names = fg_calloc(nl + 1, sizeof(*names));
        const char **values = fg_calloc(nl + 1, sizeof(*values));
        const uint8_t **raw = fg_calloc(ns + 1, sizeof(*raw));
        size_t *raw_len = fg_calloc(ns + 1, sizeof(*raw_len));
        bufs = fg_calloc(ns + 1, sizeof(*bufs));
        n_bufs = ns;
        if (!names || !values || !raw || !raw_len || !bufs) {
            rc = fg_err_set(err, FG_ENOMEM, "out of memory");
            goto next;
        }
        for (size_t k = 0; k < nl; k++) {
            json_t *l = json_array_get(labels, k);
            names[k] = json_string_value(json_object_get(l, "name"));
            values[k] = json_string_value(json_object_get(l, "value"));
            if (!names[k]) {
                rc = fg_err_set(err, FG_EINVAL, "series[%zu].labels[%zu].name: not a string",
                                i, k);
                goto next;
            }
        }
        for (size_t k = 0; k < ns; k++) {
            json_t *smp = json_array_get(samples, k);
            json_t *b64 = json_object_get(smp, "rawProfile");
            if (!b64)
                b64 = json_object_get(smp, "raw_profile");
            fg_buf_init(&bufs[k], (size_t)r->max_body);
            if (b64 && (!json_is_string(b64) ||
                        base64_decode(json_string_value(b64), json_string_length(b64),
                                      &bufs[k]) != 0)) {
                rc = fg_err_set(err, FG_EINVAL, "series[%zu].samples[%zu].rawProfile: not "
                                "base64", i, k);
                goto next;
            }
            raw[k] = bufs[k].data;
            raw_len[k] = bufs[k].len;
        }
        struct push_series s = {nl, names, values, ns, raw, raw_len};
        rc = push_series(r, &s, batch, i, err);
    next:
        for (size_t k = 0; bufs && k < n_bufs; k++)
            fg_buf_free(&bufs[k]);
        fg_free(bufs);
        bufs = NULL;
        fg_free(names);
        fg_free(values);
        fg_free(raw);
        fg_free(raw_len);
    }
out:
    json_decref(root);
    return rc;
}

static void push_handle(void *ctx, const struct fg_http_request *req,
                        struct fg_http_response *resp)
{
    struct fg_http_receiver *r = ctx;
    struct fg_profiles *batch = NULL;
    struct fg_err err = {{0}};
    bool json;
    int rc;

    if (fg_http_media_type_is(req->content_type, "application/proto") ||
        fg_http_media_type_is(req->content_type, "application/x-protobuf")) {
        json = false;
    } else if (fg_http_media_type_is(req->content_type, "application/json")) {
        json = true;
    } else if (strncasecmp(req->content_type, "application/grpc", 16) == 0) {
        fg__reply_error(resp, 415, "gRPC needs HTTP/2 (h2c with prior knowledge); over "
                        "HTTP/1.1 use the Connect protocol (application/proto or "
                        "application/json)");
        return;
    } else {
        fg__reply_error(resp, 415, "Content-Type must be application/proto or "
                        "application/json (Connect unary)");
        return;
    }
    if ((rc = fg_profiles_new(&batch)) != 0) {
        fg__reply_error(resp, 503, "out of memory");
        return;
    }
    if ((rc = fg__tenant_from_headers(req, &r->tenant_headers, batch, &err)) == 0)
        rc = json ? push_from_json(r, req->body, req->body_len, batch, &err)
                  : push_from_proto(r, req->body, req->body_len, batch, &err);
    if (rc != 0) {
        int status = rc == FG_ENOMEM ? 503 : rc == FG_ETOOBIG ? 413 : 400;
        fg_log(FG_LOG_DEBUG, r->base.id, "rejecting push (HTTP %d): %s", status, err.msg);
        fg__reply_error(resp, status, err.msg);
        fg_profiles_unref(batch);
        return;
    }
    deliver(r, batch, resp, json);
    if (!json && resp->status == 200)
        snprintf(resp->content_type, sizeof(resp->content_type), "application/proto");
}

/* The gRPC form of Push (HTTP/2): the same decoding; statuses as Pyroscope's gRPC API. */
static void push_grpc(void *ctx, const struct fg_grpc_request *req,
                      struct fg_grpc_response *resp)
{
    struct fg_http_receiver *r = ctx;
    struct fg_profiles *batch = NULL;
    struct fg_err err = {{0}};
    int rc = fg_profiles_new(&batch);
    if (rc == 0)
        rc = tenant_from(grpc_lookup, req, &r->tenant_headers, batch, &err);
    if (rc == 0)
        rc = push_from_proto(r, req->message, req->message_len, batch, &err);
    if (rc == 0 && batch->n_resources == 0) {
        fg_profiles_unref(batch); /* nothing to pass on: a success */
        return;
    }
    if (rc == 0) {
        fg_metrics_set_request("grpc", req->message_len);
        rc = fg_consume(r->next, batch, &err); /* takes the batch */
    } else {
        fg_profiles_unref(batch);
    }
    if (rc == 0)
        return; /* an empty PushResponse */
    const char *msg = err.msg[0] ? err.msg : fg_strerror(rc);
    fg_log(FG_LOG_DEBUG, r->base.id, "refusing gRPC push (%s): %s", fg_strerror(rc), msg);
    snprintf(resp->message, sizeof(resp->message), "%s", msg);
    switch (fg__consume_status(rc)) {
    case 400:
        resp->status = FG_GRPC_INVALID_ARGUMENT;
        return;
    case 429:
        resp->status = FG_GRPC_RESOURCE_EXHAUSTED;
        break;
    case 503:
        resp->status = FG_GRPC_UNAVAILABLE;
        break;
    default:
        resp->status = FG_GRPC_INTERNAL;
        return;
    }
    if (fg_grpc_status_details(resp->status, msg, RETRY_DELAY_NS, &resp->details) != 0)
        fg_buf_free(&resp->details); /* the code alone still says "retry" */
}

/* ---------------------------------------------------------------------------------------
 * Lifecycle */

static int pyroscope_start(struct fg_component *c, struct fg_err *err)
{
    struct fg_http_receiver *r = (struct fg_http_receiver *)c;
    const struct fg_http_route http[] = {
        {INGEST_PATH, "POST", ingest_handle, r, r->max_body},
        {INGEST_PATH_PREFIXED, "POST", ingest_handle, r, r->max_body},
        {PUSH_PATH, "POST", push_handle, r, r->max_body},
    };
    const struct fg_grpc_route grpc[] = {{PUSH_PATH, push_grpc, r, r->max_body}};
    const struct fg_http_listener_routes routes = {http, FG_ARRAY_LEN(http), grpc,
                                                   FG_ARRAY_LEN(grpc)};
    return fg_http_listener_start(&r->listener, r->base.id, &routes, err);
}

static const struct fg_component_ops pyroscope_ops = {
    .start = pyroscope_start,
    .shutdown = fg_http_receiver_shutdown,
    .destroy = fg_http_receiver_destroy,
};

static int pyroscope_create(const struct fg_create_args *args, struct fg_component **out,
                            struct fg_err *err)
{
    return fg_http_receiver_create(args, &fg_pyroscope_receiver_factory, &pyroscope_ops,
                                   "Pyroscope", out, err);
}

const struct fg_factory fg_pyroscope_receiver_factory = {
    .type = "pyroscope",
    .kind = FG_KIND_RECEIVER,
    .config_size = sizeof(struct fg_http_receiver_config),
    .options = pyroscope_options,
    .create = pyroscope_create,
};
