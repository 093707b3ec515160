/* Private to the pyroscope and samples receivers and their tests: the request-parsing helpers
 * both receivers use (query strings, Pyroscope app names and times, tenant headers). */
#ifndef FG_PYROSCOPE_RECEIVER_H
#define FG_PYROSCOPE_RECEIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_common.h"
#include "fg_http.h"
#include "fg_http_receiver.h"

struct fg_profiles;

/* Its config is a struct fg_http_receiver_config. */
extern const struct fg_factory fg_pyroscope_receiver_factory;

/* ---- shared with the samples receiver ---- */

/* The value of key in a raw query string, percent- and '+'-decoded into out (NUL-terminated).
 * Returns its length, -1 when the key is absent, FG_ETOOBIG when it does not fit, FG_EINVAL
 * for a bad %-escape or an embedded NUL. */
int fg__query_get(const char *query, const char *key, char *out, size_t outsize);

/* Calls fn for every key=value of a query (both decoded, NUL-terminated; fn's strings last
 * for the call only). Stops at the first non-zero return of fn and returns it. */
int fg__query_each(const char *query, int (*fn)(void *ctx, const char *key, const char *value),
                   void *ctx, struct fg_err *err);

/* Copies the first non-empty value of the configured tenant headers into batch->tenant.
 * FG_EINVAL when it does not fit (a cut tenant would mix tenants). */
int fg__tenant_from_headers(const struct fg_http_request *req, const struct fg_strlist *headers,
                            struct fg_profiles *batch, struct fg_err *err);

/* Maps a downstream consume result to an HTTP status (0 → 200). */
int fg__consume_status(int rc);

/* Writes the Pyroscope/Connect error body {"code":"…","message":"…"} with its status. */
void fg__reply_error(struct fg_http_response *resp, int status, const char *message);

/* ---- Pyroscope names, types and times (exposed for the unit tests) ---- */

#define PYRO_MAX_LABELS 64

struct pyro_label {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
};

/* "app.suffix{k=v,…}" split into pointers into the given text. */
struct pyro_name {
    const char *app; /* everything before '{', trimmed */
    size_t app_len;
    struct pyro_label labels[PYRO_MAX_LABELS];
    size_t n_labels;
};

/* FG_EINVAL (message says why) for an empty app name, an unclosed '{', text after '}',
 * a label without '=', an invalid or duplicate label name, or too many labels. */
int pyro_parse_name(const char *text, size_t len, struct pyro_name *out, struct fg_err *err);

/* What a legacy (folded/lines) body's values mean, from the app name's suffix. */
struct pyro_type {
    const char *suffix;
    const char *type, *unit;               /* sample type */
    const char *period_type, *period_unit; /* period type */
    bool time;                             /* cpu/wall: counts × 1e9/sampleRate ns */
};

/* Splits app into base and type: no '.' or a known suffix (base without it) → 0; an unknown
 * suffix → FG_ENOTFOUND with *type NULL and *base_len the whole length. */
int pyro_split_type(const char *app, size_t len, size_t *base_len, const struct pyro_type **type);

/* from/until: digits (8 = YYYYMMDD, 13 ms, 16 µs, 19 ns, else seconds) or "now",
 * "now-1h", "now+30s" (s, m, h, d). FG_EINVAL when unparseable. */
int pyro_parse_time(const char *text, int64_t now_ns, int64_t *out_ns);

/* The name of a legacy profile format that data (decompressed) is in, or NULL: gperftools'
 * binary CPU profile and the text heap/contention/count profiles, which we do not convert. */
const char *pyro_legacy_format(const uint8_t *data, size_t len);

#endif
