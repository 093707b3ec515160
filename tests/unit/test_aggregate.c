/* Processor "aggregate": per-stack sums against sums made by hand, one profile per group and
 * window, group_by, kept sample attributes and timestamps, the bounds that flush early,
 * the window timer, and config errors. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include "aggregate_processor.h"
#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_config.h"
#include "fg_model.h"

#define T0 1700000000000000000ULL /* a multiple of 10 s */
#define SEC 1000000000ULL

struct recorder {
    struct fg_consumer consumer;
    pthread_mutex_t mu;
    struct fg_profiles *batches[256];
    size_t n;
};

static int record(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct recorder *r = (struct recorder *)self;
    FG_UNUSED(err);
    pthread_mutex_lock(&r->mu);
    assert_true(r->n < FG_ARRAY_LEN(r->batches));
    r->batches[r->n++] = batch;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

struct fixture {
    struct fg_config *cfg;
    struct fg_component *proc;
    struct recorder rec;
    bool stopped;
};

static void setup_proc(struct fixture *f, const char *body)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}\n"
             "processors:\n  aggregate:\n%s\n"
             "exporters: {debug: {}}\n"
             "service: {pipelines: {profiles: {receivers: [otlp], processors: [aggregate], "
             "exporters: [debug]}}}\n",
             body);
    struct fg_diag diag;
    fg_diag_init(&diag);
    if (fg_config_load_string("test.yaml", yaml, strlen(yaml), &f->cfg, &diag) != 0)
        fail_msg("config: %.*s", (int)diag.text.len, (char *)diag.text.data);
    fg_diag_free(&diag);
    memset(&f->rec, 0, sizeof(f->rec));
    f->rec.consumer.consume = record;
    pthread_mutex_init(&f->rec.mu, NULL);
    f->stopped = false;
    const struct fg_config_component *cc =
        fg_config_find(f->cfg, FG_KIND_PROCESSOR, "aggregate");
    assert_non_null(cc);
    struct fg_create_args args = {.id = "aggregate", .config = cc->config,
                                  .next = &f->rec.consumer};
    struct fg_err err;
    assert_int_equal(cc->factory->create(&args, &f->proc, &err), 0);
    snprintf(f->proc->id, sizeof(f->proc->id), "aggregate");
    assert_int_equal(f->proc->ops->start(f->proc, &err), 0);
}

static void stop(struct fixture *f)
{
    if (!f->stopped)
        f->proc->ops->shutdown(f->proc, 0);
    f->stopped = true;
}

static void teardown_proc(struct fixture *f)
{
    stop(f);
    f->proc->ops->destroy(f->proc);
    for (size_t i = 0; i < f->rec.n; i++)
        fg_profiles_unref(f->rec.batches[i]);
    pthread_mutex_destroy(&f->rec.mu);
    fg_config_free(f->cfg);
}

static void push(struct fixture *f, struct fg_profiles *b)
{
    struct fg_err err;
    assert_int_equal(fg_consume(&f->proc->consumer, b, &err), 0);
}

/* ---- input ---- */

static uint32_t str(struct fg_profiles *p, const char *s)
{
    int32_t i = fg_dict_string(p, s, strlen(s));
    assert_true(i >= 0);
    return (uint32_t)i;
}

static uint32_t stack_for(struct fg_profiles *p, int id)
{
    uint32_t locs[3];
    for (int d = 0; d < 3; d++) {
        char name[32];
        snprintf(name, sizeof(name), d == 0 ? "leaf_%d" : "caller_%d", d == 0 ? id : d);
        struct fg_function fn = {.name = str(p, name), .filename = str(p, "x.c")};
        struct fg_line line = {.function = (uint32_t)fg_dict_function(p, &fn), .line = d + 1};
        struct fg_location loc = {.n_lines = 1, .lines = &line,
                                  .address = 0x1000 + (uint64_t)(d ? d : 100 + id)};
        locs[d] = (uint32_t)fg_dict_location(p, &loc);
    }
    struct fg_stack st = {3, locs};
    return (uint32_t)fg_dict_stack(p, &st);
}

