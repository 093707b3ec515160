/* Building, starting and stopping the component graph (extensions first and last;
 * pipelines joined by connectors built and started downstream first). */
#include "fg_service.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_config.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_tap.h"

int64_t fg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Hands each batch to several consumers: shared read-only, one reference each. */
struct fanout {
    struct fg_consumer consumer;
    struct fg_consumer **targets;
    size_t n;
    const char *pipeline; /* set on a pipeline's fan-out to its exporters: the tap's name */
};

static int fanout_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct fanout *f = (struct fanout *)self;
    int result = 0;
    if (f->pipeline)
        fg_tap_publish(f->pipeline, batch);
    for (size_t i = 0; i < f->n; i++) {
        struct fg_profiles *ref = i + 1 < f->n ? fg_profiles_ref(batch) : batch;
        struct fg_err one = {{0}};
        int rc = fg_consume(f->targets[i], ref, &one);
        if (rc && !result) {
            result = rc;
            if (err)
                *err = one;
        }
    }
    if (f->n == 0)
        fg_profiles_unref(batch);
    return result;
}

struct instance {
    struct fg_component *c;
    bool started;
};

struct fg_service {
    const struct fg_config *cfg;
    /* start order: extensions, exporters, pipelines downstream first (last processor
     * first; a connector after the pipelines it feeds), receivers */
    struct instance *instances;
    size_t n_instances;
    struct fanout **fanouts;
    size_t n_fanouts;
    void **kept; /* arrays the service owns for its components (a connector's pipelines) */
    size_t n_kept;
};

static int add_instance(struct fg_service *s, struct fg_component *c)
{
    struct instance *bigger =
        fg_realloc(s->instances, (s->n_instances + 1) * sizeof(*s->instances));
    if (!bigger)
        return FG_ENOMEM;
    s->instances = bigger;
    s->instances[s->n_instances++] = (struct instance){c, false};
    return 0;
}

/* Takes ownership of p (freed with the service) unless it fails. */
static int keep(struct fg_service *s, void *p)
{
    void **bigger = fg_realloc(s->kept, (s->n_kept + 1) * sizeof(*s->kept));
    if (!bigger)
        return FG_ENOMEM;
    s->kept = bigger;
    s->kept[s->n_kept++] = p;
    return 0;
}

static struct fanout *new_fanout(struct fg_service *s, size_t n)
{
    struct fanout **bigger = fg_realloc(s->fanouts, (s->n_fanouts + 1) * sizeof(*s->fanouts));
    if (!bigger)
        return NULL;
    s->fanouts = bigger;
    struct fanout *f = fg_calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->targets = fg_calloc(n ? n : 1, sizeof(*f->targets));
    if (!f->targets) {
        fg_free(f);
        return NULL;
    }
    f->consumer.consume = fanout_consume;
    s->fanouts[s->n_fanouts++] = f;
    return f;
}

static struct fg_component *find_instance(struct fg_service *s, const char *id, enum fg_kind kind)
{
    for (size_t i = 0; i < s->n_instances; i++)
        if (s->instances[i].c->factory->kind == kind && strcmp(s->instances[i].c->id, id) == 0)
            return s->instances[i].c;
    return NULL;
}

static struct fg_component *find_extension(void *ctx, const char *id)
{
    return find_instance(ctx, id, FG_KIND_EXTENSION);
}

static int create_component(struct fg_service *s, enum fg_kind kind, const char *id,
                            struct fg_consumer *next, struct fg_component **out, struct fg_err *err)
{
    const struct fg_config_component *cc = fg_config_find(s->cfg, kind, id);
    if (!cc)
        return fg_err_set(err, FG_EINVAL, "%s %s: not defined", fg_kind_name(kind), id);
    struct fg_create_args args = {.id = id,
                                  .config = cc->config,
                                  .next = next,
                                  .find_extension = find_extension,
                                  .find_ctx = s};
    struct fg_component *c = NULL;
    fg_create_args_set_current(&args);
    int rc = cc->factory->create(&args, &c, err);
    fg_create_args_set_current(NULL);
    if (rc) {
        fg_err_prefix(err, "%s %s", fg_kind_name(kind), id);
        return rc;
    }
    c->factory = cc->factory;
    snprintf(c->id, sizeof(c->id), "%s", id);
    if ((rc = add_instance(s, c)) != 0) {
        c->ops->destroy(c);
        return fg_err_set(err, rc, "out of memory");
    }
    *out = c;
    return 0;
}

static bool is_connector(const struct fg_config *cfg, const char *id)
{
    return fg_config_find(cfg, FG_KIND_CONNECTOR, id) != NULL;
}

