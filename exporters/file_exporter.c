/* Exporter "file": one complete OTLP request per batch, or one pprof per pprof group, or one
 * folded-stack text per profile; each written under a temporary dot-name and renamed into
 * place so readers never see half a file. */
#include "file_exporter.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_buf.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_otlp.h"
#include "fg_pprof.h"

static const char *const format_names[] = {"otlp_proto", "otlp_json", "pprof", "folded", NULL};

static const struct fg_option file_options[] = {
    FG_OPT_STR("path", struct file_config, path, "./flamegate-data",
               "directory to write into (created if missing)"),
    FG_OPT_CHOICE("format", struct file_config, format, "otlp_proto", format_names,
                  "otlp_proto, otlp_json, pprof (gzip, one file per pprof group) or folded "
                  "(Brendan Gregg folded stacks, one file per profile)"),
    FG_OPT_END,
};

struct file_exporter {
    struct fg_component base; /* first: the pipeline sees only this */
    char *dir;
    int format;
    pthread_mutex_t mu; /* the sequence number */
    uint64_t seq;
};

static int file_validate(const void *config, struct fg_err *err)
{
    const struct file_config *cfg = config;
    if (!cfg->path || !*cfg->path)
        return fg_err_set(err, FG_EINVAL, "path: required");
    return 0;
}

