/* The pprof converter: the WIRE.md §5 mapping both ways, multi-column merge and split, and
 * every validation error, on pprofs built here field by field. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_gzip.h"
#include "fg_model.h"
#include "fg_otlp.h"
#include "fg_pprof.h"

/* ---- a tiny protobuf writer for building test pprofs ---- */

static void pv(struct fg_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    assert_int_equal(fg_buf_append(b, tmp, n), 0);
}

static void pu(struct fg_buf *b, uint32_t field, uint64_t v)
{
    pv(b, (uint64_t)field << 3);
    pv(b, v);
}

static void pbytes(struct fg_buf *b, uint32_t field, const void *data, size_t len)
{
    pv(b, ((uint64_t)field << 3) | 2);
    pv(b, len);
    if (len)
        assert_int_equal(fg_buf_append(b, data, len), 0);
}

static void pmsg(struct fg_buf *b, uint32_t field, struct fg_buf *sub)
{
    pbytes(b, field, sub->data, sub->len);
    sub->len = 0;
}

/* string table of the test pprof; S_x are the indices */
static const char *const strs[] = {"",         "samples",     "count",     "cpu",
                                   "nanoseconds", "main",     "foo",       "main.go",
                                   "/bin/app", "abc123",      "thread",    "worker",
                                   "size",     "bytes",       "comment one", "comment two",
                                   "drop.*",   "keep.*",      "https://doc.example/x",
                                   "extra",    "main_sys"};
enum {
    S_EMPTY, S_SAMPLES, S_COUNT, S_CPU, S_NS, S_MAIN, S_FOO, S_MAIN_GO, S_BIN, S_BUILD,
    S_THREAD, S_WORKER, S_SIZE, S_BYTES, S_C1, S_C2, S_DROP, S_KEEP, S_DOC, S_EXTRA,
    S_MAIN_SYS, S_COUNT_ALL
};

/* Knobs that break one thing each; zero = the valid profile. */
struct knobs {
    int fn_id0, map_id0, loc_id0;
    int line_fn_dangling, loc_map_dangling, sample_loc_dangling, sample_loc_zero;
    int extra_value, label_str_oob, first_string_nonempty, dup_fn_id, sample_type_oob;
    int comment_oob, truncate;
};

static void make_pprof(const struct knobs *k, struct fg_buf *out)
{
    struct fg_buf sub, sub2;
    fg_buf_init(&sub, 0);
    fg_buf_init(&sub2, 0);
    fg_buf_init(out, 0);

    /* sample types: samples/count, cpu/nanoseconds */
    pu(&sub, 1, S_SAMPLES);
    pu(&sub, 2, S_COUNT);
    pmsg(out, 1, &sub);
    pu(&sub, 1, k->sample_type_oob ? 500 : S_CPU);
    pu(&sub, 2, S_NS);
    pmsg(out, 1, &sub);

    /* s1: foo (inlined into main) at loc 2, main at loc 1; labels thread=worker, size=1024
     * bytes. s2: main; labels thread=worker, thread=extra (a repeated key). */
    pv(&sub2, k->sample_loc_dangling ? 99 : k->sample_loc_zero ? 0 : 2);
    pv(&sub2, 1);
    pmsg(&sub, 1, &sub2);
    pv(&sub2, 1);
    pv(&sub2, 10000000);
    if (k->extra_value)
        pv(&sub2, 5);
    pmsg(&sub, 2, &sub2);
    pu(&sub2, 1, S_THREAD);
    pu(&sub2, 2, k->label_str_oob ? 1000 : S_WORKER);
    pmsg(&sub, 3, &sub2);
    pu(&sub2, 1, S_SIZE);
    pu(&sub2, 3, 1024);
    pu(&sub2, 4, S_BYTES);
    pmsg(&sub, 3, &sub2);
    pmsg(out, 2, &sub);

    pu(&sub, 1, 1); /* unpacked location id and values */
    pu(&sub, 2, 3);
    pu(&sub, 2, 30000000);
    pu(&sub2, 1, S_THREAD);
    pu(&sub2, 2, S_WORKER);
    pmsg(&sub, 3, &sub2);
    pu(&sub2, 1, S_THREAD);
    pu(&sub2, 2, S_EXTRA);
    pmsg(&sub, 3, &sub2);
    pmsg(out, 2, &sub);

    /* mapping 1 with build id and three of the four has_* flags */
    pu(&sub, 1, k->map_id0 ? 0 : 1);
    pu(&sub, 2, 0x400000);
    pu(&sub, 3, 0x500000);
    pu(&sub, 5, S_BIN);
    pu(&sub, 6, S_BUILD);
    pu(&sub, 7, 1);
    pu(&sub, 8, 1);
    pu(&sub, 9, 1);
    pmsg(out, 3, &sub);

    /* locations */
    pu(&sub, 1, k->loc_id0 ? 0 : 1);
    pu(&sub, 2, k->loc_map_dangling ? 7 : 1);
    pu(&sub, 3, 0x401000);
    pu(&sub2, 1, 1);
    pu(&sub2, 2, 12);
    pu(&sub2, 3, 4);
    pmsg(&sub, 4, &sub2);
    pmsg(out, 4, &sub);
    pu(&sub, 1, 2);
    pu(&sub, 2, 1);
    pu(&sub, 3, 0x402000);
    pu(&sub2, 1, k->line_fn_dangling ? 42 : 2);
    pu(&sub2, 2, 5);
    pmsg(&sub, 4, &sub2);
    pu(&sub2, 1, 1);
    pu(&sub2, 2, 13);
    pmsg(&sub, 4, &sub2);
    pu(&sub, 5, 1); /* is_folded */
    pmsg(out, 4, &sub);

    /* functions */
    pu(&sub, 1, k->fn_id0 ? 0 : 1);
    pu(&sub, 2, S_MAIN);
    pu(&sub, 3, S_MAIN_SYS);
    pu(&sub, 4, S_MAIN_GO);
    pu(&sub, 5, 10);
    pmsg(out, 5, &sub);
    pu(&sub, 1, k->dup_fn_id ? 1 : 2);
    pu(&sub, 2, S_FOO);
    pu(&sub, 4, S_MAIN_GO);
    pmsg(out, 5, &sub);

    for (int i = 0; i < S_COUNT_ALL; i++) {
        const char *s = i == 0 && k->first_string_nonempty ? "x" : strs[i];
        pbytes(out, 6, s, strlen(s));
    }
    pu(out, 7, S_DROP);
    pu(out, 8, S_KEEP);
    pu(out, 9, 1700000000000000000ULL);
    pu(out, 10, 10000000000ULL);
    pu(&sub, 1, S_CPU);
    pu(&sub, 2, S_NS);
    pmsg(out, 11, &sub);
    pu(out, 12, 10000000);
    pv(&sub2, S_C1);
    pv(&sub2, k->comment_oob ? 77 : S_C2);
    pmsg(out, 13, &sub2);
    pu(out, 14, S_CPU);
    pu(out, 15, S_DOC);
    if (k->truncate)
        out->len -= 3;
    fg_buf_free(&sub);
    fg_buf_free(&sub2);
}