/* Builds pipeline p: a fan-out to its exporters and connectors, and its own processor
 * instances chained in front of it; heads[p] is where its data goes in. */
static int build_pipeline(struct fg_service *s, size_t p, struct fg_consumer **heads,
                          struct fg_err *err)
{
    const struct fg_config_pipeline *pl = &s->cfg->pipelines[p];
    struct fanout *f = new_fanout(s, pl->n_exporters);
    if (!f)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    f->pipeline = pl->name;
    for (size_t e = 0; e < pl->n_exporters; e++) {
        const char *id = pl->exporters[e];
        enum fg_kind kind = is_connector(s->cfg, id) ? FG_KIND_CONNECTOR : FG_KIND_EXPORTER;
        f->targets[f->n++] = &find_instance(s, id, kind)->consumer;
    }
    struct fg_consumer *next = &f->consumer;
    for (size_t k = pl->n_processors; k-- > 0;) {
        struct fg_component *c;
        int rc = create_component(s, FG_KIND_PROCESSOR, pl->processors[k], next, &c, err);
        if (rc) {
            fg_err_prefix(err, "pipeline %s", pl->name);
            return rc;
        }
        next = &c->consumer;
    }
    heads[p] = next;
    return 0;
}

/* Creates connector id, which feeds every pipeline listing it as a receiver (all built). */
static int build_connector(struct fg_service *s, const char *id, struct fg_consumer **heads,
                           struct fg_err *err)
{
    const struct fg_config *cfg = s->cfg;
    const struct fg_config_component *cc = fg_config_find(cfg, FG_KIND_CONNECTOR, id);
    size_t n = 0, cap = cfg->n_pipelines ? cfg->n_pipelines : 1;
    int rc;
    /* the connector keeps pointers into these for its lifetime: the service owns them */
    const char **names = fg_calloc(cap, sizeof(*names));
    if (!names || keep(s, names) != 0) {
        fg_free(names);
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    }
    struct fg_consumer **down = fg_calloc(cap, sizeof(*down));
    if (!down || keep(s, down) != 0) {
        fg_free(down);
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    }
    for (size_t q = 0; q < cfg->n_pipelines; q++)
        for (size_t k = 0; k < cfg->pipelines[q].n_receivers; k++)
            if (strcmp(cfg->pipelines[q].receivers[k], id) == 0) {
                names[n] = cfg->pipelines[q].name;
                down[n++] = heads[q];
            }
    struct fg_create_args args = {.id = id,
                                  .config = cc->config,
                                  .find_extension = find_extension,
                                  .find_ctx = s,
                                  .pipelines = names,
                                  .pipeline_heads = down,
                                  .n_pipelines = n};
    struct fg_component *c = NULL;
    fg_create_args_set_current(&args);
    rc = cc->factory->create(&args, &c, err);
    fg_create_args_set_current(NULL);
    if (rc) {
        fg_err_prefix(err, "connector %s", id);
        return rc;
    }
    c->factory = cc->factory;
    snprintf(c->id, sizeof(c->id), "%s", id);
    if ((rc = add_instance(s, c)) != 0) {
        c->ops->destroy(c);
        return fg_err_set(err, rc, "out of memory");
    }
    return 0;
}

static long connector_index(const struct fg_config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_components[FG_KIND_CONNECTOR]; i++)
        if (strcmp(cfg->components[FG_KIND_CONNECTOR][i].id, id) == 0)
            return (long)i;
    return -1;
}

/* The graph of pipelines (nodes 0..P-1) and connectors (P..P+C-1) in compressed rows:
 * a pipeline's successors are the connectors among its exporters, a connector's the
 * pipelines listing it among their receivers. */
struct graph {
    size_t n;
    size_t *first; /* successors of v: succ[first[v]] .. succ[first[v + 1] - 1] */
    size_t *succ;
};

static int graph_build(const struct fg_config *cfg, struct graph *g)
{
    size_t P = cfg->n_pipelines, C = cfg->n_components[FG_KIND_CONNECTOR], n_edges = 0;
    g->n = P + C;
    g->first = fg_calloc(g->n + 2, sizeof(*g->first));
    if (!g->first)
        return FG_ENOMEM;
    /* count (shifted by one), then prefix sums, then fill */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t p = 0; p < P; p++) {
            const struct fg_config_pipeline *pl = &cfg->pipelines[p];
            for (size_t e = 0; e < pl->n_exporters; e++) {
                long c = connector_index(cfg, pl->exporters[e]);
                if (c < 0)
                    continue;
                if (pass == 0)
                    g->first[p + 2]++;
                else
                    g->succ[g->first[p + 1]++] = P + (size_t)c;
            }
            for (size_t r = 0; r < pl->n_receivers; r++) {
                long c = connector_index(cfg, pl->receivers[r]);
                if (c < 0)
                    continue;
                if (pass == 0)
                    g->first[P + (size_t)c + 2]++;
                else
                    g->succ[g->first[P + (size_t)c + 1]++] = p;
            }
        }
        if (pass == 0) {
            for (size_t v = 0; v < g->n; v++)
                g->first[v + 2] += g->first[v + 1];
            n_edges = g->first[g->n + 1];
            g->succ = fg_calloc(n_edges ? n_edges : 1, sizeof(*g->succ));
            if (!g->succ)
                return FG_ENOMEM;
        }
    }
    return 0;
}

