/* Building, starting and stopping the component graph (extensions first and last). */
#include "fg_service.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_config.h"
#include "fg_log.h"
#include "fg_model.h"

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
};

static int fanout_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct fanout *f = (struct fanout *)self;
    int result = 0;
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
    /* start order: exporters, processors (last of each pipeline first), receivers */
    struct instance *instances;
    size_t n_instances;
    struct fanout **fanouts;
    size_t n_fanouts;
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
            if (!find_instance(s, id, FG_KIND_EXPORTER) &&
                (rc = create_component(s, FG_KIND_EXPORTER, id, NULL, &c, err)))
                goto fail;
        }
    /* each pipeline: its own processor instances, chained, ending in a fan-out */
    struct fg_consumer **heads = fg_calloc(cfg->n_pipelines ? cfg->n_pipelines : 1, sizeof(*heads));
    if (!heads) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t p = 0; p < cfg->n_pipelines; p++) {
        const struct fg_config_pipeline *pl = &cfg->pipelines[p];
        struct fanout *f = new_fanout(s, pl->n_exporters);
        if (!f) {
            rc = fg_err_set(err, FG_ENOMEM, "out of memory");
            break;
        }
        for (size_t e = 0; e < pl->n_exporters; e++)
            f->targets[f->n++] = &find_instance(s, pl->exporters[e], FG_KIND_EXPORTER)->consumer;
        struct fg_consumer *next = &f->consumer;
        for (size_t k = pl->n_processors; k-- > 0;) {
            struct fg_component *c;
            if ((rc = create_component(s, FG_KIND_PROCESSOR, pl->processors[k], next, &c, err))) {
                fg_err_prefix(err, "pipeline %s", pl->name);
                break;
            }
            next = &c->consumer;
        }
        if (rc)
            break;
        heads[p] = next;
    }
    /* receivers: one instance per id, fanning in to every pipeline that names it */
    for (size_t p = 0; p < cfg->n_pipelines && !rc; p++)
        for (size_t r = 0; r < cfg->pipelines[p].n_receivers && !rc; r++) {
            const char *id = cfg->pipelines[p].receivers[r];
            if (find_instance(s, id, FG_KIND_RECEIVER))
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
    /* instances were created extensions → exporters → processors (back to front) →
     * receivers */
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
    return k == FG_KIND_RECEIVER || k == FG_KIND_PROCESSOR;
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
    /* reverse creation order: receivers, processors front to back, exporters, extensions */
    stop_some(s, fg_now_ns() + timeout_ns, any_kind);
}

void fg_service_free(struct fg_service *s)
{
    if (!s)
        return;
    for (size_t i = s->n_instances; i-- > 0;)
        s->instances[i].c->ops->destroy(s->instances[i].c);
    fg_free(s->instances);
    for (size_t i = 0; i < s->n_fanouts; i++) {
        fg_free(s->fanouts[i]->targets);
        fg_free(s->fanouts[i]);
    }
    fg_free(s->fanouts);
    fg_free(s);
}
