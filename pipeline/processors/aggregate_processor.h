/* Processor "aggregate": merges the profiles of a group (resource attributes, scope, sample
 * type, period) over a time window into one profile per window. The factory is in the
 * registry; this header is for tests. */
#ifndef FG_AGGREGATE_PROCESSOR_H
#define FG_AGGREGATE_PROCESSOR_H

#include <stdint.h>

#include "fg_component.h"

extern const struct fg_factory fg_aggregate_processor_factory;

struct fg_aggregate_stats {
    uint64_t profiles_in, samples_in;
    uint64_t profiles_out, samples_out;
    uint64_t flushes;            /* batches sent on */
    uint64_t early_group_limit;  /* flushes forced by max_groups */
    uint64_t early_stack_limit;  /* groups flushed early by max_stacks_per_group */
    uint64_t open_groups;        /* (group, window) accumulators open right now */
};

void fg_aggregate_processor_stats(struct fg_component *c, struct fg_aggregate_stats *out);

#endif
