/* The parts of an exporter's http:// or https:// URL that flamegate checks at start and
 * rewrites for tls.server_name_override, without libcurl (which loads at the first send). */
#ifndef FG_HTTP_URL_H
#define FG_HTTP_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "fg_common.h"

struct fg_http_url {
    bool https;
    size_t host_start, host_end; /* the host in the URL as written ([...] for IPv6) */
    unsigned port;               /* as written, else 80 or 443 */
};

/* Splits url ("scheme://[user@]host[:port][/path][?query]"); FG_EINVAL with a message
 * "what: 'url': reason" for another scheme, an empty host or a port outside 1..65535. */
int fg_http_url_parse(const char *what, const char *url, struct fg_http_url *out,
                      struct fg_err *err);

#endif