static uint32_t attr(struct fg_profiles *p, const char *key, const char *value)
{
    struct fg_attribute a = {.key = str(p, key),
                             .value = {.kind = FG_VALUE_STRING,
                                       .u.s = {value, (uint32_t)strlen(value)}}};
    return (uint32_t)fg_dict_attribute(p, &a);
}

/* One 1-second profile of service/instance starting at t: n samples over 8 stacks, values
 * from seed, thread attribute worker-(i%2), and a profile attribute "run" = run. */
static struct fg_profiles *second_profile(const char *service, const char *instance,
                                          uint64_t t, int n, uint64_t *seed, bool ts_only,
                                          const char *run)
{
    struct fg_profiles *p;
    assert_int_equal(fg_profiles_new(&p), 0);
    struct fg_keyvalue kv[3] = {
        {{"service.name", 12}, {.kind = FG_VALUE_STRING, .u.s = {service, (uint32_t)strlen(service)}}},
        {{"service.instance.id", 19},
         {.kind = FG_VALUE_STRING, .u.s = {instance, (uint32_t)strlen(instance)}}},
        {{"host.name", 9}, {.kind = FG_VALUE_STRING, .u.s = {instance, (uint32_t)strlen(instance)}}},
    };
    struct fg_resource res = {.n_attrs = 3, .attrs = kv};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "", 0);
    struct fg_scope scope = {.name = {"agent", 5}, .version = {"1", 1}};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(p, rp, &scope, "", 0);
    uint32_t pattrs[2] = {attr(p, "run", run ? run : "r1"), attr(p, "profile.seq", instance)};
    struct fg_profile hdr = {
        .sample_type = {str(p, "samples"), str(p, "count")},
        .period_type = {str(p, "cpu"), str(p, "nanoseconds")},
        .time_unix_nano = t,
        .duration_nano = SEC,
        .period = 10000000,
        .n_attrs = 2,
        .attrs = pattrs,
    };
    struct fg_profile *prof = fg_profiles_add_profile(p, sp, &hdr);
    for (int i = 0; i < n; i++) {
        *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t v = (int64_t)((*seed >> 33) % 7) + 1;
        uint32_t th = attr(p, "thread.name", i % 2 ? "worker-1" : "worker-0");
        uint64_t ts[2] = {t + (uint64_t)i * 10000000ULL, t + (uint64_t)i * 10000000ULL + 1};
        struct fg_sample s = {.stack = stack_for(p, (int)((*seed >> 40) % 8)),
                              .n_attrs = 1,
                              .attrs = &th,
                              .n_values = ts_only ? 0 : 1,
                              .values = &v,
                              .n_timestamps = ts_only ? 2 : 1,
                              .timestamps = ts};
        assert_int_equal(fg_profiles_add_sample(p, prof, &s), 0);
    }
    return p;
}

/* ---- reading ---- */

static void stack_text(const struct fg_profiles *p, uint32_t stack, char *buf, size_t size)
{
    const struct fg_stack *st = fg_dict_get_stack(p, stack);
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < st->n_locations; i++) {
        const struct fg_location *l = fg_dict_get_location(p, st->locations[i]);
        struct fg_bytes name =
            fg_dict_get_string(p, fg_dict_get_function(p, l->lines[0].function)->name);
        used += (size_t)snprintf(buf + used, size - used, "%.*s;", (int)name.len, name.ptr);
    }
}

static void attrs_text(const struct fg_profiles *p, const uint32_t *attrs, uint32_t n,
                       char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < n; i++) {
        const struct fg_attribute *a = fg_dict_get_attribute(p, attrs[i]);
        struct fg_bytes k = fg_dict_get_string(p, a->key);
        used += (size_t)snprintf(buf + used, size - used, "%.*s=%.*s,", (int)k.len, k.ptr,
                                 (int)a->value.u.s.len, a->value.u.s.ptr);
    }
}

/* A small map from text key to a sum. */
struct sums {
    char keys[512][160];
    int64_t val[512];
    size_t n;
};

