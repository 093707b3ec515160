/* Extension "basicauth": HTTP Basic credentials checked against htpasswd entries (a file
 * and/or inline lines) on receivers, and sent from client_auth by exporters.
 *
 * Hashes: "{SHA}" (htpasswd -s), whatever Debian's libcrypt (libxcrypt) verifies with
 * crypt(3) — bcrypt "$2y$"/"$2b$" (htpasswd -B), "$5$", "$6$", yescrypt "$y$", "$1$" — and
 * plain text. Apache's own MD5 "$apr1$" is not in libcrypt and is refused at start with a
 * message. A crypt(3) check is slow by design and runs on the listener's event loop, so
 * the digest of an Authorization value that passed is remembered per user: the next
 * request with the same value costs one SHA-256. */
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fg_alloc.h"
#include "fg_digest.h"
#include "fg_auth.h"
#include "fg_base64.h"
#include "fg_buf.h"
#include "fg_log.h"
#include "fg_sha1.h"
#include "fg_tls.h"

#define HTPASSWD_MAX ((size_t)1 << 20)
#define CREDS_MAX 1024

struct basicauth_htpasswd {
    char *file;
    char *inline_users; /* "user:hash" lines */
};

struct basicauth_client {
    char *username;
    char *password;
};

struct basicauth_config {
    struct basicauth_htpasswd htpasswd;
    struct basicauth_client client_auth;
};

static const struct fg_option htpasswd_options[] = {
    FG_OPT_STR("file", struct basicauth_htpasswd, file, NULL,
               "htpasswd file (user:hash lines), read at start and on every reload"),
    FG_OPT_STR("inline", struct basicauth_htpasswd, inline_users, NULL,
               "htpasswd lines in the config itself"),
    FG_OPT_END,
};

static const struct fg_option client_options[] = {
    FG_OPT_STR("username", struct basicauth_client, username, NULL, "user exporters send"),
    FG_OPT_STR("password", struct basicauth_client, password, NULL,
               "password exporters send (never logged)"),
    FG_OPT_END,
};

static const struct fg_option basicauth_options[] = {
    FG_OPT_BLOCK("htpasswd", struct basicauth_config, htpasswd, htpasswd_options,
                 "users receivers accept ({SHA}, crypt(3) hashes such as bcrypt, or plain)"),
    FG_OPT_BLOCK("client_auth", struct basicauth_config, client_auth, client_options,
                 "credentials exporters send"),
    FG_OPT_END,
};

struct user {
    char *name;
    char *hash;
    bool slow;                    /* crypt(3) */
    bool cached;
    char ok_digest[65];           /* SHA-256 (hex) of an Authorization value that passed */
};

struct basicauth {
    struct fg_auth_ext head; /* first */
    struct basicauth_config cfg; /* borrowed from the config */
    struct user *users;
    size_t n_users;
    char *client_value;
    pthread_mutex_t mu; /* the per-user caches */
};

extern const struct fg_factory fg_basicauth_factory;

static struct basicauth *from_auth(struct fg_authenticator *a)
{
    return (struct basicauth *)((char *)a - offsetof(struct fg_auth_ext, auth));
}

static void wipe(char *s)
{
    if (!s)
        return;
    volatile char *p = s;
    for (size_t i = 0; p[i]; i++)
        p[i] = 0;
}

