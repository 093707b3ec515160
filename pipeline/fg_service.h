/* The running service: component instances built from a config and wired into pipelines
 * (receivers fan in to each pipeline's processor chain, which fans out to its exporters and
 * connectors; a connector feeds the pipelines that list it as a receiver), started
 * exporters-first and stopped receivers-first. */
#ifndef FG_SERVICE_H
#define FG_SERVICE_H

#include <stdint.h>

#include "fg_common.h"

struct fg_config;
struct fg_service;

/* Creates every component of every pipeline; nothing runs yet. cfg must outlive it. */
int fg_service_build(const struct fg_config *cfg, struct fg_service **out, struct fg_err *err);
/* Starts extensions, exporters, then the pipelines downstream first (processors, and the
 * connectors feeding them after them), then receivers. On failure what was started is
 * stopped. */
int fg_service_start(struct fg_service *s, struct fg_err *err);
/* Stops receivers and flushes processors (through connectors, upstream pipelines first) into
 * the exporters (within timeout_ns); exporters
 * and extensions keep running. A reload calls this on the old service before the new one
 * starts listening; fg_service_shutdown later stops the rest. */
void fg_service_stop_intake(struct fg_service *s, int64_t timeout_ns);
/* Stops receivers, flushes processors, drains exporters, then stops extensions; all within
 * timeout_ns. Parts already stopped are skipped. */
void fg_service_shutdown(struct fg_service *s, int64_t timeout_ns);
void fg_service_free(struct fg_service *s);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t fg_now_ns(void);

#endif
