/* The Collector-shaped configuration: YAML tree → typed component configs through their
 * option tables, then the service section, with every problem collected as FILE:LINE:COL. */
#include "fg_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_log.h"
#include "fg_option_internal.h"
#include "fg_yaml.h"

#define MAX_CONFIG_FILE (16u << 20)
#define PATH_LEN 512

static const char *const section_names[FG_CONFIG_KINDS] = {
    "receivers", "processors", "exporters", "extensions", "connectors"};

/* ---- diagnostics ---- */

void fg_diag_init(struct fg_diag *d)
{
    memset(d, 0, sizeof(*d));
    fg_buf_init(&d->text, 0);
}

void fg_diag_free(struct fg_diag *d)
{
    if (!d)
        return;
    fg_buf_free(&d->text);
    d->errors = d->warnings = 0;
}

static void diag_vadd(struct fg_diag *d, int is_error, const char *file, int line, int col,
                      const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

static void diag_vadd(struct fg_diag *d, int is_error, const char *file, int line, int col,
                      const char *fmt, va_list ap)
{
    /* Counted even if the text cannot be stored, so an error is never lost to OOM. */
    if (is_error)
        d->errors++;
    else
        d->warnings++;
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    const char *kind = is_error ? "error" : "warning";
    if (!file)
        file = "<config>";
    if (line > 0)
        (void)fg_buf_printf(&d->text, "%s:%d:%d: %s: %s\n", file, line, col, kind, msg);
    else
        (void)fg_buf_printf(&d->text, "%s: %s: %s\n", file, kind, msg);
}

void fg_diag_add(struct fg_diag *d, int is_error, const char *file, int line, int col,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, is_error, file, line, col, fmt, ap);
    va_end(ap);
}

/* ---- loader state ---- */

/* A connector id in a pipeline's receivers or exporters list, where it was written. */
struct conn_use {
    size_t pipeline;
    const char *connector; /* the id string held by the pipeline */
    bool as_exporter;
    int line, col;
};

/* A pipeline id in a connector's settings (fg_config_pipeline_ref), checked once the
 * service section is known. */
struct pipe_ref {
    char *connector;
    char *pipeline;
    char *path;
    int line, col;
};

struct loader {
    const char *file;
    struct fg_diag *diag;
    struct fg_config *cfg;
    bool nomem;
    /* set while a component's body is parsed, and while a pipeline's lists are */
    const char *cur_component;
    enum fg_kind cur_kind;
    size_t cur_pipeline;
    struct conn_use *uses;
    size_t n_uses;
    struct pipe_ref *refs;
    size_t n_refs;
};

