/* Internals shared by the agent's files: the stack record the SIGPROF handler fills, the
 * region shared with the helper process, the CPU sampler, the heap profiler, the
 * symbolizer, the profile builder and the HTTP client. */
#ifndef FG_AGENT_INTERNAL_H
#define FG_AGENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "fg_agent.h"
#include "fg_common.h"

#define FG__TLS _Thread_local __attribute__((tls_model("initial-exec")))

/* CLOCK_MONOTONIC in ms: the same clock in the program and its helper. */
static inline long long fg__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
#define FG__MAX_FRAMES 64

/* One captured stack: leaf first. */
struct fg__stack_rec {
    uint32_t tid;
    uint32_t labels; /* label set id; 0 = no labels */
    uint32_t weight; /* periods this sample stands for (timer: 1 + overrun; perf: 1) */
    uint32_t n;
    uintptr_t pcs[FG__MAX_FRAMES];
};

#define FG__RING_SLOTS 4096u /* power of two: ~2 s of samples at 1000 Hz on two busy cores */
#define FG__MAX_LABEL_SETS 1024u
#define FG__MAX_LABELS 16u
#define FG__LABEL_POOL (256u << 10)
#define FG__MAX_SITES (1u << 16)

/* seq_off is the slot's sequence number minus its index, so that zeroed memory is an empty
 * ring: a ring costs pages only as far as samples reach. */
struct fg__ring_slot {
    _Atomic uint64_t seq_off;
    struct fg__stack_rec rec;
};

/* A thread's labels: key, value pairs sorted by key, as offsets into the label pool (so that
 * a forked child can copy the sets into a region of its own). */
struct fg__label_set {
    uint32_t n;
    uint32_t kv[2 * FG__MAX_LABELS];
};

struct fg__heap_site {
    uint32_t n;
    uintptr_t pcs[FG__MAX_FRAMES];
    double alloc_objs, alloc_bytes, inuse_objs, inuse_bytes;
};

enum fg__helper_state { FG__HELPER_STARTING, FG__HELPER_RUNNING, FG__HELPER_DONE };
enum fg__stop { FG__STOP_NO, FG__STOP_UPLOAD, FG__STOP_DISCARD };

/* The region the program's side writes (samples, heap sites, labels) and the agent's helper
 * process reads and answers through. MAP_SHARED and mapped before the helper is forked, so
 * it lies at the same address in both processes: pointers into it are valid in both. The
 * program's side never waits on the helper for anything but a flush or the final upload.
 * Only the ring and the counters are pre-touched; the rest costs pages when used. */
struct fg__shared {
    pid_t owner;  /* the profiled process */
    bool spawned; /* a helper was started for this region (by the owner) */
    /* requests (the program's side) and answers (the helper); the 32-bit ones are futexes */
    _Atomic uint32_t doorbell; /* bumped with every request */
    _Atomic uint32_t stop;     /* enum fg__stop */
    _Atomic uint32_t flush_req, flush_done;
    _Atomic uint32_t helper_state;
    _Atomic int32_t helper_pid;
    _Atomic long long exit_deadline_ms; /* CLOCK_MONOTONIC, the same in both processes */
    /* CPU sampler */
    _Atomic int cpu_sampler; /* enum fg__cpu_sampler that took the samples */
    _Atomic uint64_t ring_head, ring_dropped, unsampled_threads;
    struct fg__ring_slot ring[FG__RING_SLOTS];
    /* labels: sets [1, n_label_sets) are published in order and never change; [0] is empty */
    _Atomic uint32_t n_label_sets;
    uint32_t label_pool_used;
    struct fg__label_set label_sets[FG__MAX_LABEL_SETS];
    char label_pool[FG__LABEL_POOL];
    /* heap sites: [0, n_sites) published in order; their counters change in place */
    _Atomic uint64_t heap_dropped;
    _Atomic uint32_t n_sites;
    struct fg__heap_site sites[FG__MAX_SITES];
};

/* The region of the agent running in this process (or, in the helper, of the process it
 * serves); NULL before the first start. */
extern struct fg__shared *fg__shm;

/* Set on threads inside the agent (and on the agent's own threads): their allocations are
 * neither sampled nor counted. */
extern FG__TLS int fg__tls_guard;
/* The calling thread's label set (agent.c); read by the SIGPROF handler. */
extern FG__TLS volatile uint32_t fg__tls_labels;

/* ---- stacks (agent_cpu.c) ---- */

/* Records the calling thread's stack top so that frame walks can be bounds-checked. */
void fg__thread_note_stack(uintptr_t hi);
/* Walks the frame-pointer chain starting at fp; only reads inside [lo, hi). */
uint32_t fg__fp_walk(uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t *pcs, uint32_t max);
uintptr_t fg__thread_stack_hi(void);

/* ---- CPU sampler (agent_cpu.c) ---- */

