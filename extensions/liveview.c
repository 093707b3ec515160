/* Extension "liveview": a built-in web page showing what flows through the gateway. A tap
 * observer queues a reference to each batch in a bounded lock-free ring (dropping and
 * counting when full); the extension's thread aggregates them; HTTP threads render. */
#include "liveview.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fg_alloc.h"
#include "fg_config.h"
#include "fg_exporter_helper.h"
#include "fg_http.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_service.h"
#include "fg_tap.h"
#include "fg_text.h"
#include "liveview_agg.h"

static const struct fg_option liveview_options[] = {
    FG_OPT_STR("endpoint", struct liveview_config, endpoint, "127.0.0.1:8889",
               "host:port of the web page and its JSON API"),
    FG_OPT_DUR("window", struct liveview_config, window_ns, "5m", INT64_C(3000000000),
               INT64_C(86400000000000), "how far back the flame graphs reach"),
    FG_OPT_INTEGER("max_services", struct liveview_config, max_services, "100", 1, 100000,
                   "distinct (service, sample type) pairs kept; samples of more are counted "
                   "and shown as refused"),
    FG_OPT_INTEGER("max_stacks", struct liveview_config, max_stacks, "50000", 16, 10000000,
                   "distinct stacks kept over all services; when full the smallest tenth is "
                   "dropped and the page says so"),
    FG_OPT_INTEGER("queue_size", struct liveview_config, queue_size, "64", 2, 65536,
                   "batches waiting for the aggregator; when full the tap drops (and counts) "
                   "instead of slowing the pipeline"),
    FG_OPT_LIST("pipelines", struct liveview_config, pipelines,
                "pipelines whose data the flame graphs show (default: all). Data that "
                "passes through several pipelines (one receiver in two pipelines, "
                "connectors) is counted once per pipeline it passes"),
    FG_OPT_END,
};

#define LV_PIPELINES 64
#define LV_ROUTES 7
#define LV_ATTACHED 4

struct liveview;

/* One HTTP listener per endpoint, shared by the live views attached to it: a reload's new
 * instance starts while the old one still runs (extensions stop last), so it takes the
 * listener over instead of failing to bind; the newest attached instance answers. */
struct lv_listener {
    char endpoint[256];
    struct fg_http_server *http;
    pthread_rwlock_t lock;                  /* handlers read attached under it */
    struct liveview *attached[LV_ATTACHED]; /* under lock and listeners_mu */
    size_t n_attached;
    struct lv_route {
        struct lv_listener *listener;
        fg_http_handler inner; /* called with the answering struct liveview */
    } routes[LV_ROUTES];
};

static pthread_mutex_t listeners_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lv_listener *listeners[8]; /* under listeners_mu */

struct ring_slot {
    atomic_size_t seq;
    struct fg_profiles *batch;
    char pipeline[128];
};

struct pipeline_stat {
    char name[128];
    uint64_t batches, samples;
};

struct liveview {
    struct fg_component base; /* first */
    struct liveview_config cfg;
    struct fg_lv_agg *agg;
    struct lv_listener *listener; /* attached while started */

    /* multi-producer, single-consumer bounded ring (sequence numbers per slot) */
    struct ring_slot *ring;
    size_t mask;
    atomic_size_t tail;
    atomic_size_t head; /* written by the aggregator thread only; read for the fill */
    atomic_uint_fast64_t dropped_batches, dropped_samples;
    bool tapped;

    pthread_t thread;
    bool thread_running;
    atomic_bool stopping;

    pthread_mutex_t stats_mu;
    struct pipeline_stat pipelines[LV_PIPELINES]; /* under stats_mu */
    size_t n_pipelines;
    int64_t started_ns;
};

/* ---- the tap side: runs on pipeline threads, never blocks ---- */

static void lv_observe(void *ctx, const char *pipeline, struct fg_profiles *batch)
{
    struct liveview *lv = ctx;
    size_t pos = atomic_load_explicit(&lv->tail, memory_order_relaxed);
    struct ring_slot *slot;
    for (;;) {
        slot = &lv->ring[pos & lv->mask];
        size_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&lv->tail, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (dif < 0) {
            atomic_fetch_add_explicit(&lv->dropped_batches, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&lv->dropped_samples, batch->n_samples,
                                      memory_order_relaxed);
            return;
        } else {
            pos = atomic_load_explicit(&lv->tail, memory_order_relaxed);
        }
    }
    slot->batch = fg_profiles_ref(batch);
    size_t n = strnlen(pipeline, sizeof(slot->pipeline) - 1);
    memcpy(slot->pipeline, pipeline, n);
    slot->pipeline[n] = '\0';
    atomic_store_explicit(&slot->seq, pos + 1, memory_order_release);
}

