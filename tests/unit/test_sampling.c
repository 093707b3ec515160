/* Processor "sampling": each strategy checked with numbers (kept shares, token-bucket
 * counts, adaptive convergence, downsampled totals, exact preserved totals), the copier it
 * builds outputs with, and config errors with FILE:LINE:COL. */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_config.h"
#include "fg_model.h"
#include "fg_model_select.h"
#include "sampling_processor.h"

/* ---- a recording consumer ---- */

struct recorder {
    struct fg_consumer consumer;
    pthread_mutex_t mu;
    struct fg_profiles **batches;
    size_t n, cap;
};

static int record(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct recorder *r = (struct recorder *)self;
    FG_UNUSED(err);
    pthread_mutex_lock(&r->mu);
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->batches = realloc(r->batches, r->cap * sizeof(*r->batches));
        assert_non_null(r->batches);
    }
    r->batches[r->n++] = batch;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static void recorder_clear(struct recorder *r)
{
    for (size_t i = 0; i < r->n; i++)
        fg_profiles_unref(r->batches[i]);
    r->n = 0;
}

struct fixture {
    struct fg_config *cfg;
    struct fg_component *proc;
    struct recorder rec;
};

static void setup_proc(struct fixture *f, const char *body)
{
    memset(&f->rec, 0, sizeof(f->rec));
    f->rec.consumer.consume = record;
    pthread_mutex_init(&f->rec.mu, NULL);
    f->proc = tu_processor_start("sampling", body, &f->rec.consumer, &f->cfg);
}

static void teardown_proc(struct fixture *f)
{
    f->proc->ops->shutdown(f->proc, 0);
    f->proc->ops->destroy(f->proc);
    recorder_clear(&f->rec);
    free(f->rec.batches);
    pthread_mutex_destroy(&f->rec.mu);
    fg_config_free(f->cfg);
}

static void push(struct fixture *f, struct fg_profiles *b)
{
    struct fg_err err;
    assert_int_equal(fg_consume(&f->proc->consumer, b, &err), 0);
}

/* ---- building input ---- */

static uint32_t str(struct fg_profiles *p, const char *s)
{
    int32_t i = fg_dict_string(p, s, strlen(s));
    assert_true(i >= 0);
    return (uint32_t)i;
}

/* A stack of depth 3 named s<id>/f1/f2, one per id. */
static uint32_t stack_for(struct fg_profiles *p, int id)
{
    uint32_t locs[3];
    for (int d = 0; d < 3; d++) {
        char name[32];
        snprintf(name, sizeof(name), d == 0 ? "leaf_%d" : "frame_%d_%d", id, d);
        struct fg_function fn = {.name = str(p, name)};
        struct fg_line line = {.function = (uint32_t)fg_dict_function(p, &fn), .line = d};
        struct fg_location loc = {.n_lines = 1, .lines = &line, .address = (uint64_t)id};
        locs[d] = (uint32_t)fg_dict_location(p, &loc);
    }
    struct fg_stack st = {3, locs};
    return (uint32_t)fg_dict_stack(p, &st);
}

struct profile_spec {
    const char *service;
    const char *instance;
    const char *sample_type;
    uint64_t time_ns;
    const char *profile_id; /* 16 bytes or NULL */
    int n_samples;
    int64_t (*value)(int i, void *arg); /* NULL = i + 1 */
    void *arg;
    int stacks; /* distinct stacks, samples use stack i % stacks; 0 = 5 */
};

static struct fg_profile *add_profile(struct fg_profiles *p, const struct profile_spec *ps)
{
    struct fg_keyvalue attrs[2] = {
        {{"service.name", 12},
         {.kind = FG_VALUE_STRING, .u.s = {ps->service, (uint32_t)strlen(ps->service)}}},
        {{"service.instance.id", 19},
         {.kind = FG_VALUE_STRING,
          .u.s = {ps->instance ? ps->instance : "i0",
                  (uint32_t)strlen(ps->instance ? ps->instance : "i0")}}},
    };
    struct fg_resource res = {.n_attrs = 2, .attrs = attrs};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "", 0);
    assert_non_null(rp);
    struct fg_scope scope = {.name = {"test", 4}};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(p, rp, &scope, "", 0);
    assert_non_null(sp);
    const char *stype = ps->sample_type ? ps->sample_type : "cpu";
    struct fg_profile hdr = {
        .sample_type = {str(p, stype), str(p, "nanoseconds")},
        .period_type = {str(p, "cpu"), str(p, "nanoseconds")},
        .time_unix_nano = ps->time_ns,
        .duration_nano = 1000000000ULL,
        .period = 10000000,
    };
    if (ps->profile_id)
        hdr.profile_id = (struct fg_bytes){ps->profile_id, 16};
    struct fg_profile *prof = fg_profiles_add_profile(p, sp, &hdr);
    assert_non_null(prof);
    int stacks = ps->stacks ? ps->stacks : 5;
    for (int i = 0; i < ps->n_samples; i++) {
        int64_t v = ps->value ? ps->value(i, ps->arg) : i + 1;
        struct fg_sample s = {.stack = stack_for(p, i % stacks), .n_values = 1, .values = &v};
        assert_int_equal(fg_profiles_add_sample(p, prof, &s), 0);
    }
    return prof;
}

