/* Processor "attributes": the Collector's attribute actions on profile attributes (as the
 * Collector does) and, with apply_to: [sample], on sample attributes, limited to profiles
 * that pass the include/exclude match sets. */
#include <stddef.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_attr_actions.h"
#include "fg_component.h"
#include "fg_model.h"

struct attributes_config {
    struct fg_structlist actions;
    struct fg_match_cfg include;
    struct fg_match_cfg exclude;
    struct fg_strlist apply_to;
};

static int check_apply_to(const void *value, struct fg_err *err)
{
    const char *s = *(const char *const *)value;
    if (strcmp(s, "profile") == 0 || strcmp(s, "sample") == 0)
        return 0;
    return fg_err_set(err, FG_EINVAL, "unknown target \"%s\" (valid: profile, sample)", s);
}

static const struct fg_option attributes_options[] = {
    FG_OPT_ATTR_ACTIONS("actions", struct attributes_config, actions,
                        "actions run in order on each selected attribute set"),
    FG_OPT_BLOCK("include", struct attributes_config, include, fg_match_options,
                 "only profiles matching this set are changed"),
    FG_OPT_BLOCK("exclude", struct attributes_config, exclude, fg_match_options,
                 "profiles matching this set are left alone"),
    FG_OPT_LIST_CHECK("apply_to", struct attributes_config, apply_to, check_apply_to,
                      "attribute sets edited: profile (default), sample"),
    FG_OPT_END,
};

static int attributes_validate(const void *config, struct fg_err *err)
{
    const struct attributes_config *cfg = config;
    if (!cfg->actions.n)
        return fg_err_set(err, FG_EINVAL, "actions: at least one action is needed");
    return fg_match_validate(&cfg->include, "include", err) ||
                   fg_match_validate(&cfg->exclude, "exclude", err)
               ? FG_EINVAL
               : 0;
}

struct attributes_processor {
    struct fg_component base;
    struct fg_consumer *next;
    struct fg_attr_actions *actions;
    struct fg_match *include, *exclude;
    bool on_profile, on_sample;
};

static bool selected(const struct attributes_processor *a, const struct fg_profiles *p,
                     const struct fg_resource *res, const struct fg_profile *prof)
{
    if (a->include && !fg_match_profile(a->include, p, res, prof))
        return false;
    if (a->exclude && fg_match_profile(a->exclude, p, res, prof))
        return false;
    return true;
}

static bool any_selected(const struct attributes_processor *a, const struct fg_profiles *p)
{
    for (uint32_t r = 0; r < p->n_resources; r++) {
        const struct fg_resource_profiles *rp = &p->resources[r];
        for (uint32_t s = 0; s < rp->n_scopes; s++)
            for (uint32_t i = 0; i < rp->scopes[s].n_profiles; i++)
                if (selected(a, p, &rp->resource, &rp->scopes[s].profiles[i]))
                    return true;
    }
    return false;
}

/* Runs the actions on one dictionary attribute list of out, replacing it. */
static int edit(const struct attributes_processor *a, struct fg_profiles *out,
                struct fg_attr_list *l, const uint32_t **idx, uint32_t *n)
{
    int rc;
    if ((rc = fg_attr_list_from_dict(l, out, *idx, *n)) != 0 ||
        (rc = fg_attr_actions_apply(a->actions, l)) != 0)
        return rc;
    return fg_attr_list_to_dict(l, out, idx, n);
}

/* Edits the selected profiles' attributes and, with apply_to sample, their samples'. */
static int edit_profiles(const void *ctx, struct fg_profiles *out, struct fg_attr_list *l)
{
    const struct attributes_processor *a = ctx;
    struct fg_idx_memo memo = {0};
    int rc = 0;
    for (uint32_t r = 0; r < out->n_resources; r++) {
        struct fg_resource_profiles *rp = &out->resources[r];
        for (uint32_t s = 0; s < rp->n_scopes; s++) {
            for (uint32_t i = 0; i < rp->scopes[s].n_profiles; i++) {
                struct fg_profile *prof = &rp->scopes[s].profiles[i];
                if (!selected(a, out, &rp->resource, prof))
                    continue;
                if (a->on_profile && (rc = edit(a, out, l, &prof->attrs, &prof->n_attrs)) != 0)
                    goto out;
                for (uint32_t k = 0; a->on_sample && k < prof->n_samples; k++) {
                    struct fg_sample *smp = &prof->samples[k];
                    const struct fg_idx_memo_entry *e =
                        fg_idx_memo_get(&memo, smp->attrs, smp->n_attrs);
                    if (!e) {
                        const uint32_t *key = smp->attrs;
                        uint32_t n_key = smp->n_attrs;
                        if ((rc = edit(a, out, l, &smp->attrs, &smp->n_attrs)) != 0 ||
                            (rc = fg_idx_memo_put(&memo, key, n_key, true, smp->attrs,
                                                  smp->n_attrs)) != 0)
                            goto out;
                        continue;
                    }
                    smp->attrs = e->out;
                    smp->n_attrs = e->n_out;
                }
            }
        }
    }
out:
    fg_idx_memo_free(&memo);
    return rc;
}

static int process(const struct attributes_processor *a, const struct fg_profiles *in,
                   struct fg_profiles **outp, struct fg_err *err)
{
    *outp = NULL;
    if (!any_selected(a, in))
        return 0;
    return fg_proc_edit_copy(in, edit_profiles, a, outp, err);
}

static int attributes_consume(struct fg_consumer *self, struct fg_profiles *batch,
                              struct fg_err *err)
{
    struct attributes_processor *a =
        (struct attributes_processor *)((char *)self - offsetof(struct fg_component, consumer));
    struct fg_profiles *out = NULL;
    int rc = process(a, batch, &out, err);
    return fg_proc_finish(a->next, a->base.id, batch, out, rc, err);
}

static void attributes_destroy(struct fg_component *c)
{
    struct attributes_processor *a = (struct attributes_processor *)c;
    if (!a)
        return;
    fg_attr_actions_free(a->actions);
    fg_match_free(a->include);
    fg_match_free(a->exclude);
    fg_free(a);
}

static const struct fg_component_ops attributes_ops = {
    .start = fg_proc_start_nothing,
    .shutdown = fg_proc_shutdown_nothing,
    .destroy = attributes_destroy,
};

static int attributes_create(const struct fg_create_args *args, struct fg_component **out,
                             struct fg_err *err)
{
    const struct attributes_config *cfg = args->config;
    struct attributes_processor *a = fg_calloc(1, sizeof(*a));
    if (!a)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    a->base.ops = &attributes_ops;
    a->base.consumer.consume = attributes_consume;
    a->next = args->next;
    int rc;
    if ((rc = fg_attr_actions_compile(&cfg->actions, &a->actions, err)) != 0 ||
        (rc = fg_match_compile(&cfg->include, &a->include, err)) != 0 ||
        (rc = fg_match_compile(&cfg->exclude, &a->exclude, err)) != 0) {
        attributes_destroy(&a->base);
        return rc;
    }
    for (size_t i = 0; i < cfg->apply_to.n; i++) {
        if (strcmp(cfg->apply_to.items[i], "sample") == 0)
            a->on_sample = true;
        else
            a->on_profile = true;
    }
    if (!cfg->apply_to.n)
        a->on_profile = true;
    *out = &a->base;
    return 0;
}

const struct fg_factory fg_attributes_processor_factory = {
    .type = "attributes",
    .kind = FG_KIND_PROCESSOR,
    .config_size = sizeof(struct attributes_config),
    .options = attributes_options,
    .validate = attributes_validate,
    .create = attributes_create,
};
