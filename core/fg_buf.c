/* fg_buf: amortised doubling, capped by limit. */
#include "fg_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_common.h"

void fg_buf_init(struct fg_buf *buf, size_t limit)
{
    memset(buf, 0, sizeof(*buf));
    buf->limit = limit;
}

void fg_buf_free(struct fg_buf *buf)
{
    fg_free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

int fg_buf_reserve(struct fg_buf *buf, size_t extra)
{
    if (extra <= buf->cap - buf->len)
        return 0;
    if (extra > SIZE_MAX / 2 - buf->len)
        return FG_ETOOBIG;
    size_t need = buf->len + extra;
    if (buf->limit && need > buf->limit)
        return FG_ETOOBIG;
    size_t cap = buf->cap ? buf->cap * 2 : 256;
    while (cap < need)
        cap *= 2;
    if (buf->limit && cap > buf->limit)
        cap = buf->limit;
    uint8_t *p = fg_realloc(buf->data, cap);
    if (!p)
        return FG_ENOMEM;
    buf->data = p;
    buf->cap = cap;
    return 0;
}

int fg_buf_append(struct fg_buf *buf, const void *data, size_t len)
{
    int rc = fg_buf_reserve(buf, len);
    if (rc)
        return rc;
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    return 0;
}

int fg_buf_append_str(struct fg_buf *buf, const char *s)
{
    return fg_buf_append(buf, s, strlen(s));
}

int fg_buf_printf(struct fg_buf *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return FG_EINVAL;
    int rc = fg_buf_reserve(buf, (size_t)n + 1);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
    return 0;
}

uint8_t *fg_buf_steal(struct fg_buf *buf, size_t *len)
{
    uint8_t *data = buf->data;
    if (len)
        *len = buf->len;
    buf->data = NULL;
    buf->len = buf->cap = 0;
    return data;
}