static struct fg_profiles *one_profile(const struct profile_spec *ps)
{
    struct fg_profiles *p;
    assert_int_equal(fg_profiles_new(&p), 0);
    add_profile(p, ps);
    return p;
}

/* ---- reading output ---- */

#define FOR_PROFILES(batch, rp, sp, prof)                                                  \
    for (uint32_t r_ = 0; r_ < (batch)->n_resources; r_++)                                 \
        for (uint32_t s_ = 0; s_ < (batch)->resources[r_].n_scopes; s_++)                  \
            for (uint32_t p_ = 0; p_ < (batch)->resources[r_].scopes[s_].n_profiles; p_++) \
                for (int once_ = 1; once_; once_ = 0)                                      \
                    for (const struct fg_resource_profiles *rp = &(batch)->resources[r_];  \
                         once_; once_ = 0)                                                 \
                        for (const struct fg_scope_profiles *sp = &rp->scopes[s_]; once_;  \
                             once_ = 0)                                                    \
                            for (const struct fg_profile *prof = &sp->profiles[p_]; once_; \
                                 once_ = 0)

static size_t count_profiles(const struct recorder *r)
{
    size_t n = 0;
    for (size_t b = 0; b < r->n; b++)
        FOR_PROFILES(r->batches[b], rp, sp, prof)
        {
            FG_UNUSED(prof);
            n++;
        }
    return n;
}

static const char *service_of(const struct fg_resource_profiles *rp)
{
    static char buf[64];
    for (uint32_t i = 0; i < rp->resource.n_attrs; i++)
        if (rp->resource.attrs[i].key.len == 12 &&
            memcmp(rp->resource.attrs[i].key.ptr, "service.name", 12) == 0) {
            snprintf(buf, sizeof(buf), "%.*s", (int)rp->resource.attrs[i].value.u.s.len,
                     rp->resource.attrs[i].value.u.s.ptr);
            return buf;
        }
    return "";
}

static bool is_stripped(const struct fg_profiles *b, const struct fg_profile *prof)
{
    for (uint32_t i = 0; i < prof->n_attrs; i++) {
        const struct fg_attribute *a = fg_dict_get_attribute(b, prof->attrs[i]);
        struct fg_bytes k = fg_dict_get_string(b, a->key);
        if (k.len == 17 && memcmp(k.ptr, "flamegate.sampled", 17) == 0 &&
            a->value.kind == FG_VALUE_BOOL && a->value.u.b)
            return true;
    }
    return false;
}

/* ---- probabilistic ---- */

static const char *const services[] = {"checkout", "cart", "search", "auth", "billing"};

/* 20,000 profiles in batches of 100, five services, distinct start times. */
static void feed_20000(struct fixture *f)
{
    for (int b = 0; b < 200; b++) {
        struct fg_profiles *p;
        assert_int_equal(fg_profiles_new(&p), 0);
        for (int i = 0; i < 100; i++) {
            int k = b * 100 + i;
            struct profile_spec ps = {.service = services[k % 5],
                                      .time_ns = 1700000000000000000ULL + (uint64_t)k * 1000000,
                                      .n_samples = 1};
            add_profile(p, &ps);
        }
        push(f, p);
    }
}

static char *kept_times(const struct recorder *r, size_t *n)
{
    /* the set of kept start times, as a sorted text list, to compare instances */
    size_t cap = 64, len = 0;
    uint64_t *t = malloc(cap * sizeof(*t));
    for (size_t b = 0; b < r->n; b++)
        FOR_PROFILES(r->batches[b], rp, sp, prof)
        {
            if (len == cap)
                t = realloc(t, (cap *= 2) * sizeof(*t));
            t[len++] = prof->time_unix_nano;
        }
    *n = len;
    char *out = malloc(len * 24 + 1);
    out[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < len; i++)
        used += (size_t)snprintf(out + used, 24, "%llu,", (unsigned long long)t[i]);
    free(t);
    return out;
}

