/* CPU sampler: a per-thread POSIX CPU-time timer, a per-thread perf_event task-clock event
 * or one CLOCK_PROCESS_CPUTIME_ID timer raises SIGPROF; the handler walks the frame pointers
 * of the interrupted thread (bounds-checked against its stack) into a lock-free ring in the
 * shared region, which the agent's helper process drains. */
#include "agent_internal.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* Upper end of the calling thread's stack, 0 when unknown (then only the leaf is kept). */
static FG__TLS uintptr_t tls_stack_hi;
static FG__TLS uint32_t tls_tid;

static uint64_t ring_tail; /* the helper's */
/* Set (release) after fg__shm points at the region the handler writes to. */
static _Atomic int cpu_active;
/* Which sampler raises the signals (FG__SAMPLER_PERF, _TIMER or _THREAD_TIMER): the
 * handler takes only that sampler's signals (si_code POLL_IN/POLL_HUP vs SI_TIMER). */
static _Atomic int cpu_mode;
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

static struct fg__ring_slot *ring_claim(struct fg__shared *sh, uint64_t *pos_out)
{
    uint64_t pos = atomic_load_explicit(&sh->ring_head, memory_order_relaxed);
    for (;;) {
        struct fg__ring_slot *s = &sh->ring[pos & (FG__RING_SLOTS - 1)];
        uint64_t seq = atomic_load_explicit(&s->seq_off, memory_order_acquire) +
                       (pos & (FG__RING_SLOTS - 1));
        int64_t d = (int64_t)(seq - pos);
        if (d == 0) {
            if (atomic_compare_exchange_weak_explicit(&sh->ring_head, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *pos_out = pos;
                return s;
            }
        } else if (d < 0) {
            return NULL; /* full: the helper is behind (or gone) */
        } else {
            pos = atomic_load_explicit(&sh->ring_head, memory_order_relaxed);
        }
    }
}

/* Async-signal-safe: atomics, plain loads from the checked stack range, no calls into libc
 * other than syscall(gettid) once per thread. */
static void on_sigprof(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    if (!atomic_load_explicit(&cpu_active, memory_order_acquire) || !si)
        return;
    /* Only the active sampler's signals count: a SIGPROF sent with kill(), or one from the
     * other sampler, is not a period of CPU time. */
    int mode = atomic_load_explicit(&cpu_mode, memory_order_relaxed);
    uint32_t weight = 1;
    if (si->si_code == SI_TIMER) {
        if (mode != FG__SAMPLER_TIMER && mode != FG__SAMPLER_THREAD_TIMER)
            return;
        if (si->si_overrun > 0)
            weight += (uint32_t)si->si_overrun;
    } else if (si->si_code == POLL_IN || si->si_code == POLL_HUP) {
        /* one task-clock overflow = one period of this thread's CPU time */
        if (mode != FG__SAMPLER_PERF)
            return;
    } else {
        return;
    }
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
    struct fg__shared *sh = fg__shm;
    struct fg__ring_slot *s = ring_claim(sh, &pos);
    if (!s) {
        atomic_fetch_add_explicit(&sh->ring_dropped, 1, memory_order_relaxed);
        errno = saved_errno;
        return;
    }
    struct fg__stack_rec *r = &s->rec;
    r->tid = current_tid();
    r->labels = fg__tls_labels;
    r->weight = weight;
    r->pcs[0] = pc;
    r->n = 1;
    if (tls_stack_hi)
        r->n += fg__fp_walk(fp, sp, tls_stack_hi, r->pcs + 1, FG__MAX_FRAMES - 1);
    atomic_store_explicit(&s->seq_off, pos + 1 - (pos & (FG__RING_SLOTS - 1)),
                          memory_order_release);
    errno = saved_errno;
}

void fg__cpu_ring_init(struct fg__shared *sh)
{
    uint64_t used = atomic_load(&sh->ring_head);
    memset(sh->ring, 0, FG_MIN(used, (uint64_t)FG__RING_SLOTS) * sizeof(sh->ring[0]));
    atomic_store(&sh->ring_head, 0);
}

size_t fg__cpu_drain(struct fg__shared *sh, void (*fn)(void *ctx, const struct fg__stack_rec *r),
                     void *ctx)
{
    size_t n = 0;
    for (;;) {
        uint64_t k = ring_tail & (FG__RING_SLOTS - 1);
        struct fg__ring_slot *s = &sh->ring[k];
        uint64_t seq = atomic_load_explicit(&s->seq_off, memory_order_acquire) + k;
        if (seq != ring_tail + 1)
            break; /* empty, or a producer has not published yet */
        fn(ctx, &s->rec);
        atomic_store_explicit(&s->seq_off, ring_tail + FG__RING_SLOTS - k, memory_order_release);
        ring_tail++;
        n++;
    }
    return n;
}

/* ---- per-thread samplers: one task-clock perf event or one CPU-time timer per thread ----
 *
 * Both share the bookkeeping below: a table of (thread, event) filled by the
 * pthread_create trampoline and a /proc/self/task scan at start, emptied at thread exit,
 * by reaping when a thread starts, at stop and in a forked child. */

/* Why task-clock and not cpu-clock: both are hrtimer-driven and, as per-thread events, tick
 * only while the thread runs; task-clock is defined as the thread's own run time (the
 * same quantity as CLOCK_THREAD_CPUTIME_ID, which agent_burn measures), cpu-clock as the
 * CPU's clock while the event is scheduled in. Either is exact to the hrtimer resolution,
 * not to the scheduler tick. */

struct thread_event {
    pid_t tid;
    int fd;        /* perf: the event; -1 for a timer */
    timer_t timer; /* thread-timer */
    bool own;      /* opened by the thread itself, which closes it when it exits */
    uint64_t id;   /* the kernel's event id: the fd is closed only while it still holds it */
};

/* Guards the table and the perf_* settings; never taken in the signal handler. */
static pthread_mutex_t events_mu = PTHREAD_MUTEX_INITIALIZER;
static struct thread_event *events; /* mmap'd: no allocator calls from user threads */
static size_t n_events, cap_events;
static _Atomic int per_thread_on; /* new threads open their own event */
static int per_thread_mode;       /* FG__SAMPLER_PERF or _THREAD_TIMER */
static long perf_period_ns;       /* both: the sampling period in thread CPU time */
static int perf_exclude_kernel;
static long perf_fd_ceiling; /* an fd at or above it is refused: leave the program room */
static pthread_key_t thread_exit_key;
static pthread_once_t thread_exit_once = PTHREAD_ONCE_INIT;
static bool have_thread_exit_key;

static pid_t gettid_raw(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* Opens a task-clock sampling event on thread tid whose overflows send SIGPROF to that
 * thread. Returns the fd (and the event's id in *id) or -errno. */
static int perf_event_for(pid_t tid, uint64_t *id)
{
    struct perf_event_attr pa;
    memset(&pa, 0, sizeof(pa));
    pa.size = sizeof(pa);
    pa.type = PERF_TYPE_SOFTWARE;
    pa.config = PERF_COUNT_SW_TASK_CLOCK;
    pa.sample_period = (uint64_t)perf_period_ns;
    pa.disabled = 1;
    pa.exclude_kernel = (unsigned)perf_exclude_kernel;
    pa.exclude_hv = 1;
    /* No ring buffer and no event_limit: the kernel queues a fasync signal (POLL_IN) on
     * every overflow and the event stays enabled, so nothing needs re-arming. */
    int fd = (int)syscall(SYS_perf_event_open, &pa, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0 && errno == EACCES && !pa.exclude_kernel) {
        /* perf_event_paranoid >= 2 without CAP_PERFMON: user time only. Kernel time is then
         * not sampled at all (a sample would need a user-mode tick). */
        pa.exclude_kernel = 1;
        fd = (int)syscall(SYS_perf_event_open, &pa, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
        if (fd >= 0)
            perf_exclude_kernel = 1;
    }
    if (fd < 0)
        return -errno;
    if (perf_fd_ceiling > 0 && fd >= perf_fd_ceiling) {
        close(fd);
        return -EMFILE;
    }
    struct f_owner_ex owner = {F_OWNER_TID, tid};
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_ASYNC) != 0 || fcntl(fd, F_SETSIG, SIGPROF) != 0 ||
        fcntl(fd, F_SETOWN_EX, &owner) != 0 || ioctl(fd, PERF_EVENT_IOC_ID, id) != 0 ||
        ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* Linux's clock id for thread tid's CPU time (include/linux/posix-timers.h:
 * MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED), i.e. (~tid << 3) | 6, written as a multiply
 * because shifting a negative value is undefined in C). Valid for threads of this process. */
static clockid_t thread_cpu_clock(pid_t tid)
{
    return (clockid_t)((~(clockid_t)tid) * 8) | 6; /* CPUCLOCK_PERTHREAD_MASK | _SCHED */
}

/* Arms a CPU-time timer on thread tid (self: the calling thread) that sends SIGPROF to that
 * thread every perf_period_ns of its CPU time. Returns 0 or -errno. */
static int thread_timer_for(pid_t tid, bool self, timer_t *out)
{
    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGPROF;
    sev.sigev_notify_thread_id = tid;
    if (timer_create(self ? CLOCK_THREAD_CPUTIME_ID : thread_cpu_clock(tid), &sev, out) != 0)
        return -errno;
    struct itimerspec its = {
        .it_interval = {perf_period_ns / 1000000000L, perf_period_ns % 1000000000L},
        .it_value = {perf_period_ns / 1000000000L, perf_period_ns % 1000000000L},
    };
    if (timer_settime(*out, 0, &its, NULL) != 0) {
        int e = errno;
        timer_delete(*out);
        return -e;
    }
    return 0;
}

/* A program may have closed the fd (daemons close every fd) and reused the number: close
 * it only while it is still our event. Timer ids cannot be taken over that way. */
static void event_close(const struct thread_event *e)
{
    uint64_t id;
    if (e->fd < 0)
        timer_delete(e->timer);
    else if (ioctl(e->fd, PERF_EVENT_IOC_ID, &id) == 0 && id == e->id)
        close(e->fd);
}

static struct thread_event *event_find_locked(pid_t tid)
{
    for (size_t i = 0; i < n_events; i++)
        if (events[i].tid == tid)
            return &events[i];
    return NULL;
}

static bool events_reserve_locked(void)
{
    if (n_events < cap_events)
        return true;
    size_t ncap = cap_events ? 2 * cap_events : 256;
    void *m = events ? mremap(events, cap_events * sizeof(*events), ncap * sizeof(*events),
                              MREMAP_MAYMOVE)
                     : mmap(NULL, ncap * sizeof(*events), PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return false;
    events = m;
    cap_events = ncap;
    return true;
}

/* Gives tid an event. own: the caller is thread tid itself (a fresh thread: an entry for
 * its tid can only be a dead thread's, or one the start-up scan just made; replace it). */
static int event_attach_locked(pid_t tid, bool own)
{
    struct thread_event *e = event_find_locked(tid);
    if (e && !own)
        return 0;
    if (e) {
        event_close(e);
        *e = events[--n_events];
    }
    struct thread_event ne = {.tid = tid, .fd = -1, .own = own};
    int rc = -ENOMEM;
    if (events_reserve_locked()) {
        if (per_thread_mode == FG__SAMPLER_PERF)
            rc = ne.fd = perf_event_for(tid, &ne.id);
        else
            rc = thread_timer_for(tid, own || tid == gettid_raw(), &ne.timer);
    }
    if (rc < 0) {
        atomic_fetch_add(&fg__shm->unsampled_threads, 1);
        return rc;
    }
    events[n_events++] = ne;
    return 0;
}

static void event_detach_locked(pid_t tid)
{
    struct thread_event *e = event_find_locked(tid);
    if (e) {
        event_close(e);
        *e = events[--n_events];
    }
}

static void events_close_all_locked(void)
{
    for (size_t i = 0; i < n_events; i++)
        event_close(&events[i]);
    n_events = 0;
}

/* pthread key destructor: runs when a thread started through pthread_create exits (by
 * return, pthread_exit or cancellation). */
static void on_thread_exit(void *unused)
{
    (void)unused;
    if (!atomic_load_explicit(&per_thread_on, memory_order_acquire))
        return;
    pid_t tid = gettid_raw();
    pthread_mutex_lock(&events_mu);
    event_detach_locked(tid);
    pthread_mutex_unlock(&events_mu);
}

static void make_thread_exit_key(void)
{
    have_thread_exit_key = pthread_key_create(&thread_exit_key, on_thread_exit) == 0;
}

/* An event opened for a thread that did not start through pthread_create has nobody to
 * close it when the thread exits: each new thread drops those whose thread is gone. */
static void reap_exited_locked(void)
{
    pid_t pid = getpid();
    for (size_t i = 0; i < n_events;) {
        if (!events[i].own && syscall(SYS_tgkill, pid, events[i].tid, 0) != 0 &&
            errno == ESRCH) {
            event_close(&events[i]);
            events[i] = events[--n_events];
        } else {
            i++;
        }
    }
}

/* Called at the start of every thread created through pthread_create. */
static void thread_begin(void)
{
    pthread_once(&thread_exit_once, make_thread_exit_key);
    if (have_thread_exit_key) {
        fg__tls_guard++; /* a high key's storage is allocated: not the program's */
        pthread_setspecific(thread_exit_key, (void *)1);
        fg__tls_guard--;
    }
    if (!atomic_load_explicit(&per_thread_on, memory_order_acquire))
        return;
    pid_t tid = gettid_raw();
    pthread_mutex_lock(&events_mu);
    if (atomic_load_explicit(&per_thread_on, memory_order_relaxed)) {
        reap_exited_locked();
        event_attach_locked(tid, true);
    }
    pthread_mutex_unlock(&events_mu);
}

/* Threads that were running before the sampler started (the main thread, threads created
 * before the agent loaded or while it was stopped) get an event opened on their behalf. */
static void attach_existing_threads_locked(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return;
    for (struct dirent *de; (de = readdir(d));) {
        char *end;
        long tid = strtol(de->d_name, &end, 10);
        if (tid > 0 && !*end)
            event_attach_locked((pid_t)tid, false);
    }
    closedir(d);
}

static long fd_ceiling(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    long cur = (long)rl.rlim_cur, keep = cur / 8 > 32 ? cur / 8 : 32;
    return cur > keep ? cur - keep : 1;
}

/* Starts a per-thread sampler (mode PERF or THREAD_TIMER): the calling thread's event
 * decides whether it works here. */
static int per_thread_start(int mode, int hz, struct fg_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&events_mu);
    per_thread_mode = mode;
    perf_period_ns = 1000000000L / hz;
    perf_exclude_kernel = 0;
    perf_fd_ceiling = fd_ceiling();
    atomic_store(&fg__shm->unsampled_threads, 0);
    int e = event_attach_locked(gettid_raw(), false);
    if (e < 0) {
        rc = fg_err_set(err, FG_EUNSUPPORTED, "%s: %s",
                        mode == FG__SAMPLER_PERF ? "perf_event_open(task-clock)"
                                                 : "timer_create(CLOCK_THREAD_CPUTIME_ID)",
                        strerror(-e));
        atomic_store(&fg__shm->unsampled_threads, 0); /* the fallback covers every thread */
        goto out;
    }
    atomic_store(&per_thread_on, 1);
    attach_existing_threads_locked();
out:
    pthread_mutex_unlock(&events_mu);
    return rc;
}

static void per_thread_stop(void)
{
    pthread_mutex_lock(&events_mu);
    atomic_store(&per_thread_on, 0);
    events_close_all_locked();
    pthread_mutex_unlock(&events_mu);
}

/* ---- timer sampler: one process CPU-time timer ---- */

static int timer_start(int hz, struct fg_err *err)
{
    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGPROF;
    if (timer_create(CLOCK_PROCESS_CPUTIME_ID, &sev, &cpu_timer) != 0)
        return fg_err_set(err, FG_EIO, "timer_create(CLOCK_PROCESS_CPUTIME_ID): %s",
                          strerror(errno));
    long period_ns = 1000000000L / hz;
    struct itimerspec its = {
        .it_interval = {period_ns / 1000000000L, period_ns % 1000000000L},
        .it_value = {period_ns / 1000000000L, period_ns % 1000000000L},
    };
    if (timer_settime(cpu_timer, 0, &its, NULL) != 0) {
        int e = errno;
        timer_delete(cpu_timer);
        return fg_err_set(err, FG_EIO, "timer_settime: %s", strerror(e));
    }
    timer_armed = true;
    return 0;
}

static void restore_handler(void)
{
    if (!handler_installed)
        return;
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

int fg__cpu_start(int hz, enum fg__cpu_sampler want, struct fg_err *err)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigprof;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPROF, &sa, &old_action) != 0)
        return fg_err_set(err, FG_EIO, "sigaction(SIGPROF): %s", strerror(errno));
    handler_installed = true;

    /* auto: per-thread timers up to the rate the scheduler tick can deliver (they cost
     * ~7 us a sample against perf's ~75 us, and attribute threads on every kernel); perf's
     * hrtimer above it. The process-wide timer only when asked for. */
    enum fg__cpu_sampler order[2] = {want, FG__SAMPLER_AUTO};
    if (want == FG__SAMPLER_AUTO) {
        bool tick_rate = hz <= FG__TICK_BOUND_HZ;
        order[0] = tick_rate ? FG__SAMPLER_THREAD_TIMER : FG__SAMPLER_PERF;
        order[1] = tick_rate ? FG__SAMPLER_PERF : FG__SAMPLER_THREAD_TIMER;
    }
    int rc = FG_EUNSUPPORTED;
    for (int i = 0; i < 2 && rc && order[i] != FG__SAMPLER_AUTO; i++) {
        atomic_store(&cpu_mode, order[i]);
        atomic_store(&fg__shm->cpu_sampler, order[i]);
        atomic_store(&cpu_active, 1); /* after fg__shm: the handler reads it next */
        rc = order[i] == FG__SAMPLER_TIMER ? timer_start(hz, err)
                                           : per_thread_start(order[i], hz, err);
    }
    if (rc && want != FG__SAMPLER_AUTO)
        fg_err_prefix(err, "FLAMEGATE_CPU_SAMPLER=%s", fg__cpu_sampler_name(want));
    if (rc) {
        atomic_store(&cpu_active, 0);
        restore_handler();
    }
    return rc;
}

const char *fg__cpu_sampler_name(enum fg__cpu_sampler s)
{
    static const char *const names[] = {"auto", "perf", "timer", "thread-timer"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

void fg__cpu_stop(void)
{
    atomic_store(&cpu_active, 0);
    per_thread_stop();
    if (timer_armed) {
        timer_delete(cpu_timer);
        timer_armed = false;
    }
    restore_handler();
}

void fg__cpu_atfork_prepare(void)
{
    pthread_mutex_lock(&events_mu);
}

void fg__cpu_atfork_parent(void)
{
    pthread_mutex_unlock(&events_mu);
}

void fg__cpu_forget(void)
{
    /* POSIX timers are not inherited by fork, perf events are not either (no inherit bit),
     * but the child holds copies of the parent's event fds: keeping them would keep the
     * events alive, and signalling the parent's threads, after the parent closes its own.
     * The handler stays but does nothing. */
    atomic_store(&cpu_active, 0);
    atomic_store(&per_thread_on, 0);
    if (per_thread_mode == FG__SAMPLER_PERF)
        events_close_all_locked();
    n_events = 0; /* the parent's timer ids name nothing here */
    pthread_mutex_init(&events_mu, NULL);
    timer_armed = false;
    tls_tid = 0;
}

void fg__cpu_forget_parent(void)
{
    /* The child's samples go to a region of its own; the parent's handler setting stays
     * the parent's. */
    restore_handler(); /* so that the restart saves the program's action, not ours */
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
    thread_begin();
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
