/* multipart/form-data (RFC 7578) bodies, as Pyroscope clients send pprof with a
 * sample_type_config: parts are located, never copied. */
#ifndef FG_MULTIPART_H
#define FG_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#include "fg_common.h"

#define FG_MULTIPART_MAX_BOUNDARY 70 /* RFC 2046 §5.1.1 */

/* Pointers into the body given to fg_multipart_parse (borrowed, not NUL-terminated). */
struct fg_multipart_part {
    const char *name; /* Content-Disposition name="…"; NULL when absent */
    size_t name_len;
    const char *filename; /* filename="…"; NULL when absent */
    size_t filename_len;
    const uint8_t *data;
    size_t len;
};

/* The boundary parameter of a multipart Content-Type into out (at least
 * FG_MULTIPART_MAX_BOUNDARY + 1 bytes). FG_EINVAL when absent, empty or too long. */
int fg_multipart_boundary(const char *content_type, char *out, size_t outsize,
                          struct fg_err *err);

/* Splits body into at most max_parts parts (*n_parts of them filled). FG_EINVAL for a
 * body without the opening or closing delimiter, a part without its blank line after the
 * headers, or more than max_parts parts; the message says which. */
int fg_multipart_parse(const char *content_type, const uint8_t *body, size_t len,
                       struct fg_multipart_part *parts, size_t max_parts, size_t *n_parts,
                       struct fg_err *err);

/* The first part named name, or NULL. */
const struct fg_multipart_part *fg_multipart_find(const struct fg_multipart_part *parts,
                                                  size_t n_parts, const char *name);

#endif
