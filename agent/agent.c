/* The agent's lifecycle: start/stop/flush, thread labels, the collector thread (drains CPU
 * samples, aggregates and symbolizes them, builds one OTLP batch per upload interval) and
 * the sender thread (bounded queue, retry with backoff, never blocks the program). */
#include "fg_agent.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent_config.h"
#include "agent_internal.h"
#include "fg_alloc.h"
#include "fg_arena.h"
#include "fg_buf.h"
#include "fg_gzip.h"
#include "fg_hash.h"
#include "fg_model.h"
#include "fg_otlp.h"
#ifdef FG_AGENT_HAVE_PPROF
#include "fg_pprof.h"
#endif

#define EXPORT __attribute__((visibility("default")))
#define COLLECT_TICK_MS 100
#define QUEUE_MAX_ITEMS 8
#define QUEUE_MAX_BYTES (32u << 20)
#define SEND_TIMEOUT_MS 5000
#define EXIT_BUDGET_MS 2000
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define MAX_CPU_STACKS 65536u
#define MAX_LABEL_SETS 1024u
#define MAX_LABELS 16u

FG__TLS volatile uint32_t fg__tls_labels;

/* ---- labels: immutable sets, interned; a thread points at one by index ---- */

struct label_set {
    uint32_t n;
    char *kv[2 * MAX_LABELS]; /* key, value pairs sorted by key */
};

static pthread_mutex_t label_mu = PTHREAD_MUTEX_INITIALIZER;
static struct label_set *label_sets[MAX_LABEL_SETS]; /* [0] = the empty set */
static uint32_t n_label_sets = 1;

/* ---- uploads waiting for the sender ---- */

struct payload {
    struct payload *next;
    uint8_t *data;
    size_t len;
    char suffix[32]; /* file outputs: "pb" or "cpu.pb.gz" ... */
};

/* ---- CPU aggregation of one upload window ---- */

struct cpu_entry {
    uint64_t hash;
    uint32_t tid, labels, n;
    uint64_t weight;
    const char *thread_name;
    uintptr_t *pcs;
    struct fg__frame *frames;
};

struct thread_name {
    uint32_t tid;
    const char *name;
};

struct window {
    struct fg_arena *arena;
    struct cpu_entry **slots;
    uint32_t n_slots, n_entries;
    struct cpu_entry **entries;
    struct thread_name *names;
    uint32_t n_names, cap_names;
    uint64_t start_ns;
    uint64_t dropped; /* entries refused: table full or no memory */
};

static struct agent {
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* collector: flush or stop requested */
    pthread_cond_t flushed;  /* flush callers */
    pthread_cond_t send_cv;  /* sender: work or stop */
    bool running, stopping, sender_stop;
    pid_t pid;
    struct fg__agent_settings cfg;
    pthread_t collector, sender;
    uint64_t flush_req, flush_done;
    struct payload *q_head, *q_tail;
    size_t q_items, q_bytes;
    uint64_t dropped_uploads;
    uint64_t upload_seq;
    long long exit_deadline_ms;
    struct fg__symbolizer *sym;
    struct window win;
    int wake_pipe[2];
    struct fg__http_cancel cancel;
    char exe_name[256], exe_path[1024];
} A = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .flushed = PTHREAD_COND_INITIALIZER,
    .send_cv = PTHREAD_COND_INITIALIZER,
    .wake_pipe = {-1, -1},
    .cancel = {.wake_fd = -1},
};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
/* Serializes fg_agent_heap_pprof with the heap profiler's stop. */
static pthread_mutex_t heap_api_mu = PTHREAD_MUTEX_INITIALIZER;

