/* Components (receivers, processors, exporters, extensions, connectors): a factory per type, registered
 * once in a static table (pipeline/fg_registry.c), and the consumer interface that moves
 * batches between them. Modelled on the OpenTelemetry Collector's component/consumer API. */
#ifndef FG_COMPONENT_H
#define FG_COMPONENT_H

#include <stddef.h>
#include <stdint.h>

#include "fg_common.h"
#include "fg_option.h"

struct fg_profiles;

/* A connector ends one or more pipelines (listed among their exporters) and feeds others
 * (listed among their receivers), as in the Collector. */
enum fg_kind {
    FG_KIND_RECEIVER,
    FG_KIND_PROCESSOR,
    FG_KIND_EXPORTER,
    FG_KIND_EXTENSION,
    FG_KIND_CONNECTOR
};

/* Something that accepts batches. consume takes ownership of one reference to batch in
 * every case (also on error) and must treat it as read-only: it may be shared with other
 * consumers. Returns 0 when accepted; FG_EINVAL (bad data, permanent), FG_EFULL or
 * FG_ERETRYABLE (overloaded: the sender should retry later), FG_ESTOPPED (shutting down).
 * Called from any thread. */
struct fg_consumer {
    int (*consume)(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err);
};

static inline int fg_consume(struct fg_consumer *c, struct fg_profiles *batch, struct fg_err *err)
{
    return c->consume(c, batch, err);
}

struct fg_component;

struct fg_component_ops {
    /* Starts threads, opens sockets. Called once, exporters first, receivers last. */
    int (*start)(struct fg_component *c, struct fg_err *err);
    /* Stops taking new work and finishes what it holds, within deadline_ns (CLOCK_MONOTONIC).
     * Receivers stop listening; processors flush downstream; exporters drain their queues. */
    int (*shutdown)(struct fg_component *c, int64_t deadline_ns);
    /* Frees everything; called after shutdown (or instead of start on a failed start-up). */
    void (*destroy)(struct fg_component *c);
};

/* The common head of every component instance. */
struct fg_component {
    const struct fg_component_ops *ops;
    const struct fg_factory *factory;
    char id[128];                /* "type" or "type/name" */
    struct fg_consumer consumer; /* valid for processors, exporters and connectors */
};

/* What create gets besides the typed config. */
struct fg_create_args {
    const char *id;
    const void *config;         /* the factory's config struct, parsed and validated */
    struct fg_consumer *next;   /* receivers and processors: where batches go */
    /* The service's extensions by id ("file_storage/q"); NULL when there is no service (unit
     * tests). The instance found is created, and started before any other component. */
    struct fg_component *(*find_extension)(void *ctx, const char *id);
    void *find_ctx;
    /* Connectors: the pipelines that list this connector among their receivers (names such
     * as "profiles/a") and, at the same index, where each pipeline's data goes in (its first
     * processor, or its exporters' fan-out). Borrowed; valid for the service's lifetime. */
    const char *const *pipelines;
    struct fg_consumer *const *pipeline_heads;
    size_t n_pipelines;
};

/* The args of the create call running on this thread (the service sets them around
 * factory->create), so that helpers called from create, such as fg_exporter_new, can reach
 * find_extension without a new parameter. NULL outside a create. */
const struct fg_create_args *fg_create_args_current(void);
void fg_create_args_set_current(const struct fg_create_args *args);

struct fg_factory {
    const char *type;
    enum fg_kind kind;
    size_t config_size;
    const struct fg_option *options; /* terminated by an entry with name == NULL */
    /* Optional cross-field check after parsing; the message names the key. */
    int (*validate)(const void *config, struct fg_err *err);
    /* Builds an instance; must not start threads or open sockets yet. */
    int (*create)(const struct fg_create_args *args, struct fg_component **out, struct fg_err *err);
};

/* The registry: every factory compiled in. */
const struct fg_factory *fg_factory_find(enum fg_kind kind, const char *type);
const struct fg_factory *const *fg_factories(size_t *count);
const char *fg_kind_name(enum fg_kind kind); /* "receiver", ... */

#endif
