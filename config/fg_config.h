/* Loading a Collector-shaped YAML configuration into typed component configs, with
 * "FILE:LINE:COL: message" diagnostics. */
#ifndef FG_CONFIG_H
#define FG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "fg_buf.h"
#include "fg_component.h"

/* Collected diagnostics, one "FILE:LINE:COL: error: message" (or "warning:") line each. */
struct fg_diag {
    struct fg_buf text;
    int errors;
    int warnings;
};

void fg_diag_init(struct fg_diag *d);
void fg_diag_free(struct fg_diag *d);
void fg_diag_add(struct fg_diag *d, int is_error, const char *file, int line, int col,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));

struct fg_config_component {
    char *id;                          /* "type" or "type/name" */
    const struct fg_factory *factory;
    void *config;                      /* factory->config_size bytes, parsed */
    int line, col;                     /* where the id was declared */
};

/* Every enum fg_kind, connectors included. */
#define FG_CONFIG_KINDS 5

struct fg_config_pipeline {
    char *name; /* "profiles" or "profiles/NAME" */
    char **receivers;
    size_t n_receivers;
    char **processors;
    size_t n_processors;
    char **exporters;
    size_t n_exporters;
};

struct fg_config {
    char *source; /* file name, or "<default>" for the embedded default */
    struct fg_config_component *components[FG_CONFIG_KINDS]; /* indexed by enum fg_kind */
    size_t n_components[FG_CONFIG_KINDS];
    struct fg_config_pipeline *pipelines;
    size_t n_pipelines;
    char **service_extensions;
    size_t n_service_extensions;
    int log_level; /* enum fg_log_level; service.telemetry.logs.level, default info */
    int64_t shutdown_timeout_ns; /* service.shutdown_timeout, default 30s */
};

#define FG_DEFAULT_SHUTDOWN_TIMEOUT_NS (30 * INT64_C(1000000000))

/* Parses and validates. On any error returns FG_EINVAL with every problem found in diag
 * (warnings too, e.g. a component used by no pipeline), and *out is NULL. */
int fg_config_load_file(const char *path, struct fg_config **out, struct fg_diag *diag);
int fg_config_load_string(const char *source_name, const char *yaml, size_t len,
                          struct fg_config **out, struct fg_diag *diag);
void fg_config_free(struct fg_config *cfg);

const struct fg_config_component *fg_config_find(const struct fg_config *cfg, enum fg_kind kind,
                                                 const char *id);

/* An option check (config/fg_option.h) for a STRLIST of pipeline ids, such as a routing
 * connector's routes[].pipelines: besides the id's syntax, the loader checks that each named
 * pipeline exists and lists the connector among its receivers, with the item's FILE:LINE:COL.
 * Only meaningful in a connector's option table. */
int fg_config_pipeline_ref(const void *value, struct fg_err *err);

/* The embedded default: otlp (http 127.0.0.1:4318) → batch → file (./flamegate-data) + debug. */
extern const char fg_default_config_yaml[];

#endif
