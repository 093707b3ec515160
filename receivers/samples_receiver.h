/* Private to the samples receiver and its tests/fuzzer: the typed config and the JSON
 * decoder (schema in docs/receivers.md). */
#ifndef FG_SAMPLES_RECEIVER_H
#define FG_SAMPLES_RECEIVER_H

#include <stddef.h>
#include <stdint.h>

#include "fg_common.h"
#include "fg_component.h"
#include "fg_option.h"
#include "fg_auth.h"
#include "fg_tls.h"

struct fg_profiles;

struct samples_receiver_config {
    char *endpoint;
    uint64_t max_request_body_size;
    struct fg_strlist tenant_headers; /* empty = [X-Scope-OrgID] */
    bool tls_enabled;
    struct fg_tls_server_config tls;
    struct fg_auth_config auth;
};

extern const struct fg_factory fg_samples_receiver_factory;

/* The bound port of a started samples receiver (tests). */
uint16_t samples_receiver_port(const struct fg_component *c);

/* Decodes one JSON samples document and appends its resource, scope and profile to into.
 * now_ns is the profile time when the document gives none. FG_EINVAL with the JSON path
 * of the problem in err (e.g. "samples[3].stack[0].line: not an integer"). */
int fg_samples_json_decode(const uint8_t *data, size_t len, int64_t now_ns,
                           struct fg_profiles *into, struct fg_err *err);

#endif