/* Pipelines and connectors, downstream first (a depth-first post-order, without recursion):
 * a pipeline is built after every connector it exports to, a connector after every
 * pipeline it feeds. Creation order is start order (and its reverse the stop order), so a
 * connector starts after the pipelines it feeds and stops after the pipelines feeding it. */
static int build_graph(struct fg_service *s, struct fg_consumer **heads, struct fg_err *err)
{
    const struct fg_config *cfg = s->cfg;
    const size_t P = cfg->n_pipelines;
    struct graph g = {0, NULL, NULL};
    uint8_t *color = NULL; /* 0 new, 1 on the stack, 2 built */
    uint8_t *used = NULL;  /* a connector some pipeline exports to or receives from */
    size_t *stack = NULL, *next = NULL;
    int rc = graph_build(cfg, &g);
    if (rc)
        goto nomem;
    color = fg_calloc(g.n ? g.n : 1, 1);
    used = fg_calloc(g.n ? g.n : 1, 1);
    stack = fg_calloc(g.n ? g.n : 1, sizeof(*stack));
    next = fg_calloc(g.n ? g.n : 1, sizeof(*next));
    if (!color || !used || !stack || !next)
        goto nomem;
    for (size_t v = 0; v < P; v++)
        for (size_t k = g.first[v]; k < g.first[v + 1]; k++)
            used[g.succ[k]] = 1;
    for (size_t v = P; v < g.n; v++)
        used[v] |= g.first[v] < g.first[v + 1];
    for (size_t root = 0; root < g.n && !rc; root++) {
        if (color[root])
            continue;
        size_t depth = 0;
        stack[depth++] = root;
        color[root] = 1;
        next[root] = g.first[root];
        while (depth && !rc) {
            size_t v = stack[depth - 1];
            if (next[v] < g.first[v + 1]) {
                size_t w = g.succ[next[v]++];
                if (color[w] == 1) {
                    rc = fg_err_set(err, FG_EINVAL, "pipeline %s: the pipelines form a cycle "
                                                    "through connectors",
                                    cfg->pipelines[v < P ? v : w].name);
                } else if (color[w] == 0) {
                    color[w] = 1;
                    next[w] = g.first[w];
                    stack[depth++] = w;
                }
                continue;
            }
            depth--;
            color[v] = 2;
            if (v < P)
                rc = build_pipeline(s, v, heads, err);
            else if (used[v])
                rc = build_connector(s, cfg->components[FG_KIND_CONNECTOR][v - P].id, heads,
                                     err);
        }
    }
    goto done;
nomem:
    rc = fg_err_set(err, FG_ENOMEM, "out of memory");
done:
    fg_free(g.first);
    fg_free(g.succ);
    fg_free(color);
    fg_free(used);
    fg_free(stack);
    fg_free(next);
    return rc;
}

