/* Builds the benchmark request with the model API, so it is what a real agent sends in
 * shape: shared root frames, skewed stack popularity, per-thread sample attributes. */
#include "fg_bench_payload.h"

#include <stdio.h>
#include <string.h>

#include "fg_otlp.h"

/* xorshift64*: reproducible, good enough to spread picks. */
static uint64_t next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

static uint32_t pick(uint64_t *s, uint32_t n)
{
    return (uint32_t)(next(s) % n);
}

static uint32_t str(struct fg_profiles *p, const char *s)
{
    int32_t i = fg_dict_string(p, s, strlen(s));
    return i < 0 ? 0 : (uint32_t)i;
}

static struct fg_value sval(const char *s)
{
    struct fg_value v = {.kind = FG_VALUE_STRING, .u.s = {s, (uint32_t)strlen(s)}};
    return v;
}

int fgb_make_batch(uint64_t seed, struct fg_profiles **out)
{
    struct fg_profiles *p = NULL;
    uint64_t rng = seed * UINT64_C(0x9e3779b97f4a7c15) + 1;
    int rc = fg_profiles_new(&p);
    if (rc != 0)
        return rc;
    rc = FG_ENOMEM;

    struct fg_attribute build = {.key = str(p, "process.executable.build_id.gnu"),
                                 .value = sval("4f2c8e0a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e")};
    int32_t build_attr = fg_dict_attribute(p, &build);
    if (build_attr < 0)
        goto fail;
    uint32_t ba = (uint32_t)build_attr;
    struct fg_mapping m = {0x400000, 0x2400000, 0, str(p, "/usr/local/bin/checkout-service"), 1,
                           &ba};
    int32_t map = fg_dict_mapping(p, &m);
    if (map < 0)
        goto fail;

    /* One location per function, a few with an inlined callee. */
    uint32_t locs[FGB_FUNCTIONS];
    for (uint32_t i = 0; i < FGB_FUNCTIONS; i++) {
        char name[64], file[64];
        snprintf(name, sizeof(name), "github.com/acme/shop/pkg%u.(*Handler%u).Serve%u", i % 17,
                 i % 23, i);
        snprintf(file, sizeof(file), "/src/shop/pkg%u/handler%u.go", i % 17, i % 23);
        struct fg_function f = {str(p, name), str(p, name), str(p, file), (int64_t)(10 + i)};
        int32_t fi = fg_dict_function(p, &f);
        if (fi < 0)
            goto fail;
        struct fg_line lines[2] = {{(uint32_t)fi, (int64_t)(20 + i % 50), 0},
                                   {(uint32_t)fi, (int64_t)(30 + i % 40), 0}};
        struct fg_location loc = {(uint32_t)map, 0x401000 + (uint64_t)i * 0x40,
                                  i % 7 == 0 ? 2u : 1u, 0, lines, NULL};
        int32_t li = fg_dict_location(p, &loc);
        if (li < 0)
            goto fail;
        locs[i] = (uint32_t)li;
    }

    /* Stacks: leaf first; the outermost frames come from a small common root set. */
    uint32_t stacks[FGB_STACKS];
    for (uint32_t s = 0; s < FGB_STACKS; s++) {
        uint32_t frames[40];
        uint32_t depth = 10 + pick(&rng, 31);
        for (uint32_t d = 0; d < depth; d++) {
            uint32_t from_root = depth - 1 - d;
            frames[d] = from_root < 3 ? locs[from_root * 3 + pick(&rng, 2)]
                                      : locs[9 + pick(&rng, FGB_FUNCTIONS - 9)];
        }
        frames[0] = locs[9 + (s * 7 + 3) % (FGB_FUNCTIONS - 9)];
        frames[1] = locs[9 + s % (FGB_FUNCTIONS - 9)]; /* keeps the 200 stacks distinct */
        struct fg_stack st = {depth, frames};
        int32_t si = fg_dict_stack(p, &st);
        if (si < 0)
            goto fail;
        stacks[s] = (uint32_t)si;
    }

    uint32_t threads[8];
    for (uint32_t t = 0; t < 8; t++) {
        char name[32];
        snprintf(name, sizeof(name), "worker-%u", t);
        struct fg_attribute a = {.key = str(p, "thread.name"), .value = sval(name)};
        int32_t ai = fg_dict_attribute(p, &a);
        if (ai < 0)
            goto fail;
        threads[t] = (uint32_t)ai;
    }

    struct fg_keyvalue res_attrs[5] = {
        {{"service.name", 12}, sval("checkout")},
        {{"service.version", 15}, sval("1.42.0")},
        {{"host.name", 9}, sval("node-7.prod.example")},
        {{"process.pid", 11}, {.kind = FG_VALUE_INT, .u.i = 4242}},
        {{"k8s.pod.name", 12}, sval("checkout-7d9f8b6c5-x2x4z")},
    };
    struct fg_resource res = {.n_attrs = 5, .attrs = res_attrs};
    static const char schema[] = "https://opentelemetry.io/schemas/1.37.0";
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, schema, sizeof(schema) - 1);
    if (!rp)
        goto fail;
    struct fg_scope scope = {.name = {"go.opentelemetry.io/ebpf-profiler", 33},
                             .version = {"v0.0.202547", 11}};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(p, rp, &scope, "", 0);
    if (!sp)
        goto fail;
    uint64_t t0 = UINT64_C(1764000000000000000) + (seed % 1000) * UINT64_C(1000000000);
    struct fg_profile hdr = {
        .sample_type = {str(p, "cpu"), str(p, "nanoseconds")},
        .period_type = {str(p, "cpu"), str(p, "nanoseconds")},
        .time_unix_nano = t0,
        .duration_nano = UINT64_C(10000000000),
        .period = 10000000,
    };
    struct fg_profile *prof = fg_profiles_add_profile(p, sp, &hdr);
    if (!prof)
        goto fail;
    for (uint32_t i = 0; i < FGB_SAMPLES; i++) {
        /* Skewed popularity: half the samples land on the first 20 stacks. */
        uint32_t s = pick(&rng, 2) ? pick(&rng, 20) : pick(&rng, FGB_STACKS);
        int64_t value = 10000000;
        uint64_t ts = t0 + (uint64_t)i * UINT64_C(10000000) + pick(&rng, 1000);
        uint32_t attr = threads[pick(&rng, 8)];
        struct fg_sample smp = {.stack = stacks[s], .n_attrs = 1, .attrs = &attr,
                                .n_values = 1, .values = &value, .n_timestamps = 1,
                                .timestamps = &ts};
        if (fg_profiles_add_sample(p, prof, &smp) != 0)
            goto fail;
    }
    *out = p;
    return 0;
fail:
    fg_profiles_unref(p);
    return rc;
}

int fgb_make_request(uint64_t seed, struct fg_buf *out)
{
    struct fg_profiles *p = NULL;
    int rc = fgb_make_batch(seed, &p);
    if (rc != 0)
        return rc;
    rc = fg_otlp_encode_proto(p, out);
    fg_profiles_unref(p);
    return rc;
}
