/* gzip/deflate with hard output limits, so a compression bomb is an error, not an OOM. */
#ifndef FG_GZIP_H
#define FG_GZIP_H

#include <stddef.h>
#include <stdint.h>

#include "fg_buf.h"
#include "fg_common.h"

/* Decompresses gzip (or zlib when zlib_header) into out (appended). FG_ETOOBIG when the
 * output would pass out->limit, FG_EINVAL on corrupt data. Concatenated gzip members are
 * accepted. */
int fg_gunzip(const uint8_t *in, size_t len, struct fg_buf *out, struct fg_err *err);
int fg_inflate_zlib(const uint8_t *in, size_t len, struct fg_buf *out, struct fg_err *err);
/* The level exporters use: on profiles level 1 is about 3x faster than 6 for ~3% more
 * bytes, and a gateway is CPU-bound long before it is bandwidth-bound. */
#define FG_GZIP_LEVEL 1

/* Compresses in with gzip framing, appending to out. */
int fg_gzip(const uint8_t *in, size_t len, int level, struct fg_buf *out);
static inline int fg_is_gzip(const uint8_t *p, size_t len)
{
    return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

#endif