/* ---- model inspection ---- */

static bool str_is(const struct fg_profiles *p, uint32_t idx, const char *want)
{
    struct fg_bytes b = fg_dict_get_string(p, idx);
    return b.len == strlen(want) && memcmp(b.ptr, want, b.len) == 0;
}

static const struct fg_attribute *find_attr(const struct fg_profiles *p, const uint32_t *attrs,
                                            uint32_t n, const char *key)
{
    for (uint32_t i = 0; i < n; i++) {
        const struct fg_attribute *a = fg_dict_get_attribute(p, attrs[i]);
        if (str_is(p, a->key, key))
            return a;
    }
    return NULL;
}

static bool value_is_str(const struct fg_value *v, const char *want)
{
    return v->kind == FG_VALUE_STRING && v->u.s.len == strlen(want) &&
           memcmp(v->u.s.ptr, want, v->u.s.len) == 0;
}

static const struct fg_keyvalue *find_kv(const struct fg_scope *s, const char *key)
{
    for (uint32_t i = 0; i < s->n_attrs; i++)
        if (s->attrs[i].key.len == strlen(key) &&
            memcmp(s->attrs[i].key.ptr, key, strlen(key)) == 0)
            return &s->attrs[i];
    return NULL;
}

static struct fg_profiles *decode_ok(const uint8_t *data, size_t len)
{
    struct fg_profiles *p = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_profiles_new(&p), 0);
    int rc = fg_pprof_decode(data, len, 0, NULL, p, &err);
    if (rc != 0)
        fail_msg("decode: %s", err.msg);
    return p;
}

/* Collects what fg_pprof_encode emits. */
struct collected {
    struct fg_buf data[8];
    uint32_t ncols[8];
    int n;
};

static int collect(void *ctx, const struct fg_pprof_group *g, const uint8_t *data, size_t len,
                   struct fg_err *err)
{
    struct collected *c = ctx;
    assert_true(c->n < 8);
    fg_buf_init(&c->data[c->n], 0);
    assert_int_equal(fg_buf_append(&c->data[c->n], data, len), 0);
    c->ncols[c->n] = g->n_profiles;
    c->n++;
    return 0;
}

static void collected_free(struct collected *c)
{
    for (int i = 0; i < c->n; i++)
        fg_buf_free(&c->data[i]);
    c->n = 0;
}

static void encode_ok(const struct fg_profiles *p, bool gzip, struct collected *c)
{
    struct fg_err err = {{0}};
    memset(c, 0, sizeof(*c));
    int rc = fg_pprof_encode(p, gzip, collect, c, &err);
    if (rc != 0)
        fail_msg("encode: %s", err.msg);
}

/* ---- mapping pprof → model ---- */

