/* libFuzzer target: what an upstream gRPC server sends the otlp exporter — header and
 * trailer lines (grpc-status, percent-encoded grpc-message, base64 grpc-status-details-bin
 * with RetryInfo) and the framed response message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "otlp_exporter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Every line goes through the header parser, as libcurl would hand it over. */
    struct fg__grpcc_result r;
    memset(&r, 0, sizeof(r));
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || data[i] == '\n') {
            fg__grpcc_header_line(&r, (const char *)data + start, i - start);
            start = i + 1;
        }
    }
    if (r.have_retry_info && r.retry_delay_ns < 0)
        abort();
    if (memchr(r.message, '\0', sizeof(r.message)) == NULL)
        abort();

    /* The whole input as a details header value and as a response body. */
    int64_t delay;
    char msg[64];
    if (fg__grpcc_status_details((const char *)data, size, &delay, msg, sizeof(msg)) == 0 &&
        delay < -1)
        abort();
    struct fg_buf out;
    struct fg_err err;
    fg_buf_init(&out, 1 << 20);
    if (fg__grpcc_unframe(data, size, size > 0 && data[0] == 1 ? "gzip" : "", &out, &err) == 0 &&
        out.len > out.limit)
        abort();
    fg_buf_free(&out);
    return 0;
}
