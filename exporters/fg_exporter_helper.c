/* Exporter helper: settings tables (the queue and retry loop are built in the exporters
 * issue of the foundation). */
#include "fg_exporter_helper.h"

#include <stddef.h>

const struct fg_option fg_retry_options[] = {
    FG_OPT_BOOLEAN("enabled", struct fg_retry_settings, enabled, "true", "retry at all"),
    FG_OPT_DUR("initial_interval", struct fg_retry_settings, initial_interval_ns, "5s", 0,
               INT64_C(3600000000000), "first wait"),
    FG_OPT_DUR("max_interval", struct fg_retry_settings, max_interval_ns, "30s", 0,
               INT64_C(3600000000000), "longest wait between attempts"),
    FG_OPT_DUR("max_elapsed_time", struct fg_retry_settings, max_elapsed_time_ns, "300s", 0,
               INT64_C(86400000000000), "give up after this long (0 = never)"),
    FG_OPT_END,
};

const struct fg_option fg_queue_options[] = {
    FG_OPT_BOOLEAN("enabled", struct fg_queue_settings, enabled, "true", "queue at all"),
    FG_OPT_INTEGER("num_consumers", struct fg_queue_settings, num_consumers, "10", 1, 1000,
                   "worker threads sending in parallel"),
    FG_OPT_INTEGER("queue_size", struct fg_queue_settings, queue_size, "1000", 1, 10000000,
                   "batches the queue holds"),
    FG_OPT_END,
};
