/* Receiver "otlp": OTLP profiles over HTTP (POST /v1development/profiles, protobuf and
 * JSON). gRPC arrives with the HTTP/2 issue. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_component.h"

struct otlp_http_config {
    char *endpoint;
    uint64_t max_request_body_size;
};

struct otlp_protocols {
    bool http_enabled;
    struct otlp_http_config http;
};

struct otlp_receiver_config {
    struct otlp_protocols protocols;
};

static const struct fg_option http_options[] = {
    FG_OPT_STR("endpoint", struct otlp_http_config, endpoint, "127.0.0.1:4318",
               "host:port to listen on (port 0 picks a free port)"),
    FG_OPT_BYTES("max_request_body_size", struct otlp_http_config, max_request_body_size,
                 "20MiB", 1, (int64_t)1 << 30, "limit on the decompressed request body"),
    FG_OPT_END,
};

static const struct fg_option protocol_options[] = {
    FG_OPT_BLOCK_PRESENT("http", struct otlp_protocols, http, http_options, http_enabled,
                         "OTLP/HTTP listener"),
    FG_OPT_END,
};

static const struct fg_option otlp_options[] = {
    FG_OPT_BLOCK("protocols", struct otlp_receiver_config, protocols, protocol_options,
                 "which protocols to serve"),
    FG_OPT_END,
};

static int otlp_validate(const void *config, struct fg_err *err)
{
    const struct otlp_receiver_config *cfg = config;
    if (!cfg->protocols.http_enabled)
        return fg_err_set(err, FG_EINVAL, "protocols: at least one protocol must be enabled (http)");
    return 0;
}

static int otlp_create(const struct fg_create_args *args, struct fg_component **out,
                       struct fg_err *err)
{
    return fg_err_set(err, FG_EUNSUPPORTED, "otlp receiver: not built yet");
}

const struct fg_factory fg_otlp_receiver_factory = {
    .type = "otlp",
    .kind = FG_KIND_RECEIVER,
    .config_size = sizeof(struct otlp_receiver_config),
    .options = otlp_options,
    .validate = otlp_validate,
    .create = otlp_create,
};
