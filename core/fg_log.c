/* Log records, one write per line: console "2026-11-27T13:29:21.123Z info  component: message"
 * or one JSON object; every record is scrubbed of the configured secrets. */
#include "fg_log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_common.h"

enum fg_log_level fg__log_level = FG_LOG_INFO;
static enum fg_log_encoding log_encoding = FG_LOG_CONSOLE;

static pthread_rwlock_t secrets_lock = PTHREAD_RWLOCK_INITIALIZER;
static char **secrets;
static size_t n_secrets;

void fg_log_set_level(enum fg_log_level level)
{
    __atomic_store_n(&fg__log_level, level, __ATOMIC_RELAXED);
}

void fg_log_set_encoding(enum fg_log_encoding encoding)
{
    __atomic_store_n(&log_encoding, encoding, __ATOMIC_RELAXED);
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fg_free(list[i]);
    fg_free(list);
}

int fg_log_set_secrets(const char *const *values, size_t n)
{
    char **copy = n ? fg_calloc(n, sizeof(*copy)) : NULL;
    size_t m = 0;
    if (n && !copy)
        return FG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!values[i] || strlen(values[i]) < 4)
            continue;
        bool seen = false;
        for (size_t j = 0; j < m && !seen; j++)
            seen = strcmp(copy[j], values[i]) == 0;
        if (seen)
            continue;
        size_t len = strlen(values[i]) + 1;
        if (!(copy[m] = fg_malloc(len))) {
            free_list(copy, m);
            return FG_ENOMEM;
        }
        memcpy(copy[m++], values[i], len);
    }
    pthread_rwlock_wrlock(&secrets_lock);
    char **old = secrets;
    size_t n_old = n_secrets;
    secrets = copy;
    n_secrets = m;
    pthread_rwlock_unlock(&secrets_lock);
    free_list(old, n_old);
    return 0;
}

/* Replaces text[at..at+n) by "***" (n >= 3). */
static void redact(char *text, size_t *len, size_t at, size_t n)
{
    memcpy(text + at, "***", 3);
    memmove(text + at + 3, text + at + n, *len - at - n);
    *len -= n - 3;
}

/* Replaces every secret in text[0..*len) by "***", and also a cut-off secret: at least its
 * first 8 bytes ending the text or followed by a delimiter, as left by a component that
 * shortened a message quoting it. */
static void scrub(char *text, size_t *len)
{
    pthread_rwlock_rdlock(&secrets_lock);
    for (size_t i = 0; i < n_secrets; i++) {
        size_t sl = strlen(secrets[i]);
        size_t probe = sl < 8 ? sl : 8;
        char *p = text;
        while ((p = memmem(p, *len - (size_t)(p - text), secrets[i], probe)) != NULL) {
            size_t at = (size_t)(p - text), m = probe;
            while (m < sl && at + m < *len && text[at + m] == secrets[i][m])
                m++;
            bool cut = at + m == *len || strchr(" \t\n\"',;)]}", text[at + m]);
            if (m == sl || cut) {
                redact(text, len, at, m);
                p = text + at + 3;
            } else {
                p++;
            }
        }
    }
    pthread_rwlock_unlock(&secrets_lock);
}

int fg_log_level_parse(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "none"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return FG_LOG_WARN;
    return -1;
}

/* Appends s as JSON string content (without quotes) to out[*n..cap), cut at the end. */
static void json_escape(char *out, size_t *n, size_t cap, const char *s, size_t len)
{
    for (size_t i = 0; i < len && *n + 7 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[(*n)++] = '\\';
            out[(*n)++] = (char)ch;
        } else if (ch == '\n') {
            out[(*n)++] = '\\';
            out[(*n)++] = 'n';
        } else if (ch == '\t') {
            out[(*n)++] = '\\';
            out[(*n)++] = 't';
        } else if (ch < 0x20 || ch == 0x7f) {
            *n += (size_t)snprintf(out + *n, cap - *n, "\\u%04x", ch);
        } else {
            out[(*n)++] = (char)ch;
        }
    }
}

void fg__log(enum fg_log_level level, const char *component, const char *fmt, ...)
{
    static const char *const tags[] = {"debug", "info", "warn", "error", "off"};
    char msg[2048], line[4600], ts[32];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(tv.tv_usec / 1000));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t mlen = m < 0 ? 0 : FG_MIN((size_t)m, sizeof(msg) - 1);
    scrub(msg, &mlen);

    size_t n;
    if (__atomic_load_n(&log_encoding, __ATOMIC_RELAXED) == FG_LOG_JSON) {
        n = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"",
                             ts, tags[level]);
        json_escape(line, &n, sizeof(line), component, strlen(component));
        memcpy(line + n, "\",\"msg\":\"", 9);
        n += 9;
        json_escape(line, &n, sizeof(line) - 3, msg, mlen);
        memcpy(line + n, "\"}", 2);
        n += 2;
    } else {
        int h = snprintf(line, sizeof(line), "%s %-5s %s: ", ts, tags[level], component);
        n = h < 0 ? 0 : FG_MIN((size_t)h, sizeof(line) - 2);
        size_t room = sizeof(line) - n - 2;
        memcpy(line + n, msg, FG_MIN(mlen, room));
        n += FG_MIN(mlen, room);
    }
    line[n++] = '\n';
    fwrite(line, 1, n, stderr); /* one write per record keeps lines whole across threads */
}
