/* pprof (perftools.profiles.Profile, WIRE.md §4) ⇄ the model, following the mapping of
 * WIRE.md §5: a pprof with N sample types becomes N profiles of one scope sharing the batch
 * dictionary; what pprof has no field for travels as pprof.* attributes; back to pprof, the
 * profiles of one resource+scope whose samples line up become one multi-column pprof. */
#ifndef FG_PPROF_H
#define FG_PPROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_buf.h"
#include "fg_common.h"
#include "fg_model.h"

/* Where a decoded pprof lands: the resource and scope it is filed under (borrowed). */
struct fg_pprof_origin {
    const struct fg_keyvalue *resource_attrs;
    uint32_t n_resource_attrs;
    struct fg_bytes scope_name;    /* e.g. the Pyroscope spyName; "" when unknown */
    struct fg_bytes scope_version;
};

/* Decodes one pprof (gzip detected by its 1F 8B magic, otherwise raw protobuf) and appends
 * it to into: one resource (joined with an equal one already there), a new scope (origin's
 * name/version; attributes pprof.scope.default_sample_type and, with several sample types,
 * pprof.scope.sample_type_order = [0..N-1]), one profile per sample type in pprof order,
 * each with every sample (values = [value[i]]; zero values are kept so that the columns
 * line up again on encode). Labels become sample attributes (str → string, num → int with
 * num_unit as unit; a key given several times becomes one array attribute). Only entries
 * that samples reach are interned. A pprof without sample types and samples adds nothing.
 *
 * Checks ids (non-zero, unique, every reference resolves; a line's function_id 0 means "no
 * function" as in google/pprof), string indices, string_table[0] == "", and that every
 * sample has one value per sample type: FG_EINVAL with a message that names the problem,
 * e.g. "pprof: sample[3]: 1 values, but the profile has 2 sample types". Legacy formats
 * (gperftools CPU binary, heap/contention/goroutine text) → FG_EUNSUPPORTED, "pprof:
 * unsupported pprof format (legacy gperftools CPU profile)". FG_ETOOBIG past max_len
 * (raw or decompressed; 0 = no limit). On error into may hold part of the profile: callers
 * drop it. origin may be NULL (no resource attributes, unnamed scope). */
int fg_pprof_decode(const uint8_t *data, size_t len, size_t max_len,
                    const struct fg_pprof_origin *origin, struct fg_profiles *into,
                    struct fg_err *err);

/* One pprof made from the model: which profiles it carries. */
struct fg_pprof_group {
    const struct fg_resource_profiles *resource;
    const struct fg_scope_profiles *scope;
    const uint32_t *profiles; /* indices into scope->profiles, in column order */
    uint32_t n_profiles;
};

/* Called once per pprof produced; data is the (gzip-compressed when asked) pprof, valid
 * during the call only. A non-zero return stops the encoding and is returned. */
typedef int (*fg_pprof_emit)(void *ctx, const struct fg_pprof_group *group, const uint8_t *data,
                             size_t len, struct fg_err *err);

/* Converts every profile of p to pprof: a run of consecutive profiles of one scope whose
 * samples line up (same count, and sample by sample the same stack, attributes and link;
 * same period, period type, time, duration and profile attributes) and whose sample types
 * differ becomes one multi-column pprof (column order from pprof.scope.sample_type_order
 * when it describes the run), otherwise one pprof per profile. Fresh ids from 1 in order
 * of first use, string_table[0] == "". A sample's value is the sum of its values, or its
 * number of timestamps when it has none; links become trace_id/span_id labels (hex);
 * sample attributes become labels (string → str, int → num with the unit, bool/double →
 * str of their text, arrays → one label per item; bytes/kvlist are left out; an empty
 * string becomes str 0, which google/pprof reads as num 0). The
 * pprof.* attributes restore build_id, has_* flags, is_folded, drop/keep_frames, doc_url,
 * comments (array or contrib's pprof.profile.comment.<i>) and default_sample_type (only
 * when it names a column of that pprof). Resource/scope attributes have no pprof slot.
 * p is only read (safe on a shared batch). */
int fg_pprof_encode(const struct fg_profiles *p, bool gzip, fg_pprof_emit emit, void *ctx,
                    struct fg_err *err);

/* For exporters' include_original_payload: sets original_payload (the gzip pprof of the
 * profile's group, see fg_pprof_encode; every profile of a multi-column group carries the
 * same bytes) and original_payload_format "pprof" on every profile that has none. Changes
 * p: the caller must hold the only reference (copy a shared batch first: fg_profiles_new +
 * fg_profiles_merge). */
int fg_pprof_attach_original_payload(struct fg_profiles *p, struct fg_err *err);

/* The same on a copy, for exporters whose batch may be shared (fan-out): *out is a new
 * batch (one reference, tenant copied) with the payloads attached; src is only read. */
int fg_pprof_copy_with_original_payload(const struct fg_profiles *src, struct fg_profiles **out,
                                        struct fg_err *err);

#endif
