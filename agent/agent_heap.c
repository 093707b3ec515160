/* Heap profiler: interposes malloc & co., samples allocations with a Poisson process over
 * bytes (mean FLAMEGATE_HEAP_SAMPLE_BYTES), records the stack of each sampled block and
 * forgets it when it is freed. Calls made before dlsym found the real allocator are served
 * from a static bootstrap arena. */
#include "agent_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fg_hash.h"

#define EXPORT __attribute__((visibility("default")))
#define NOINLINE __attribute__((noinline))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

FG__TLS int fg__tls_guard;

/* ---- the real allocator ---- */

struct real_fns {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*malloc_usable_size)(void *);
};

static struct real_fns real;
static _Atomic int real_state; /* 0 unresolved, 1 resolving, 2 ready */
static _Atomic long boot_force; /* test knob: serve this many more calls from the arena */

/* ---- bootstrap arena: never freed; a 16-byte header keeps the block size ---- */

#define BOOT_SIZE (1u << 20)
static _Alignas(64) unsigned char boot_mem[BOOT_SIZE];
static _Atomic size_t boot_used;

static bool is_boot(const void *p)
{
    return (const unsigned char *)p >= boot_mem && (const unsigned char *)p < boot_mem + BOOT_SIZE;
}

static void *boot_alloc(size_t n, size_t align)
{
    if (align < 16)
        align = 16;
    if (n > BOOT_SIZE || (align & (align - 1)))
        return NULL;
    size_t old = atomic_load(&boot_used), start, end;
    do {
        start = (old + 16 + align - 1) & ~(align - 1);
        end = start + ((n + 15) & ~(size_t)15);
        if (end > BOOT_SIZE)
            return NULL;
    } while (!atomic_compare_exchange_weak(&boot_used, &old, end));
    memcpy(boot_mem + start - 16, &n, sizeof(n));
    return boot_mem + start; /* static storage: already zero */
}

static size_t boot_size(const void *p)
{
    size_t n;
    memcpy(&n, (const unsigned char *)p - 16, sizeof(n));
    return n;
}

/* Returns true when the real functions can be used; false while they are being resolved
 * (the caller then uses the bootstrap arena). */
static bool resolve(void)
{
    int st = atomic_load_explicit(&real_state, memory_order_acquire);
    if (LIKELY(st == 2))
        return true;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&real_state, &expect, 1))
        return false; /* another call (dlsym itself, or another thread) is resolving */
    struct real_fns r;
    r.malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    r.calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    r.realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    r.free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    r.posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    r.aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    r.memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
    r.valloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "valloc");
    r.pvalloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "pvalloc");
    r.malloc_usable_size = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    if (!r.malloc || !r.calloc || !r.realloc || !r.free) {
        /* Nothing to forward to: stay on the bootstrap arena (it will run out). */
        atomic_store(&real_state, 0);
        return false;
    }
    real = r;
    const char *force = getenv("FLAMEGATE_DEBUG_BOOTSTRAP");
    if (force) {
        long v = 0;
        for (const char *c = force; *c >= '0' && *c <= '9' && v < 100000; c++)
            v = v * 10 + (*c - '0');
        atomic_store(&boot_force, v);
    }
    atomic_store_explicit(&real_state, 2, memory_order_release);
    return true;
}

/* 1 once the real functions are known and no bootstrap use is forced: the fast path. */
static _Atomic int fast_ok;

static __attribute__((noinline)) bool use_boot_slow(void)
{
    if (!resolve())
        return true;
    if (atomic_load(&boot_force) > 0 && atomic_fetch_sub(&boot_force, 1) > 0)
        return true;
    atomic_store_explicit(&fast_ok, 1, memory_order_release);
    return false;
}

static inline __attribute__((always_inline)) bool use_boot(void)
{
    if (LIKELY(atomic_load_explicit(&fast_ok, memory_order_acquire)))
        return false;
    return use_boot_slow();
}

void *fg__real_malloc(size_t n)
{
    return resolve() ? real.malloc(n) : boot_alloc(n, 16);
}

void *fg__real_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return resolve() ? real.calloc(n, size) : boot_alloc(n * size, 16);
}

void *fg__real_realloc(void *p, size_t n)
{
    if (resolve() && !is_boot(p))
        return real.realloc(p, n);
    void *q = fg__real_malloc(n);
    if (q && p)
        memcpy(q, p, FG_MIN(n, boot_size(p)));
    return q;
}

void fg__real_free(void *p)
{
    if (p && !is_boot(p) && resolve())
        real.free(p);
}

/* ---- sampling state ---- */

