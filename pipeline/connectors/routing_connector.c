/* Connector "routing": sends each resource of a batch to the pipelines whose route matches
 * it (a resource attribute equal to a value or matching a regex, and/or the tenant the batch
 * came with), or to default_pipelines when none does. A pipeline that gets every resource
 * gets the input batch itself (shared read-only); the others get a copy of their subset
 * that carries only the dictionary entries it uses (fg_model_select.h). */
#include <inttypes.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_config.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_model_select.h"
#include "fg_proc_regex.h"
#include "fg_proc_util.h"

struct route_match_cfg {
    char *resource_attribute;
    char *value;
    char *regex;
    char *tenant;
};

struct route_cfg {
    struct route_match_cfg match;
    struct fg_strlist pipelines;
};

enum error_mode { ERROR_MODE_PROPAGATE, ERROR_MODE_IGNORE, ERROR_MODE_SILENT };
static const char *const error_mode_names[] = {"propagate", "ignore", "silent", NULL};

struct routing_config {
    struct fg_structlist routes; /* struct route_cfg */
    struct fg_strlist default_pipelines;
    int error_mode;
    bool match_once;
};

static const struct fg_option match_options[] = {
    FG_OPT_STR("resource_attribute", struct route_match_cfg, resource_attribute, NULL,
               "the resource attribute compared (with value or regex)"),
    FG_OPT_STR("value", struct route_match_cfg, value, NULL,
               "the attribute's text must equal this"),
    FG_OPT_STR_CHECK("regex", struct route_match_cfg, regex, NULL, fg_regex_check,
                     "the attribute's text must match this regex (anywhere; anchor with ^...$)"),
    FG_OPT_STR("tenant", struct route_match_cfg, tenant, NULL,
               "the tenant the data arrived with (X-Scope-OrgID) must equal this"),
    FG_OPT_END,
};

static int check_route(const void *value, struct fg_err *err)
{
    const struct route_cfg *r = value;
    const struct route_match_cfg *m = &r->match;
    if (!m->resource_attribute && !m->tenant)
        return fg_err_set(err, FG_EINVAL,
                          "match: needs resource_attribute (with value or regex) or tenant");
    if (m->resource_attribute && !*m->resource_attribute)
        return fg_err_set(err, FG_EINVAL, "match.resource_attribute: must not be empty");
    if (m->resource_attribute && !m->value == !m->regex)
        return fg_err_set(err, FG_EINVAL,
                          "match: resource_attribute needs exactly one of value or regex");
    if (!m->resource_attribute && (m->value || m->regex))
        return fg_err_set(err, FG_EINVAL,
                          "match: value and regex only mean something with resource_attribute");
    if (m->tenant && !*m->tenant)
        return fg_err_set(err, FG_EINVAL, "match.tenant: must not be empty");
    if (!r->pipelines.n)
        return fg_err_set(err, FG_EINVAL, "pipelines: a route needs at least one pipeline");
    return 0;
}

static const struct fg_option route_options[] = {
    FG_OPT_BLOCK("match", struct route_cfg, match, match_options,
                 "which resources take this route (all given conditions must hold)"),
    FG_OPT_LIST_CHECK("pipelines", struct route_cfg, pipelines, fg_config_pipeline_ref,
                      "where matching resources go; each lists this connector as a receiver"),
    FG_OPT_END,
};

static const struct fg_option routing_options[] = {
    FG_OPT_STRUCTS_CHECK("routes", struct routing_config, routes, route_options,
                         struct route_cfg, check_route, "the routes, tried in order"),
    FG_OPT_LIST_CHECK("default_pipelines", struct routing_config, default_pipelines,
                      fg_config_pipeline_ref,
                      "where resources that match no route go (none: they are dropped)"),
    FG_OPT_CHOICE("error_mode", struct routing_config, error_mode, "propagate", error_mode_names,
                  "when a pipeline refuses data: propagate (tell the sender), ignore (log), "
                  "silent"),
    FG_OPT_BOOLEAN("match_once", struct routing_config, match_once, "false",
                   "the first matching route wins (otherwise every matching route counts)"),
    FG_OPT_END,
};