static void sums_add(struct sums *m, const char *key, int64_t v)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], key) == 0) {
            m->val[i] += v;
            return;
        }
    assert_true(m->n < 512);
    snprintf(m->keys[m->n], sizeof(m->keys[0]), "%s", key);
    m->val[m->n++] = v;
}

static void sums_equal(const struct sums *a, const struct sums *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        bool found = false;
        for (size_t j = 0; j < b->n && !found; j++)
            if (strcmp(a->keys[i], b->keys[j]) == 0) {
                found = true;
                if (a->val[i] != b->val[j])
                    fail_msg("%s: %lld vs %lld", a->keys[i], (long long)a->val[i],
                             (long long)b->val[j]);
            }
        if (!found)
            fail_msg("%s missing", a->keys[i]);
    }
}

/* Adds every sample of every profile of b: key = window|stack|attrs, value = weight. */
static void sums_of(struct sums *m, const struct fg_profiles *b, uint64_t window, bool attrs)
{
    for (uint32_t r = 0; r < b->n_resources; r++)
        for (uint32_t s = 0; s < b->resources[r].n_scopes; s++)
            for (uint32_t k = 0; k < b->resources[r].scopes[s].n_profiles; k++) {
                const struct fg_profile *prof = &b->resources[r].scopes[s].profiles[k];
                for (uint32_t i = 0; i < prof->n_samples; i++) {
                    const struct fg_sample *x = &prof->samples[i];
                    char st[100], at[60], key[170];
                    stack_text(b, x->stack, st, sizeof(st));
                    attrs_text(b, x->attrs, attrs ? x->n_attrs : 0, at, sizeof(at));
                    snprintf(key, sizeof(key), "%llu|%s|%s",
                             (unsigned long long)((prof->time_unix_nano - T0) / window), st, at);
                    sums_add(m, key, x->n_values ? x->values[0] : (int64_t)x->n_timestamps);
                }
            }
}

static size_t out_profiles(const struct recorder *r, uint64_t *first_time)
{
    size_t n = 0;
    for (size_t b = 0; b < r->n; b++)
        for (uint32_t i = 0; i < r->batches[b]->n_resources; i++)
            for (uint32_t s = 0; s < r->batches[b]->resources[i].n_scopes; s++) {
                n += r->batches[b]->resources[i].scopes[s].n_profiles;
                if (first_time && r->batches[b]->resources[i].scopes[s].n_profiles)
                    *first_time = r->batches[b]->resources[i].scopes[s].profiles[0].time_unix_nano;
            }
    return n;
}

/* ---- tests ---- */

static void test_sixty_seconds_six_windows(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    window: 10s");
    struct sums by_hand = {0}, got = {0};
    uint64_t seed = 7;
    int64_t in_total = 0;
    for (int sec = 0; sec < 60; sec++) {
        struct fg_profiles *p = second_profile("checkout", "i-1", T0 + (uint64_t)sec * SEC, 100,
                                               &seed, false, NULL);
        /* windows are counted from T0 in 10 s steps, as the processor's are from epoch */
        struct fg_profile *prof = &p->resources[0].scopes[0].profiles[0];
        for (uint32_t i = 0; i < prof->n_samples; i++) {
            char st[100], key[170];
            stack_text(p, prof->samples[i].stack, st, sizeof(st));
            snprintf(key, sizeof(key), "%d|%s|", sec / 10, st);
            sums_add(&by_hand, key, prof->samples[i].values[0]);
        }
        in_total += fg_profile_total(prof);
        push(&f, p);
    }
    stop(&f);
    int64_t out_total = 0;
    for (size_t b = 0; b < f.rec.n; b++) {
        const struct fg_profiles *out = f.rec.batches[b];
        sums_of(&got, out, 10 * SEC, false);
        for (uint32_t r = 0; r < out->n_resources; r++)
            for (uint32_t s = 0; s < out->resources[r].n_scopes; s++)
                for (uint32_t k = 0; k < out->resources[r].scopes[s].n_profiles; k++) {
                    const struct fg_profile *prof = &out->resources[r].scopes[s].profiles[k];
                    assert_int_equal((prof->time_unix_nano - T0) % (10 * SEC), 0);
                    assert_int_equal(prof->duration_nano, 10 * SEC);
                    assert_int_equal(prof->period, 10000000);
                    /* 8 stacks, sample attributes dropped: at most 8 samples */
                    assert_true(prof->n_samples <= 8);
                    out_total += fg_profile_total(prof);
                    for (uint32_t i = 0; i < prof->n_samples; i++) {
                        assert_int_equal(prof->samples[i].n_attrs, 0);
                        assert_int_equal(prof->samples[i].n_timestamps, 0);
                    }
                }
    }
    assert_int_equal(out_profiles(&f.rec, NULL), 6);
    /* windows of one resource that leave together share one output resource */
    for (size_t b = 0; b < f.rec.n; b++)
        assert_int_equal(f.rec.batches[b]->n_resources, 1);
    assert_int_equal(out_total, in_total);
    sums_equal(&by_hand, &got);
    struct fg_aggregate_stats st;
    fg_aggregate_processor_stats(f.proc, &st);
    assert_int_equal(st.profiles_in, 60);
    assert_int_equal(st.profiles_out, 6);
    assert_int_equal(st.open_groups, 0);
    teardown_proc(&f);
}

