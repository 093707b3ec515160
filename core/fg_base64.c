/* Base64 encode and decode (RFC 4648 §4 and §5). */
#include "fg_base64.h"

#include "fg_common.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t fg_base64_encode(const void *in, size_t n, char *out)
{
    const uint8_t *p = in;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[j++] = alphabet[v >> 18 & 63];
        out[j++] = alphabet[v >> 12 & 63];
        out[j++] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        out[j++] = i + 2 < n ? alphabet[v & 63] : '=';
    }
    out[j] = '\0';
    return j;
}

static int digit(char c, enum fg_base64_mode mode)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || (c == '-' && mode == FG_BASE64_LENIENT))
        return 62;
    if (c == '/' || (c == '_' && mode == FG_BASE64_LENIENT))
        return 63;
    return -1;
}

int fg_base64_decode(const char *in, size_t len, enum fg_base64_mode mode, uint8_t *out,
                     size_t cap, size_t *outlen)
{
    *outlen = 0;
    if (mode == FG_BASE64_STRICT && len % 4 != 0)
        return FG_EINVAL;
    /* at most two '=' end the input (strict: the multiple of 4 puts them in place) */
    for (int pad = 0; len > 0 && pad < 2 && in[len - 1] == '='; pad++)
        len--;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = digit(in[i], mode);
        if (v < 0)
            return FG_EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return FG_ETOOBIG;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits >= 6)
        return FG_EINVAL; /* a lone character of a group carries no byte */
    *outlen = n;
    return 0;
}
