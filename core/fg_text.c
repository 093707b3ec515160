/* Percent-decoding (the hex digit helper is inline in the header). */
#include "fg_text.h"

#include "fg_common.h"

int fg_percent_decode(const char *in, size_t len, char *out, size_t outsize, unsigned flags,
                      size_t *out_len)
{
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '+' && (flags & FG_PERCENT_PLUS_SPACE)) {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < len ? fg_hex_digit(in[i + 1]) : -1;
            int lo = i + 2 < len ? fg_hex_digit(in[i + 2]) : -1;
            if (hi >= 0 && lo >= 0) {
                if (hi == 0 && lo == 0 && (flags & FG_PERCENT_NO_NUL)) {
                    rc = FG_EINVAL;
                    break;
                }
                c = (char)(hi << 4 | lo);
                i += 2;
            } else if (flags & FG_PERCENT_STRICT) {
                rc = FG_EINVAL;
                break;
            }
        }
        if (n + 1 >= outsize) {
            rc = FG_ETOOBIG;
            break;
        }
        out[n++] = c;
    }
    if (rc == 0 && n >= outsize)
        rc = FG_ETOOBIG; /* outsize 0: not even room for the NUL */
    if (outsize > 0)
        out[n] = '\0';
    if (out_len)
        *out_len = n;
    return rc;
}
