/* The agent's lifecycle: start/stop/flush, thread labels, and the helper process.
 *
 * The program's process keeps only the samplers (a SIGPROF handler, the allocator's
 * countdown) and writes into a region shared with a helper process forked at start: the
 * helper drains the CPU samples, symbolizes them from /proc/PID/maps and the mapped files,
 * builds one OTLP batch per upload interval and sends it (bounded queue, retry with
 * backoff). So the agent starts no thread in the program: a single-threaded program stays
 * single-threaded, and glibc's allocator keeps its lock-free paths. The helper is a
 * grandchild (the program never sees it as its child), leaves the program's session, and
 * ends after the final upload, or when the program exits or execs without one. */
#include "fg_agent.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
#define COLLECT_TICK_MIN_MS 10
#define QUEUE_MAX_ITEMS 8
#define QUEUE_MAX_BYTES (32u << 20)
#define SEND_TIMEOUT_MS 5000
#define EXIT_BUDGET_MS 2000
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define MAX_CPU_STACKS 65536u
#define HELPER_START_MS 2000
#define HELPER_EXIT_SLACK_MS 1000 /* past the exit budget: the helper's own teardown */

FG__TLS volatile uint32_t fg__tls_labels;
struct fg__shared *fg__shm;

/* Label sets live in the shared region (immutable once published; a thread points at one
 * by index). label_mu also guards creating the region. */
static pthread_mutex_t label_mu = PTHREAD_MUTEX_INITIALIZER;

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

/* The program's side uses mu, running, pid, cfg and the exe fields; the rest is the
 * helper's. */
static struct agent {
    pthread_mutex_t mu;
    pthread_cond_t send_cv; /* sender: work or stop */
    bool running, sender_stop;
    pid_t pid; /* the profiled process */
    struct fg__agent_settings cfg;
    pthread_t sender;
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
    dev_t exe_dev; /* the program's executable file: an exec changes it */
    ino_t exe_ino;
} A = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .send_cv = PTHREAD_COND_INITIALIZER,
    .wake_pipe = {-1, -1},
    .cancel = {.wake_fd = -1},
};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
/* Serializes fg_agent_heap_pprof with the heap profiler's stop. */
static pthread_mutex_t heap_api_mu = PTHREAD_MUTEX_INITIALIZER;

/* Set in the helper process: its messages speak for the program (A.pid). */
static bool in_helper;

