/* In-process aggregation bench: decodes each request of a file written by
 * `aggregate_bench.py --dump-requests` and hands it to an `aggregate` (window 10s) or
 * `batch` processor whose next consumer drops what it gets; prints the thread CPU time of
 * decoding and of consuming. No HTTP, no exporter: the ingest work alone, on one thread,
 * so two builds compare with less noise than through the server. Not a test. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fg_component.h"
#include "fg_config.h"
#include "fg_model.h"
#include "fg_otlp.h"

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int drop(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    FG_UNUSED(self);
    FG_UNUSED(err);
    fg_profiles_unref(batch);
    return 0;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *data = NULL;
    long size;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto out;
    data = malloc((size_t)size + 1);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
        free(data);
        data = NULL;
    }
    *len = (size_t)size;
out:
    if (f)
        fclose(f);
    return data;
}

/* One pass over every request; returns 0 or prints why not. */
static int run(const char *mode, const unsigned char *all, size_t size)
{
    bool decode_only = strcmp(mode, "decode") == 0;
    const char *proc = decode_only ? "batch" : mode;
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}\n"
             "processors:\n  aggregate: {window: 10s}\n"
             "  batch: {timeout: 200ms, send_batch_size: 8192}\n"
             "exporters: {debug: {}}\n"
             "service: {pipelines: {profiles: {receivers: [otlp], processors: [%s], "
             "exporters: [debug]}}}\n",
             proc);
    struct fg_config *cfg = NULL;
    struct fg_diag diag;
    fg_diag_init(&diag);
    if (fg_config_load_string("bench.yaml", yaml, strlen(yaml), &cfg, &diag) != 0) {
        fprintf(stderr, "config: %.*s\n", (int)diag.text.len, (const char *)diag.text.data);
        fg_diag_free(&diag);
        return 1;
    }
    fg_diag_free(&diag);
    struct fg_consumer next = {.consume = drop};
    const struct fg_config_component *cc = fg_config_find(cfg, FG_KIND_PROCESSOR, proc);
    struct fg_create_args args = {.id = proc, .config = cc->config, .next = &next};
    struct fg_component *c = NULL;
    struct fg_err err = {{0}};
    int rc = cc->factory->create(&args, &c, &err);
    if (rc == 0)
        rc = c->ops->start(c, &err);
    double decode_s = 0, consume_s = 0;
    uint64_t records = 0;
    for (size_t off = 0; rc == 0 && off + 4 <= size;) {
        uint32_t len;
        memcpy(&len, all + off, sizeof(len)); /* little-endian length, then the request */
        off += 4;
        if (len > size - off) {
            snprintf(err.msg, sizeof(err.msg), "truncated file");
            rc = FG_EINVAL;
            break;
        }
        double t0 = thread_cpu_s();
        struct fg_profiles *b;
        if ((rc = fg_otlp_decode_proto(all + off, len, &b, &err)) != 0)
            break;
        double t1 = thread_cpu_s();
        records += b->n_samples;
        if (decode_only)
            fg_profiles_unref(b);
        else if ((rc = fg_consume(&c->consumer, b, &err)) != 0)
            break;
        decode_s += t1 - t0;
        consume_s += thread_cpu_s() - t1;
        off += len;
    }
    if (c) {
        c->ops->shutdown(c, 0); /* the aggregate flush is not timed */
        c->ops->destroy(c);
    }
    fg_config_free(cfg);
    if (rc) {
        fprintf(stderr, "%s: %s\n", mode, err.msg);
        return 1;
    }
    printf("%-9s decode %.3f s  consume %.3f s  total %.3f s  %.0f sample records per "
           "CPU-second\n",
           mode, decode_s, consume_s, decode_s + consume_s,
           (double)records / (decode_s + consume_s));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s REQUESTS_FILE aggregate|batch|decode... [--reps N]\n",
                argv[0]);
        return 2;
    }
    int reps = 1;
    if (argc >= 5 && strcmp(argv[argc - 2], "--reps") == 0) {
        reps = atoi(argv[argc - 1]);
        argc -= 2;
    }
    mallopt(M_TRIM_THRESHOLD, 32 << 20); /* the server's setting (server/main.c) */
    size_t size = 0;
    unsigned char *all = read_all(argv[1], &size);
    if (!all) {
        perror(argv[1]);
        return 1;
    }
    int rc = 0;
    for (int r = 0; r < reps && !rc; r++)
        for (int m = 2; m < argc && !rc; m++) /* modes interleaved: same machine state */
            rc = run(argv[m], all, size);
    free(all);
    return rc;
}