static void test_probabilistic_share_and_determinism(void **state)
{
    FG_UNUSED(state);
    struct fixture a, b, c;
    setup_proc(&a, "    strategy: probabilistic\n    percentage: 10\n    hash_seed: 42");
    setup_proc(&b, "    strategy: probabilistic\n    percentage: 10\n    hash_seed: 42");
    setup_proc(&c, "    strategy: probabilistic\n    percentage: 10\n    hash_seed: 7");
    feed_20000(&a);
    feed_20000(&b);
    feed_20000(&c);
    size_t na, nb, nc;
    char *ka = kept_times(&a.rec, &na), *kb = kept_times(&b.rec, &nb),
         *kc = kept_times(&c.rec, &nc);
    printf("probabilistic 10%%: kept %zu of 20000 (seed 42), %zu (seed 7)\n", na, nc);
    assert_true(na >= 1800 && na <= 2200);
    assert_true(nc >= 1800 && nc <= 2200);
    assert_int_equal(na, nb);
    assert_string_equal(ka, kb); /* same seed: exactly the same profiles */
    assert_string_not_equal(ka, kc);
    free(ka);
    free(kb);
    free(kc);
    struct fg_sampling_stats st;
    fg_sampling_processor_stats(a.proc, &st);
    assert_int_equal(st.profiles_in, 20000);
    assert_int_equal(st.kept, na);
    assert_int_equal(st.dropped, 20000 - na);
    teardown_proc(&a);
    teardown_proc(&b);
    teardown_proc(&c);
}

static void test_probabilistic_profile_id_decides(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    strategy: probabilistic\n    percentage: 50");
    /* the same profile_id at different times and services decides alike; over 20 ids
     * both outcomes occur */
    int kept_ids = 0;
    for (int id = 0; id < 20; id++) {
        char pid[16];
        memset(pid, 0, sizeof(pid));
        pid[0] = (char)(id + 1);
        size_t before = count_profiles(&f.rec);
        for (int k = 0; k < 10; k++) {
            struct profile_spec ps = {.service = services[k % 5],
                                      .time_ns = 1700000000000000000ULL + (uint64_t)k * 7777,
                                      .profile_id = pid,
                                      .n_samples = 1};
            push(&f, one_profile(&ps));
        }
        size_t got = count_profiles(&f.rec) - before;
        assert_true(got == 0 || got == 10);
        kept_ids += got == 10;
    }
    assert_true(kept_ids > 0 && kept_ids < 20);
    teardown_proc(&f);
}

static void test_all_kept_passes_batch_through(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    strategy: probabilistic\n    percentage: 100");
    struct fg_profiles *in = tu_make_batch("svc", 10);
    push(&f, in);
    assert_int_equal(f.rec.n, 1);
    assert_ptr_equal(f.rec.batches[0], in); /* no copy when nothing changes */
    teardown_proc(&f);
}

/* ---- rate limiting ---- */

struct clock {
    int64_t now;
};

static int64_t clock_now(void *arg)
{
    return ((struct clock *)arg)->now;
}

static void test_rate_limiting_bucket(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    strategy: rate_limiting\n    profiles_per_second: 50\n    burst: 20");
    struct clock clk = {1000000000};
    fg_sampling_processor_set_clock(f.proc, clock_now, &clk);
    /* two keys, each sending 1000 profiles/s for 4 s: one every millisecond */
    const int64_t start = clk.now;
    for (int ms = 0; ms < 4000; ms++) {
        clk.now = start + (int64_t)ms * 1000000 + 1000000;
        for (int key = 0; key < 2; key++) {
            struct profile_spec ps = {.service = services[key],
                                      .time_ns = (uint64_t)clk.now,
                                      .n_samples = 1};
            push(&f, one_profile(&ps));
        }
    }
    size_t per_key[2] = {0, 0};
    for (size_t b = 0; b < f.rec.n; b++)
        FOR_PROFILES(f.rec.batches[b], rp, sp, prof)
        {
            FG_UNUSED(prof);
            per_key[strcmp(service_of(rp), services[0]) == 0 ? 0 : 1]++;
        }
    printf("rate_limiting 50/s burst 20 over 4 s: kept %zu and %zu (expect 220 +- 1)\n",
           per_key[0], per_key[1]);
    for (int k = 0; k < 2; k++)
        assert_true(per_key[k] >= 219 && per_key[k] <= 221);
    teardown_proc(&f);
}

