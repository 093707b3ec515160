/* Test helpers for the attribute/relabel/filter/resourcedetection processor tests: load a
 * processor from YAML, push batches through it into a recorder, build small batches from
 * text ("main;work;leaf" stacks, "k=v,k2=v2" attributes) and read attributes back. */
#ifndef FG_PROCUTIL_H
#define FG_PROCUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "fg_alloc.h"
#include "fg_buf.h"
#include "fg_component.h"
#include "fg_config.h"
#include "fg_model.h"

struct pu_recorder {
    struct fg_consumer consumer;
    struct fg_profiles *last;
    int n;
};

static __attribute__((unused)) int pu_record(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct pu_recorder *r = (struct pu_recorder *)self;
    (void)err;
    fg_profiles_unref(r->last);
    r->last = batch;
    r->n++;
    return 0;
}

struct pu_fixture {
    struct fg_config *cfg;
    struct fg_component *proc;
    struct pu_recorder rec;
};

/* Loads the config; returns the diagnostics text (fg_free it) or NULL when it loaded. */
static __attribute__((unused)) char *pu_try_load(const char *type, const char *body, struct fg_config **cfg)
{
    const char *yaml = tu_processor_yaml(type, body);
    struct fg_diag diag;
    fg_diag_init(&diag);
    char *msg = NULL;
    if (fg_config_load_string("test.yaml", yaml, strlen(yaml), cfg, &diag) != 0)
        msg = fg_strndup(diag.text.data ? (char *)diag.text.data : "", diag.text.len);
    fg_diag_free(&diag);
    return msg;
}

/* Fails the test unless loading processor type with body fails with a message that holds
 * both where (e.g. "test.yaml:5:") and what. */
static __attribute__((unused)) void pu_expect_error(const char *type, const char *body, const char *where,
                            const char *what)
{
    struct fg_config *cfg = NULL;
    char *msg = pu_try_load(type, body, &cfg);
    if (!msg)
        fail_msg("expected an error for:\n%s", body);
    if (!strstr(msg, where) || !strstr(msg, what))
        fail_msg("wanted \"%s\" and \"%s\" in:\n%s", where, what, msg);
    fg_free(msg);
}

static __attribute__((unused)) void pu_setup(struct pu_fixture *f, const char *type, const char *body)
{
    memset(f, 0, sizeof(*f));
    f->rec.consumer.consume = pu_record;
    f->proc = tu_processor_start(type, body, &f->rec.consumer, &f->cfg);
}

static __attribute__((unused)) void pu_teardown(struct pu_fixture *f)
{
    f->proc->ops->shutdown(f->proc, 0);
    f->proc->ops->destroy(f->proc);
    fg_profiles_unref(f->rec.last);
    fg_config_free(f->cfg);
}

/* Sends batch (taken) through; returns what came out (owned by the fixture), or NULL. */
static __attribute__((unused)) struct fg_profiles *pu_run(struct pu_fixture *f, struct fg_profiles *batch)
{
    struct fg_err err = {{0}};
    int before = f->rec.n;
    int rc = f->proc->consumer.consume(&f->proc->consumer, batch, &err);
    if (rc)
        fail_msg("consume: %d %s", rc, err.msg);
    return f->rec.n > before ? f->rec.last : NULL;
}

/* ---- building ---- */

/* Next sep-separated token of *cur (the string is cut in place); NULL at the end. */
static __attribute__((unused)) char *pu_tok(char **cur, char sep)
{
    char *s = *cur;
    if (!s || !*s)
        return NULL;
    char *end = strchr(s, sep);
    if (end) {
        *end = '\0';
        *cur = end + 1;
    } else {
        *cur = s + strlen(s);
    }
    return s;
}

static __attribute__((unused)) uint32_t pu_str(struct fg_profiles *p, const char *s)
{
    return (uint32_t)fg_dict_string(p, s, strlen(s));
}

/* "k=v,k2=v2" into kv (strings; values that parse as integers when prefixed '#'). Returns
 * n. The strings are copied into the batch arena. */
static __attribute__((unused)) uint32_t pu_kvs(struct fg_profiles *p, const char *spec, struct fg_keyvalue *kv,
                       uint32_t max)
{
    uint32_t n = 0;
    char *copy = fg_strdup(spec ? spec : "");
    char *cur = copy;
    char sep = ',';
    if (*cur == '|') { /* "|k=v|k2=v2" when values hold commas */
        sep = '|';
        cur++;
    }
    for (char *tok = pu_tok(&cur, sep); tok && n < max; tok = pu_tok(&cur, sep)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        struct fg_value v = {.kind = FG_VALUE_STRING};
        const char *val = eq + 1;
        if (val[0] == '#') {
            v.kind = FG_VALUE_INT;
            v.u.i = strtoll(val + 1, NULL, 10);
        } else {
            v.u.s = (struct fg_bytes){val, (uint32_t)strlen(val)};
        }
        kv[n].key.ptr = tok;
        kv[n].key.len = (uint32_t)strlen(tok);
        fg_value_copy(p, &kv[n].value, &v);
        struct fg_value key = {.kind = FG_VALUE_STRING, .u.s = kv[n].key};
        struct fg_value kc;
        fg_value_copy(p, &kc, &key);
        kv[n].key = kc.u.s;
        n++;
    }
    fg_free(copy);
    return n;
}

