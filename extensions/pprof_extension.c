/* Extension "pprof": serves a CPU profile of the gateway itself on GET /debug/pprof/profile
 * (?seconds=N, 1..300, default 30) as a gzip pprof, from a small SIGPROF sampler of its own
 * (the agent's is not linked in: its malloc interposer would break sanitizer builds), and
 * GET /debug/pprof/heap from libflamegate-agent when that is preloaded (found at run time,
 * so a gateway without it keeps glibc's malloc untouched). */
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_component.h"
#include "fg_http.h"
#include "fg_log.h"
#include "fg_model.h"
#include "fg_pprof.h"

#define PP_HZ 99
#define PP_MAX_SECONDS 300
#define PP_DEPTH 48
#define PP_SLOTS 16384 /* ~2 cores at 99 Hz for 80 s; later samples are dropped */

struct pprof_config {
    char *endpoint;
};

static const struct fg_option pprof_options[] = {
    FG_OPT_STR("endpoint", struct pprof_config, endpoint, "127.0.0.1:1777",
               "HOST:PORT to serve /debug/pprof/profile and /debug/pprof/heap on (port 0 "
               "picks a free port and logs it)"),
    FG_OPT_END,
};

struct pprof_ext {
    struct fg_component base; /* first */
    struct pprof_config cfg;  /* strings borrowed from the config */
    struct fg_http_server *srv;
};

/* The ring the signal handler writes; allocated by the request thread before the timer is
 * armed, because the handler may not allocate. One profile at a time (busy). */
struct pp_slot {
    _Atomic int depth; /* set after the frames, 0 = not written */
    void *pc[PP_DEPTH];
};

static atomic_bool busy;
static struct pp_slot *_Atomic ring;
static atomic_uint ring_next;
static atomic_int in_handler;

static void pp_on_sigprof(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
    int saved = errno;
    atomic_fetch_add(&in_handler, 1);
    struct pp_slot *r = atomic_load(&ring);
    if (r) {
        unsigned i = atomic_fetch_add(&ring_next, 1);
        if (i < PP_SLOTS) {
            /* backtrace is safe here once warmed up (its first call loads libgcc_s) */
            int n = backtrace(r[i].pc, PP_DEPTH);
            atomic_store(&r[i].depth, n > 0 ? n : 0);
        }
    }
    atomic_fetch_sub(&in_handler, 1);
    errno = saved;
}

/* Parses seconds=N out of the query; 30 when absent. -1 when malformed or out of range. */
static int pp_seconds(const char *query)
{
    const char *p = query;
    while (p && *p) {
        size_t len = strcspn(p, "&");
        if (len > 8 && strncmp(p, "seconds=", 8) == 0) {
            long v = 0;
            for (size_t i = 8; i < len; i++) {
                if (p[i] < '0' || p[i] > '9' || v > PP_MAX_SECONDS)
                    return -1;
                v = v * 10 + (p[i] - '0');
            }
            return v >= 1 && v <= PP_MAX_SECONDS ? (int)v : -1;
        }
        if (len == 8 && strncmp(p, "seconds=", 8) == 0)
            return -1;
        p += len;
        if (*p == '&')
            p++;
    }
    return 30;
}

static int pp_emit(void *ctx, const struct fg_pprof_group *group, const uint8_t *data,
                   size_t len, struct fg_err *err)
{
    (void)group;
    struct fg_http_response *resp = ctx;
    if (resp->body.len > 0)
        return 0; /* both columns line up into one pprof; keep the first if not */
    if (fg_buf_append(&resp->body, data, len) != 0)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    return 0;
}