static void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void agent_log(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(line, sizeof(line), "flamegate-agent[%d]: ",
                     (int)(in_helper ? A.pid : getpid()));
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

static const char *thread_name_of(struct window *w, uint32_t tid)
{
    for (uint32_t i = 0; i < w->n_names; i++)
        if (w->names[i].tid == tid)
            return w->names[i].name;
    char path[64], buf[64] = "";
    snprintf(path, sizeof(path), "/proc/%d/task/%u/comm", (int)A.pid, tid);
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
    if (fg__heap_snapshot(fg__shm, &sites, &n_sites))
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
    rattrs[nr].value.u.i = A.pid;
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
    const struct fg__shared *sh = fg__shm;
    int32_t a1 = attr_int(p, "flamegate.agent.dropped_samples",
                          (int64_t)(atomic_load(&sh->ring_dropped) +
                                    atomic_load(&sh->heap_dropped) + w->dropped));
    if (a0 < 0 || a1 < 0)
        goto nomem;
    pattrs[0] = (uint32_t)a0;
    pattrs[1] = (uint32_t)a1;

    if (A.cfg.profiles & FG_AGENT_PROFILE_CPU) {
        int64_t period = 1000000000LL / A.cfg.cpu_hz;
        /* which sampler took the samples, and how many threads it could not cover */
        int32_t a2 = attr_str(p, "flamegate.agent.cpu_sampler",
                              cpu_sampler_attr(atomic_load(&sh->cpu_sampler)));
        int32_t a3 = attr_int(p, "flamegate.agent.cpu_unsampled_threads",
                              (int64_t)atomic_load(&sh->unsampled_threads));
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
        uint32_t n_sets = atomic_load_explicit(&sh->n_label_sets, memory_order_acquire);
        for (uint32_t i = 0; i < w->n_entries; i++) {
            const struct cpu_entry *e = w->entries[i];
            int32_t st = stack_of(&b, e->pcs, e->frames, e->n);
            if (st < 0)
                goto nomem;
            uint32_t attrs[2 + FG__MAX_LABELS];
            uint32_t na = 0;
            int32_t x = attr_int(p, "thread.id", e->tid);
            int32_t y = attr_str(p, "thread.name", e->thread_name);
            if (x < 0 || y < 0)
                goto nomem;
            attrs[na++] = (uint32_t)x;
            attrs[na++] = (uint32_t)y;
            const struct fg__label_set *ls =
                e->labels < n_sets ? &sh->label_sets[e->labels] : NULL;
            for (uint32_t k = 0; ls && k < ls->n; k++) {
                int32_t la = attr_str(p, sh->label_pool + ls->kv[2 * k],
                                      sh->label_pool + ls->kv[2 * k + 1]);
                if (la >= 0)
                    attrs[na++] = (uint32_t)la;
            }
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

/* ---- sender ---- */

static void upload_path(char *out, size_t size, const struct payload *pl, uint64_t seq)
{
    snprintf(out, size, "%s.%d.%llu.%s", A.cfg.out_path, (int)A.pid, (unsigned long long)seq,
             pl->suffix);
}

/* Writes pl as PATH.<pid>.<seq>.<ext>, taking the next free seq: files are complete when
 * they appear and never replace one another (the agent of an image the process exec'd from
 * may have used the pid's first numbers). */
static int write_file(const struct payload *pl, uint64_t *seq, struct fg_err *err)
{
    char path[4096], tmp[4200];
    upload_path(path, sizeof(path), pl, *seq);
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
    int rc;
    while ((rc = link(tmp, path)) != 0 && errno == EEXIST)
        upload_path(path, sizeof(path), pl, ++*seq);
    int e = errno;
    unlink(tmp);
    return rc ? fg_err_set(err, FG_EIO, "link to %s: %s", path, strerror(e)) : 0;
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
                timeout = (int)FG_MAX(0, FG_MIN(timeout, A.exit_deadline_ms - fg__mono_ms()));
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
            rc = write_file(pl, &seq, &err);
        }
        if (rc && !warned) {
            agent_log("upload failed: %s%s", err.msg,
                      retry ? "; retrying with backoff (further failures are counted "
                              "silently)"
                            : "; dropped");
            warned = true;
        }
        pthread_mutex_lock(&A.mu);
        A.upload_seq = FG_MAX(A.upload_seq, seq + 1); /* write_file may have skipped some */
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

/* ---- the helper process ---- */

static long futex_wait_ms(_Atomic uint32_t *word, uint32_t seen, long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    return syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* The program's side: a request for the helper (flush or stop) is in sh. */
static void ring_doorbell(struct fg__shared *sh)
{
    atomic_fetch_add(&sh->doorbell, 1);
    futex_wake_all(&sh->doorbell);
}

static bool helper_alive(const struct fg__shared *sh)
{
    pid_t pid = atomic_load(&sh->helper_pid);
    return pid > 0 && atomic_load(&sh->helper_state) != FG__HELPER_DONE &&
           !(kill(pid, 0) != 0 && errno == ESRCH);
}

enum program_state { PROGRAM_RUNS, PROGRAM_EXITED, PROGRAM_EXECED };

/* The helper: whether the program still runs this agent (checked every tick). After an
 * exec its samplers are gone with the old image, and its profile with them (as when the
 * agent ran in-process): the new image's agent starts over under the same pid. */
static enum program_state program_state(int pidfd)
{
    if (pidfd >= 0) {
        struct pollfd pf = {pidfd, POLLIN, 0};
        if (poll(&pf, 1, 0) > 0)
            return PROGRAM_EXITED;
    } else if (kill(A.pid, 0) != 0 && errno == ESRCH) {
        return PROGRAM_EXITED;
    }
    /* The file itself, not its name: a running binary replaced on disk (an upgrade) reads
     * "PATH (deleted)" but is the same file. */
    char link[64];
    struct stat st;
    snprintf(link, sizeof(link), "/proc/%d/exe", (int)A.pid);
    if (!A.exe_ino || stat(link, &st) != 0)
        return PROGRAM_RUNS;
    return st.st_dev == A.exe_dev && st.st_ino == A.exe_ino ? PROGRAM_RUNS : PROGRAM_EXECED;
}

/* Lowers the deadline of the sends still to come (and of one in flight) to deadline_ms. */
static void cut_sends_at(long long deadline_ms)
{
    pthread_mutex_lock(&A.mu);
    A.exit_deadline_ms = deadline_ms;
    atomic_store(&A.cancel.deadline_ms, deadline_ms);
    if (A.wake_pipe[1] >= 0) {
        ssize_t w = write(A.wake_pipe[1], "x", 1);
        (void)w;
    }
    pthread_mutex_unlock(&A.mu);
}

/* How often the helper drains: every 100 ms, or often enough that every CPU sampling at
 * full rate fills at most a quarter of the ring in between (many cores). */
static long collect_tick_ms(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (!(A.cfg.profiles & FG_AGENT_PROFILE_CPU) || cpus < 1)
        return COLLECT_TICK_MS;
    long ms = (long)FG__RING_SLOTS / 4 * 1000 / ((long)A.cfg.cpu_hz * cpus);
    return FG_MAX(COLLECT_TICK_MIN_MS, FG_MIN(ms, COLLECT_TICK_MS));
}

/* Drains, aggregates and uploads until the program asks for the final upload or is gone. */
static void collect(struct fg__shared *sh, int pidfd)
{
    long tick_ms = collect_tick_ms();
    long long next_upload = fg__mono_ms() + A.cfg.upload_interval_ms;
    uint32_t flush_done = atomic_load(&sh->flush_done);
    for (;;) {
        uint32_t bell = atomic_load(&sh->doorbell); /* before the checks: no request is missed */
        uint32_t stop = atomic_load(&sh->stop), flush = atomic_load(&sh->flush_req);
        enum program_state ps = stop ? PROGRAM_RUNS : program_state(pidfd);
        if (stop == FG__STOP_DISCARD || ps == PROGRAM_EXECED)
            break;
        bool stopping = stop == FG__STOP_UPLOAD;
        if (ps == PROGRAM_EXITED) {
            stopping = true; /* no exit handler ran: send what there is, in the exit budget */
            cut_sends_at(fg__mono_ms() + EXIT_BUDGET_MS);
        } else if (stopping) {
            cut_sends_at(atomic_load(&sh->exit_deadline_ms));
        }
        fg__cpu_drain(sh, window_add, &A.win);
        if (fg__mono_ms() >= next_upload || stopping || flush != flush_done) {
            fg__sym_refresh(A.sym); /* libraries loaded or unloaded since the last upload */
            upload_window();
            next_upload = fg__mono_ms() + A.cfg.upload_interval_ms;
        }
        if (flush != flush_done) {
            flush_done = flush;
            atomic_store(&sh->flush_done, flush);
            futex_wake_all(&sh->flush_done);
        }
        if (stopping)
            break;
        futex_wait_ms(&sh->doorbell, bell, tick_ms);
    }
}

/* The helper's own process: quiet (no terminal signals, no program fds), then collect. */
static void helper_detach(void)
{
    setsid(); /* ^C and SIGHUP for the program's process group do not reach it */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) /* the program's handlers are not the helper's */
        sigaction(sig, &dfl, NULL);
    /* A stop signal sent to every process of a service (systemd's control-group kill) must
     * not take the final upload with it: the helper ends when the program does. */
    static const int ignored[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGPROF};
    for (size_t i = 0; i < FG_ARRAY_LEN(ignored); i++)
        signal(ignored[i], SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_NAME, "flamegate-agent");
    /* Holding the program's pipes would keep its readers waiting for end-of-file. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
    }
    closefrom(3);
}

static __attribute__((noreturn)) void helper_main(struct fg__shared *sh)
{
    fg__tls_guard = 1;
    in_helper = true;
    helper_detach();
    int pidfd = (int)syscall(SYS_pidfd_open, A.pid, 0); /* the program waits for RUNNING */
    bool ready = fg__sym_new(&A.sym, A.pid) == 0 && window_reset(&A.win) == 0 &&
                 pipe2(A.wake_pipe, O_CLOEXEC | O_NONBLOCK) == 0;
    if (ready) {
        A.cancel.wake_fd = A.wake_pipe[0];
        atomic_store(&A.cancel.deadline_ms, LLONG_MAX);
        ready = pthread_create(&A.sender, NULL, sender_main, NULL) == 0;
    }
    if (!ready) {
        agent_log("the helper process cannot start (out of resources)");
        atomic_store(&sh->helper_state, FG__HELPER_DONE);
        futex_wake_all(&sh->helper_state);
        _exit(1);
    }
    atomic_store(&sh->helper_pid, getpid());
    atomic_store(&sh->helper_state, FG__HELPER_RUNNING);
    futex_wake_all(&sh->helper_state);
    collect(sh, pidfd);
    pthread_mutex_lock(&A.mu);
    A.sender_stop = true;
    pthread_cond_signal(&A.send_cv);
    pthread_mutex_unlock(&A.mu);
    pthread_join(A.sender, NULL);
    atomic_store(&sh->helper_state, FG__HELPER_DONE);
    futex_wake_all(&sh->helper_state);
    _exit(0);
}

/* Forks the helper as a grandchild (the middle process exits at once) and waits until it
 * runs. */
static int spawn_helper(struct fg__shared *sh, struct fg_err *err)
{
    sh->spawned = true;
    pid_t mid = fork();
    if (mid < 0)
        return fg_err_set(err, FG_EIO, "cannot fork the agent's helper process: %s",
                          strerror(errno));
    if (mid == 0) {
        pid_t helper = fork();
        if (helper == 0)
            helper_main(sh);
        _exit(helper < 0 ? 1 : 0);
    }
    int status = 0;
    pid_t got;
    while ((got = waitpid(mid, &status, 0)) < 0 && errno == EINTR) {
    }
    if (got == mid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        return fg_err_set(err, FG_EIO, "cannot fork the agent's helper process");
    long long deadline = fg__mono_ms() + HELPER_START_MS;
    uint32_t st;
    while ((st = atomic_load(&sh->helper_state)) == FG__HELPER_STARTING && fg__mono_ms() < deadline)
        futex_wait_ms(&sh->helper_state, FG__HELPER_STARTING, 50);
    if (st != FG__HELPER_RUNNING) {
        atomic_store(&sh->stop, FG__STOP_DISCARD); /* should it come up late after all */
        ring_doorbell(sh);
        return fg_err_set(err, FG_EIO, "the agent's helper process did not start");
    }
    return 0;
}

/* The program's side: tells the helper to stop (uploading or not) and waits, at most for
 * the exit budget, for it to finish. */
static void stop_helper(struct fg__shared *sh, enum fg__stop how)
{
    long long deadline = fg__mono_ms() + EXIT_BUDGET_MS;
    atomic_store(&sh->exit_deadline_ms, deadline);
    atomic_store(&sh->stop, how);
    ring_doorbell(sh);
    deadline += HELPER_EXIT_SLACK_MS;
    uint32_t st;
    while ((st = atomic_load(&sh->helper_state)) != FG__HELPER_DONE && fg__mono_ms() < deadline &&
           helper_alive(sh))
        futex_wait_ms(&sh->helper_state, st, 50);
}

/* ---- the shared region ---- */

/* A new region for this process, with the label sets of from (the region this process
 * inherited or used before: threads may point at those sets). With label_mu held. */
static struct fg__shared *region_new_locked(const struct fg__shared *from)
{
    void *m = mmap(NULL, sizeof(struct fg__shared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    struct fg__shared *sh = m;
    sh->owner = getpid();
    atomic_store(&sh->n_label_sets, 1);
    if (from) {
        uint32_t n = atomic_load_explicit(&from->n_label_sets, memory_order_acquire);
        memcpy(sh->label_sets, from->label_sets, n * sizeof(sh->label_sets[0]));
        memcpy(sh->label_pool, from->label_pool, from->label_pool_used);
        sh->label_pool_used = from->label_pool_used;
        atomic_store(&sh->n_label_sets, n);
    }
    return sh;
}

/* The region this process may write to, created when there is none (first use, or a
 * forked child holding its parent's). With label_mu held. */
static struct fg__shared *region_own_locked(void)
{
    if (!fg__shm || fg__shm->owner != getpid()) {
        struct fg__shared *sh = region_new_locked(fg__shm);
        if (sh)
            fg__shm = sh; /* an inherited region stays mapped: it is the parent's memory too */
    }
    return fg__shm && fg__shm->owner == getpid() ? fg__shm : NULL;
}

/* A region for a new start: this process's own when no helper was started for it yet, or
 * emptied when its helper is known to be gone; else a new one (a helper that never
 * reported, or one that outlived its stop). Regions are never unmapped: a late signal may
 * still write to one. With label_mu held and the samplers stopped. */
static struct fg__shared *region_for_start_locked(void)
{
    struct fg__shared *sh = region_own_locked();
    if (!sh || !sh->spawned)
        return sh;
    if (!atomic_load(&sh->helper_pid) || helper_alive(sh)) {
        struct fg__shared *fresh = region_new_locked(sh);
        if (fresh)
            fg__shm = fresh;
        return fresh;
    }
    fg__cpu_ring_init(sh); /* first: it reads how far the ring was used */
    size_t head = offsetof(struct fg__shared, ring);
    memset((char *)sh + offsetof(struct fg__shared, doorbell), 0,
           head - offsetof(struct fg__shared, doorbell));
    atomic_store(&sh->heap_dropped, 0);
    atomic_store(&sh->n_sites, 0);
    return sh;
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
    /* The child has only the forking thread, no sampler, and its parent's region (written
     * to by the parent only: the child's labels and samples go to a region of its own). It
     * runs unprofiled (or restarts later, with FLAMEGATE_FOLLOW_FORK). Nothing here may
     * allocate. */
    if (A.running && A.cfg.follow_fork)
        fg__heap_request_fork_restart();
    fg__heap_atfork_child();
    fg__cpu_forget();
    pthread_mutex_init(&label_mu, NULL);
    pthread_mutex_init(&A.mu, NULL);
    pthread_mutex_init(&heap_api_mu, NULL); /* the child's heap API answers "stopped" */
    A.running = false;
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* ---- API ---- */

static void note_exe(void)
{
    struct stat st;
    A.exe_ino = 0;
    if (stat("/proc/self/exe", &st) == 0) {
        A.exe_dev = st.st_dev;
        A.exe_ino = st.st_ino;
    }
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
    A.sender_stop = false; /* for the helper forked next */
    A.pid = getpid();
    pthread_mutex_unlock(&A.mu);
    pthread_once(&atfork_once, register_atfork);
    note_exe();
    pthread_mutex_lock(&label_mu);
    struct fg__shared *sh = region_for_start_locked();
    pthread_mutex_unlock(&label_mu);
    if (!sh) {
        rc = fg_err_set(&err, FG_ENOMEM, "cannot map the agent's shared region: %s",
                        strerror(errno));
        goto undo;
    }
    /* The helper first: it then holds no sampler state of the program's. */
    if ((rc = spawn_helper(sh, &err)))
        goto undo;
    if (A.cfg.profiles & FG_AGENT_PROFILE_HEAP) {
        if ((rc = fg__heap_start(A.cfg.heap_sample_bytes))) {
            fg_err_set(&err, rc, "heap profiler: the allocator cannot be interposed");
            goto undo_helper;
        }
    }
    /* A sampler that cannot start leaves nothing to undo but the heap profiler and the
     * helper, and no upload is made. */
    if ((A.cfg.profiles & FG_AGENT_PROFILE_CPU) &&
        (rc = fg__cpu_start(A.cfg.cpu_hz, A.cfg.cpu_sampler, &err)))
        goto undo_heap;
    pthread_mutex_lock(&A.mu);
    A.running = true;
    pthread_mutex_unlock(&A.mu);
    return 0;
undo_heap:
    fg__heap_stop();
undo_helper:
    stop_helper(sh, FG__STOP_DISCARD);
undo:
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
    /* The parent's settings (immutable while it ran), in memory the child now owns. */
    struct fg__agent_settings s = A.cfg;
    memset(&A.cfg, 0, sizeof(A.cfg));
    fg__cpu_forget_parent();
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
    stop_helper(fg__shm, FG__STOP_UPLOAD);
    fg__agent_settings_clear(&A.cfg);
    fg__tls_guard--;
}

EXPORT int fg_agent_flush(void)
{
    pthread_mutex_lock(&A.mu);
    bool on = A.running && A.pid == getpid();
    pthread_mutex_unlock(&A.mu);
    if (!on)
        return FG_ESTOPPED;
    struct fg__shared *sh = fg__shm;
    uint32_t ticket = atomic_fetch_add(&sh->flush_req, 1) + 1;
    ring_doorbell(sh);
    uint32_t done;
    while ((int32_t)((done = atomic_load(&sh->flush_done)) - ticket) < 0) {
        if (!helper_alive(sh))
            return FG_ESTOPPED;
        futex_wait_ms(&sh->flush_done, done, 100);
    }
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
    if ((rc = fg__sym_new(&sym, 0)) || (rc = fg_profiles_new(&b.p)))
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

/* A label set being built: key, value pairs sorted by key (strings of the pool or the
 * caller's). */
struct label_draft {
    uint32_t n;
    const char *kv[2 * FG__MAX_LABELS];
};

static bool label_set_is(const struct fg__shared *sh, const struct fg__label_set *ls,
                         const struct label_draft *d)
{
    if (ls->n != d->n)
        return false;
    for (uint32_t i = 0; i < 2 * d->n; i++)
        if (strcmp(sh->label_pool + ls->kv[i], d->kv[i]) != 0)
            return false;
    return true;
}

/* The pool offset of str: where it already is, or a new copy; UINT32_MAX when full. */
static uint32_t label_pool_offset(struct fg__shared *sh, const char *str)
{
    if (str >= sh->label_pool && str < sh->label_pool + sh->label_pool_used)
        return (uint32_t)(str - sh->label_pool);
    size_t len = strlen(str) + 1;
    if (len > FG__LABEL_POOL - sh->label_pool_used)
        return UINT32_MAX;
    uint32_t off = sh->label_pool_used;
    memcpy(sh->label_pool + off, str, len);
    sh->label_pool_used += (uint32_t)len;
    return off;
}

static int label_draft_add(struct label_draft *d, const char *key, const char *value)
{
    if (d->n >= FG__MAX_LABELS)
        return FG_EFULL;
    d->kv[2 * d->n] = key;
    d->kv[2 * d->n + 1] = value;
    d->n++;
    return 0;
}

EXPORT int fg_agent_set_label(const char *key, const char *value)
{
    if (!key || !key[0])
        return FG_EINVAL;
    int rc = 0;
    fg__tls_guard++;
    pthread_mutex_lock(&label_mu);
    struct fg__shared *sh = region_own_locked();
    if (!sh) {
        rc = FG_ENOMEM;
        goto out;
    }
    uint32_t n_sets = atomic_load_explicit(&sh->n_label_sets, memory_order_relaxed);
    struct label_draft next = {0};
    const struct fg__label_set *cur =
        fg__tls_labels < n_sets ? &sh->label_sets[fg__tls_labels] : NULL;
    bool placed = false;
    for (uint32_t i = 0; cur && i < cur->n && !rc; i++) {
        const char *k = sh->label_pool + cur->kv[2 * i], *v = sh->label_pool + cur->kv[2 * i + 1];
        int c = strcmp(k, key);
        if (c > 0 && !placed && value) {
            rc = label_draft_add(&next, key, value);
            placed = true;
        }
        if (c == 0) {
            if (value)
                rc = rc ? rc : label_draft_add(&next, key, value);
            placed = true;
        } else if (!rc) {
            rc = label_draft_add(&next, k, v);
        }
    }
    if (!rc && !placed && value)
        rc = label_draft_add(&next, key, value);
    if (rc || next.n == 0) {
        if (!rc)
            fg__tls_labels = 0;
        goto out;
    }
    for (uint32_t i = 1; i < n_sets; i++)
        if (label_set_is(sh, &sh->label_sets[i], &next)) {
            fg__tls_labels = i;
            goto out;
        }
    if (n_sets >= FG__MAX_LABEL_SETS) {
        rc = FG_EFULL;
        goto out;
    }
    /* Published sets never change: threads (and the helper) may read them at any time. */
    struct fg__label_set *ls = &sh->label_sets[n_sets];
    uint32_t pool_mark = sh->label_pool_used;
    for (uint32_t i = 0; i < 2 * next.n; i++) {
        if ((ls->kv[i] = label_pool_offset(sh, next.kv[i])) == UINT32_MAX) {
            sh->label_pool_used = pool_mark;
            rc = FG_EFULL;
            goto out;
        }
    }
    ls->n = next.n;
    atomic_store_explicit(&sh->n_label_sets, n_sets + 1, memory_order_release);
    fg__tls_labels = n_sets;
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
