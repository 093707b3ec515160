/* Processor "batch": merges incoming batches through the dictionary merge and sends them on
 * when send_batch_size samples are pending or timeout has passed since the first one. */
#include <stdint.h>

#include "fg_component.h"

struct batch_config {
    int64_t timeout_ns;
    int64_t send_batch_size;
    int64_t send_batch_max_size;
};

static const struct fg_option batch_options[] = {
    FG_OPT_DUR("timeout", struct batch_config, timeout_ns, "200ms", 0, INT64_C(3600000000000),
               "send a partial batch after this long"),
    FG_OPT_INTEGER("send_batch_size", struct batch_config, send_batch_size, "8192", 1, INT32_MAX,
                   "samples that trigger a send"),
    FG_OPT_INTEGER("send_batch_max_size", struct batch_config, send_batch_max_size, "0", 0,
                   INT32_MAX, "upper bound on samples per batch sent (0 = no bound)"),
    FG_OPT_END,
};

static int batch_validate(const void *config, struct fg_err *err)
{
    const struct batch_config *cfg = config;
    if (cfg->send_batch_max_size && cfg->send_batch_max_size < cfg->send_batch_size)
        return fg_err_set(err, FG_EINVAL,
                          "send_batch_max_size: must be 0 or at least send_batch_size");
    return 0;
}

static int batch_create(const struct fg_create_args *args, struct fg_component **out,
                        struct fg_err *err)
{
    return fg_err_set(err, FG_EUNSUPPORTED, "batch processor: not built yet");
}

const struct fg_factory fg_batch_processor_factory = {
    .type = "batch",
    .kind = FG_KIND_PROCESSOR,
    .config_size = sizeof(struct batch_config),
    .options = batch_options,
    .validate = batch_validate,
    .create = batch_create,
};
