/* Processor "resourcedetection": detects attributes of where flamegate runs (env, system,
 * container, k8s) once at start and adds them to every resource; override: false (the
 * default) keeps what the agent sent. */
#include "fg_resourcedetection.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_attr_actions.h"
#include "fg_component.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_semconv.h"
#include "fg_text.h"

/* ---- attribute lists ---- */

void fg__rd_attrs_free(struct fg_rd_attrs *a)
{
    for (size_t i = 0; i < a->n; i++) {
        fg_free(a->items[i].key);
        fg_free(a->items[i].value);
    }
    fg_free(a->items);
    memset(a, 0, sizeof(*a));
}

int fg__rd_attrs_add(struct fg_rd_attrs *a, const char *key, const char *value, size_t vlen)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->items[i].key, key) == 0)
            return 0;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        struct fg_rd_attr *items = fg_realloc(a->items, cap * sizeof(*items));
        if (!items)
            return FG_ENOMEM;
        a->items = items;
        a->cap = cap;
    }
    char *k = fg_strdup(key);
    char *v = fg_strndup(value, vlen);
    if (!k || !v) {
        fg_free(k);
        fg_free(v);
        return FG_ENOMEM;
    }
    a->items[a->n++] = (struct fg_rd_attr){k, v};
    return 0;
}

/* ---- env ---- */

static void trim(const char **s, const char **e)
{
    while (*s < *e && isspace((unsigned char)**s))
        (*s)++;
    while (*e > *s && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

int fg__rd_parse_resource_attributes(const char *text, struct fg_rd_attrs *out)
{
    const char *p = text ? text : "";
    char key[256], val[1024];
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq) {
            const char *ks = p, *ke = eq, *vs = eq + 1, *ve = end;
            trim(&ks, &ke);
            trim(&vs, &ve);
            size_t kl = (size_t)(ke - ks), vl = 0;
            /* a bad escape or an over-long value makes the entry malformed */
            bool ok = kl > 0 && kl < sizeof(key) &&
                      fg_percent_decode(vs, (size_t)(ve - vs), val, sizeof(val), FG_PERCENT_STRICT,
                                        &vl) == 0;
            if (ok) {
                memcpy(key, ks, kl);
                key[kl] = '\0';
                int rc = fg__rd_attrs_add(out, key, val, vl);
                if (rc)
                    return rc;
            }
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

int fg__rd_env(struct fg_rd_attrs *out)
{
    const char *svc = getenv(FG_OTEL_SERVICE_NAME_ENV);
    int rc;
    /* OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES */
    if (svc && *svc && (rc = fg__rd_attrs_add(out, FG_SEMCONV_SERVICE_NAME, svc, strlen(svc))) != 0)
        return rc;
    return fg__rd_parse_resource_attributes(getenv(FG_OTEL_RESOURCE_ATTRIBUTES_ENV), out);
}

/* ---- system ---- */

/* uname machine → semconv host.arch well-known values. */
static const char *semconv_arch(const char *machine)
{
    static const struct {
        const char *machine, *arch;
    } map[] = {{"x86_64", "amd64"}, {"amd64", "amd64"},   {"aarch64", "arm64"}, {"arm64", "arm64"},
               {"i386", "x86"},     {"i686", "x86"},      {"ppc64", "ppc64"},   {"ppc64le", "ppc64"},
               {"ppc", "ppc32"},    {"s390x", "s390x"},   {"ia64", "ia64"},     {"armv7l", "arm32"},
               {"armv6l", "arm32"}, {"arm", "arm32"}};
    for (size_t i = 0; i < FG_ARRAY_LEN(map); i++)
        if (strcmp(map[i].machine, machine) == 0)
            return map[i].arch;
    return machine;
}

/* PRETTY_NAME from an os-release file, without quotes; "" when absent. */
static void os_pretty_name(const char *path, char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "PRETTY_NAME=", 12) != 0)
            continue;
        char *v = line + 12;
        v[strcspn(v, "\r\n")] = '\0';
        size_t len = strlen(v);
        if (len >= 2 && (v[0] == '"' || v[0] == '\'') && v[len - 1] == v[0]) {
            v[len - 1] = '\0';
            v++;
        }
        snprintf(out, size, "%s", v);
        break;
    }
    fclose(f);
}

