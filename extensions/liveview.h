/* Extension "liveview": a built-in web page (overview, flame graphs, diff) and JSON API
 * showing what flows through the gateway's pipelines, fed by the tap (fg_tap.h). */
#ifndef FG_LIVEVIEW_H
#define FG_LIVEVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_buf.h"
#include "fg_common.h"
#include "fg_component.h"
#include "fg_option.h"

struct fg_lv_agg;

struct liveview_config {
    char *endpoint;
    int64_t window_ns;
    int64_t max_services;
    int64_t max_stacks;
    int64_t queue_size;
    struct fg_strlist pipelines; /* whose data the flame graphs show; empty = all */
};

extern const struct fg_factory fg_liveview_factory;

/* For tests and pages: the instance's aggregate, bound port (after start), config. */
struct fg_lv_agg *fg_lv_aggregate(struct fg_component *c);
uint16_t fg_lv_port(const struct fg_component *c);
const struct liveview_config *fg_lv_config(const struct fg_component *c);
/* The overview JSON (GET /api/overview). */
int fg_lv_overview_json(struct fg_component *c, struct fg_buf *out);

/* The value of key in a raw query string, %-decoded, cut to size; false when absent. */
bool fg_lv_query_get(const char *query, const char *key, char *out, size_t size);

/* The pages (liveview_page.c): server-rendered HTML with inline CSS and JS. */
int fg_lv_page_overview(struct fg_component *c, struct fg_buf *out);
int fg_lv_page_flamegraph(struct fg_component *c, const char *query, struct fg_buf *out);
int fg_lv_page_diff(struct fg_component *c, const char *query, struct fg_buf *out);

#endif