static void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void agent_log(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(line, sizeof(line), "flamegate-agent[%d]: ", (int)getpid());
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strnlen(line, sizeof(line) - 2);
    line[len++] = '\n';
    /* one write: lines of concurrent writers do not interleave */
    ssize_t w = write(2, line, len);
    (void)w;
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline_ts(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Agent threads take no signals but SIGPROF (their CPU time is the agent's overhead and
 * shows up as such) and the synchronous ones. */
static void agent_thread_signals(void)
{
    sigset_t set;
    sigfillset(&set);
    sigdelset(&set, SIGPROF);
    sigdelset(&set, SIGSEGV);
    sigdelset(&set, SIGBUS);
    sigdelset(&set, SIGFPE);
    sigdelset(&set, SIGILL);
    pthread_sigmask(SIG_SETMASK, &set, NULL);
}

/* ---- window ---- */

static int window_reset(struct window *w)
{
    fg_arena_free(w->arena);
    fg_free(w->slots);
    fg_free(w->entries);
    fg_free(w->names);
    memset(w, 0, sizeof(*w));
    w->start_ns = realtime_ns();
    if (fg_arena_new(&w->arena))
        return FG_ENOMEM;
    w->n_slots = 1024;
    w->slots = fg_calloc(w->n_slots, sizeof(*w->slots));
    w->entries = fg_calloc(w->n_slots / 2, sizeof(*w->entries));
    return w->slots && w->entries ? 0 : FG_ENOMEM;
}

static void window_free(struct window *w)
{
    fg_arena_free(w->arena);
    fg_free(w->slots);
    fg_free(w->entries);
    fg_free(w->names);
    memset(w, 0, sizeof(*w));
}

static const char *thread_name_of(struct window *w, uint32_t tid)
{
    for (uint32_t i = 0; i < w->n_names; i++)
        if (w->names[i].tid == tid)
            return w->names[i].name;
    char path[64], buf[64] = "";
    snprintf(path, sizeof(path), "/proc/self/task/%u/comm", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        close(fd);
        buf[strcspn(buf, "\n")] = '\0';
    }
    const char *name = fg_arena_strndup(w->arena, buf, strlen(buf));
    if (!name)
        return "";
    if (w->n_names == w->cap_names) {
        uint32_t nc = w->cap_names ? w->cap_names * 2 : 16;
        struct thread_name *nn = fg_realloc(w->names, nc * sizeof(*nn));
        if (!nn)
            return name;
        w->names = nn;
        w->cap_names = nc;
    }
    w->names[w->n_names++] = (struct thread_name){tid, name};
    return name;
}

static int window_grow(struct window *w)
{
    uint32_t ns = w->n_slots * 2;
    struct cpu_entry **slots = fg_calloc(ns, sizeof(*slots));
    struct cpu_entry **entries = fg_realloc(w->entries, (ns / 2) * sizeof(*entries));
    if (!slots || !entries) {
        fg_free(slots);
        if (entries)
            w->entries = entries;
        return FG_ENOMEM;
    }
    w->entries = entries;
    for (uint32_t i = 0; i < w->n_entries; i++) {
        uint32_t h = (uint32_t)w->entries[i]->hash & (ns - 1);
        while (slots[h])
            h = (h + 1) & (ns - 1);
        slots[h] = w->entries[i];
    }
    fg_free(w->slots);
    w->slots = slots;
    w->n_slots = ns;
    return 0;
}

static void window_add(void *ctx, const struct fg__stack_rec *r)
{
    struct window *w = ctx;
    uint32_t n = FG_MIN(r->n, FG__MAX_FRAMES);
    /* Room for one more entry first (the index stays at most half full), so that a failed
     * grow only ever costs this sample. */
    if (!w->slots || (w->n_entries + 1) * 2 > w->n_slots) {
        if (!w->slots || window_grow(w) != 0) {
            w->dropped += r->weight;
            return;
        }
    }
    uint64_t h = fg_hash_bytes(fg_hash_mix(r->tid, r->labels), r->pcs, n * sizeof(uintptr_t));
    uint32_t i = (uint32_t)h & (w->n_slots - 1);
    for (struct cpu_entry *e; (e = w->slots[i]); i = (i + 1) & (w->n_slots - 1)) {
        if (e->hash == h && e->tid == r->tid && e->labels == r->labels && e->n == n &&
            memcmp(e->pcs, r->pcs, n * sizeof(uintptr_t)) == 0) {
            e->weight += r->weight;
            return;
        }
    }
    if (w->n_entries >= MAX_CPU_STACKS) {
        w->dropped += r->weight;
        return;
    }
    struct cpu_entry *e = fg_arena_alloc(w->arena, sizeof(*e));
    uintptr_t *pcs = fg_arena_memdup(w->arena, r->pcs, n * sizeof(uintptr_t));
    struct fg__frame *frames = fg_arena_alloc(w->arena, (n ? n : 1) * sizeof(*frames));
    if (!e || !pcs || !frames) {
        w->dropped += r->weight;
        return;
    }
    /* Symbolized now, not at upload time: the library may be dlclose'd by then. */
    for (uint32_t k = 0; k < n; k++)
        fg__sym_lookup(A.sym, pcs[k], k == 0, &frames[k]);
    *e = (struct cpu_entry){h, r->tid, r->labels, n, r->weight, thread_name_of(w, r->tid),
                            pcs, frames};
    w->slots[i] = e;
    w->entries[w->n_entries++] = e;
}

/* ---- building a batch ---- */

struct builder {
    struct fg_profiles *p;
    const struct fg__module *mods[64];
    int32_t mod_idx[64];
    uint32_t n_mods;
};

static int32_t str_idx(struct fg_profiles *p, const char *s)
{
    return fg_dict_string(p, s, strlen(s));
}

static int32_t attr_of(struct fg_profiles *p, const char *key, struct fg_value v)
{
    int32_t k = str_idx(p, key);
    if (k < 0)
        return k;
    struct fg_attribute a = {0};
    a.key = (uint32_t)k;
    a.value = v;
    return fg_dict_attribute(p, &a);
}

static int32_t attr_int(struct fg_profiles *p, const char *key, int64_t v)
{
    return attr_of(p, key, (struct fg_value){.kind = FG_VALUE_INT, .u.i = v});
}

static int32_t attr_str(struct fg_profiles *p, const char *key, const char *v)
{
    return attr_of(p, key, (struct fg_value){
                               .kind = FG_VALUE_STRING,
                               .u.s = (struct fg_bytes){v, (uint32_t)strlen(v)}});
}

static int32_t mapping_of(struct builder *b, const struct fg__module *m)
{
    for (uint32_t i = 0; i < b->n_mods; i++)
        if (b->mods[i] == m)
            return b->mod_idx[i];
    int32_t fn = str_idx(b->p, m->path);
    if (fn < 0)
        return fn;
    uint32_t attrs[2];
    uint32_t n_attrs = 0;
    /* The names are the agent's (from the module's own symbol tables): without this flag
     * `go tool pprof` re-symbolizes from the local binary and, for PIE executables with a
     * separate code segment, names the wrong functions. */
    int32_t ai = attr_of(b->p, "pprof.mapping.has_functions",
                         (struct fg_value){.kind = FG_VALUE_BOOL, .u.b = true});
    if (ai < 0)
        return ai;
    attrs[n_attrs++] = (uint32_t)ai;
    if (m->build_id[0]) {
        if ((ai = attr_str(b->p, "process.executable.build_id.gnu", m->build_id)) < 0)
            return ai;
        attrs[n_attrs++] = (uint32_t)ai;
    }
    struct fg_mapping mp = {m->start, m->limit, m->offset, (uint32_t)fn, n_attrs, attrs};
    int32_t idx = fg_dict_mapping(b->p, &mp);
    if (idx >= 0 && b->n_mods < FG_ARRAY_LEN(b->mods)) {
        b->mods[b->n_mods] = m;
        b->mod_idx[b->n_mods++] = idx;
    }
    return idx;
}

static int32_t stack_of(struct builder *b, const uintptr_t *pcs, const struct fg__frame *frames,
                        uint32_t n)
{
    uint32_t locs[FG__MAX_FRAMES];
    /* A caller frame outside every module is what a walk through code without frame
     * pointers reads (data taken for a return address): the stack ends before it. */
    for (uint32_t k = 1; k < n; k++)
        if (!frames[k].module) {
            n = k;
            break;
        }
    for (uint32_t k = 0; k < n; k++) {
        struct fg_location loc = {0};
        struct fg_line line = {0};
        loc.address = pcs[k];
        if (frames[k].module) {
            int32_t mi = mapping_of(b, frames[k].module);
            if (mi < 0)
                return mi;
            loc.mapping = (uint32_t)mi;
        }
        if (frames[k].func) {
            int32_t name = str_idx(b->p, frames[k].func);
            if (name < 0)
                return name;
            struct fg_function f = {(uint32_t)name, (uint32_t)name, 0, 0};
            int32_t fi = fg_dict_function(b->p, &f);
            if (fi < 0)
                return fi;
            line.function = (uint32_t)fi;
            loc.n_lines = 1;
            loc.lines = &line;
        }
        int32_t li = fg_dict_location(b->p, &loc);
        if (li < 0)
            return li;
        locs[k] = (uint32_t)li;
    }
    struct fg_stack st = {n, locs};
    return fg_dict_stack(b->p, &st);
}

static struct fg_profile *add_profile(struct builder *b, struct fg_scope_profiles *sp,
                                      const char *type, const char *unit,
                                      const char *ptype, const char *punit, int64_t period,
                                      uint64_t t0, uint64_t t1, const uint32_t *attrs,
                                      uint32_t n_attrs)
{
    int32_t t = str_idx(b->p, type), u = str_idx(b->p, unit), pt = str_idx(b->p, ptype),
            pu = str_idx(b->p, punit);
    if (t < 0 || u < 0 || pt < 0 || pu < 0)
        return NULL;
    struct fg_profile proto = {0};
    proto.sample_type = (struct fg_value_type){(uint32_t)t, (uint32_t)u};
    proto.period_type = (struct fg_value_type){(uint32_t)pt, (uint32_t)pu};
    proto.period = period;
    proto.time_unix_nano = t0;
    proto.duration_nano = t1 > t0 ? t1 - t0 : 0;
    proto.attrs = attrs;
    proto.n_attrs = n_attrs;
    return fg_profiles_add_profile(b->p, sp, &proto) ? &sp->profiles[sp->n_profiles - 1] : NULL;
}

/* The four heap profiles (Go's sample types) of every site sampled so far, symbolized
 * with sym. FG_ENOMEM on failure. */
static int add_heap_profiles(struct builder *b, struct fg_scope_profiles *sp,
                             struct fg__symbolizer *sym, uint64_t t0, uint64_t t1,
                             const uint32_t *pattrs, uint32_t n_pattrs)
{
    struct fg__heap_site *sites = NULL;
    size_t n_sites = 0;
    if (fg__heap_snapshot(&sites, &n_sites))
        return FG_ENOMEM;
    static const char *const types[4][2] = {{"alloc_objects", "count"},
                                            {"alloc_space", "bytes"},
                                            {"inuse_objects", "count"},
                                            {"inuse_space", "bytes"}};
    for (int k = 0; k < 4; k++)
        if (!add_profile(b, sp, types[k][0], types[k][1], "space", "bytes",
                         A.cfg.heap_sample_bytes, t0, t1, pattrs, n_pattrs))
            goto nomem;
    uint32_t first = sp->n_profiles - 4;
    for (size_t i = 0; i < n_sites; i++) {
        const struct fg__heap_site *hs = &sites[i];
        if (hs->alloc_objs < 0.5)
            continue;
        struct fg__frame frames[FG__MAX_FRAMES];
        for (uint32_t k = 0; k < hs->n; k++)
            fg__sym_lookup(sym, hs->pcs[k], false, &frames[k]);
        int32_t st = stack_of(b, hs->pcs, frames, hs->n);
        if (st < 0)
            goto nomem;
        double vals[4] = {hs->alloc_objs, hs->alloc_bytes, FG_MAX(hs->inuse_objs, 0.0),
                          FG_MAX(hs->inuse_bytes, 0.0)};
        for (int k = 0; k < 4; k++) {
            int64_t v = llround(vals[k]);
            struct fg_sample s = {0};
            s.stack = (uint32_t)st;
            s.n_values = 1;
            s.values = &v;
            if (fg_profiles_add_sample(b->p, &sp->profiles[first + (uint32_t)k], &s))
                goto nomem;
        }
    }
    fg__heap_snapshot_free(sites);
    return 0;
nomem:
    fg__heap_snapshot_free(sites);
    return FG_ENOMEM;
}

/* The profile attribute's value for the sampler that took the samples. */
static const char *cpu_sampler_attr(enum fg__cpu_sampler s)
{
    if (s == FG__SAMPLER_PERF)
        return "perf_event";
    return s == FG__SAMPLER_THREAD_TIMER ? "thread_timer" : "timer";
}

/* The resource (this process) and scope (the agent) every profile of an upload sits in. */
static struct fg_scope_profiles *add_agent_scope(struct fg_profiles *p)
{
    char svc[300];
    if (A.cfg.service_name)
        snprintf(svc, sizeof(svc), "%s", A.cfg.service_name);
    else
        snprintf(svc, sizeof(svc), "unknown_service:%s", A.exe_name);
    struct fg_keyvalue rattrs[6];
    uint32_t nr = 0;
#define KV_STR(k, v)                                                              \
    rattrs[nr].key = (struct fg_bytes){k, (uint32_t)strlen(k)};                   \
    rattrs[nr].value.kind = FG_VALUE_STRING;                                      \
    rattrs[nr].value.u.s = (struct fg_bytes){v, (uint32_t)strlen(v)};             \
    nr++
    KV_STR("service.name", svc);
    KV_STR("process.executable.name", A.exe_name);
    KV_STR("process.executable.path", A.exe_path);
    KV_STR("telemetry.sdk.name", "flamegate-agent");
    KV_STR("telemetry.sdk.language", "native");
#undef KV_STR
    rattrs[nr].key = (struct fg_bytes){"process.pid", 11};
    rattrs[nr].value.kind = FG_VALUE_INT;
    rattrs[nr].value.u.i = getpid();
    nr++;
    struct fg_resource res = {0};
    res.attrs = rattrs;
    res.n_attrs = nr;
    struct fg_resource_profiles *rp = fg_profiles_add_resource(p, &res, "", 0);
    struct fg_scope scope = {{"flamegate-agent", 15}, {FG_VERSION, (uint32_t)strlen(FG_VERSION)},
                             0, 0, NULL};
    return rp ? fg_profiles_add_scope(p, rp, &scope, "", 0) : NULL;
}

static int build_batch(struct window *w, uint64_t t1, struct fg_profiles **out)
{
    struct builder b = {0};
    int rc = fg_profiles_new(&b.p);
    if (rc)
        return rc;
    struct fg_profiles *p = b.p;
    struct fg_scope_profiles *sp = add_agent_scope(p);
    if (!sp)
        goto nomem;
    /* Cumulative loss counters on every profile: a later upload reports earlier losses. */
    uint32_t pattrs[2];
    int32_t a0 = attr_int(p, "flamegate.agent.dropped_uploads",
                          (int64_t)__atomic_load_n(&A.dropped_uploads, __ATOMIC_RELAXED));
    int32_t a1 = attr_int(p, "flamegate.agent.dropped_samples",
                          (int64_t)(fg__cpu_dropped() + fg__heap_dropped() + w->dropped));
    if (a0 < 0 || a1 < 0)
        goto nomem;
    pattrs[0] = (uint32_t)a0;
    pattrs[1] = (uint32_t)a1;

    if (A.cfg.profiles & FG_AGENT_PROFILE_CPU) {
        int64_t period = 1000000000LL / A.cfg.cpu_hz;
        /* which sampler took the samples, and how many threads it could not cover */
        int32_t a2 = attr_str(p, "flamegate.agent.cpu_sampler",
                              cpu_sampler_attr(fg__cpu_sampler()));
        int32_t a3 = attr_int(p, "flamegate.agent.cpu_unsampled_threads",
                              (int64_t)fg__cpu_unsampled_threads());
        if (a2 < 0 || a3 < 0)
            goto nomem;
        uint32_t cattrs[4] = {pattrs[0], pattrs[1], (uint32_t)a2, (uint32_t)a3};
        struct fg_profile *pc = add_profile(&b, sp, "samples", "count", "cpu", "nanoseconds",
                                            period, w->start_ns, t1, cattrs, 4);
        struct fg_profile *pn = pc ? add_profile(&b, sp, "cpu", "nanoseconds", "cpu",
                                                 "nanoseconds", period, w->start_ns, t1,
                                                 cattrs, 4)
                                   : NULL;
        if (!pn)
            goto nomem;
        uint32_t i_count = sp->n_profiles - 2, i_ns = sp->n_profiles - 1;
        for (uint32_t i = 0; i < w->n_entries; i++) {
            const struct cpu_entry *e = w->entries[i];
            int32_t st = stack_of(&b, e->pcs, e->frames, e->n);
            if (st < 0)
                goto nomem;
            uint32_t attrs[2 + MAX_LABELS];
            uint32_t na = 0;
            int32_t x = attr_int(p, "thread.id", e->tid);
            int32_t y = attr_str(p, "thread.name", e->thread_name);
            if (x < 0 || y < 0)
                goto nomem;
            attrs[na++] = (uint32_t)x;
            attrs[na++] = (uint32_t)y;
            pthread_mutex_lock(&label_mu);
            const struct label_set *ls = e->labels < n_label_sets ? label_sets[e->labels] : NULL;
            for (uint32_t k = 0; ls && k < ls->n; k++) {
                int32_t la = attr_str(p, ls->kv[2 * k], ls->kv[2 * k + 1]);
                if (la >= 0)
                    attrs[na++] = (uint32_t)la;
            }
            pthread_mutex_unlock(&label_mu);
            int64_t vc = (int64_t)e->weight, vn = (int64_t)e->weight * period;
            struct fg_sample s = {0};
            s.stack = (uint32_t)st;
            s.attrs = attrs;
            s.n_attrs = na;
            s.n_values = 1;
            s.values = &vc;
            if (fg_profiles_add_sample(p, &sp->profiles[i_count], &s))
                goto nomem;
            s.values = &vn;
            if (fg_profiles_add_sample(p, &sp->profiles[i_ns], &s))
                goto nomem;
        }
    }
    if ((A.cfg.profiles & FG_AGENT_PROFILE_HEAP) &&
        add_heap_profiles(&b, sp, A.sym, w->start_ns, t1, pattrs, 2))
        goto nomem;
    *out = p;
    return 0;
nomem:
    fg_profiles_unref(p);
    return FG_ENOMEM;
}

/* ---- queue ---- */

static void payload_free(struct payload *pl)
{
    if (pl) {
        fg_free(pl->data);
        fg_free(pl);
    }
}

/* Takes ownership of data. With A.mu held. */
static void enqueue_locked(uint8_t *data, size_t len, const char *suffix)
{
    if (A.q_items >= QUEUE_MAX_ITEMS || A.q_bytes + len > QUEUE_MAX_BYTES) {
        /* Bounded memory: the new upload is dropped and counted. */
        A.dropped_uploads++;
        fg_free(data);
        return;
    }
    struct payload *pl = fg_calloc(1, sizeof(*pl));
    if (!pl) {
        A.dropped_uploads++;
        fg_free(data);
        return;
    }
    pl->data = data;
    pl->len = len;
    snprintf(pl->suffix, sizeof(pl->suffix), "%s", suffix);
    if (A.q_tail)
        A.q_tail->next = pl;
    else
        A.q_head = pl;
    A.q_tail = pl;
    A.q_items++;
    A.q_bytes += len;
    pthread_cond_signal(&A.send_cv);
}

#ifdef FG_AGENT_HAVE_PPROF
static int emit_pprof(void *ctx, const struct fg_pprof_group *g, const uint8_t *data, size_t len,
                      struct fg_err *err)
{
    (void)err;
    const char *kind = "cpu";
    if (g->n_profiles && g->scope) {
        const struct fg_profile *pr = &g->scope->profiles[g->profiles[0]];
        if (pr->period_type.type)
            kind = strcmp(fg_dict_get_string(ctx, pr->period_type.type).ptr, "space") == 0
                       ? "heap"
                       : "cpu";
    }
    uint8_t *copy = fg_malloc(len);
    if (!copy)
        return FG_ENOMEM;
    memcpy(copy, data, len);
    char suffix[32];
    snprintf(suffix, sizeof(suffix), "%s.pb.gz", kind);
    pthread_mutex_lock(&A.mu);
    enqueue_locked(copy, len, suffix);
    pthread_mutex_unlock(&A.mu);
    return 0;
}
#endif

static void upload_window(void)
{
    uint64_t t1 = realtime_ns();
    struct fg_profiles *p = NULL;
    struct fg_buf raw = {0}, gz = {0};
    int rc = build_batch(&A.win, t1, &p);
    if (rc) {
        agent_log("building the profile failed: %s", fg_strerror(rc));
        goto done;
    }
    if (A.cfg.output == FG__OUT_PPROF_FILE) {
#ifdef FG_AGENT_HAVE_PPROF
        struct fg_err err = {{0}};
        if ((rc = fg_pprof_encode(p, true, emit_pprof, p, &err)))
            agent_log("pprof encoding failed: %s", err.msg);
#endif
        goto done;
    }
    if ((rc = fg_otlp_encode_proto(p, &raw))) {
        agent_log("encoding failed: %s", fg_strerror(rc));
        goto done;
    }
    if (A.cfg.output == FG__OUT_OTLP) {
        if ((rc = fg_gzip(raw.data, raw.len, 6, &gz))) {
            agent_log("gzip failed: %s", fg_strerror(rc));
            goto done;
        }
        size_t len;
        uint8_t *data = fg_buf_steal(&gz, &len);
        pthread_mutex_lock(&A.mu);
        enqueue_locked(data, len, "pb.gz");
        pthread_mutex_unlock(&A.mu);
    } else {
        size_t len;
        uint8_t *data = fg_buf_steal(&raw, &len);
        pthread_mutex_lock(&A.mu);
        enqueue_locked(data, len, "pb");
        pthread_mutex_unlock(&A.mu);
    }
done:
    fg_buf_free(&raw);
    fg_buf_free(&gz);
    fg_profiles_unref(p);
    if (window_reset(&A.win))
        agent_log("out of memory; CPU samples of the next window are lost");
}

static void *collector_main(void *arg)
{
    (void)arg;
    fg__tls_guard = 1;
    agent_thread_signals();
    pthread_setname_np(pthread_self(), "fg-agent-coll"); /* its samples are the agent's */
    long long next_upload = mono_ms() + A.cfg.upload_interval_ms;
    pthread_mutex_lock(&A.mu);
    for (;;) {
        struct timespec ts;
        deadline_ts(&ts, COLLECT_TICK_MS);
        if (!A.stopping && A.flush_req == A.flush_done)
            pthread_cond_timedwait(&A.wake, &A.mu, &ts);
        bool stopping = A.stopping;
        uint64_t flush = A.flush_req;
        pthread_mutex_unlock(&A.mu);

        fg__sym_refresh(A.sym);
        fg__cpu_reap();
        fg__cpu_drain(window_add, &A.win);
        bool due = mono_ms() >= next_upload;
        if (due || stopping || flush != A.flush_done) {
            upload_window();
            next_upload = mono_ms() + A.cfg.upload_interval_ms;
        }
        pthread_mutex_lock(&A.mu);
        if (flush != A.flush_done) {
            A.flush_done = flush;
            pthread_cond_broadcast(&A.flushed);
        }
        if (stopping)
            break;
    }
    A.sender_stop = true;
    pthread_cond_signal(&A.send_cv);
    pthread_mutex_unlock(&A.mu);
    return NULL;
}

/* ---- sender ---- */

static int write_file(const struct payload *pl, uint64_t seq, struct fg_err *err)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s.%d.%llu.%s", A.cfg.out_path, (int)getpid(),
             (unsigned long long)seq, pl->suffix);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fg_err_set(err, FG_EIO, "open %s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < pl->len) {
        ssize_t n = write(fd, pl->data + off, pl->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return fg_err_set(err, FG_EIO, "write %s: %s", tmp, strerror(e));
        }
        off += (size_t)n;
    }
    close(fd);
    /* complete files only: readers never see a half-written profile */
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return fg_err_set(err, FG_EIO, "rename to %s: %s", path, strerror(errno));
    }
    return 0;
}

