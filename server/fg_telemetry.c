/* The /metrics listener, the component reference printed by `flamegate components`, and the
 * collection of configured secrets for the logger. */
#include "fg_telemetry.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_config.h"
#include "fg_http.h"
#include "fg_log.h"
#include "fg_metrics.h"

/* ---- /metrics ---- */

static struct fg_http_server *metrics_srv;
static char metrics_addr[256];

static void metrics_handle(void *ctx, const struct fg_http_request *req,
                           struct fg_http_response *resp)
{
    snprintf(resp->content_type, sizeof(resp->content_type), "text/plain; version=0.0.4");
    if (fg_metrics_render(&resp->body) != 0) {
        fg_buf_free(&resp->body);
        resp->status = 503;
    }
}

int fg_telemetry_serve(const char *address, struct fg_err *err)
{
    if (metrics_srv && strcmp(address, metrics_addr) == 0)
        return 0;
    fg_telemetry_stop();
    if (!address[0])
        return 0;
    struct fg_http_route route = {
        .path = "/metrics", .method = "GET", .handler = metrics_handle, .max_body = 0};
    /* scrapers are few: one HTTP/2 worker and a small connection cap */
    struct fg_http_limits lim;
    fg_http_limits_default(&lim);
    lim.workers = 1;
    lim.max_connections = 64;
    int rc = fg_http_server_new(address, &metrics_srv, err);
    if (rc == 0)
        rc = fg_http_server_set_limits(metrics_srv, &lim);
    if (rc == 0 && (rc = fg_http_server_route(metrics_srv, &route)) != 0)
        fg_err_set(err, rc, "cannot register /metrics");
    if (rc == 0)
        rc = fg_http_server_start(metrics_srv, err);
    if (rc) {
        fg_http_server_free(metrics_srv);
        metrics_srv = NULL;
        fg_err_prefix(err, "service.telemetry.metrics.address %s", address);
        return rc;
    }
    snprintf(metrics_addr, sizeof(metrics_addr), "%s", address);
    const char *colon = strrchr(address, ':');
    fg_log(FG_LOG_INFO, "telemetry", "listening on %.*s:%u/metrics (Prometheus)",
           colon ? (int)(colon - address) : 0, address,
           (unsigned)fg_http_server_port(metrics_srv));
    return 0;
}

void fg_telemetry_stop(void)
{
    if (!metrics_srv)
        return;
    fg_http_server_stop(metrics_srv);
    fg_http_server_free(metrics_srv);
    metrics_srv = NULL;
    metrics_addr[0] = '\0';
}

/* ---- the component reference ---- */

static void format_duration(int64_t ns, char *buf, size_t size)
{
    static const struct {
        const char *unit;
        int64_t mult;
    } units[] = {{"h", INT64_C(3600000000000)}, {"m", INT64_C(60000000000)},
                 {"s", INT64_C(1000000000)},    {"ms", INT64_C(1000000)},
                 {"us", INT64_C(1000)},         {"ns", 1}};
    for (size_t i = 0; i < FG_ARRAY_LEN(units); i++)
        if (ns != 0 && ns % units[i].mult == 0) {
            snprintf(buf, size, "%" PRId64 "%s", ns / units[i].mult, units[i].unit);
            return;
        }
    snprintf(buf, size, "0s");
}

static void format_size(uint64_t v, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (u + 1 < FG_ARRAY_LEN(units) && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, "%" PRIu64 "%s", v, u ? units[u] : "");
}

static void type_text(const struct fg_option *o, char *buf, size_t size)
{
    char a[48], b[48];
    switch (o->type) {
    case FG_OPT_STRING:
        snprintf(buf, size, "string");
        break;
    case FG_OPT_BOOL:
        snprintf(buf, size, "bool");
        break;
    case FG_OPT_INT:
        if (o->min < o->max)
            snprintf(buf, size, "int %" PRId64 "..%" PRId64, o->min, o->max);
        else
            snprintf(buf, size, "int");
        break;
    case FG_OPT_DURATION:
        format_duration(o->min, a, sizeof(a));
        format_duration(o->max, b, sizeof(b));
        if (o->min < o->max)
            snprintf(buf, size, "duration %s..%s", a, b);
        else
            snprintf(buf, size, "duration");
        break;
    case FG_OPT_SIZE:
        format_size((uint64_t)o->min, a, sizeof(a));
        format_size((uint64_t)o->max, b, sizeof(b));
        if (o->min < o->max && o->max != INT64_MAX)
            snprintf(buf, size, "size %s..%s", a, b);
        else if (o->min < o->max)
            snprintf(buf, size, "size >= %s", a);
        else
            snprintf(buf, size, "size");
        break;
    case FG_OPT_ENUM: {
        size_t n = (size_t)snprintf(buf, size, "one of ");
        for (size_t i = 0; o->enum_names && o->enum_names[i] && n < size; i++)
            n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "", o->enum_names[i]);
        break;
    }
    case FG_OPT_STRMAP:
        snprintf(buf, size, "map of strings");
        break;
    case FG_OPT_STRLIST:
        snprintf(buf, size, "list of strings");
        break;
    case FG_OPT_STRUCT:
        snprintf(buf, size, "block");
        break;
    case FG_OPT_STRUCTLIST:
        snprintf(buf, size, "list of blocks");
        break;
    }
}

