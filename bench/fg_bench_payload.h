/* The benchmark's synthetic OTLP profiles request: one resource, 300 functions, 200
 * distinct stacks of depth 10-40, 1000 timestamped samples; deterministic for a seed. */
#ifndef FG_BENCH_PAYLOAD_H
#define FG_BENCH_PAYLOAD_H

#include <stdint.h>

#include "fg_buf.h"
#include "fg_model.h"

#define FGB_FUNCTIONS 300
#define FGB_STACKS 200
#define FGB_SAMPLES 1000

/* A new batch (fg_profiles_unref it). */
int fgb_make_batch(uint64_t seed, struct fg_profiles **out);
/* The batch as an ExportProfilesServiceRequest, appended to out. */
int fgb_make_request(uint64_t seed, struct fg_buf *out);

#endif