static int routing_validate(const void *config, struct fg_err *err)
{
    const struct routing_config *cfg = config;
    if (!cfg->routes.n && !cfg->default_pipelines.n)
        return fg_err_set(err, FG_EINVAL, "needs routes or default_pipelines (or both)");
    return 0;
}

/* ---- the connector ---- */

struct route {
    char *key;    /* resource attribute, or NULL */
    char *value;  /* equality, or NULL */
    size_t value_len;
    struct fg_regex *re;
    char *tenant; /* or NULL */
    size_t *pipes; /* indices into the connector's downstream pipelines */
    size_t n_pipes;
};

struct routing_connector {
    struct fg_component base;
    struct fg_consumer **heads; /* one per downstream pipeline */
    const char *const *names;
    size_t n_heads;
    struct route *routes;
    size_t n_routes;
    size_t *defaults;
    size_t n_defaults;
    int error_mode;
    bool match_once;
    atomic_uint_fast64_t unrouted_resources;
};

static bool route_matches(const struct route *r, const struct fg_profiles *batch,
                          const struct fg_resource_profiles *rp)
{
    if (r->tenant && strcmp(batch->tenant, r->tenant) != 0)
        return false;
    if (!r->key)
        return true;
    const struct fg_value *v = fg_proc_resource_attr(&rp->resource, r->key);
    if (!v)
        return false;
    char buf[64];
    size_t len;
    const char *text = fg_proc_value_text(v, buf, sizeof(buf), &len);
    if (r->value)
        return len == r->value_len && memcmp(text, r->value, len) == 0;
    return fg_regex_match(r->re, text, len);
}

/* A batch of the resources i for which row[i] is set, with only the dictionary entries
 * they use. Equal resources of src end up joined, as fg_profiles_merge would. */
static int subset(const struct fg_profiles *src, const uint8_t *row, struct fg_profiles **out)
{
    struct fg_profiles *dst = NULL;
    struct fg_copier *cp = NULL;
    int rc = fg_profiles_new(&dst);
    if (rc)
        goto fail;
    memcpy(dst->tenant, src->tenant, sizeof(dst->tenant));
    if ((rc = fg_copier_new(dst, src, &cp)) != 0)
        goto fail;
    rc = FG_ENOMEM;
    for (uint32_t i = 0; i < src->n_resources; i++) {
        if (!row[i])
            continue;
        const struct fg_resource_profiles *srp = &src->resources[i];
        struct fg_resource_profiles *drp = fg_copier_resource(cp, srp);
        if (!drp)
            goto fail;
        for (uint32_t s = 0; s < srp->n_scopes; s++) {
            const struct fg_scope_profiles *ssp = &srp->scopes[s];
            struct fg_scope_profiles *dsp = fg_copier_scope(cp, drp, ssp);
            if (!dsp)
                goto fail;
            for (uint32_t p = 0; p < ssp->n_profiles; p++)
                if (!fg_copier_profile(cp, dsp, &ssp->profiles[p]))
                    goto fail;
        }
    }
    fg_copier_free(cp);
    *out = dst;
    return 0;
fail:
    fg_copier_free(cp);
    fg_profiles_unref(dst);
    return rc;
}

static void mark(uint8_t *sel, size_t n, const size_t *pipes, size_t n_pipes, uint32_t i)
{
    for (size_t k = 0; k < n_pipes; k++)
        sel[pipes[k] * n + i] = 1;
}

