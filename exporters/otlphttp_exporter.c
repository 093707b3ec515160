/* Exporter "otlphttp": OTLP profiles over HTTP with libcurl, gzip, retry with backoff. */
#include <stdbool.h>
#include <stdint.h>

#include "fg_component.h"
#include "fg_exporter_helper.h"

enum otlphttp_encoding { ENCODING_PROTO, ENCODING_JSON };
enum otlphttp_compression { COMPRESSION_GZIP, COMPRESSION_NONE };

static const char *const encoding_names[] = {"proto", "json", NULL};
static const char *const compression_names[] = {"gzip", "none", NULL};

struct otlphttp_config {
    char *endpoint;
    char *profiles_endpoint;
    int encoding;
    int compression;
    struct fg_strmap headers;
    struct fg_exporter_settings exporter; /* timeout, retry_on_failure, sending_queue */
};

static const struct fg_option otlphttp_options[] = {
    FG_OPT_STR("endpoint", struct otlphttp_config, endpoint, NULL,
               "base URL; profiles go to <endpoint>/v1development/profiles"),
    FG_OPT_STR("profiles_endpoint", struct otlphttp_config, profiles_endpoint, NULL,
               "full URL for profiles, overriding endpoint"),
    FG_OPT_CHOICE("encoding", struct otlphttp_config, encoding, "proto", encoding_names,
                  "proto or json"),
    FG_OPT_CHOICE("compression", struct otlphttp_config, compression, "gzip", compression_names,
                  "gzip or none"),
    FG_OPT_MAP("headers", struct otlphttp_config, headers, "extra request headers"),
    FG_EXPORTER_SETTINGS_OPTIONS(struct otlphttp_config, exporter),
    FG_OPT_END,
};

static int otlphttp_validate(const void *config, struct fg_err *err)
{
    const struct otlphttp_config *cfg = config;
    if ((!cfg->endpoint || !*cfg->endpoint) && (!cfg->profiles_endpoint || !*cfg->profiles_endpoint))
        return fg_err_set(err, FG_EINVAL, "endpoint: required (or profiles_endpoint)");
    return 0;
}

static int otlphttp_create(const struct fg_create_args *args, struct fg_component **out,
                           struct fg_err *err)
{
    return fg_err_set(err, FG_EUNSUPPORTED, "otlphttp exporter: not built yet");
}

const struct fg_factory fg_otlphttp_exporter_factory = {
    .type = "otlphttp",
    .kind = FG_KIND_EXPORTER,
    .config_size = sizeof(struct otlphttp_config),
    .options = otlphttp_options,
    .validate = otlphttp_validate,
    .create = otlphttp_create,
};