static void test_keep_sample_attributes_and_profile_attrs(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    window: 10s\n    keep_sample_attributes: [thread.name]");
    struct sums by_hand = {0}, got = {0};
    uint64_t seed = 3;
    for (int sec = 0; sec < 10; sec++) {
        struct fg_profiles *p = second_profile("cart", "i-1", T0 + (uint64_t)sec * SEC, 50,
                                               &seed, false, sec < 5 ? "r1" : "r2");
        sums_of(&by_hand, p, 10 * SEC, true);
        push(&f, p);
    }
    stop(&f);
    for (size_t b = 0; b < f.rec.n; b++)
        sums_of(&got, f.rec.batches[b], 10 * SEC, true);
    sums_equal(&by_hand, &got);
    assert_int_equal(out_profiles(&f.rec, NULL), 1);
    /* profile attributes: "run" differed (r1, r2) and goes; profile.seq was equal, stays */
    const struct fg_profiles *out = f.rec.batches[0];
    const struct fg_profile *prof = &out->resources[0].scopes[0].profiles[0];
    char at[100];
    attrs_text(out, prof->attrs, prof->n_attrs, at, sizeof(at));
    assert_string_equal(at, "profile.seq=i-1,");
    teardown_proc(&f);
}

static void test_group_by(void **state)
{
    FG_UNUSED(state);
    struct fixture all, by_service;
    setup_proc(&all, "    window: 10s");
    setup_proc(&by_service, "    window: 10s\n    group_by: [service.name]");
    uint64_t s1 = 1, s2 = 1;
    for (int sec = 0; sec < 10; sec++)
        for (int inst = 0; inst < 3; inst++) {
            char id[8];
            snprintf(id, sizeof(id), "i-%d", inst);
            push(&all, second_profile("search", id, T0 + (uint64_t)sec * SEC, 20, &s1, false, NULL));
            push(&by_service,
                 second_profile("search", id, T0 + (uint64_t)sec * SEC, 20, &s2, false, NULL));
        }
    stop(&all);
    stop(&by_service);
    assert_int_equal(out_profiles(&all.rec, NULL), 3);        /* one per instance */
    assert_int_equal(out_profiles(&by_service.rec, NULL), 1); /* instances merged */
    const struct fg_resource *res = &by_service.rec.batches[0]->resources[0].resource;
    assert_int_equal(res->n_attrs, 1); /* only the group_by keys remain */
    assert_int_equal(res->attrs[0].key.len, 12);
    assert_memory_equal(res->attrs[0].key.ptr, "service.name", 12);
    /* the three instance resources carry all three attributes */
    assert_int_equal(all.rec.batches[0]->resources[0].resource.n_attrs, 3);
    teardown_proc(&all);
    teardown_proc(&by_service);
}