static void *sender_main(void *arg)
{
    (void)arg;
    fg__tls_guard = 1;
    agent_thread_signals();
    pthread_setname_np(pthread_self(), "fg-agent-send");
    long backoff = 0;
    bool warned = false;
    pthread_mutex_lock(&A.mu);
    for (;;) {
        while (!A.q_head && !A.sender_stop)
            pthread_cond_wait(&A.send_cv, &A.mu);
        if (!A.q_head)
            break;
        struct payload *pl = A.q_head;
        bool stopping = A.sender_stop;
        uint64_t seq = A.upload_seq++;
        pthread_mutex_unlock(&A.mu);

        struct fg_err err = {{0}};
        int rc, status = 0;
        bool retry = false;
        if (A.cfg.output == FG__OUT_OTLP) {
            int timeout = SEND_TIMEOUT_MS;
            if (stopping)
                timeout = (int)FG_MAX(0, FG_MIN(timeout, A.exit_deadline_ms - mono_ms()));
            rc = timeout > 0 ? fg__http_post(&A.cfg.url, A.cfg.headers,
                                             "application/x-protobuf", pl->data, pl->len,
                                             timeout, &status, &A.cancel, &err)
                             : fg_err_set(&err, FG_ETIMEOUT, "no time left at exit");
            if (rc == 0 && (status == 429 || status >= 500)) {
                rc = FG_ERETRYABLE;
                fg_err_set(&err, rc, "HTTP %d", status);
            } else if (rc == 0 && (status < 200 || status > 299)) {
                rc = FG_EPERMANENT;
                fg_err_set(&err, rc, "HTTP %d (rejected, not retried)", status);
            }
            retry = rc != 0 && rc != FG_EPERMANENT && !stopping;
        } else {
            rc = write_file(pl, seq, &err);
        }
        if (rc && !warned) {
            agent_log("upload failed: %s%s", err.msg,
                      retry ? "; retrying with backoff (further failures are counted "
                              "silently)"
                            : "; dropped");
            warned = true;
        }
        pthread_mutex_lock(&A.mu);
        if (retry) {
            backoff = backoff ? FG_MIN(backoff * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
            struct timespec ts;
            deadline_ts(&ts, backoff);
            while (!A.sender_stop && pthread_cond_timedwait(&A.send_cv, &A.mu, &ts) == 0) {
            }
            continue; /* the same payload again (or the stop path) */
        }
        if (rc) {
            A.dropped_uploads++;
        } else {
            backoff = 0;
            warned = false;
        }
        A.q_head = pl->next;
        if (!A.q_head)
            A.q_tail = NULL;
        A.q_items--;
        A.q_bytes -= pl->len;
        payload_free(pl);
    }
    pthread_mutex_unlock(&A.mu);
    return NULL;
}

/* ---- fork ---- */

static void atfork_prepare(void)
{
    fg__cpu_atfork_prepare(); /* first: no other agent lock is ever held while taking it */
    pthread_mutex_lock(&A.mu);
    pthread_mutex_lock(&label_mu);
    fg__heap_atfork_prepare();
}

static void atfork_parent(void)
{
    fg__heap_atfork_parent();
    pthread_mutex_unlock(&label_mu);
    pthread_mutex_unlock(&A.mu);
    fg__cpu_atfork_parent();
}

static void atfork_child(void)
{
    /* The child has only the forking thread: the agent's threads and timer are gone. It
     * runs unprofiled (or restarts later, with FLAMEGATE_FOLLOW_FORK); state is reset so
     * that it can neither deadlock nor upload twice. Nothing here may allocate. */
    if (A.running && A.cfg.follow_fork)
        fg__heap_request_fork_restart();
    fg__heap_atfork_child();
    fg__cpu_forget();
    pthread_mutex_init(&label_mu, NULL);
    pthread_mutex_init(&A.mu, NULL);
    pthread_mutex_init(&heap_api_mu, NULL); /* the child's heap API answers "stopped" */
    pthread_cond_init(&A.wake, NULL);
    pthread_cond_init(&A.flushed, NULL);
    pthread_cond_init(&A.send_cv, NULL);
    A.running = false;
    A.q_head = A.q_tail = NULL; /* memory of the parent's queue: abandoned, not freed */
    A.q_items = 0;
    A.q_bytes = 0;
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* ---- API ---- */

static void close_wake_pipe(void)
{
    for (int i = 0; i < 2; i++) {
        if (A.wake_pipe[i] >= 0)
            close(A.wake_pipe[i]);
        A.wake_pipe[i] = -1;
    }
    A.cancel.wake_fd = -1;
}

static void note_exe(void)
{
    ssize_t n = readlink("/proc/self/exe", A.exe_path, sizeof(A.exe_path) - 1);
    A.exe_path[n > 0 ? n : 0] = '\0';
    const char *slash = strrchr(A.exe_path, '/');
    snprintf(A.exe_name, sizeof(A.exe_name), "%s", slash ? slash + 1 : A.exe_path);
}

/* Starts with validated settings (takes ownership of s's strings); the caller holds the
 * guard. Says why on stderr when it fails. */
static int start_with_settings(struct fg__agent_settings *s)
{
    struct fg_err err = {{0}};
    int rc;
    pthread_mutex_lock(&A.mu);
    if (A.running) {
        pthread_mutex_unlock(&A.mu);
        fg__agent_settings_clear(s);
        agent_log("fg_agent_start: already running");
        return FG_EINVAL;
    }
    A.cfg = *s;
    A.stopping = A.sender_stop = false;
    A.flush_req = A.flush_done = 0;
    A.pid = getpid();
    pthread_mutex_unlock(&A.mu);
    pthread_once(&atfork_once, register_atfork);
    note_exe();
    if ((rc = fg__sym_new(&A.sym)) || (rc = window_reset(&A.win))) {
        fg_err_set(&err, rc, "out of memory");
        goto undo;
    }
    fg__sym_refresh(A.sym);
    if (pipe2(A.wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        A.wake_pipe[0] = A.wake_pipe[1] = -1;
        rc = fg_err_set(&err, FG_EIO, "pipe: %s", strerror(errno));
        goto undo;
    }
    A.cancel.wake_fd = A.wake_pipe[0];
    atomic_store(&A.cancel.deadline_ms, LLONG_MAX);
    if (A.cfg.profiles & FG_AGENT_PROFILE_HEAP) {
        if ((rc = fg__heap_start(A.cfg.heap_sample_bytes))) {
            fg_err_set(&err, rc, "heap profiler: the allocator cannot be interposed");
            goto undo;
        }
    }
    /* The CPU sampler before the agent's threads: a sampler that cannot start leaves
     * nothing to undo but the heap profiler, and no upload is made. */
    if ((A.cfg.profiles & FG_AGENT_PROFILE_CPU) &&
        (rc = fg__cpu_start(A.cfg.cpu_hz, A.cfg.cpu_sampler, &err)))
        goto undo_heap;
    if ((rc = pthread_create(&A.sender, NULL, sender_main, NULL))) {
        fg_err_set(&err, FG_EIO, "cannot start the sender thread: %s", strerror(rc));
        rc = FG_EIO;
        goto undo_cpu;
    }
    if ((rc = pthread_create(&A.collector, NULL, collector_main, NULL))) {
        fg_err_set(&err, FG_EIO, "cannot start the collector thread: %s", strerror(rc));
        rc = FG_EIO;
        pthread_mutex_lock(&A.mu);
        A.sender_stop = true;
        pthread_cond_signal(&A.send_cv);
        pthread_mutex_unlock(&A.mu);
        pthread_join(A.sender, NULL);
        goto undo_cpu;
    }
    pthread_mutex_lock(&A.mu);
    A.running = true;
    pthread_mutex_unlock(&A.mu);
    return 0;
undo_cpu:
    fg__cpu_stop();
undo_heap:
    fg__heap_stop();
undo:
    close_wake_pipe();
    window_free(&A.win);
    fg__sym_free(A.sym);
    A.sym = NULL;
    fg__agent_settings_clear(&A.cfg);
    agent_log("%s; the program runs without profiling", err.msg);
    return rc;
}

EXPORT int fg_agent_start(const struct fg_agent_config *cfg)
{
    struct fg_agent_config envcfg;
    struct fg_err err = {{0}};
    struct fg__agent_settings s;
    int rc;
    fg__tls_guard++;
    if (!cfg) {
        if ((rc = fg__agent_config_from_env(&envcfg, &err)))
            goto bad;
        cfg = &envcfg;
    }
    if ((rc = fg__agent_settings_make(cfg, &s, &err)))
        goto bad;
    rc = start_with_settings(&s);
    fg__tls_guard--;
    return rc;
bad:
    agent_log("%s; the program runs without profiling", err.msg);
    fg__tls_guard--;
    return rc;
}

void fg__agent_fork_restart(void)
{
    pthread_mutex_lock(&A.mu);
    bool started = A.running; /* the child called fg_agent_start itself first */
    pthread_mutex_unlock(&A.mu);
    if (started)
        return;
    fg__tls_guard++;
    /* The parent's settings (immutable while it ran), in memory the child now owns;
     * everything else starts over. The parent's collector may have been inside its window
     * or symbolizer at the fork: those are abandoned, not freed. */
    struct fg__agent_settings s = A.cfg;
    memset(&A.cfg, 0, sizeof(A.cfg));
    memset(&A.win, 0, sizeof(A.win));
    A.sym = NULL;
    close_wake_pipe(); /* the parent's pipe: the child's copies only */
    A.dropped_uploads = 0;
    A.upload_seq = 0;
    fg__cpu_forget_parent();
    fg__heap_forget_parent();
    start_with_settings(&s);
    fg__tls_guard--;
}

EXPORT void fg_agent_stop(void)
{
    fg__tls_guard++;
    pthread_mutex_lock(&A.mu);
    if (!A.running || A.pid != getpid()) {
        pthread_mutex_unlock(&A.mu);
        fg__tls_guard--;
        return;
    }
    A.running = false;
    pthread_mutex_unlock(&A.mu);
    fg__cpu_stop();
    pthread_mutex_lock(&heap_api_mu); /* a heap profile being written finishes first */
    fg__heap_stop();
    pthread_mutex_unlock(&heap_api_mu);
    pthread_mutex_lock(&A.mu);
    A.exit_deadline_ms = mono_ms() + EXIT_BUDGET_MS;
    /* an upload in flight gets the exit budget, not its own (longer) timeout */
    atomic_store(&A.cancel.deadline_ms, A.exit_deadline_ms);
    if (A.wake_pipe[1] >= 0) {
        ssize_t w = write(A.wake_pipe[1], "x", 1);
        (void)w;
    }
    A.stopping = true;
    pthread_cond_signal(&A.wake);
    pthread_mutex_unlock(&A.mu);
    pthread_join(A.collector, NULL);
    pthread_join(A.sender, NULL);
    window_free(&A.win);
    fg__sym_free(A.sym);
    A.sym = NULL;
    fg__agent_settings_clear(&A.cfg);
    close_wake_pipe();
    fg__tls_guard--;
}

EXPORT int fg_agent_flush(void)
{
    pthread_mutex_lock(&A.mu);
    if (!A.running || A.pid != getpid()) {
        pthread_mutex_unlock(&A.mu);
        return FG_ESTOPPED;
    }
    uint64_t ticket = ++A.flush_req;
    pthread_cond_signal(&A.wake);
    while (A.flush_done < ticket && A.running)
        pthread_cond_wait(&A.flushed, &A.mu);
    pthread_mutex_unlock(&A.mu);
    return 0;
}

#ifdef FG_AGENT_HAVE_PPROF
struct heap_writer {
    int (*write)(void *ctx, const void *data, size_t len);
    void *ctx;
};

static int heap_emit(void *ctx, const struct fg_pprof_group *g, const uint8_t *data,
                     size_t len, struct fg_err *err)
{
    (void)g;
    struct heap_writer *hw = ctx;
    if (hw->write(hw->ctx, data, len) != 0)
        return fg_err_set(err, FG_EIO, "the writer refused the profile");
    return 0;
}
#endif

EXPORT int fg_agent_heap_pprof(int (*write)(void *ctx, const void *data, size_t len), void *ctx)
{
#ifdef FG_AGENT_HAVE_PPROF
    if (!write)
        return FG_EINVAL;
    fg__tls_guard++; /* the profile's own allocations are not sampled */
    struct builder b = {0};
    struct fg__symbolizer *sym = NULL;
    int rc;
    pthread_mutex_lock(&heap_api_mu);
    pthread_mutex_lock(&A.mu);
    bool on = A.running && A.pid == getpid() && (A.cfg.profiles & FG_AGENT_PROFILE_HEAP);
    pthread_mutex_unlock(&A.mu);
    if (!on) {
        rc = FG_ESTOPPED;
        goto done;
    }
    /* A symbolizer of its own: the collector's is not shared across threads. */
    if ((rc = fg__sym_new(&sym)) || (rc = fg_profiles_new(&b.p)))
        goto done;
    fg__sym_refresh(sym);
    uint64_t now = realtime_ns();
    struct fg_scope_profiles *sp = add_agent_scope(b.p);
    if (!sp || add_heap_profiles(&b, sp, sym, now, now, NULL, 0)) {
        rc = FG_ENOMEM;
        goto done;
    }
    struct heap_writer hw = {write, ctx};
    struct fg_err err = {{0}};
    rc = fg_pprof_encode(b.p, true, heap_emit, &hw, &err);
done:
    fg_profiles_unref(b.p);
    fg__sym_free(sym);
    pthread_mutex_unlock(&heap_api_mu);
    fg__tls_guard--;
    return rc;
#else
    (void)write;
    (void)ctx;
    return FG_EUNSUPPORTED;
#endif
}

static bool label_sets_equal(const struct label_set *a, const struct label_set *b)
{
    if (a->n != b->n)
        return false;
    for (uint32_t i = 0; i < 2 * a->n; i++)
        if (strcmp(a->kv[i], b->kv[i]) != 0)
            return false;
    return true;
}

EXPORT int fg_agent_set_label(const char *key, const char *value)
{
    if (!key || !key[0])
        return FG_EINVAL;
    int rc = 0;
    fg__tls_guard++;
    pthread_mutex_lock(&label_mu);
    struct label_set next = {0};
    const struct label_set *cur = label_sets[fg__tls_labels];
    bool placed = false;
    for (uint32_t i = 0; cur && i < cur->n; i++) {
        int c = strcmp(cur->kv[2 * i], key);
        if (c > 0 && !placed && value) {
            next.kv[2 * next.n] = (char *)key;
            next.kv[2 * next.n + 1] = (char *)value;
            next.n++;
            placed = true;
        }
        if (c == 0) {
            if (value) {
                next.kv[2 * next.n] = (char *)key;
                next.kv[2 * next.n + 1] = (char *)value;
                next.n++;
            }
            placed = true;
            continue;
        }
        if (next.n >= MAX_LABELS) {
            rc = FG_EFULL;
            goto out;
        }
        next.kv[2 * next.n] = cur->kv[2 * i];
        next.kv[2 * next.n + 1] = cur->kv[2 * i + 1];
        next.n++;
    }
    if (!placed && value) {
        if (next.n >= MAX_LABELS) {
            rc = FG_EFULL;
            goto out;
        }
        next.kv[2 * next.n] = (char *)key;
        next.kv[2 * next.n + 1] = (char *)value;
        next.n++;
    }
    if (next.n == 0) {
        fg__tls_labels = 0;
        goto out;
    }
    for (uint32_t i = 1; i < n_label_sets; i++)
        if (label_sets_equal(label_sets[i], &next)) {
            fg__tls_labels = i;
            goto out;
        }
    if (n_label_sets >= MAX_LABEL_SETS) {
        rc = FG_EFULL;
        goto out;
    }
    /* Interned sets live as long as the process: threads may point at them at any time. */
    struct label_set *ls = fg_calloc(1, sizeof(*ls));
    if (!ls) {
        rc = FG_ENOMEM;
        goto out;
    }
    ls->n = next.n;
    for (uint32_t i = 0; i < 2 * next.n; i++) {
        ls->kv[i] = fg_strdup(next.kv[i]);
        if (!ls->kv[i]) {
            for (uint32_t k = 0; k < i; k++)
                fg_free(ls->kv[k]);
            fg_free(ls);
            rc = FG_ENOMEM;
            goto out;
        }
    }
    label_sets[n_label_sets] = ls;
    fg__tls_labels = n_label_sets++;
out:
    pthread_mutex_unlock(&label_mu);
    fg__tls_guard--;
    return rc;
}

/* ---- preloading ---- */

__attribute__((constructor)) static void agent_ctor(void)
{
    /* The main thread's stack bounds, for the frame walk (other threads get theirs in the
     * pthread_create trampoline). */
    if (getpid() == (pid_t)syscall(SYS_gettid)) {
        pthread_attr_t attr;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            void *addr;
            size_t size;
            if (pthread_attr_getstack(&attr, &addr, &size) == 0)
                fg__thread_note_stack((uintptr_t)addr + size);
            pthread_attr_destroy(&attr);
        }
    }
#ifdef FG_AGENT_AUTOSTART
    if (getenv("FLAMEGATE_ENDPOINT") || getenv("FLAMEGATE_OUTPUT") ||
        getenv("FLAMEGATE_PROFILES"))
        fg_agent_start(NULL);
#endif
}

__attribute__((destructor)) static void agent_dtor(void)
{
    fg_agent_stop(); /* the final upload; a no-op in forked children */
}