/* ---- the aggregator thread ---- */

static struct ring_slot *ring_peek(struct liveview *lv)
{
    size_t head = atomic_load_explicit(&lv->head, memory_order_relaxed);
    struct ring_slot *slot = &lv->ring[head & lv->mask];
    size_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
    return seq == head + 1 ? slot : NULL;
}

static void ring_release(struct liveview *lv, struct ring_slot *slot)
{
    size_t head = atomic_load_explicit(&lv->head, memory_order_relaxed);
    slot->batch = NULL;
    atomic_store_explicit(&slot->seq, head + lv->mask + 1, memory_order_release);
    atomic_store_explicit(&lv->head, head + 1, memory_order_relaxed);
}

static void count_pipeline(struct liveview *lv, const char *name, const struct fg_profiles *b)
{
    pthread_mutex_lock(&lv->stats_mu);
    size_t i = 0;
    while (i < lv->n_pipelines && strcmp(lv->pipelines[i].name, name) != 0)
        i++;
    if (i == lv->n_pipelines && i < LV_PIPELINES) {
        snprintf(lv->pipelines[i].name, sizeof(lv->pipelines[i].name), "%s", name);
        lv->n_pipelines++;
    }
    if (i < lv->n_pipelines) {
        lv->pipelines[i].batches++;
        lv->pipelines[i].samples += b->n_samples;
    }
    pthread_mutex_unlock(&lv->stats_mu);
}

static bool in_view(const struct liveview *lv, const char *pipeline)
{
    if (lv->cfg.pipelines.n == 0)
        return true;
    for (size_t i = 0; i < lv->cfg.pipelines.n; i++)
        if (strcmp(lv->cfg.pipelines.items[i], pipeline) == 0)
            return true;
    return false;
}

