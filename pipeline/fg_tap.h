/* The tap: read-only observers (the liveview extension) that see every batch a pipeline
 * hands to its exporters, and the config of the running service for pages that draw it.
 *
 * Threads: fg_tap_publish runs on the data path (any thread) and must stay cheap: with no
 * observer it is one relaxed atomic load; with observers, a read lock and the observers'
 * own calls, which must only take a reference and queue it (never block, never change the
 * batch). fg_tap_add/remove and the config calls may be called from any thread. */
#ifndef FG_TAP_H
#define FG_TAP_H

#include "fg_common.h"

struct fg_profiles;
struct fg_config;

/* batch is borrowed and shared read-only: an observer that keeps it takes a reference.
 * pipeline is the pipeline's name ("profiles/x"), valid only during the call. */
typedef void (*fg_tap_fn)(void *ctx, const char *pipeline, struct fg_profiles *batch);

#define FG_TAP_MAX 8

/* FG_EFULL when FG_TAP_MAX observers are registered already. */
int fg_tap_add(fg_tap_fn fn, void *ctx);
/* Once it returns, fn is neither running nor called again for ctx. */
void fg_tap_remove(fg_tap_fn fn, void *ctx);
/* Called by the service's fan-out before the batch goes on; batch is borrowed. */
void fg_tap_publish(const char *pipeline, struct fg_profiles *batch);

/* The service that starts publishes its config (a reload's new service replaces it);
 * clear forgets it only if owner (the service) is still the one that published last. */
void fg_tap_set_config(const void *owner, const struct fg_config *cfg);
void fg_tap_clear_config(const void *owner);
/* Runs fn with the current config (NULL when none) while it cannot be replaced or freed. */
void fg_tap_with_config(void (*fn)(void *ctx, const struct fg_config *cfg), void *ctx);

#endif
