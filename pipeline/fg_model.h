/* The in-memory model of OTLP profiles (v1development, proto v1.11.0): resource → scope →
 * profile → samples, with one hash-consed dictionary per batch. Every codec decodes into
 * it and encodes from it; batch, aggregate and the exporters merge through it.
 *
 * Threads: a batch is used by one thread at a time, except that a batch whose refcount is
 * above one is shared read-only (fan-out), and then nobody may change it. */
#ifndef FG_MODEL_H
#define FG_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_common.h"

struct fg_arena;

/* Byte strings live in the batch arena and are NUL-terminated for convenience. */
struct fg_bytes {
    const char *ptr;
    uint32_t len;
};

enum fg_value_kind {
    FG_VALUE_EMPTY = 0,
    FG_VALUE_STRING,
    FG_VALUE_BOOL,
    FG_VALUE_INT,
    FG_VALUE_DOUBLE,
    FG_VALUE_BYTES,
    FG_VALUE_ARRAY,
    FG_VALUE_KVLIST,
};

struct fg_keyvalue;

/* AnyValue. A wire string_value_strindex is resolved to its string on decode. */
struct fg_value {
    uint8_t kind; /* enum fg_value_kind */
    union {
        bool b;
        int64_t i;
        double d;
        struct fg_bytes s; /* STRING and BYTES */
        struct {
            const struct fg_value *items;
            uint32_t n;
        } array;
        struct {
            const struct fg_keyvalue *items;
            uint32_t n;
        } kvlist;
    } u;
};

struct fg_keyvalue {
    struct fg_bytes key;
    struct fg_value value;
};

/* Dictionary entries. Every uint32_t reference is an index into the batch dictionary;
 * index 0 is the zero entry of its table ("unset"). */
struct fg_function {
    uint32_t name;        /* string */
    uint32_t system_name; /* string */
    uint32_t filename;    /* string */
    int64_t start_line;
};

struct fg_mapping {
    uint64_t memory_start;
    uint64_t memory_limit;
    uint64_t file_offset;
    uint32_t filename; /* string */
    uint32_t n_attrs;
    const uint32_t *attrs; /* attribute */
};

struct fg_line {
    uint32_t function;
    int64_t line;
    int64_t column;
};

struct fg_location {
    uint32_t mapping;
    uint64_t address;
    uint32_t n_lines;
    uint32_t n_attrs;
    const struct fg_line *lines; /* inlined callee first, outermost caller last */
    const uint32_t *attrs;
};

struct fg_link {
    uint8_t trace_id[16];
    uint8_t span_id[8];
};

struct fg_attribute {
    uint32_t key;  /* string */
    uint32_t unit; /* string; 0 = none */
    struct fg_value value;
};

struct fg_stack {
    uint32_t n_locations;
    const uint32_t *locations; /* leaf first */
};

enum fg_table {
    FG_TABLE_STRING,
    FG_TABLE_FUNCTION,
    FG_TABLE_MAPPING,
    FG_TABLE_LOCATION,
    FG_TABLE_LINK,
    FG_TABLE_ATTRIBUTE,
    FG_TABLE_STACK,
    FG_TABLE_COUNT
};

/* Non-dictionary parts. */
struct fg_value_type {
    uint32_t type; /* string */
    uint32_t unit; /* string */
};

struct fg_sample {
    uint32_t stack;
    uint32_t link;
    uint32_t n_attrs;
    uint32_t n_values;
    uint32_t n_timestamps;
    const uint32_t *attrs;
    const int64_t *values;
    const uint64_t *timestamps; /* unix ns */
};

struct fg_profile {
    struct fg_value_type sample_type;
    struct fg_value_type period_type;
    uint64_t time_unix_nano;
    uint64_t duration_nano;
    int64_t period;
    struct fg_bytes profile_id;
    uint32_t dropped_attributes_count;
    struct fg_bytes original_payload_format;
    struct fg_bytes original_payload;
    uint32_t n_attrs;
    const uint32_t *attrs;
    struct fg_sample *samples;
    uint32_t n_samples;
    uint32_t cap_samples;
};

