/* libFuzzer target: the request-body decompressors (gzip and zlib) under a size limit. */
#include <stdint.h>
#include <stdlib.h>

#include "fg_gzip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fg_buf out;
    struct fg_err err;
    fg_buf_init(&out, 1 << 20);
    int rc = fg_gunzip(data, size, &out, &err);
    if (rc == 0 && out.len > out.limit)
        abort();
    fg_buf_free(&out);
    fg_buf_init(&out, 1 << 20);
    fg_inflate_zlib(data, size, &out, &err);
    fg_buf_free(&out);
    return 0;
}