static void test_decode_mapping(void **state)
{
    struct knobs k = {0};
    struct fg_buf pp;
    make_pprof(&k, &pp);
    struct fg_profiles *p = decode_ok(pp.data, pp.len);

    assert_int_equal(p->n_resources, 1);
    assert_int_equal(p->resources[0].n_scopes, 1);
    const struct fg_scope_profiles *sp = &p->resources[0].scopes[0];
    assert_int_equal(sp->n_profiles, 2);
    assert_int_equal(p->n_samples, 4);

    /* scope: default sample type and the column order */
    const struct fg_keyvalue *dflt = find_kv(&sp->scope, "pprof.scope.default_sample_type");
    assert_non_null(dflt);
    assert_true(value_is_str(&dflt->value, "cpu"));
    const struct fg_keyvalue *order = find_kv(&sp->scope, "pprof.scope.sample_type_order");
    assert_non_null(order);
    assert_int_equal(order->value.kind, FG_VALUE_ARRAY);
    assert_int_equal(order->value.u.array.n, 2);
    assert_int_equal(order->value.u.array.items[1].u.i, 1);

    for (int i = 0; i < 2; i++) {
        const struct fg_profile *prof = &sp->profiles[i];
        assert_true(str_is(p, prof->sample_type.type, i == 0 ? "samples" : "cpu"));
        assert_true(str_is(p, prof->sample_type.unit, i == 0 ? "count" : "nanoseconds"));
        assert_true(str_is(p, prof->period_type.type, "cpu"));
        assert_int_equal(prof->period, 10000000);
        assert_int_equal(prof->time_unix_nano, 1700000000000000000ULL);
        assert_int_equal(prof->duration_nano, 10000000000ULL);
        assert_int_equal(prof->n_samples, 2);
        assert_int_equal(fg_profile_total(prof), i == 0 ? 4 : 40000000);
        /* profile attributes */
        const struct fg_attribute *a;
        a = find_attr(p, prof->attrs, prof->n_attrs, "pprof.profile.drop_frames");
        assert_true(a && value_is_str(&a->value, "drop.*"));
        a = find_attr(p, prof->attrs, prof->n_attrs, "pprof.profile.keep_frames");
        assert_true(a && value_is_str(&a->value, "keep.*"));
        a = find_attr(p, prof->attrs, prof->n_attrs, "pprof.profile.doc_url");
        assert_true(a && value_is_str(&a->value, "https://doc.example/x"));
        a = find_attr(p, prof->attrs, prof->n_attrs, "pprof.profile.comment");
        assert_non_null(a);
        assert_int_equal(a->value.kind, FG_VALUE_ARRAY);
        assert_int_equal(a->value.u.array.n, 2);
        assert_true(value_is_str(&a->value.u.array.items[0], "comment one"));
        assert_true(value_is_str(&a->value.u.array.items[1], "comment two"));
    }

    /* sample 0: labels, stack foo(inlined in main)@0x402000 → main@0x401000 */
    const struct fg_sample *s = &sp->profiles[1].samples[0];
    assert_int_equal(s->n_values, 1);
    assert_int_equal(s->values[0], 10000000);
    const struct fg_attribute *a = find_attr(p, s->attrs, s->n_attrs, "thread");
    assert_true(a && value_is_str(&a->value, "worker"));
    assert_int_equal(a->unit, 0);
    a = find_attr(p, s->attrs, s->n_attrs, "size");
    assert_non_null(a);
    assert_int_equal(a->value.kind, FG_VALUE_INT);
    assert_int_equal(a->value.u.i, 1024);
    assert_true(str_is(p, a->unit, "bytes"));
    const struct fg_stack *st = fg_dict_get_stack(p, s->stack);
    assert_int_equal(st->n_locations, 2);
    const struct fg_location *leaf = fg_dict_get_location(p, st->locations[0]);
    assert_int_equal(leaf->address, 0x402000);
    assert_int_equal(leaf->n_lines, 2);
    assert_true(str_is(p, fg_dict_get_function(p, leaf->lines[0].function)->name, "foo"));
    assert_true(str_is(p, fg_dict_get_function(p, leaf->lines[1].function)->name, "main"));
    a = find_attr(p, leaf->attrs, leaf->n_attrs, "pprof.location.is_folded");
    assert_true(a && a->value.kind == FG_VALUE_BOOL && a->value.u.b);
    const struct fg_location *root = fg_dict_get_location(p, st->locations[1]);
    assert_int_equal(root->n_attrs, 0);
    assert_int_equal(root->lines[0].line, 12);
    assert_int_equal(root->lines[0].column, 4);
    const struct fg_function *mainf = fg_dict_get_function(p, root->lines[0].function);
    assert_true(str_is(p, mainf->system_name, "main_sys"));
    assert_true(str_is(p, mainf->filename, "main.go"));
    assert_int_equal(mainf->start_line, 10);

    /* mapping: build id and the three flags that are set */
    const struct fg_mapping *m = fg_dict_get_mapping(p, root->mapping);
    assert_int_equal(m->memory_start, 0x400000);
    assert_true(str_is(p, m->filename, "/bin/app"));
    a = find_attr(p, m->attrs, m->n_attrs, "process.executable.build_id.gnu");
    assert_true(a && value_is_str(&a->value, "abc123"));
    assert_non_null(find_attr(p, m->attrs, m->n_attrs, "pprof.mapping.has_functions"));
    assert_non_null(find_attr(p, m->attrs, m->n_attrs, "pprof.mapping.has_filenames"));
    assert_non_null(find_attr(p, m->attrs, m->n_attrs, "pprof.mapping.has_line_numbers"));
    assert_null(find_attr(p, m->attrs, m->n_attrs, "pprof.mapping.has_inline_frames"));

    /* sample 1: the repeated key became one array attribute */
    s = &sp->profiles[0].samples[1];
    assert_int_equal(s->n_attrs, 1);
    a = fg_dict_get_attribute(p, s->attrs[0]);
    assert_int_equal(a->value.kind, FG_VALUE_ARRAY);
    assert_int_equal(a->value.u.array.n, 2);
    assert_true(value_is_str(&a->value.u.array.items[1], "extra"));

    fg_profiles_unref(p);
    fg_buf_free(&pp);
}