struct fg_entity_ref {
    struct fg_bytes schema_url;
    struct fg_bytes type;
    uint32_t n_id_keys;
    uint32_t n_description_keys;
    const struct fg_bytes *id_keys;
    const struct fg_bytes *description_keys;
};

struct fg_resource {
    uint32_t n_attrs;
    uint32_t dropped_attributes_count;
    uint32_t n_entity_refs;
    const struct fg_keyvalue *attrs;
    const struct fg_entity_ref *entity_refs;
};

struct fg_scope {
    struct fg_bytes name;
    struct fg_bytes version;
    uint32_t n_attrs;
    uint32_t dropped_attributes_count;
    const struct fg_keyvalue *attrs;
};

struct fg_scope_profiles {
    struct fg_scope scope;
    struct fg_bytes schema_url;
    struct fg_profile *profiles;
    uint32_t n_profiles;
    uint32_t cap_profiles;
};

struct fg_resource_profiles {
    struct fg_resource resource;
    struct fg_bytes schema_url;
    struct fg_scope_profiles *scopes;
    uint32_t n_scopes;
    uint32_t cap_scopes;
};

struct fg_dict; /* opaque: the seven hash-consed tables */

struct fg_profiles {
    struct fg_arena *arena;
    struct fg_dict *dict;
    struct fg_resource_profiles *resources;
    uint32_t n_resources;
    uint32_t cap_resources;
    uint64_t n_samples; /* kept up to date by the add/merge functions */
    int refcount;       /* atomic */
    /* The tenant (X-Scope-OrgID or a configured header) the data arrived with; "" = none.
     * Set by receivers, kept apart by batching, sent on by exporters. Not touched by merge. */
    char tenant[128];
};

/* ---- lifetime ---- */

/* A new, empty batch whose dictionary already holds the seven zero entries. */
int fg_profiles_new(struct fg_profiles **out);
struct fg_profiles *fg_profiles_ref(struct fg_profiles *p);
/* Drops one reference; the last one frees the batch (arena, dictionary, everything). */
void fg_profiles_unref(struct fg_profiles *p);
/* Approximate bytes held by the batch (arena + tables). */
size_t fg_profiles_memory(const struct fg_profiles *p);

/* ---- dictionary: interning returns the index (>= 0) of an equal entry, adding it when new;
 * negative FG_ENOMEM on failure. Entries and their arrays/strings are copied into the batch,
 * so the caller's memory is borrowed. References inside an entry must already be valid
 * indices of this batch's dictionary. ---- */

int32_t fg_dict_string(struct fg_profiles *p, const char *s, size_t len);
/* Interns string idx of src into p, reusing the hash src already computed. */
int32_t fg_dict_copy_string(struct fg_profiles *p, const struct fg_profiles *src, uint32_t idx);
int32_t fg_dict_function(struct fg_profiles *p, const struct fg_function *f);
int32_t fg_dict_mapping(struct fg_profiles *p, const struct fg_mapping *m);
int32_t fg_dict_location(struct fg_profiles *p, const struct fg_location *l);
int32_t fg_dict_link(struct fg_profiles *p, const struct fg_link *l);
int32_t fg_dict_attribute(struct fg_profiles *p, const struct fg_attribute *a);
int32_t fg_dict_stack(struct fg_profiles *p, const struct fg_stack *s);

uint32_t fg_dict_len(const struct fg_profiles *p, enum fg_table table);
/* Makes room for n more entries in a table, so that interning them allocates nothing more
 * (decoders know the sizes up front). */
