/* Small text codecs shared by the receivers, processors and the server: hex digits and
 * percent-decoding (URL query strings, grpc-message, OTEL_RESOURCE_ATTRIBUTES). */
#ifndef FG_TEXT_H
#define FG_TEXT_H

#include <stddef.h>

/* The value 0..15 of one hex digit (either case), or -1 when c is not one. */
static inline int fg_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* What fg_percent_decode does besides turning "%HH" into the byte 0xHH. */
enum fg_percent_flags {
    FG_PERCENT_PLUS_SPACE = 1 << 0, /* '+' is ' ' (form / query-string encoding) */
    FG_PERCENT_STRICT = 1 << 1,     /* a '%' without two hex digits after it is FG_EINVAL;
                                       without this flag it is copied as it is */
    FG_PERCENT_NO_NUL = 1 << 2,     /* "%00" is FG_EINVAL (the result is used as a C string) */
};

/* Decodes in[0..len) into out and NUL-terminates it; *out_len (may be NULL) gets the decoded
 * length, not counting the NUL. An escape must lie whole inside in[0..len).
 * Returns 0, FG_EINVAL (flags above: out then holds what came before the bad escape) or
 * FG_ETOOBIG when the decoded text and its NUL do not fit in outsize bytes: out then holds
 * the longest prefix that fits (nothing when outsize is 0). The first problem in input order
 * decides the error. */
int fg_percent_decode(const char *in, size_t len, char *out, size_t outsize, unsigned flags,
                      size_t *out_len);

#endif