/* decode → encode → decode is the identity on the model (the canonical form resolves
 * every reference, so fresh ids and string order do not matter). */
static void test_roundtrip_is_lossless(void **state)
{
    struct knobs k = {0};
    struct fg_buf pp;
    make_pprof(&k, &pp);
    struct fg_profiles *p = decode_ok(pp.data, pp.len);
    for (int gz = 0; gz < 2; gz++) {
        struct collected c;
        encode_ok(p, gz, &c);
        assert_int_equal(c.n, 1);
        assert_int_equal(c.ncols[0], 2);
        assert_int_equal(fg_is_gzip(c.data[0].data, c.data[0].len), gz);
        struct fg_profiles *q = decode_ok(c.data[0].data, c.data[0].len);
        char *a = tu_canon(p), *b = tu_canon(q);
        assert_string_equal(a, b);
        fg_free(a);
        fg_free(b);
        fg_profiles_unref(q);
        collected_free(&c);
    }
    fg_profiles_unref(p);
    fg_buf_free(&pp);
}

/* The encoder's output: fresh ids from 1, string_table[0] == "", strings deduplicated. */
static void test_encode_ids_and_strings(void **state)
{
    struct knobs k = {0};
    struct fg_buf pp;
    make_pprof(&k, &pp);
    struct fg_profiles *p = decode_ok(pp.data, pp.len);
    struct collected c;
    encode_ok(p, false, &c);
    assert_int_equal(c.n, 1);
    /* walk the top level: first string empty, ids of mappings/locations/functions 1..n */
    const uint8_t *q = c.data[0].data, *end = q + c.data[0].len;
    int n_strings = 0, next_id[6] = {0, 0, 0, 1, 1, 1};
    while (q < end) {
        uint8_t key = *q++;
        uint32_t field = key >> 3;
        if ((key & 7) == 0) {
            while (*q++ & 0x80)
                ;
            continue;
        }
        assert_int_equal(key & 7, 2);
        uint64_t len = 0;
        for (int shift = 0;; shift += 7) {
            uint8_t b = *q++;
            len |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80))
                break;
        }
        if (field == 6 && n_strings++ == 0)
            assert_int_equal(len, 0);
        if (field >= 3 && field <= 5) {
            assert_int_equal(q[0], 0x08); /* id first */
            assert_int_equal(q[1], next_id[field]++);
        }
        q += len;
    }
    assert_int_equal(next_id[3], 2); /* one mapping */
    assert_int_equal(next_id[4], 3); /* two locations */
    assert_int_equal(next_id[5], 3); /* two functions */
    assert_true(n_strings > 10 && n_strings <= S_COUNT_ALL + 2);
    collected_free(&c);
    fg_profiles_unref(p);
    fg_buf_free(&pp);
}

/* ---- model → pprof ---- */

/* Two profiles that line up merge; a changed stack, a second scope or a repeated sample
 * type splits them. */