int fg_dict_reserve(struct fg_profiles *p, enum fg_table table, uint32_t n);
/* Lookups; idx must be < fg_dict_len of its table. */
struct fg_bytes fg_dict_get_string(const struct fg_profiles *p, uint32_t idx);
const struct fg_function *fg_dict_get_function(const struct fg_profiles *p, uint32_t idx);
const struct fg_mapping *fg_dict_get_mapping(const struct fg_profiles *p, uint32_t idx);
const struct fg_location *fg_dict_get_location(const struct fg_profiles *p, uint32_t idx);
const struct fg_link *fg_dict_get_link(const struct fg_profiles *p, uint32_t idx);
const struct fg_attribute *fg_dict_get_attribute(const struct fg_profiles *p, uint32_t idx);
const struct fg_stack *fg_dict_get_stack(const struct fg_profiles *p, uint32_t idx);

/* ---- mapping one dictionary into another ---- */

/* Where each entry of a source dictionary went in a destination dictionary: idx[t][i] is
 * the destination index of source entry i of table t. Start from a zeroed struct; it can
 * be reused for another source (its arrays grow as needed); fg_dict_map_release frees it. */
struct fg_dict_map {
    uint32_t *idx[FG_TABLE_COUNT];
    uint32_t cap[FG_TABLE_COUNT];
    /* scratch for the remapped lists of the entry being looked up */
    uint32_t *refs;
    struct fg_line *lines;
    uint32_t cap_refs, cap_lines;
};

/* Interns every entry of src's dictionary into dst, table by table, and records where each
 * went in m. src is borrowed and unchanged. On failure (negative FG_E*) dst may hold part
 * of src's entries and m is incomplete. */
int fg_dict_map_into(struct fg_profiles *dst, const struct fg_profiles *src,
                     struct fg_dict_map *m);
void fg_dict_map_release(struct fg_dict_map *m);

/* ---- building ---- */

/* Arena helpers for callers that build entries. */
struct fg_arena *fg_profiles_arena(struct fg_profiles *p);
/* Deep-copies a value (strings, arrays, kvlists) into the batch arena. */
int fg_value_copy(struct fg_profiles *p, struct fg_value *dst, const struct fg_value *src);

/* Appends a resource (deep-copied); returns NULL on out of memory. The pointer is valid
 * until the next add_resource on the same batch. */
struct fg_resource_profiles *fg_profiles_add_resource(struct fg_profiles *p,
                                                      const struct fg_resource *resource,
                                                      const char *schema_url, size_t url_len);
struct fg_scope_profiles *fg_profiles_add_scope(struct fg_profiles *p,
                                                struct fg_resource_profiles *rp,
                                                const struct fg_scope *scope,
                                                const char *schema_url, size_t url_len);
/* Copies the header fields of proto (samples ignored) into a new profile of sp. */
struct fg_profile *fg_profiles_add_profile(struct fg_profiles *p, struct fg_scope_profiles *sp,
                                           const struct fg_profile *proto);
/* Copies the sample's arrays into the arena. */
int fg_profiles_add_sample(struct fg_profiles *p, struct fg_profile *prof,
                           const struct fg_sample *s);

/* ---- merging ---- */

/* Re-interns every entry of src into dst and appends src's resources, scopes, profiles and
 * samples with remapped indices. Resources and scopes equal to ones already in dst are
 * joined (their profiles appended there). src is borrowed and unchanged. On failure dst may
 * hold part of src (callers drop dst). */
int fg_profiles_merge(struct fg_profiles *dst, const struct fg_profiles *src, struct fg_err *err);

/* ---- comparing values ---- */

bool fg_value_equal(const struct fg_value *a, const struct fg_value *b);
uint64_t fg_value_hash(uint64_t h, const struct fg_value *v);
bool fg_keyvalues_equal(const struct fg_keyvalue *a, uint32_t na, const struct fg_keyvalue *b,
                        uint32_t nb);

/* Sum of a profile's sample weights: values, or one per timestamp for timestamps-only
 * samples (the eBPF profiler's shape). */
int64_t fg_profile_total(const struct fg_profile *prof);

#endif
