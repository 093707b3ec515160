/* Private to the samples receiver and its tests/fuzzer: the JSON decoder (schema in
 * docs/receivers.md). */
#ifndef FG_SAMPLES_RECEIVER_H
#define FG_SAMPLES_RECEIVER_H

#include <stddef.h>
#include <stdint.h>

#include "fg_common.h"
#include "fg_component.h"

struct fg_profiles;

/* Its config is a struct fg_http_receiver_config (fg_http_receiver.h). */
extern const struct fg_factory fg_samples_receiver_factory;

/* Decodes one JSON samples document and appends its resource, scope and profile to into.
 * now_ns is the profile time when the document gives none. FG_EINVAL with the JSON path
 * of the problem in err (e.g. "samples[3].stack[0].line: not an integer"). */
int fg_samples_json_decode(const uint8_t *data, size_t len, int64_t now_ns,
                           struct fg_profiles *into, struct fg_err *err);

#endif