static void test_rate_limiting_samples_and_key_bound(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    /* 100 samples/s, burst 100, profiles of 10 samples: 10 profiles/s after the burst;
     * one tracked key, so the second service shares the overflow bucket with the third */
    setup_proc(&f, "    strategy: rate_limiting\n    samples_per_second: 100\n    burst: 100\n"
                   "    max_keys: 1");
    struct clock clk = {5000000000};
    fg_sampling_processor_set_clock(f.proc, clock_now, &clk);
    size_t kept[3] = {0, 0, 0};
    for (int step = 0; step < 200; step++) { /* 2 s at 100 profiles/s per service */
        clk.now += 10000000;
        for (int key = 0; key < 3; key++) {
            struct profile_spec ps = {.service = services[key], .time_ns = (uint64_t)clk.now,
                                      .n_samples = 10};
            size_t before = count_profiles(&f.rec);
            push(&f, one_profile(&ps));
            kept[key] += count_profiles(&f.rec) - before;
        }
    }
    printf("rate_limiting 100 samples/s: kept %zu, overflow keys together %zu\n", kept[0],
           kept[1] + kept[2]);
    /* tracked key: burst (10 profiles) + 2 s * 10 profiles/s */
    assert_true(kept[0] >= 29 && kept[0] <= 31);
    /* untracked keys share one bucket: the same budget between them */
    assert_true(kept[1] + kept[2] >= 29 && kept[1] + kept[2] <= 31);
    struct fg_sampling_stats st;
    fg_sampling_processor_stats(f.proc, &st);
    assert_int_equal(st.key_overflows, 400);
    teardown_proc(&f);
}

/* ---- adaptive ---- */

/* Sends one interval of traffic: rate_profiles profiles/s of 10 samples for interval_s,
 * returns the kept samples per second. */
static double adaptive_interval(struct fixture *f, struct clock *clk, int rate_profiles,
                                int interval_ms, uint64_t *serial)
{
    size_t before = count_profiles(&f->rec);
    int n = rate_profiles * interval_ms / 1000;
    int64_t step = (int64_t)interval_ms * 1000000 / n;
    struct fg_profiles *p = NULL;
    for (int i = 0; i < n; i++) {
        clk->now += step;
        struct profile_spec ps = {.service = "svc",
                                  .time_ns = 1700000000000000000ULL + (*serial)++,
                                  .n_samples = 10};
        /* batches of 50 profiles at the same clock reading */
        if (!p)
            assert_int_equal(fg_profiles_new(&p), 0);
        add_profile(p, &ps);
        if ((i + 1) % 50 == 0 || i == n - 1) {
            push(f, p);
            p = NULL;
        }
    }
    size_t kept = count_profiles(&f->rec) - before;
    recorder_clear(&f->rec);
    return (double)kept * 10.0 * 1000.0 / interval_ms;
}

static void test_adaptive_converges(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    strategy: adaptive\n    target_samples_per_second: 1000\n"
                   "    adjust_interval: 2s\n    min_percentage: 1");
    struct clock clk = {1000000000};
    fg_sampling_processor_set_clock(f.proc, clock_now, &clk);
    uint64_t serial = 0;
    double rate = 0;
    /* 10,000 samples/s offered (1,000 profiles of 10 samples) against a target of 1,000 */
    for (int k = 1; k <= 5; k++) {
        rate = adaptive_interval(&f, &clk, 1000, 2000, &serial);
        printf("adaptive interval %d: %.0f samples/s kept (target 1000, offered 10000)\n", k,
               rate);
    }
    assert_true(fabs(rate - 1000) <= 100);
    /* the offered rate doubles: within 5 intervals the kept rate is back near the target */
    for (int k = 1; k <= 5; k++) {
        rate = adaptive_interval(&f, &clk, 2000, 2000, &serial);
        printf("adaptive after doubling, interval %d: %.0f samples/s kept\n", k, rate);
    }
    assert_true(fabs(rate - 1000) <= 100);
    teardown_proc(&f);
}

static void test_adaptive_floor(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    /* target far below what min_percentage allows: the keep share stays at 20% */
    setup_proc(&f, "    strategy: adaptive\n    target_samples_per_second: 1\n"
                   "    adjust_interval: 1s\n    min_percentage: 20");
    struct clock clk = {1000000000};
    fg_sampling_processor_set_clock(f.proc, clock_now, &clk);
    uint64_t serial = 0;
    double rate = 0;
    for (int k = 0; k < 4; k++)
        rate = adaptive_interval(&f, &clk, 1000, 1000, &serial);
    printf("adaptive floor: %.0f of 10000 samples/s kept (20%% floor)\n", rate);
    assert_true(rate >= 1700 && rate <= 2300);
    teardown_proc(&f);
}

/* ---- policy ---- */