static void test_merge_and_split(void **state)
{
    struct fg_profiles *p = tu_make_batch("svc", 4);
    assert_non_null(p);
    struct fg_scope_profiles *sp = &p->resources[0].scopes[0];
    struct fg_profile hdr = sp->profiles[0];
    hdr.sample_type.type = (uint32_t)fg_dict_string(p, "samples", 7);
    hdr.sample_type.unit = (uint32_t)fg_dict_string(p, "count", 5);
    struct fg_profile *second = fg_profiles_add_profile(p, sp, &hdr);
    assert_non_null(second);
    for (uint32_t j = 0; j < sp->profiles[0].n_samples; j++) {
        struct fg_sample s = sp->profiles[0].samples[j];
        s.n_values = 0; /* timestamps only: counts */
        assert_int_equal(fg_profiles_add_sample(p, &sp->profiles[1], &s), 0);
    }
    struct collected c;
    encode_ok(p, false, &c);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.ncols[0], 2);
    struct fg_profiles *q = decode_ok(c.data[0].data, c.data[0].len);
    const struct fg_scope_profiles *qs = &q->resources[0].scopes[0];
    assert_int_equal(qs->n_profiles, 2);
    /* values [i+1, 2(i+1)] per sample sum to 3(i+1); two timestamps count 2 */
    assert_int_equal(fg_profile_total(&qs->profiles[0]), 3 * (1 + 2 + 3 + 4));
    assert_int_equal(fg_profile_total(&qs->profiles[1]), 2 * 4);
    assert_true(str_is(q, qs->profiles[1].sample_type.type, "samples"));
    fg_profiles_unref(q);
    collected_free(&c);

    /* the same type twice cannot share a pprof */
    sp->profiles[1].sample_type = sp->profiles[0].sample_type;
    encode_ok(p, false, &c);
    assert_int_equal(c.n, 2);
    collected_free(&c);
    sp->profiles[1].sample_type.type = hdr.sample_type.type;

    /* a sample with another stack breaks the line-up */
    sp->profiles[1].samples[2].stack = sp->profiles[1].samples[0].stack;
    encode_ok(p, false, &c);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.ncols[0], 1);
    assert_int_equal(c.ncols[1], 1);
    collected_free(&c);
    fg_profiles_unref(p);
}

/* Links become trace_id/span_id labels; attributes become labels. */
static void test_links_and_attributes_to_labels(void **state)
{
    struct fg_profiles *p = tu_make_batch("svc", 2);
    assert_non_null(p);
    struct collected c;
    encode_ok(p, true, &c);
    assert_int_equal(c.n, 1);
    struct fg_profiles *q = decode_ok(c.data[0].data, c.data[0].len);
    const struct fg_profile *prof = &q->resources[0].scopes[0].profiles[0];
    assert_int_equal(prof->n_samples, 2);
    const struct fg_sample *s0 = &prof->samples[0], *s1 = &prof->samples[1];
    assert_null(find_attr(q, s0->attrs, s0->n_attrs, "trace_id"));
    const struct fg_attribute *a = find_attr(q, s1->attrs, s1->n_attrs, "trace_id");
    assert_true(a && value_is_str(&a->value, "0102030405060708090a0b0c0d0e0f10"));
    a = find_attr(q, s1->attrs, s1->n_attrs, "span_id");
    assert_true(a && value_is_str(&a->value, "0a0b0c0d0e0f0102"));
    a = find_attr(q, s1->attrs, s1->n_attrs, "thread.name");
    assert_true(a && value_is_str(&a->value, "worker-1"));
    /* the build id survives, the frame type (no pprof slot) does not */
    const struct fg_stack *st = fg_dict_get_stack(q, s0->stack);
    const struct fg_location *root = fg_dict_get_location(q, st->locations[st->n_locations - 1]);
    const struct fg_mapping *m = fg_dict_get_mapping(q, root->mapping);
    a = find_attr(q, m->attrs, m->n_attrs, "process.executable.build_id.gnu");
    assert_true(a && value_is_str(&a->value, "abc123"));
    assert_int_equal(root->n_attrs, 0);
    fg_profiles_unref(q);
    collected_free(&c);
    fg_profiles_unref(p);
}

/* contrib's one-attribute-per-comment form, and the default sample type only when it is a
 * column of that pprof. */
static void test_contrib_comments_and_default_type(void **state)
{
    struct fg_profiles *p = tu_make_batch("svc", 1);
    assert_non_null(p);
    struct fg_scope_profiles *sp = &p->resources[0].scopes[0];
    const char *texts[] = {"second", "first", "tenth"};
    const char *keys[] = {"pprof.profile.comment.1", "pprof.profile.comment.0",
                          "pprof.profile.comment.10"};
    uint32_t attrs[3];
    for (int i = 0; i < 3; i++) {
        struct fg_attribute a = {.key = (uint32_t)fg_dict_string(p, keys[i], strlen(keys[i])),
                                 .value = {.kind = FG_VALUE_STRING,
                                           .u.s = {texts[i], (uint32_t)strlen(texts[i])}}};
        attrs[i] = (uint32_t)fg_dict_attribute(p, &a);
    }
    sp->profiles[0].attrs = attrs;
    sp->profiles[0].n_attrs = 3;
    struct fg_keyvalue kv = {{"pprof.scope.default_sample_type", 31},
                             {.kind = FG_VALUE_STRING, .u.s = {"cpu", 3}}};
    sp->scope.attrs = &kv;
    sp->scope.n_attrs = 1;

    struct collected c;
    encode_ok(p, false, &c);
    struct fg_profiles *q = decode_ok(c.data[0].data, c.data[0].len);
    const struct fg_scope_profiles *qs = &q->resources[0].scopes[0];
    const struct fg_profile *prof = &qs->profiles[0];
    const struct fg_attribute *a = find_attr(q, prof->attrs, prof->n_attrs,
                                             "pprof.profile.comment");
    assert_non_null(a);
    assert_int_equal(a->value.u.array.n, 3);
    assert_true(value_is_str(&a->value.u.array.items[0], "first"));
    assert_true(value_is_str(&a->value.u.array.items[1], "second"));
    assert_true(value_is_str(&a->value.u.array.items[2], "tenth"));
    const struct fg_keyvalue *d = find_kv(&qs->scope, "pprof.scope.default_sample_type");
    assert_true(d && value_is_str(&d->value, "cpu"));
    fg_profiles_unref(q);
    collected_free(&c);

    kv.value.u.s = (struct fg_bytes){"wall", 4}; /* not a column: left out */
    encode_ok(p, false, &c);
    q = decode_ok(c.data[0].data, c.data[0].len);
    assert_null(find_kv(&q->resources[0].scopes[0].scope, "pprof.scope.default_sample_type"));
    fg_profiles_unref(q);
    collected_free(&c);
    sp->scope.attrs = NULL;
    sp->scope.n_attrs = 0;
    sp->profiles[0].attrs = NULL;
    sp->profiles[0].n_attrs = 0;
    fg_profiles_unref(p);
}

