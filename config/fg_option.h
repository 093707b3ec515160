/* Component options declared as data (name, type, default, bounds, offset into the typed
 * config), in the manner of nginx directives and Fluent Bit config maps. Defaults run
 * through the same parser as user values. */
#ifndef FG_OPTION_H
#define FG_OPTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fg_opt_type {
    FG_OPT_STRING,   /* char * (owned by the config; NULL when unset and no default) */
    FG_OPT_BOOL,     /* bool */
    FG_OPT_INT,      /* int64_t, bounds min..max */
    FG_OPT_DURATION, /* int64_t nanoseconds; "5s", "200ms", "1m30s", "1h"; bounds in ns */
    FG_OPT_SIZE,     /* uint64_t bytes; "4MiB", "20MB", "512KiB", "1024"; bounds in bytes */
    FG_OPT_ENUM,     /* int: index into enum_names */
    FG_OPT_STRMAP,   /* struct fg_strmap: a YAML mapping of string → string (e.g. headers) */
    FG_OPT_STRLIST,  /* struct fg_strlist: a YAML sequence of strings */
    FG_OPT_STRUCT,   /* nested options (sub) stored in an embedded struct at offset */
    FG_OPT_STRUCTLIST, /* struct fg_structlist: a YAML sequence of mappings, each parsed with
                        * sub (defaults first) into an element of elem_size bytes */
};

struct fg_strmap {
    size_t n;
    char **keys;
    char **values;
};

struct fg_strlist {
    size_t n;
    char **items;
};

/* Elements are elem_size bytes each, contiguous; fg_options_free frees them with sub. */
struct fg_structlist {
    size_t n;
    void *items;
};

struct fg_err;

struct fg_option {
    const char *name; /* NULL ends a table */
    enum fg_opt_type type;
    size_t offset;
    const char *default_value;      /* text parsed like a user value; NULL = zero/unset */
    int64_t min, max;               /* INT/DURATION/SIZE: inclusive bounds when min < max */
    const char *const *enum_names;  /* ENUM: NULL-terminated names */
    const struct fg_option *sub;    /* STRUCT: the nested table */
    /* STRUCT: offset of a bool set to true when the key is present in the YAML (for
     * Collector-style "protocols: {http:}" where presence enables a block); or
     * FG_OPT_NO_PRESENT. */
    size_t present_offset;
    const char *help;
    size_t elem_size; /* STRUCTLIST: bytes per element */
    /* Optional value check run by the loader after a value is stored, so its message gets
     * the value's FILE:LINE:COL (a bad regex, say). value points at the field for scalar
     * types, at one char * item for STRLIST, at one element for STRUCTLIST. */
    int (*check)(const void *value, struct fg_err *err);
};

#define FG_OPT_NO_PRESENT ((size_t)-1)

#define FG_OPT_STR(name, type_, field, def, help) \
    {name, FG_OPT_STRING, offsetof(type_, field), def, 0, 0, NULL, NULL, FG_OPT_NO_PRESENT, help, 0, NULL}
#define FG_OPT_BOOLEAN(name, type_, field, def, help) \
    {name, FG_OPT_BOOL, offsetof(type_, field), def, 0, 0, NULL, NULL, FG_OPT_NO_PRESENT, help, 0, NULL}
#define FG_OPT_INTEGER(name, type_, field, def, lo, hi, help) \
    {name, FG_OPT_INT, offsetof(type_, field), def, lo, hi, NULL, NULL, FG_OPT_NO_PRESENT, help, 0, NULL}
#define FG_OPT_DUR(name, type_, field, def, lo, hi, help) \
    {name, FG_OPT_DURATION, offsetof(type_, field), def, lo, hi, NULL, NULL, FG_OPT_NO_PRESENT, help, 0, NULL}
#define FG_OPT_BYTES(name, type_, field, def, lo, hi, help) \
    {name, FG_OPT_SIZE, offsetof(type_, field), def, lo, hi, NULL, NULL, FG_OPT_NO_PRESENT, help, 0, NULL}
#define FG_OPT_CHOICE(name, type_, field, def, names, help) \
    {name, FG_OPT_ENUM, offsetof(type_, field), def, 0, 0, names, NULL, FG_OPT_NO_PRESENT, help, 0, NULL}
#define FG_OPT_MAP(name, type_, field, help) \
    {name, FG_OPT_STRMAP, offsetof(type_, field), NULL, 0, 0, NULL, NULL, FG_OPT_NO_PRESENT, help, 0, NULL}
#define FG_OPT_LIST(name, type_, field, help) \
    {name, FG_OPT_STRLIST, offsetof(type_, field), NULL, 0, 0, NULL, NULL, FG_OPT_NO_PRESENT, help, 0, NULL}
#define FG_OPT_BLOCK(name, type_, field, subtable, help) \
    {name, FG_OPT_STRUCT, offsetof(type_, field), NULL, 0, 0, NULL, subtable, FG_OPT_NO_PRESENT, help, 0, NULL}
#define FG_OPT_BLOCK_PRESENT(name, type_, field, subtable, present_field, help)                 \
    {name, FG_OPT_STRUCT, offsetof(type_, field), NULL, 0, 0, NULL, subtable,                   \
     offsetof(type_, present_field), help, 0, NULL}
/* A list of mappings, each parsed with subtable into one elem_type. */
#define FG_OPT_STRUCTS(name, type_, field, subtable, elem_type, help)                          \
    {name, FG_OPT_STRUCTLIST, offsetof(type_, field), NULL, 0, 0, NULL, subtable,              \
     FG_OPT_NO_PRESENT, help, sizeof(elem_type), NULL}
#define FG_OPT_STRUCTS_CHECK(name, type_, field, subtable, elem_type, checkfn, help)           \
    {name, FG_OPT_STRUCTLIST, offsetof(type_, field), NULL, 0, 0, NULL, subtable,              \
     FG_OPT_NO_PRESENT, help, sizeof(elem_type), checkfn}
#define FG_OPT_STR_CHECK(name, type_, field, def, checkfn, help) \
    {name, FG_OPT_STRING, offsetof(type_, field), def, 0, 0, NULL, NULL, FG_OPT_NO_PRESENT, help, 0, checkfn}
#define FG_OPT_LIST_CHECK(name, type_, field, checkfn, help) \
    {name, FG_OPT_STRLIST, offsetof(type_, field), NULL, 0, 0, NULL, NULL, FG_OPT_NO_PRESENT, help, 0, checkfn}
#define FG_OPT_END {NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, NULL, 0, NULL}

/* Fills cfg (zeroed by the caller, of the table's struct type) with the table defaults.
 * Returns 0, or FG_EINVAL if a default does not parse (a programming error: message in err). */
int fg_options_defaults(const struct fg_option *table, void *cfg, struct fg_err *err);
/* Frees what options own inside cfg (strings, maps, lists), recursively; not cfg itself. */
void fg_options_free(const struct fg_option *table, void *cfg);

/* Value parsers shared with the rest of the program. Return 0 or FG_EINVAL. */
int fg_parse_duration(const char *text, int64_t *ns);
int fg_parse_size(const char *text, uint64_t *bytes);
int fg_parse_bool(const char *text, bool *value);
int fg_parse_int(const char *text, int64_t *value);

#endif
