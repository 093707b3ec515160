/* gRPC unary methods served by the HTTP listener (fg_http.h) over HTTP/2, without libgrpc:
 * routes by :path, 5-byte message framing, grpc-encoding gzip/identity, grpc-timeout,
 * trailers with grpc-status / grpc-message / grpc-status-details-bin.
 *
 * The server answers by itself, before any handler runs: a non-gRPC content-type on a gRPC
 * path → HTTP 415; an unknown method → UNIMPLEMENTED; a message over the route's limit
 * (before or after decompression) → RESOURCE_EXHAUSTED; broken framing, more than one
 * message, or the compressed flag without grpc-encoding → INTERNAL (as grpc-go does); an
 * unsupported grpc-encoding → UNIMPLEMENTED with grpc-accept-encoding; a passed
 * grpc-timeout → DEADLINE_EXCEEDED (also while the handler still runs: its answer is then
 * dropped). gRPC needs HTTP/2: over HTTP/1.1 a gRPC path is not found. */
#ifndef FG_GRPC_H
#define FG_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "fg_buf.h"
#include "fg_common.h"
#include "fg_http.h"

/* google.rpc.Code */
enum fg_grpc_code {
    FG_GRPC_OK = 0,
    FG_GRPC_CANCELLED = 1,
    FG_GRPC_UNKNOWN = 2,
    FG_GRPC_INVALID_ARGUMENT = 3,
    FG_GRPC_DEADLINE_EXCEEDED = 4,
    FG_GRPC_NOT_FOUND = 5,
    FG_GRPC_ALREADY_EXISTS = 6,
    FG_GRPC_PERMISSION_DENIED = 7,
    FG_GRPC_RESOURCE_EXHAUSTED = 8,
    FG_GRPC_FAILED_PRECONDITION = 9,
    FG_GRPC_ABORTED = 10,
    FG_GRPC_OUT_OF_RANGE = 11,
    FG_GRPC_UNIMPLEMENTED = 12,
    FG_GRPC_INTERNAL = 13,
    FG_GRPC_UNAVAILABLE = 14,
    FG_GRPC_DATA_LOSS = 15,
    FG_GRPC_UNAUTHENTICATED = 16,
};

struct fg_grpc_request {
    const char *path;         /* "/package.Service/Method" */
    const uint8_t *message;   /* the request message: de-framed and decompressed */
    size_t message_len;
    int64_t deadline_ns;      /* CLOCK_MONOTONIC from grpc-timeout; 0 = none */
    const void *md;           /* for fg_grpc_metadata */
};

/* A request header (custom metadata or a standard one such as "content-type") by name,
 * case-insensitive, or NULL. "-bin" values are returned as sent (base64). Valid during the
 * handler. */
const char *fg_grpc_metadata(const struct fg_grpc_request *req, const char *name);

struct fg_grpc_response {
    int status;           /* enum fg_grpc_code; default FG_GRPC_OK */
    char message[256];    /* grpc-message (sent percent-encoded); "" = none */
    struct fg_buf body;   /* the response message when OK (may stay empty); freed by the server */
    /* Serialized google.rpc.Status sent as grpc-status-details-bin when non-empty (see
     * fg_grpc_status_details); freed by the server. */
    struct fg_buf details;
};

/* Runs on a worker thread of the listener; several may run at once. Fills resp. */
typedef void (*fg_grpc_handler)(void *ctx, const struct fg_grpc_request *req,
                                struct fg_grpc_response *resp);

struct fg_grpc_route {
    const char *path;    /* exact :path, "/package.Service/Method" */
    fg_grpc_handler handler;
    void *ctx;
    size_t max_message;  /* limit on the message, compressed and decompressed; 0 = 4 MiB */
};

/* The route is copied; register before start. A path may also be registered as an HTTP
 * route (fg_http_server_route): requests with content-type application/grpc* go to the
 * gRPC route, others to the HTTP route (e.g. Connect unary next to gRPC). */
int fg_grpc_server_route(struct fg_http_server *s, const struct fg_grpc_route *route);

/* Appends a serialized google.rpc.Status{code, message, details} to out; when
 * retry_delay_ns > 0 the details carry a google.rpc.RetryInfo with that delay (what
 * clients honour for UNAVAILABLE / RESOURCE_EXHAUSTED). */
int fg_grpc_status_details(int code, const char *message, int64_t retry_delay_ns,
                           struct fg_buf *out);

/* Helpers shared with the gRPC exporter and the tests. */

/* Parses a grpc-timeout value ("1-8 digits" + H/M/S/m/u/n) into nanoseconds (saturated).
 * Returns 0 or FG_EINVAL. */
int fg_grpc_parse_timeout(const char *value, int64_t *ns);
/* Percent-encodes a grpc-message (RFC: bytes outside 0x20..0x7e and '%' become %XX),
 * NUL-terminated, cut to outsz. */
void fg_grpc_percent_encode(const char *in, char *out, size_t outsz);
/* The reverse, in place semantics into out (outsz includes the NUL). */
void fg_grpc_percent_decode(const char *in, char *out, size_t outsz);
const char *fg_grpc_code_name(int code);

#endif