static int routing_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct routing_connector *r =
        (struct routing_connector *)((char *)self - offsetof(struct fg_component, consumer));
    const size_t n = batch->n_resources, P = r->n_heads;
    uint8_t *sel = NULL;
    struct fg_profiles **outs = NULL;
    int rc = 0;
    if (n == 0 || P == 0)
        goto done;
    /* sel[p * n + i]: resource i goes to pipeline p; a set, so a pipeline named by several
     * matching routes gets the resource once */
    sel = fg_calloc(P * n, 1);
    outs = fg_calloc(P, sizeof(*outs));
    if (!sel || !outs) {
        rc = fg_err_set(err, FG_ENOMEM, "%s: out of memory", r->base.id);
        goto done;
    }
    uint64_t unrouted = 0;
    for (uint32_t i = 0; i < n; i++) {
        bool matched = false;
        for (size_t k = 0; k < r->n_routes; k++) {
            if (!route_matches(&r->routes[k], batch, &batch->resources[i]))
                continue;
            matched = true;
            mark(sel, n, r->routes[k].pipes, r->routes[k].n_pipes, i);
            if (r->match_once)
                break;
        }
        if (!matched && r->n_defaults)
            mark(sel, n, r->defaults, r->n_defaults, i);
        else if (!matched)
            unrouted++;
    }
    if (unrouted) {
        atomic_fetch_add(&r->unrouted_resources, unrouted);
        fg_log(FG_LOG_DEBUG, r->base.id, "%" PRIu64 " resources matched no route and were dropped",
               unrouted);
    }
    /* Every batch is built before any is sent, so running out of memory sends nothing and
     * the sender's retry does not duplicate data. */
    for (size_t p = 0; p < P; p++) {
        const uint8_t *row = sel + p * n;
        size_t count = 0;
        for (size_t i = 0; i < n; i++)
            count += row[i];
        if (!count)
            continue;
        for (size_t q = 0; q < p && !outs[p]; q++)
            if (outs[q] && memcmp(row, sel + q * n, n) == 0)
                outs[p] = fg_profiles_ref(outs[q]);
        if (outs[p])
            continue;
        if (count == n) {
            outs[p] = fg_profiles_ref(batch);
            continue;
        }
        if ((rc = subset(batch, row, &outs[p])) != 0) {
            rc = fg_err_set(err, rc, "%s: splitting a batch: %s", r->base.id, fg_strerror(rc));
            goto done;
        }
    }
    int first = 0;
    struct fg_err first_err = {{0}};
    for (size_t p = 0; p < P; p++) {
        if (!outs[p])
            continue;
        struct fg_err one = {{0}};
        int c = fg_consume(r->heads[p], outs[p], &one);
        outs[p] = NULL; /* consume took it, also on error */
        if (!c)
            continue;
        if (r->error_mode == ERROR_MODE_IGNORE)
            fg_log(FG_LOG_WARN, r->base.id, "pipeline %s refused data: %s", r->names[p],
                   one.msg);
        if (!first) {
            first = c;
            first_err = one;
        }
    }
    if (first && r->error_mode == ERROR_MODE_PROPAGATE) {
        rc = first;
        if (err)
            *err = first_err;
    }
done:
    for (size_t p = 0; outs && p < P; p++)
        fg_profiles_unref(outs[p]);
    fg_free(outs);
    fg_free(sel);
    fg_profiles_unref(batch);
    return rc;
}

static int routing_start(struct fg_component *c, struct fg_err *err)
{
    return 0;
}

/* Holds nothing between calls. */
static int routing_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    struct routing_connector *r = (struct routing_connector *)c;
    uint64_t unrouted = atomic_load(&r->unrouted_resources);
    if (unrouted)
        fg_log(FG_LOG_INFO, c->id, "%" PRIu64 " resources matched no route and were dropped",
               unrouted);
    return 0;
}

static void routing_destroy(struct fg_component *c)
{
    struct routing_connector *r = (struct routing_connector *)c;
    if (!r)
        return;
    for (size_t k = 0; r->routes && k < r->n_routes; k++) {
        fg_free(r->routes[k].key);
        fg_free(r->routes[k].value);
        fg_regex_free(r->routes[k].re);
        fg_free(r->routes[k].tenant);
        fg_free(r->routes[k].pipes);
    }
    fg_free(r->routes);
    fg_free(r->defaults);
    fg_free(r->heads);
    fg_free(r);
}

