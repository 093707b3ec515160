/* Private to the otlp receiver and its tests: the typed config its option table fills. */
#ifndef FG_OTLP_RECEIVER_H
#define FG_OTLP_RECEIVER_H

#include <stdbool.h>
#include <stdint.h>

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

#endif
