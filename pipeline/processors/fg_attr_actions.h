/* The attribute-editing engine shared by the attributes, resource, relabel and filter
 * processors: an editable list of attributes, the Collector's actions (insert, update,
 * upsert, delete, hash, extract, convert) and include/exclude match sets, each with its
 * option table. Private to pipeline/processors. */
#ifndef FG_ATTR_ACTIONS_H
#define FG_ATTR_ACTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_buf.h"
#include "fg_component.h"
#include "fg_common.h"
#include "fg_model.h"
#include "fg_option.h"

struct fg_arena;
struct fg_regex;

/* ---- an editable attribute list ----
 * Keys, units and values point into a batch (borrowed) or into the list's scratch arena;
 * either must outlive the list's use. unit is empty for resource attributes. */
struct fg_attr_item {
    struct fg_bytes key;
    struct fg_bytes unit;
    struct fg_value value;
};

struct fg_attr_list {
    struct fg_arena *arena; /* scratch: new strings and grown arrays */
    struct fg_attr_item *items;
    uint32_t n, cap;
};

/* Starts an empty list drawing on arena (borrowed). */
void fg_attr_list_init(struct fg_attr_list *l, struct fg_arena *arena);
/* Loads resource attributes (borrowed). */
int fg_attr_list_from_kv(struct fg_attr_list *l, const struct fg_keyvalue *kv, uint32_t n);
/* Loads dictionary attributes of batch p (borrowed). */
int fg_attr_list_from_dict(struct fg_attr_list *l, const struct fg_profiles *p,
                           const uint32_t *idx, uint32_t n);
/* Index of key, or -1. */
int32_t fg_attr_list_find(const struct fg_attr_list *l, const char *key, size_t len);
/* Sets key to value, replacing an existing entry. key and value are borrowed: they must live
 * as long as the list is used (batch memory, the scratch arena, or configuration). */
int fg_attr_list_set(struct fg_attr_list *l, const char *key, size_t len,
                     const struct fg_value *value);
void fg_attr_list_remove(struct fg_attr_list *l, uint32_t i);
/* Writes the list into batch out: a new resource-attribute array in out's arena, or a list
 * of dictionary indices in out's arena. */
int fg_attr_list_to_kv(const struct fg_attr_list *l, struct fg_profiles *out,
                       const struct fg_keyvalue **kv, uint32_t *n);
int fg_attr_list_to_dict(const struct fg_attr_list *l, struct fg_profiles *out,
                         const uint32_t **idx, uint32_t *n);

/* The text form of a value used for matching, relabeling and hashing: strings as they are,
 * ints in decimal, doubles in the shortest form that reads back, bools true/false, bytes in
 * base64; arrays and kvlists in JSON. Appends to out. */
int fg_value_to_text(const struct fg_value *v, struct fg_buf *out);

/* ---- actions ---- */

enum fg_attr_action_kind {
    FG_ACT_INSERT,
    FG_ACT_UPDATE,
    FG_ACT_UPSERT,
    FG_ACT_DELETE,
    FG_ACT_HASH,
    FG_ACT_EXTRACT,
    FG_ACT_CONVERT,
};

enum fg_attr_value_type { FG_AVT_AUTO, FG_AVT_STRING, FG_AVT_INT, FG_AVT_DOUBLE, FG_AVT_BOOL };

/* One element of an actions: list, as parsed (fg_attr_action_options). */
struct fg_attr_action_cfg {
    char *key;
    char *action; /* checked against the action names when parsed */
    char *value;
    int value_type; /* enum fg_attr_value_type: how value is typed (auto = like YAML) */
    char *from_attribute;
    char *pattern;
    char *converted_type; /* int, double or string */
};

extern const struct fg_option fg_attr_action_options[];
/* Cross-field check of one element, reported at the element by the loader. */
int fg_attr_action_check(const void *elem, struct fg_err *err);
/* The option row of an actions: list (a struct fg_structlist field of struct type_). */
#define FG_OPT_ATTR_ACTIONS(name, type_, field, help)                                   \
    FG_OPT_STRUCTS_CHECK(name, type_, field, fg_attr_action_options,                    \
                         struct fg_attr_action_cfg, fg_attr_action_check, help)

struct fg_attr_actions;

int fg_attr_actions_compile(const struct fg_structlist *cfg, struct fg_attr_actions **out,
                            struct fg_err *err);
void fg_attr_actions_free(struct fg_attr_actions *a);
/* Runs every action in order on l. */
int fg_attr_actions_apply(const struct fg_attr_actions *a, struct fg_attr_list *l);

/* ---- match sets (include / exclude) ---- */

struct fg_attr_match_kv {
    char *key;
    char *value; /* NULL: the key only has to exist */
};