int fg__rd_system(const char *os_release_path, struct fg_rd_attrs *out)
{
    int rc;
    char host[256];
    if (gethostname(host, sizeof(host)) == 0) {
        host[sizeof(host) - 1] = '\0';
        if ((rc = fg__rd_attrs_add(out, FG_SEMCONV_HOST_NAME, host, strlen(host))) != 0)
            return rc;
    }
    struct utsname u;
    if (uname(&u) != 0)
        return 0;
    const char *arch = semconv_arch(u.machine);
    char os_type[sizeof(u.sysname)];
    size_t i;
    for (i = 0; u.sysname[i] && i + 1 < sizeof(os_type); i++)
        os_type[i] = (char)tolower((unsigned char)u.sysname[i]);
    os_type[i] = '\0';
    char pretty[256], desc[1024];
    os_pretty_name(os_release_path, pretty, sizeof(pretty));
    /* like the OpenTelemetry Go SDK: "<os-release name> (<uname>)" */
    if (*pretty)
        snprintf(desc, sizeof(desc), "%s (%s %s %s %s)", pretty, u.sysname, u.release, u.version,
                 u.machine);
    else
        snprintf(desc, sizeof(desc), "%s %s %s %s", u.sysname, u.release, u.version, u.machine);
    if ((rc = fg__rd_attrs_add(out, FG_SEMCONV_HOST_ARCH, arch, strlen(arch))) != 0 ||
        (rc = fg__rd_attrs_add(out, FG_SEMCONV_OS_TYPE, os_type, strlen(os_type))) != 0 ||
        (rc = fg__rd_attrs_add(out, FG_SEMCONV_OS_DESCRIPTION, desc, strlen(desc))) != 0)
        return rc;
    return 0;
}

/* ---- container ---- */

static bool is_container_id(const char *s, size_t len)
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (fg_hex_digit(s[i]) < 0 || (s[i] >= 'A' && s[i] <= 'F'))
            return false;
    return true;
}

/* The last path segment of a cgroup line, with runtime prefixes ("docker-", "cri-containerd-",
 * "crio-", "libpod-") and a ".scope" suffix removed. */
static bool id_from_cgroup_line(const char *line, char id[65])
{
    const char *seg = strrchr(line, '/');
    if (!seg)
        return false;
    seg++;
    size_t len = strcspn(seg, "\r\n");
    if (len > 6 && memcmp(seg + len - 6, ".scope", 6) == 0)
        len -= 6;
    const char *start = seg;
    for (const char *q = seg; q < seg + len; q++)
        if (*q == '-' || *q == ':')
            start = q + 1;
    size_t n = (size_t)(seg + len - start);
    if (!is_container_id(start, n))
        return false;
    memcpy(id, start, 64);
    id[64] = '\0';
    return true;
}

/* cgroup v2: mount sources like /var/lib/docker/containers/<id>/hostname. */
static bool id_from_mountinfo_line(const char *line, char id[65])
{
    static const char *const markers[] = {"/containers/", "/overlay-containers/"};
    for (size_t m = 0; m < FG_ARRAY_LEN(markers); m++) {
        for (const char *p = strstr(line, markers[m]); p; p = strstr(p + 1, markers[m])) {
            const char *s = p + strlen(markers[m]);
            size_t n = strcspn(s, "/ \t\r\n");
            if (is_container_id(s, n)) {
                memcpy(id, s, 64);
                id[64] = '\0';
                return true;
            }
        }
    }
    return false;
}

static bool scan_file(const char *path, bool (*fn)(const char *, char[65]), char id[65])
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = fn(line, id);
    fclose(f);
    return found;
}

int fg__rd_container_id(const char *cgroup_path, const char *mountinfo_path, char id[65])
{
    if (scan_file(cgroup_path, id_from_cgroup_line, id) ||
        scan_file(mountinfo_path, id_from_mountinfo_line, id))
        return 0;
    return FG_ENOTFOUND;
}