static int add_users(struct basicauth *ba, const char *text, size_t len, const char *origin,
                     struct fg_err *err)
{
    size_t line_no = 0;
    for (size_t off = 0; off < len;) {
        const char *line = text + off;
        const char *nl = memchr(line, '\n', len - off);
        size_t n = nl ? (size_t)(nl - line) : len - off;
        off += n + (nl ? 1 : 0);
        line_no++;
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            n--;
        while (n > 0 && (*line == ' ' || *line == '\t')) {
            line++;
            n--;
        }
        if (n == 0 || line[0] == '#')
            continue;
        const char *colon = memchr(line, ':', n);
        if (!colon || colon == line || colon + 1 == line + n)
            return fg_err_set(err, FG_EINVAL, "htpasswd %s line %zu: expected user:hash",
                              origin, line_no);
        struct user *u = fg_realloc(ba->users, (ba->n_users + 1) * sizeof(*u));
        if (!u)
            return fg_err_set(err, FG_ENOMEM, "out of memory");
        ba->users = u;
        u = &ba->users[ba->n_users];
        memset(u, 0, sizeof(*u));
        u->name = fg_strndup(line, (size_t)(colon - line));
        u->hash = fg_strndup(colon + 1, (size_t)(line + n - colon - 1));
        if (!u->name || !u->hash) {
            fg_free(u->name);
            fg_free(u->hash);
            return fg_err_set(err, FG_ENOMEM, "out of memory");
        }
        ba->n_users++;
        if (u->hash[0] == '$') {
            u->slow = true;
            /* Legacy ($1$, $5$) and cheap settings still verify; only unknown or disabled
             * methods cannot. */
            int cs = crypt_checksalt(u->hash);
            if (strncmp(u->hash, "$apr1$", 6) == 0 || cs == CRYPT_SALT_INVALID ||
                cs == CRYPT_SALT_METHOD_DISABLED)
                return fg_err_set(err, FG_EINVAL,
                                  "htpasswd %s line %zu (user %s): hash format not supported "
                                  "by libcrypt (use htpasswd -B for bcrypt or -s for {SHA}; "
                                  "Apache's $apr1$ is not supported)",
                                  origin, line_no, u->name);
        }
    }
    return 0;
}

static int load_file(struct basicauth *ba, const char *path, struct fg_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fg_err_set(err, FG_EIO, "htpasswd.file: cannot open %s: %s", path,
                          strerror(errno));
    struct fg_buf b;
    fg_buf_init(&b, HTPASSWD_MAX);
    char chunk[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if ((rc = fg_buf_append(&b, chunk, n)) != 0) {
            rc = fg_err_set(err, rc, "htpasswd.file: %s is too large", path);
            break;
        }
    }
    fclose(f);
    if (rc == 0)
        rc = add_users(ba, (const char *)b.data, b.len, path, err);
    if (b.data)
        memset(b.data, 0, b.len);
    fg_buf_free(&b);
    return rc;
}

static bool verify(const struct user *u, const char *password)
{
    if (strncmp(u->hash, "{SHA}", 5) == 0) {
        uint8_t d[FG_SHA1_LEN];
        char enc[FG_BASE64_ENCODED_LEN(FG_SHA1_LEN) + 1];
        fg_sha1(password, strlen(password), d);
        fg_base64_encode(d, sizeof(d), enc);
        return fg_auth_equal(enc, u->hash + 5);
    }
    if (u->slow) {
        struct crypt_data cd;
        memset(&cd, 0, sizeof(cd));
        const char *h = crypt_r(password, u->hash, &cd);
        bool ok = h && h[0] != '*' && fg_auth_equal(h, u->hash);
        memset(&cd, 0, sizeof(cd));
        return ok;
    }
    return fg_auth_equal(password, u->hash);
}

static int ba_check(struct fg_authenticator *a, const char *authorization)
{
    struct basicauth *ba = from_auth(a);
    if (!authorization || strncasecmp(authorization, "Basic ", 6) != 0)
        return FG_EPERMANENT;
    const char *b64 = authorization + 6;
    while (*b64 == ' ')
        b64++;
    uint8_t creds[CREDS_MAX + 1];
    size_t len = 0;
    size_t b64_len = strlen(b64);
    if (b64_len == 0 ||
        fg_base64_decode(b64, b64_len, FG_BASE64_STRICT, creds, CREDS_MAX, &len) != 0 ||
        memchr(creds, '\0', len))
        return FG_EPERMANENT;
    creds[len] = '\0';
    char *colon = strchr((char *)creds, ':');
    if (!colon)
        return FG_EPERMANENT;
    *colon = '\0';
    const char *password = colon + 1;
    int rc = FG_EPERMANENT;
    for (size_t i = 0; i < ba->n_users; i++) {
        struct user *u = &ba->users[i];
        if (strcmp(u->name, (const char *)creds) != 0)
            continue;
        if (!u->slow) {
            rc = verify(u, password) ? 0 : FG_EPERMANENT;
            break;
        }
        char d[sizeof(u->ok_digest)];
        fg_sha256_hex(authorization, strlen(authorization), d);
        pthread_mutex_lock(&ba->mu);
        bool hit = u->cached && fg_ct_equal(d, sizeof(d), u->ok_digest, sizeof(d));
        pthread_mutex_unlock(&ba->mu);
        if (hit || verify(u, password)) {
            rc = 0;
            pthread_mutex_lock(&ba->mu);
            memcpy(u->ok_digest, d, sizeof(d));
            u->cached = true;
            pthread_mutex_unlock(&ba->mu);
        }
        break;
    }
    memset(creds, 0, sizeof(creds));
    return rc;
}

