/* Base64 (RFC 4648): the standard alphabet for encoding; decoding strictly (HTTP Basic,
 * htpasswd {SHA}) or leniently (gRPC's -bin metadata: URL alphabet too, padding optional). */
#ifndef FG_BASE64_H
#define FG_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Characters fg_base64_encode writes for n bytes, without the NUL. */
#define FG_BASE64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)
/* The most bytes len characters of base64 can decode to. */
#define FG_BASE64_DECODED_MAX(len) ((len) / 4 * 3 + 2)

/* Writes the padded encoding of in[0..n) and a NUL to out, which must hold
 * FG_BASE64_ENCODED_LEN(n) + 1 bytes. Returns the characters written (without the NUL). */
size_t fg_base64_encode(const void *in, size_t n, char *out);

enum fg_base64_mode {
    FG_BASE64_STRICT,  /* standard alphabet, length a multiple of 4, '=' padding */
    FG_BASE64_LENIENT, /* standard or URL alphabet, padding optional */
};

/* Decodes in[0..len) into out (cap bytes) and sets *outlen. Returns 0, FG_EINVAL for a
 * character outside the alphabet, misplaced padding or a length no encoding has, or
 * FG_ETOOBIG when out is too small. */
int fg_base64_decode(const char *in, size_t len, enum fg_base64_mode mode, uint8_t *out,
                     size_t cap, size_t *outlen);

#endif
