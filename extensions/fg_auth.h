/* What authenticator extensions (bearertokenauth, basicauth) offer the components that name
 * them in `auth.authenticator`: a server-side check of a request's Authorization header and
 * the Authorization value a client (exporter) sends. */
#ifndef FG_AUTH_H
#define FG_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "fg_common.h"
#include "fg_component.h"
#include "fg_option.h"

struct fg_authenticator {
    /* 0 when the Authorization header value (NULL when absent) is accepted. Any thread. */
    int (*check)(struct fg_authenticator *a, const char *authorization);
    /* Writes the Authorization value a client sends into out (NUL-terminated); FG_EINVAL
     * when the extension has no client credentials, FG_ETOOBIG when out is too small. */
    int (*client_value)(struct fg_authenticator *a, char *out, size_t outsz);
};

/* The head of every authenticator extension instance. */
struct fg_auth_ext {
    struct fg_component base; /* first */
    struct fg_authenticator auth;
};

/* `auth:` on a receiver or exporter (Collector configauth names). */
struct fg_auth_config {
    char *authenticator; /* extension id, e.g. "bearertokenauth/in"; NULL = none */
};

extern const struct fg_option fg_auth_options[];

/* The authenticator of component c, or NULL when c is not an authenticator extension. */
struct fg_authenticator *fg_authenticator_of(struct fg_component *c);

/* Resolves cfg->authenticator through args->find_extension. *out is NULL when cfg names
 * none; an unknown id or an extension that is no authenticator is FG_EINVAL. */
int fg_auth_resolve(const struct fg_create_args *args, const struct fg_auth_config *cfg,
                    struct fg_authenticator **out, struct fg_err *err);

/* Adapter for fg_http_server_set_auth (server/fg_tls.h): ctx is a fg_authenticator. */
int fg_auth_http_check(void *ctx, const char *authorization);

/* Constant-time string equality (the time depends on the lengths only). */
bool fg_auth_equal(const char *given, const char *expected);

#endif