/* A second pprof with the same origin joins the resource, in a scope of its own. */
static void test_decode_origin_and_join(void **state)
{
    struct knobs k = {0};
    struct fg_buf pp;
    make_pprof(&k, &pp);
    struct fg_profiles *p = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_profiles_new(&p), 0);
    struct fg_keyvalue res = {{"service.name", 12}, {.kind = FG_VALUE_STRING, .u.s = {"app", 3}}};
    struct fg_pprof_origin o = {&res, 1, {"gospy", 5}, {"1.2", 3}};
    assert_int_equal(fg_pprof_decode(pp.data, pp.len, 0, &o, p, &err), 0);
    assert_int_equal(fg_pprof_decode(pp.data, pp.len, 0, &o, p, &err), 0);
    assert_int_equal(p->n_resources, 1);
    assert_int_equal(p->resources[0].n_scopes, 2);
    assert_int_equal(p->resources[0].resource.n_attrs, 1);
    assert_memory_equal(p->resources[0].scopes[1].scope.name.ptr, "gospy", 5);
    assert_int_equal(p->n_samples, 8);
    /* two scopes → two pprofs */
    struct collected c;
    encode_ok(p, false, &c);
    assert_int_equal(c.n, 2);
    collected_free(&c);
    fg_profiles_unref(p);
    fg_buf_free(&pp);
}

/* ---- validation ---- */

static void expect_error(const struct knobs *k, int want_rc, const char *want_msg)
{
    struct fg_buf pp;
    make_pprof(k, &pp);
    struct fg_profiles *p = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_profiles_new(&p), 0);
    int rc = fg_pprof_decode(pp.data, pp.len, 0, NULL, p, &err);
    if (rc != want_rc || !strstr(err.msg, want_msg))
        fail_msg("want %d \"%s\", got %d \"%s\"", want_rc, want_msg, rc, err.msg);
    fg_profiles_unref(p);
    fg_buf_free(&pp);
}

static void test_validation_errors(void **state)
{
    struct {
        struct knobs k;
        const char *msg;
    } cases[] = {
        {{.fn_id0 = 1}, "function[0]: id 0"},
        {{.map_id0 = 1}, "mapping[0]: id 0"},
        {{.loc_id0 = 1}, "location[0]: id 0"},
        {{.line_fn_dangling = 1}, "location[1].line[0]: function id 42 not found"},
        {{.loc_map_dangling = 1}, "location[0]: mapping id 7 not found"},
        {{.sample_loc_dangling = 1}, "sample[0].location_id[0]: location id 99 not found"},
        {{.sample_loc_zero = 1}, "sample[0].location_id[0]: location id 0 not found"},
        {{.extra_value = 1}, "sample[0]: 3 values, but the profile has 2 sample types"},
        {{.label_str_oob = 1}, "sample[0].label[0].str: string index 1000 out of range"},
        {{.sample_type_oob = 1}, "sample_type[1].type: string index 500 out of range"},
        {{.comment_oob = 1}, "comment[1].index: string index 77 out of range"},
        {{.first_string_nonempty = 1}, "string_table[0] must be \"\""},
        {{.dup_fn_id = 1}, "function id 1 is used twice"},
        {{.truncate = 1}, "malformed protobuf"},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(cases); i++)
        expect_error(&cases[i].k, FG_EINVAL, cases[i].msg);
}

static void expect_bytes_error(const uint8_t *data, size_t len, size_t max, int want_rc,
                               const char *want_msg)
{
    struct fg_profiles *p = NULL;
    struct fg_err err = {{0}};
    assert_int_equal(fg_profiles_new(&p), 0);
    int rc = fg_pprof_decode(data, len, max, NULL, p, &err);
    if (rc != want_rc || !strstr(err.msg, want_msg))
        fail_msg("want %d \"%s\", got %d \"%s\"", want_rc, want_msg, rc, err.msg);
    fg_profiles_unref(p);
}

