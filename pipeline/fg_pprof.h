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
 * it to into: one resource (joined with an equal one already there), one scope, one profile
 * per sample type. Checks ids (non-zero, unique, every reference resolves), string indices,
 * and that every sample has one value per sample type; the message names the problem.
 * On error into may hold part of the profile: callers drop it. max_len limits the
 * decompressed size. */
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

/* Called once per pprof produced; data is the (gzip-compressed when asked) pprof. */
typedef int (*fg_pprof_emit)(void *ctx, const struct fg_pprof_group *group, const uint8_t *data,
                             size_t len, struct fg_err *err);

/* Converts every profile of p to pprof: profiles of one resource+scope whose samples line
 * up (same stacks, attributes and links in the same order, same period) merge into one
 * multi-column pprof, otherwise one pprof per profile. Fresh ids from 1, string_table[0]
 * == "", timestamps-only samples become counts, links become trace_id/span_id labels. */
int fg_pprof_encode(const struct fg_profiles *p, bool gzip, fg_pprof_emit emit, void *ctx,
                    struct fg_err *err);

#endif