/* The location of one return address: its function name from dladdr, or the hex address. */
static int32_t pp_location(struct fg_profiles *p, void *pc)
{
    Dl_info info;
    char hex[32];
    const char *name = NULL;
    if (dladdr(pc, &info) && info.dli_sname)
        name = info.dli_sname;
    if (!name) {
        snprintf(hex, sizeof(hex), "0x%llx", (unsigned long long)(uintptr_t)pc);
        name = hex;
    }
    int32_t s = fg_dict_string(p, name, strlen(name));
    if (s < 0)
        return s;
    struct fg_function f = {.name = (uint32_t)s, .system_name = (uint32_t)s};
    int32_t fi = fg_dict_function(p, &f);
    if (fi < 0)
        return fi;
    struct fg_line line = {.function = (uint32_t)fi};
    struct fg_location loc = {.address = (uint64_t)(uintptr_t)pc, .n_lines = 1, .lines = &line};
    return fg_dict_location(p, &loc);
}

static int pp_build(struct pp_slot *r, unsigned n, uint64_t start_ns, uint64_t dur_ns,
                    struct fg_http_response *resp, struct fg_err *err)
{
    struct fg_profiles *p = NULL;
    int64_t *counts = NULL;
    int rc = fg_profiles_new(&p);
    if (rc)
        goto nomem;
    if (!(counts = fg_calloc((size_t)n + 2, sizeof(*counts))))
        goto nomem;
    for (unsigned i = 0; i < n; i++) {
        int depth = atomic_load(&r[i].depth);
        uint32_t locs[PP_DEPTH];
        uint32_t nl = 0;
        /* frame 0 is this handler, frame 1 the signal trampoline */
        for (int d = 2; d < depth; d++) {
            int32_t l = pp_location(p, r[i].pc[d]);
            if (l < 0)
                goto nomem;
            locs[nl++] = (uint32_t)l;
        }
        if (nl == 0)
            continue;
        struct fg_stack st = {.n_locations = nl, .locations = locs};
        int32_t si = fg_dict_stack(p, &st);
        if (si < 0)
            goto nomem;
        if ((uint32_t)si < n + 2)
            counts[si]++;
    }
    struct fg_keyvalue svc = {
        .key = {"service.name", 12},
        .value = {.kind = FG_VALUE_STRING, .u.s = {"flamegate", 9}}};
    struct fg_resource res = {.n_attrs = 1, .attrs = &svc};
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "", 0);
    struct fg_scope scope = {.name = {"flamegate.pprof", 15}};
    struct fg_scope_profiles *sp = rp ? fg_profiles_add_scope(p, rp, &scope, "", 0) : NULL;
    int32_t s_samples = fg_dict_string(p, "samples", 7), s_count = fg_dict_string(p, "count", 5);
    int32_t s_cpu = fg_dict_string(p, "cpu", 3), s_ns = fg_dict_string(p, "nanoseconds", 11);
    if (!sp || s_samples < 0 || s_count < 0 || s_cpu < 0 || s_ns < 0)
        goto nomem;
    int64_t period = 1000000000 / PP_HZ;
    for (int col = 0; col < 2; col++) {
        struct fg_profile proto = {
            .sample_type = {(uint32_t)(col ? s_cpu : s_samples), (uint32_t)(col ? s_ns : s_count)},
            .period_type = {(uint32_t)s_cpu, (uint32_t)s_ns},
            .time_unix_nano = start_ns,
            .duration_nano = dur_ns,
            .period = period,
        };
        struct fg_profile *prof = fg_profiles_add_profile(p, sp, &proto);
        if (!prof)
            goto nomem;
        uint32_t nst = fg_dict_len(p, FG_TABLE_STACK);
        for (uint32_t si = 1; si < nst && si < n + 2; si++) {
            if (!counts[si])
                continue;
            int64_t v = col ? counts[si] * period : counts[si];
            struct fg_sample s = {.stack = si, .n_values = 1, .values = &v};
            if (fg_profiles_add_sample(p, prof, &s) != 0)
                goto nomem;
        }
    }
    rc = fg_pprof_encode(p, true, pp_emit, resp, err);
    fg_free(counts);
    fg_profiles_unref(p);
    return rc;
nomem:
    fg_free(counts);
    fg_profiles_unref(p);
    return fg_err_set(err, FG_ENOMEM, "out of memory");
}

