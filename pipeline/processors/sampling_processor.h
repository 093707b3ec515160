/* Processor "sampling": five strategies (probabilistic, rate_limiting, adaptive, policy,
 * sample_downsampling) with optional preserve_totals. The factory is in the registry; this
 * header is for tests. */
#ifndef FG_SAMPLING_PROCESSOR_H
#define FG_SAMPLING_PROCESSOR_H

#include <stdint.h>

#include "fg_component.h"

extern const struct fg_factory fg_sampling_processor_factory;

/* Test hook: replace the monotonic clock (nanoseconds) the rate-based strategies read.
 * Call before the first batch. */
void fg_sampling_processor_set_clock(struct fg_component *c, int64_t (*now)(void *arg),
                                     void *arg);

struct fg_sampling_stats {
    uint64_t profiles_in, kept, dropped, stripped, downsampled;
    uint64_t samples_in, samples_out;
    uint64_t key_overflows; /* profiles whose key fell past max_keys */
};

void fg_sampling_processor_stats(struct fg_component *c, struct fg_sampling_stats *out);

#endif
