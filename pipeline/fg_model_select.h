/* Copying parts of one batch into another: a copier re-interns only the dictionary entries
 * that the copied profiles and samples use (on first use, memoized), so a processor that
 * keeps a subset of a batch pays for the subset, not for the whole dictionary.
 *
 * Threads: a copier is used by one thread; src is only read (it may be shared). */
#ifndef FG_MODEL_SELECT_H
#define FG_MODEL_SELECT_H

#include <stdint.h>

#include "fg_model.h"

struct fg_copier;

/* A copier from src into dst; both are borrowed and must outlive it. */
int fg_copier_new(struct fg_profiles *dst, const struct fg_profiles *src, struct fg_copier **out);
void fg_copier_free(struct fg_copier *c);

/* Interns every dictionary entry of src into dst, table by table, like fg_profiles_merge:
 * cheaper than copying entries on first use when most of src will be copied (no
 * recursion, no per-entry memo checks). */
int fg_copier_prefill(struct fg_copier *c);

/* Index in dst of the entry at src_idx in src's table t (copying it and what it refers to
 * when first asked); negative FG_ENOMEM. src_idx must be < fg_dict_len(src, t). */
int32_t fg_copier_index(struct fg_copier *c, enum fg_table t, uint32_t src_idx);

/* The resource (and scope) of dst equal to src's, added when dst has none yet. The pointer
 * is valid until the next resource (scope) is added to dst. NULL on out of memory. */
struct fg_resource_profiles *fg_copier_resource(struct fg_copier *c,
                                                const struct fg_resource_profiles *srp);
struct fg_scope_profiles *fg_copier_scope(struct fg_copier *c, struct fg_resource_profiles *drp,
                                          const struct fg_scope_profiles *ssp);

/* A new profile in dsp with sprof's header (indices remapped), without samples. */
struct fg_profile *fg_copier_profile_header(struct fg_copier *c, struct fg_scope_profiles *dsp,
                                            const struct fg_profile *sprof);
/* Appends sample s of src (indices remapped) to dprof. values, when not NULL, replaces
 * s->values (n_values of them), for processors that rescale or sum. */
int fg_copier_sample(struct fg_copier *c, struct fg_profile *dprof, const struct fg_sample *s,
                     const int64_t *values);
/* Header and every sample. */
struct fg_profile *fg_copier_profile(struct fg_copier *c, struct fg_scope_profiles *dsp,
                                     const struct fg_profile *sprof);

/* Copies samples [first, first + count) of src, numbered in document order (resource,
 * scope, profile, sample), each under a copy of its profile header, scope and resource:
 * a profile cut between two ranges keeps its header (profile_id included) in both. A
 * profile without samples goes with the range its position falls in (the last range when
 * it trails). Resources and scopes without profiles are not copied. */
int fg_copier_sample_range(struct fg_copier *c, uint64_t first, uint64_t count);

/* Resources and scopes compare like fg_profiles_merge joins them. */
bool fg_resource_profiles_equal(const struct fg_resource_profiles *a,
                                const struct fg_resource_profiles *b);
bool fg_scope_profiles_equal(const struct fg_scope_profiles *a, const struct fg_scope_profiles *b);

#endif