/* ---- k8s ---- */

int fg__rd_k8s(struct fg_rd_attrs *out)
{
    static const struct {
        const char *env, *key;
    } map[] = {
        {"K8S_POD_NAME", FG_SEMCONV_K8S_POD_NAME},
        {"K8S_POD_UID", FG_SEMCONV_K8S_POD_UID},
        {"K8S_NAMESPACE_NAME", FG_SEMCONV_K8S_NAMESPACE_NAME},
        {"K8S_NODE_NAME", FG_SEMCONV_K8S_NODE_NAME},
        {"K8S_CONTAINER_NAME", FG_SEMCONV_K8S_CONTAINER_NAME},
    };
    for (size_t i = 0; i < FG_ARRAY_LEN(map); i++) {
        const char *v = getenv(map[i].env);
        int rc;
        if (v && *v && (rc = fg__rd_attrs_add(out, map[i].key, v, strlen(v))) != 0)
            return rc;
    }
    return 0;
}

/* ---- the processor ---- */

static const char *const detector_names[] = {"env", "system", "container", "k8s", NULL};

struct rd_config {
    struct fg_strlist detectors;
    bool override;
};

static int check_detector(const void *value, struct fg_err *err)
{
    const char *s = *(const char *const *)value;
    for (size_t i = 0; detector_names[i]; i++)
        if (strcmp(detector_names[i], s) == 0)
            return 0;
    return fg_err_set(err, FG_EINVAL, "unknown detector \"%s\" (valid: env, system, container, k8s)",
                      s);
}

static const struct fg_option rd_options[] = {
    FG_OPT_LIST_CHECK("detectors", struct rd_config, detectors, check_detector,
                      "env, system, container, k8s (default: env); the first to set a key wins"),
    FG_OPT_BOOLEAN("override", struct rd_config, override, "false",
                   "replace attributes the resource already has"),
    FG_OPT_END,
};

struct rd_processor {
    struct fg_component base;
    struct fg_consumer *next;
    struct fg_strlist detectors; /* owned copies of the names */
    bool override;
    struct fg_rd_attrs detected; /* filled by start */
};

static int run_detectors(struct rd_processor *rd)
{
    int rc = 0;
    for (size_t i = 0; i < rd->detectors.n && !rc; i++) {
        const char *d = rd->detectors.items[i];
        if (strcmp(d, "env") == 0) {
            rc = fg__rd_env(&rd->detected);
        } else if (strcmp(d, "system") == 0) {
            rc = fg__rd_system("/etc/os-release", &rd->detected);
        } else if (strcmp(d, "container") == 0) {
            char id[65];
            if (fg__rd_container_id("/proc/self/cgroup", "/proc/self/mountinfo", id) == 0)
                rc = fg__rd_attrs_add(&rd->detected, FG_SEMCONV_CONTAINER_ID, id, 64);
            else
                fg_log(FG_LOG_INFO, rd->base.id, "container: no container id found");
        } else if (strcmp(d, "k8s") == 0) {
            rc = fg__rd_k8s(&rd->detected);
        }
    }
    return rc;
}

static bool has_key(const struct fg_resource *res, const char *key)
{
    size_t len = strlen(key);
    for (uint32_t i = 0; i < res->n_attrs; i++)
        if (res->attrs[i].key.len == len && memcmp(res->attrs[i].key.ptr, key, len) == 0)
            return true;
    return false;
}

static bool needs_change(const struct rd_processor *rd, const struct fg_profiles *in)
{
    if (!rd->detected.n || !in->n_resources)
        return false;
    if (rd->override)
        return true;
    for (uint32_t r = 0; r < in->n_resources; r++)
        for (size_t i = 0; i < rd->detected.n; i++)
            if (!has_key(&in->resources[r].resource, rd->detected.items[i].key))
                return true;
    return false;
}

