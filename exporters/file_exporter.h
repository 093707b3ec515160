/* Private to the file exporter and its unit test: the typed config. */
#ifndef FG_FILE_EXPORTER_H
#define FG_FILE_EXPORTER_H

#include "fg_component.h"

enum file_format { FILE_FORMAT_OTLP_PROTO, FILE_FORMAT_OTLP_JSON };

struct file_config {
    char *path;
    int format; /* enum file_format */
};

extern const struct fg_factory fg_file_exporter_factory;

#endif