/* mkdir -p: creates each missing component; fails when one exists and is not a directory. */
static int make_dirs(const char *path, struct fg_err *err)
{
    char tmp[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(tmp))
        return fg_err_set(err, FG_EINVAL, "path: empty or too long");
    memcpy(tmp, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        char saved = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return fg_err_set(err, FG_EIO, "path: cannot create %s: %s", tmp, strerror(errno));
        tmp[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return fg_err_set(err, FG_EIO, "path: %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fg_err_set(err, FG_EIO, "path: %s exists and is not a directory", path);
    return 0;
}

static int write_file(const char *path, const uint8_t *data, size_t len, struct fg_err *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return fg_err_set(err, FG_EIO, "cannot create %s: %s", path, strerror(errno));
    size_t n = len ? fwrite(data, 1, len, f) : 0;
    int write_errno = errno;
    bool ok = n == len && fflush(f) == 0;
    if (!ok)
        write_errno = errno ? errno : write_errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        write_errno = errno;
    }
    if (!ok) {
        remove(path);
        return fg_err_set(err, FG_EIO, "cannot write %s: %s", path, strerror(write_errno));
    }
    return 0;
}

static uint64_t next_seq(struct file_exporter *x)
{
    pthread_mutex_lock(&x->mu);
    uint64_t seq = x->seq++;
    pthread_mutex_unlock(&x->mu);
    return seq;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Writes data as dir/name through dir/.tmp-name and a rename. */
static int publish(struct file_exporter *x, const struct fg_buf *name, const uint8_t *data,
                   size_t len, struct fg_err *err)
{
    struct fg_buf final_path, tmp_path;
    fg_buf_init(&final_path, 0);
    fg_buf_init(&tmp_path, 0);
    int rc = fg_buf_printf(&final_path, "%s/%.*s", x->dir, (int)name->len,
                           (const char *)name->data);
    if (rc == 0)
        rc = fg_buf_printf(&tmp_path, "%s/.tmp-%.*s", x->dir, (int)name->len,
                           (const char *)name->data);
    if (rc == 0)
        rc = fg_buf_append(&final_path, "", 1);
    if (rc == 0)
        rc = fg_buf_append(&tmp_path, "", 1);
    if (rc != 0) {
        rc = fg_err_set(err, FG_ENOMEM, "%s: out of memory", x->base.id);
        goto fail;
    }
    const char *tmp = (const char *)tmp_path.data, *dst = (const char *)final_path.data;
    rc = write_file(tmp, data, len, err);
    if (rc != 0)
        goto fail;
    if (rename(tmp, dst) != 0) {
        rc = fg_err_set(err, FG_EIO, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
        remove(tmp);
        goto fail;
    }
    fg_log(FG_LOG_DEBUG, x->base.id, "wrote %s (%zu bytes)", dst, len);
fail:
    fg_buf_free(&tmp_path);
    fg_buf_free(&final_path);
    return rc;
}

/* A file-name part: [A-Za-z0-9._] kept, anything else '_', at most 64 bytes. */
static int name_part(struct fg_buf *b, const char *s, size_t len, const char *fallback)
{
    if (len == 0) {
        s = fallback;
        len = strlen(fallback);
    }
    if (len > 64)
        len = 64;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_';
        int rc = fg_buf_append(b, ok ? &c : "_", 1);
        if (rc)
            return rc;
    }
    return 0;
}

static struct fg_bytes service_name(const struct fg_resource_profiles *rp)
{
    for (uint32_t i = 0; i < rp->resource.n_attrs; i++) {
        const struct fg_keyvalue *kv = &rp->resource.attrs[i];
        if (kv->key.len == 12 && memcmp(kv->key.ptr, "service.name", 12) == 0 &&
            kv->value.kind == FG_VALUE_STRING)
            return kv->value.u.s;
    }
    return (struct fg_bytes){"", 0};
}

/* <prefix>-<service>-<type>-<unix_ns>-<seq><ext>; time is the profile's, or now. */
static int profile_file_name(struct file_exporter *x, const struct fg_profiles *batch,
                             const struct fg_resource_profiles *rp,
                             const struct fg_profile *prof, const char *prefix, const char *ext,
                             struct fg_buf *name)
{
    struct fg_bytes svc = service_name(rp);
    struct fg_bytes type = fg_dict_get_string(batch, prof->sample_type.type);
    uint64_t t = prof->time_unix_nano ? prof->time_unix_nano : now_ns();
    name->len = 0;
    int rc = fg_buf_printf(name, "%s-", prefix);
    if (!rc)
        rc = name_part(name, svc.ptr, svc.len, "unknown_service");
    if (!rc)
        rc = fg_buf_append(name, "-", 1);
    if (!rc)
        rc = name_part(name, type.ptr, type.len, "unknown");
    if (!rc)
        rc = fg_buf_printf(name, "-%llu-%llu%s", (unsigned long long)t,
                           (unsigned long long)next_seq(x), ext);
    return rc;
}

struct pprof_ctx {
    struct file_exporter *x;
    const struct fg_profiles *batch;
    struct fg_buf name;
};

static int write_pprof(void *ctx, const struct fg_pprof_group *g, const uint8_t *data,
                       size_t len, struct fg_err *err)
{
    struct pprof_ctx *c = ctx;
    const struct fg_profile *first = &g->scope->profiles[g->profiles[0]];
    if (profile_file_name(c->x, c->batch, g->resource, first, "pprof", ".pb.gz", &c->name))
        return fg_err_set(err, FG_ENOMEM, "%s: out of memory", c->x->base.id);
    return publish(c->x, &c->name, data, len, err);
}

/* One frame name for folded text: ';' separates frames and a newline ends the record, so
 * both are replaced. */
static int put_frame(struct fg_buf *b, const struct fg_profiles *p, const struct fg_location *l,
                     const struct fg_line *ln)
{
    struct fg_bytes s = {"", 0};
    if (ln && ln->function) {
        const struct fg_function *f = fg_dict_get_function(p, ln->function);
        s = fg_dict_get_string(p, f->name);
        if (s.len == 0)
            s = fg_dict_get_string(p, f->system_name);
    }
    if (s.len == 0) {
        struct fg_bytes file = {"", 0};
        if (l->mapping)
            file = fg_dict_get_string(p, fg_dict_get_mapping(p, l->mapping)->filename);
        const char *slash = file.len ? memrchr(file.ptr, '/', file.len) : NULL;
        if (slash) {
            file.len -= (uint32_t)(slash + 1 - file.ptr);
            file.ptr = slash + 1;
        }
        int rc = 0;
        for (uint32_t i = 0; i < file.len && rc == 0; i++) {
            char c = file.ptr[i] == ';' ? ':' : file.ptr[i];
            rc = fg_buf_append(b, c == '\n' || c == '\r' || c == ' ' ? "_" : &c, 1);
        }
        return rc ? rc
                  : fg_buf_printf(b, "%s0x%llx", file.len ? "+" : "",
                                  (unsigned long long)l->address);
    }
    for (uint32_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c == ';')
            c = ':';
        else if (c == '\n' || c == '\r')
            c = ' ';
        int rc = fg_buf_append(b, &c, 1);
        if (rc)
            return rc;
    }
    return 0;
}

/* Folded text of one profile: one line per distinct stack, root first, weights summed
 * (values, or one per timestamp), zero weights and empty stacks left out. */
static int folded_text(const struct fg_profiles *p, const struct fg_profile *prof,
                       struct fg_buf *out)
{
    uint32_t n_stacks = fg_dict_len(p, FG_TABLE_STACK);
    int64_t *sum = fg_calloc(n_stacks ? n_stacks : 1, sizeof(*sum));
    uint32_t *order = fg_malloc((prof->n_samples ? prof->n_samples : 1) * sizeof(*order));
    uint8_t *seen = fg_calloc(n_stacks ? n_stacks : 1, 1);
    uint32_t n_order = 0;
    int rc = 0;
    if (!sum || !order || !seen) {
        rc = FG_ENOMEM;
        goto done;
    }
    for (uint32_t i = 0; i < prof->n_samples; i++) {
        const struct fg_sample *s = &prof->samples[i];
        int64_t w = (int64_t)s->n_timestamps;
        if (s->n_values) {
            w = 0;
            for (uint32_t v = 0; v < s->n_values; v++)
                w += s->values[v];
        }
        sum[s->stack] += w;
        if (!seen[s->stack]) {
            seen[s->stack] = 1;
            order[n_order++] = s->stack;
        }
    }
    for (uint32_t k = 0; k < n_order && rc == 0; k++) {
        const struct fg_stack *st = fg_dict_get_stack(p, order[k]);
        if (sum[order[k]] == 0 || st->n_locations == 0)
            continue;
        bool first = true;
        for (uint32_t i = st->n_locations; i-- > 0 && rc == 0;) {
            const struct fg_location *l = fg_dict_get_location(p, st->locations[i]);
            uint32_t n = l->n_lines ? l->n_lines : 1;
            for (uint32_t j = n; j-- > 0 && rc == 0;) { /* outermost caller first */
                if (!first)
                    rc = fg_buf_append(out, ";", 1);
                first = false;
                if (!rc)
                    rc = put_frame(out, p, l, l->n_lines ? &l->lines[j] : NULL);
            }
        }
        if (!rc)
            rc = fg_buf_printf(out, " %lld\n", (long long)sum[order[k]]);
    }
done:
    fg_free(seen);
    fg_free(order);
    fg_free(sum);
    return rc;
}

static int write_folded(struct file_exporter *x, const struct fg_profiles *batch,
                        struct fg_err *err)
{
    struct fg_buf text, name;
    int rc = 0;
    fg_buf_init(&text, 0);
    fg_buf_init(&name, 0);
    for (uint32_t r = 0; r < batch->n_resources && rc == 0; r++) {
        const struct fg_resource_profiles *rp = &batch->resources[r];
        for (uint32_t s = 0; s < rp->n_scopes && rc == 0; s++) {
            const struct fg_scope_profiles *sp = &rp->scopes[s];
            for (uint32_t i = 0; i < sp->n_profiles && rc == 0; i++) {
                text.len = 0;
                rc = folded_text(batch, &sp->profiles[i], &text);
                if (!rc)
                    rc = profile_file_name(x, batch, rp, &sp->profiles[i], "folded", ".folded",
                                           &name);
                if (rc) {
                    rc = fg_err_set(err, FG_ENOMEM, "%s: out of memory", x->base.id);
                    break;
                }
                rc = publish(x, &name, text.data, text.len, err);
            }
        }
    }
    fg_buf_free(&name);
    fg_buf_free(&text);
    return rc;
}

static int write_otlp(struct file_exporter *x, const struct fg_profiles *batch,
                      struct fg_err *err)
{
    struct fg_buf data, name;
    fg_buf_init(&data, 0);
    fg_buf_init(&name, 0);
    int rc = x->format == FILE_FORMAT_OTLP_JSON ? fg_otlp_encode_json(batch, &data)
                                                : fg_otlp_encode_proto(batch, &data);
    if (rc != 0) {
        rc = fg_err_set(err, FG_EIO, "%s: cannot encode batch: %s", x->base.id, fg_strerror(rc));
        goto fail;
    }
    uint64_t t = now_ns();
    rc = fg_buf_printf(&name, "profiles-%llu-%llu.%s", (unsigned long long)t,
                       (unsigned long long)next_seq(x),
                       x->format == FILE_FORMAT_OTLP_JSON ? "json" : "pb");
    if (rc != 0) {
        rc = fg_err_set(err, FG_ENOMEM, "%s: out of memory", x->base.id);
        goto fail;
    }
    rc = publish(x, &name, data.data, data.len, err);
fail:
    fg_buf_free(&name);
    fg_buf_free(&data);
    return rc;
}

static int file_consume(struct fg_consumer *self, struct fg_profiles *batch,
                        struct fg_err *caller_err)
{
    struct fg_err local = {{0}};
    struct fg_err *err = caller_err ? caller_err : &local;
    struct file_exporter *x =
        (struct file_exporter *)((char *)self - offsetof(struct fg_component, consumer));
    int rc;

    if (x->format == FILE_FORMAT_PPROF) {
        struct pprof_ctx c = {.x = x, .batch = batch};
        fg_buf_init(&c.name, 0);
        rc = fg_pprof_encode(batch, true, write_pprof, &c, err);
        fg_buf_free(&c.name);
    } else if (x->format == FILE_FORMAT_FOLDED) {
        rc = write_folded(x, batch, err);
    } else {
        rc = write_otlp(x, batch, err);
    }
    if (rc != 0)
        fg_log(FG_LOG_ERROR, x->base.id, "dropping batch of %llu samples: %s",
               (unsigned long long)batch->n_samples, err->msg);
    else
        fg_log(FG_LOG_DEBUG, x->base.id, "wrote a batch of %llu samples",
               (unsigned long long)batch->n_samples);
    fg_profiles_unref(batch);
    return rc;
}

static int file_start(struct fg_component *c, struct fg_err *err)
{
    struct file_exporter *x = (struct file_exporter *)c;
    return make_dirs(x->dir, err);
}

static int file_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    /* Writes are synchronous: nothing is held between calls. */
    return 0;
}

static void file_destroy(struct fg_component *c)
{
    struct file_exporter *x = (struct file_exporter *)c;
    if (!x)
        return;
    pthread_mutex_destroy(&x->mu);
    fg_free(x->dir);
    fg_free(x);
}

static const struct fg_component_ops file_ops = {
    .start = file_start,
    .shutdown = file_shutdown,
    .destroy = file_destroy,
};

static int file_create(const struct fg_create_args *args, struct fg_component **out,
                       struct fg_err *err)
{
    const struct file_config *cfg = args->config;
    *out = NULL;
    int rc = file_validate(cfg, err);
    if (rc != 0)
        return rc;
    struct file_exporter *x = fg_calloc(1, sizeof(*x));
    if (!x)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    x->dir = fg_strdup(cfg->path);
    if (!x->dir || pthread_mutex_init(&x->mu, NULL) != 0) {
        fg_free(x->dir);
        fg_free(x);
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    }
    x->base.ops = &file_ops;
    x->base.factory = &fg_file_exporter_factory;
    snprintf(x->base.id, sizeof(x->base.id), "%s", args->id ? args->id : "file");
    x->base.consumer.consume = file_consume;
    x->format = cfg->format;
    *out = &x->base;
    return 0;
}

const struct fg_factory fg_file_exporter_factory = {
    .type = "file",
    .kind = FG_KIND_EXPORTER,
    .config_size = sizeof(struct file_config),
    .options = file_options,
    .validate = file_validate,
    .create = file_create,
};