static void test_timestamps(void **state)
{
    FG_UNUSED(state);
    struct fixture keep, sum;
    setup_proc(&keep, "    window: 10s\n    keep_timestamps: true");
    setup_proc(&sum, "    window: 10s");
    uint64_t s1 = 5, s2 = 5;
    size_t in_ts = 0;
    for (int sec = 0; sec < 10; sec++) {
        struct fg_profiles *p = second_profile("auth", "i-1", T0 + (uint64_t)sec * SEC, 30, &s1,
                                               true, NULL);
        in_ts += 2 * 30;
        push(&keep, p);
        push(&sum, second_profile("auth", "i-1", T0 + (uint64_t)sec * SEC, 30, &s2, true, NULL));
    }
    stop(&keep);
    stop(&sum);
    const struct fg_profile *k = &keep.rec.batches[0]->resources[0].scopes[0].profiles[0];
    const struct fg_profile *s = &sum.rec.batches[0]->resources[0].scopes[0].profiles[0];
    size_t out_ts = 0;
    for (uint32_t i = 0; i < k->n_samples; i++) {
        assert_int_equal(k->samples[i].n_values, 0);
        for (uint32_t t = 1; t < k->samples[i].n_timestamps; t++)
            assert_true(k->samples[i].timestamps[t - 1] <= k->samples[i].timestamps[t]);
        out_ts += k->samples[i].n_timestamps;
    }
    assert_int_equal(out_ts, in_ts);
    /* without timestamps, a timestamps-only sample's weight becomes its value */
    for (uint32_t i = 0; i < s->n_samples; i++) {
        assert_int_equal(s->samples[i].n_timestamps, 0);
        assert_int_equal(s->samples[i].n_values, 1);
    }
    assert_int_equal(fg_profile_total(s), (int64_t)in_ts);
    assert_int_equal(fg_profile_total(k), (int64_t)in_ts);
    teardown_proc(&keep);
    teardown_proc(&sum);
}

/* One upload for the dictionary test: resource svc/i-1, one profile at t, and its own
 * dictionary, filled in an order given by the caller. */
static struct fg_profiles *bare_upload(uint64_t t, struct fg_profile **prof)
{
    struct fg_profiles *p;
    assert_int_equal(fg_profiles_new(&p), 0);
    struct fg_keyvalue kv[2] = {
        {{"service.name", 12}, {.kind = FG_VALUE_STRING, .u.s = {"svc", 3}}},
        {{"service.instance.id", 19}, {.kind = FG_VALUE_STRING, .u.s = {"i-1", 3}}},
    };
    struct fg_resource res = {.n_attrs = 2, .attrs = kv};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "", 0);
    struct fg_scope scope = {.name = {"agent", 5}};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(p, rp, &scope, "", 0);
    struct fg_profile hdr = {.sample_type = {str(p, "cpu"), str(p, "nanoseconds")},
                             .period_type = {str(p, "cpu"), str(p, "nanoseconds")},
                             .time_unix_nano = t,
                             .duration_nano = SEC,
                             .period = 10000000};
    *prof = fg_profiles_add_profile(p, sp, &hdr);
    return p;
}

static uint32_t link_for(struct fg_profiles *p, uint8_t id)
{
    struct fg_link l;
    memset(&l, id, sizeof(l));
    return (uint32_t)fg_dict_link(p, &l);
}

static void add_sample(struct fg_profiles *p, struct fg_profile *prof, uint32_t stack,
                       uint32_t link, const uint32_t *attrs, uint32_t n_attrs, int64_t v)
{
    struct fg_sample s = {.stack = stack, .link = link, .n_attrs = n_attrs, .attrs = attrs,
                          .n_values = 1, .values = &v};
    assert_int_equal(fg_profiles_add_sample(p, prof, &s), 0);
}

/* Two uploads whose dictionaries hold the same stacks, attributes and links at different
 * indices (and other entries at the indices the first one used): samples merge by what
 * they mean, with the dropped attribute gone and the link kept apart. */