static void test_policy_first_match_wins(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    strategy: policy\n"
                   "    rules:\n"
                   "      - name: checkout-all\n"
                   "        match: {resource_attribute: service.name, regex: \"^check\"}\n"
                   "        strategy: probabilistic\n"
                   "        percentage: 100\n"
                   "      - name: no-alloc\n"
                   "        match: {sample_type: alloc_space}\n"
                   "        strategy: probabilistic\n"
                   "        percentage: 0\n"
                   "      - name: cart-exact\n"
                   "        match: {resource_attribute: service.name, value: cart}\n"
                   "        strategy: probabilistic\n"
                   "        percentage: 0\n"
                   "        preserve_totals: true\n"
                   "    default: {strategy: probabilistic, percentage: 100}");
    struct profile_spec specs[] = {
        {.service = "checkout", .sample_type = "alloc_space", .n_samples = 3}, /* rule 1 */
        {.service = "search", .sample_type = "alloc_space", .n_samples = 3},   /* rule 2 */
        {.service = "cart", .n_samples = 3},                                   /* rule 3 */
        {.service = "auth", .n_samples = 3},                                   /* default */
    };
    struct fg_profiles *p;
    assert_int_equal(fg_profiles_new(&p), 0);
    for (size_t i = 0; i < FG_ARRAY_LEN(specs); i++) {
        specs[i].time_ns = 1700000000000000000ULL + i;
        add_profile(p, &specs[i]);
    }
    push(&f, p);
    assert_int_equal(f.rec.n, 1);
    int seen = 0;
    FOR_PROFILES(f.rec.batches[0], rp, sp, prof)
    {
        const char *svc = service_of(rp);
        if (strcmp(svc, "checkout") == 0) {
            assert_int_equal(prof->n_samples, 3);
            seen |= 1;
        } else if (strcmp(svc, "cart") == 0) {
            assert_true(is_stripped(f.rec.batches[0], prof));
            assert_int_equal(fg_profile_total(prof), 6);
            seen |= 2;
        } else if (strcmp(svc, "auth") == 0) {
            assert_false(is_stripped(f.rec.batches[0], prof));
            seen |= 4;
        } else {
            fail_msg("profile of %s should have been dropped", svc);
        }
    }
    assert_int_equal(seen, 7);
    teardown_proc(&f);
}

/* ---- sample_downsampling ---- */

static int64_t lcg_value(int i, void *arg)
{
    uint64_t *x = arg;
    FG_UNUSED(i);
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return (int64_t)((*x >> 33) % 100) + 1;
}

static void downsample_run(const char *config, int64_t *in_total, int64_t *out_total,
                           uint64_t *samples_out, struct fixture *f)
{
    setup_proc(f, config);
    uint64_t x = 12345;
    *in_total = *out_total = 0;
    *samples_out = 0;
    for (int k = 0; k < 10; k++) { /* 10 profiles of 10,000 samples */
        struct profile_spec ps = {.service = "svc", .time_ns = 1700000000000000000ULL + (uint64_t)k,
                                  .n_samples = 10000, .value = lcg_value, .arg = &x,
                                  .stacks = 400};
        struct fg_profiles *p = one_profile(&ps);
        *in_total += fg_profile_total(&p->resources[0].scopes[0].profiles[0]);
        push(f, p);
    }
    for (size_t b = 0; b < f->rec.n; b++)
        FOR_PROFILES(f->rec.batches[b], rp, sp, prof)
        {
            *out_total += fg_profile_total(prof);
            *samples_out += prof->n_samples;
        }
}

static void test_downsampling_unbiased_totals(void **state)
{
    FG_UNUSED(state);
    static const char *const seeds[] = {"1", "2", "3"};
    for (size_t s = 0; s < FG_ARRAY_LEN(seeds); s++) {
        char cfg[256];
        snprintf(cfg, sizeof(cfg),
                 "    strategy: sample_downsampling\n    probability: 0.1\n    hash_seed: %s",
                 seeds[s]);
        struct fixture f;
        int64_t in, out;
        uint64_t n_out;
        downsample_run(cfg, &in, &out, &n_out, &f);
        double err = fabs((double)out - (double)in) / (double)in;
        printf("downsampling p=0.1 seed %s: %llu of 100000 samples kept, total %lld vs %lld "
               "(%.2f%%)\n",
               seeds[s], (unsigned long long)n_out, (long long)out, (long long)in, err * 100);
        assert_true(err <= 0.02);
        assert_true(n_out >= 9000 && n_out <= 11000);
        teardown_proc(&f);
    }
}

static int64_t alternating(int i, void *arg)
{
    FG_UNUSED(arg);
    return i % 2 ? 100 : 1;
}

/* Balancing the total must not bend the profile: light and heavy samples are kept at the
 * same rate (a correction scaled per sample would favour the light ones). */
