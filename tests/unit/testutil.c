/* Helpers for the unit tests: files, the corpus, temporary directories, batches, configs. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_config.h"
#include "fg_service.h"

uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct fg_buf buf;
    fg_buf_init(&buf, 0);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (fg_buf_append(&buf, chunk, n) != 0)
            break;
    fclose(f);
    return fg_buf_steal(&buf, len);
}

const char *tu_corpus_path(const char *name, char *buf, size_t bufsize)
{
    const char *root = getenv("FG_CORPUS");
    if (!root || !*root)
        root = "../shared/testdata";
    snprintf(buf, bufsize, "%s/pprof/%s", root, name);
    if (access(buf, R_OK) != 0)
        return NULL;
    return buf;
}

const char *tu_tempdir(char *buf, size_t bufsize)
{
    snprintf(buf, bufsize, "/tmp/fg-test-XXXXXX");
    return mkdtemp(buf);
}

void tu_rmtree(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", path);
}

void tu_capture_stderr(struct tu_capture *c)
{
    snprintf(c->path, sizeof(c->path), "/tmp/fg-test-log-XXXXXX");
    c->fd = mkstemp(c->path);
    assert_true(c->fd >= 0);
    fflush(stderr);
    c->saved = dup(2);
    assert_true(c->saved >= 0);
    dup2(c->fd, 2);
}

char *tu_capture_end(struct tu_capture *c, size_t *len)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    close(c->fd);
    size_t n = 0;
    uint8_t *raw = tu_read_file(c->path, &n);
    unlink(c->path);
    if (!raw)
        n = 0;
    char *text = fg_strndup(raw ? (const char *)raw : "", n);
    fg_free(raw);
    assert_non_null(text);
    if (len)
        *len = n;
    return text;
}

/* ---- canonical form ---- */

#include <inttypes.h>

#include "fg_model.h"

static void canon_bytes(struct fg_buf *b, struct fg_bytes s)
{
    fg_buf_append(b, "\"", 1);
    for (uint32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x7f)
            fg_buf_printf(b, "\\x%02x", c);
        else
            fg_buf_append(b, &s.ptr[i], 1);
    }
    fg_buf_append(b, "\"", 1);
}

static void canon_value(struct fg_buf *b, const struct fg_value *v)
{
    switch (v->kind) {
    case FG_VALUE_STRING:
        canon_bytes(b, v->u.s);
        break;
    case FG_VALUE_BYTES:
        fg_buf_append_str(b, "b");
        canon_bytes(b, v->u.s);
        break;
    case FG_VALUE_BOOL:
        fg_buf_append_str(b, v->u.b ? "true" : "false");
        break;
    case FG_VALUE_INT:
        fg_buf_printf(b, "%" PRId64, v->u.i);
        break;
    case FG_VALUE_DOUBLE:
        fg_buf_printf(b, "%.17g", v->u.d);
        break;
    case FG_VALUE_ARRAY:
        fg_buf_append_str(b, "[");
        for (uint32_t i = 0; i < v->u.array.n; i++) {
            canon_value(b, &v->u.array.items[i]);
            fg_buf_append_str(b, ",");
        }
        fg_buf_append_str(b, "]");
        break;
    case FG_VALUE_KVLIST:
        fg_buf_append_str(b, "{");
        for (uint32_t i = 0; i < v->u.kvlist.n; i++) {
            canon_bytes(b, v->u.kvlist.items[i].key);
            fg_buf_append_str(b, ":");
            canon_value(b, &v->u.kvlist.items[i].value);
            fg_buf_append_str(b, ",");
        }
        fg_buf_append_str(b, "}");
        break;
    default:
        fg_buf_append_str(b, "empty");
    }
}

static void canon_keyvalues(struct fg_buf *b, const struct fg_keyvalue *kvs, uint32_t n)
{
    fg_buf_append_str(b, "{");
    for (uint32_t i = 0; i < n; i++) {
        canon_bytes(b, kvs[i].key);
        fg_buf_append_str(b, "=");
        canon_value(b, &kvs[i].value);
        fg_buf_append_str(b, ";");
    }
    fg_buf_append_str(b, "}");
}