static void test_uploads_with_colliding_dictionaries(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    window: 10s\n    keep_sample_attributes: [thread.name]");
    struct fg_profile *pa, *pb;
    struct fg_profiles *a = bare_upload(T0, &pa);
    uint32_t a_s1 = stack_for(a, 1), a_s2 = stack_for(a, 2);
    uint32_t a_l1 = link_for(a, 1), a_l2 = link_for(a, 2);
    uint32_t a_w0[2] = {attr(a, "thread.name", "worker-0"), attr(a, "span.kind", "server")};
    uint32_t a_w1 = attr(a, "thread.name", "worker-1");
    add_sample(a, pa, a_s1, a_l1, a_w0, 2, 3);
    add_sample(a, pa, a_s2, 0, &a_w1, 1, 5);
    add_sample(a, pa, a_s1, a_l2, a_w0, 1, 7);

    struct fg_profiles *b = bare_upload(T0 + SEC, &pb);
    /* decoys first: b's early indices name other stacks, attributes and links */
    uint32_t decoy_stack = stack_for(b, 7);
    uint32_t decoy_attr = attr(b, "thread.name", "worker-9");
    uint32_t decoy_link = link_for(b, 9);
    uint32_t b_s1 = stack_for(b, 1), b_s2 = stack_for(b, 2);
    uint32_t b_w1[2] = {attr(b, "span.kind", "client"), attr(b, "thread.name", "worker-1")};
    uint32_t b_w0 = attr(b, "thread.name", "worker-0");
    uint32_t b_l1 = link_for(b, 1);
    assert_int_equal(b_s1, a_s2); /* same index, other stack */
    assert_int_equal(decoy_link, a_l1);
    add_sample(b, pb, b_s1, b_l1, &b_w0, 1, 11);
    add_sample(b, pb, b_s2, 0, b_w1, 2, 13);
    add_sample(b, pb, b_s1, 0, &b_w0, 1, 17);
    add_sample(b, pb, decoy_stack, decoy_link, &decoy_attr, 1, 19);
    push(&f, a);
    push(&f, b);
    stop(&f);

    assert_int_equal(out_profiles(&f.rec, NULL), 1);
    const struct fg_profiles *out = f.rec.batches[0];
    const struct fg_profile *prof = &out->resources[0].scopes[0].profiles[0];
    struct sums want = {0}, got = {0};
    sums_add(&want, "leaf_1;caller_1;caller_2;|thread.name=worker-0,|1", 3 + 11);
    sums_add(&want, "leaf_1;caller_1;caller_2;|thread.name=worker-0,|2", 7);
    sums_add(&want, "leaf_1;caller_1;caller_2;|thread.name=worker-0,|0", 17);
    sums_add(&want, "leaf_2;caller_1;caller_2;|thread.name=worker-1,|0", 5 + 13);
    sums_add(&want, "leaf_7;caller_1;caller_2;|thread.name=worker-9,|9", 19);
    for (uint32_t i = 0; i < prof->n_samples; i++) {
        const struct fg_sample *x = &prof->samples[i];
        char st[100], at[60], key[200];
        stack_text(out, x->stack, st, sizeof(st));
        attrs_text(out, x->attrs, x->n_attrs, at, sizeof(at));
        snprintf(key, sizeof(key), "%s|%s|%d", st, at,
                 x->link ? fg_dict_get_link(out, x->link)->trace_id[0] : 0);
        sums_add(&got, key, x->values[0]);
    }
    assert_int_equal(prof->n_samples, 5);
    sums_equal(&want, &got);
    teardown_proc(&f);
}