static void *lv_thread(void *arg)
{
    struct liveview *lv = arg;
    pthread_setname_np(pthread_self(), "fg-liveview"); /* its CPU shows in /proc per task */
    int64_t last_tick = 0;
    bool warned = false;
    while (!atomic_load(&lv->stopping)) {
        struct ring_slot *slot;
        int n = 0;
        while ((slot = ring_peek(lv)) != NULL) {
            int rc = in_view(lv, slot->pipeline) ? fg_lv_agg_add(lv->agg, slot->batch, fg_now_ns())
                                                 : 0;
            if (rc && !warned) {
                fg_log(FG_LOG_WARN, lv->base.id, "aggregating a batch failed: %s",
                       fg_strerror(rc));
                warned = true;
            }
            count_pipeline(lv, slot->pipeline, slot->batch);
            fg_profiles_unref(slot->batch);
            ring_release(lv, slot);
            n++;
        }
        int64_t now = fg_now_ns();
        if (now - last_tick > 200000000) {
            fg_lv_agg_tick(lv->agg, now);
            last_tick = now;
        }
        if (n == 0) {
            /* polling keeps the tap free of any wake-up call */
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* ---- HTTP ---- */

bool fg_lv_query_get(const char *query, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            /* lenient: a bad escape stays as typed, a long value is cut */
            fg_percent_decode(p + klen + 1, len - klen - 1, out, size, FG_PERCENT_PLUS_SPACE,
                              NULL);
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

static void set_body(struct fg_http_response *resp, int rc, const char *ctype)
{
    if (rc == FG_ENOTFOUND) {
        fg_buf_free(&resp->body);
        resp->status = 404;
        snprintf(resp->content_type, sizeof(resp->content_type), "text/plain; charset=utf-8");
        fg_buf_append_str(&resp->body, "no such service and sample type in the window\n");
        return;
    }
    if (rc) {
        fg_buf_free(&resp->body);
        resp->status = 500;
        snprintf(resp->content_type, sizeof(resp->content_type), "text/plain; charset=utf-8");
        fg_buf_printf(&resp->body, "%s\n", fg_strerror(rc));
        return;
    }
    resp->status = 200;
    snprintf(resp->content_type, sizeof(resp->content_type), "%s", ctype);
}

static int64_t query_int(const char *query, const char *key, int64_t def)
{
    char v[32];
    if (!fg_lv_query_get(query, key, v, sizeof(v)) || !*v)
        return def;
    char *end;
    long long x = strtoll(v, &end, 10);
    return *end ? def : (int64_t)x;
}

/* service, type and range of a flame graph request; false (and a 400) when missing */
static bool series_args(const struct fg_http_request *req, struct fg_http_response *resp,
                        char *service, char *type, size_t size, struct fg_lv_range *range)
{
    if (!fg_lv_query_get(req->query, "service", service, size) ||
        !fg_lv_query_get(req->query, "type", type, size)) {
        resp->status = 400;
        snprintf(resp->content_type, sizeof(resp->content_type), "text/plain; charset=utf-8");
        fg_buf_append_str(&resp->body, "service and type are required\n");
        return false;
    }
    range->from_s = query_int(req->query, "from", 0);
    range->to_s = query_int(req->query, "to", 0);
    return true;
}

static void h_services(void *ctx, const struct fg_http_request *req, struct fg_http_response *resp)
{
    struct liveview *lv = ctx;
    set_body(resp, fg_lv_agg_services_json(lv->agg, &resp->body), "application/json");
}

static void h_flamegraph(void *ctx, const struct fg_http_request *req,
                         struct fg_http_response *resp)
{
    struct liveview *lv = ctx;
    char service[512], type[512];
    struct fg_lv_range range;
    if (series_args(req, resp, service, type, sizeof(service), &range))
        set_body(resp, fg_lv_agg_tree_json(lv->agg, service, type, range, &resp->body),
                 "application/json");
}

static void h_folded(void *ctx, const struct fg_http_request *req, struct fg_http_response *resp)
{
    struct liveview *lv = ctx;
    char service[512], type[512];
    struct fg_lv_range range;
    if (series_args(req, resp, service, type, sizeof(service), &range))
        set_body(resp, fg_lv_agg_folded(lv->agg, service, type, range, &resp->body),
                 "text/plain; charset=utf-8");
}

struct overview_ctx {
    struct liveview *lv;
    struct fg_buf *out;
    int rc;
};

static int json_list(struct fg_buf *out, const char *key, char **items, size_t n)
{
    int rc = fg_buf_printf(out, ",\"%s\":[", key);
    for (size_t i = 0; i < n && !rc; i++) {
        if (i)
            rc = fg_buf_append(out, ",", 1);
        rc = rc ? rc : fg_lv_json_str(out, items[i], strlen(items[i]));
    }
    return rc ? rc : fg_buf_append(out, "]", 1);
}

/* Runs under the tap's config lock: the pipelines as configured, with the tap's counts. */
static void overview_pipelines(void *arg, const struct fg_config *cfg)
{
    struct overview_ctx *o = arg;
    struct liveview *lv = o->lv;
    int rc = fg_buf_append_str(o->out, "\"pipelines\":[");
    for (size_t p = 0; cfg && p < cfg->n_pipelines && !rc; p++) {
        const struct fg_config_pipeline *pl = &cfg->pipelines[p];
        uint64_t batches = 0, samples = 0;
        pthread_mutex_lock(&lv->stats_mu);
        for (size_t i = 0; i < lv->n_pipelines; i++)
            if (strcmp(lv->pipelines[i].name, pl->name) == 0) {
                batches = lv->pipelines[i].batches;
                samples = lv->pipelines[i].samples;
            }
        pthread_mutex_unlock(&lv->stats_mu);
        rc = fg_buf_append_str(o->out, p ? ",{\"name\":" : "{\"name\":");
        rc = rc ? rc : fg_lv_json_str(o->out, pl->name, strlen(pl->name));
        rc = rc ? rc : json_list(o->out, "receivers", pl->receivers, pl->n_receivers);
        rc = rc ? rc : json_list(o->out, "processors", pl->processors, pl->n_processors);
        rc = rc ? rc : json_list(o->out, "exporters", pl->exporters, pl->n_exporters);
        rc = rc ? rc
                : fg_buf_printf(o->out,
                                ",\"batches\":%" PRIu64 ",\"samples\":%" PRIu64
                                ",\"in_view\":%s}",
                                batches, samples, in_view(lv, pl->name) ? "true" : "false");
    }
    /* exporters: the helper's counters where the exporter has one (otlphttp) */
    rc = rc ? rc : fg_buf_append_str(o->out, "],\"exporters\":[");
    for (size_t i = 0; cfg && i < cfg->n_components[FG_KIND_EXPORTER] && !rc; i++) {
        const char *id = cfg->components[FG_KIND_EXPORTER][i].id;
        struct fg_exporter_stats st;
        uint64_t cap = 0;
        rc = fg_buf_append_str(o->out, i ? ",{\"id\":" : "{\"id\":");
        rc = rc ? rc : fg_lv_json_str(o->out, id, strlen(id));
        if (!rc && fg_exporter_stats_by_id(id, &st, &cap) == 0)
            rc = fg_buf_printf(o->out,
                               ",\"sent_batches\":%" PRIu64 ",\"sent_samples\":%" PRIu64
                               ",\"failed_batches\":%" PRIu64 ",\"failed_samples\":%" PRIu64
                               ",\"refused_batches\":%" PRIu64 ",\"refused_samples\":%" PRIu64
                               ",\"retries\":%" PRIu64 ",\"queue\":%" PRIu64
                               ",\"queue_batches\":%" PRIu64 ",\"queue_capacity\":%" PRIu64,
                               st.sent_batches, st.sent_samples, st.failed_batches,
                               st.failed_samples, st.enqueue_failed_batches,
                               st.enqueue_failed_samples, st.retries, st.queue_units,
                               st.queue_size, cap);
        rc = rc ? rc : fg_buf_append(o->out, "}", 1);
    }
    rc = rc ? rc : fg_buf_append_str(o->out, "],\"extensions\":[");
    for (size_t i = 0; cfg && i < cfg->n_service_extensions && !rc; i++) {
        if (i)
            rc = fg_buf_append(o->out, ",", 1);
        rc = rc ? rc
                : fg_lv_json_str(o->out, cfg->service_extensions[i],
                                 strlen(cfg->service_extensions[i]));
    }
    o->rc = rc ? rc : fg_buf_append(o->out, "]", 1);
}

int fg_lv_overview_json(struct fg_component *c, struct fg_buf *out)
{
    struct liveview *lv = (struct liveview *)c;
    struct overview_ctx o = {lv, out, 0};
    int rc = fg_buf_append(out, "{", 1);
    if (rc)
        return rc;
    fg_tap_with_config(overview_pipelines, &o);
    if (o.rc)
        return o.rc;
    struct fg_lv_agg_stats st;
    fg_lv_agg_stats(lv->agg, &st);
    size_t head = atomic_load(&lv->head), tail = atomic_load(&lv->tail);
    size_t fill = tail >= head ? tail - head : 0;
    return fg_buf_printf(
        out,
        ",\"uptime_s\":%.1f,\"tap\":{\"queue_size\":%zu,\"queue_fill\":%zu,"
        "\"dropped_batches\":%" PRIu64 ",\"dropped_samples\":%" PRIu64 "},"
        "\"aggregate\":{\"batches\":%" PRIu64 ",\"samples\":%" PRIu64 ",\"series\":%" PRIu64
        ",\"stacks\":%" PRIu64 ",\"frames\":%" PRIu64 ",\"evictions\":%" PRIu64
        ",\"evicted_stacks\":%" PRIu64 ",\"refused_series_samples\":%" PRIu64 "}}",
        (double)(fg_now_ns() - lv->started_ns) / 1e9, lv->mask + 1, fill,
        (uint64_t)atomic_load(&lv->dropped_batches), (uint64_t)atomic_load(&lv->dropped_samples),
        st.batches, st.samples, st.series, st.stacks, st.frames, st.evictions,
        st.evicted_stacks, st.refused_series_samples);
}

static void h_overview(void *ctx, const struct fg_http_request *req, struct fg_http_response *resp)
{
    set_body(resp, fg_lv_overview_json(ctx, &resp->body), "application/json");
}

static void h_page(void *ctx, const struct fg_http_request *req, struct fg_http_response *resp)
{
    struct liveview *lv = ctx;
    int rc;
    if (strcmp(req->path, "/flamegraph") == 0)
        rc = fg_lv_page_flamegraph(&lv->base, req->query, &resp->body);
    else if (strcmp(req->path, "/diff") == 0)
        rc = fg_lv_page_diff(&lv->base, req->query, &resp->body);
    else
        rc = fg_lv_page_overview(&lv->base, &resp->body);
    set_body(resp, rc, "text/html; charset=utf-8");
}

/* ---- lifecycle ---- */

static void h_dispatch(void *ctx, const struct fg_http_request *req,
                       struct fg_http_response *resp)
{
    struct lv_route *r = ctx;
    struct lv_listener *l = r->listener;
    pthread_rwlock_rdlock(&l->lock);
    if (l->n_attached) {
        r->inner(l->attached[l->n_attached - 1], req, resp);
    } else {
        resp->status = 503;
        snprintf(resp->content_type, sizeof(resp->content_type), "text/plain; charset=utf-8");
        fg_buf_append_str(&resp->body, "live view stopping\n");
    }
    pthread_rwlock_unlock(&l->lock);
}

static void listener_free(struct lv_listener *l)
{
    fg_http_server_free(l->http);
    pthread_rwlock_destroy(&l->lock);
    fg_free(l);
}

/* Attaches lv to the listener of its endpoint, opening it when there is none. An endpoint
 * with port 0 is never shared (each asks for a port of its own). */
static int listener_attach(struct liveview *lv, struct fg_err *err)
{
    static const struct {
        const char *path;
        fg_http_handler h;
    } routes[LV_ROUTES] = {
        {"/", h_page},
        {"/flamegraph", h_page},
        {"/diff", h_page},
        {"/api/overview", h_overview},
        {"/api/services", h_services},
        {"/api/flamegraph", h_flamegraph},
        {"/api/flamegraph.folded", h_folded},
    };
    const char *ep = lv->cfg.endpoint;
    size_t len = strlen(ep);
    bool shareable = !(len >= 2 && strcmp(ep + len - 2, ":0") == 0);
    int rc = 0;
    struct lv_listener *l = NULL;
    pthread_mutex_lock(&listeners_mu);
    size_t slot = FG_ARRAY_LEN(listeners);
    for (size_t i = 0; i < FG_ARRAY_LEN(listeners); i++) {
        if (listeners[i] && shareable && strcmp(listeners[i]->endpoint, ep) == 0)
            l = listeners[i];
        else if (!listeners[i] && slot == FG_ARRAY_LEN(listeners))
            slot = i;
    }
    if (l) {
        if (l->n_attached == LV_ATTACHED) {
            rc = fg_err_set(err, FG_EFULL, "%s is used by too many live views", ep);
            goto out;
        }
        pthread_rwlock_wrlock(&l->lock);
        l->attached[l->n_attached++] = lv;
        pthread_rwlock_unlock(&l->lock);
        lv->listener = l;
        fg_log(FG_LOG_INFO, lv->base.id, "took over the live view on %s (port %u)", ep,
               (unsigned)fg_http_server_port(l->http));
        goto out;
    }
    if (slot == FG_ARRAY_LEN(listeners)) {
        rc = fg_err_set(err, FG_EFULL, "too many live view listeners");
        goto out;
    }
    if (!(l = fg_calloc(1, sizeof(*l)))) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto out;
    }
    if (pthread_rwlock_init(&l->lock, NULL) != 0) {
        fg_free(l);
        l = NULL;
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(l->endpoint, sizeof(l->endpoint), "%s", ep);
    if ((rc = fg_http_server_new(ep, &l->http, err)) != 0)
        goto fail;
    for (size_t i = 0; i < LV_ROUTES; i++) {
        l->routes[i] = (struct lv_route){l, routes[i].h};
        struct fg_http_route r = {routes[i].path, "GET", h_dispatch, &l->routes[i], 0};
        if ((rc = fg_http_server_route(l->http, &r)) != 0) {
            fg_err_set(err, rc, "cannot add route %s", routes[i].path);
            goto fail;
        }
    }
    if ((rc = fg_http_server_start(l->http, err)) != 0)
        goto fail;
    l->attached[l->n_attached++] = lv;
    listeners[slot] = l;
    lv->listener = l;
    const char *colon = strrchr(ep, ':');
    fg_log(FG_LOG_INFO, lv->base.id, "listening on %.*s:%u (live view)",
           colon ? (int)(colon - ep) : 0, ep, (unsigned)fg_http_server_port(l->http));
    goto out;
fail:
    listener_free(l);
out:
    pthread_mutex_unlock(&listeners_mu);
    return rc;
}

/* The last instance to leave closes the listener (waiting for requests in flight). */
static void listener_detach(struct liveview *lv)
{
    struct lv_listener *l = lv->listener;
    if (!l)
        return;
    pthread_mutex_lock(&listeners_mu);
    pthread_rwlock_wrlock(&l->lock);
    for (size_t i = 0; i < l->n_attached; i++)
        if (l->attached[i] == lv) {
            memmove(&l->attached[i], &l->attached[i + 1],
                    (l->n_attached - i - 1) * sizeof(l->attached[0]));
            l->n_attached--;
            break;
        }
    size_t left = l->n_attached;
    pthread_rwlock_unlock(&l->lock);
    if (left == 0) {
        for (size_t i = 0; i < FG_ARRAY_LEN(listeners); i++)
            if (listeners[i] == l)
                listeners[i] = NULL;
        fg_http_server_stop(l->http);
        listener_free(l);
    }
    pthread_mutex_unlock(&listeners_mu);
    lv->listener = NULL;
}

static int liveview_start(struct fg_component *c, struct fg_err *err)
{
    struct liveview *lv = (struct liveview *)c;
    int rc;
    lv->started_ns = fg_now_ns();
    atomic_store(&lv->stopping, false);
    if (pthread_create(&lv->thread, NULL, lv_thread, lv) != 0) {
        rc = fg_err_set(err, FG_ENOMEM, "cannot start the aggregator thread");
        goto fail;
    }
    lv->thread_running = true;
    if ((rc = fg_tap_add(lv_observe, lv)) != 0) {
        fg_err_set(err, rc, "too many live views (at most %d)", FG_TAP_MAX);
        goto fail;
    }
    lv->tapped = true;
    if ((rc = listener_attach(lv, err)) != 0)
        goto fail;
    return 0;
fail:
    fg_err_prefix(err, "%s", c->id);
    return rc;
}

static int liveview_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    struct liveview *lv = (struct liveview *)c;
    listener_detach(lv); /* no page is being rendered from this instance after this */
    if (lv->tapped) {
        fg_tap_remove(lv_observe, lv); /* no batch comes in after this */
        lv->tapped = false;
    }
    if (lv->thread_running) {
        atomic_store(&lv->stopping, true);
        pthread_join(lv->thread, NULL);
        lv->thread_running = false;
    }
    struct ring_slot *slot;
    while (lv->ring && (slot = ring_peek(lv)) != NULL) {
        fg_profiles_unref(slot->batch);
        ring_release(lv, slot);
    }
    return 0;
}

static void liveview_destroy(struct fg_component *c)
{
    struct liveview *lv = (struct liveview *)c;
    liveview_shutdown(c, 0);
    fg_lv_agg_free(lv->agg);
    fg_free(lv->ring);
    pthread_mutex_destroy(&lv->stats_mu);
    fg_free(lv);
}

static const struct fg_component_ops liveview_ops = {
    .start = liveview_start,
    .shutdown = liveview_shutdown,
    .destroy = liveview_destroy,
};

static int liveview_create(const struct fg_create_args *args, struct fg_component **out,
                           struct fg_err *err)
{
    const struct liveview_config *cfg = args->config;
    *out = NULL;
    if (!cfg->endpoint || !*cfg->endpoint)
        return fg_err_set(err, FG_EINVAL, "endpoint: required");
    struct liveview *lv = fg_calloc(1, sizeof(*lv));
    if (!lv)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    if (pthread_mutex_init(&lv->stats_mu, NULL) != 0) {
        fg_free(lv);
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    }
    lv->base.ops = &liveview_ops;
    lv->base.factory = &fg_liveview_factory;
    snprintf(lv->base.id, sizeof(lv->base.id), "%s", args->id ? args->id : "liveview");
    lv->cfg = *cfg;
    size_t cap = 2;
    while (cap < (size_t)cfg->queue_size)
        cap *= 2;
    lv->mask = cap - 1;
    lv->ring = fg_calloc(cap, sizeof(*lv->ring));
    struct fg_lv_agg_options o = {cfg->window_ns, (size_t)cfg->max_services,
                                  (size_t)cfg->max_stacks};
    int rc = lv->ring ? fg_lv_agg_new(&o, &lv->agg) : FG_ENOMEM;
    if (rc) {
        liveview_destroy(&lv->base);
        return fg_err_set(err, rc, "out of memory");
    }
    for (size_t i = 0; i < cap; i++)
        atomic_init(&lv->ring[i].seq, i);
    *out = &lv->base;
    return 0;
}

struct fg_lv_agg *fg_lv_aggregate(struct fg_component *c)
{
    return ((struct liveview *)c)->agg;
}

uint16_t fg_lv_port(const struct fg_component *c)
{
    const struct liveview *lv = (const struct liveview *)c;
    return lv->listener ? fg_http_server_port(lv->listener->http) : 0;
}

const struct liveview_config *fg_lv_config(const struct fg_component *c)
{
    return &((const struct liveview *)c)->cfg;
}

const struct fg_factory fg_liveview_factory = {
    .type = "liveview",
    .kind = FG_KIND_EXTENSION,
    .config_size = sizeof(struct liveview_config),
    .options = liveview_options,
    .create = liveview_create,
};
