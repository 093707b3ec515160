/* Connector "forward": ends one or more pipelines and hands every batch, unchanged and
 * shared read-only, to each pipeline that lists it among its receivers (the Collector's
 * forwardconnector). */
#include <stddef.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_model.h"

struct forward_connector {
    struct fg_component base;
    struct fg_consumer **heads;
    size_t n;
};

/* Every pipeline gets the batch, even after one refuses it: the others must not lose data
 * because of a neighbour. The first error goes back, so the sender may retry (and the
 * pipelines that took it then see it twice, as behind the Collector's fan-out). */
static int forward_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct forward_connector *f =
        (struct forward_connector *)((char *)self - offsetof(struct fg_component, consumer));
    int result = 0;
    if (f->n == 0) {
        fg_profiles_unref(batch);
        return 0;
    }
    for (size_t i = 0; i < f->n; i++) {
        struct fg_profiles *ref = i + 1 < f->n ? fg_profiles_ref(batch) : batch;
        struct fg_err one = {{0}};
        int rc = fg_consume(f->heads[i], ref, &one);
        if (rc && !result) {
            result = rc;
            if (err)
                *err = one;
        }
    }
    return result;
}

static int forward_start(struct fg_component *c, struct fg_err *err)
{
    return 0;
}

/* Holds nothing: what it was given is already in the downstream pipelines. */
static int forward_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    return 0;
}

static void forward_destroy(struct fg_component *c)
{
    struct forward_connector *f = (struct forward_connector *)c;
    if (!f)
        return;
    fg_free(f->heads);
    fg_free(f);
}

static const struct fg_component_ops forward_ops = {
    .start = forward_start,
    .shutdown = forward_shutdown,
    .destroy = forward_destroy,
};

static int forward_create(const struct fg_create_args *args, struct fg_component **out,
                          struct fg_err *err)
{
    struct forward_connector *f = fg_calloc(1, sizeof(*f));
    if (!f)
        goto nomem;
    f->base.ops = &forward_ops;
    f->base.consumer.consume = forward_consume;
    if (args->n_pipelines) {
        f->heads = fg_calloc(args->n_pipelines, sizeof(*f->heads));
        if (!f->heads)
            goto nomem;
        for (size_t i = 0; i < args->n_pipelines; i++)
            f->heads[i] = args->pipeline_heads[i];
        f->n = args->n_pipelines;
    }
    *out = &f->base;
    return 0;
nomem:
    forward_destroy(f ? &f->base : NULL);
    return fg_err_set(err, FG_ENOMEM, "out of memory");
}

static const struct fg_option forward_options[] = {FG_OPT_END};

const struct fg_factory fg_forward_connector_factory = {
    .type = "forward",
    .kind = FG_KIND_CONNECTOR,
    .config_size = 0,
    .options = forward_options,
    .create = forward_create,
};
