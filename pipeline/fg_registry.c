/* The component registry: every factory compiled into flamegate, in one static table.
 * Adding a component = its file + one line here. */
#include "fg_component.h"

#include <string.h>

extern const struct fg_factory fg_otlp_receiver_factory;
extern const struct fg_factory fg_pyroscope_receiver_factory;
extern const struct fg_factory fg_samples_receiver_factory;
extern const struct fg_factory fg_batch_processor_factory;
extern const struct fg_factory fg_attributes_processor_factory;
extern const struct fg_factory fg_resource_processor_factory;
extern const struct fg_factory fg_relabel_processor_factory;
extern const struct fg_factory fg_filter_processor_factory;
extern const struct fg_factory fg_resourcedetection_processor_factory;
extern const struct fg_factory fg_sampling_processor_factory;
extern const struct fg_factory fg_aggregate_processor_factory;
extern const struct fg_factory fg_otlphttp_exporter_factory;
extern const struct fg_factory fg_otlp_exporter_factory;
extern const struct fg_factory fg_pyroscope_exporter_factory;
extern const struct fg_factory fg_file_exporter_factory;
extern const struct fg_factory fg_debug_exporter_factory;
extern const struct fg_factory fg_memory_limiter_processor_factory;
extern const struct fg_factory fg_file_storage_factory;
extern const struct fg_factory fg_liveview_factory;
extern const struct fg_factory fg_bearertokenauth_factory;
extern const struct fg_factory fg_basicauth_factory;
extern const struct fg_factory fg_forward_connector_factory;
extern const struct fg_factory fg_routing_connector_factory;
extern const struct fg_factory fg_health_check_extension_factory;
extern const struct fg_factory fg_pprof_extension_factory;

static const struct fg_factory *const registry[] = {
    &fg_otlp_receiver_factory,
    &fg_pyroscope_receiver_factory,
    &fg_samples_receiver_factory,
    &fg_batch_processor_factory,
    &fg_attributes_processor_factory,
    &fg_resource_processor_factory,
    &fg_relabel_processor_factory,
    &fg_filter_processor_factory,
    &fg_resourcedetection_processor_factory,
    &fg_sampling_processor_factory,
    &fg_aggregate_processor_factory,
    &fg_otlphttp_exporter_factory,
    &fg_otlp_exporter_factory,
    &fg_pyroscope_exporter_factory,
    &fg_file_exporter_factory,
    &fg_debug_exporter_factory,
    &fg_memory_limiter_processor_factory,
    &fg_file_storage_factory,
    &fg_liveview_factory,
    &fg_bearertokenauth_factory,
    &fg_basicauth_factory,
    &fg_forward_connector_factory,
    &fg_routing_connector_factory,
    &fg_health_check_extension_factory,
    &fg_pprof_extension_factory,
};

static _Thread_local const struct fg_create_args *current_args;

const struct fg_create_args *fg_create_args_current(void)
{
    return current_args;
}

void fg_create_args_set_current(const struct fg_create_args *args)
{
    current_args = args;
}

const struct fg_factory *fg_factory_find(enum fg_kind kind, const char *type)
{
    for (size_t i = 0; i < FG_ARRAY_LEN(registry); i++)
        if (registry[i]->kind == kind && strcmp(registry[i]->type, type) == 0)
            return registry[i];
    return NULL;
}

const struct fg_factory *const *fg_factories(size_t *count)
{
    *count = FG_ARRAY_LEN(registry);
    return registry;
}

const char *fg_kind_name(enum fg_kind kind)
{
    static const char *const names[] = {"receiver", "processor", "exporter", "extension",
                                         "connector"};
    return (unsigned)kind < FG_ARRAY_LEN(names) ? names[kind] : "component";
}