int fg_service_build(const struct fg_config *cfg, struct fg_service **out, struct fg_err *err)
{
    struct fg_service *s = fg_calloc(1, sizeof(*s));
    if (!s)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    s->cfg = cfg;
    int rc = 0;
    /* extensions first: started first, stopped last, found by exporters at create */
    for (size_t i = 0; i < cfg->n_service_extensions; i++) {
        struct fg_component *c;
        if (!find_instance(s, cfg->service_extensions[i], FG_KIND_EXTENSION) &&
            (rc = create_component(s, FG_KIND_EXTENSION, cfg->service_extensions[i], NULL, &c,
                                   err)))
            goto fail;
    }
    /* exporters: one instance per id, shared by the pipelines that name it */
    for (size_t p = 0; p < cfg->n_pipelines; p++)
        for (size_t e = 0; e < cfg->pipelines[p].n_exporters; e++) {
            const char *id = cfg->pipelines[p].exporters[e];
            struct fg_component *c;
            if (!is_connector(cfg, id) && !find_instance(s, id, FG_KIND_EXPORTER) &&
                (rc = create_component(s, FG_KIND_EXPORTER, id, NULL, &c, err)))
                goto fail;
        }
    /* each pipeline: its own processor instances, chained, ending in a fan-out to its
     * exporters and connectors */
    struct fg_consumer **heads = fg_calloc(cfg->n_pipelines ? cfg->n_pipelines : 1, sizeof(*heads));
    if (!heads) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }
    rc = build_graph(s, heads, err);
    /* receivers: one instance per id, fanning in to every pipeline that names it */
    for (size_t p = 0; p < cfg->n_pipelines && !rc; p++)
        for (size_t r = 0; r < cfg->pipelines[p].n_receivers && !rc; r++) {
            const char *id = cfg->pipelines[p].receivers[r];
            if (is_connector(cfg, id) || find_instance(s, id, FG_KIND_RECEIVER))
                continue;
            size_t n = 0;
            for (size_t q = 0; q < cfg->n_pipelines; q++)
                for (size_t k = 0; k < cfg->pipelines[q].n_receivers; k++)
                    n += strcmp(cfg->pipelines[q].receivers[k], id) == 0;
            struct fanout *f = new_fanout(s, n);
            if (!f) {
                rc = fg_err_set(err, FG_ENOMEM, "out of memory");
                break;
            }
            for (size_t q = 0; q < cfg->n_pipelines; q++)
                for (size_t k = 0; k < cfg->pipelines[q].n_receivers; k++)
                    if (strcmp(cfg->pipelines[q].receivers[k], id) == 0)
                        f->targets[f->n++] = heads[q];
            struct fg_component *c;
            /* one pipeline: no fan-out step in between */
            rc = create_component(s, FG_KIND_RECEIVER, id, f->n == 1 ? f->targets[0] : &f->consumer,
                                  &c, err);
        }
    fg_free(heads);
    if (rc)
        goto fail;
    *out = s;
    return 0;
fail:
    fg_service_free(s);
    return rc;
}

static const char *kind_order_name(const struct fg_component *c)
{
    return fg_kind_name(c->factory->kind);
}

int fg_service_start(struct fg_service *s, struct fg_err *err)
{
    /* instances were created extensions → exporters → pipelines downstream first (each
     * one's processors back to front, then the connectors feeding them) → receivers */
    fg_tap_set_config(s, s->cfg);
    for (size_t i = 0; i < s->n_instances; i++) {
        struct fg_component *c = s->instances[i].c;
        int rc = c->ops->start ? c->ops->start(c, err) : 0;
        if (rc) {
            fg_err_prefix(err, "starting %s %s", kind_order_name(c), c->id);
            fg_service_shutdown(s, 5 * INT64_C(1000000000));
            return rc;
        }
        s->instances[i].started = true;
        fg_log(FG_LOG_DEBUG, "service", "started %s %s", kind_order_name(c), c->id);
    }
    return 0;
}

/* Stops, in reverse creation order, every started instance for which pick is true. */
static void stop_some(struct fg_service *s, int64_t deadline, bool (*pick)(enum fg_kind))
{
    for (size_t i = s->n_instances; i-- > 0;) {
        struct fg_component *c = s->instances[i].c;
        if (!s->instances[i].started || !pick(c->factory->kind))
            continue;
        if (c->ops->shutdown && c->ops->shutdown(c, deadline) != 0)
            fg_log(FG_LOG_WARN, "service", "%s %s did not shut down cleanly", kind_order_name(c),
                   c->id);
        s->instances[i].started = false;
    }
}

static bool is_intake(enum fg_kind k)
{
    return k == FG_KIND_RECEIVER || k == FG_KIND_PROCESSOR || k == FG_KIND_CONNECTOR;
}

static bool any_kind(enum fg_kind k)
{
    return true;
}

void fg_service_stop_intake(struct fg_service *s, int64_t timeout_ns)
{
    stop_some(s, fg_now_ns() + timeout_ns, is_intake);
}

void fg_service_shutdown(struct fg_service *s, int64_t timeout_ns)
{
    /* reverse creation order: receivers, pipelines upstream first (processors front to
     * back, connectors between), exporters, extensions */
    stop_some(s, fg_now_ns() + timeout_ns, any_kind);
}

void fg_service_free(struct fg_service *s)
{
    if (!s)
        return;
    fg_tap_clear_config(s);
    for (size_t i = s->n_instances; i-- > 0;)
        s->instances[i].c->ops->destroy(s->instances[i].c);
    fg_free(s->instances);
    for (size_t i = 0; i < s->n_fanouts; i++) {
        fg_free(s->fanouts[i]->targets);
        fg_free(s->fanouts[i]);
    }
    fg_free(s->fanouts);
    for (size_t i = 0; i < s->n_kept; i++)
        fg_free(s->kept[i]);
    fg_free(s->kept);
    fg_free(s);
}
