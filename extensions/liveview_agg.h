/* The live view's rolling aggregate: per service and sample type, the stacks seen in the
 * last window (in LV buckets of window/FG_LV_BUCKETS each), bounded in services and stacks,
 * rendered as a JSON tree or folded stacks. Thread-safe (one mutex): the live view's
 * thread adds and ticks, HTTP threads render. */
#ifndef FG_LIVEVIEW_AGG_H
#define FG_LIVEVIEW_AGG_H

#include <stddef.h>
#include <stdint.h>

#include "fg_buf.h"
#include "fg_common.h"

struct fg_profiles;
struct fg_lv_agg;

#define FG_LV_BUCKETS 30
/* Deeper stacks keep their FG_LV_MAX_DEPTH outermost frames (counted as truncated). */
#define FG_LV_MAX_DEPTH 512

struct fg_lv_agg_options {
    int64_t window_ns;   /* how far back the view reaches */
    size_t max_services; /* distinct (service, sample type) series; more are counted, not kept */
    size_t max_stacks;   /* distinct stacks over all series; when full the smallest go */
};

int fg_lv_agg_new(const struct fg_lv_agg_options *o, struct fg_lv_agg **out);
void fg_lv_agg_free(struct fg_lv_agg *a);

/* Adds every sample of batch (borrowed, read-only) to the bucket of now_ns (monotonic).
 * A sample weighs the sum of its values, or its number of timestamps when it has none. */
int fg_lv_agg_add(struct fg_lv_agg *a, const struct fg_profiles *batch, int64_t now_ns);
/* Moves the window to now_ns: buckets that fall out are forgotten, and stacks and series
 * left empty with them. */
void fg_lv_agg_tick(struct fg_lv_agg *a, int64_t now_ns);

/* A time range in seconds before now: from_s (older end) to to_s (newer end); buckets that
 * start inside it are counted. from_s <= 0 means the whole window. */
struct fg_lv_range {
    int64_t from_s, to_s;
};

/* {"window_s":..,"bucket_s":..,"services":[{"name":..,"types":[{"type":..,"value":..,
 * "samples":..,"stacks":..,"dropped_stacks":..,"dropped_value":..}]}], ...} */
int fg_lv_agg_services_json(struct fg_lv_agg *a, struct fg_buf *out);
/* The tree of one series: {"service":..,"type":..,"total":..,"root":{"name":"all",
 * "value":..,"self":..,"children":[...]}} with children sorted by name. FG_ENOTFOUND when
 * the series is unknown. */
int fg_lv_agg_tree_json(struct fg_lv_agg *a, const char *service, const char *type,
                        struct fg_lv_range range, struct fg_buf *out);
/* One "root;...;leaf value" line per stack with a value in range (stacks without frames
 * are left out: folded stacks cannot say them). */
int fg_lv_agg_folded(struct fg_lv_agg *a, const char *service, const char *type,
                     struct fg_lv_range range, struct fg_buf *out);

struct fg_lv_agg_stats {
    uint64_t batches, samples;
    uint64_t series, stacks, frames;
    uint64_t evictions, evicted_stacks; /* max_stacks reached */
    int64_t evicted_value;
    uint64_t refused_series_samples; /* max_services reached */
    uint64_t truncated_stacks;
};
void fg_lv_agg_stats(struct fg_lv_agg *a, struct fg_lv_agg_stats *out);

/* JSON string literal of s[0..len) (quotes included), invalid UTF-8 replaced by U+FFFD. */
int fg_lv_json_str(struct fg_buf *out, const char *s, size_t len);

#endif
