/* zlib glue: streaming inflate into a limited fg_buf. */
#include "fg_gzip.h"

#include <zlib.h>

static int make_room(struct fg_buf *out, struct fg_err *err)
{
    if (out->cap > out->len)
        return 0;
    int rc = fg_buf_reserve(out, 64 * 1024);
    if (rc == FG_ETOOBIG && out->limit > out->len)
        rc = fg_buf_reserve(out, out->limit - out->len); /* the exact remainder */
    if (rc == FG_ETOOBIG)
        return fg_err_set(err, FG_ETOOBIG, "decompressed body exceeds the limit of %zu bytes",
                          out->limit);
    if (rc)
        return fg_err_set(err, rc, "out of memory while decompressing");
    return 0;
}

static int inflate_into(const uint8_t *in, size_t len, int window_bits, struct fg_buf *out,
                        struct fg_err *err)
{
    z_stream zs = {0};
    if (inflateInit2(&zs, window_bits) != Z_OK)
        return fg_err_set(err, FG_ENOMEM, "cannot start decompression");
    const uint8_t *next = in; /* input not yet handed to zlib */
    size_t left = len;
    int rc = 0;
    for (;;) {
        if ((rc = make_room(out, err)) != 0)
            break;
        if (zs.avail_in == 0 && left > 0) {
            zs.next_in = (Bytef *)next;
            zs.avail_in = (uInt)FG_MIN(left, (size_t)1 << 30);
            next += zs.avail_in;
            left -= zs.avail_in;
        }
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)FG_MIN(out->cap - out->len, (size_t)1 << 30);
        uInt before = zs.avail_out;
        int zrc = inflate(&zs, Z_NO_FLUSH);
        out->len += before - zs.avail_out;
        if (zrc == Z_STREAM_END) {
            if (zs.avail_in == 0 && left == 0)
                break;
            /* rewind to the unread input: another gzip member may follow */
            next -= zs.avail_in;
            left += zs.avail_in;
            zs.avail_in = 0;
            if (window_bits > 15 && fg_is_gzip(next, left)) {
                inflateReset(&zs);
                continue;
            }
            rc = fg_err_set(err, FG_EINVAL, "trailing bytes after compressed data");
            break;
        }
        if (zrc == Z_BUF_ERROR && zs.avail_in == 0 && left == 0) {
            rc = fg_err_set(err, FG_EINVAL, "truncated compressed data");
            break;
        }
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            rc = fg_err_set(err, zrc == Z_MEM_ERROR ? FG_ENOMEM : FG_EINVAL,
                            "corrupt compressed data: %s", zs.msg ? zs.msg : "inflate failed");
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

int fg_gunzip(const uint8_t *in, size_t len, struct fg_buf *out, struct fg_err *err)
{
    return inflate_into(in, len, 15 + 16, out, err);
}

int fg_inflate_zlib(const uint8_t *in, size_t len, struct fg_buf *out, struct fg_err *err)
{
    return inflate_into(in, len, 15, out, err);
}

int fg_gzip(const uint8_t *in, size_t len, int level, struct fg_buf *out)
{
    z_stream zs = {0};
    if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return FG_ENOMEM;
    int rc = fg_buf_reserve(out, deflateBound(&zs, (uLong)len));
    if (rc) {
        deflateEnd(&zs);
        return rc;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out->data + out->len;
    zs.avail_out = (uInt)(out->cap - out->len);
    int zrc = deflate(&zs, Z_FINISH);
    out->len += (out->cap - out->len) - zs.avail_out;
    deflateEnd(&zs);
    return zrc == Z_STREAM_END ? 0 : FG_EINVAL;
}
