/* Extension "bearertokenauth": a static token that receivers require in
 * `Authorization: <scheme> <token>` and exporters send, from the config or a file (read at
 * start, so SIGHUP picks up a rotated file). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_auth.h"
#include "fg_log.h"

#define TOKEN_FILE_MAX 16384

struct bearertokenauth_config {
    char *scheme;
    char *token;
    char *filename;
};

static const struct fg_option bearertokenauth_options[] = {
    FG_OPT_STR("scheme", struct bearertokenauth_config, scheme, "Bearer",
               "the Authorization scheme before the token"),
    FG_OPT_STR("token", struct bearertokenauth_config, token, NULL,
               "the token (never logged); or use filename"),
    FG_OPT_STR("filename", struct bearertokenauth_config, filename, NULL,
               "file holding the token (surrounding whitespace ignored), read at start and "
               "on every reload"),
    FG_OPT_END,
};

struct bearertokenauth {
    struct fg_auth_ext head; /* first */
    struct bearertokenauth_config cfg; /* strings borrowed from the config */
    char *expected;                    /* "<scheme> <token>", set by start */
};

extern const struct fg_factory fg_bearertokenauth_factory;

static int bt_validate(const void *config, struct fg_err *err)
{
    const struct bearertokenauth_config *cfg = config;
    bool has_token = cfg->token && *cfg->token, has_file = cfg->filename && *cfg->filename;
    if (has_token == has_file)
        return fg_err_set(err, FG_EINVAL, "exactly one of token and filename must be set");
    if (!cfg->scheme || !*cfg->scheme || strpbrk(cfg->scheme, " \t\r\n"))
        return fg_err_set(err, FG_EINVAL, "scheme: must be one word");
    if (has_token && strpbrk(cfg->token, "\r\n"))
        return fg_err_set(err, FG_EINVAL, "token: must not contain line breaks");
    return 0;
}

static int read_token(const char *path, char **out, struct fg_err *err)
{
    char buf[TOKEN_FILE_MAX + 1];
    FILE *f = fopen(path, "rb");
    if (!f)
        return fg_err_set(err, FG_EIO, "filename: cannot open %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n > TOKEN_FILE_MAX)
        return fg_err_set(err, FG_EINVAL, "filename: %s is larger than %d bytes", path,
                          TOKEN_FILE_MAX);
    size_t b = 0;
    while (b < n && strchr(" \t\r\n", buf[b]))
        b++;
    while (n > b && strchr(" \t\r\n", buf[n - 1]))
        n--;
    if (n == b || memchr(buf + b, '\n', n - b) || memchr(buf + b, '\r', n - b) ||
        memchr(buf + b, '\0', n - b))
        return fg_err_set(err, FG_EINVAL, "filename: %s must hold one non-empty line", path);
    if (!(*out = fg_strndup(buf + b, n - b)))
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    return 0;
}

static int bt_check(struct fg_authenticator *a, const char *authorization)
{
    struct bearertokenauth *bt = (struct bearertokenauth *)((char *)a -
                                                           offsetof(struct fg_auth_ext, auth));
    if (!bt->expected || !authorization)
        return FG_EPERMANENT;
    return fg_auth_equal(authorization, bt->expected) ? 0 : FG_EPERMANENT;
}

static int bt_client_value(struct fg_authenticator *a, char *out, size_t outsz)
{
    struct bearertokenauth *bt = (struct bearertokenauth *)((char *)a -
                                                           offsetof(struct fg_auth_ext, auth));
    if (!bt->expected)
        return FG_EINVAL;
    if ((size_t)snprintf(out, outsz, "%s", bt->expected) >= outsz)
        return FG_ETOOBIG;
    return 0;
}

static int bt_start(struct fg_component *c, struct fg_err *err)
{
    struct bearertokenauth *bt = (struct bearertokenauth *)c;
    char *token = NULL;
    int rc = 0;
    if (bt->cfg.filename && *bt->cfg.filename) {
        if ((rc = read_token(bt->cfg.filename, &token, err)) != 0)
            goto fail;
    } else if (!(token = fg_strdup(bt->cfg.token))) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }
    size_t len = strlen(bt->cfg.scheme) + 1 + strlen(token) + 1;
    if (!(bt->expected = fg_malloc(len))) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(bt->expected, len, "%s %s", bt->cfg.scheme, token);
    fg_free(token);
    return 0;
fail:
    fg_err_prefix(err, "%s", c->id);
    fg_free(token);
    return rc;
}

static int bt_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    return 0;
}

static void bt_destroy(struct fg_component *c)
{
    struct bearertokenauth *bt = (struct bearertokenauth *)c;
    if (bt->expected) {
        /* the secret does not outlive us in freed memory */
        volatile char *p = bt->expected;
        for (size_t i = 0; p[i]; i++)
            p[i] = 0;
    }
    fg_free(bt->expected);
    fg_free(bt);
}

static const struct fg_component_ops bt_ops = {
    .start = bt_start,
    .shutdown = bt_shutdown,
    .destroy = bt_destroy,
};

static int bt_create(const struct fg_create_args *args, struct fg_component **out,
                     struct fg_err *err)
{
    *out = NULL;
    struct bearertokenauth *bt = fg_calloc(1, sizeof(*bt));
    if (!bt)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    bt->head.base.ops = &bt_ops;
    bt->head.base.factory = &fg_bearertokenauth_factory;
    snprintf(bt->head.base.id, sizeof(bt->head.base.id), "%s",
             args->id ? args->id : "bearertokenauth");
    bt->head.auth.check = bt_check;
    bt->head.auth.client_value = bt_client_value;
    bt->cfg = *(const struct bearertokenauth_config *)args->config;
    *out = &bt->head.base;
    return 0;
}

const struct fg_factory fg_bearertokenauth_factory = {
    .type = "bearertokenauth",
    .kind = FG_KIND_EXTENSION,
    .config_size = sizeof(struct bearertokenauth_config),
    .options = bearertokenauth_options,
    .validate = bt_validate,
    .create = bt_create,
};