static void test_downsampling_keeps_shape(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    strategy: sample_downsampling\n    probability: 0.1");
    struct profile_spec ps = {.service = "svc", .time_ns = 42, .n_samples = 20000,
                              .value = alternating, .stacks = 400};
    push(&f, one_profile(&ps));
    size_t light = 0, heavy = 0;
    FOR_PROFILES(f.rec.batches[0], rp, sp, prof)
    {
        for (uint32_t i = 0; i < prof->n_samples; i++) {
            int64_t v = prof->samples[i].values[0];
            assert_true(v == 10 || v == 1000); /* scaled by 1/p */
            if (v == 10)
                light++;
            else
                heavy++;
        }
    }
    printf("downsampling shape: %zu light and %zu heavy samples kept of 10000 each\n", light,
           heavy);
    assert_true(light >= 880 && light <= 1120);
    assert_true(heavy >= 880 && heavy <= 1120);
    teardown_proc(&f);
}

static void test_downsampling_min_share_exact(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    int64_t in, out;
    uint64_t n_out;
    /* 400 stacks of similar weight (~0.25% each): a min_share of 0.5% makes all light;
     * the profile below adds one heavy stack */
    downsample_run("    strategy: sample_downsampling\n    probability: 0.1\n"
                   "    min_share: 0.005",
                   &in, &out, &n_out, &f);
    printf("downsampling p=0.1 min_share 0.5%%: %llu samples, total %lld vs %lld\n",
           (unsigned long long)n_out, (long long)out, (long long)in);
    assert_int_equal(out, in); /* exact */
    assert_true(n_out < 20000);
    /* every output profile has exactly one [other] sample, and values are unscaled */
    for (size_t b = 0; b < f.rec.n; b++)
        FOR_PROFILES(f.rec.batches[b], rp, sp, prof)
        {
            int others = 0;
            for (uint32_t i = 0; i < prof->n_samples; i++) {
                const struct fg_stack *st = fg_dict_get_stack(f.rec.batches[b],
                                                              prof->samples[i].stack);
                const struct fg_location *l = fg_dict_get_location(f.rec.batches[b],
                                                                   st->locations[0]);
                struct fg_bytes name = fg_dict_get_string(
                    f.rec.batches[b],
                    fg_dict_get_function(f.rec.batches[b], l->lines[0].function)->name);
                if (name.len == 7 && memcmp(name.ptr, "[other]", 7) == 0)
                    others++;
                else
                    assert_true(prof->samples[i].values[0] >= 1 &&
                                prof->samples[i].values[0] <= 100);
            }
            assert_int_equal(others, 1);
        }
    recorder_clear(&f.rec);

    /* a heavy stack (above min_share) is always kept with its exact value */
    struct profile_spec ps = {.service = "svc", .time_ns = 1, .n_samples = 1000, .stacks = 1000};
    struct fg_profiles *p = one_profile(&ps);
    struct fg_profile *prof = &p->resources[0].scopes[0].profiles[0];
    int64_t heavy = 1000000;
    struct fg_sample hs = {.stack = stack_for(p, 5000), .n_values = 1, .values = &heavy};
    assert_int_equal(fg_profiles_add_sample(p, prof, &hs), 0);
    int64_t total = fg_profile_total(prof);
    push(&f, p);
    const struct fg_profile *o = &f.rec.batches[0]->resources[0].scopes[0].profiles[0];
    assert_int_equal(fg_profile_total(o), total);
    bool found = false;
    for (uint32_t i = 0; i < o->n_samples; i++)
        found |= o->samples[i].values[0] == heavy;
    assert_true(found);
    teardown_proc(&f);
}

/* ---- preserve_totals ---- */

static void test_preserve_totals_exact(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    strategy: probabilistic\n    percentage: 10\n    preserve_totals: true");
    int64_t in_total = 0;
    uint64_t x = 99;
    for (int b = 0; b < 20; b++) {
        struct fg_profiles *p;
        assert_int_equal(fg_profiles_new(&p), 0);
        for (int i = 0; i < 50; i++) {
            struct profile_spec ps = {.service = services[i % 5],
                                      .time_ns = 1700000000000000000ULL + (uint64_t)(b * 50 + i),
                                      .n_samples = 20, .value = lcg_value, .arg = &x};
            in_total += fg_profile_total(add_profile(p, &ps));
        }
        push(&f, p);
    }
    int64_t out_total = 0;
    size_t profiles = 0, stripped = 0;
    for (size_t b = 0; b < f.rec.n; b++)
        FOR_PROFILES(f.rec.batches[b], rp, sp, prof)
        {
            out_total += fg_profile_total(prof);
            profiles++;
            if (is_stripped(f.rec.batches[b], prof)) {
                stripped++;
                assert_int_equal(prof->n_samples, 1);
                assert_int_equal(prof->samples[0].stack, 0); /* the empty stack */
            }
        }
    printf("preserve_totals: %zu profiles out (%zu stripped), total %lld vs %lld\n", profiles,
           stripped, (long long)out_total, (long long)in_total);
    assert_int_equal(profiles, 1000);
    assert_true(stripped >= 850 && stripped <= 950);
    assert_int_equal(out_total, in_total);
    teardown_proc(&f);
}

