/* Scheme, host and port of an exporter URL (RFC 3986 §3.2, the subset HTTP clients use). */
#include "fg_http_url.h"

#include <string.h>
#include <strings.h>

int fg_http_url_parse(const char *what, const char *url, struct fg_http_url *out,
                      struct fg_err *err)
{
    memset(out, 0, sizeof(*out));
    size_t pos;
    if (strncasecmp(url, "http://", 7) == 0) {
        pos = 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        out->https = true;
        pos = 8;
    } else {
        return fg_err_set(err, FG_EINVAL, "%s: '%s': the scheme must be http:// or https://",
                          what, url);
    }
    size_t end = pos + strcspn(url + pos, "/?#");
    for (size_t i = pos; i < end; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= ' ' || c == 0x7f)
            return fg_err_set(err, FG_EINVAL, "%s: '%s': space or control character in the host",
                              what, url);
        if (c == '@')
            pos = i + 1; /* after user:password@ */
    }
    size_t host_end;
    if (url[pos] == '[') {
        const char *close = memchr(url + pos, ']', end - pos);
        if (!close)
            return fg_err_set(err, FG_EINVAL, "%s: '%s': '[' without ']'", what, url);
        host_end = (size_t)(close - url) + 1;
    } else {
        const char *colon = memchr(url + pos, ':', end - pos);
        host_end = colon ? (size_t)(colon - url) : end;
    }
    if (host_end == pos || (url[pos] == '[' && host_end == pos + 2))
        return fg_err_set(err, FG_EINVAL, "%s: '%s': no host", what, url);
    out->host_start = pos;
    out->host_end = host_end;
    out->port = out->https ? 443 : 80;
    if (host_end == end)
        return 0;
    if (url[host_end] != ':')
        return fg_err_set(err, FG_EINVAL, "%s: '%s': unexpected text after the host", what,
                          url);
    unsigned long port = 0;
    size_t digits = end - host_end - 1;
    for (size_t i = host_end + 1; i < end; i++) {
        if (url[i] < '0' || url[i] > '9' || port > 65535) {
            port = 0;
            break;
        }
        port = port * 10 + (unsigned long)(url[i] - '0');
    }
    if (digits == 0 || port == 0 || port > 65535)
        return fg_err_set(err, FG_EINVAL, "%s: '%s': the port must be a number in 1..65535",
                          what, url);
    out->port = (unsigned)port;
    return 0;
}
