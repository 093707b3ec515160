/* Process-level telemetry wiring used by main.c: the /metrics listener, the reference of
 * every component's options (`flamegate components`), and the secrets logs never show. */
#ifndef FG_TELEMETRY_H
#define FG_TELEMETRY_H

#include <stdbool.h>
#include <stdio.h>

#include "fg_common.h"

struct fg_config;

/* Serves Prometheus text on GET /metrics at address ("" = nothing). Replaces a running
 * listener when the address differs; keeps it when equal. */
int fg_telemetry_serve(const char *address, struct fg_err *err);
void fg_telemetry_stop(void);

/* Writes every registered component with its options, defaults and descriptions, as text or
 * as the Markdown block the README embeds. */
void fg_components_print(FILE *out, bool markdown);

/* Hands the secret values of cfg (header values, tokens, passwords) to the logger, on top
 * of those of earlier configurations; NULL forgets them all (at exit). */
int fg_telemetry_register_secrets(const struct fg_config *cfg);

#endif
