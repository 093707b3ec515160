/* Exporter "debug": logs what passes, one line per batch (more with higher verbosity). */
#include "debug_exporter.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include "fg_alloc.h"
#include "fg_buf.h"
#include "fg_log.h"
#include "fg_model.h"

static const char *const verbosity_names[] = {"basic", "normal", "detailed", NULL};

static const struct fg_option debug_options[] = {
    FG_OPT_CHOICE("verbosity", struct debug_config, verbosity, "basic", verbosity_names,
                  "basic: one line per batch; normal: one per profile; detailed: every sample"),
    FG_OPT_END,
};

#define LINE_LIMIT 1800 /* fits one fg_log record; longer stacks end in "..." */

struct debug_exporter {
    struct fg_component base; /* first: the pipeline sees only this */
    int verbosity;
};

/* A string-table entry, or "?" when the index is out of range (the batch is trusted to be
 * valid, but a log line is not worth a crash). */
static struct fg_bytes str_at(const struct fg_profiles *p, uint32_t idx)
{
    if (idx >= fg_dict_len(p, FG_TABLE_STRING)) {
        struct fg_bytes q = {"?", 1};
        return q;
    }
    return fg_dict_get_string(p, idx);
}

/* Returns non-zero when the line hit its limit. */
static int append_stack(const struct fg_profiles *p, uint32_t stack_idx, struct fg_buf *line)
{
    if (stack_idx >= fg_dict_len(p, FG_TABLE_STACK))
        return 0;
    const struct fg_stack *st = fg_dict_get_stack(p, stack_idx);
    bool first = true;
    for (uint32_t i = 0; i < st->n_locations; i++) {
        uint32_t li = st->locations[i];
        if (li >= fg_dict_len(p, FG_TABLE_LOCATION))
            continue;
        const struct fg_location *loc = fg_dict_get_location(p, li);
        if (loc->n_lines == 0) {
            if (fg_buf_printf(line, "%s0x%" PRIx64, first ? "" : " < ", loc->address) != 0)
                return -1;
            first = false;
        }
        /* Lines are inlined callee first, so leaf→root order is kept. */
        for (uint32_t j = 0; j < loc->n_lines; j++) {
            uint32_t fi = loc->lines[j].function;
            struct fg_bytes name = {"?", 1};
            if (fi < fg_dict_len(p, FG_TABLE_FUNCTION))
                name = str_at(p, fg_dict_get_function(p, fi)->name);
            if (fg_buf_printf(line, "%s%.*s", first ? "" : " < ", (int)name.len,
                              name.len ? name.ptr : "") != 0)
                return -1;
            first = false;
        }
    }
    return 0;
}

static void log_sample(const struct debug_exporter *x, const struct fg_profiles *p, uint32_t n,
                       const struct fg_sample *s)
{
    struct fg_buf line;
    fg_buf_init(&line, LINE_LIMIT);
    int cut = fg_buf_printf(&line, "sample %u: values=[", n);
    for (uint32_t i = 0; i < s->n_values && !cut; i++)
        cut = fg_buf_printf(&line, "%s%" PRId64, i ? "," : "", s->values[i]);
    if (!cut)
        cut = fg_buf_printf(&line, "] timestamps=%u stack: ", s->n_timestamps);
    if (!cut)
        cut = append_stack(p, s->stack, &line);
    /* A full buffer keeps what fitted; mark the cut. */
    fg_log(FG_LOG_INFO, x->base.id, "%.*s%s", (int)line.len, line.data ? (char *)line.data : "",
           cut ? "..." : "");
    fg_buf_free(&line);
}

static void log_profile(const struct debug_exporter *x, const struct fg_profiles *p,
                        const struct fg_profile *prof)
{
    struct fg_bytes type = str_at(p, prof->sample_type.type);
    struct fg_bytes unit = str_at(p, prof->sample_type.unit);
    fg_log(FG_LOG_INFO, x->base.id, "profile: sample type %.*s/%.*s, %u samples, total %lld",
           (int)type.len, type.len ? type.ptr : "", (int)unit.len, unit.len ? unit.ptr : "",
           prof->n_samples, (long long)fg_profile_total(prof));
    if (x->verbosity < DEBUG_DETAILED)
        return;
    for (uint32_t i = 0; i < prof->n_samples; i++)
        log_sample(x, p, i, &prof->samples[i]);
}

static int debug_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    const struct debug_exporter *x =
        (const struct debug_exporter *)((char *)self - offsetof(struct fg_component, consumer));
    unsigned n_profiles = 0;
    for (uint32_t r = 0; r < batch->n_resources; r++)
        for (uint32_t s = 0; s < batch->resources[r].n_scopes; s++)
            n_profiles += batch->resources[r].scopes[s].n_profiles;
    fg_log(FG_LOG_INFO, x->base.id, "batch: %u resources, %u profiles, %llu samples",
           batch->n_resources, n_profiles, (unsigned long long)batch->n_samples);

    if (x->verbosity >= DEBUG_NORMAL && fg_log_enabled(FG_LOG_INFO)) {
        for (uint32_t r = 0; r < batch->n_resources; r++) {
            const struct fg_resource_profiles *rp = &batch->resources[r];
            for (uint32_t s = 0; s < rp->n_scopes; s++) {
                const struct fg_scope_profiles *sp = &rp->scopes[s];
                for (uint32_t i = 0; i < sp->n_profiles; i++)
                    log_profile(x, batch, &sp->profiles[i]);
            }
        }
    }
    fg_profiles_unref(batch);
    return 0;
}

static int debug_start(struct fg_component *c, struct fg_err *err)
{
    return 0;
}

static int debug_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    return 0;
}

static void debug_destroy(struct fg_component *c)
{
    fg_free(c);
}

static const struct fg_component_ops debug_ops = {
    .start = debug_start,
    .shutdown = debug_shutdown,
    .destroy = debug_destroy,
};

static int debug_create(const struct fg_create_args *args, struct fg_component **out,
                        struct fg_err *err)
{
    const struct debug_config *cfg = args->config;
    struct debug_exporter *x = fg_calloc(1, sizeof(*x));
    *out = NULL;
    if (!x)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    x->base.ops = &debug_ops;
    x->base.factory = &fg_debug_exporter_factory;
    snprintf(x->base.id, sizeof(x->base.id), "%s", args->id ? args->id : "debug");
    x->base.consumer.consume = debug_consume;
    x->verbosity = cfg->verbosity;
    *out = &x->base;
    return 0;
}

const struct fg_factory fg_debug_exporter_factory = {
    .type = "debug",
    .kind = FG_KIND_EXPORTER,
    .config_size = sizeof(struct debug_config),
    .options = debug_options,
    .create = debug_create,
};