/* Runs 10 s of three services through config; returns the stats, checks totals. */
static void bounded_run(const char *config, struct fg_aggregate_stats *st)
{
    struct fixture f;
    setup_proc(&f, config);
    uint64_t seed = 11;
    int64_t in_total = 0, out_total = 0;
    static const char *const svcs[] = {"a", "b", "c"};
    for (int sec = 0; sec < 10; sec++)
        for (int k = 0; k < 3; k++) {
            struct fg_profiles *p =
                second_profile(svcs[k], "i", T0 + (uint64_t)sec * SEC, 40, &seed, false, NULL);
            in_total += fg_profile_total(&p->resources[0].scopes[0].profiles[0]);
            push(&f, p);
        }
    stop(&f);
    for (size_t b = 0; b < f.rec.n; b++)
        for (uint32_t r = 0; r < f.rec.batches[b]->n_resources; r++)
            for (uint32_t s = 0; s < f.rec.batches[b]->resources[r].n_scopes; s++)
                for (uint32_t k = 0; k < f.rec.batches[b]->resources[r].scopes[s].n_profiles; k++)
                    out_total +=
                        fg_profile_total(&f.rec.batches[b]->resources[r].scopes[s].profiles[k]);
    fg_aggregate_processor_stats(f.proc, st);
    printf("%s: %llu profiles out, %llu group-limit flushes, %llu stack-limit flushes\n",
           config + 4, (unsigned long long)st->profiles_out,
           (unsigned long long)st->early_group_limit, (unsigned long long)st->early_stack_limit);
    assert_int_equal(out_total, in_total); /* nothing lost to early flushes */
    teardown_proc(&f);
}

static void test_bounds_flush_early(void **state)
{
    FG_UNUSED(state);
    struct fg_aggregate_stats st;
    /* 3 services round-robin but room for 2 groups: from the third profile on, every
     * second one finds both places taken (a b | c a | b c | ...): 14 flushes in 30 */
    bounded_run("    window: 10s\n    max_groups: 2", &st);
    assert_int_equal(st.early_group_limit, 14);
    assert_int_equal(st.early_stack_limit, 0);
    /* 8 stacks but room for 4: every profile fills its group */
    bounded_run("    window: 10s\n    max_stacks_per_group: 4", &st);
    assert_int_equal(st.early_stack_limit, 30);
    assert_int_equal(st.profiles_out, 30);
    /* room enough: one profile per service */
    bounded_run("    window: 10s\n    max_groups: 3\n    max_stacks_per_group: 9", &st);
    assert_int_equal(st.early_group_limit + st.early_stack_limit, 0);
    assert_int_equal(st.profiles_out, 3);
}

static void test_tenants_never_merge(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    window: 10s");
    uint64_t seed = 2;
    int64_t total[2] = {0, 0};
    for (int sec = 0; sec < 4; sec++)
        for (int t = 0; t < 2; t++) {
            struct fg_profiles *p =
                second_profile("svc", "i", T0 + (uint64_t)sec * SEC, 10, &seed, false, NULL);
            snprintf(p->tenant, sizeof(p->tenant), "tenant-%d", t);
            total[t] += fg_profile_total(&p->resources[0].scopes[0].profiles[0]);
            push(&f, p);
        }
    stop(&f);
    assert_int_equal(f.rec.n, 2); /* one batch per tenant, even when flushed together */
    for (size_t b = 0; b < 2; b++) {
        const struct fg_profiles *out = f.rec.batches[b];
        int t = strcmp(out->tenant, "tenant-1") == 0;
        assert_true(t || strcmp(out->tenant, "tenant-0") == 0);
        assert_int_equal(out->n_resources, 1);
        assert_int_equal(fg_profile_total(&out->resources[0].scopes[0].profiles[0]), total[t]);
    }
    teardown_proc(&f);
}

static void test_window_closes_on_timer(void **state)
{
    FG_UNUSED(state);
    struct fixture f;
    setup_proc(&f, "    window: 200ms");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t t = (uint64_t)now.tv_sec * SEC + (uint64_t)now.tv_nsec;
    uint64_t seed = 1;
    push(&f, second_profile("svc", "i", t, 10, &seed, false, NULL));
    push(&f, second_profile("svc", "i", t + 1000, 10, &seed, false, NULL));
    /* closes 200 ms after its first profile arrived; the timer ticks every 10 ms */
    for (int i = 0; i < 100 && out_profiles(&f.rec, NULL) == 0; i++)
        usleep(10000);
    uint64_t start = 0;
    size_t n = out_profiles(&f.rec, &start);
    assert_true(n >= 1 && n <= 2); /* two profiles may straddle a window edge */
    assert_int_equal(start % 200000000ULL, 0);
    teardown_proc(&f);
}

