/* Exporter "debug": logs what passes, one line per batch (more with higher verbosity). */
#include <stdint.h>

#include "fg_component.h"

static const char *const verbosity_names[] = {"basic", "normal", "detailed", NULL};

struct debug_config {
    int verbosity;
};

static const struct fg_option debug_options[] = {
    FG_OPT_CHOICE("verbosity", struct debug_config, verbosity, "basic", verbosity_names,
                  "basic: one line per batch; normal: one per profile; detailed: every sample"),
    FG_OPT_END,
};

static int debug_create(const struct fg_create_args *args, struct fg_component **out,
                        struct fg_err *err)
{
    return fg_err_set(err, FG_EUNSUPPORTED, "debug exporter: not built yet");
}

const struct fg_factory fg_debug_exporter_factory = {
    .type = "debug",
    .kind = FG_KIND_EXPORTER,
    .config_size = sizeof(struct debug_config),
    .options = debug_options,
    .create = debug_create,
};
