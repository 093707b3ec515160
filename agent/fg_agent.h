/* libflamegate-agent: a CPU and heap profiler for native programs that ships OTLP profiles
 * to a flamegate gateway (or writes files). Preload it
 * (LD_PRELOAD=libflamegate-agent.so FLAMEGATE_ENDPOINT=http://127.0.0.1:4318 ./prog) or
 * link it and call fg_agent_start. The samplers run in the program; fg_agent_start forks a
 * helper process (a grandchild, not the program's child) that collects and uploads: the
 * program gets no thread of the agent's. Start it early: the helper is a copy-on-write
 * fork of the program as it is then.
 *
 * Threads: every function may be called from any thread; fg_agent_set_label affects only
 * the calling thread. Not async-signal-safe. */
#ifndef FG_AGENT_H
#define FG_AGENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FG_AGENT_PROFILE_CPU 1u
#define FG_AGENT_PROFILE_HEAP 2u

/* A zeroed field means "the default" (documented next to it). Strings are borrowed for the
 * duration of fg_agent_start only (the agent copies them). */
struct fg_agent_config {
    /* Base URL of the gateway, e.g. "http://127.0.0.1:4318"; the agent POSTs to
     * {endpoint}/v1development/profiles. Default "http://127.0.0.1:4318". */
    const char *endpoint;
    /* resource service.name; default "unknown_service:<program name>" */
    const char *service_name;
    /* Extra request headers "k1=v1,k2=v2" (values may be %-encoded), like
     * OTEL_EXPORTER_OTLP_HEADERS; default none. */
    const char *headers;
    /* "otlp" (default), "otlp-file:PATH" or "pprof-file:PATH"; file outputs write one file
     * per upload named PATH.<pid>.<seq>.<ext>. */
    const char *output;
    unsigned profiles;             /* FG_AGENT_PROFILE_* bits; default cpu|heap */
    int cpu_hz;                    /* 10..1000; default 99 */
    long heap_sample_bytes;        /* mean bytes between heap samples; default 524288 */
    long upload_interval_ms;       /* 100..3600000; default 10000 */
    /* CPU sampler: "auto" (default: "thread-timer" up to 250 Hz, above it perf_event if
     * allowed, else "thread-timer"), "thread-timer" (a CPU-time timer per thread), "perf"
     * (fail when perf_event_open is refused) or "timer" (one process CPU-time timer). */
    const char *cpu_sampler;
    /* 1: a child forked without exec restarts the agent in itself (own helper, own
     * profiles, its own pid, its own final upload); 0 (default): the child runs unprofiled. */
    int follow_fork;
};

/* Fills cfg from the FLAMEGATE_* environment variables (strings point into the
 * environment). Returns 0, or a negative FG_E* code with a message in errbuf. */
int fg_agent_config_from_env(struct fg_agent_config *cfg, char *errbuf, unsigned errlen);

/* Starts profiling with cfg (NULL = the environment). Returns 0 or a negative code (bad
 * value, already running, out of resources); the reason is printed on stderr. */
int fg_agent_start(const struct fg_agent_config *cfg);
/* Stops profiling and waits (at most a short timeout) for the agent's helper process to make
 * the final upload and end. A no-op when not running. */
void fg_agent_stop(void);
/* Builds and queues an upload now; returns when it was handed to the sender (not when it
 * was delivered). 0, or FG_ESTOPPED when the agent is not running (or its helper is
 * gone). */
int fg_agent_flush(void);
/* Sets (value != NULL) or removes (value == NULL) a label of the calling thread; CPU
 * samples taken on this thread carry every label as a sample attribute. */
int fg_agent_set_label(const char *key, const char *value);

/* Writes the heap profile sampled since fg_agent_start as one gzip'd pprof with Go's four
 * sample types (alloc_objects/count, alloc_space/bytes, inuse_objects/count,
 * inuse_space/bytes) by calling write one or more times; write returns 0, or nonzero to
 * abort. Returns 0, FG_ESTOPPED when the heap profiler is not running (the agent is not
 * started, or FLAMEGATE_PROFILES leaves heap out), or another negative code. Its own
 * allocations are not sampled. Found with dlsym(RTLD_DEFAULT, "fg_agent_heap_pprof") by a
 * program that wants to serve its heap profile only when the agent is preloaded. */
int fg_agent_heap_pprof(int (*write)(void *ctx, const void *data, size_t len), void *ctx);

#ifdef __cplusplus
}
#endif

#endif