static int ba_client_value(struct fg_authenticator *a, char *out, size_t outsz)
{
    struct basicauth *ba = from_auth(a);
    if (!ba->client_value)
        return FG_EINVAL;
    if ((size_t)snprintf(out, outsz, "%s", ba->client_value) >= outsz)
        return FG_ETOOBIG;
    return 0;
}

static int ba_start(struct fg_component *c, struct fg_err *err)
{
    struct basicauth *ba = (struct basicauth *)c;
    const struct basicauth_config *cfg = &ba->cfg;
    int rc = 0;
    if (cfg->htpasswd.file && *cfg->htpasswd.file &&
        (rc = load_file(ba, cfg->htpasswd.file, err)) != 0)
        goto fail;
    if (cfg->htpasswd.inline_users &&
        (rc = add_users(ba, cfg->htpasswd.inline_users, strlen(cfg->htpasswd.inline_users),
                        "inline", err)) != 0)
        goto fail;
    if (cfg->client_auth.username) {
        const char *pw = cfg->client_auth.password ? cfg->client_auth.password : "";
        size_t plain_len = strlen(cfg->client_auth.username) + 1 + strlen(pw);
        char *plain = fg_malloc(plain_len + 1);
        size_t enc_size = 6 + FG_BASE64_ENCODED_LEN(plain_len) + 1;
        ba->client_value = fg_malloc(enc_size);
        if (!plain || !ba->client_value) {
            fg_free(plain);
            rc = fg_err_set(err, FG_ENOMEM, "out of memory");
            goto fail;
        }
        snprintf(plain, plain_len + 1, "%s:%s", cfg->client_auth.username, pw);
        memcpy(ba->client_value, "Basic ", 6);
        fg_base64_encode(plain, plain_len, ba->client_value + 6);
        wipe(plain);
        fg_free(plain);
    }
    return 0;
fail:
    fg_err_prefix(err, "%s", c->id);
    return rc;
}

static int ba_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    return 0;
}

static void ba_destroy(struct fg_component *c)
{
    struct basicauth *ba = (struct basicauth *)c;
    for (size_t i = 0; i < ba->n_users; i++) {
        fg_free(ba->users[i].name);
        wipe(ba->users[i].hash);
        fg_free(ba->users[i].hash);
    }
    fg_free(ba->users);
    wipe(ba->client_value);
    fg_free(ba->client_value);
    pthread_mutex_destroy(&ba->mu);
    fg_free(ba);
}

static const struct fg_component_ops ba_ops = {
    .start = ba_start,
    .shutdown = ba_shutdown,
    .destroy = ba_destroy,
};

static int ba_validate(const void *config, struct fg_err *err)
{
    const struct basicauth_config *cfg = config;
    bool server = (cfg->htpasswd.file && *cfg->htpasswd.file) || cfg->htpasswd.inline_users;
    if (!server && !cfg->client_auth.username)
        return fg_err_set(err, FG_EINVAL,
                          "set htpasswd (file or inline) and/or client_auth.username");
    if (cfg->client_auth.username && strchr(cfg->client_auth.username, ':'))
        return fg_err_set(err, FG_EINVAL, "client_auth.username: must not contain ':'");
    return 0;
}

static int ba_create(const struct fg_create_args *args, struct fg_component **out,
                     struct fg_err *err)
{
    *out = NULL;
    struct basicauth *ba = fg_calloc(1, sizeof(*ba));
    if (!ba)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    ba->head.base.ops = &ba_ops;
    ba->head.base.factory = &fg_basicauth_factory;
    snprintf(ba->head.base.id, sizeof(ba->head.base.id), "%s",
             args->id ? args->id : "basicauth");
    ba->head.auth.check = ba_check;
    ba->head.auth.client_value = ba_client_value;
    ba->cfg = *(const struct basicauth_config *)args->config;
    pthread_mutex_init(&ba->mu, NULL);
    *out = &ba->head.base;
    return 0;
}

const struct fg_factory fg_basicauth_factory = {
    .type = "basicauth",
    .kind = FG_KIND_EXTENSION,
    .config_size = sizeof(struct basicauth_config),
    .options = basicauth_options,
    .validate = ba_validate,
    .create = ba_create,
};
