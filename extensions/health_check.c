/* Extension "health_check": answers GET on endpoint+path with 200 while every pipeline runs,
 * 503 while starting, shutting down, or while an exporter has failed continuously for longer
 * than exporter_failure_threshold; the JSON body says why. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_http.h"
#include "fg_log.h"
#include "fg_metrics.h"

struct health_config {
    char *endpoint;
    char *path;
    int64_t exporter_failure_threshold_ns;
};

static const struct fg_option health_options[] = {
    FG_OPT_STR("endpoint", struct health_config, endpoint, "127.0.0.1:13133",
               "HOST:PORT to serve the health check on (port 0 picks a free port and logs it)"),
    FG_OPT_STR("path", struct health_config, path, "/", "the URL path that answers"),
    FG_OPT_DUR("exporter_failure_threshold", struct health_config,
               exporter_failure_threshold_ns, "5m", 0, INT64_C(86400000000000),
               "unhealthy once an exporter has failed every attempt for this long (0s: "
               "exporter failures never make it unhealthy)"),
    FG_OPT_END,
};

/* The listener outlives one service: a reload builds a new health_check while the old one
 * still holds the port, so instances with the same endpoint and path share one server. */
struct listener {
    struct listener *next;
    char key[512]; /* endpoint + " " + path */
    struct fg_http_server *srv;
    int refs;
    _Atomic int64_t threshold_ns; /* the newest instance's setting */
};

static pthread_mutex_t listeners_mu = PTHREAD_MUTEX_INITIALIZER;
static struct listener *listeners;

struct health {
    struct fg_component base; /* first */
    struct health_config cfg; /* strings borrowed from the config */
    struct listener *l;
};

struct worst {
    int64_t now;
    int64_t failing_s;
    char id[128];
};

static void check_exporter(void *ctx, const char *labels, int64_t since)
{
    struct worst *w = ctx;
    if (since <= 0 || w->now - since <= w->failing_s)
        return;
    w->failing_s = w->now - since;
    /* labels is exporter="ID" */
    const char *q = strchr(labels, '"');
    size_t n = q ? strlen(q + 1) : 0;
    if (n > 0)
        n--; /* the closing quote */
    snprintf(w->id, sizeof(w->id), "%.*s", (int)n, q ? q + 1 : "");
}

static void health_handle(void *ctx, const struct fg_http_request *req,
                          struct fg_http_response *resp)
{
    struct listener *l = ctx;
    snprintf(resp->content_type, sizeof(resp->content_type), "application/json");
    enum fg_run_state st = fg_run_state_get();
    if (st != FG_RUN_RUNNING) {
        resp->status = 503;
        fg_buf_printf(&resp->body, "{\"status\":\"Server not available\",\"reason\":\"%s\"}\n",
                      st == FG_RUN_STARTING ? "starting" : "shutting down");
        return;
    }
    int64_t threshold_s = (atomic_load(&l->threshold_ns) + 999999999) / 1000000000;
    struct worst w = {.now = (int64_t)time(NULL), .failing_s = 0};
    if (threshold_s > 0) {
        w.failing_s = threshold_s;
        fg_metrics_each("flamegate_exporter_failing_since_seconds", check_exporter, &w);
    }
    if (w.id[0]) {
        resp->status = 503;
        /* ids are [A-Za-z0-9_./-]: nothing to escape */
        fg_buf_printf(&resp->body,
                      "{\"status\":\"Server not available\",\"reason\":\"exporter failing\","
                      "\"exporter\":\"%s\",\"failing_seconds\":%lld,"
                      "\"threshold_seconds\":%lld}\n",
                      w.id, (long long)w.failing_s, (long long)threshold_s);
        return;
    }
    int64_t since = fg_run_state_since();
    struct tm tm;
    time_t t = (time_t)since;
    gmtime_r(&t, &tm);
    resp->status = 200;
    fg_buf_printf(&resp->body,
                  "{\"status\":\"Server available\",\"upSince\":\"%04d-%02d-%02dT%02d:%02d:%02dZ\","
                  "\"uptime_seconds\":%lld}\n",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  (long long)(w.now - since));
}

