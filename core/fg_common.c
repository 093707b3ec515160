/* Error strings and the fg_err helpers. */
#include "fg_common.h"

#include <stdio.h>
#include <string.h>

const char *fg_strerror(int code)
{
    switch (code) {
    case FG_OK:
        return "ok";
#define FG__ERR_CASE(name, val, text) \
    case (val):                       \
        return text;
        FG_ERRNO_MAP(FG__ERR_CASE)
#undef FG__ERR_CASE
    }
    return "unknown error";
}

int fg_err_set(struct fg_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

void fg_err_prefix(struct fg_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    char old[sizeof(err->msg)];
    memcpy(old, err->msg, sizeof(old));
    snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
}