static void canon_str(struct fg_buf *b, const struct fg_profiles *p, uint32_t idx)
{
    canon_bytes(b, fg_dict_get_string(p, idx));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Attribute lists are sets: print each, then sort. */
static void canon_attrs(struct fg_buf *b, const struct fg_profiles *p, const uint32_t *attrs,
                        uint32_t n)
{
    char **items = calloc(n + 1, sizeof(char *));
    for (uint32_t i = 0; i < n; i++) {
        struct fg_buf one;
        fg_buf_init(&one, 0);
        const struct fg_attribute *a = fg_dict_get_attribute(p, attrs[i]);
        canon_str(&one, p, a->key);
        fg_buf_append_str(&one, "=");
        canon_value(&one, &a->value);
        fg_buf_append_str(&one, " unit=");
        canon_str(&one, p, a->unit);
        fg_buf_append(&one, "", 1);
        items[i] = (char *)fg_buf_steal(&one, NULL);
    }
    qsort(items, n, sizeof(char *), cmp_str);
    fg_buf_append_str(b, "[");
    for (uint32_t i = 0; i < n; i++) {
        fg_buf_append_str(b, items[i]);
        fg_buf_append_str(b, ";");
        fg_free(items[i]);
    }
    fg_buf_append_str(b, "]");
    free(items);
}

static void canon_location(struct fg_buf *b, const struct fg_profiles *p, uint32_t idx)
{
    const struct fg_location *l = fg_dict_get_location(p, idx);
    const struct fg_mapping *m = fg_dict_get_mapping(p, l->mapping);
    fg_buf_printf(b, "(map %" PRIx64 "-%" PRIx64 "@%" PRIx64 " ", m->memory_start,
                  m->memory_limit, m->file_offset);
    canon_str(b, p, m->filename);
    canon_attrs(b, p, m->attrs, m->n_attrs);
    fg_buf_printf(b, " addr %" PRIx64 " lines", l->address);
    for (uint32_t k = 0; k < l->n_lines; k++) {
        const struct fg_function *f = fg_dict_get_function(p, l->lines[k].function);
        fg_buf_append_str(b, " <");
        canon_str(b, p, f->name);
        canon_str(b, p, f->system_name);
        canon_str(b, p, f->filename);
        fg_buf_printf(b, " %" PRId64 " %" PRId64 ":%" PRId64 ">", f->start_line, l->lines[k].line,
                      l->lines[k].column);
    }
    canon_attrs(b, p, l->attrs, l->n_attrs);
    fg_buf_append_str(b, ")");
}

char *tu_canon(const struct fg_profiles *p)
{
    size_t n_lines = 0, cap = 64;
    char **lines = malloc(cap * sizeof(char *));
    for (uint32_t r = 0; r < p->n_resources; r++) {
        const struct fg_resource_profiles *rp = &p->resources[r];
        for (uint32_t s = 0; s < rp->n_scopes; s++) {
            const struct fg_scope_profiles *sp = &rp->scopes[s];
            for (uint32_t i = 0; i < sp->n_profiles; i++) {
                const struct fg_profile *prof = &sp->profiles[i];
                struct fg_buf head;
                fg_buf_init(&head, 0);
                fg_buf_append_str(&head, "res");
                canon_keyvalues(&head, rp->resource.attrs, rp->resource.n_attrs);
                canon_bytes(&head, rp->schema_url);
                fg_buf_append_str(&head, " scope ");
                canon_bytes(&head, sp->scope.name);
                canon_bytes(&head, sp->scope.version);
                canon_keyvalues(&head, sp->scope.attrs, sp->scope.n_attrs);
                fg_buf_append_str(&head, " prof ");
                canon_str(&head, p, prof->sample_type.type);
                canon_str(&head, p, prof->sample_type.unit);
                canon_str(&head, p, prof->period_type.type);
                canon_str(&head, p, prof->period_type.unit);
                fg_buf_printf(&head, " %" PRId64 " t=%" PRIu64 " d=%" PRIu64 " ", prof->period,
                              prof->time_unix_nano, prof->duration_nano);
                canon_bytes(&head, prof->profile_id);
                canon_attrs(&head, p, prof->attrs, prof->n_attrs);
                for (uint32_t k = 0; k < prof->n_samples; k++) {
                    const struct fg_sample *smp = &prof->samples[k];
                    struct fg_buf line;
                    fg_buf_init(&line, 0);
                    fg_buf_append(&line, head.data, head.len);
                    fg_buf_append_str(&line, " stack");
                    const struct fg_stack *st = fg_dict_get_stack(p, smp->stack);
                    for (uint32_t f = 0; f < st->n_locations; f++)
                        canon_location(&line, p, st->locations[f]);
                    fg_buf_append_str(&line, " attrs");
                    canon_attrs(&line, p, smp->attrs, smp->n_attrs);
                    const struct fg_link *lk = fg_dict_get_link(p, smp->link);
                    fg_buf_append_str(&line, " link ");
                    for (int x = 0; x < 16; x++)
                        fg_buf_printf(&line, "%02x", lk->trace_id[x]);
                    fg_buf_append_str(&line, "/");
                    for (int x = 0; x < 8; x++)
                        fg_buf_printf(&line, "%02x", lk->span_id[x]);
                    fg_buf_append_str(&line, " values");
                    for (uint32_t v = 0; v < smp->n_values; v++)
                        fg_buf_printf(&line, " %" PRId64, smp->values[v]);
                    fg_buf_append_str(&line, " ts");
                    for (uint32_t v = 0; v < smp->n_timestamps; v++)
                        fg_buf_printf(&line, " %" PRIu64, smp->timestamps[v]);
                    fg_buf_append(&line, "", 1);
                    if (n_lines == cap) {
                        cap *= 2;
                        lines = realloc(lines, cap * sizeof(char *));
                    }
                    lines[n_lines++] = (char *)fg_buf_steal(&line, NULL);
                }
                fg_buf_free(&head);
            }
        }
    }
    qsort(lines, n_lines, sizeof(char *), cmp_str);
    struct fg_buf all;
    fg_buf_init(&all, 0);
    for (size_t i = 0; i < n_lines; i++) {
        fg_buf_append_str(&all, lines[i]);
        fg_buf_append_str(&all, "\n");
        fg_free(lines[i]);
    }
    free(lines);
    fg_buf_append(&all, "", 1);
    return (char *)fg_buf_steal(&all, NULL);
}

static uint32_t tu_str(struct fg_profiles *p, const char *s)
{
    return (uint32_t)fg_dict_string(p, s, strlen(s));
}

static uint32_t tu_func(struct fg_profiles *p, const char *name, const char *file, int64_t start)
{
    struct fg_function f = {tu_str(p, name), tu_str(p, name), tu_str(p, file), start};
    return (uint32_t)fg_dict_function(p, &f);
}

struct fg_profiles *tu_make_batch(const char *service, int n_samples)
{
    struct fg_profiles *p;
    if (fg_profiles_new(&p) != 0)
        return NULL;
    struct fg_attribute build_id = {.key = tu_str(p, "process.executable.build_id.gnu"),
                                    .value = {.kind = FG_VALUE_STRING,
                                              .u.s = {"abc123", 6}}};
    uint32_t build_attr = (uint32_t)fg_dict_attribute(p, &build_id);
    struct fg_mapping m = {0x400000, 0x500000, 0, tu_str(p, "/usr/bin/app"), 1, &build_attr};
    uint32_t map = (uint32_t)fg_dict_mapping(p, &m);
    struct fg_attribute frame_type = {.key = tu_str(p, "profile.frame.type"),
                                      .value = {.kind = FG_VALUE_STRING, .u.s = {"native", 6}}};
    uint32_t ft = (uint32_t)fg_dict_attribute(p, &frame_type);

    struct fg_line main_line = {tu_func(p, "main", "main.c", 10), 12, 3};
    struct fg_location main_loc = {map, 0x401000, 1, 1, &main_line, &ft};
    uint32_t loc_main = (uint32_t)fg_dict_location(p, &main_loc);
    /* work() with an inlined helper(): callee first */
    struct fg_line work_lines[2] = {{tu_func(p, "helper", "util.h", 5), 7, 0},
                                    {tu_func(p, "work", "work.c", 20), 25, 0}};
    struct fg_location work_loc = {map, 0x402000, 2, 0, work_lines, NULL};
    uint32_t loc_work = (uint32_t)fg_dict_location(p, &work_loc);

    struct fg_link link = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
                           {0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 1, 2}};
    uint32_t link_idx = (uint32_t)fg_dict_link(p, &link);

    struct fg_keyvalue res_attrs[2] = {
        {{"service.name", 12}, {.kind = FG_VALUE_STRING, .u.s = {service, (uint32_t)strlen(service)}}},
        {{"host.cores", 10}, {.kind = FG_VALUE_INT, .u.i = 8}},
    };
    struct fg_resource res = {.n_attrs = 2, .attrs = res_attrs};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "https://schema", 14);
    struct fg_scope scope = {.name = {"flamegate-test", 14}, .version = {"1.0", 3}};
    struct fg_scope_profiles *sp = fg_profiles_add_scope(p, rp, &scope, "", 0);
    struct fg_profile hdr = {
        .sample_type = {tu_str(p, "cpu"), tu_str(p, "nanoseconds")},
        .period_type = {tu_str(p, "cpu"), tu_str(p, "nanoseconds")},
        .time_unix_nano = 1700000000000000000ULL,
        .duration_nano = 10000000000ULL,
        .period = 10000000,
    };
    struct fg_profile *prof = fg_profiles_add_profile(p, sp, &hdr);
    for (int i = 0; i < n_samples; i++) {
        char leaf_name[32];
        snprintf(leaf_name, sizeof(leaf_name), "leaf_%d", i % 3);
        struct fg_line leaf_line = {tu_func(p, leaf_name, "leaf.c", 1), 2 + i % 3, 0};
        struct fg_location leaf_loc = {map, 0x403000 + (uint64_t)(i % 3) * 16, 1, 0, &leaf_line,
                                       NULL};
        uint32_t locs[3] = {(uint32_t)fg_dict_location(p, &leaf_loc), loc_work, loc_main};
        struct fg_stack st = {3, locs};
        char thread[32];
        snprintf(thread, sizeof(thread), "worker-%d", i % 2);
        struct fg_attribute th = {.key = tu_str(p, "thread.name"),
                                  .value = {.kind = FG_VALUE_STRING,
                                            .u.s = {thread, (uint32_t)strlen(thread)}}};
        uint32_t th_idx = (uint32_t)fg_dict_attribute(p, &th);
        int64_t values[2] = {i + 1, 2 * (i + 1)};
        uint64_t ts[2] = {hdr.time_unix_nano + (uint64_t)i * 1000, hdr.time_unix_nano + (uint64_t)i * 1000 + 500};
        struct fg_sample s = {
            .stack = (uint32_t)fg_dict_stack(p, &st),
            .link = i % 2 ? link_idx : 0,
            .n_attrs = 1,
            .n_values = 2,
            .n_timestamps = 2,
            .attrs = &th_idx,
            .values = values,
            .timestamps = ts,
        };
        fg_profiles_add_sample(p, prof, &s);
    }
    return p;
}

