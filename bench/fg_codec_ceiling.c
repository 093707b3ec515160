/* The codec ceiling: how many samples per second one core can decode and re-encode, with
 * plain protobuf-c (unpack + pack) and with flamegate's codec (wire → model → wire, the
 * work every forwarded request costs), and the gzip the exporters add on top. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fg_bench_payload.h"
#include "fg_gzip.h"
#include "fg_otlp.h"
#include "fg_otlp_pb.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum mode { PROTOBUF_C, FLAMEGATE, FLAMEGATE_GZIP };

/* One decode + encode of req; returns 0 or an FG_E code. */
static int once(enum mode m, const struct fg_buf *req, struct fg_buf *out)
{
    out->len = 0;
    if (m == PROTOBUF_C) {
        pb_request *r =
            opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__unpack(
                NULL, req->len, req->data);
        if (!r)
            return FG_EINVAL;
        size_t n =
            opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__get_packed_size(
                r);
        int rc = fg_buf_reserve(out, n);
        if (rc == 0)
            out->len =
                opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__pack(
                    r, out->data);
        opentelemetry__proto__collector__profiles__v1development__export_profiles_service_request__free_unpacked(
            r, NULL);
        return rc;
    }
    struct fg_profiles *p = NULL;
    struct fg_err err = {{0}};
    int rc = fg_otlp_decode_proto(req->data, req->len, &p, &err);
    if (rc != 0)
        return rc;
    struct fg_buf plain;
    fg_buf_init(&plain, 0);
    rc = fg_otlp_encode_proto(p, m == FLAMEGATE ? out : &plain);
    if (rc == 0 && m == FLAMEGATE_GZIP)
        rc = fg_gzip(plain.data, plain.len, 6, out);
    fg_buf_free(&plain);
    fg_profiles_unref(p);
    return rc;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
    if (!(seconds > 0 && seconds <= 60)) {
        fprintf(stderr, "usage: %s [seconds per mode, <= 60]\n", argv[0]);
        return 2;
    }
    struct fg_buf req, out;
    fg_buf_init(&req, 0);
    fg_buf_init(&out, 0);
    int rc = fgb_make_request(1, &req);
    if (rc != 0) {
        fprintf(stderr, "cannot build the request: %s\n", fg_strerror(rc));
        return 1;
    }
    static const char *const names[] = {"protobuf-c unpack+pack", "flamegate decode+encode",
                                        "flamegate decode+encode+gzip"};
    printf("payload %zu bytes, %d samples\n", req.len, FGB_SAMPLES);
    /* The machine is shared: the best 0.25 s window says what one core can do, the mean
     * what it did. */
    for (int m = PROTOBUF_C; m <= FLAMEGATE_GZIP; m++) {
        double t0 = now_s(), t = 0, best = 0;
        long iters = 0;
        do {
            double w0 = now_s(), w;
            long n = 0;
            do {
                rc = once((enum mode)m, &req, &out);
                if (rc != 0) {
                    fprintf(stderr, "%s: %s\n", names[m], fg_strerror(rc));
                    return 1;
                }
                n++;
                w = now_s() - w0;
            } while (w < 0.25);
            if (n / w > best)
                best = n / w;
            iters += n;
            t = now_s() - t0;
        } while (t < seconds);
        printf("ceiling %-30s %8.0f requests/s %10.0f samples/s (mean %.0f; out %zu bytes)\n",
               names[m], best, best * FGB_SAMPLES, iters * (double)FGB_SAMPLES / t, out.len);
    }
    fg_buf_free(&req);
    fg_buf_free(&out);
    return 0;
}
