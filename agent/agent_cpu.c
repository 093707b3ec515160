/* CPU sampler: a CLOCK_PROCESS_CPUTIME_ID timer raises SIGPROF; the handler walks the frame
 * pointers of the interrupted thread (bounds-checked against its stack) into a lock-free
 * ring that the agent's collector thread drains. */
#include "agent_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define RING_SLOTS 4096u /* power of two: ~2 s of samples at 1000 Hz on two busy cores */

/* Upper end of the calling thread's stack, 0 when unknown (then only the leaf is kept). */
static FG__TLS uintptr_t tls_stack_hi;
static FG__TLS uint32_t tls_tid;

struct ring_slot {
    _Atomic uint64_t seq;
    struct fg__stack_rec rec;
};

static struct ring_slot *ring;
static _Atomic uint64_t ring_head;
static uint64_t ring_tail; /* collector only */
static _Atomic uint64_t ring_dropped;
static _Atomic int cpu_active;
static timer_t cpu_timer;
static bool timer_armed;
static struct sigaction old_action;
static bool handler_installed;

void fg__thread_note_stack(uintptr_t hi)
{
    tls_stack_hi = hi;
}

uintptr_t fg__thread_stack_hi(void)
{
    return tls_stack_hi;
}

uint32_t fg__fp_walk(uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t *pcs, uint32_t max)
{
    uint32_t n = 0;
    /* Every frame must lie above the previous one and inside [lo, hi): then reading it
     * touches only this thread's mapped stack, whatever garbage the register held. */
    while (n < max && fp >= lo && fp <= hi - 2 * sizeof(uintptr_t) && !(fp & 7)) {
        const uintptr_t *frame = (const uintptr_t *)fp;
        uintptr_t next = frame[0], ret = frame[1];
        if (ret < 4096)
            break;
        pcs[n++] = ret;
        if (next <= fp)
            break;
        fp = next;
    }
    return n;
}

static uint32_t current_tid(void)
{
    if (!tls_tid)
        tls_tid = (uint32_t)syscall(SYS_gettid);
    return tls_tid;
}