static __attribute__((unused)) uint32_t pu_dict_attrs(struct fg_profiles *p, const char *spec, uint32_t *idx, uint32_t max)
{
    struct fg_keyvalue kv[16];
    uint32_t n = pu_kvs(p, spec, kv, max < 16 ? max : 16);
    for (uint32_t i = 0; i < n; i++) {
        struct fg_attribute a = {.key = (uint32_t)fg_dict_string(p, kv[i].key.ptr, kv[i].key.len),
                                 .value = kv[i].value};
        idx[i] = (uint32_t)fg_dict_attribute(p, &a);
    }
    return n;
}

static __attribute__((unused)) struct fg_profile *pu_profile(struct fg_profiles *p, const char *resource_attrs,
                                     const char *sample_type, const char *profile_attrs)
{
    struct fg_keyvalue kv[16];
    struct fg_resource res = {0};
    res.n_attrs = pu_kvs(p, resource_attrs, kv, 16);
    res.attrs = kv;
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "", 0);
    struct fg_scope scope = {.name = {"test", 4}};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(p, rp, &scope, "", 0);
    uint32_t pa[16];
    struct fg_profile hdr = {
        .sample_type = {pu_str(p, sample_type), pu_str(p, "count")},
        .time_unix_nano = 1700000000000000000ULL,
        .n_attrs = pu_dict_attrs(p, profile_attrs, pa, 16),
        .attrs = pa,
    };
    return fg_profiles_add_profile(p, sp, &hdr);
}

/* frames root first: "main;work;leaf"; a frame "a+b" is one location with the inlined
 * callee b inside a (lines b, a). */
static __attribute__((unused)) void pu_sample(struct fg_profiles *p, struct fg_profile *prof, const char *frames,
                      int64_t value, const char *attrs)
{
    uint32_t locs[64];
    uint32_t n = 0;
    char *copy = fg_strdup(frames);
    char *cur = copy;
    for (char *f = pu_tok(&cur, ';'); f && n < 64; f = pu_tok(&cur, ';')) {
        struct fg_line lines[8];
        uint32_t nl = 0;
        char *cur2 = f;
        char *names[8];
        for (char *g = pu_tok(&cur2, '+'); g && nl < 8; g = pu_tok(&cur2, '+'))
            names[nl++] = g;
        for (uint32_t i = 0; i < nl; i++) {
            struct fg_function fn = {.name = pu_str(p, names[nl - 1 - i])};
            lines[i] = (struct fg_line){.function = (uint32_t)fg_dict_function(p, &fn)};
        }
        struct fg_location loc = {.n_lines = nl, .lines = lines};
        locs[n++] = (uint32_t)fg_dict_location(p, &loc);
    }
    fg_free(copy);
    uint32_t leaf_first[64];
    for (uint32_t i = 0; i < n; i++)
        leaf_first[i] = locs[n - 1 - i];
    struct fg_stack st = {n, leaf_first};
    uint32_t ai[16];
    struct fg_sample s = {.stack = (uint32_t)fg_dict_stack(p, &st),
                          .n_values = 1,
                          .values = &value,
                          .attrs = ai,
                          .n_attrs = pu_dict_attrs(p, attrs, ai, 16)};
    fg_profiles_add_sample(p, prof, &s);
}

/* ---- reading ---- */

/* Text of a value: strings as is, ints as "#N", bools "true"/"false", doubles "%g". */
static __attribute__((unused)) const char *pu_value_text(const struct fg_value *v, char *buf, size_t size)
{
    switch (v->kind) {
    case FG_VALUE_STRING:
        snprintf(buf, size, "%.*s", (int)v->u.s.len, v->u.s.ptr);
        break;
    case FG_VALUE_INT:
        snprintf(buf, size, "#%lld", (long long)v->u.i);
        break;
    case FG_VALUE_BOOL:
        snprintf(buf, size, "%s", v->u.b ? "true" : "false");
        break;
    case FG_VALUE_DOUBLE:
        snprintf(buf, size, "%g", v->u.d);
        break;
    default:
        snprintf(buf, size, "?");
    }
    return buf;
}

