/* Error codes, the error-detail carrier and small helpers shared by every module. */
#ifndef FG_COMMON_H
#define FG_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* One closed set of error codes; functions return 0 or one of these (negative). */
#define FG_ERRNO_MAP(X)                                                   \
    X(NOMEM, -1, "out of memory")                                         \
    X(INVAL, -2, "invalid argument or input")                             \
    X(TOOBIG, -3, "size limit exceeded")                                  \
    X(IO, -4, "input/output error")                                       \
    X(FULL, -5, "queue full")                                             \
    X(NOTFOUND, -6, "not found")                                          \
    X(UNSUPPORTED, -7, "unsupported")                                     \
    X(TIMEOUT, -8, "timed out")                                           \
    X(STOPPED, -9, "stopped")                                             \
    X(PERMANENT, -10, "rejected permanently")                             \
    X(RETRYABLE, -11, "failed, retryable")

enum fg_errno {
    FG_OK = 0,
#define FG__ERR_ENUM(name, val, text) FG_E##name = (val),
    FG_ERRNO_MAP(FG__ERR_ENUM)
#undef FG__ERR_ENUM
};

const char *fg_strerror(int code);

/* Human detail for an error; the caller owns it and passes it down. */
struct fg_err {
    char msg[256];
};

/* Writes the message (printf-style) and returns code, so callers can `return fg_err_set(...)`.
 * err may be NULL. */
int fg_err_set(struct fg_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to the message already in err. */
void fg_err_prefix(struct fg_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define FG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define FG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FG_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FG_UNUSED(x) ((void)(x))

#endif