static void test_legacy_and_limits(void **state)
{
    static const uint8_t cpu64[24] = {0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0,
                                      0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t cpu32[16] = {0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x27, 0, 0};
    const char *heap = "heap profile:    1:  8 [   1:  8] @ heapz_v2/524288\n";
    const char *contention = "--- contention:\ncycles/second=1\n";
    expect_bytes_error(cpu64, sizeof(cpu64), 0, FG_EUNSUPPORTED,
                       "unsupported pprof format (legacy gperftools CPU profile)");
    expect_bytes_error(cpu32, sizeof(cpu32), 0, FG_EUNSUPPORTED,
                       "unsupported pprof format (legacy gperftools CPU profile)");
    expect_bytes_error((const uint8_t *)heap, strlen(heap), 0, FG_EUNSUPPORTED,
                       "unsupported pprof format (legacy heap text)");
    expect_bytes_error((const uint8_t *)contention, strlen(contention), 0, FG_EUNSUPPORTED,
                       "legacy contention text");
    /* gzip of a legacy text is named too */
    struct fg_buf z;
    fg_buf_init(&z, 0);
    assert_int_equal(fg_gzip((const uint8_t *)heap, strlen(heap), 6, &z), 0);
    expect_bytes_error(z.data, z.len, 0, FG_EUNSUPPORTED, "legacy heap text");
    fg_buf_free(&z);

    struct knobs k = {0};
    struct fg_buf pp;
    make_pprof(&k, &pp);
    expect_bytes_error(pp.data, pp.len, 100, FG_ETOOBIG, "exceeds 100 bytes");
    assert_int_equal(fg_gzip(pp.data, pp.len, 6, &z), 0);
    expect_bytes_error(z.data, z.len, 100, FG_ETOOBIG, "decompressed size exceeds 100 bytes");
    /* a broken gzip stream */
    z.data[z.len / 2] ^= 0xff;
    z.len -= 4;
    expect_bytes_error(z.data, z.len, 0, FG_EINVAL, "pprof: gzip");
    fg_buf_free(&z);
    fg_buf_free(&pp);

    /* empty input is an empty profile: nothing added */
    struct fg_profiles *p = decode_ok((const uint8_t *)"", 0);
    assert_int_equal(p->n_resources, 0);
    fg_profiles_unref(p);
}

static int count_only(void *ctx, const struct fg_pprof_group *g, const uint8_t *data,
                      size_t len, struct fg_err *err)
{
    (*(int *)ctx)++;
    return 0;
}

/* The n-th allocation fails for every n: always an error or success, never a crash or a
 * leak (the sanitizer build checks leaks). */
static void test_allocation_failures(void **state)
{
    struct knobs k = {0};
    struct fg_buf pp;
    make_pprof(&k, &pp);
    int successes = 0;
    for (unsigned long n = 1; n < 400; n++) {
        struct fg_profiles *p = NULL;
        struct fg_err err = {{0}};
        if (fg_profiles_new(&p) != 0)
            continue;
        fg_alloc_fail_after(n);
        int rc = fg_pprof_decode(pp.data, pp.len, 0, NULL, p, &err);
        int emitted = 0;
        if (rc == 0)
            rc = fg_pprof_encode(p, true, count_only, &emitted, &err);
        fg_alloc_fail_after(0);
        assert_true(rc == 0 || rc == FG_ENOMEM);
        assert_true(rc != 0 || emitted == 1);
        successes += rc == 0;
        fg_profiles_unref(p);
    }
    assert_true(successes > 0); /* the walk reached past the last allocation */
    fg_buf_free(&pp);
}

/* A real Go heap profile: four columns with the totals of manifest.csv, and back. */
static void test_corpus_heap(void **state)
{
    char path[4096];
    if (!tu_corpus_path("go119.heap.pb.gz", path, sizeof(path))) {
        printf("SKIP: corpus absent\n");
        return;
    }
    size_t len;
    uint8_t *data = tu_read_file(path, &len);
    assert_non_null(data);
    struct fg_profiles *p = decode_ok(data, len);
    const struct fg_scope_profiles *sp = &p->resources[0].scopes[0];
    assert_int_equal(sp->n_profiles, 4);
    const int64_t totals[4] = {4562785, 428675653, 330, 15505245};
    for (int i = 0; i < 4; i++)
        assert_int_equal(fg_profile_total(&sp->profiles[i]), totals[i]);
    struct collected c;
    encode_ok(p, true, &c);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.ncols[0], 4);
    struct fg_profiles *q = decode_ok(c.data[0].data, c.data[0].len);
    char *a = tu_canon(p), *b = tu_canon(q);
    assert_string_equal(a, b);
    fg_free(a);
    fg_free(b);
    fg_profiles_unref(q);
    collected_free(&c);
    fg_profiles_unref(p);
    fg_free(data);
}

/* A location with nothing but its id interns to the zero Location (index 0); stacks that
 * reference it survive the encoder and the OTLP codec. Bool/double attributes → text. */
