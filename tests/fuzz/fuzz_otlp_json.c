/* Fuzz target for the OTLP/JSON decoder: any input either fails cleanly or yields a batch
 * whose JSON encoding decodes again (the encoder only writes what the decoder accepts). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fg_buf.h"
#include "fg_model.h"
#include "fg_otlp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fg_profiles *p = NULL, *again = NULL;
    struct fg_err err;
    struct fg_buf out;
    fg_buf_init(&out, 0);
    if (fg_otlp_decode_json(data, size, &p, &err) != 0)
        return 0;
    if (fg_otlp_encode_json(p, &out) != 0)
        abort(); /* no size limit: only out of memory could fail */
    if (fg_otlp_decode_json(out.data, out.len, &again, &err) != 0) {
        fprintf(stderr, "re-decoding our own JSON failed: %s\n", err.msg);
        abort();
    }
    fg_profiles_unref(again);
    fg_profiles_unref(p);
    fg_buf_free(&out);
    return 0;
}
