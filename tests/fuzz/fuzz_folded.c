/* Fuzz target for the folded / lines parser: the first byte picks the mode and a scale, the
 * rest is the body. Any input fails cleanly or gives samples whose stacks resolve and whose
 * values are positive. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fg_folded.h"
#include "fg_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct fg_folded_opts o = {.lines = data[0] & 1, .scale = (data[0] >> 1) * 1000003};
    struct fg_profiles *p = NULL;
    if (fg_profiles_new(&p) != 0)
        return 0;
    struct fg_resource res = {0};
    struct fg_scope scope = {0};
    struct fg_profile proto = {0};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "", 0);
    struct fg_scope_profiles *sp = rp ? fg_profiles_add_scope(p, rp, &scope, "", 0) : NULL;
    struct fg_profile *prof = sp ? fg_profiles_add_profile(p, sp, &proto) : NULL;
    struct fg_err err;
    uint32_t n = 0;
    if (prof && fg_folded_parse(data + 1, size - 1, &o, p, prof, &n, &err) == 0) {
        if (n != prof->n_samples)
            abort();
        for (uint32_t i = 0; i < prof->n_samples; i++) {
            const struct fg_sample *s = &prof->samples[i];
            if (s->stack == 0 || s->stack >= fg_dict_len(p, FG_TABLE_STACK) || s->n_values != 1 ||
                s->values[0] <= 0)
                abort();
            const struct fg_stack *st = fg_dict_get_stack(p, s->stack);
            if (st->n_locations == 0 || st->n_locations > FG_FOLDED_MAX_DEPTH)
                abort();
        }
    }
    fg_profiles_unref(p);
    return 0;
}