struct fg_config *tu_config_load(const char *yaml)
{
    struct fg_config *cfg = NULL;
    struct fg_diag d;
    fg_diag_init(&d);
    if (fg_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &d) != 0)
        fail_msg("config: %.*s", (int)d.text.len, d.text.data ? (char *)d.text.data : "");
    fg_diag_free(&d);
    return cfg;
}

const char *tu_processor_yaml(const char *type, const char *body)
{
    static char yaml[8192];
    snprintf(yaml, sizeof(yaml),
             "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}\n"
             "processors:\n  %s:\n%s\n"
             "exporters: {debug: {}}\n"
             "service: {pipelines: {profiles: {receivers: [otlp], processors: [%s], "
             "exporters: [debug]}}}\n",
             type, body, type);
    return yaml;
}

struct fg_component *tu_processor_start(const char *type, const char *body,
                                        struct fg_consumer *next, struct fg_config **cfg)
{
    *cfg = tu_config_load(tu_processor_yaml(type, body));
    const struct fg_config_component *cc = fg_config_find(*cfg, FG_KIND_PROCESSOR, type);
    assert_non_null(cc);
    struct fg_create_args args = {.id = type, .config = cc->config, .next = next};
    struct fg_component *proc = NULL;
    struct fg_err err = {{0}};
    if (cc->factory->create(&args, &proc, &err) != 0)
        fail_msg("create: %s", err.msg);
    snprintf(proc->id, sizeof(proc->id), "%s", type);
    if (proc->ops->start(proc, &err) != 0)
        fail_msg("start: %s", err.msg);
    return proc;
}