static uint64_t pp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pp_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void pp_text(struct fg_http_response *resp, int status, const char *msg)
{
    resp->status = status;
    snprintf(resp->content_type, sizeof(resp->content_type), "text/plain; charset=utf-8");
    fg_buf_printf(&resp->body, "%s\n", msg);
}

/* fg_agent_heap_pprof of a preloaded libflamegate-agent (see agent/fg_agent.h). */
typedef int (*pp_agent_heap_fn)(int (*write)(void *ctx, const void *data, size_t len),
                                void *ctx);

static int pp_append(void *ctx, const void *data, size_t len)
{
    return fg_buf_append(ctx, data, len);
}

#define PP_HEAP_HOWTO                                                                        \
    "heap profiling of the gateway needs the preloaded agent: start it as "                  \
    "LD_PRELOAD=/path/to/libflamegate-agent.so FLAMEGATE_PROFILES=heap flamegate --config "  \
    "... (FLAMEGATE_HEAP_SAMPLE_BYTES sets the mean bytes between samples, default 524288)"

static void pp_handle_heap(void *ctx, const struct fg_http_request *req,
                           struct fg_http_response *resp)
{
    struct pprof_ext *x = ctx;
    (void)req;
#ifdef __SANITIZE_ADDRESS__
    (void)x;
    (void)pp_append;
    pp_text(resp, 501, "heap profiling of the gateway needs the preloaded agent, and this "
                       "build uses AddressSanitizer, which owns malloc: use a build without "
                       "FG_SANITIZE");
#else
    pp_agent_heap_fn heap_pprof = (pp_agent_heap_fn)dlsym(RTLD_DEFAULT, "fg_agent_heap_pprof");
    if (!heap_pprof) {
        pp_text(resp, 501, PP_HEAP_HOWTO);
        return;
    }
    int rc = heap_pprof(pp_append, &resp->body);
    if (rc == 0) {
        resp->status = 200;
        snprintf(resp->content_type, sizeof(resp->content_type), "application/octet-stream");
        return;
    }
    fg_buf_free(&resp->body);
    fg_buf_init(&resp->body, 0);
    if (rc == FG_ESTOPPED) {
        pp_text(resp, 501, "the preloaded agent's heap profiler is off: " PP_HEAP_HOWTO);
        return;
    }
    fg_log(FG_LOG_WARN, x->base.id, "heap profile: %s", fg_strerror(rc));
    pp_text(resp, 500, fg_strerror(rc));
#endif
}

static void pp_handle_profile(void *ctx, const struct fg_http_request *req,
                              struct fg_http_response *resp)
{
    struct pprof_ext *x = ctx;
    int seconds = pp_seconds(req->query);
    if (seconds < 0) {
        pp_text(resp, 400, "seconds: expected an integer from 1 to 300");
        return;
    }
    bool expected = false;
    if (!atomic_compare_exchange_strong(&busy, &expected, true)) {
        pp_text(resp, 409, "a profile is already being taken; try again when it is done");
        return;
    }
    struct pp_slot *r = fg_calloc(PP_SLOTS, sizeof(*r));
    if (!r) {
        atomic_store(&busy, false);
        pp_text(resp, 503, "out of memory");
        return;
    }
    void *warm[4];
    backtrace(warm, 4); /* loads libgcc_s now, outside the signal handler */
    atomic_store(&ring_next, 0);
    atomic_store(&ring, r);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = pp_on_sigprof;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPROF, &sa, &old);
    struct itimerval it = {{0, 1000000 / PP_HZ}, {0, 1000000 / PP_HZ}};
    struct itimerval off = {{0, 0}, {0, 0}};
    uint64_t start = pp_now_ns();
    setitimer(ITIMER_PROF, &it, NULL);
    pp_sleep_ms((long)seconds * 1000);
    setitimer(ITIMER_PROF, &off, NULL);
    uint64_t dur = pp_now_ns() - start;
    atomic_store(&ring, NULL);
    /* a SIGPROF already generated may still be on its way: let it land on our handler
     * before the previous disposition (often "terminate") comes back */
    pp_sleep_ms(50);
    while (atomic_load(&in_handler) > 0)
        pp_sleep_ms(1);
    sigaction(SIGPROF, &old, NULL);
    unsigned n = atomic_load(&ring_next);
    if (n > PP_SLOTS)
        n = PP_SLOTS;
    struct fg_err err = {0};
    int rc = pp_build(r, n, start, dur, resp, &err);
    fg_free(r);
    atomic_store(&busy, false);
    if (rc) {
        fg_buf_free(&resp->body);
        fg_buf_init(&resp->body, 0);
        fg_log(FG_LOG_WARN, x->base.id, "profile: %s", err.msg);
        pp_text(resp, 500, err.msg);
        return;
    }
    resp->status = 200;
    snprintf(resp->content_type, sizeof(resp->content_type), "application/octet-stream");
}

