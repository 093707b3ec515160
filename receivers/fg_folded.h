/* Brendan Gregg's folded ("collapsed") stacks and Pyroscope's "lines" format, parsed
 * straight into the model (WIRE.md §7): shared by the pyroscope and samples receivers. */
#ifndef FG_FOLDED_H
#define FG_FOLDED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_common.h"
#include "fg_model.h"

/* Longest stack accepted; deeper lines are an error rather than an unbounded allocation. */
#define FG_FOLDED_MAX_DEPTH 4096

struct fg_folded_opts {
    /* false: "frame;frame;leaf <count>" (count after the last whitespace run);
     * true: Pyroscope "lines", every non-empty line is one stack counted once. */
    bool lines;
    /* Each count is multiplied by this (e.g. the sampling period for cpu time); 0 means 1. */
    int64_t scale;
};

/* Parses body (root-first frames separated by ';') and appends one sample per distinct
 * stack to prof, which must belong to into; identical stacks on several lines are summed,
 * lines without a count (folded) are skipped, zero counts dropped. A count that is not a
 * non-negative integer, a stack deeper than FG_FOLDED_MAX_DEPTH or an overflow is FG_EINVAL
 * with the line number in err. *n_samples (may be NULL) gets the number of samples added. */
int fg_folded_parse(const uint8_t *body, size_t len, const struct fg_folded_opts *opts,
                    struct fg_profiles *into, struct fg_profile *prof, uint32_t *n_samples,
                    struct fg_err *err);

/* One frame name → its location index in into (function with that name, one line, no
 * mapping), interned. Negative FG_ENOMEM on failure. Shared with the samples JSON decoder. */
int32_t fg_folded_frame(struct fg_profiles *into, const char *name, size_t len,
                        const char *file, size_t file_len, int64_t line);

#endif