/* Markdown table cell: '|' escaped, newlines flattened. */
static void md_cell(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else if (*s == '\n')
            fputc(' ', out);
        else
            fputc(*s, out);
    }
}

static void print_options(FILE *out, bool markdown, const struct fg_option *table,
                          const char *prefix)
{
    for (const struct fg_option *o = table; o && o->name; o++) {
        char name[256], type[256];
        snprintf(name, sizeof(name), "%s%s%s", prefix, o->name,
                 o->type == FG_OPT_STRUCTLIST ? "[]" : "");
        type_text(o, type, sizeof(type));
        const char *def = o->default_value;
        if (markdown) {
            fputs("| `", out);
            md_cell(out, name);
            fputs("` | ", out);
            md_cell(out, type);
            fputs(" | ", out);
            if (def) {
                fputs(def[0] ? "`" : "\"\"", out);
                md_cell(out, def);
                fputs(def[0] ? "`" : "", out);
            }
            fputs(" | ", out);
            md_cell(out, o->help);
            fputs(" |\n", out);
        } else {
            if (def)
                fprintf(out, "  %-40s %-24s default: %s\n", name, type, def[0] ? def : "\"\"");
            else
                fprintf(out, "  %-40s %s\n", name, type);
            if (o->help)
                fprintf(out, "  %-40s %s\n", "", o->help);
        }
        if ((o->type == FG_OPT_STRUCT || o->type == FG_OPT_STRUCTLIST) && o->sub) {
            char sub[256];
            snprintf(sub, sizeof(sub), "%s.", name);
            print_options(out, markdown, o->sub, sub);
        }
    }
}

static int cmp_factory(const void *a, const void *b)
{
    const struct fg_factory *x = *(const struct fg_factory *const *)a;
    const struct fg_factory *y = *(const struct fg_factory *const *)b;
    if (x->kind != y->kind)
        return (int)x->kind - (int)y->kind;
    return strcmp(x->type, y->type);
}

void fg_components_print(FILE *out, bool markdown)
{
    size_t n;
    const struct fg_factory *const *all = fg_factories(&n);
    const struct fg_factory *sorted[256];
    if (n > FG_ARRAY_LEN(sorted))
        n = FG_ARRAY_LEN(sorted);
    memcpy(sorted, all, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_factory);
    if (markdown)
        fputs("<!-- generated by `flamegate components --markdown`; regenerate with "
              "scripts/update-readme-reference.sh -->\n",
              out);
    for (size_t i = 0; i < n; i++) {
        const struct fg_factory *f = sorted[i];
        if (markdown) {
            fprintf(out, "\n#### %s `%s`\n\n", fg_kind_name(f->kind), f->type);
            if (!f->options || !f->options->name) {
                fputs("No options.\n", out);
                continue;
            }
            fputs("| option | type | default | description |\n| --- | --- | --- | --- |\n", out);
        } else {
            fprintf(out, "%s%s %s\n", i ? "\n" : "", fg_kind_name(f->kind), f->type);
            if (!f->options || !f->options->name)
                fputs("  (no options)\n", out);
        }
        print_options(out, markdown, f->options, "");
    }
}

/* ---- secrets ---- */

struct secrets {
    const char **v;
    size_t n, cap;
    char **owned; /* values made here (encoded credentials) */
    size_t n_owned;
    bool nomem;
};

static void add_secret(struct secrets *s, const char *v)
{
    if (!v || !*v)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        const char **bigger = fg_realloc(s->v, cap * sizeof(*bigger));
        if (!bigger) {
            s->nomem = true;
            return;
        }
        s->v = bigger;
        s->cap = cap;
    }
    s->v[s->n++] = v;
}

