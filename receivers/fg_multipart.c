/* multipart/form-data splitting: delimiter search with memmem, headers read only for
 * Content-Disposition. Strict CRLF framing as RFC 2046 requires. */
#include "fg_multipart.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Looks for parameter key in "type; a=b; key="v"" (len bytes); the value (unquoted) goes to
 * *val. Returns false when absent. */
static bool find_param(const char *s, size_t len, const char *key, const char **val,
                       size_t *val_len)
{
    size_t klen = strlen(key), i = 0;
    /* skip the leading token (media type or "form-data") */
    while (i < len && s[i] != ';')
        i++;
    while (i < len) {
        i++; /* past ';' */
        while (i < len && is_ws(s[i]))
            i++;
        size_t k = i;
        while (i < len && s[i] != '=' && s[i] != ';')
            i++;
        size_t kend = i;
        while (kend > k && is_ws(s[kend - 1]))
            kend--;
        if (i >= len || s[i] != '=')
            continue;
        i++; /* past '=' */
        while (i < len && is_ws(s[i]))
            i++;
        const char *v;
        size_t vlen;
        if (i < len && s[i] == '"') {
            size_t q = ++i;
            while (i < len && s[i] != '"') {
                if (s[i] == '\\' && i + 1 < len)
                    i++;
                i++;
            }
            v = s + q;
            vlen = i - q;
            if (i < len)
                i++; /* closing quote */
            while (i < len && s[i] != ';')
                i++;
        } else {
            size_t q = i;
            while (i < len && s[i] != ';')
                i++;
            size_t e = i;
            while (e > q && is_ws(s[e - 1]))
                e--;
            v = s + q;
            vlen = e - q;
        }
        if (kend - k == klen && strncasecmp(s + k, key, klen) == 0) {
            *val = v;
            *val_len = vlen;
            return true;
        }
    }
    return false;
}

int fg_multipart_boundary(const char *content_type, char *out, size_t outsize,
                          struct fg_err *err)
{
    const char *v;
    size_t vlen;
    if (!find_param(content_type, strlen(content_type), "boundary", &v, &vlen))
        return fg_err_set(err, FG_EINVAL, "multipart Content-Type without a boundary");
    if (vlen == 0 || vlen > FG_MULTIPART_MAX_BOUNDARY || vlen + 1 > outsize)
        return fg_err_set(err, FG_EINVAL, "multipart boundary of %zu bytes (1 to %d allowed)",
                          vlen, FG_MULTIPART_MAX_BOUNDARY);
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return 0;
}

/* Reads the Content-Disposition parameters of one part's header block [h, end). */
static void read_headers(const char *h, const char *end, struct fg_multipart_part *part)
{
    static const char cd[] = "content-disposition:";
    while (h < end) {
        const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
        if (!eol)
            eol = end;
        size_t n = (size_t)(eol - h);
        if (n > sizeof(cd) - 1 && strncasecmp(h, cd, sizeof(cd) - 1) == 0) {
            const char *v = h + sizeof(cd) - 1;
            size_t vlen = n - (sizeof(cd) - 1);
            const char *p;
            size_t plen;
            if (find_param(v, vlen, "name", &p, &plen)) {
                part->name = p;
                part->name_len = plen;
            }
            if (find_param(v, vlen, "filename", &p, &plen)) {
                part->filename = p;
                part->filename_len = plen;
            }
        }
        h = eol + 2;
    }
}

int fg_multipart_parse(const char *content_type, const uint8_t *body, size_t len,
                       struct fg_multipart_part *parts, size_t max_parts, size_t *n_parts,
                       struct fg_err *err)
{
    char boundary[FG_MULTIPART_MAX_BOUNDARY + 1];
    char delim[FG_MULTIPART_MAX_BOUNDARY + 5]; /* CRLF "--" boundary */
    const char *b = (const char *)body, *end = b + len;
    size_t n = 0;
    int rc;

    *n_parts = 0;
    if ((rc = fg_multipart_boundary(content_type, boundary, sizeof(boundary), err)) != 0)
        return rc;
    size_t blen = strlen(boundary);
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    size_t dlen = blen + 4;

    /* The first delimiter may open the body (no CRLF before it) or follow a preamble. */
    const char *p;
    if (len >= dlen - 2 && memcmp(b, delim + 2, dlen - 2) == 0) {
        p = b + dlen - 2;
    } else {
        p = memmem(b, len, delim, dlen);
        if (!p)
            return fg_err_set(err, FG_EINVAL, "multipart body without a \"--%s\" delimiter",
                              boundary);
        p += dlen;
    }
    for (;;) {
        /* p is just past a delimiter: "--" closes, otherwise padding then CRLF */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break;
        while (p < end && is_ws(*p))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return fg_err_set(err, FG_EINVAL, "multipart part %zu: no CRLF after the "
                              "delimiter", n + 1);
        p += 2;
        const char *hdr_end;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            hdr_end = p; /* no headers */
        } else {
            hdr_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
            if (!hdr_end)
                return fg_err_set(err, FG_EINVAL, "multipart part %zu: headers not "
                                  "terminated by a blank line", n + 1);
            hdr_end += 2; /* keep the last header's CRLF out of the block */
        }
        const char *data = hdr_end + 2;
        const char *next = memmem(data, (size_t)(end - data), delim, dlen);
        if (!next)
            return fg_err_set(err, FG_EINVAL, "multipart part %zu: no closing delimiter",
                              n + 1);
        if (n == max_parts)
            return fg_err_set(err, FG_EINVAL, "multipart body with more than %zu parts",
                              max_parts);
        struct fg_multipart_part *part = &parts[n];
        memset(part, 0, sizeof(*part));
        read_headers(p, hdr_end, part);
        part->data = (const uint8_t *)data;
        part->len = (size_t)(next - data);
        n++;
        p = next + dlen;
    }
    *n_parts = n;
    return 0;
}

const struct fg_multipart_part *fg_multipart_find(const struct fg_multipart_part *parts,
                                                  size_t n_parts, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n_parts; i++)
        if (parts[i].name && parts[i].name_len == len && memcmp(parts[i].name, name, len) == 0)
            return &parts[i];
    return NULL;
}
