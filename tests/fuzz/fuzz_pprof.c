/* libFuzzer target: pprof decode; on success encode (raw and gzip) and decode every output
 * again, which must succeed with the same number of samples per column. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fg_model.h"
#include "fg_pprof.h"

struct check {
    uint64_t samples; /* of every pprof re-decoded, times its columns */
    uint64_t columns;
};

static int redecode(void *ctx, const struct fg_pprof_group *g, const uint8_t *data, size_t len,
                    struct fg_err *err)
{
    struct check *c = ctx;
    struct fg_profiles *p = NULL;
    if (fg_profiles_new(&p) != 0)
        return 0;
    /* what we encode we must be able to read back */
    if (fg_pprof_decode(data, len, 0, NULL, p, err) != 0)
        abort();
    c->samples += p->n_samples;
    c->columns += g->n_profiles;
    fg_profiles_unref(p);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fg_profiles *p = NULL;
    struct fg_err err;
    if (fg_profiles_new(&p) != 0)
        return 0;
    if (fg_pprof_decode(data, size, (size_t)64 << 20, NULL, p, &err) == 0) {
        for (int gz = 0; gz < 2; gz++) {
            struct check c = {0, 0};
            if (fg_pprof_encode(p, gz, redecode, &c, &err) == 0 &&
                (c.samples != p->n_samples || c.columns == 0) && p->n_samples)
                abort();
        }
    }
    fg_profiles_unref(p);
    return 0;
}