#define ADDR_BUCKETS (1u << 16)
#define STRIPES 64u
#define MAX_SITES (1u << 16)

struct blk {
    struct blk *next;
    uintptr_t addr;
    uint32_t site;
    float weight;
    size_t size;
};

static _Atomic int heap_on;
static double sample_mean = 524288.0;
static struct blk *buckets[ADDR_BUCKETS];
/* One bit per bucket, set while it holds a block: 8 KiB that stay in the cache, so the
 * check every free() makes costs a load, not a cache miss. */
static _Atomic uint64_t bucket_bits[ADDR_BUCKETS / 64];
static _Atomic long live_blocks;
static pthread_mutex_t stripe_mu[STRIPES];
static pthread_once_t stripe_once = PTHREAD_ONCE_INIT;

/* Sites: the hash table maps a stack to its index in sites[]; guarded by site_mu. */
static pthread_mutex_t site_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fg__heap_site *sites;
static uint32_t n_sites, cap_sites;
static uint32_t *site_slots; /* index + 1; 0 = empty */
static uint32_t n_site_slots;
static _Atomic uint64_t heap_dropped;

static FG__TLS int64_t tls_bytes_left;
static FG__TLS bool tls_sampler_ready;
static FG__TLS uint64_t tls_rng;

static void stripes_init(void)
{
    for (unsigned i = 0; i < STRIPES; i++)
        pthread_mutex_init(&stripe_mu[i], NULL);
}

static uint32_t addr_bucket(uintptr_t a)
{
    return (uint32_t)(fg_hash_mix(0, a >> 4) & (ADDR_BUCKETS - 1));
}