/* ---- the copier ---- */

static void copier_whole_batch(bool prefill)
{
    struct fg_profiles *src = tu_make_batch("svc", 17), *dst;
    assert_int_equal(fg_profiles_new(&dst), 0);
    struct fg_copier *c;
    assert_int_equal(fg_copier_new(dst, src, &c), 0);
    if (prefill) {
        assert_int_equal(fg_copier_prefill(c), 0);
        /* everything is there before any profile is copied */
        for (int t = 0; t < FG_TABLE_COUNT; t++)
            assert_int_equal(fg_dict_len(dst, (enum fg_table)t),
                             fg_dict_len(src, (enum fg_table)t));
    }
    for (uint32_t r = 0; r < src->n_resources; r++) {
        struct fg_resource_profiles *drp = fg_copier_resource(c, &src->resources[r]);
        assert_non_null(drp);
        for (uint32_t s = 0; s < src->resources[r].n_scopes; s++) {
            struct fg_scope_profiles *dsp = fg_copier_scope(c, drp, &src->resources[r].scopes[s]);
            assert_non_null(dsp);
            for (uint32_t i = 0; i < src->resources[r].scopes[s].n_profiles; i++)
                assert_non_null(fg_copier_profile(c, dsp, &src->resources[r].scopes[s].profiles[i]));
        }
    }
    fg_copier_free(c);
    char *a = tu_canon(src), *b = tu_canon(dst);
    assert_string_equal(a, b);
    assert_int_equal(dst->n_samples, src->n_samples);
    fg_free(a);
    fg_free(b);
    fg_profiles_unref(src);
    fg_profiles_unref(dst);
}

static void test_copier_whole_batch_equals_input(void **state)
{
    FG_UNUSED(state);
    copier_whole_batch(false);
    copier_whole_batch(true);
}

static void test_copier_copies_only_what_is_used(void **state)
{
    FG_UNUSED(state);
    struct fg_profiles *src, *dst;
    assert_int_equal(fg_profiles_new(&src), 0);
    struct profile_spec a = {.service = "a", .n_samples = 50, .stacks = 50};
    struct profile_spec b = {.service = "b", .n_samples = 2, .stacks = 2};
    add_profile(src, &a);
    add_profile(src, &b);
    assert_int_equal(fg_profiles_new(&dst), 0);
    struct fg_copier *c;
    assert_int_equal(fg_copier_new(dst, src, &c), 0);
    const struct fg_resource_profiles *rb = &src->resources[1];
    struct fg_resource_profiles *drp = fg_copier_resource(c, rb);
    struct fg_scope_profiles *dsp = fg_copier_scope(c, drp, &rb->scopes[0]);
    assert_non_null(fg_copier_profile(c, dsp, &rb->scopes[0].profiles[0]));
    fg_copier_free(c);
    /* two stacks (+ the zero entry), not fifty */
    assert_int_equal(fg_dict_len(dst, FG_TABLE_STACK), 3);
    assert_true(fg_dict_len(dst, FG_TABLE_LOCATION) <= 7);
    fg_profiles_unref(src);
    fg_profiles_unref(dst);
}

/* ---- out of memory ---- */

static struct fg_profiles *oom_input(void)
{
    struct fg_profiles *p;
    assert_int_equal(fg_profiles_new(&p), 0);
    for (int i = 0; i < 6; i++) {
        struct profile_spec ps = {.service = services[i % 3],
                                  .sample_type = i % 2 ? "alloc_space" : "cpu",
                                  .time_ns = 1700000000000000000ULL + (uint64_t)i,
                                  .n_samples = 12,
                                  .stacks = 6};
        add_profile(p, &ps);
    }
    return p;
}

/* Every allocation of a consume fails once in turn: the processor answers (retryably) or
 * succeeds, never crashes or leaks (the ASan build checks leaks), and works afterwards. */
