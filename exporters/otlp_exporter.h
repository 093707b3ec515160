/* Private to the otlp (OTLP/gRPC) exporter and its unit test: the typed config and the
 * gRPC client helpers (message framing, grpc-timeout, status trailers, RetryInfo). */
#ifndef FG_OTLP_EXPORTER_H
#define FG_OTLP_EXPORTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_buf.h"
#include "fg_common.h"
#include "fg_component.h"
#include "fg_exporter_helper.h"
#include "fg_option.h"
#include "fg_auth.h"
#include "fg_tls_client.h"

enum otlp_compression { OTLP_COMPRESSION_GZIP, OTLP_COMPRESSION_NONE };

struct otlp_config {
    char *endpoint; /* host:port, http://host:port (h2c) or https://host:port (TLS, ALPN) */
    /* tls.insecure: plaintext HTTP/2 (h2c, prior knowledge) for a scheme-less endpoint */
    struct fg_tls_client_config tls;
    int compression; /* enum otlp_compression */
    struct fg_strmap headers; /* gRPC metadata */
    bool include_original_payload; /* each profile's pprof in original_payload */
    struct fg_exporter_settings exporter; /* timeout, retry_on_failure, sending_queue */
    struct fg_auth_config auth; /* client credentials from an authenticator extension */
};

extern const struct fg_factory fg_otlp_exporter_factory;

/* gRPC status codes (WIRE.md §3.2). */
enum {
    FG_GRPC_OK = 0,
    FG_GRPC_CANCELLED = 1,
    FG_GRPC_UNKNOWN = 2,
    FG_GRPC_INVALID_ARGUMENT = 3,
    FG_GRPC_DEADLINE_EXCEEDED = 4,
    FG_GRPC_RESOURCE_EXHAUSTED = 8,
    FG_GRPC_ABORTED = 10,
    FG_GRPC_OUT_OF_RANGE = 11,
    FG_GRPC_UNIMPLEMENTED = 12,
    FG_GRPC_INTERNAL = 13,
    FG_GRPC_UNAVAILABLE = 14,
    FG_GRPC_DATA_LOSS = 15,
    FG_GRPC_UNAUTHENTICATED = 16,
};

/* What the response headers and trailers said, filled line by line. */
struct fg__grpcc_result {
    bool have_status;
    int status;           /* grpc-status */
    char message[256];    /* grpc-message, percent-decoded; else google.rpc.Status.message */
    bool have_retry_info; /* grpc-status-details-bin carried google.rpc.RetryInfo */
    int64_t retry_delay_ns;
    char encoding[16];    /* grpc-encoding of the response message ("" = identity) */
    char content_type[64];
};

/* The 5-byte message prefix: compressed flag, big-endian length. */
void fg__grpcc_frame_prefix(uint8_t out[5], bool compressed, uint32_t len);
/* Extracts the one message of a unary response body into msg (appended; decompressed when
 * the flag says so and encoding is "gzip"). An empty body gives an empty msg. FG_EINVAL on
 * bad framing or an unknown encoding, FG_ETOOBIG past msg->limit. */
int fg__grpcc_unframe(const uint8_t *body, size_t len, const char *encoding, struct fg_buf *msg,
                      struct fg_err *err);
/* grpc-timeout value for ns (at most 8 digits and a unit, rounded up). */
void fg__grpcc_timeout_value(int64_t ns, char *out, size_t size);
/* Feeds one header or trailer line ("name: value\r\n", as libcurl's header callback gives
 * it); unrelated lines are ignored. */
void fg__grpcc_header_line(struct fg__grpcc_result *r, const char *line, size_t len);
/* Decodes grpc-status-details-bin (base64, padded or not) as google.rpc.Status and looks for
 * a google.rpc.RetryInfo detail. Returns 0 or FG_EINVAL; *retry_delay_ns = -1 when there is
 * no RetryInfo. msg (may be NULL) receives Status.message. */
int fg__grpcc_status_details(const char *b64, size_t len, int64_t *retry_delay_ns, char *msg,
                             size_t msgsize);
/* OTLP retry policy for a gRPC status (WIRE.md §3.2). */
bool fg__grpcc_retryable(int status, bool have_retry_info);
/* gRPC status for a non-200 HTTP answer (gRPC's "HTTP to gRPC status code mapping"). */
int fg__grpcc_status_from_http(long http_status);
const char *fg__grpcc_status_name(int status);

#endif
