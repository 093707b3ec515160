/* Extension "file_storage": where persistent sending queues live on disk. The extension
 * owns the directory and the policy; each exporter opens its own queue under it. */
#include "file_storage.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fg_alloc.h"
#include "fg_log.h"

static const char *const fsync_names[] = {"always", "batch", "never", NULL};

static const struct fg_option file_storage_options[] = {
    FG_OPT_STR("directory", struct file_storage_config, directory, "./flamegate-queue",
               "where the queues live (one sub-directory per exporter)"),
    FG_OPT_CHOICE("fsync", struct file_storage_config, fsync, "batch", fsync_names,
                  "always: sync each record before acknowledging it; batch: sync every "
                  "fsync_interval; never: leave it to the kernel"),
    FG_OPT_DUR("fsync_interval", struct file_storage_config, fsync_interval_ns, "200ms",
               1000000, INT64_C(60000000000), "fsync: batch: how often written data is synced"),
    FG_OPT_BYTES("max_size", struct file_storage_config, max_size, "1GiB", 65536,
                 INT64_MAX, "bytes each queue may hold on disk; beyond it data is refused "
                            "with a retryable status"),
    FG_OPT_BYTES("segment_size", struct file_storage_config, segment_size, "8MiB", 4096,
                 (int64_t)256 << 20,
                 "size at which a new segment file starts (replay reads one segment at a time)"),
    FG_OPT_END,
};

struct file_storage {
    struct fg_component base; /* first */
    struct file_storage_config cfg; /* strings borrowed from the config */
};

static int file_storage_start(struct fg_component *c, struct fg_err *err)
{
    struct file_storage *fs = (struct file_storage *)c;
    if (mkdir(fs->cfg.directory, 0700) != 0 && errno != EEXIST)
        return fg_err_set(err, FG_EIO, "%s: cannot create %s: %s", c->id, fs->cfg.directory,
                          strerror(errno));
    return 0;
}

static int file_storage_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    /* Queues are closed by the exporters that opened them, which stop before us. */
    return 0;
}

static void file_storage_destroy(struct fg_component *c)
{
    fg_free(c);
}

static const struct fg_component_ops file_storage_ops = {
    .start = file_storage_start,
    .shutdown = file_storage_shutdown,
    .destroy = file_storage_destroy,
};

static int file_storage_create(const struct fg_create_args *args, struct fg_component **out,
                               struct fg_err *err)
{
    const struct file_storage_config *cfg = args->config;
    *out = NULL;
    if (!cfg->directory || !*cfg->directory)
        return fg_err_set(err, FG_EINVAL, "directory: required");
    struct file_storage *fs = fg_calloc(1, sizeof(*fs));
    if (!fs)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    fs->base.ops = &file_storage_ops;
    fs->base.factory = &fg_file_storage_factory;
    snprintf(fs->base.id, sizeof(fs->base.id), "%s", args->id ? args->id : "file_storage");
    fs->cfg = *cfg;
    *out = &fs->base;
    return 0;
}

bool fg_file_storage_is(const struct fg_component *c)
{
    return c && c->factory == &fg_file_storage_factory;
}

int fg_file_storage_open_queue(struct fg_component *c, const char *owner_id,
                               struct fg_pqueue **out, struct fg_err *err)
{
    struct file_storage *fs = (struct file_storage *)c;
    char dir[PATH_MAX], name[160];
    size_t j = 0;
    /* "otlphttp/backend" → "otlphttp_backend": one flat directory per exporter */
    for (const char *p = owner_id; *p && j + 1 < sizeof(name); p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
        name[j++] = ok ? ch : '_';
    }
    name[j] = '\0';
    if (j == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return fg_err_set(err, FG_EINVAL, "%s: bad queue name \"%s\"", c->id, owner_id);
    if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", fs->cfg.directory, name) >= sizeof(dir))
        return fg_err_set(err, FG_EINVAL, "%s: directory name too long", c->id);
    struct fg_pqueue_options o = {
        .directory = dir,
        .fsync = fs->cfg.fsync,
        .fsync_interval_ns = fs->cfg.fsync_interval_ns,
        .max_size = fs->cfg.max_size,
        .segment_size = fs->cfg.segment_size,
    };
    int rc = fg_pqueue_open(&o, out, err);
    if (rc)
        fg_err_prefix(err, "%s", c->id);
    return rc;
}

const struct fg_factory fg_file_storage_factory = {
    .type = "file_storage",
    .kind = FG_KIND_EXTENSION,
    .config_size = sizeof(struct file_storage_config),
    .options = file_storage_options,
    .create = file_storage_create,
};