static const struct fg_component_ops routing_ops = {
    .start = routing_start,
    .shutdown = routing_shutdown,
    .destroy = routing_destroy,
};

/* Pipeline names → indices among the downstream pipelines. The loader already checked
 * that each lists this connector as a receiver; this guards a hand-built config. */
static int resolve(const struct fg_create_args *args, const struct fg_strlist *names,
                   size_t **out, size_t *n_out, struct fg_err *err)
{
    *out = NULL;
    *n_out = 0;
    if (!names->n)
        return 0;
    size_t *idx = fg_calloc(names->n, sizeof(*idx));
    if (!idx)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    for (size_t i = 0; i < names->n; i++) {
        size_t p = 0;
        while (p < args->n_pipelines && strcmp(args->pipelines[p], names->items[i]) != 0)
            p++;
        if (p == args->n_pipelines) {
            fg_free(idx);
            return fg_err_set(err, FG_EINVAL,
                              "pipeline %s does not list this connector among its receivers",
                              names->items[i]);
        }
        idx[i] = p;
    }
    *out = idx;
    *n_out = names->n;
    return 0;
}

static int routing_create(const struct fg_create_args *args, struct fg_component **out,
                          struct fg_err *err)
{
    const struct routing_config *cfg = args->config;
    int rc = FG_ENOMEM;
    struct routing_connector *r = fg_calloc(1, sizeof(*r));
    if (!r)
        goto nomem;
    r->base.ops = &routing_ops;
    r->base.consumer.consume = routing_consume;
    r->error_mode = cfg->error_mode;
    r->match_once = cfg->match_once;
    atomic_init(&r->unrouted_resources, 0);
    r->names = args->pipelines;
    if (args->n_pipelines) {
        if (!(r->heads = fg_calloc(args->n_pipelines, sizeof(*r->heads))))
            goto nomem;
        for (size_t i = 0; i < args->n_pipelines; i++)
            r->heads[i] = args->pipeline_heads[i];
        r->n_heads = args->n_pipelines;
    }
    if (cfg->routes.n && !(r->routes = fg_calloc(cfg->routes.n, sizeof(*r->routes))))
        goto nomem;
    for (size_t k = 0; k < cfg->routes.n; k++) {
        const struct route_cfg *rc_cfg = (const struct route_cfg *)cfg->routes.items + k;
        struct route *rt = &r->routes[k];
        r->n_routes++;
        const struct route_match_cfg *m = &rc_cfg->match;
        if ((m->resource_attribute && !(rt->key = fg_strdup(m->resource_attribute))) ||
            (m->value && !(rt->value = fg_strdup(m->value))) ||
            (m->tenant && !(rt->tenant = fg_strdup(m->tenant))))
            goto nomem;
        rt->value_len = rt->value ? strlen(rt->value) : 0;
        if (m->regex && (rc = fg_regex_compile(m->regex, 0, &rt->re, err)) != 0) {
            fg_err_prefix(err, "routes[%zu].match.regex", k);
            goto fail;
        }
        if ((rc = resolve(args, &rc_cfg->pipelines, &rt->pipes, &rt->n_pipes, err)) != 0) {
            fg_err_prefix(err, "routes[%zu]", k);
            goto fail;
        }
    }
    if ((rc = resolve(args, &cfg->default_pipelines, &r->defaults, &r->n_defaults, err)) != 0) {
        fg_err_prefix(err, "default_pipelines");
        goto fail;
    }
    *out = &r->base;
    return 0;
nomem:
    rc = fg_err_set(err, FG_ENOMEM, "out of memory");
fail:
    routing_destroy(r ? &r->base : NULL);
    return rc;
}

const struct fg_factory fg_routing_connector_factory = {
    .type = "routing",
    .kind = FG_KIND_CONNECTOR,
    .config_size = sizeof(struct routing_config),
    .options = routing_options,
    .validate = routing_validate,
    .create = routing_create,
};