static int recorder_consume(struct fg_consumer *self, struct fg_profiles *batch,
                            struct fg_err *err)
{
    struct tu_recorder *r = (struct tu_recorder *)self;
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (r->refuse) {
        rc = fg_err_set(err, FG_EFULL, "full");
        fg_profiles_unref(batch);
    } else if (r->n < TU_RECORDER_MAX) {
        r->arrived_ns[r->n] = fg_now_ns();
        r->batches[r->n++] = batch;
    } else {
        fg_profiles_unref(batch);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int tu_recorder_count(struct tu_recorder *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void tu_proc_fixture_start(struct tu_proc_fixture *f, const char *type, const char *body)
{
    memset(&f->rec, 0, sizeof(f->rec));
    f->rec.consumer.consume = recorder_consume;
    pthread_mutex_init(&f->rec.mu, NULL);
    f->proc = tu_processor_start(type, body, &f->rec.consumer, &f->cfg);
}

void tu_proc_fixture_stop(struct tu_proc_fixture *f, bool shutdown)
{
    if (shutdown)
        f->proc->ops->shutdown(f->proc, fg_now_ns() + 1000000000);
    f->proc->ops->destroy(f->proc);
    for (int i = 0; i < f->rec.n; i++)
        fg_profiles_unref(f->rec.batches[i]);
    pthread_mutex_destroy(&f->rec.mu);
    fg_config_free(f->cfg);
}

size_t tu_b64_decode(const char *in, uint8_t *out, size_t outsz)
{
    static const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (const char *p = in; *p && *p != '='; p++) {
        const char *q = strchr(tab, *p);
        if (!q)
            return 0;
        acc = acc << 6 | (uint32_t)(q - tab);
        bits += 6;
        if (bits >= 8 && n < outsz) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}
