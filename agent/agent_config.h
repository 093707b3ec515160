/* The agent's settings after validation (agent_config.c), shared by agent.c and tests. */
#ifndef FG_AGENT_CONFIG_H
#define FG_AGENT_CONFIG_H

#include <stdlib.h>

#include "agent_internal.h"

enum fg__output { FG__OUT_OTLP, FG__OUT_OTLP_FILE, FG__OUT_PPROF_FILE };

struct fg__agent_settings {
    unsigned profiles;
    int cpu_hz;
    enum fg__cpu_sampler cpu_sampler;
    long heap_sample_bytes;
    long upload_interval_ms;
    enum fg__output output;
    char *out_path;      /* file outputs */
    struct fg__url url;  /* otlp */
    char *headers;       /* "k: v\r\n"... or NULL */
    char *service_name;  /* NULL = unknown_service:<comm> */
    bool follow_fork;    /* forked children restart the agent */
};

/* Reads FLAMEGATE_* (numbers parsed and range-checked; strings checked by _make). */
int fg__agent_config_from_env(struct fg_agent_config *cfg, struct fg_err *err);
/* Validates cfg and applies defaults; copies every string. */
int fg__agent_settings_make(const struct fg_agent_config *cfg, struct fg__agent_settings *s,
                            struct fg_err *err);
void fg__agent_settings_clear(struct fg__agent_settings *s);

#endif
