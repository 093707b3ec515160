/* Internal to config/: a YAML document as a tree of scalars, mappings and sequences with
 * 1-based positions, built from libyaml events, with ${env:VAR} expansion of values. */
#ifndef FG_YAML_H
#define FG_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "fg_config.h"

enum fg_ynode_kind { FG_YNODE_SCALAR, FG_YNODE_MAPPING, FG_YNODE_SEQUENCE };

struct fg_ynode {
    enum fg_ynode_kind kind;
    int line, col;        /* 1-based */
    bool is_null;         /* scalar: plain "", "~" or "null" (quoted "" is not null) */
    char *text;           /* scalar: env-expanded for values, as written for mapping keys */
    size_t n;             /* mapping: pairs; sequence: items */
    struct fg_ynode **kids; /* sequence: n items; mapping: key at 2i, value at 2i+1 */
};

/* Parses len bytes of YAML. Returns 0 with *root set (NULL for a stream without a document),
 * FG_EINVAL after reporting a syntax error (or an alias, or too deep nesting) into diag, or
 * FG_ENOMEM. Env expansion problems are reported into diag but do not fail the parse. */
int fg__yaml_parse(const char *file, const char *data, size_t len, struct fg_diag *diag,
                   struct fg_ynode **root);
void fg__ynode_free(struct fg_ynode *node);

static inline struct fg_ynode *fg__ynode_key(const struct fg_ynode *map, size_t i)
{
    return map->kids[2 * i];
}

static inline struct fg_ynode *fg__ynode_value(const struct fg_ynode *map, size_t i)
{
    return map->kids[2 * i + 1];
}

#endif