static struct ring_slot *ring_claim(uint64_t *pos_out)
{
    uint64_t pos = atomic_load_explicit(&ring_head, memory_order_relaxed);
    for (;;) {
        struct ring_slot *s = &ring[pos & (RING_SLOTS - 1)];
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        int64_t d = (int64_t)(seq - pos);
        if (d == 0) {
            if (atomic_compare_exchange_weak_explicit(&ring_head, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *pos_out = pos;
                return s;
            }
        } else if (d < 0) {
            return NULL; /* full: the collector is behind */
        } else {
            pos = atomic_load_explicit(&ring_head, memory_order_relaxed);
        }
    }
}

/* Async-signal-safe: atomics, plain loads from the checked stack range, no calls into libc
 * other than syscall(gettid) once per thread. */
static void on_sigprof(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    if (!atomic_load_explicit(&cpu_active, memory_order_relaxed))
        return;
    int saved_errno = errno;
    const ucontext_t *uc = ucv;
    uintptr_t pc, fp, sp;
#if defined(__x86_64__)
    pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
    sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    pc = (uintptr_t)uc->uc_mcontext.pc;
    fp = (uintptr_t)uc->uc_mcontext.regs[29];
    sp = (uintptr_t)uc->uc_mcontext.sp;
#else
#error "flamegate agent: unsupported architecture"
#endif
    uint64_t pos;
    struct ring_slot *s = ring_claim(&pos);
    if (!s) {
        atomic_fetch_add_explicit(&ring_dropped, 1, memory_order_relaxed);
        errno = saved_errno;
        return;
    }
    struct fg__stack_rec *r = &s->rec;
    r->tid = current_tid();
    r->labels = fg__tls_labels;
    r->weight = 1;
    if (si && si->si_code == SI_TIMER && si->si_overrun > 0)
        r->weight += (uint32_t)si->si_overrun;
    r->pcs[0] = pc;
    r->n = 1;
    if (tls_stack_hi)
        r->n += fg__fp_walk(fp, sp, tls_stack_hi, r->pcs + 1, FG__MAX_FRAMES - 1);
    atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
    errno = saved_errno;
}

size_t fg__cpu_drain(void (*fn)(void *ctx, const struct fg__stack_rec *r), void *ctx)
{
    size_t n = 0;
    if (!ring)
        return 0;
    for (;;) {
        struct ring_slot *s = &ring[ring_tail & (RING_SLOTS - 1)];
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (seq != ring_tail + 1)
            break; /* empty, or a producer has not published yet */
        fn(ctx, &s->rec);
        atomic_store_explicit(&s->seq, ring_tail + RING_SLOTS, memory_order_release);
        ring_tail++;
        n++;
    }
    return n;
}

uint64_t fg__cpu_dropped(void)
{
    return atomic_load(&ring_dropped);
}

int fg__cpu_start(int hz, struct fg_err *err)
{
    if (!ring) {
        /* mmap, not malloc: the ring lives for the rest of the process (a late signal may
         * still look at it) and must not show up in the heap profile. */
        void *m = mmap(NULL, sizeof(struct ring_slot) * RING_SLOTS, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return fg_err_set(err, FG_ENOMEM, "cannot map the sample ring: %s",
                              strerror(errno));
        ring = m;
        for (uint64_t i = 0; i < RING_SLOTS; i++)
            atomic_init(&ring[i].seq, i);
        atomic_init(&ring_head, 0);
        ring_tail = 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigprof;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPROF, &sa, &old_action) != 0)
        return fg_err_set(err, FG_EIO, "sigaction(SIGPROF): %s", strerror(errno));
    handler_installed = true;

    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGPROF;
    if (timer_create(CLOCK_PROCESS_CPUTIME_ID, &sev, &cpu_timer) != 0) {
        int e = errno;
        sigaction(SIGPROF, &old_action, NULL);
        handler_installed = false;
        return fg_err_set(err, FG_EIO, "timer_create(CLOCK_PROCESS_CPUTIME_ID): %s",
                          strerror(e));
    }
    long period_ns = 1000000000L / hz;
    struct itimerspec its = {
        .it_interval = {period_ns / 1000000000L, period_ns % 1000000000L},
        .it_value = {period_ns / 1000000000L, period_ns % 1000000000L},
    };
    atomic_store(&cpu_active, 1);
    if (timer_settime(cpu_timer, 0, &its, NULL) != 0) {
        int e = errno;
        atomic_store(&cpu_active, 0);
        timer_delete(cpu_timer);
        sigaction(SIGPROF, &old_action, NULL);
        handler_installed = false;
        return fg_err_set(err, FG_EIO, "timer_settime: %s", strerror(e));
    }
    timer_armed = true;
    return 0;
}

void fg__cpu_stop(void)
{
    atomic_store(&cpu_active, 0);
    if (timer_armed) {
        timer_delete(cpu_timer);
        timer_armed = false;
    }
    if (handler_installed) {
        /* A SIGPROF may still be pending; its default action would kill the process. */
        struct sigaction ign;
        memset(&ign, 0, sizeof(ign));
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        const struct sigaction *back = &old_action;
        if (!(old_action.sa_flags & SA_SIGINFO) && old_action.sa_handler == SIG_DFL)
            back = &ign;
        sigaction(SIGPROF, back, NULL);
        handler_installed = false;
    }
}

void fg__cpu_forget(void)
{
    /* POSIX timers are not inherited by fork; the handler stays but does nothing. */
    atomic_store(&cpu_active, 0);
    timer_armed = false;
    tls_tid = 0;
}

/* ---- pthread_create: record each new thread's stack top before user code runs ---- */

struct trampoline {
    void *(*fn)(void *);
    void *arg;
};

static void *thread_trampoline(void *arg)
{
    struct trampoline t = *(struct trampoline *)arg;
    fg__real_free(arg);
    /* Everything the user's function pushes lies below this frame, so its address is a
     * valid upper bound for the frame walk. */
    tls_stack_hi = (uintptr_t)__builtin_frame_address(0);
    return t.fn(t.arg);
}

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *),
                                 void *);

__attribute__((visibility("default"))) int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                   void *arg)
{
    static _Atomic(pthread_create_fn) real;
    pthread_create_fn f = atomic_load_explicit(&real, memory_order_acquire);
    if (!f) {
        f = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
        if (!f)
            return EAGAIN;
        atomic_store_explicit(&real, f, memory_order_release);
    }
    struct trampoline *t = fg__real_malloc(sizeof(*t));
    if (!t)
        return f(thread, attr, fn, arg);
    t->fn = fn;
    t->arg = arg;
    int rc = f(thread, attr, thread_trampoline, t);
    if (rc != 0)
        fg__real_free(t);
    return rc;
}
