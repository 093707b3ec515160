/* libFuzzer target: OTLP protobuf decode, and on success encode + decode again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fg_model.h"
#include "fg_otlp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fg_profiles *p = NULL;
    struct fg_err err;
    if (fg_otlp_decode_proto(data, size, &p, &err) != 0)
        return 0;
    struct fg_buf out;
    fg_buf_init(&out, 0);
    if (fg_otlp_encode_proto(p, &out) == 0) {
        struct fg_profiles *again = NULL;
        /* what we encode we must be able to read back */
        if (fg_otlp_decode_proto(out.data, out.len, &again, &err) != 0)
            abort();
        if (again->n_samples != p->n_samples)
            abort();
        fg_profiles_unref(again);
    }
    fg_buf_free(&out);
    fg_profiles_unref(p);
    return 0;
}
