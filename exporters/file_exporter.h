/* Private to the file exporter and its unit test: the typed config. */
#ifndef FG_FILE_EXPORTER_H
#define FG_FILE_EXPORTER_H

#include "fg_component.h"

/* otlp_*: one request per batch (profiles-<unix_ns>-<seq>.pb|.json); pprof: one gzip pprof
 * per pprof group (pprof-<service>-<type>-<unix_ns>-<seq>.pb.gz); folded: one Brendan Gregg
 * folded-stack text per profile (folded-<service>-<type>-<unix_ns>-<seq>.folded). */
enum file_format { FILE_FORMAT_OTLP_PROTO, FILE_FORMAT_OTLP_JSON, FILE_FORMAT_PPROF,
                   FILE_FORMAT_FOLDED };

struct file_config {
    char *path;
    int format; /* enum file_format */
};

extern const struct fg_factory fg_file_exporter_factory;

#endif
