/* Self-telemetry: a process-wide registry of counters, gauges and histograms rendered as
 * Prometheus text, and the run state the health check reports.
 *
 * Series are created (get-or-create by name + labels) when components are built, under the
 * registry's lock; the hot path then only does relaxed atomic adds on the series it holds.
 * Series live until fg_metrics_reset, so a reload that rebuilds a component with the same
 * id keeps counting on the same series (counters stay monotonic). */
#ifndef FG_METRICS_H
#define FG_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "fg_buf.h"
#include "fg_common.h"

struct fg_counter {
    _Atomic uint64_t v;
};
struct fg_gauge {
    _Atomic int64_t v;
};
struct fg_histogram;

/* name without the "_total" suffix (added when rendered); labels is the inside of the
 * braces, already escaped (see fg_metrics_labels), "" for none. On FG_ENOMEM *out is NULL
 * and every update function accepts NULL, so telemetry never stops the data path. */
int fg_metrics_counter(const char *name, const char *help, const char *labels,
                       struct fg_counter **out);
int fg_metrics_gauge(const char *name, const char *help, const char *labels,
                     struct fg_gauge **out);
/* Latency in seconds with fixed buckets from 1 ms to 10 s. */
int fg_metrics_histogram(const char *name, const char *help, const char *labels,
                         struct fg_histogram **out);

static inline void fg_counter_add(struct fg_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}
static inline uint64_t fg_counter_get(struct fg_counter *c)
{
    return c ? atomic_load_explicit(&c->v, memory_order_relaxed) : 0;
}
static inline void fg_gauge_add(struct fg_gauge *g, int64_t n)
{
    if (g)
        atomic_fetch_add_explicit(&g->v, n, memory_order_relaxed);
}
static inline void fg_gauge_set(struct fg_gauge *g, int64_t n)
{
    if (g)
        atomic_store_explicit(&g->v, n, memory_order_relaxed);
}
static inline int64_t fg_gauge_get(struct fg_gauge *g)
{
    return g ? atomic_load_explicit(&g->v, memory_order_relaxed) : 0;
}
void fg_histogram_observe_ns(struct fg_histogram *h, int64_t ns);

/* Writes `k1="v1",k2="v2"` for NULL-terminated key/value pairs into out (escaping \, " and
 * newlines as Prometheus wants); cut at size. Returns out. */
const char *fg_metrics_labels(char *out, size_t size, ...);

/* The Prometheus text exposition (version 0.0.4) of every series, plus the process
 * metrics (uptime, resident memory, CPU seconds). */
int fg_metrics_render(struct fg_buf *out);

/* Calls fn for each series of family name (a gauge or counter), with its labels and value;
 * for the health check, which reads the exporters' failure clocks. */
void fg_metrics_each(const char *name, void (*fn)(void *ctx, const char *labels, int64_t value),
                     void *ctx);

/* Frees every series (at exit and between unit tests). No series may be in use. */
void fg_metrics_reset(void);

/* The transport a receiver is serving on this thread ("http", "grpc" ...) and the request
 * size, set by the receiver right before it hands a batch on, read by the service's
 * counting wrapper for the transport label and the bytes counter. */
void fg_metrics_set_request(const char *transport, uint64_t bytes);
const char *fg_metrics_request_transport(void);
uint64_t fg_metrics_request_bytes(void);

/* What the health check reports. The service that is running owns the state; a service
 * retiring after a reload stops without touching it. */
enum fg_run_state { FG_RUN_STARTING, FG_RUN_RUNNING, FG_RUN_STOPPING };
void fg_run_state_set(const void *owner, enum fg_run_state state);
/* Sets state only when owner is the current owner (a retiring service stopping late). */
void fg_run_state_release(const void *owner, enum fg_run_state state);
enum fg_run_state fg_run_state_get(void);
/* Wall-clock seconds when the state last became RUNNING. */
int64_t fg_run_state_since(void);

#endif
