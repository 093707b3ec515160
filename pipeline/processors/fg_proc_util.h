/* Small helpers shared by the processors: number and regex option checks, attribute
 * lookups by key, a value's text form, and a bounded string-keyed state table. */
#ifndef FG_PROC_UTIL_H
#define FG_PROC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_common.h"
#include "fg_model.h"

/* A finite decimal number ("10", "0.5", "1e-3"); 0 or FG_EINVAL. */
int fg_proc_parse_double(const char *text, double *out);

/* Option check hooks (fg_option.check) for FG_OPT_STRING fields; an unset (NULL) value
 * passes. percentage: 0..100; nonneg: >= 0; fraction: 0..1 inclusive; regex: a POSIX
 * extended regular expression that compiles. */
int fg_proc_check_percentage(const void *value, struct fg_err *err);
int fg_proc_check_nonneg(const void *value, struct fg_err *err);
int fg_proc_check_fraction(const void *value, struct fg_err *err);
int fg_proc_check_regex(const void *value, struct fg_err *err);

/* The value of resource attribute key, or NULL. */
const struct fg_value *fg_proc_resource_attr(const struct fg_resource *r, const char *key);
/* The value of the profile (or sample) attribute key among attrs, or NULL. */
const struct fg_value *fg_proc_attr(const struct fg_profiles *p, const uint32_t *attrs,
                                    uint32_t n, const char *key);
/* The text form of a scalar value ("" for empty, arrays and kvlists); returns buf, or the
 * string itself (not NUL-terminated beyond len) through *len. */
const char *fg_proc_value_text(const struct fg_value *v, char *buf, size_t bufsize, size_t *len);

/* A string-keyed table of fixed-size states (zeroed when created), bounded to max keys:
 * past the bound every new key shares one overflow state. Not thread-safe. */
struct fg_keytab;
int fg_keytab_new(size_t state_size, size_t max_keys, struct fg_keytab **out);
void fg_keytab_free(struct fg_keytab *t);
/* The state of key (created when new); *created says so. NULL on out of memory. */
void *fg_keytab_get(struct fg_keytab *t, const char *key, size_t len, bool *created);
size_t fg_keytab_count(const struct fg_keytab *t);
/* How many lookups landed in the overflow state. */
uint64_t fg_keytab_overflows(const struct fg_keytab *t);

#endif
