/* Processor "resource": the Collector's attribute actions on resource attributes. Resource
 * attributes live outside the dictionary, so the copy only gets new attribute arrays. */
#include <stddef.h>

#include "fg_alloc.h"
#include "fg_attr_actions.h"
#include "fg_component.h"
#include "fg_model.h"

struct resource_config {
    struct fg_structlist attributes;
};

static const struct fg_option resource_options[] = {
    FG_OPT_ATTR_ACTIONS("attributes", struct resource_config, attributes,
                        "actions run in order on each resource's attributes"),
    FG_OPT_END,
};

static int resource_validate(const void *config, struct fg_err *err)
{
    const struct resource_config *cfg = config;
    if (!cfg->attributes.n)
        return fg_err_set(err, FG_EINVAL, "attributes: at least one action is needed");
    return 0;
}

struct resource_processor {
    struct fg_component base;
    struct fg_consumer *next;
    struct fg_attr_actions *actions;
};

static int edit_resources(const void *ctx, struct fg_profiles *out, struct fg_attr_list *l)
{
    const struct resource_processor *rp = ctx;
    for (uint32_t r = 0; r < out->n_resources; r++) {
        struct fg_resource *res = &out->resources[r].resource;
        int rc;
        if ((rc = fg_attr_list_from_kv(l, res->attrs, res->n_attrs)) != 0 ||
            (rc = fg_attr_actions_apply(rp->actions, l)) != 0 ||
            (rc = fg_attr_list_to_kv(l, out, &res->attrs, &res->n_attrs)) != 0)
            return rc;
    }
    return 0;
}

static int process(const struct resource_processor *rp, const struct fg_profiles *in,
                   struct fg_profiles **outp, struct fg_err *err)
{
    *outp = NULL;
    if (!in->n_resources)
        return 0;
    return fg_proc_edit_copy(in, edit_resources, rp, outp, err);
}

static int resource_consume(struct fg_consumer *self, struct fg_profiles *batch,
                            struct fg_err *err)
{
    struct resource_processor *rp =
        (struct resource_processor *)((char *)self - offsetof(struct fg_component, consumer));
    struct fg_profiles *out = NULL;
    int rc = process(rp, batch, &out, err);
    return fg_proc_finish(rp->next, rp->base.id, batch, out, rc, err);
}

static void resource_destroy(struct fg_component *c)
{
    struct resource_processor *rp = (struct resource_processor *)c;
    if (!rp)
        return;
    fg_attr_actions_free(rp->actions);
    fg_free(rp);
}

static const struct fg_component_ops resource_ops = {
    .start = fg_proc_start_nothing,
    .shutdown = fg_proc_shutdown_nothing,
    .destroy = resource_destroy,
};

static int resource_create(const struct fg_create_args *args, struct fg_component **out,
                           struct fg_err *err)
{
    const struct resource_config *cfg = args->config;
    struct resource_processor *rp = fg_calloc(1, sizeof(*rp));
    if (!rp)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    rp->base.ops = &resource_ops;
    rp->base.consumer.consume = resource_consume;
    rp->next = args->next;
    int rc = fg_attr_actions_compile(&cfg->attributes, &rp->actions, err);
    if (rc) {
        resource_destroy(&rp->base);
        return rc;
    }
    *out = &rp->base;
    return 0;
}

const struct fg_factory fg_resource_processor_factory = {
    .type = "resource",
    .kind = FG_KIND_PROCESSOR,
    .config_size = sizeof(struct resource_config),
    .options = resource_options,
    .validate = resource_validate,
    .create = resource_create,
};
