/* The benchmark's upstream: an OTLP/HTTP endpoint that accepts everything and counts what
 * arrives (requests, bytes on the wire, bytes after gunzip, samples), served on
 * GET /stats. Usage: fg_sink [port]; prints "listening on 127.0.0.1:PORT". */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_buf.h"
#include "fg_gzip.h"
#include "fg_option.h"
#include "fg_otlp_pb.h"

static atomic_ullong n_requests, n_wire, n_plain, n_samples, n_bad;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static uint64_t count_samples(const uint8_t *data, size_t len, int *ok)
{
    pb_request *r =
        opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__unpack(
            NULL, len, data);
    *ok = r != NULL;
    if (!r)
        return 0;
    uint64_t n = 0;
    for (size_t i = 0; i < r->n_resource_profiles; i++)
        for (size_t j = 0; j < r->resource_profiles[i]->n_scope_profiles; j++) {
            pb_scope_profiles *sp = r->resource_profiles[i]->scope_profiles[j];
            for (size_t k = 0; k < sp->n_profiles; k++)
                n += sp->profiles[k]->n_samples;
        }
    opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__free_unpacked(
        r, NULL);
    return n;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    enum MHD_Result r = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    if (strcmp(method, "GET") == 0 && strcmp(url, "/stats") == 0) {
        char text[256];
        int n = snprintf(text, sizeof(text),
                         "requests %llu\nwire_bytes %llu\nplain_bytes %llu\nsamples %llu\n"
                         "bad %llu\n",
                         (unsigned long long)n_requests, (unsigned long long)n_wire,
                         (unsigned long long)n_plain, (unsigned long long)n_samples,
                         (unsigned long long)n_bad);
        return reply(c, 200, "text/plain", text, (size_t)n);
    }
    struct fg_buf *body = *con_cls;
    if (!body) {
        body = fg_calloc(1, sizeof(*body));
        if (!body)
            return MHD_NO;
        fg_buf_init(body, (size_t)256 << 20);
        *con_cls = body;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (fg_buf_append(body, upload_data, *upload_size) != 0)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    struct fg_buf plain;
    struct fg_err err = {{0}};
    fg_buf_init(&plain, (size_t)256 << 20);
    const uint8_t *data = body->data;
    size_t len = body->len;
    int ok = 1;
    if (enc && strcasecmp(enc, "gzip") == 0) {
        ok = fg_gunzip(body->data, body->len, &plain, &err) == 0;
        data = plain.data;
        len = plain.len;
    }
    uint64_t samples = ok ? count_samples(data, len, &ok) : 0;
    atomic_fetch_add(&n_requests, 1);
    atomic_fetch_add(&n_wire, body->len);
    atomic_fetch_add(&n_plain, len);
    atomic_fetch_add(&n_samples, samples);
    if (!ok)
        atomic_fetch_add(&n_bad, 1);
    fg_buf_free(&plain);
    if (!ok)
        return reply(c, 400, "text/plain", "bad request\n", 12);
    return reply(c, 200, "application/x-protobuf", "", 0);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct fg_buf *body = *con_cls;
    if (body) {
        fg_buf_free(body);
        fg_free(body);
        *con_cls = NULL;
    }
}

int main(int argc, char **argv)
{
    int64_t port = 0;
    if (argc > 1 && (fg_parse_int(argv[1], &port) != 0 || port < 0 || port > 65535)) {
        fprintf(stderr, "usage: %s [port]\n", argv[0]);
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO, 0, NULL,
        NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "cannot listen on 127.0.0.1:%lld\n", (long long)port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("listening on 127.0.0.1:%u\n", info ? (unsigned)info->port : 0u);
    fflush(stdout);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    return 0;
}
