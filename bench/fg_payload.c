/* Writes the benchmark request for the load generator: <dir>/payload.pb (the protobuf
 * request) and <dir>/payload.grpc (the same as one uncompressed gRPC message). */
#include <stdio.h>

#include "fg_bench_payload.h"
#include "fg_buf.h"
#include "fg_common.h"

static int write_file(const char *dir, const char *name, const void *a, size_t alen,
                      const void *b, size_t blen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return 1;
    }
    int bad = (alen && fwrite(a, 1, alen, f) != alen) || (blen && fwrite(b, 1, blen, f) != blen);
    if (fclose(f) != 0 || bad) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    struct fg_buf req;
    fg_buf_init(&req, 0);
    int rc = fgb_make_request(1, &req);
    if (rc != 0) {
        fprintf(stderr, "cannot build the request: %s\n", fg_strerror(rc));
        return 1;
    }
    uint8_t prefix[5] = {0, (uint8_t)(req.len >> 24), (uint8_t)(req.len >> 16),
                         (uint8_t)(req.len >> 8), (uint8_t)req.len};
    rc = write_file(argv[1], "payload.pb", req.data, req.len, NULL, 0) ||
         write_file(argv[1], "payload.grpc", prefix, 5, req.data, req.len);
    if (rc == 0)
        printf("payload %zu bytes, %d samples\n", req.len, FGB_SAMPLES);
    fg_buf_free(&req);
    return rc;
}
