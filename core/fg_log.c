/* Log records: "2026-11-27T13:29:21.123Z info  component: message". */
#include "fg_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

enum fg_log_level fg__log_level = FG_LOG_INFO;

void fg_log_set_level(enum fg_log_level level)
{
    __atomic_store_n(&fg__log_level, level, __ATOMIC_RELAXED);
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

void fg__log(enum fg_log_level level, const char *component, const char *fmt, ...)
{
    static const char *const tags[] = {"debug", "info", "warn", "error", "off"};
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), tags[level], component);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : ((size_t)m < sizeof(line) - (size_t)n - 2 ? (size_t)m : sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    fwrite(line, 1, len, stderr); /* one write per record keeps lines whole across threads */
}