/* Sorts items[0..m) and joins them with ',' into buf. */
static __attribute__((unused)) const char *pu_join_sorted(char (*items)[256], uint32_t m, char *buf, size_t size)
{
    qsort(items, m, sizeof(items[0]), (int (*)(const void *, const void *))strcmp);
    buf[0] = '\0';
    size_t used = 0;
    for (uint32_t i = 0; i < m; i++)
        used += (size_t)snprintf(buf + used, used < size ? size - used : 0, "%s%s", i ? "," : "",
                                 items[i]);
    return buf;
}

/* "k=v,k2=v2" of a dictionary attribute list, sorted by key. */
static __attribute__((unused)) const char *pu_dict_text(const struct fg_profiles *p, const uint32_t *idx, uint32_t n,
                                char *buf, size_t size)
{
    char items[32][256];
    uint32_t m = n < 32 ? n : 32;
    for (uint32_t i = 0; i < m; i++) {
        const struct fg_attribute *a = fg_dict_get_attribute(p, idx[i]);
        struct fg_bytes k = fg_dict_get_string(p, a->key);
        char v[200];
        snprintf(items[i], sizeof(items[i]), "%.*s=%s", (int)k.len, k.ptr,
                 pu_value_text(&a->value, v, sizeof(v)));
    }
    return pu_join_sorted(items, m, buf, size);
}

static __attribute__((unused)) const char *pu_kv_text(const struct fg_keyvalue *kv, uint32_t n, char *buf, size_t size)
{
    char items[32][256];
    uint32_t m = n < 32 ? n : 32;
    for (uint32_t i = 0; i < m; i++) {
        char v[200];
        snprintf(items[i], sizeof(items[i]), "%.*s=%s", (int)kv[i].key.len, kv[i].key.ptr,
                 pu_value_text(&kv[i].value, v, sizeof(v)));
    }
    return pu_join_sorted(items, m, buf, size);
}

/* A sample's stack as "main;work;leaf" (root first; inlined frames joined with '+' as in
 * pu_sample). */
static __attribute__((unused)) const char *pu_stack_text(const struct fg_profiles *p, const struct fg_sample *s,
                                 char *buf, size_t size)
{
    const struct fg_stack *st = fg_dict_get_stack(p, s->stack);
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t i = st->n_locations; i-- > 0;) {
        const struct fg_location *loc = fg_dict_get_location(p, st->locations[i]);
        if (used < size)
            used += (size_t)snprintf(buf + used, size - used, "%s", i + 1 < st->n_locations ? ";" : "");
        for (uint32_t k = loc->n_lines; k-- > 0;) {
            const struct fg_function *fn = fg_dict_get_function(p, loc->lines[k].function);
            struct fg_bytes name = fg_dict_get_string(p, fn->name);
            if (used < size)
                used += (size_t)snprintf(buf + used, size - used, "%s%.*s",
                                         k + 1 < loc->n_lines ? "+" : "", (int)name.len, name.ptr);
        }
    }
    return buf;
}

static __attribute__((unused)) uint64_t pu_count_samples(const struct fg_profiles *p)
{
    uint64_t n = 0;
    for (uint32_t r = 0; r < p->n_resources; r++)
        for (uint32_t s = 0; s < p->resources[r].n_scopes; s++)
            for (uint32_t i = 0; i < p->resources[r].scopes[s].n_profiles; i++)
                n += p->resources[r].scopes[s].profiles[i].n_samples;
    return n;
}

/* Walks an allocation failure over every allocation one consume makes: each run must either
 * succeed or ask for a retry (FG_ERETRYABLE), and leak nothing (checked under ASan). */
static __attribute__((unused)) void pu_alloc_walk(const char *type, const char *body,
                                                  struct fg_profiles *(*make)(void))
{
    struct pu_fixture f;
    pu_setup(&f, type, body);
    unsigned long n;
    for (n = 1; n < 100000; n++) {
        struct fg_profiles *in = make();
        struct fg_err err = {{0}};
        fg_alloc_fail_after(0);
        fg_alloc_fail_after(n);
        int rc = f.proc->consumer.consume(&f.proc->consumer, in, &err);
        unsigned long made = fg_alloc_fail_after(0);
        if (rc != 0 && rc != FG_ERETRYABLE)
            fail_msg("%s: failing allocation %lu gave %d (%s)", type, n, rc, err.msg);
        if (rc == 0 && made < n)
            break; /* the whole consume ran without reaching the failure */
    }
    print_message("%s: %lu allocation failures walked\n", type, n - 1);
    assert_true(n > 1); /* something was allocated, so the walk tested something */
    pu_teardown(&f);
}

#endif