static void errf(struct loader *L, const struct fg_ynode *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(struct loader *L, const struct fg_ynode *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(L->diag, 1, L->file, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
}

static const char *node_kind_name(const struct fg_ynode *n)
{
    switch (n->kind) {
    case FG_YNODE_MAPPING:
        return "mapping";
    case FG_YNODE_SEQUENCE:
        return "list";
    case FG_YNODE_SCALAR:
        break;
    }
    return "scalar";
}

static bool is_null(const struct fg_ynode *n)
{
    return !n || (n->kind == FG_YNODE_SCALAR && n->is_null);
}

static void path_join(char *out, size_t size, const char *base, const char *key)
{
    if (base && *base)
        snprintf(out, size, "%s.%s", base, key);
    else
        snprintf(out, size, "%s", key);
}

/* Keys of a mapping must be scalars; reports and returns false otherwise. */
static bool key_ok(struct loader *L, const struct fg_ynode *key, const char *path)
{
    if (key->kind == FG_YNODE_SCALAR)
        return true;
    errf(L, key, "%s: keys must be plain strings, not a %s", path && *path ? path : "(top level)",
         node_kind_name(key));
    return false;
}

/* ---- option tables ---- */

static void parse_options(struct loader *L, const struct fg_option *table, void *base,
                          const struct fg_ynode *node, const char *path);

static void parse_strmap(struct loader *L, struct fg_strmap *m, const struct fg_ynode *val,
                         const char *path)
{
    /* A repeated key (or a default) is replaced wholesale. */
    for (size_t i = 0; i < m->n; i++) {
        fg_free(m->keys[i]);
        fg_free(m->values[i]);
    }
    fg_free(m->keys);
    fg_free(m->values);
    memset(m, 0, sizeof(*m));
    if (is_null(val))
        return;
    if (val->kind != FG_YNODE_MAPPING) {
        errf(L, val, "%s: expected a mapping of names to values, got a %s", path,
             node_kind_name(val));
        return;
    }
    if (!val->n)
        return;
    m->keys = fg_calloc(val->n, sizeof(char *));
    m->values = fg_calloc(val->n, sizeof(char *));
    if (!m->keys || !m->values) {
        L->nomem = true;
        return;
    }
    for (size_t i = 0; i < val->n; i++) {
        const struct fg_ynode *k = fg__ynode_key(val, i), *v = fg__ynode_value(val, i);
        char sub[PATH_LEN];
        if (!key_ok(L, k, path))
            continue;
        path_join(sub, sizeof(sub), path, k->text);
        if (v->kind != FG_YNODE_SCALAR) {
            errf(L, v, "%s: expected a single value, got a %s", sub, node_kind_name(v));
            continue;
        }
        char *key = fg_strdup(k->text);
        char *value = fg_strdup(v->is_null ? "" : v->text);
        if (!key || !value) {
            fg_free(key);
            fg_free(value);
            L->nomem = true;
            return;
        }
        m->keys[m->n] = key;
        m->values[m->n] = value;
        m->n++;
    }
}

static void parse_strlist(struct loader *L, struct fg_strlist *l, const struct fg_ynode *val,
                          const char *path)
{
    for (size_t i = 0; i < l->n; i++)
        fg_free(l->items[i]);
    fg_free(l->items);
    memset(l, 0, sizeof(*l));
    if (is_null(val))
        return;
    if (val->kind != FG_YNODE_SEQUENCE) {
        errf(L, val, "%s: expected a list, got a %s", path, node_kind_name(val));
        return;
    }
    if (!val->n)
        return;
    l->items = fg_calloc(val->n, sizeof(char *));
    if (!l->items) {
        L->nomem = true;
        return;
    }
    for (size_t i = 0; i < val->n; i++) {
        const struct fg_ynode *item = val->kids[i];
        if (item->kind != FG_YNODE_SCALAR) {
            errf(L, item, "%s: list items must be single values, not a %s", path,
                 node_kind_name(item));
            continue;
        }
        char *copy = fg_strdup(item->is_null ? "" : item->text);
        if (!copy) {
            L->nomem = true;
            return;
        }
        l->items[l->n++] = copy;
    }
}

static void add_pipe_ref(struct loader *L, const char *pipeline, const struct fg_ynode *at,
                         const char *path)
{
    if (L->cur_kind != FG_KIND_CONNECTOR || !L->cur_component) {
        errf(L, at, "%s: only connectors refer to pipelines", path);
        return;
    }
    struct pipe_ref *bigger = fg_realloc(L->refs, (L->n_refs + 1) * sizeof(*L->refs));
    if (!bigger) {
        L->nomem = true;
        return;
    }
    L->refs = bigger;
    struct pipe_ref *r = &L->refs[L->n_refs];
    r->connector = fg_strdup(L->cur_component);
    r->pipeline = fg_strdup(pipeline);
    r->path = fg_strdup(path);
    r->line = at->line;
    r->col = at->col;
    if (!r->connector || !r->pipeline || !r->path) {
        fg_free(r->connector);
        fg_free(r->pipeline);
        fg_free(r->path);
        L->nomem = true;
        return;
    }
    L->n_refs++;
}

/* Runs an option's value check and reports its message at the value's position. */
static void run_check(struct loader *L, const struct fg_option *opt, const void *value,
                      const struct fg_ynode *at, const char *path)
{
    if (!opt->check)
        return;
    struct fg_err err = {{0}};
    int rc = opt->check(value, &err);
    if (rc == FG_ENOMEM)
        L->nomem = true;
    else if (rc)
        errf(L, at, "%s: %s", path, err.msg);
    else if (opt->check == fg_config_pipeline_ref)
        add_pipe_ref(L, *(const char *const *)value, at, path);
}

int fg_config_pipeline_ref(const void *value, struct fg_err *err)
{
    const char *id = *(const char *const *)value;
    if (!id)
        return 0;
    if (strcmp(id, "profiles") == 0 ||
        (strncmp(id, "profiles/", 9) == 0 && id[9] != '\0'))
        return 0;
    return fg_err_set(err, FG_EINVAL, "invalid pipeline id \"%s\" (expected profiles or "
                                      "profiles/NAME)", id);
}

static void parse_structlist(struct loader *L, const struct fg_option *opt,
                             struct fg_structlist *l, const struct fg_ynode *val,
                             const char *path)
{
    fg__structlist_clear(opt, l);
    if (is_null(val))
        return;
    if (val->kind != FG_YNODE_SEQUENCE) {
        errf(L, val, "%s: expected a list, got a %s", path, node_kind_name(val));
        return;
    }
    if (!val->n)
        return;
    l->items = fg_calloc(val->n, opt->elem_size);
    if (!l->items) {
        L->nomem = true;
        return;
    }
    for (size_t i = 0; i < val->n; i++) {
        const struct fg_ynode *item = val->kids[i];
        char sub[PATH_LEN];
        snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
        if (item->kind != FG_YNODE_MAPPING) {
            errf(L, item, "%s: expected a mapping, got a %s", sub, node_kind_name(item));
            continue;
        }
        void *elem = (char *)l->items + l->n * opt->elem_size;
        struct fg_err err = {{0}};
        int rc = fg_options_defaults(opt->sub, elem, &err);
        l->n++; /* counted before parsing so a partly filled element is still freed */
        if (rc == FG_ENOMEM) {
            L->nomem = true;
            return;
        }
        if (rc) {
            errf(L, item, "%s: %s", sub, err.msg);
            continue;
        }
        int errors_before = L->diag->errors;
        parse_options(L, opt->sub, elem, item, sub);
        if (L->nomem)
            return;
        if (L->diag->errors == errors_before)
            run_check(L, opt, elem, item, sub);
    }
}

static void set_option(struct loader *L, const struct fg_option *opt, void *base,
                       const struct fg_ynode *val, const char *path)
{
    void *field = (char *)base + opt->offset;
    switch (opt->type) {
    case FG_OPT_STRUCTLIST:
        parse_structlist(L, opt, field, val, path);
        return;
    case FG_OPT_STRUCT:
        /* Presence alone enables a block: "http:" with no body means "http with defaults". */
        if (opt->present_offset != FG_OPT_NO_PRESENT)
            *(bool *)((char *)base + opt->present_offset) = true;
        parse_options(L, opt->sub, field, val, path);
        return;
    case FG_OPT_STRMAP:
        parse_strmap(L, field, val, path);
        return;
    case FG_OPT_STRLIST: {
        parse_strlist(L, field, val, path);
        const struct fg_strlist *l = field;
        /* items that were not scalars were skipped, so positions match only when none were */
        for (size_t i = 0; opt->check && !L->nomem && i < l->n; i++)
            run_check(L, opt, &l->items[i], l->n == val->n ? val->kids[i] : val, path);
        return;
    }
    default:
        break;
    }
    if (val->kind != FG_YNODE_SCALAR) {
        errf(L, val, "%s: expected a single value, got a %s", path, node_kind_name(val));
        return;
    }
    if (val->is_null)
        return; /* "key:" with nothing after it keeps the default */
    struct fg_err err = {{0}};
    int rc = fg__option_set_scalar(opt, base, val->text, &err);
    if (rc == FG_ENOMEM)
        L->nomem = true;
    else if (rc)
        errf(L, val, "%s: %s", path, err.msg);
    else
        run_check(L, opt, field, val, path);
}

static void parse_options(struct loader *L, const struct fg_option *table, void *base,
                          const struct fg_ynode *node, const char *path)
{
    if (is_null(node))
        return;
    if (node->kind != FG_YNODE_MAPPING) {
        errf(L, node, "%s: expected a mapping, got a %s", path, node_kind_name(node));
        return;
    }
    uint64_t seen = 0; /* option tables are far shorter than 64 rows */
    for (size_t i = 0; i < node->n; i++) {
        const struct fg_ynode *k = fg__ynode_key(node, i), *v = fg__ynode_value(node, i);
        if (!key_ok(L, k, path))
            continue;
        char sub[PATH_LEN];
        path_join(sub, sizeof(sub), path, k->text);
        size_t idx = 0;
        const struct fg_option *opt = NULL;
        for (const struct fg_option *o = table; o && o->name; o++, idx++) {
            if (strcmp(o->name, k->text) == 0) {
                opt = o;
                break;
            }
        }
        if (!opt) {
            char names[400];
            fg__option_names(table, names, sizeof(names));
            if (*names)
                errf(L, k, "%s: unknown key (valid keys: %s)", sub, names);
            else
                errf(L, k, "%s: unknown key (this component takes no settings)", sub);
            continue;
        }
        if (idx < 64) {
            if (seen & (UINT64_C(1) << idx)) {
                errf(L, k, "%s: duplicate key", sub);
                continue;
            }
            seen |= UINT64_C(1) << idx;
        }
        set_option(L, opt, base, v, sub);
    }
}

/* ---- components ---- */

static struct fg_config_component *find_component(const struct fg_config *cfg,
                                                  enum fg_kind kind, const char *id)
{
    for (size_t i = 0; i < cfg->n_components[kind]; i++)
        if (strcmp(cfg->components[kind][i].id, id) == 0)
            return &cfg->components[kind][i];
    return NULL;
}

static void known_types(enum fg_kind kind, char *buf, size_t size)
{
    size_t count, used = 0;
    const struct fg_factory *const *all = fg_factories(&count);
    buf[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        if (all[i]->kind != kind)
            continue;
        int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", all[i]->type);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

static void parse_component(struct loader *L, enum fg_kind kind, const struct fg_ynode *key,
                            const struct fg_ynode *body)
{
    const char *section = section_names[kind];
    const char *id = key->text;
    char path[PATH_LEN];
    path_join(path, sizeof(path), section, id);

    const char *slash = strchr(id, '/');
    size_t type_len = slash ? (size_t)(slash - id) : strlen(id);
    if (type_len == 0 || (slash && slash[1] == '\0')) {
        errf(L, key, "%s: invalid component id \"%s\" (expected TYPE or TYPE/NAME)", path, id);
        return;
    }
    if (find_component(L->cfg, kind, id)) {
        errf(L, key, "%s: %s \"%s\" is defined twice", path, fg_kind_name(kind), id);
        return;
    }
    char type[128];
    snprintf(type, sizeof(type), "%.*s", (int)FG_MIN(type_len, sizeof(type) - 1), id);
    const struct fg_factory *factory = type_len < sizeof(type) ? fg_factory_find(kind, type) : NULL;

    struct fg_config *cfg = L->cfg;
    struct fg_config_component *arr =
        fg_realloc(cfg->components[kind], (cfg->n_components[kind] + 1) * sizeof(*arr));
    if (!arr) {
        L->nomem = true;
        return;
    }
    cfg->components[kind] = arr;
    struct fg_config_component *c = &arr[cfg->n_components[kind]];
    memset(c, 0, sizeof(*c));
    c->id = fg_strdup(id);
    if (!c->id) {
        L->nomem = true;
        return;
    }
    c->line = key->line;
    c->col = key->col;
    /* Kept even when unknown, so pipelines naming it do not add "not defined" noise. */
    cfg->n_components[kind]++;

    if (!factory) {
        char types[300];
        known_types(kind, types, sizeof(types));
        if (*types)
            errf(L, key, "%s: unknown %s type \"%s\" (known %s types: %s)", path,
                 fg_kind_name(kind), type, fg_kind_name(kind), types);
        else
            errf(L, key, "%s: unknown %s type \"%s\" (no %s types are available)", path,
                 fg_kind_name(kind), type, fg_kind_name(kind));
        return;
    }
    c->factory = factory;
    c->config = fg_calloc(1, factory->config_size ? factory->config_size : 1);
    if (!c->config) {
        L->nomem = true;
        return;
    }
    struct fg_err err = {{0}};
    int rc = fg_options_defaults(factory->options, c->config, &err);
    if (rc == FG_ENOMEM) {
        L->nomem = true;
        return;
    }
    if (rc) {
        errf(L, key, "%s: %s", path, err.msg);
        return;
    }
    int errors_before = L->diag->errors;
    L->cur_component = c->id;
    L->cur_kind = kind;
    parse_options(L, factory->options, c->config, body, path);
    L->cur_component = NULL;
    if (L->nomem || L->diag->errors != errors_before || !factory->validate)
        return;
    if (factory->validate(c->config, &err) != 0)
        errf(L, key, "%s: %s", path, err.msg);
}

static void parse_section(struct loader *L, enum fg_kind kind, const struct fg_ynode *node)
{
    if (is_null(node))
        return;
    if (node->kind != FG_YNODE_MAPPING) {
        errf(L, node, "%s: expected a mapping of component ids, got a %s", section_names[kind],
             node_kind_name(node));
        return;
    }
    for (size_t i = 0; i < node->n && !L->nomem; i++) {
        const struct fg_ynode *k = fg__ynode_key(node, i);
        if (key_ok(L, k, section_names[kind]))
            parse_component(L, kind, k, fg__ynode_value(node, i));
    }
}

/* ---- service ---- */

static bool add_conn_use(struct loader *L, const char *connector, bool as_exporter,
                         const struct fg_ynode *at)
{
    struct conn_use *bigger = fg_realloc(L->uses, (L->n_uses + 1) * sizeof(*L->uses));
    if (!bigger) {
        L->nomem = true;
        return false;
    }
    L->uses = bigger;
    L->uses[L->n_uses++] = (struct conn_use){L->cur_pipeline, connector, as_exporter, at->line,
                                             at->col};
    return true;
}

/* A list of component ids of one kind; each must be defined and appear once. In a
 * pipeline's receivers and exporters a connector id stands too (recorded in L->uses). */
static void parse_id_list(struct loader *L, enum fg_kind kind, const struct fg_ynode *val,
                          const char *path, char ***out, size_t *n_out)
{
    bool connectors_too = kind == FG_KIND_RECEIVER || kind == FG_KIND_EXPORTER;
    if (is_null(val))
        return;
    if (val->kind != FG_YNODE_SEQUENCE) {
        errf(L, val, "%s: expected a list of %s ids, got a %s", path, fg_kind_name(kind),
             node_kind_name(val));
        return;
    }
    if (!val->n)
        return;
    char **ids = fg_calloc(val->n, sizeof(char *));
    if (!ids) {
        L->nomem = true;
        return;
    }
    *out = ids;
    for (size_t i = 0; i < val->n; i++) {
        const struct fg_ynode *item = val->kids[i];
        if (item->kind != FG_YNODE_SCALAR || item->is_null) {
            errf(L, item, "%s: expected a %s id, got %s", path, fg_kind_name(kind),
                 item->kind == FG_YNODE_SCALAR ? "nothing" : node_kind_name(item));
            continue;
        }
        bool plain = find_component(L->cfg, kind, item->text) != NULL;
        bool conn = connectors_too && find_component(L->cfg, FG_KIND_CONNECTOR, item->text);
        if (plain && conn) {
            /* the Collector refuses the same ambiguity */
            errf(L, item, "%s: \"%s\" is ambiguous: both a %s and a connector have this id "
                          "(rename one, e.g. \"%s/2\")",
                 path, item->text, fg_kind_name(kind), item->text);
            continue;
        }
        if (!plain && !conn) {
            errf(L, item, "%s: %s \"%s\" is not defined in %s%s", path, fg_kind_name(kind),
                 item->text, section_names[kind],
                 connectors_too && L->cfg->n_components[FG_KIND_CONNECTOR] ? " or connectors"
                                                                            : "");
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < *n_out && !dup; j++)
            dup = strcmp(ids[j], item->text) == 0;
        if (dup) {
            errf(L, item, "%s: %s \"%s\" is listed twice", path, fg_kind_name(kind),
                 item->text);
            continue;
        }
        if (!(ids[*n_out] = fg_strdup(item->text))) {
            L->nomem = true;
            return;
        }
        (*n_out)++;
        if (conn && !add_conn_use(L, ids[*n_out - 1], kind == FG_KIND_EXPORTER, item))
            return;
    }
}

static void parse_pipeline(struct loader *L, const struct fg_ynode *key,
                           const struct fg_ynode *body)
{
    const char *name = key->text;
    char path[PATH_LEN];
    path_join(path, sizeof(path), "service.pipelines", name);
    const char *slash = strchr(name, '/');
    size_t signal_len = slash ? (size_t)(slash - name) : strlen(name);
    if (signal_len == 8 && strncmp(name, "profiles", 8) == 0) {
        if (slash && slash[1] == '\0') {
            errf(L, key, "%s: invalid pipeline id (expected profiles or profiles/NAME)", path);
            return;
        }
    } else if ((signal_len == 6 && strncmp(name, "traces", 6) == 0) ||
               (signal_len == 7 && strncmp(name, "metrics", 7) == 0) ||
               (signal_len == 4 && strncmp(name, "logs", 4) == 0)) {
        errf(L, key, "%s: flamegate carries only profiles pipelines", path);
        return;
    } else {
        errf(L, key, "%s: invalid pipeline id (expected profiles or profiles/NAME)", path);
        return;
    }
    struct fg_config *cfg = L->cfg;
    for (size_t i = 0; i < cfg->n_pipelines; i++) {
        if (strcmp(cfg->pipelines[i].name, name) == 0) {
            errf(L, key, "%s: pipeline defined twice", path);
            return;
        }
    }
    struct fg_config_pipeline *arr =
        fg_realloc(cfg->pipelines, (cfg->n_pipelines + 1) * sizeof(*arr));
    if (!arr) {
        L->nomem = true;
        return;
    }
    cfg->pipelines = arr;
    struct fg_config_pipeline *p = &arr[cfg->n_pipelines];
    memset(p, 0, sizeof(*p));
    if (!(p->name = fg_strdup(name))) {
        L->nomem = true;
        return;
    }
    cfg->n_pipelines++;
    L->cur_pipeline = cfg->n_pipelines - 1;

    if (!is_null(body) && body->kind != FG_YNODE_MAPPING) {
        errf(L, body, "%s: expected a mapping with receivers, processors and exporters, got a %s",
             path, node_kind_name(body));
        return;
    }
    bool seen[3] = {false, false, false};
    for (size_t i = 0; body && body->kind == FG_YNODE_MAPPING && i < body->n; i++) {
        const struct fg_ynode *k = fg__ynode_key(body, i), *v = fg__ynode_value(body, i);
        if (!key_ok(L, k, path))
            continue;
        char sub[PATH_LEN];
        path_join(sub, sizeof(sub), path, k->text);
        enum fg_kind kind;
        if (strcmp(k->text, "receivers") == 0) {
            kind = FG_KIND_RECEIVER;
        } else if (strcmp(k->text, "processors") == 0) {
            kind = FG_KIND_PROCESSOR;
        } else if (strcmp(k->text, "exporters") == 0) {
            kind = FG_KIND_EXPORTER;
        } else {
            errf(L, k, "%s: unknown key (valid keys: receivers, processors, exporters)", sub);
            continue;
        }
        if (seen[kind]) {
            errf(L, k, "%s: duplicate key", sub);
            continue;
        }
        seen[kind] = true;
        if (kind == FG_KIND_RECEIVER)
            parse_id_list(L, kind, v, sub, &p->receivers, &p->n_receivers);
        else if (kind == FG_KIND_PROCESSOR)
            parse_id_list(L, kind, v, sub, &p->processors, &p->n_processors);
        else
            parse_id_list(L, kind, v, sub, &p->exporters, &p->n_exporters);
        if (L->nomem)
            return;
    }
    /* Only complain about emptiness when no listed item was already reported. */
    if (!p->n_receivers && !seen[FG_KIND_RECEIVER])
        errf(L, key, "%s: a pipeline needs at least one receiver (add receivers: [...])", path);
    else if (!p->n_receivers)
        errf(L, key, "%s: a pipeline needs at least one receiver", path);
    if (!p->n_exporters && !seen[FG_KIND_EXPORTER])
        errf(L, key, "%s: a pipeline needs at least one exporter (add exporters: [...])", path);
    else if (!p->n_exporters)
        errf(L, key, "%s: a pipeline needs at least one exporter", path);
}

static void parse_pipelines(struct loader *L, const struct fg_ynode *key,
                            const struct fg_ynode *node)
{
    if (is_null(node) || (node->kind == FG_YNODE_MAPPING && node->n == 0)) {
        errf(L, key, "service.pipelines: no pipelines defined (need at least a profiles pipeline)");
        return;
    }
    if (node->kind != FG_YNODE_MAPPING) {
        errf(L, node, "service.pipelines: expected a mapping of pipeline ids, got a %s",
             node_kind_name(node));
        return;
    }
    for (size_t i = 0; i < node->n && !L->nomem; i++) {
        const struct fg_ynode *k = fg__ynode_key(node, i);
        if (key_ok(L, k, "service.pipelines"))
            parse_pipeline(L, k, fg__ynode_value(node, i));
    }
}

static void parse_telemetry(struct loader *L, const struct fg_ynode *node)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    static const int level_values[] = {FG_LOG_DEBUG, FG_LOG_INFO, FG_LOG_WARN, FG_LOG_ERROR};
    if (is_null(node))
        return;
    if (node->kind != FG_YNODE_MAPPING) {
        errf(L, node, "service.telemetry: expected a mapping, got a %s", node_kind_name(node));
        return;
    }
    for (size_t i = 0; i < node->n; i++) {
        const struct fg_ynode *k = fg__ynode_key(node, i), *v = fg__ynode_value(node, i);
        if (!key_ok(L, k, "service.telemetry"))
            continue;
        if (strcmp(k->text, "logs") != 0) {
            errf(L, k, "service.telemetry.%s: unknown key (valid keys: logs)", k->text);
            continue;
        }
        if (is_null(v))
            continue;
        if (v->kind != FG_YNODE_MAPPING) {
            errf(L, v, "service.telemetry.logs: expected a mapping, got a %s", node_kind_name(v));
            continue;
        }
        for (size_t j = 0; j < v->n; j++) {
            const struct fg_ynode *lk = fg__ynode_key(v, j), *lv = fg__ynode_value(v, j);
            if (!key_ok(L, lk, "service.telemetry.logs"))
                continue;
            if (strcmp(lk->text, "level") != 0) {
                errf(L, lk, "service.telemetry.logs.%s: unknown key (valid keys: level)",
                     lk->text);
                continue;
            }
            if (lv->kind != FG_YNODE_SCALAR) {
                errf(L, lv, "service.telemetry.logs.level: expected a single value, got a %s",
                     node_kind_name(lv));
                continue;
            }
            if (lv->is_null)
                continue;
            size_t l;
            for (l = 0; l < FG_ARRAY_LEN(levels); l++)
                if (strcmp(levels[l], lv->text) == 0)
                    break;
            if (l == FG_ARRAY_LEN(levels))
                errf(L, lv,
                     "service.telemetry.logs.level: invalid value \"%s\" (allowed: debug, info, "
                     "warn, error)",
                     lv->text);
            else
                L->cfg->log_level = level_values[l];
        }
    }
}

/* How long SIGTERM waits for exporters to drain (and a reload for the old ones). */
static void parse_shutdown_timeout(struct loader *L, const struct fg_ynode *v)
{
    int64_t ns;
    if (is_null(v) || v->kind != FG_YNODE_SCALAR) {
        errf(L, v, "service.shutdown_timeout: expected a duration such as \"30s\"");
        return;
    }
    if (fg_parse_duration(v->text, &ns) != 0 || ns < 0 || ns > INT64_C(3600000000000)) {
        errf(L, v, "service.shutdown_timeout: invalid duration \"%s\" (0s to 1h, e.g. \"30s\")",
             v->text);
        return;
    }
    L->cfg->shutdown_timeout_ns = ns;
}

static void parse_service(struct loader *L, const struct fg_ynode *key,
                          const struct fg_ynode *node, const struct fg_ynode *root)
{
    if (!key) {
        errf(L, root, "service.pipelines: missing (add a service: section with a profiles "
                      "pipeline)");
        return;
    }
    if (!is_null(node) && node->kind != FG_YNODE_MAPPING) {
        errf(L, node, "service: expected a mapping, got a %s", node_kind_name(node));
        return;
    }
    const struct fg_ynode *pipelines_key = NULL, *pipelines = NULL;
    bool seen_ext = false, seen_tel = false, seen_st = false;
    for (size_t i = 0; node && node->kind == FG_YNODE_MAPPING && i < node->n && !L->nomem; i++) {
        const struct fg_ynode *k = fg__ynode_key(node, i), *v = fg__ynode_value(node, i);
        if (!key_ok(L, k, "service"))
            continue;
        bool *seen = NULL;
        if (strcmp(k->text, "extensions") == 0)
            seen = &seen_ext;
        else if (strcmp(k->text, "telemetry") == 0)
            seen = &seen_tel;
        else if (strcmp(k->text, "shutdown_timeout") == 0)
            seen = &seen_st;
        if (strcmp(k->text, "pipelines") == 0) {
            if (pipelines_key)
                errf(L, k, "service.pipelines: duplicate key");
            else
                pipelines_key = k, pipelines = v;
            continue;
        }
        if (!seen) {
            errf(L, k, "service.%s: unknown key (valid keys: extensions, pipelines, shutdown_timeout, "
                 "telemetry)",
                 k->text);
            continue;
        }
        if (*seen) {
            errf(L, k, "service.%s: duplicate key", k->text);
            continue;
        }
        *seen = true;
        if (seen == &seen_ext)
            parse_id_list(L, FG_KIND_EXTENSION, v, "service.extensions",
                          &L->cfg->service_extensions, &L->cfg->n_service_extensions);
        else if (seen == &seen_st)
            parse_shutdown_timeout(L, v);
        else
            parse_telemetry(L, v);
    }
    if (!pipelines_key) {
        errf(L, key, "service.pipelines: missing (need at least a profiles pipeline)");
        return;
    }
    parse_pipelines(L, pipelines_key, pipelines);
}

static bool in_list(char *const *ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

static void warn_unused(struct loader *L)
{
    const struct fg_config *cfg = L->cfg;
    for (int kind = 0; kind < FG_CONFIG_KINDS; kind++) {
        for (size_t i = 0; i < cfg->n_components[kind]; i++) {
            const struct fg_config_component *c = &cfg->components[kind][i];
            if (!c->factory)
                continue;
            bool used = false;
            if (kind == FG_KIND_EXTENSION)
                used = in_list(cfg->service_extensions, cfg->n_service_extensions, c->id);
            for (size_t p = 0; p < cfg->n_pipelines && !used; p++) {
                const struct fg_config_pipeline *pl = &cfg->pipelines[p];
                if (kind == FG_KIND_RECEIVER)
                    used = in_list(pl->receivers, pl->n_receivers, c->id);
                else if (kind == FG_KIND_PROCESSOR)
                    used = in_list(pl->processors, pl->n_processors, c->id);
                else if (kind == FG_KIND_EXPORTER)
                    used = in_list(pl->exporters, pl->n_exporters, c->id);
                else if (kind == FG_KIND_CONNECTOR)
                    used = in_list(pl->exporters, pl->n_exporters, c->id) ||
                           in_list(pl->receivers, pl->n_receivers, c->id);
            }
            if (used)
                continue;
            if (kind == FG_KIND_EXTENSION)
                fg_diag_add(L->diag, 0, L->file, c->line, c->col,
                            "extensions.%s: extension \"%s\" is not enabled in service.extensions",
                            c->id, c->id);
            else
                fg_diag_add(L->diag, 0, L->file, c->line, c->col,
                            "%s.%s: %s \"%s\" is not used in any pipeline", section_names[kind],
                            c->id, fg_kind_name((enum fg_kind)kind), c->id);
        }
    }
}

/* ---- connectors: both ends used, pipelines they name, no cycles ---- */

static const struct conn_use *first_use(const struct loader *L, const char *connector,
                                        bool as_exporter)
{
    for (size_t i = 0; i < L->n_uses; i++)
        if (L->uses[i].as_exporter == as_exporter && strcmp(L->uses[i].connector, connector) == 0)
            return &L->uses[i];
    return NULL;
}

static void check_connector_ends(struct loader *L)
{
    const struct fg_config *cfg = L->cfg;
    for (size_t i = 0; i < cfg->n_components[FG_KIND_CONNECTOR]; i++) {
        const struct fg_config_component *c = &cfg->components[FG_KIND_CONNECTOR][i];
        const struct conn_use *e = first_use(L, c->id, true), *r = first_use(L, c->id, false);
        if (!c->factory || (e && r) || (!e && !r))
            continue; /* unknown type: reported; unused: warned */
        const struct conn_use *u = e ? e : r;
        fg_diag_add(L->diag, 1, L->file, u->line, u->col,
                    "service.pipelines.%s.%s: connector \"%s\" is used as %s here but no "
                    "pipeline lists it among its %s (a connector joins the end of one pipeline "
                    "to the start of another)",
                    cfg->pipelines[u->pipeline].name, e ? "exporters" : "receivers", c->id,
                    e ? "an exporter" : "a receiver", e ? "receivers" : "exporters");
    }
}

static void check_pipe_refs(struct loader *L)
{
    const struct fg_config *cfg = L->cfg;
    for (size_t i = 0; i < L->n_refs; i++) {
        const struct pipe_ref *r = &L->refs[i];
        const struct fg_config_pipeline *pl = NULL;
        for (size_t p = 0; p < cfg->n_pipelines && !pl; p++)
            if (strcmp(cfg->pipelines[p].name, r->pipeline) == 0)
                pl = &cfg->pipelines[p];
        if (!pl)
            fg_diag_add(L->diag, 1, L->file, r->line, r->col,
                        "%s: pipeline \"%s\" is not defined in service.pipelines", r->path,
                        r->pipeline);
        else if (!in_list(pl->receivers, pl->n_receivers, r->connector))
            fg_diag_add(L->diag, 1, L->file, r->line, r->col,
                        "%s: pipeline \"%s\" does not list connector \"%s\" among its "
                        "receivers (add it there to route data to it)",
                        r->path, r->pipeline, r->connector);
    }
}

/* An edge of the pipeline graph: from exports to connector, to lists it as a receiver. */
struct edge {
    size_t from, to;
    const struct conn_use *use; /* the connector in from's exporters */
};

struct dfs_frame {
    size_t node;
    size_t next_edge;  /* index into the edge array, of edges leaving node */
    size_t edge_taken; /* the edge followed to the frame above */
};

/* Appends "a -> conn -> b -> ... -> a" for the cycle closed by edge e over the DFS stack. */
static void describe_cycle(const struct fg_config *cfg, const struct dfs_frame *stack,
                           size_t depth, const struct edge *edges, const struct edge *e,
                           char *out, size_t size)
{
    size_t start = 0, used = 0;
    while (start < depth && stack[start].node != e->to)
        start++;
    out[0] = '\0';
    for (size_t i = start; i < depth; i++) {
        const struct edge *step = i + 1 < depth ? &edges[stack[i].edge_taken] : e;
        int n = snprintf(out + used, size - used, "%s -> %s -> ",
                         cfg->pipelines[stack[i].node].name, step->use->connector);
        if (n < 0 || (size_t)n >= size - used)
            return;
        used += (size_t)n;
    }
    snprintf(out + used, size - used, "%s", cfg->pipelines[e->to].name);
}

/* Data must not come back to a pipeline it has passed through: that would loop forever.
 * Depth-first search without recursion (a generated configuration may chain thousands of
 * pipelines); the first cycle found is reported where its last connector is exported to. */
static void check_cycles(struct loader *L)
{
    const struct fg_config *cfg = L->cfg;
    size_t n_edges = 0, cap = 0;
    struct edge *edges = NULL;
    uint8_t *color = NULL; /* 0 unvisited, 1 on the stack, 2 done */
    size_t *first = NULL;  /* edges sorted by from: first[p]..first[p+1] */
    struct dfs_frame *stack = NULL;
    /* uses are recorded pipeline by pipeline, so edges come out sorted by from */
    for (size_t u = 0; u < L->n_uses; u++) {
        const struct conn_use *e = &L->uses[u];
        if (!e->as_exporter)
            continue;
        for (size_t v = 0; v < L->n_uses; v++) {
            const struct conn_use *r = &L->uses[v];
            if (r->as_exporter || strcmp(r->connector, e->connector) != 0)
                continue;
            if (n_edges == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct edge *bigger = fg_realloc(edges, ncap * sizeof(*edges));
                if (!bigger)
                    goto nomem;
                edges = bigger;
                cap = ncap;
            }
            edges[n_edges++] = (struct edge){e->pipeline, r->pipeline, e};
        }
    }
    if (!n_edges)
        goto done;
    color = fg_calloc(cfg->n_pipelines, 1);
    first = fg_calloc(cfg->n_pipelines + 1, sizeof(*first));
    stack = fg_calloc(cfg->n_pipelines, sizeof(*stack));
    if (!color || !first || !stack)
        goto nomem;
    for (size_t i = 0, p = 0; p <= cfg->n_pipelines; p++) {
        while (i < n_edges && edges[i].from < p)
            i++;
        first[p] = i;
    }
    for (size_t root = 0; root < cfg->n_pipelines; root++) {
        if (color[root])
            continue;
        size_t depth = 0;
        stack[depth++] = (struct dfs_frame){root, first[root], 0};
        color[root] = 1;
        while (depth) {
            struct dfs_frame *top = &stack[depth - 1];
            if (top->next_edge == first[top->node + 1]) {
                color[top->node] = 2;
                depth--;
                continue;
            }
            size_t ei = top->next_edge++;
            const struct edge *e = &edges[ei];
            if (color[e->to] == 1) {
                char cycle[600];
                describe_cycle(cfg, stack, depth, edges, e, cycle, sizeof(cycle));
                fg_diag_add(L->diag, 1, L->file, e->use->line, e->use->col,
                            "service.pipelines.%s.exporters: connector \"%s\" closes a cycle "
                            "of pipelines (%s): data would loop forever",
                            cfg->pipelines[e->from].name, e->use->connector, cycle);
                goto done;
            }
            if (color[e->to] == 0) {
                top->edge_taken = ei;
                color[e->to] = 1;
                stack[depth++] = (struct dfs_frame){e->to, first[e->to], 0};
            }
        }
    }
    goto done;
nomem:
    L->nomem = true;
done:
    fg_free(edges);
    fg_free(color);
    fg_free(first);
    fg_free(stack);
}

static void load_root(struct loader *L, const struct fg_ynode *root)
{
    static const char *const top_keys[] = {"receivers",  "processors", "exporters",
                                           "extensions", "connectors", "service"};
    const struct fg_ynode *keys[6] = {NULL}, *values[6] = {NULL};
    if (is_null(root)) {
        errf(L, root ? root : &(struct fg_ynode){.line = 1, .col = 1},
             "empty configuration (expected receivers, exporters and service)");
        return;
    }
    if (root->kind != FG_YNODE_MAPPING) {
        errf(L, root, "the configuration must be a mapping (receivers, processors, exporters, "
                      "extensions, connectors, service), not a %s",
             node_kind_name(root));
        return;
    }
    for (size_t i = 0; i < root->n; i++) {
        const struct fg_ynode *k = fg__ynode_key(root, i);
        if (!key_ok(L, k, NULL))
            continue;
        size_t t;
        for (t = 0; t < FG_ARRAY_LEN(top_keys); t++)
            if (strcmp(top_keys[t], k->text) == 0)
                break;
        if (t == FG_ARRAY_LEN(top_keys)) {
            errf(L, k, "%s: unknown top-level key (valid keys: receivers, processors, "
                       "exporters, extensions, connectors, service)",
                 k->text);
            continue;
        }
        if (keys[t]) {
            errf(L, k, "%s: duplicate key", k->text);
            continue;
        }
        keys[t] = k;
        values[t] = fg__ynode_value(root, i);
    }
    /* Components in the order written, so diagnostics read top to bottom. */
    for (size_t i = 0; i < root->n && !L->nomem; i++) {
        for (int kind = 0; kind < FG_CONFIG_KINDS; kind++)
            if (keys[kind] == fg__ynode_key(root, i))
                parse_section(L, (enum fg_kind)kind, values[kind]);
    }
    if (L->nomem)
        return;
    parse_service(L, keys[5], values[5], root);
    if (L->nomem)
        return;
    check_connector_ends(L);
    check_pipe_refs(L);
    check_cycles(L);
    if (!L->nomem)
        warn_unused(L);
}

/* ---- public API ---- */

void fg_config_free(struct fg_config *cfg)
{
    if (!cfg)
        return;
    for (int kind = 0; kind < FG_CONFIG_KINDS; kind++) {
        for (size_t i = 0; i < cfg->n_components[kind]; i++) {
            struct fg_config_component *c = &cfg->components[kind][i];
            if (c->factory && c->config)
                fg_options_free(c->factory->options, c->config);
            fg_free(c->config);
            fg_free(c->id);
        }
        fg_free(cfg->components[kind]);
    }
    for (size_t i = 0; i < cfg->n_pipelines; i++) {
        struct fg_config_pipeline *p = &cfg->pipelines[i];
        for (size_t j = 0; j < p->n_receivers; j++)
            fg_free(p->receivers[j]);
        for (size_t j = 0; j < p->n_processors; j++)
            fg_free(p->processors[j]);
        for (size_t j = 0; j < p->n_exporters; j++)
            fg_free(p->exporters[j]);
        fg_free(p->receivers);
        fg_free(p->processors);
        fg_free(p->exporters);
        fg_free(p->name);
    }
    fg_free(cfg->pipelines);
    for (size_t i = 0; i < cfg->n_service_extensions; i++)
        fg_free(cfg->service_extensions[i]);
    fg_free(cfg->service_extensions);
    fg_free(cfg->source);
    fg_free(cfg);
}

const struct fg_config_component *fg_config_find(const struct fg_config *cfg, enum fg_kind kind,
                                                 const char *id)
{
    if (!cfg || !id || (unsigned)kind >= FG_CONFIG_KINDS)
        return NULL;
    return find_component(cfg, kind, id);
}

static void loader_free(struct loader *L)
{
    for (size_t i = 0; i < L->n_refs; i++) {
        fg_free(L->refs[i].connector);
        fg_free(L->refs[i].pipeline);
        fg_free(L->refs[i].path);
    }
    fg_free(L->refs);
    fg_free(L->uses);
    L->refs = NULL;
    L->uses = NULL;
    L->n_refs = L->n_uses = 0;
}

int fg_config_load_string(const char *source_name, const char *yaml, size_t len,
                          struct fg_config **out, struct fg_diag *diag)
{
    struct loader L = {.file = source_name ? source_name : "<config>", .diag = diag};
    struct fg_ynode *root = NULL;
    int errors_before = diag->errors;
    int rc;
    *out = NULL;

    rc = fg__yaml_parse(L.file, yaml ? yaml : "", yaml ? len : 0, diag, &root);
    if (rc)
        goto fail;
    L.cfg = fg_calloc(1, sizeof(*L.cfg));
    if (!L.cfg) {
        rc = FG_ENOMEM;
        goto fail;
    }
    L.cfg->log_level = FG_LOG_INFO;
    L.cfg->shutdown_timeout_ns = FG_DEFAULT_SHUTDOWN_TIMEOUT_NS;
    if (!(L.cfg->source = fg_strdup(L.file))) {
        rc = FG_ENOMEM;
        goto fail;
    }
    load_root(&L, root);
    if (L.nomem) {
        rc = FG_ENOMEM;
        goto fail;
    }
    if (diag->errors != errors_before) {
        rc = FG_EINVAL;
        goto fail;
    }
    fg__ynode_free(root);
    loader_free(&L);
    *out = L.cfg;
    return 0;
fail:
    if (rc == FG_ENOMEM)
        fg_diag_add(diag, 1, L.file, 0, 0, "out of memory while loading the configuration");
    fg__ynode_free(root);
    loader_free(&L);
    fg_config_free(L.cfg);
    return rc;
}

int fg_config_load_file(const char *path, struct fg_config **out, struct fg_diag *diag)
{
    struct fg_buf buf;
    int rc;
    *out = NULL;
    fg_buf_init(&buf, MAX_CONFIG_FILE);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fg_diag_add(diag, 1, path, 0, 0, "cannot open configuration file: %s", strerror(errno));
        return FG_EINVAL;
    }
    char chunk[16384];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rc = fg_buf_append(&buf, chunk, n);
        if (rc == FG_ETOOBIG) {
            fg_diag_add(diag, 1, path, 0, 0, "configuration file is larger than %u MiB",
                        MAX_CONFIG_FILE >> 20);
            rc = FG_EINVAL;
            goto fail;
        }
        if (rc) {
            fg_diag_add(diag, 1, path, 0, 0, "out of memory reading the configuration");
            goto fail;
        }
    }
    if (ferror(f)) {
        fg_diag_add(diag, 1, path, 0, 0, "cannot read configuration file: %s", strerror(errno));
        rc = FG_EINVAL;
        goto fail;
    }
    fclose(f);
    f = NULL;
    rc = fg_config_load_string(path, (const char *)buf.data, buf.len, out, diag);
fail:
    if (f)
        fclose(f);
    fg_buf_free(&buf);
    return rc;
}
