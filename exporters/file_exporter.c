/* Exporter "file": one complete OTLP request per batch, written under a temporary name and
 * renamed into place so readers never see half a file. */
#include <stdint.h>

#include "fg_component.h"

static const char *const format_names[] = {"otlp_proto", "otlp_json", NULL};

struct file_config {
    char *path;
    int format;
};

static const struct fg_option file_options[] = {
    FG_OPT_STR("path", struct file_config, path, "./flamegate-data",
               "directory to write into (created if missing)"),
    FG_OPT_CHOICE("format", struct file_config, format, "otlp_proto", format_names,
                  "otlp_proto or otlp_json"),
    FG_OPT_END,
};

static int file_create(const struct fg_create_args *args, struct fg_component **out,
                       struct fg_err *err)
{
    return fg_err_set(err, FG_EUNSUPPORTED, "file exporter: not built yet");
}

const struct fg_factory fg_file_exporter_factory = {
    .type = "file",
    .kind = FG_KIND_EXPORTER,
    .config_size = sizeof(struct file_config),
    .options = file_options,
    .create = file_create,
};
