/* Authenticator lookup shared by receivers and exporters, and the constant-time compare the
 * authenticator extensions use. */
#include "fg_auth.h"

#include <string.h>

#include "fg_tls.h"

extern const struct fg_factory fg_bearertokenauth_factory;
extern const struct fg_factory fg_basicauth_factory;

const struct fg_option fg_auth_options[] = {
    FG_OPT_STR("authenticator", struct fg_auth_config, authenticator, NULL,
               "id of a bearertokenauth or basicauth extension listed in service.extensions"),
    FG_OPT_END,
};

struct fg_authenticator *fg_authenticator_of(struct fg_component *c)
{
    if (!c || (c->factory != &fg_bearertokenauth_factory && c->factory != &fg_basicauth_factory))
        return NULL;
    return &((struct fg_auth_ext *)c)->auth;
}

int fg_auth_resolve(const struct fg_create_args *args, const struct fg_auth_config *cfg,
                    struct fg_authenticator **out, struct fg_err *err)
{
    *out = NULL;
    if (!cfg->authenticator || !*cfg->authenticator)
        return 0;
    struct fg_component *c = args && args->find_extension
                                 ? args->find_extension(args->find_ctx, cfg->authenticator)
                                 : NULL;
    if (!c)
        return fg_err_set(err, FG_EINVAL,
                          "auth.authenticator: extension \"%s\" is not configured (list it "
                          "under extensions and service.extensions)", cfg->authenticator);
    if (!(*out = fg_authenticator_of(c)))
        return fg_err_set(err, FG_EINVAL,
                          "auth.authenticator: \"%s\" is not an authenticator (bearertokenauth, "
                          "basicauth)", cfg->authenticator);
    return 0;
}

int fg_auth_http_check(void *ctx, const char *authorization)
{
    struct fg_authenticator *a = ctx;
    return a->check(a, authorization);
}

bool fg_auth_equal(const char *given, const char *expected)
{
    if (!given || !expected)
        return false;
    return fg_ct_equal(given, strlen(given), expected, strlen(expected));
}