static int pprof_start(struct fg_component *c, struct fg_err *err)
{
    struct pprof_ext *x = (struct pprof_ext *)c;
    struct fg_http_route profile = {.path = "/debug/pprof/profile",
                                    .method = "GET",
                                    .handler = pp_handle_profile,
                                    .ctx = x};
    struct fg_http_route heap = {
        .path = "/debug/pprof/heap", .method = "GET", .handler = pp_handle_heap, .ctx = x};
    int rc;
    if ((rc = fg_http_server_new(x->cfg.endpoint, &x->srv, err)) != 0 ||
        (rc = fg_http_server_route(x->srv, &profile)) != 0 ||
        (rc = fg_http_server_route(x->srv, &heap)) != 0 ||
        (rc = fg_http_server_start(x->srv, err)) != 0) {
        if (rc == FG_ENOMEM)
            fg_err_set(err, rc, "out of memory");
        fg_http_server_free(x->srv);
        x->srv = NULL;
        fg_err_prefix(err, "%s", x->cfg.endpoint);
        return rc;
    }
    const char *colon = strrchr(x->cfg.endpoint, ':');
    fg_log(FG_LOG_INFO, c->id, "listening on %.*s:%u (pprof)",
           colon ? (int)(colon - x->cfg.endpoint) : 0, x->cfg.endpoint,
           (unsigned)fg_http_server_port(x->srv));
    return 0;
}

static int pprof_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    (void)deadline_ns;
    struct pprof_ext *x = (struct pprof_ext *)c;
    if (x->srv) {
        fg_http_server_stop(x->srv);
        fg_http_server_free(x->srv);
        x->srv = NULL;
    }
    return 0;
}

static void pprof_destroy(struct fg_component *c)
{
    if (c)
        pprof_shutdown(c, 0);
    fg_free(c);
}

static const struct fg_component_ops pprof_ops = {
    .start = pprof_start,
    .shutdown = pprof_shutdown,
    .destroy = pprof_destroy,
};

static int pprof_validate(const void *config, struct fg_err *err)
{
    const struct pprof_config *cfg = config;
    if (!cfg->endpoint || !strchr(cfg->endpoint, ':'))
        return fg_err_set(err, FG_EINVAL, "endpoint: expected HOST:PORT");
    return 0;
}

static int pprof_create(const struct fg_create_args *args, struct fg_component **out,
                        struct fg_err *err)
{
    struct pprof_ext *x = fg_calloc(1, sizeof(*x));
    *out = NULL;
    if (!x)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    x->base.ops = &pprof_ops;
    snprintf(x->base.id, sizeof(x->base.id), "%s", args->id ? args->id : "pprof");
    x->cfg = *(const struct pprof_config *)args->config;
    *out = &x->base;
    return 0;
}

const struct fg_factory fg_pprof_extension_factory = {
    .type = "pprof",
    .kind = FG_KIND_EXTENSION,
    .config_size = sizeof(struct pprof_config),
    .options = pprof_options,
    .validate = pprof_validate,
    .create = pprof_create,
};
