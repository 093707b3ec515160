/* libFuzzer target: bytes after the client preface into one HTTP/2 server session of the
 * listener, with an HTTP route and gRPC routes whose handlers run inline. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_grpc.h"
#include "fg_http.h"
#include "fg_http_internal.h"
#include "fg_log.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

static void http_echo(void *ctx, const struct fg_http_request *req,
                      struct fg_http_response *resp)
{
    const char *h = fg_http_header(req, "x-echo");
    fg_buf_append(&resp->body, req->body, req->body_len);
    if (h)
        fg_buf_append_str(&resp->body, h);
    resp->status = req->body_len % 2 ? 200 : 503;
}

static void grpc_echo(void *ctx, const struct fg_grpc_request *req,
                      struct fg_grpc_response *resp)
{
    fg_buf_append(&resp->body, req->message, req->message_len);
    if (fg_grpc_metadata(req, "x-fail")) {
        resp->status = FG_GRPC_UNAVAILABLE;
        snprintf(resp->message, sizeof(resp->message), "busy \xff%%");
        fg_grpc_status_details(FG_GRPC_UNAVAILABLE, "busy", 1000000000LL, &resp->details);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fg_http_server *srv;
    if (!srv) {
        struct fg_err err;
        fg_log_set_level(FG_LOG_OFF);
        if (fg_http_server_new("127.0.0.1:0", &srv, &err) != 0)
            abort();
        struct fg_http_limits l;
        fg_http_limits_default(&l);
        l.max_concurrent_streams = 8;
        l.max_header_list_size = 2048;
        l.max_resets_per_second = 20;
        l.max_streams_per_second = 50;
        struct fg_http_route hr = {"/v1development/profiles", "POST", http_echo, NULL, 4096};
        struct fg_grpc_route g1 = {"/t.S/Echo", grpc_echo, NULL, 4096};
        if (fg_http_server_set_limits(srv, &l) != 0 || fg_http_server_route(srv, &hr) != 0 ||
            fg_grpc_server_route(srv, &g1) != 0)
            abort();
    }
    uint8_t *buf = fg_malloc(size + 24);
    if (!buf)
        return 0;
    memcpy(buf, PREFACE, 24);
    if (size)
        memcpy(buf + 24, data, size);
    fg__h2_feed(srv, buf, size + 24);
    fg_free(buf);
    return 0;
}