static void test_allocation_failures(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    strategy: policy\n    preserve_totals: true\n    rules:\n"
                   "      - match: {sample_type: cpu}\n"
                   "        strategy: sample_downsampling\n        probability: 0.5\n"
                   "        min_share: 0.2\n"
                   "      - match: {resource_attribute: service.name, value: cart}\n"
                   "        strategy: rate_limiting\n        profiles_per_second: 1\n"
                   "    default: {strategy: probabilistic, percentage: 30}");
    struct fg_profiles *in = oom_input();
    fg_alloc_fail_after(ULONG_MAX);
    struct fg_err err;
    assert_int_equal(fg_consume(&f.proc->consumer, in, &err), 0);
    unsigned long count = fg_alloc_fail_after(0);
    assert_true(count > 10);
    int failed = 0;
    for (unsigned long n = 1; n <= count; n++) {
        in = oom_input();
        fg_alloc_fail_after(n);
        int rc = fg_consume(&f.proc->consumer, in, &err);
        fg_alloc_fail_after(0);
        assert_true(rc == 0 || rc == FG_ERETRYABLE);
        failed += rc != 0;
    }
    printf("sampling under allocation failures: %lu allocations walked, %d refused\n", count,
           failed);
    assert_true(failed > 0);
    size_t before = f.rec.n;
    push(&f, oom_input());
    assert_int_equal(f.rec.n, before + 1);
    teardown_proc(&f);
}

/* ---- config errors ---- */

static void expect_config_error(const char *body, const char *where, const char *what)
{
    const char *yaml = tu_processor_yaml("sampling", body);
    struct fg_diag diag;
    struct fg_config *cfg = NULL;
    fg_diag_init(&diag);
    assert_int_equal(fg_config_load_string("test.yaml", yaml, strlen(yaml), &cfg, &diag),
                     FG_EINVAL);
    assert_null(cfg);
    assert_int_equal(fg_buf_append(&diag.text, "", 1), 0);
    const char *text = (const char *)diag.text.data;
    if (!strstr(text, where) || !strstr(text, what))
        fail_msg("expected \"%s\" ... \"%s\" in:\n%s", where, what, text);
    fg_diag_free(&diag);
}

static void test_config_errors(void **state)
{
    FG_UNUSED(state);
    /* line 4 is the first line of the body */
    expect_config_error("    strategy: probabilistic\n    percentage: -5", "test.yaml:5:17:",
                        "-5 is out of range");
    expect_config_error("    strategy: probabilistic", "test.yaml:3:3:",
                        "percentage: required");
    expect_config_error("    strategy: sometimes", "test.yaml:4:15:", "invalid value \"sometimes\"");
    expect_config_error("    strategy: policy\n    rules:\n"
                        "      - match: {resource_attribute: service.name, regex: \"a((\"}\n"
                        "        strategy: probabilistic\n        percentage: 5",
                        "test.yaml:6:58:", "invalid regular expression");
    expect_config_error("    strategy: policy\n    rules:\n      - strategy: rate_limiting",
                        "test.yaml:6:9:", "exactly one of profiles_per_second");
    expect_config_error("    strategy: policy\n    rules:\n"
                        "      - {strategy: probabilistic, percentage: 1}\n"
                        "      - {strategy: policy}",
                        "test.yaml:7:9:", "cannot itself be a policy");
    expect_config_error("    strategy: policy", "test.yaml:3:3:", "at least one rule");
    expect_config_error("    strategy: sample_downsampling\n    probability: 1.5",
                        "test.yaml:5:18:", "must be between 0 and 1");
    expect_config_error("    strategy: rate_limiting\n    profiles_per_second: ten",
                        "test.yaml:5:26:", "invalid number");
    expect_config_error("    strategy: adaptive", "test.yaml:3:3:", "target_samples_per_second");
    expect_config_error("    strategy: policy\n    rules:\n      - match: {value: x}\n"
                        "        strategy: probabilistic\n        percentage: 1",
                        "test.yaml:6:9:", "need resource_attribute or profile_attribute");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probabilistic_share_and_determinism),
        cmocka_unit_test(test_probabilistic_profile_id_decides),
        cmocka_unit_test(test_all_kept_passes_batch_through),
        cmocka_unit_test(test_rate_limiting_bucket),
        cmocka_unit_test(test_rate_limiting_samples_and_key_bound),
        cmocka_unit_test(test_adaptive_converges),
        cmocka_unit_test(test_adaptive_floor),
        cmocka_unit_test(test_policy_first_match_wins),
        cmocka_unit_test(test_downsampling_unbiased_totals),
        cmocka_unit_test(test_downsampling_keeps_shape),
        cmocka_unit_test(test_downsampling_min_share_exact),
        cmocka_unit_test(test_preserve_totals_exact),
        cmocka_unit_test(test_copier_whole_batch_equals_input),
        cmocka_unit_test(test_copier_copies_only_what_is_used),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
