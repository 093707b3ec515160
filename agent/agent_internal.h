/* Internals shared by the agent's files: the stack record the SIGPROF handler fills, the
 * CPU sampler, the heap profiler, the symbolizer, the profile builder and the HTTP client. */
#ifndef FG_AGENT_INTERNAL_H
#define FG_AGENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fg_agent.h"
#include "fg_common.h"

#define FG__TLS _Thread_local __attribute__((tls_model("initial-exec")))
#define FG__MAX_FRAMES 64

/* One captured stack: leaf first. */
struct fg__stack_rec {
    uint32_t tid;
    uint32_t labels; /* label set id; 0 = no labels */
    uint32_t weight; /* periods this sample stands for (timer: 1 + overrun; perf: 1) */
    uint32_t n;
    uintptr_t pcs[FG__MAX_FRAMES];
};

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
/* The sampler that fg__cpu_start chose (never AUTO). */
enum fg__cpu_sampler fg__cpu_sampler(void);
/* The FLAMEGATE_CPU_SAMPLER spelling of s ("thread-timer", ...). */
const char *fg__cpu_sampler_name(enum fg__cpu_sampler s);
/* Threads whose perf event or timer could not be opened (fd limit, ...): unsampled. */
uint64_t fg__cpu_unsampled_threads(void);
/* Closes the perf events or timers of threads that exited without passing through
 * pthread_create's exit path (threads the agent did not start); the collector calls it. */
void fg__cpu_reap(void);
/* Moves every published record to fn (called on the draining thread); returns how many. */
size_t fg__cpu_drain(void (*fn)(void *ctx, const struct fg__stack_rec *r), void *ctx);
/* Samples lost because the buffer was full. */
uint64_t fg__cpu_dropped(void);
/* Around fork: the perf event table's lock. */
void fg__cpu_atfork_prepare(void);
void fg__cpu_atfork_parent(void);
/* After fork in the child: the timer and events are gone (their fds are closed); forget
 * them. */
void fg__cpu_forget(void);
/* Before the agent restarts in a forked child: drops the parent's undrained samples and
 * counters. */
void fg__cpu_forget_parent(void);

/* ---- heap profiler (agent_heap.c) ---- */

struct fg__heap_site {
    uint32_t n;
    uintptr_t pcs[FG__MAX_FRAMES];
    double alloc_objs, alloc_bytes, inuse_objs, inuse_bytes;
};

int fg__heap_start(long sample_bytes);
void fg__heap_stop(void);
/* Copies every site into a new array (free with fg__heap_snapshot_free). */
int fg__heap_snapshot(struct fg__heap_site **out, size_t *n);
void fg__heap_snapshot_free(struct fg__heap_site *sites);
uint64_t fg__heap_dropped(void);
void fg__heap_atfork_prepare(void);
void fg__heap_atfork_parent(void);
void fg__heap_atfork_child(void);
/* FLAMEGATE_FOLLOW_FORK: the atfork child handler asks for a restart (async-signal-safe: a
 * flag and the calling thread's countdown); the next allocation slow path outside the
 * agent calls fg__agent_fork_restart (agent.c). */
void fg__heap_request_fork_restart(void);
void fg__agent_fork_restart(void);
/* Before the restart: the child's heap profile starts empty; blocks inherited from the
 * parent stay valid and their frees are not counted. */
void fg__heap_forget_parent(void);
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
int fg__sym_new(struct fg__symbolizer **out);
void fg__sym_free(struct fg__symbolizer *s);
/* Reloads the module list when libraries were loaded or unloaded since the last call. */
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
