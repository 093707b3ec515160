/* Internals of the option tables shared by fg_option.c and the YAML loader (fg_config.c);
 * not part of the public contract. */
#ifndef FG_OPTION_INTERNAL_H
#define FG_OPTION_INTERNAL_H

#include "fg_common.h"
#include "fg_option.h"

/* Parses text (already env-expanded) into the field of opt inside cfg, checking bounds and
 * enum names. Valid for every type except STRMAP, STRLIST and STRUCT. On error the message
 * in err describes the value only (the caller prefixes the key path); the field keeps its
 * previous value. */
int fg__option_set_scalar(const struct fg_option *opt, void *cfg, const char *text,
                          struct fg_err *err);

/* Writes a list like "a, b, c" of the option names of table (for unknown-key messages). */
void fg__option_names(const struct fg_option *table, char *buf, size_t bufsize);

/* Frees the elements of a STRUCTLIST field (each with opt->sub) and empties it. */
void fg__structlist_clear(const struct fg_option *opt, struct fg_structlist *l);

#endif