static void test_bare_location_and_text_labels(void **state)
{
    struct fg_buf pp, sub;
    fg_buf_init(&pp, 0);
    fg_buf_init(&sub, 0);
    pu(&sub, 1, S_SAMPLES);
    pu(&sub, 2, S_COUNT);
    pmsg(&pp, 1, &sub);
    pu(&sub, 1, 7); /* location id 7, bare */
    pu(&sub, 2, 5);
    pmsg(&pp, 2, &sub);
    pu(&sub, 1, 7);
    pmsg(&pp, 4, &sub);
    for (int i = 0; i < S_COUNT_ALL; i++)
        pbytes(&pp, 6, strs[i], strlen(strs[i]));
    struct fg_profiles *p = decode_ok(pp.data, pp.len);
    const struct fg_sample *s = &p->resources[0].scopes[0].profiles[0].samples[0];
    assert_int_equal(fg_dict_get_stack(p, s->stack)->n_locations, 1);

    /* give the sample a bool and a double attribute */
    struct fg_attribute ab = {.key = (uint32_t)fg_dict_string(p, "flag", 4),
                              .value = {.kind = FG_VALUE_BOOL, .u.b = true}};
    struct fg_attribute ad = {.key = (uint32_t)fg_dict_string(p, "ratio", 5),
                              .value = {.kind = FG_VALUE_DOUBLE, .u.d = 0.5}};
    uint32_t attrs[2] = {(uint32_t)fg_dict_attribute(p, &ab), (uint32_t)fg_dict_attribute(p, &ad)};
    struct fg_sample *ms = &p->resources[0].scopes[0].profiles[0].samples[0];
    ms->attrs = attrs;
    ms->n_attrs = 2;

    struct fg_buf otlp;
    fg_buf_init(&otlp, 0);
    assert_int_equal(fg_otlp_encode_proto(p, &otlp), 0);
    struct fg_profiles *o = NULL;
    struct fg_err err = {{0}};
    if (fg_otlp_decode_proto(otlp.data, otlp.len, &o, &err) != 0)
        fail_msg("otlp: %s", err.msg);
    struct collected c;
    encode_ok(o, false, &c);
    assert_int_equal(c.n, 1);
    struct fg_profiles *q = decode_ok(c.data[0].data, c.data[0].len);
    const struct fg_sample *qs = &q->resources[0].scopes[0].profiles[0].samples[0];
    assert_int_equal(qs->values[0], 5);
    assert_int_equal(fg_dict_get_stack(q, qs->stack)->n_locations, 1);
    const struct fg_attribute *a = find_attr(q, qs->attrs, qs->n_attrs, "flag");
    assert_true(a && value_is_str(&a->value, "true"));
    a = find_attr(q, qs->attrs, qs->n_attrs, "ratio");
    assert_true(a && value_is_str(&a->value, "0.5"));
    fg_profiles_unref(q);
    collected_free(&c);
    fg_profiles_unref(o);
    fg_buf_free(&otlp);
    ms->attrs = NULL;
    ms->n_attrs = 0;
    fg_profiles_unref(p);
    fg_buf_free(&sub);
    fg_buf_free(&pp);
}

/* original_payload: every profile gets its group's pprof; a producer's own one stays. */
static void test_attach_original_payload(void **state)
{
    struct knobs k = {0};
    struct fg_buf pp;
    make_pprof(&k, &pp);
    struct fg_profiles *p = decode_ok(pp.data, pp.len);
    struct fg_scope_profiles *sp = &p->resources[0].scopes[0];
    struct fg_err err = {{0}};
    assert_int_equal(fg_pprof_attach_original_payload(p, &err), 0);
    for (int i = 0; i < 2; i++) {
        const struct fg_profile *prof = &sp->profiles[i];
        assert_int_equal(prof->original_payload_format.len, 5);
        assert_memory_equal(prof->original_payload_format.ptr, "pprof", 5);
        assert_true(fg_is_gzip((const uint8_t *)prof->original_payload.ptr,
                               prof->original_payload.len));
        struct fg_profiles *q =
            decode_ok((const uint8_t *)prof->original_payload.ptr, prof->original_payload.len);
        assert_int_equal(q->resources[0].scopes[0].n_profiles, 2);
        fg_profiles_unref(q);
    }
    const char *mine = "mine";
    sp->profiles[0].original_payload = (struct fg_bytes){mine, 4};
    assert_int_equal(fg_pprof_attach_original_payload(p, &err), 0);
    assert_int_equal(sp->profiles[0].original_payload.len, 4);
    sp->profiles[0].original_payload = (struct fg_bytes){NULL, 0};
    fg_profiles_unref(p);
    fg_buf_free(&pp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_mapping),
        cmocka_unit_test(test_roundtrip_is_lossless),
        cmocka_unit_test(test_encode_ids_and_strings),
        cmocka_unit_test(test_merge_and_split),
        cmocka_unit_test(test_links_and_attributes_to_labels),
        cmocka_unit_test(test_contrib_comments_and_default_type),
        cmocka_unit_test(test_decode_origin_and_join),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_legacy_and_limits),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_corpus_heap),
        cmocka_unit_test(test_attach_original_payload),
        cmocka_unit_test(test_bare_location_and_text_labels),
    };
    return cmocka_run_group_tests_name("pprof", tests, NULL, NULL);
}