static double next_uniform(void)
{
    /* xorshift64*: per thread, seeded from the thread id and the clock */
    if (!tls_rng) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        tls_rng = fg_hash_mix((uint64_t)syscall(SYS_gettid), (uint64_t)ts.tv_nsec) | 1;
    }
    tls_rng ^= tls_rng >> 12;
    tls_rng ^= tls_rng << 25;
    tls_rng ^= tls_rng >> 27;
    uint64_t v = tls_rng * 0x2545F4914F6CDD1DULL;
    return ((double)(v >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
}

static int64_t next_sample_point(void)
{
    double d = -log(next_uniform()) * sample_mean;
    return d < 1.0 ? 1 : (int64_t)d;
}

static uint64_t stack_hash(const uintptr_t *pcs, uint32_t n)
{
    return fg_hash_bytes(0x5eed, pcs, n * sizeof(uintptr_t));
}

/* With site_mu held. Returns the site index, or UINT32_MAX when the table is full. */
static uint32_t site_find_or_add(const uintptr_t *pcs, uint32_t n)
{
    if (!site_slots || n_sites * 2 >= n_site_slots) {
        if (n_sites >= MAX_SITES)
            goto lookup_only;
        uint32_t ns = n_site_slots ? n_site_slots * 2 : 1024;
        uint32_t *slots = real.calloc(ns, sizeof(*slots));
        if (!slots)
            goto lookup_only;
        for (uint32_t i = 0; i < n_sites; i++) {
            uint32_t h = (uint32_t)stack_hash(sites[i].pcs, sites[i].n) & (ns - 1);
            while (slots[h])
                h = (h + 1) & (ns - 1);
            slots[h] = i + 1;
        }
        real.free(site_slots);
        site_slots = slots;
        n_site_slots = ns;
    }
lookup_only:
    if (!site_slots)
        return UINT32_MAX;
    uint32_t h = (uint32_t)stack_hash(pcs, n) & (n_site_slots - 1);
    while (site_slots[h]) {
        struct fg__heap_site *s = &sites[site_slots[h] - 1];
        if (s->n == n && memcmp(s->pcs, pcs, n * sizeof(uintptr_t)) == 0)
            return site_slots[h] - 1;
        h = (h + 1) & (n_site_slots - 1);
    }
    if (n_sites >= MAX_SITES || n_sites * 2 >= n_site_slots)
        return UINT32_MAX;
    if (n_sites == cap_sites) {
        uint32_t nc = cap_sites ? cap_sites * 2 : 256;
        struct fg__heap_site *ns = real.realloc(sites, nc * sizeof(*ns));
        if (!ns)
            return UINT32_MAX;
        sites = ns;
        cap_sites = nc;
    }
    struct fg__heap_site *s = &sites[n_sites];
    memset(s, 0, sizeof(*s));
    s->n = n;
    memcpy(s->pcs, pcs, n * sizeof(uintptr_t));
    site_slots[h] = n_sites + 1;
    return n_sites++;
}

/* The caller of the interposed function is two frames up: capture → record → wrapper. */
static NOINLINE uint32_t capture(uintptr_t *pcs)
{
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t hi = fg__thread_stack_hi();
    uintptr_t all[FG__MAX_FRAMES + 2];
    if (!hi) {
        /* Unknown stack bounds: keep only what the compiler tells us for sure. */
        pcs[0] = (uintptr_t)__builtin_return_address(0);
        return 1;
    }
    uint32_t n = fg__fp_walk(fp, fp, hi, all, FG__MAX_FRAMES + 2);
    if (n <= 2)
        return 0;
    memcpy(pcs, all + 2, (n - 2) * sizeof(uintptr_t));
    return n - 2;
}

static NOINLINE void record(void *p, size_t size)
{
    if (!atomic_load_explicit(&heap_on, memory_order_relaxed) || fg__tls_guard) {
        /* Not sampling now: look again after about one mean's worth of bytes. */
        tls_bytes_left = (int64_t)sample_mean;
        return;
    }
    fg__tls_guard++;
    if (!tls_sampler_ready) {
        /* First allocation of this thread: start its Poisson process now. */
        tls_sampler_ready = true;
        tls_bytes_left = next_sample_point() - (int64_t)size;
        if (tls_bytes_left > 0)
            goto out;
    }
    tls_bytes_left = next_sample_point();
    uintptr_t pcs[FG__MAX_FRAMES];
    uint32_t n = capture(pcs);
    /* P(sampled) = 1 - exp(-size/mean); each sample stands for 1/P blocks. */
    double w = 1.0 / -expm1(-(double)size / sample_mean);
    struct blk *b = real.malloc(sizeof(*b));
    if (!b) {
        atomic_fetch_add(&heap_dropped, 1);
        goto out;
    }
    pthread_mutex_lock(&site_mu);
    uint32_t site = site_find_or_add(pcs, n);
    if (site != UINT32_MAX) {
        struct fg__heap_site *s = &sites[site];
        s->alloc_objs += w;
        s->alloc_bytes += w * (double)size;
        s->inuse_objs += w;
        s->inuse_bytes += w * (double)size;
    }
    pthread_mutex_unlock(&site_mu);
    if (site == UINT32_MAX) {
        real.free(b);
        atomic_fetch_add(&heap_dropped, 1);
        goto out;
    }
    b->addr = (uintptr_t)p;
    b->site = site;
    b->size = size;
    b->weight = (float)w;
    uint32_t bk = addr_bucket(b->addr);
    pthread_mutex_lock(&stripe_mu[bk % STRIPES]);
    b->next = buckets[bk];
    buckets[bk] = b;
    atomic_fetch_or(&bucket_bits[bk / 64], 1ull << (bk % 64));
    pthread_mutex_unlock(&stripe_mu[bk % STRIPES]);
    atomic_fetch_add(&live_blocks, 1);
out:
    fg__tls_guard--;
}

static inline __attribute__((always_inline)) void after_alloc(void *p, size_t size)
{
    /* The fast path is one thread-local subtraction; whether sampling is on at all, and
     * whether this thread is inside the agent, is checked only when the counter runs out. */
    if (UNLIKELY(!p))
        return;
    tls_bytes_left -= (int64_t)size;
    if (UNLIKELY(tls_bytes_left <= 0))
        record(p, size);
}

/* Must run before the block goes back to the allocator: afterwards another thread may get
 * the same address and sample it. */
static inline void before_free(void *p)
{
    if (LIKELY(atomic_load_explicit(&live_blocks, memory_order_relaxed) == 0))
        return;
    uint32_t bk = addr_bucket((uintptr_t)p);
    if (LIKELY(!(atomic_load_explicit(&bucket_bits[bk / 64], memory_order_relaxed) &
                 (1ull << (bk % 64)))))
        return;
    struct blk *found = NULL;
    pthread_mutex_lock(&stripe_mu[bk % STRIPES]);
    for (struct blk **pp = &buckets[bk]; *pp; pp = &(*pp)->next) {
        if ((*pp)->addr == (uintptr_t)p) {
            found = *pp;
            *pp = found->next;
            if (!buckets[bk])
                atomic_fetch_and(&bucket_bits[bk / 64], ~(1ull << (bk % 64)));
            break;
        }
    }
    pthread_mutex_unlock(&stripe_mu[bk % STRIPES]);
    if (!found)
        return;
    atomic_fetch_sub(&live_blocks, 1);
    pthread_mutex_lock(&site_mu);
    struct fg__heap_site *s = &sites[found->site];
    s->inuse_objs -= found->weight;
    s->inuse_bytes -= (double)found->weight * (double)found->size;
    pthread_mutex_unlock(&site_mu);
    real.free(found);
}

int fg__heap_start(long sample_bytes)
{
    pthread_once(&stripe_once, stripes_init);
    if (!resolve())
        return FG_EUNSUPPORTED;
    sample_mean = (double)sample_bytes;
    atomic_store(&heap_on, 1);
    return 0;
}

void fg__heap_stop(void)
{
    /* Blocks sampled so far stay tracked: their frees keep the tables consistent. */
    atomic_store(&heap_on, 0);
}

uint64_t fg__heap_dropped(void)
{
    return atomic_load(&heap_dropped);
}

int fg__heap_snapshot(struct fg__heap_site **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&site_mu);
    uint32_t count = n_sites;
    struct fg__heap_site *copy = NULL;
    if (count) {
        copy = real.malloc(count * sizeof(*copy));
        if (copy)
            memcpy(copy, sites, count * sizeof(*copy));
    }
    pthread_mutex_unlock(&site_mu);
    if (count && !copy)
        return FG_ENOMEM;
    *out = copy;
    *n = count;
    return 0;
}

