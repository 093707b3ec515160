/* Test helper (not installed): drives the pprof converter from the command line so the
 * integration tests can hand its output to `go tool pprof`, and times the decoder.
 *   fg-pprof-tool roundtrip IN OUT    pprof → model → pprof
 *   fg-pprof-tool via-otlp IN OUT     pprof → model → OTLP protobuf → model → pprof
 *   fg-pprof-tool bench IN [SECONDS]  decode IN repeatedly, then encode it repeatedly (gzip);
 *                                     print MB/s (of IN's bytes) and profiles/s per CPU second
 * A model that gives several pprofs writes OUT, OUT.1, OUT.2 …; stdout says how many. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_buf.h"
#include "fg_model.h"
#include "fg_otlp.h"
#include "fg_pprof.h"

struct out_ctx {
    const char *path;
    int n;
};

static int read_file(const char *path, struct fg_buf *buf)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = fg_buf_append(buf, chunk, n);
    fclose(f);
    return rc;
}

static int emit(void *ctx, const struct fg_pprof_group *g, const uint8_t *data, size_t len,
                struct fg_err *err)
{
    struct out_ctx *o = ctx;
    char path[4096];
    if (o->n == 0)
        snprintf(path, sizeof(path), "%s", o->path);
    else
        snprintf(path, sizeof(path), "%s.%d", o->path, o->n);
    o->n++;
    FILE *f = fopen(path, "wb");
    if (!f)
        return fg_err_set(err, FG_EIO, "cannot create %s", path);
    size_t w = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || w != len)
        return fg_err_set(err, FG_EIO, "cannot write %s", path);
    printf("%s: %u sample type(s)\n", path, g->n_profiles);
    return 0;
}

static int convert(const char *in, const char *out, bool via_otlp)
{
    struct fg_buf data, otlp;
    struct fg_profiles *p = NULL, *again = NULL;
    struct fg_err err = {{0}};
    struct out_ctx o = {out, 0};
    int rc;

    fg_buf_init(&data, 0);
    fg_buf_init(&otlp, 0);
    if ((rc = read_file(in, &data)) != 0)
        goto done;
    if ((rc = fg_profiles_new(&p)) != 0)
        goto done;
    if ((rc = fg_pprof_decode(data.data, data.len, 0, NULL, p, &err)) != 0) {
        fprintf(stderr, "decode: %s\n", err.msg);
        goto done;
    }
    if (via_otlp) {
        if ((rc = fg_otlp_encode_proto(p, &otlp)) != 0) {
            fprintf(stderr, "otlp encode: %s\n", fg_strerror(rc));
            goto done;
        }
        if ((rc = fg_otlp_decode_proto(otlp.data, otlp.len, &again, &err)) != 0) {
            fprintf(stderr, "otlp decode: %s\n", err.msg);
            goto done;
        }
        fg_profiles_unref(p);
        p = again;
        again = NULL;
    }
    if ((rc = fg_pprof_encode(p, true, emit, &o, &err)) != 0)
        fprintf(stderr, "encode: %s\n", err.msg);
    else
        printf("pprofs: %d\n", o.n);
done:
    fg_profiles_unref(p);
    fg_buf_free(&otlp);
    fg_buf_free(&data);
    return rc == 0 ? 0 : 1;
}

static int count_bytes(void *ctx, const struct fg_pprof_group *g, const uint8_t *data,
                       size_t len, struct fg_err *err)
{
    *(size_t *)ctx += len;
    return 0;
}

/* Process CPU time: the machine may be shared, and the converter is single-threaded. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench(const char *in, double seconds)
{
    struct fg_buf data;
    fg_buf_init(&data, 0);
    if (read_file(in, &data) != 0)
        return 1;
    uint64_t runs = 0, profiles = 0, samples = 0;
    double start = now_s(), elapsed = 0;
    while (elapsed < seconds || runs == 0) {
        struct fg_profiles *p = NULL;
        struct fg_err err = {{0}};
        if (fg_profiles_new(&p) != 0 ||
            fg_pprof_decode(data.data, data.len, 0, NULL, p, &err) != 0) {
            fprintf(stderr, "decode: %s\n", err.msg);
            fg_profiles_unref(p);
            fg_buf_free(&data);
            return 1;
        }
        for (uint32_t r = 0; r < p->n_resources; r++)
            for (uint32_t s = 0; s < p->resources[r].n_scopes; s++)
                profiles += p->resources[r].scopes[s].n_profiles;
        samples += p->n_samples;
        fg_profiles_unref(p);
        runs++;
        elapsed = now_s() - start;
    }
    printf("file %s: %zu bytes, %llu decodes in %.2f s of CPU\n", in, data.len,
           (unsigned long long)runs, elapsed);
    printf("decode: %.1f MB/s, %.1f pprofs/s, %.1f model profiles/s, %.0f samples/s\n",
           (double)data.len * (double)runs / elapsed / 1e6, (double)runs / elapsed,
           (double)profiles / elapsed, (double)samples / elapsed);

    struct fg_profiles *p = NULL;
    struct fg_err err = {{0}};
    int rc = fg_profiles_new(&p);
    if (rc == 0)
        rc = fg_pprof_decode(data.data, data.len, 0, NULL, p, &err);
    for (int gz = 0; gz < 2 && rc == 0; gz++) {
        size_t out = 0;
        runs = 0;
        start = now_s();
        elapsed = 0;
        while (rc == 0 && (elapsed < seconds || runs == 0)) {
            rc = fg_pprof_encode(p, gz, count_bytes, &out, &err);
            runs++;
            elapsed = now_s() - start;
        }
        printf("encode (%s): %.1f pprofs/s, %.1f MB/s of output\n", gz ? "gzip" : "raw",
               (double)runs / elapsed, (double)out / elapsed / 1e6);
    }
    if (rc != 0)
        fprintf(stderr, "encode: %s\n", err.msg);
    fg_profiles_unref(p);
    fg_buf_free(&data);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "roundtrip") == 0)
        return convert(argv[2], argv[3], false);
    if (argc == 4 && strcmp(argv[1], "via-otlp") == 0)
        return convert(argv[2], argv[3], true);
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "bench") == 0)
        return bench(argv[2], argc == 4 ? strtod(argv[3], NULL) : 3.0);
    fprintf(stderr, "usage: %s roundtrip|via-otlp IN OUT | bench IN [SECONDS]\n", argv[0]);
    return 2;
}