/* Every allocation of a consume, then of the shutdown flush, fails once in turn: the
 * processor refuses retryably or goes on, never crashes or leaks (the ASan build checks). */
static void test_allocation_failures(void **state)
{
    FG_UNUSED(state);
    const char *cfg = "    window: 10s\n    keep_sample_attributes: [thread.name]\n"
                      "    keep_timestamps: true\n    max_groups: 3";
    uint64_t seed = 9;
    struct fixture f;
    setup_proc(&f, cfg);
    push(&f, second_profile("a", "i", T0, 20, &seed, false, NULL));
    struct fg_profiles *in = second_profile("b", "i", T0 + SEC, 20, &seed, false, NULL);
    struct fg_err err;
    fg_alloc_fail_after(ULONG_MAX);
    assert_int_equal(fg_consume(&f.proc->consumer, in, &err), 0);
    unsigned long count = fg_alloc_fail_after(0);
    int failed = 0;
    for (unsigned long n = 1; n <= count; n++) {
        in = second_profile(n % 2 ? "a" : "c", "i", T0 + n * SEC, 20, &seed, false, NULL);
        fg_alloc_fail_after(n);
        int rc = fg_consume(&f.proc->consumer, in, &err);
        fg_alloc_fail_after(0);
        assert_true(rc == 0 || rc == FG_ERETRYABLE);
        failed += rc != 0;
    }
    printf("aggregate consume under allocation failures: %lu walked, %d refused\n", count,
           failed);
    assert_true(failed > 0);
    teardown_proc(&f);

    /* the shutdown flush */
    setup_proc(&f, cfg);
    push(&f, second_profile("a", "i", T0, 20, &seed, false, NULL));
    fg_alloc_fail_after(ULONG_MAX);
    stop(&f);
    count = fg_alloc_fail_after(0);
    teardown_proc(&f);
    for (unsigned long n = 1; n <= count; n++) {
        setup_proc(&f, cfg);
        push(&f, second_profile("a", "i", T0, 20, &seed, false, NULL));
        push(&f, second_profile("b", "i", T0, 20, &seed, false, NULL));
        fg_alloc_fail_after(n);
        stop(&f);
        fg_alloc_fail_after(0);
        assert_true(f.rec.n <= 1);
        teardown_proc(&f);
    }
}

static void test_config_errors(void **state)
{
    FG_UNUSED(state);
    static const struct {
        const char *body, *where, *what;
    } cases[] = {
        {"    window: -1s", "test.yaml:4:13:", "invalid duration"},
        {"    window: 0s", "test.yaml:4:13:", "out of range"},
        {"    max_groups: 0", "test.yaml:4:17:", "out of range"},
        {"    group_by: service.name", "test.yaml:4:15:", "expected a list"},
        {"    keep_timestamp: true", "test.yaml:4:5:", "unknown key"},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(cases); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml),
                 "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}\n"
                 "processors:\n  aggregate:\n%s\n"
                 "exporters: {debug: {}}\n"
                 "service: {pipelines: {profiles: {receivers: [otlp], processors: [aggregate], "
                 "exporters: [debug]}}}\n",
                 cases[i].body);
        struct fg_diag diag;
        struct fg_config *cfg = NULL;
        fg_diag_init(&diag);
        assert_int_equal(fg_config_load_string("test.yaml", yaml, strlen(yaml), &cfg, &diag),
                         FG_EINVAL);
        assert_int_equal(fg_buf_append(&diag.text, "", 1), 0);
        const char *text = (const char *)diag.text.data;
        if (!strstr(text, cases[i].where) || !strstr(text, cases[i].what))
            fail_msg("expected \"%s\" ... \"%s\" in:\n%s", cases[i].where, cases[i].what, text);
        fg_diag_free(&diag);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sixty_seconds_six_windows),
        cmocka_unit_test(test_keep_sample_attributes_and_profile_attrs),
        cmocka_unit_test(test_group_by),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_uploads_with_colliding_dictionaries),
        cmocka_unit_test(test_bounds_flush_early),
        cmocka_unit_test(test_tenants_never_merge),
        cmocka_unit_test(test_window_closes_on_timer),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