/* Option names whose string values are credentials. */
static bool secret_name(const char *name)
{
    static const char *const names[] = {"token",         "password", "secret", "api_key",
                                        "bearer_token",  "apikey",   "auth_token",
                                        "client_secret", "basic_auth_password"};
    for (size_t i = 0; i < FG_ARRAY_LEN(names); i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

static const char *string_option(const struct fg_option *table, const void *cfg,
                                 const char *name)
{
    for (const struct fg_option *o = table; o && o->name; o++)
        if (o->type == FG_OPT_STRING && strcmp(o->name, name) == 0)
            return *(char *const *)((const char *)cfg + o->offset);
    return NULL;
}

/* A block with username and password is sent as "Basic base64(username:password)", and
 * that form is as secret as the password. The encoded text is kept in s->owned. */
static void add_basic_auth(struct secrets *s, const struct fg_option *table, const void *cfg)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *user = string_option(table, cfg, "username");
    const char *pass = string_option(table, cfg, "password");
    if (!user || !pass || !*pass)
        return;
    size_t ul = strlen(user), pl = strlen(pass), n = ul + 1 + pl;
    char *plain = fg_malloc(n + 1), *enc = fg_malloc((n + 2) / 3 * 4 + 1);
    char **bigger = fg_realloc(s->owned, (s->n_owned + 1) * sizeof(*bigger));
    if (bigger)
        s->owned = bigger;
    if (!plain || !enc || !bigger) {
        fg_free(plain);
        fg_free(enc);
        s->nomem = true;
        return;
    }
    memcpy(plain, user, ul);
    plain[ul] = ':';
    memcpy(plain + ul + 1, pass, pl);
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)plain[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)plain[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)plain[i + 2];
        enc[j++] = b64[v >> 18 & 63];
        enc[j++] = b64[v >> 12 & 63];
        enc[j++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        enc[j++] = i + 2 < n ? b64[v & 63] : '=';
    }
    enc[j] = '\0';
    fg_free(plain);
    s->owned[s->n_owned++] = enc;
    add_secret(s, enc);
}

static void collect(struct secrets *s, const struct fg_option *table, const void *cfg)
{
    add_basic_auth(s, table, cfg);
    for (const struct fg_option *o = table; o && o->name; o++) {
        const char *field = (const char *)cfg + o->offset;
        if (o->type == FG_OPT_STRING && secret_name(o->name)) {
            add_secret(s, *(char *const *)field);
        } else if (o->type == FG_OPT_STRMAP && strcmp(o->name, "headers") == 0) {
            const struct fg_strmap *m = (const struct fg_strmap *)field;
            for (size_t i = 0; i < m->n; i++) {
                add_secret(s, m->values[i]);
                /* "Bearer TOKEN": the token alone is as secret */
                const char *sp = m->values[i] ? strchr(m->values[i], ' ') : NULL;
                if (sp && sp[1])
                    add_secret(s, sp + 1);
            }
        } else if (o->type == FG_OPT_STRUCT && o->sub) {
            collect(s, o->sub, field);
        } else if (o->type == FG_OPT_STRUCTLIST && o->sub) {
            const struct fg_structlist *l = (const struct fg_structlist *)field;
            for (size_t i = 0; i < l->n; i++)
                collect(s, o->sub, (const char *)l->items + i * o->elem_size);
        }
    }
}

/* Every secret registered since start: a service retiring after a reload still logs with
 * the old configuration's values, so none is forgotten before exit. */
static char **known;
static size_t n_known;

static int remember(const char *v)
{
    for (size_t i = 0; i < n_known; i++)
        if (strcmp(known[i], v) == 0)
            return 0;
    char **bigger = fg_realloc(known, (n_known + 1) * sizeof(*known));
    if (!bigger)
        return FG_ENOMEM;
    known = bigger;
    size_t len = strlen(v) + 1;
    if (!(known[n_known] = fg_malloc(len)))
        return FG_ENOMEM;
    memcpy(known[n_known++], v, len);
    return 0;
}

int fg_telemetry_register_secrets(const struct fg_config *cfg)
{
    struct secrets s = {0};
    int rc = 0;
    if (!cfg) { /* at exit */
        rc = fg_log_set_secrets(NULL, 0);
        for (size_t i = 0; i < n_known; i++)
            fg_free(known[i]);
        fg_free(known);
        known = NULL;
        n_known = 0;
        return rc;
    }
    for (size_t kind = 0; kind < FG_ARRAY_LEN(cfg->components); kind++)
        for (size_t i = 0; i < cfg->n_components[kind]; i++) {
            const struct fg_config_component *c = &cfg->components[kind][i];
            if (c->factory && c->config)
                collect(&s, c->factory->options, c->config);
        }
    for (size_t i = 0; i < s.n && rc == 0; i++)
        rc = remember(s.v[i]);
    if (s.nomem)
        rc = FG_ENOMEM;
    if (rc == 0)
        rc = fg_log_set_secrets((const char *const *)known, n_known);
    fg_free(s.v);
    for (size_t i = 0; i < s.n_owned; i++)
        fg_free(s.owned[i]);
    fg_free(s.owned);
    return rc;
}
