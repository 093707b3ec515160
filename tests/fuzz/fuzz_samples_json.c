/* Fuzz target for the samples receiver's JSON decoder: any input fails cleanly or yields a
 * batch that the OTLP protobuf encoder writes and the decoder reads back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fg_buf.h"
#include "fg_model.h"
#include "fg_otlp.h"
#include "samples_receiver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fg_profiles *p = NULL, *again = NULL;
    struct fg_err err;
    struct fg_buf out;
    fg_buf_init(&out, 0);
    if (fg_profiles_new(&p) != 0)
        return 0;
    if (fg_samples_json_decode(data, size, 1, p, &err) == 0) {
        if (fg_otlp_encode_proto(p, &out) != 0)
            abort();
        if (fg_otlp_decode_proto(out.data, out.len, &again, &err) != 0) {
            fprintf(stderr, "re-decoding failed: %s\n", err.msg);
            abort();
        }
        if (again->n_samples != p->n_samples)
            abort();
        fg_profiles_unref(again);
    }
    fg_profiles_unref(p);
    fg_buf_free(&out);
    return 0;
}
