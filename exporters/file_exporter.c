/* Exporter "file": one complete OTLP request per batch, written under a temporary name and
 * renamed into place so readers never see half a file. */
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

static const char *const format_names[] = {"otlp_proto", "otlp_json", NULL};

static const struct fg_option file_options[] = {
    FG_OPT_STR("path", struct file_config, path, "./flamegate-data",
               "directory to write into (created if missing)"),
    FG_OPT_CHOICE("format", struct file_config, format, "otlp_proto", format_names,
                  "otlp_proto or otlp_json"),
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

static int write_file(const char *path, const struct fg_buf *data, struct fg_err *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return fg_err_set(err, FG_EIO, "cannot create %s: %s", path, strerror(errno));
    size_t n = data->len ? fwrite(data->data, 1, data->len, f) : 0;
    int write_errno = errno;
    bool ok = n == data->len && fflush(f) == 0;
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

static int file_consume(struct fg_consumer *self, struct fg_profiles *batch,
                        struct fg_err *caller_err)
{
    struct fg_err local = {{0}};
    struct fg_err *err = caller_err ? caller_err : &local;
    struct file_exporter *x =
        (struct file_exporter *)((char *)self - offsetof(struct fg_component, consumer));
    struct fg_buf data, name, final_path, tmp_path;
    int rc;

    fg_buf_init(&data, 0);
    fg_buf_init(&name, 0);
    fg_buf_init(&final_path, 0);
    fg_buf_init(&tmp_path, 0);

    rc = x->format == FILE_FORMAT_OTLP_JSON ? fg_otlp_encode_json(batch, &data)
                                            : fg_otlp_encode_proto(batch, &data);
    if (rc != 0) {
        rc = fg_err_set(err, FG_EIO, "%s: cannot encode batch: %s", x->base.id, fg_strerror(rc));
        goto fail;
    }

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&x->mu);
    uint64_t seq = x->seq++;
    pthread_mutex_unlock(&x->mu);
    rc = fg_buf_printf(&name, "profiles-%lld%09ld-%llu.%s", (long long)ts.tv_sec, ts.tv_nsec,
                       (unsigned long long)seq,
                       x->format == FILE_FORMAT_OTLP_JSON ? "json" : "pb");
    if (rc == 0)
        rc = fg_buf_printf(&final_path, "%s/%.*s", x->dir, (int)name.len, (const char *)name.data);
    if (rc == 0)
        rc = fg_buf_printf(&tmp_path, "%s/.tmp-%.*s", x->dir, (int)name.len,
                           (const char *)name.data);
    if (rc == 0)
        rc = fg_buf_append(&final_path, "", 1);
    if (rc == 0)
        rc = fg_buf_append(&tmp_path, "", 1);
    if (rc != 0) {
        rc = fg_err_set(err, FG_ENOMEM, "%s: out of memory", x->base.id);
        goto fail;
    }

    const char *tmp = (const char *)tmp_path.data, *dst = (const char *)final_path.data;
    rc = write_file(tmp, &data, err);
    if (rc != 0)
        goto fail;
    if (rename(tmp, dst) != 0) {
        rc = fg_err_set(err, FG_EIO, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
        remove(tmp);
        goto fail;
    }
    fg_log(FG_LOG_DEBUG, x->base.id, "wrote %s (%zu bytes, %llu samples)", dst, data.len,
           (unsigned long long)batch->n_samples);

fail:
    if (rc != 0)
        fg_log(FG_LOG_ERROR, x->base.id, "dropping batch of %llu samples: %s",
               (unsigned long long)batch->n_samples, err->msg);
    fg_profiles_unref(batch);
    fg_buf_free(&tmp_path);
    fg_buf_free(&final_path);
    fg_buf_free(&name);
    fg_buf_free(&data);
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