void fg__heap_snapshot_free(struct fg__heap_site *s)
{
    if (s)
        real.free(s);
}

void fg__heap_atfork_prepare(void)
{
    pthread_once(&stripe_once, stripes_init);
    pthread_mutex_lock(&site_mu);
    for (unsigned i = 0; i < STRIPES; i++)
        pthread_mutex_lock(&stripe_mu[i]);
}

void fg__heap_atfork_parent(void)
{
    for (unsigned i = STRIPES; i-- > 0;)
        pthread_mutex_unlock(&stripe_mu[i]);
    pthread_mutex_unlock(&site_mu);
}

void fg__heap_atfork_child(void)
{
    /* The child is not profiled; its frees still find the blocks it inherited. */
    atomic_store(&heap_on, 0);
    for (unsigned i = 0; i < STRIPES; i++)
        pthread_mutex_init(&stripe_mu[i], NULL);
    pthread_mutex_init(&site_mu, NULL);
}

/* ---- the interposed functions ---- */

EXPORT void *malloc(size_t n)
{
    if (UNLIKELY(use_boot()))
        return boot_alloc(n, 16);
    void *p = real.malloc(n);
    after_alloc(p, n);
    return p;
}

EXPORT void free(void *p)
{
    if (!p || is_boot(p))
        return;
    if (UNLIKELY(!atomic_load_explicit(&fast_ok, memory_order_acquire)) && !resolve())
        return; /* only the arena can have handed out p */
    before_free(p);
    real.free(p);
}

EXPORT void *calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    if (UNLIKELY(use_boot()))
        return boot_alloc(n * size, 16);
    void *p = real.calloc(n, size);
    after_alloc(p, n * size);
    return p;
}

EXPORT void *realloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (UNLIKELY(is_boot(p))) {
        /* Arena blocks move to the real heap; the arena copy is simply abandoned. */
        void *q = malloc(n);
        if (q)
            memcpy(q, p, FG_MIN(n, boot_size(p)));
        return q;
    }
    if (UNLIKELY(!resolve())) {
        errno = ENOMEM;
        return NULL;
    }
    if (n == 0) {
        free(p);
        return NULL;
    }
    before_free(p);
    void *q = real.realloc(p, n);
    after_alloc(q, n);
    return q;
}

EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n * size);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (UNLIKELY(use_boot())) {
        void *p = boot_alloc(n, align);
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
    int rc = real.posix_memalign(out, align, n);
    if (rc == 0)
        after_alloc(*out, n);
    return rc;
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
    if (UNLIKELY(use_boot()))
        return boot_alloc(n, align);
    void *p = real.aligned_alloc(align, n);
    after_alloc(p, n);
    return p;
}

EXPORT void *memalign(size_t align, size_t n)
{
    if (UNLIKELY(use_boot()))
        return boot_alloc(n, align);
    void *p = real.memalign(align, n);
    after_alloc(p, n);
    return p;
}

EXPORT void *valloc(size_t n)
{
    if (UNLIKELY(use_boot()))
        return boot_alloc(n, 4096);
    void *p = real.valloc(n);
    after_alloc(p, n);
    return p;
}

EXPORT void *pvalloc(size_t n)
{
    if (UNLIKELY(use_boot()))
        return boot_alloc((n + 4095) & ~(size_t)4095, 4096);
    void *p = real.pvalloc(n);
    after_alloc(p, n);
    return p;
}

EXPORT size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (is_boot(p))
        return boot_size(p);
    if (!resolve() || !real.malloc_usable_size)
        return 0;
    return real.malloc_usable_size(p);
}
