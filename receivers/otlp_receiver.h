/* Private to the otlp receiver and its tests: the typed config its option table fills. */
#ifndef FG_OTLP_RECEIVER_H
#define FG_OTLP_RECEIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "fg_auth.h"
#include "fg_tls.h"

/* Abuse limits every listener has (server/fg_http.h struct fg_http_limits). */
struct otlp_limits {
    int64_t max_connections;
    int64_t max_concurrent_streams;
    uint64_t max_header_list_size;
    int64_t max_streams_per_second;
    int64_t max_resets_per_second;
    int64_t workers;
};

struct otlp_http_config {
    char *endpoint;
    uint64_t max_request_body_size;
    int64_t idle_timeout; /* ns */
    struct otlp_limits limits;
    bool tls_enabled;
    struct fg_tls_server_config tls;
    struct fg_auth_config auth;
};

/* Named as in the Collector's configgrpc (keepalive.server_parameters). */
struct otlp_grpc_server_params {
    int64_t max_connection_idle;      /* ns */
    int64_t max_connection_age;       /* ns, 0 = unlimited */
    int64_t max_connection_age_grace; /* ns */
};

struct otlp_grpc_keepalive {
    struct otlp_grpc_server_params server_parameters;
};

struct otlp_grpc_config {
    char *endpoint;
    int64_t max_recv_msg_size_mib;
    struct otlp_grpc_keepalive keepalive;
    struct otlp_limits limits;
    bool tls_enabled;
    struct fg_tls_server_config tls;
    struct fg_auth_config auth;
};

struct otlp_protocols {
    bool http_enabled;
    struct otlp_http_config http;
    bool grpc_enabled;
    struct otlp_grpc_config grpc;
};

struct otlp_receiver_config {
    struct otlp_protocols protocols;
};

#endif