struct fg_match_cfg {
    int match_type; /* 0 strict, 1 regexp */
    struct fg_strlist services;
    struct fg_structlist resources;  /* of struct fg_attr_match_kv */
    struct fg_structlist attributes; /* profile attributes */
    struct fg_strlist sample_types;
};

extern const struct fg_option fg_match_options[];
extern const char *const fg_match_type_names[]; /* strict, regexp */
extern const struct fg_option fg_match_kv_options[];

struct fg_match;

/* *out is NULL when cfg sets nothing (no match set configured). */
int fg_match_compile(const struct fg_match_cfg *cfg, struct fg_match **out, struct fg_err *err);
void fg_match_free(struct fg_match *m);
/* For a factory's validate: compiles and drops cfg; the message starts with what. */
int fg_match_validate(const struct fg_match_cfg *cfg, const char *what, struct fg_err *err);
/* True when every property the set names matches: services (any), resources (all),
 * attributes of the profile (all), sample types (any). prof may be NULL for resource-only
 * decisions, which then ignore attributes and sample types. */
bool fg_match_profile(const struct fg_match *m, const struct fg_profiles *p,
                      const struct fg_resource *res, const struct fg_profile *prof);
/* A list of key/value conditions (all must hold) on sample attributes. */
bool fg_match_dict_attrs(const struct fg_match *m, const struct fg_profiles *p,
                         const uint32_t *idx, uint32_t n);
/* Whether the set says anything about the profile level (attributes, sample types). */
bool fg_match_needs_profile(const struct fg_match *m);

/* ---- a cache from attribute index lists to their edited versions ----
 * Sample attribute sets repeat a lot; editing each distinct set once per batch is enough.
 * Keys are compared by content; key and value arrays are borrowed (batch arena memory). */
struct fg_idx_memo_entry {
    uint64_t hash;
    const uint32_t *in;
    uint32_t n_in;
    bool used;
    bool keep; /* false: the sample is dropped */
    const uint32_t *out;
    uint32_t n_out;
};

struct fg_idx_memo {
    struct fg_idx_memo_entry *slots;
    size_t cap, n;
};

void fg_idx_memo_free(struct fg_idx_memo *m);
/* The entry for idx, or NULL when there is none yet. */
const struct fg_idx_memo_entry *fg_idx_memo_get(const struct fg_idx_memo *m, const uint32_t *idx,
                                                uint32_t n);
int fg_idx_memo_put(struct fg_idx_memo *m, const uint32_t *in, uint32_t n_in, bool keep,
                    const uint32_t *out, uint32_t n_out);

/* ---- processor plumbing ---- */

/* A private, writable copy of in (dictionary re-interned, tenant kept). */
int fg_proc_copy(const struct fg_profiles *in, struct fg_profiles **out, struct fg_err *err);
/* Releases what a profile, scope or resource being cut out of a batch owns (the model keeps
 * sample, profile and scope arrays on the heap; everything else is arena memory), before the
 * caller compacts the array it sat in. */
void fg_proc_release_profile(struct fg_profile *prof);
void fg_proc_release_scope(struct fg_scope_profiles *sp);
void fg_proc_release_resource(struct fg_resource_profiles *rp);
/* Recomputes p->n_samples after samples were dropped in place. */
void fg_proc_recount(struct fg_profiles *p);
/* Ends a consume: on rc != 0 drops in and out and returns rc (FG_ENOMEM becomes
 * FG_ERETRYABLE so the sender retries); otherwise sends out (or in when out is NULL, meaning
 * nothing changed) to next. Takes in and out. */
int fg_proc_finish(struct fg_consumer *next, const char *id, struct fg_profiles *in,
                   struct fg_profiles *out, int rc, struct fg_err *err);
/* fg_proc_finish for the filtering processors: when processing succeeded and emptied is set
 * (everything was filtered out), nothing goes on and 0 is returned, as with the Collector's
 * filter. */
int fg_proc_finish_filtered(struct fg_consumer *next, const char *id, struct fg_profiles *in,
                            struct fg_profiles *out, int rc, bool emptied, struct fg_err *err);

/* Edits a private copy of in (fg_proc_copy): edit(ctx, copy, l) with l an empty list on a
 * scratch arena that lasts for the call. *outp is the copy, or NULL when anything failed
 * (err says why). */
typedef int (*fg_proc_edit_fn)(const void *ctx, struct fg_profiles *copy, struct fg_attr_list *l);
int fg_proc_edit_copy(const struct fg_profiles *in, fg_proc_edit_fn edit, const void *ctx,
                      struct fg_profiles **outp, struct fg_err *err);

/* fg_component_ops.start and .shutdown of a processor with no threads or held batches. */
int fg_proc_start_nothing(struct fg_component *c, struct fg_err *err);
int fg_proc_shutdown_nothing(struct fg_component *c, int64_t deadline_ns);

#endif