enum fg__cpu_sampler {
    FG__SAMPLER_AUTO,         /* thread-timer up to FG__TICK_BOUND_HZ, else perf if allowed */
    FG__SAMPLER_PERF,         /* one task-clock perf event per thread (hrtimer-precise) */
    FG__SAMPLER_TIMER,        /* one process CPU-time timer (scheduler-tick-precise) */
    FG__SAMPLER_THREAD_TIMER, /* one CPU-time timer per thread (scheduler-tick-precise) */
};
/* The highest rate auto leaves to the tick-bound thread timers (CONFIG_HZ is usually 250). */
#define FG__TICK_BOUND_HZ 250

int fg__cpu_start(int hz, enum fg__cpu_sampler want, struct fg_err *err);
void fg__cpu_stop(void);
/* The FLAMEGATE_CPU_SAMPLER spelling of s ("thread-timer", ...). */
const char *fg__cpu_sampler_name(enum fg__cpu_sampler s);
/* Makes sh's ring empty again (a reused region, before any sampler writes to it). */
void fg__cpu_ring_init(struct fg__shared *sh);
/* The helper: moves every record published in sh's ring to fn; returns how many. */
size_t fg__cpu_drain(struct fg__shared *sh, void (*fn)(void *ctx, const struct fg__stack_rec *r),
                     void *ctx);
/* Around fork: the perf event table's lock. */
void fg__cpu_atfork_prepare(void);
void fg__cpu_atfork_parent(void);
/* After fork in the child: the timer and events are gone (their fds are closed); forget
 * them. */
void fg__cpu_forget(void);
/* Before the agent restarts in a forked child. */
void fg__cpu_forget_parent(void);

/* ---- heap profiler (agent_heap.c) ---- */

/* Starts sampling into fg__shm's site table (a new generation: blocks sampled before are
 * no longer counted when freed). */
int fg__heap_start(long sample_bytes);
void fg__heap_stop(void);
/* Copies every site of sh into a new array (free with fg__heap_snapshot_free). Reads
 * without a lock: counters may be mid-update by the program's threads (off by a sample). */
int fg__heap_snapshot(const struct fg__shared *sh, struct fg__heap_site **out, size_t *n);
void fg__heap_snapshot_free(struct fg__heap_site *sites);
void fg__heap_atfork_prepare(void);
void fg__heap_atfork_parent(void);
void fg__heap_atfork_child(void);
/* FLAMEGATE_FOLLOW_FORK: the atfork child handler asks for a restart (async-signal-safe: a
 * flag and the calling thread's countdown); the next allocation slow path outside the
 * agent calls fg__agent_fork_restart (agent.c). */
void fg__heap_request_fork_restart(void);
void fg__agent_fork_restart(void);
/* The allocator's untouched functions (resolved with dlsym(RTLD_NEXT)). */
void *fg__real_malloc(size_t n);
void *fg__real_calloc(size_t n, size_t size);
void *fg__real_realloc(void *p, size_t n);
void fg__real_free(void *p);

/* ---- symbolizer (agent_symbols.c) ---- */

struct fg__module {
    char *path;
    char build_id[41]; /* hex, "" when none */
    uintptr_t start, limit, offset, bias;
};

struct fg__frame {
    const struct fg__module *module; /* NULL when no module holds the pc */
    const char *func;                /* NULL when unknown */
};

struct fg__symbolizer;
/* A symbolizer of process pid: 0 is this process (its loader's module list); another pid
 * is read from /proc/PID/maps and the mapped files (the helper symbolizes its program). */
int fg__sym_new(struct fg__symbolizer **out, pid_t pid);
void fg__sym_free(struct fg__symbolizer *s);
/* Reloads the module list when libraries were loaded or unloaded since the last call (of
 * another process: reads its maps again; a lookup outside every module does too, at most
 * once a second). */
void fg__sym_refresh(struct fg__symbolizer *s);
/* Resolves pc (a return address when !leaf: pc - 1 is looked up). The strings stay valid
 * until fg__sym_free. */
void fg__sym_lookup(struct fg__symbolizer *s, uintptr_t pc, bool leaf, struct fg__frame *out);

/* ---- HTTP (agent_http.c) ---- */

struct fg__url {
    char host[256];
    char port[8];
    char path[512];
};

/* "http://host[:port][/prefix]" → host, port, prefix + "/v1development/profiles". */
int fg__url_parse(const char *base, struct fg__url *u, struct fg_err *err);
/* Checks "k=v,k2=v2" and turns it into "k: v\r\nk2: v2\r\n" (fg_free it). */
int fg__headers_parse(const char *spec, char **out, struct fg_err *err);
/* Lets another thread cut a POST short: it lowers deadline_ms (CLOCK_MONOTONIC ms) and
 * writes a byte to wake_fd, which the POST polls next to its socket. */
struct fg__http_cancel {
    int wake_fd;
    _Atomic long long deadline_ms;
};

/* One POST on a fresh connection; *status is the HTTP status. Never waits longer than
 * timeout_ms in total (nor past cancel's deadline; cancel may be NULL). */
int fg__http_post(const struct fg__url *u, const char *headers, const char *content_type,
                  const uint8_t *body, size_t len, int timeout_ms, int *status,
                  struct fg__http_cancel *cancel, struct fg_err *err);

#endif