static int add_detected(const void *ctx, struct fg_profiles *out, struct fg_attr_list *l)
{
    const struct rd_processor *rd = ctx;
    for (uint32_t r = 0; r < out->n_resources; r++) {
        struct fg_resource *res = &out->resources[r].resource;
        int rc = fg_attr_list_from_kv(l, res->attrs, res->n_attrs);
        if (rc)
            return rc;
        for (size_t i = 0; i < rd->detected.n; i++) {
            const struct fg_rd_attr *a = &rd->detected.items[i];
            size_t klen = strlen(a->key);
            if (!rd->override && fg_attr_list_find(l, a->key, klen) >= 0)
                continue;
            struct fg_value v = {.kind = FG_VALUE_STRING,
                                 .u.s = {a->value, (uint32_t)strlen(a->value)}};
            if ((rc = fg_attr_list_set(l, a->key, klen, &v)) != 0)
                return rc;
        }
        if ((rc = fg_attr_list_to_kv(l, out, &res->attrs, &res->n_attrs)) != 0)
            return rc;
    }
    return 0;
}

static int process(const struct rd_processor *rd, const struct fg_profiles *in,
                   struct fg_profiles **outp, struct fg_err *err)
{
    *outp = NULL;
    if (!needs_change(rd, in))
        return 0;
    return fg_proc_edit_copy(in, add_detected, rd, outp, err);
}

static int rd_consume(struct fg_consumer *self, struct fg_profiles *batch, struct fg_err *err)
{
    struct rd_processor *rd =
        (struct rd_processor *)((char *)self - offsetof(struct fg_component, consumer));
    struct fg_profiles *out = NULL;
    int rc = process(rd, batch, &out, err);
    return fg_proc_finish(rd->next, rd->base.id, batch, out, rc, err);
}

static int rd_start(struct fg_component *c, struct fg_err *err)
{
    struct rd_processor *rd = (struct rd_processor *)c;
    int rc = run_detectors(rd);
    if (rc)
        return fg_err_set(err, rc, "resource detection: %s", fg_strerror(rc));
    for (size_t i = 0; i < rd->detected.n; i++)
        fg_log(FG_LOG_DEBUG, c->id, "detected %s=%s", rd->detected.items[i].key,
               rd->detected.items[i].value);
    return 0;
}

static void rd_destroy(struct fg_component *c)
{
    struct rd_processor *rd = (struct rd_processor *)c;
    if (!rd)
        return;
    for (size_t i = 0; i < rd->detectors.n; i++)
        fg_free(rd->detectors.items[i]);
    fg_free(rd->detectors.items);
    fg__rd_attrs_free(&rd->detected);
    fg_free(rd);
}

static const struct fg_component_ops rd_ops = {
    .start = rd_start,
    .shutdown = fg_proc_shutdown_nothing,
    .destroy = rd_destroy,
};

static int rd_create(const struct fg_create_args *args, struct fg_component **out,
                     struct fg_err *err)
{
    const struct rd_config *cfg = args->config;
    struct rd_processor *rd = fg_calloc(1, sizeof(*rd));
    if (!rd)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    rd->base.ops = &rd_ops;
    rd->base.consumer.consume = rd_consume;
    rd->next = args->next;
    rd->override = cfg->override;
    static const char *const def[] = {"env"};
    size_t n = cfg->detectors.n ? cfg->detectors.n : 1;
    const char *const *names = cfg->detectors.n ? (const char *const *)cfg->detectors.items : def;
    if (!(rd->detectors.items = fg_calloc(n, sizeof(char *))))
        goto nomem;
    for (size_t i = 0; i < n; i++, rd->detectors.n++)
        if (!(rd->detectors.items[i] = fg_strdup(names[i])))
            goto nomem;
    *out = &rd->base;
    return 0;
nomem:
    rd_destroy(&rd->base);
    return fg_err_set(err, FG_ENOMEM, "out of memory");
}

const struct fg_factory fg_resourcedetection_processor_factory = {
    .type = "resourcedetection",
    .kind = FG_KIND_PROCESSOR,
    .config_size = sizeof(struct rd_config),
    .options = rd_options,
    .validate = NULL,
    .create = rd_create,
};