static int health_start(struct fg_component *c, struct fg_err *err)
{
    struct health *h = (struct health *)c;
    char key[512];
    snprintf(key, sizeof(key), "%s %s", h->cfg.endpoint, h->cfg.path);
    int rc = 0;
    pthread_mutex_lock(&listeners_mu);
    struct listener *l;
    for (l = listeners; l; l = l->next)
        if (strcmp(l->key, key) == 0)
            break;
    if (l) {
        l->refs++;
        atomic_store(&l->threshold_ns, h->cfg.exporter_failure_threshold_ns);
        h->l = l;
        goto out;
    }
    if (!(l = fg_calloc(1, sizeof(*l)))) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(l->key, sizeof(l->key), "%s", key);
    atomic_store(&l->threshold_ns, h->cfg.exporter_failure_threshold_ns);
    struct fg_http_route route = {
        .path = h->cfg.path, .method = "GET", .handler = health_handle, .ctx = l, .max_body = 0};
    /* probes are few: one HTTP/2 worker and a small connection cap */
    struct fg_http_limits lim;
    fg_http_limits_default(&lim);
    lim.workers = 1;
    lim.max_connections = 64;
    if ((rc = fg_http_server_new(h->cfg.endpoint, &l->srv, err)) != 0 ||
        (rc = fg_http_server_set_limits(l->srv, &lim)) != 0 ||
        (rc = fg_http_server_route(l->srv, &route)) != 0 ||
        (rc = fg_http_server_start(l->srv, err)) != 0) {
        if (rc == FG_ENOMEM)
            fg_err_set(err, rc, "out of memory");
        fg_http_server_free(l->srv);
        fg_free(l);
        goto out;
    }
    l->refs = 1;
    l->next = listeners;
    listeners = l;
    h->l = l;
    const char *colon = strrchr(h->cfg.endpoint, ':');
    fg_log(FG_LOG_INFO, c->id, "listening on %.*s:%u%s (health check)",
           colon ? (int)(colon - h->cfg.endpoint) : 0, h->cfg.endpoint,
           (unsigned)fg_http_server_port(l->srv), h->cfg.path);
out:
    pthread_mutex_unlock(&listeners_mu);
    if (rc)
        fg_err_prefix(err, "%s", h->cfg.endpoint);
    return rc;
}

static int health_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    struct health *h = (struct health *)c;
    struct listener *gone = NULL;
    pthread_mutex_lock(&listeners_mu);
    if (h->l && --h->l->refs == 0) {
        for (struct listener **pp = &listeners; *pp; pp = &(*pp)->next)
            if (*pp == h->l) {
                *pp = h->l->next;
                break;
            }
        gone = h->l;
    }
    h->l = NULL;
    pthread_mutex_unlock(&listeners_mu);
    if (gone) {
        fg_http_server_stop(gone->srv);
        fg_http_server_free(gone->srv);
        fg_free(gone);
    }
    return 0;
}

static void health_destroy(struct fg_component *c)
{
    if (c && ((struct health *)c)->l)
        health_shutdown(c, 0);
    fg_free(c);
}

static const struct fg_component_ops health_ops = {
    .start = health_start,
    .shutdown = health_shutdown,
    .destroy = health_destroy,
};

static int health_validate(const void *config, struct fg_err *err)
{
    const struct health_config *cfg = config;
    if (!cfg->endpoint || !strchr(cfg->endpoint, ':'))
        return fg_err_set(err, FG_EINVAL, "endpoint: expected HOST:PORT");
    if (!cfg->path || cfg->path[0] != '/')
        return fg_err_set(err, FG_EINVAL, "path: must start with /");
    return 0;
}

static int health_create(const struct fg_create_args *args, struct fg_component **out,
                         struct fg_err *err)
{
    struct health *h = fg_calloc(1, sizeof(*h));
    *out = NULL;
    if (!h)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    h->base.ops = &health_ops;
    snprintf(h->base.id, sizeof(h->base.id), "%s", args->id ? args->id : "health_check");
    h->cfg = *(const struct health_config *)args->config;
    *out = &h->base;
    return 0;
}

const struct fg_factory fg_health_check_extension_factory = {
    .type = "health_check",
    .kind = FG_KIND_EXTENSION,
    .config_size = sizeof(struct health_config),
    .options = health_options,
    .validate = health_validate,
    .create = health_create,
};
