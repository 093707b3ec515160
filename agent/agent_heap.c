/* Heap profiler: interposes malloc & co., samples allocations with a Poisson process over
 * bytes (mean FLAMEGATE_HEAP_SAMPLE_BYTES) and serves each sampled block from the agent's own
 * address range, so that free() recognises it with one range compare. The same range serves
 * the calls made before dlsym found the real allocator (the bootstrap). */
#include "agent_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fg_hash.h"

#define EXPORT __attribute__((visibility("default")))
#define NOINLINE __attribute__((noinline))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
/* Every function between the program's call and the stack capture lives in this section:
 * the capture drops those frames, however the compiler chained the calls. */
#define HEAP_TEXT __attribute__((section("fg_heap_text")))

extern const char __start_fg_heap_text[] __attribute__((visibility("hidden")));
extern const char __stop_fg_heap_text[] __attribute__((visibility("hidden")));

FG__TLS int fg__tls_guard;

/* ---- where each call goes: the next allocator once known, the bootstrap until then ---- */

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);
typedef int (*posix_memalign_fn)(void **, size_t, size_t);
typedef void *(*memalign_fn)(size_t, size_t);
typedef size_t (*usable_fn)(void *);

struct alloc_fns {
    malloc_fn malloc;
    calloc_fn calloc;
    realloc_fn realloc;
    free_fn free;
    posix_memalign_fn posix_memalign;
    memalign_fn aligned_alloc;
    memalign_fn memalign;
    malloc_fn valloc;
    malloc_fn pvalloc;
    usable_fn malloc_usable_size;
};

static void *boot_malloc(size_t n);
static void *boot_calloc(size_t n, size_t size);
static void *boot_realloc(void *p, size_t n);
static void boot_free(void *p);
static int boot_posix_memalign(void **out, size_t align, size_t n);
static void *boot_aligned_alloc(size_t align, size_t n);
static void *boot_memalign(size_t align, size_t n);
static void *boot_valloc(size_t n);
static void *boot_pvalloc(size_t n);
static size_t boot_usable_size(void *p);

/* What the interposed functions forward to. They start as the bootstrap functions and are
 * swapped for the resolved ones once, so the fast paths never test a "ready" flag. The own
 * range sits in the same cache line: free() reads base, size and the free pointer. */
static _Alignas(64) struct {
    _Atomic uintptr_t own_base; /* aligned to own_size, a power of two */
    _Atomic uintptr_t own_size; /* 0 until the range is reserved: nothing is "own" */
    _Atomic(malloc_fn) malloc;
    _Atomic(free_fn) free;
    _Atomic(realloc_fn) realloc;
    _Atomic(calloc_fn) calloc;
    _Atomic(posix_memalign_fn) posix_memalign;
    _Atomic(memalign_fn) aligned_alloc;
    _Atomic(memalign_fn) memalign;
    _Atomic(malloc_fn) valloc;
    _Atomic(malloc_fn) pvalloc;
    _Atomic(usable_fn) malloc_usable_size;
} next = {
    .malloc = boot_malloc,
    .free = boot_free,
    .realloc = boot_realloc,
    .calloc = boot_calloc,
    .posix_memalign = boot_posix_memalign,
    .aligned_alloc = boot_aligned_alloc,
    .memalign = boot_memalign,
    .valloc = boot_valloc,
    .pvalloc = boot_pvalloc,
    .malloc_usable_size = boot_usable_size,
};

#define NEXT(f) atomic_load_explicit(&next.f, memory_order_relaxed)

static struct alloc_fns found; /* dlsym(RTLD_NEXT) answers; valid once real_state == 2 */
static _Atomic int real_state; /* 0 unresolved, 1 resolving, 2 resolved */
static _Atomic long boot_force; /* test knob: serve this many more allocations from the range */

/* ---- the own range: sampled blocks and bootstrap blocks ---- */

/* Every own block has this header right in front of it. */
struct own_hdr {
    uint64_t size;  /* bytes asked for */
    uint32_t lead;  /* block - slot start */
    uint16_t cls;   /* size class of the slot */
    uint8_t kind;   /* OWN_BOOT or OWN_SAMPLED */
    uint8_t gen;    /* heap_gen when sampled: only the current generation's frees count */
    uint32_t site;
    float weight;   /* allocations this sample stands for */
    uint64_t check; /* block address ^ OWN_CHECK while live: catches double and wild frees */
};
_Static_assert(sizeof(struct own_hdr) == 32, "the header keeps blocks 16-aligned");

/* A free slot starts with this; clean says the rest of the slot is all zero bytes. */
struct own_free_slot {
    struct own_free_slot *next;
    uint64_t clean;
};

enum { OWN_BOOT = 1, OWN_SAMPLED = 2 };
#define OWN_HDR sizeof(struct own_hdr)
#define OWN_CHECK 0x9e3779b97f4a7c15ull
#define OWN_RESERVE_MAX ((size_t)64 << 30) /* address space only: PROT_NONE until used */
#define OWN_RESERVE_MIN ((size_t)16 << 20)
#define OWN_SPAN ((size_t)64 << 10)          /* small slots are carved from spans this big */
#define OWN_COMMIT_STEP ((size_t)1 << 20)
#define OWN_RELEASE_MIN ((size_t)256 << 10)  /* freed slots this big give their pages back */
#define OWN_MAX_ALIGN ((size_t)64 << 20)
#define OWN_CLASSES (8 + 4 * 40)

static pthread_mutex_t heap_mu = PTHREAD_MUTEX_INITIALIZER; /* the range and the sites */
static struct {
    size_t cap, top, committed; /* offsets from the base */
    struct own_free_slot *free_slots[OWN_CLASSES];
    uintptr_t carve[OWN_CLASSES], carve_end[OWN_CLASSES];
} own;

static inline __attribute__((always_inline)) bool is_own(const void *p)
{
    /* the range is aligned to its power-of-two size: one xor finds the offset */
    return ((uintptr_t)p ^ atomic_load_explicit(&next.own_base, memory_order_relaxed)) <
           atomic_load_explicit(&next.own_size, memory_order_relaxed);
}

/* Size classes: multiples of 16 up to 128, then four per power of two (≤ 25% slack). */
static unsigned own_class(size_t need)
{
    if (need <= 128)
        return need <= 16 ? 0 : (unsigned)((need + 15) / 16 - 1);
    unsigned k = 63u - (unsigned)__builtin_clzll(need - 1); /* 2^k < need <= 2^(k+1) */
    size_t step = (size_t)1 << (k - 2);
    unsigned j = (unsigned)((need - ((size_t)1 << k) + step - 1) / step); /* 1..4 */
    return 8 + (k - 7) * 4 + (j - 1);
}

static size_t own_class_size(unsigned c)
{
    if (c < 8)
        return (size_t)(c + 1) * 16;
    unsigned k = 7 + (c - 8) / 4, j = (c - 8) % 4 + 1;
    return ((size_t)1 << k) + j * ((size_t)1 << (k - 2));
}

/* With heap_mu held. The range is aligned to its size (twice the size is mapped, then the
 * ends are given back), so that free() can test an address with one xor and one compare. */
static bool own_reserve(void)
{
    if (own.cap)
        return true;
    for (size_t sz = OWN_RESERVE_MAX; sz >= OWN_RESERVE_MIN; sz >>= 2) {
        void *m = mmap(NULL, 2 * sz, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (m == MAP_FAILED)
            continue;
        uintptr_t start = (uintptr_t)m, base = (start + sz - 1) & ~(uintptr_t)(sz - 1);
        if (base > start)
            munmap(m, base - start);
        if (start + 2 * sz > base + sz)
            munmap((void *)(base + sz), start + 2 * sz - (base + sz));
        own.cap = sz;
        atomic_store(&next.own_base, base);
        atomic_store(&next.own_size, sz);
        return true;
    }
    return false;
}

/* With heap_mu held: len fresh (zero) bytes at the top of the range, or 0. */
static uintptr_t own_grow(size_t len)
{
    if (len > own.cap - own.top)
        return 0;
    uintptr_t base = atomic_load_explicit(&next.own_base, memory_order_relaxed);
    size_t end = own.top + len;
    if (end > own.committed) {
        size_t to = (end + OWN_COMMIT_STEP - 1) & ~(OWN_COMMIT_STEP - 1);
        if (to > own.cap)
            to = own.cap;
        if (mprotect((void *)(base + own.committed), to - own.committed, PROT_READ | PROT_WRITE))
            return 0;
        own.committed = to;
    }
    uintptr_t start = base + own.top;
    __atomic_store_n(&own.top, end, __ATOMIC_RELAXED); /* own_header reads it unlocked */
    return start;
}

/* With heap_mu held. Returns a block of n bytes aligned to align (a power of two), or NULL;
 * *clean tells whether its bytes are already zero. */
static void *own_alloc(size_t n, size_t align, unsigned kind, bool *clean)
{
    if (align < 16)
        align = 16;
    if (n > OWN_RESERVE_MAX || align > OWN_MAX_ALIGN || (align & (align - 1)) || !own_reserve())
        return NULL;
    unsigned c = own_class(OWN_HDR + n + (align - 16));
    if (c >= OWN_CLASSES)
        return NULL;
    size_t slot_size = own_class_size(c);
    uintptr_t s;
    bool is_clean = true;
    if (own.free_slots[c]) {
        struct own_free_slot *f = own.free_slots[c];
        own.free_slots[c] = f->next;
        is_clean = f->clean != 0; /* the node itself lies in front of the block */
        s = (uintptr_t)f;
    } else if (slot_size < OWN_SPAN) {
        if (own.carve_end[c] - own.carve[c] < slot_size) {
            uintptr_t span = own_grow(OWN_SPAN);
            if (!span)
                return NULL;
            own.carve[c] = span;
            own.carve_end[c] = span + OWN_SPAN;
        }
        s = own.carve[c];
        own.carve[c] += slot_size;
    } else if (!(s = own_grow(slot_size))) {
        return NULL;
    }
    uintptr_t p = (s + OWN_HDR + align - 1) & ~(uintptr_t)(align - 1);
    struct own_hdr *h = (struct own_hdr *)(p - OWN_HDR);
    *h = (struct own_hdr){.size = n, .lead = (uint32_t)(p - s), .cls = (uint16_t)c,
                          .kind = (uint8_t)kind, .site = UINT32_MAX, .check = p ^ OWN_CHECK};
    *clean = is_clean;
    return (void *)p;
}

/* The header of a live own block, or NULL for an address that is not one (a wild or second
 * free: ignored rather than corrupting the free lists). */
static struct own_hdr *own_header(const void *p)
{
    uintptr_t a = (uintptr_t)p, base = atomic_load_explicit(&next.own_base, memory_order_relaxed);
    if ((a & 15) || a - base < OWN_HDR || a - base > __atomic_load_n(&own.top, __ATOMIC_RELAXED))
        return NULL;
    struct own_hdr *h = (struct own_hdr *)(a - OWN_HDR);
    return h->check == (a ^ OWN_CHECK) ? h : NULL;
}

/* With heap_mu held. */
static void own_release(struct own_hdr *h)
{
    uintptr_t s = (uintptr_t)h + OWN_HDR - h->lead;
    unsigned c = h->cls;
    size_t slot_size = own_class_size(c);
    h->check = 0;
    bool clean = slot_size >= OWN_RELEASE_MIN && madvise((void *)s, slot_size, MADV_DONTNEED) == 0;
    struct own_free_slot *f = (struct own_free_slot *)s;
    f->next = own.free_slots[c];
    f->clean = clean;
    own.free_slots[c] = f;
}

static size_t own_usable(const void *p)
{
    const struct own_hdr *h = own_header(p);
    return h ? own_class_size(h->cls) - h->lead : 0;
}

/* A bootstrap block (never sampled). */
static void *boot_block(size_t n, size_t align, bool zero)
{
    bool clean;
    pthread_mutex_lock(&heap_mu);
    void *p = own_alloc(n, align, OWN_BOOT, &clean);
    pthread_mutex_unlock(&heap_mu);
    if (!p)
        errno = ENOMEM;
    else if (zero && !clean)
        memset(p, 0, n);
    return p;
}

/* ---- resolving the next allocator ---- */

static void *missing_memalign(size_t align, size_t n)
{
    (void)align;
    (void)n;
    errno = ENOMEM;
    return NULL;
}

static void *missing_valloc(size_t n)
{
    return missing_memalign(0, n);
}

static int missing_posix_memalign(void **out, size_t align, size_t n)
{
    (void)out;
    (void)align;
    (void)n;
    return ENOMEM;
}

static size_t missing_usable(void *p)
{
    (void)p;
    return 0;
}

static void install(void)
{
    atomic_store(&next.calloc, found.calloc);
    atomic_store(&next.realloc, found.realloc);
    atomic_store(&next.posix_memalign, found.posix_memalign);
    atomic_store(&next.aligned_alloc, found.aligned_alloc);
    atomic_store(&next.memalign, found.memalign);
    atomic_store(&next.valloc, found.valloc);
    atomic_store(&next.pvalloc, found.pvalloc);
    atomic_store(&next.malloc_usable_size, found.malloc_usable_size);
    atomic_store(&next.free, found.free);
    atomic_store(&next.malloc, found.malloc);
}

/* Returns true when the next allocator is known; false while it is being resolved (the
 * caller then serves the call from the own range). */
static bool resolve(void)
{
    if (LIKELY(atomic_load_explicit(&real_state, memory_order_acquire) == 2))
        return true;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&real_state, &expect, 1))
        return false; /* another call (dlsym itself, or another thread) is resolving */
    struct alloc_fns r;
    r.malloc = (malloc_fn)dlsym(RTLD_NEXT, "malloc");
    r.calloc = (calloc_fn)dlsym(RTLD_NEXT, "calloc");
    r.realloc = (realloc_fn)dlsym(RTLD_NEXT, "realloc");
    r.free = (free_fn)dlsym(RTLD_NEXT, "free");
    r.posix_memalign = (posix_memalign_fn)dlsym(RTLD_NEXT, "posix_memalign");
    r.aligned_alloc = (memalign_fn)dlsym(RTLD_NEXT, "aligned_alloc");
    r.memalign = (memalign_fn)dlsym(RTLD_NEXT, "memalign");
    r.valloc = (malloc_fn)dlsym(RTLD_NEXT, "valloc");
    r.pvalloc = (malloc_fn)dlsym(RTLD_NEXT, "pvalloc");
    r.malloc_usable_size = (usable_fn)dlsym(RTLD_NEXT, "malloc_usable_size");
    if (!r.malloc || !r.calloc || !r.realloc || !r.free) {
        /* Nothing to forward to: stay on the own range. */
        atomic_store(&real_state, 0);
        return false;
    }
    if (!r.posix_memalign)
        r.posix_memalign = missing_posix_memalign;
    if (!r.aligned_alloc)
        r.aligned_alloc = missing_memalign;
    if (!r.memalign)
        r.memalign = missing_memalign;
    if (!r.valloc)
        r.valloc = missing_valloc;
    if (!r.pvalloc)
        r.pvalloc = missing_valloc;
    if (!r.malloc_usable_size)
        r.malloc_usable_size = missing_usable;
    found = r;
    const char *force = getenv("FLAMEGATE_DEBUG_BOOTSTRAP");
    long v = 0;
    for (const char *c = force ? force : ""; *c >= '0' && *c <= '9' && v < 100000; c++)
        v = v * 10 + (*c - '0');
    atomic_store(&boot_force, v);
    atomic_store_explicit(&real_state, 2, memory_order_release);
    if (!v)
        install();
    return true;
}

/* True when this allocation must come from the own range (unresolved, or forced). */
static bool serve_from_boot(void)
{
    if (!resolve())
        return true;
    long left = atomic_load(&boot_force);
    while (left > 0)
        if (atomic_compare_exchange_weak(&boot_force, &left, left - 1))
            return true;
    install();
    return false;
}

/* The bootstrap functions: what next.* point to until install(). Own blocks never reach
 * them (the wrappers route those first). */
static void *boot_malloc(size_t n)
{
    return serve_from_boot() ? boot_block(n, 16, false) : found.malloc(n);
}

static void *boot_calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return serve_from_boot() ? boot_block(total, 16, true) : found.calloc(n, size);
}

static void *boot_realloc(void *p, size_t n)
{
    if (!p)
        return boot_malloc(n);
    if (resolve())
        return found.realloc(p, n);
    errno = ENOMEM; /* p is not ours and nothing else can be asked about it yet */
    return NULL;
}

static void boot_free(void *p)
{
    if (p && resolve())
        found.free(p);
}

static int boot_posix_memalign(void **out, size_t align, size_t n)
{
    if (!serve_from_boot())
        return found.posix_memalign(out, align, n);
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    void *p = boot_block(n, align, false);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

static void *boot_aligned_alloc(size_t align, size_t n)
{
    return serve_from_boot() ? boot_block(n, align, false) : found.aligned_alloc(align, n);
}

static void *boot_memalign(size_t align, size_t n)
{
    return serve_from_boot() ? boot_block(n, align, false) : found.memalign(align, n);
}

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static void *boot_valloc(size_t n)
{
    return serve_from_boot() ? boot_block(n, page_size(), false) : found.valloc(n);
}

static void *boot_pvalloc(size_t n)
{
    size_t page = page_size();
    if (n > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    return serve_from_boot() ? boot_block((n + page - 1) & ~(page - 1), page, false)
                             : found.pvalloc(n);
}

static size_t boot_usable_size(void *p)
{
    return p && resolve() ? found.malloc_usable_size(p) : 0;
}


/* ---- sampling state ---- */

static _Atomic int heap_on;
static double sample_mean = 524288.0;

/* Sites live in the shared region (fg__shm->sites), where the helper reads them; this hash
 * table maps a stack to its index there. Both guarded by heap_mu. */
static uint32_t *site_slots; /* index + 1; 0 = empty */
static uint32_t n_site_slots;
/* Bumped by every start and in every forked child: blocks sampled before belong to another
 * region's sites (or another process's), and their frees are not counted. */
static uint8_t heap_gen;
static _Atomic int fork_restart_pending;

#define NOT_SAMPLING_RECHECK (64 << 10)

/* Bytes until this thread's next sample; the fast path subtracts every allocation's size. */
static FG__TLS int64_t tls_bytes_left;
static FG__TLS bool tls_sampler_ready;
static FG__TLS uint64_t tls_rng;

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

/* With heap_mu held. Returns the site index in sh, or UINT32_MAX when the table is full. */
static uint32_t site_find_or_add(struct fg__shared *sh, const uintptr_t *pcs, uint32_t n)
{
    uint32_t n_sites = atomic_load_explicit(&sh->n_sites, memory_order_relaxed);
    if (!site_slots || n_sites * 2 >= n_site_slots) {
        if (n_sites >= FG__MAX_SITES)
            goto lookup_only;
        uint32_t ns = n_site_slots ? n_site_slots * 2 : 1024;
        uint32_t *slots = found.calloc(ns, sizeof(*slots));
        if (!slots)
            goto lookup_only;
        for (uint32_t i = 0; i < n_sites; i++) {
            uint32_t h = (uint32_t)stack_hash(sh->sites[i].pcs, sh->sites[i].n) & (ns - 1);
            while (slots[h])
                h = (h + 1) & (ns - 1);
            slots[h] = i + 1;
        }
        found.free(site_slots);
        site_slots = slots;
        n_site_slots = ns;
    }
lookup_only:
    if (!site_slots)
        return UINT32_MAX;
    uint32_t h = (uint32_t)stack_hash(pcs, n) & (n_site_slots - 1);
    while (site_slots[h]) {
        struct fg__heap_site *s = &sh->sites[site_slots[h] - 1];
        if (s->n == n && memcmp(s->pcs, pcs, n * sizeof(uintptr_t)) == 0)
            return site_slots[h] - 1;
        h = (h + 1) & (n_site_slots - 1);
    }
    if (n_sites >= FG__MAX_SITES || n_sites * 2 >= n_site_slots)
        return UINT32_MAX;
    struct fg__heap_site *s = &sh->sites[n_sites];
    memset(s, 0, sizeof(*s));
    s->n = n;
    memcpy(s->pcs, pcs, n * sizeof(uintptr_t));
    site_slots[h] = n_sites + 1;
    atomic_store_explicit(&sh->n_sites, n_sites + 1, memory_order_release);
    return n_sites;
}

static bool in_heap_text(uintptr_t pc)
{
    return pc - (uintptr_t)__start_fg_heap_text <
           (uintptr_t)(__stop_fg_heap_text - __start_fg_heap_text);
}

/* The program's stack, without the frames of the interposed function and its slow path. */
static HEAP_TEXT NOINLINE uint32_t capture(uintptr_t *pcs)
{
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t hi = fg__thread_stack_hi();
    uintptr_t all[FG__MAX_FRAMES + 8];
    if (!hi)
        return 0; /* unknown stack bounds: walking would not be safe */
    uint32_t n = fg__fp_walk(fp, fp, hi, all, FG__MAX_FRAMES + 8), skip = 0;
    while (skip < n && in_heap_text(all[skip]))
        skip++;
    n = FG_MIN(n - skip, (uint32_t)FG__MAX_FRAMES);
    memcpy(pcs, all + skip, n * sizeof(uintptr_t));
    return n;
}

/* The slow path of an allocation that used up the thread's countdown. Returns an own block
 * holding the sample, or NULL when this allocation is not sampled (the caller then asks the
 * next allocator). */
static HEAP_TEXT NOINLINE void *try_sample(size_t size, size_t align, bool *clean)
{
    if (UNLIKELY(atomic_load_explicit(&fork_restart_pending, memory_order_relaxed)) &&
        !fg__tls_guard && atomic_exchange(&fork_restart_pending, 0))
        fg__agent_fork_restart(); /* no agent lock is held here; see fg__heap_atfork_child */
    if (!atomic_load_explicit(&heap_on, memory_order_acquire) || fg__tls_guard) {
        /* Not sampling now: look again soon, and start a fresh countdown (of the mean in
         * force then) once sampling is on: the agent's start runs guarded on the program's
         * thread before it sets the mean. */
        tls_bytes_left = NOT_SAMPLING_RECHECK;
        tls_sampler_ready = false;
        return NULL;
    }
    if (size == 0 || size > OWN_RESERVE_MAX)
        return NULL; /* never sampled (P = 0), or bound to fail anyway */
    void *p = NULL;
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
    pthread_mutex_lock(&heap_mu);
    struct fg__shared *sh = fg__shm; /* under the lock: the same start as heap_gen */
    uint32_t site = site_find_or_add(sh, pcs, n);
    if (site != UINT32_MAX && (p = own_alloc(size, align, OWN_SAMPLED, clean))) {
        struct own_hdr *h = (struct own_hdr *)((uintptr_t)p - OWN_HDR);
        h->site = site;
        h->gen = heap_gen;
        h->weight = (float)w;
        struct fg__heap_site *s = &sh->sites[site];
        s->alloc_objs += w;
        s->alloc_bytes += w * (double)size;
        s->inuse_objs += w;
        s->inuse_bytes += w * (double)size;
    }
    pthread_mutex_unlock(&heap_mu);
    if (!p)
        atomic_fetch_add(&sh->heap_dropped, 1);
out:
    fg__tls_guard--;
    return p;
}

/* Subtracts n from the thread's countdown; true when it ran out (time for a sample). */
static inline __attribute__((always_inline)) bool countdown(size_t n)
{
#if defined(__x86_64__)
    /* One subtract into the thread-local word and its flags: gcc otherwise loads, subtracts,
     * stores and tests (two instructions more on every allocation). */
    bool out;
    __asm__("subq %2, %0" : "+m"(tls_bytes_left), "=@ccle"(out) : "r"(n) : "cc");
    return out;
#else
    uint64_t left = (uint64_t)tls_bytes_left - n;
    tls_bytes_left = (int64_t)left;
    return (int64_t)left <= 0;
#endif
}

static HEAP_TEXT NOINLINE void free_own(void *p)
{
    pthread_mutex_lock(&heap_mu);
    struct own_hdr *h = own_header(p);
    if (h) {
        if (h->kind == OWN_SAMPLED && h->gen == heap_gen) {
            struct fg__heap_site *s = &fg__shm->sites[h->site];
            s->inuse_objs -= h->weight;
            s->inuse_bytes -= (double)h->weight * (double)h->size;
        }
        own_release(h);
    }
    pthread_mutex_unlock(&heap_mu);
}

static HEAP_TEXT NOINLINE void *malloc_slow(size_t n)
{
    bool clean;
    void *p = try_sample(n, 16, &clean);
    return p ? p : NEXT(malloc)(n);
}

static inline __attribute__((always_inline)) void *malloc_impl(size_t n)
{
    if (UNLIKELY(countdown(n)))
        return malloc_slow(n);
    return NEXT(malloc)(n);
}

static HEAP_TEXT NOINLINE void *calloc_slow(size_t n, size_t size)
{
    size_t total;
    bool clean;
    void *p = NULL;
    if (!__builtin_mul_overflow(n, size, &total))
        p = try_sample(total, 16, &clean);
    if (!p)
        return NEXT(calloc)(n, size);
    if (!clean)
        memset(p, 0, total);
    return p;
}

/* realloc is a free and an allocation: an own block always moves out (the new block is
 * counted, and sampled or not, like any allocation). */
static HEAP_TEXT NOINLINE void *realloc_own(void *p, size_t n)
{
    size_t old = own_usable(p);
    if (!old) {
        errno = EINVAL; /* not a live block */
        return NULL;
    }
    if (n == 0) {
        free_own(p);
        return NULL;
    }
    void *q = malloc_impl(n);
    if (q) {
        memcpy(q, p, FG_MIN(n, old));
        free_own(p);
    }
    return q;
}

/* p is the next allocator's block (or NULL); the countdown ran out. */
static HEAP_TEXT NOINLINE void *realloc_slow(void *p, size_t n)
{
    bool clean;
    if (n == 0 || atomic_load_explicit(&real_state, memory_order_acquire) != 2)
        return NEXT(realloc)(p, n);
    void *q = try_sample(n, 16, &clean);
    if (!q)
        return NEXT(realloc)(p, n);
    if (p) {
        memcpy(q, p, FG_MIN(n, found.malloc_usable_size(p)));
        found.free(p);
    }
    return q;
}

static inline __attribute__((always_inline)) void *realloc_impl(void *p, size_t n)
{
    if (UNLIKELY(is_own(p)))
        return realloc_own(p, n);
    if (UNLIKELY(countdown(n)))
        return realloc_slow(p, n);
    return NEXT(realloc)(p, n);
}

enum aligned_kind { ALIGNED_ALLOC, MEMALIGN, VALLOC, PVALLOC };

static HEAP_TEXT NOINLINE void *aligned_slow(size_t align, size_t n, enum aligned_kind kind)
{
    bool clean;
    size_t size = n;
    if (kind == VALLOC || kind == PVALLOC)
        align = page_size();
    if (kind == PVALLOC)
        size = n > SIZE_MAX - align ? 0 : (n + align - 1) & ~(align - 1);
    void *p = align && !(align & (align - 1)) ? try_sample(size, align, &clean) : NULL;
    if (p)
        return p;
    switch (kind) {
    case ALIGNED_ALLOC:
        return NEXT(aligned_alloc)(align, n);
    case MEMALIGN:
        return NEXT(memalign)(align, n);
    case VALLOC:
        return NEXT(valloc)(n);
    default:
        return NEXT(pvalloc)(n);
    }
}

static HEAP_TEXT NOINLINE int posix_memalign_slow(void **out, size_t align, size_t n)
{
    bool clean;
    if (align < sizeof(void *) || (align & (align - 1)))
        return NEXT(posix_memalign)(out, align, n); /* EINVAL, the next allocator's way */
    void *p = try_sample(n, align, &clean);
    if (!p)
        return NEXT(posix_memalign)(out, align, n);
    *out = p;
    return 0;
}

/* ---- the agent's side ---- */

void *fg__real_malloc(size_t n)
{
    return resolve() ? found.malloc(n) : boot_block(n, 16, false);
}

void *fg__real_calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
        return NULL;
    return resolve() ? found.calloc(n, size) : boot_block(total, 16, true);
}

void *fg__real_realloc(void *p, size_t n)
{
    if (!is_own(p))
        return resolve() ? found.realloc(p, n) : p ? NULL : boot_block(n, 16, false);
    size_t old = own_usable(p);
    void *q = fg__real_malloc(n);
    if (q) {
        memcpy(q, p, FG_MIN(n, old));
        free_own(p);
    }
    return q;
}

void fg__real_free(void *p)
{
    if (is_own(p))
        free_own(p);
    else if (p && resolve())
        found.free(p);
}

int fg__heap_start(long sample_bytes)
{
    if (!resolve())
        return FG_EUNSUPPORTED;
    pthread_mutex_lock(&heap_mu);
    heap_gen++;
    if (site_slots)
        memset(site_slots, 0, n_site_slots * sizeof(*site_slots));
    sample_mean = (double)sample_bytes;
    pthread_mutex_unlock(&heap_mu);
    atomic_store(&heap_on, 1);
    return 0;
}

void fg__heap_stop(void)
{
    /* Blocks sampled so far stay tracked: their frees keep the tables consistent. */
    atomic_store(&heap_on, 0);
}

int fg__heap_snapshot(const struct fg__shared *sh, struct fg__heap_site **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    uint32_t count = atomic_load_explicit(&sh->n_sites, memory_order_acquire);
    struct fg__heap_site *copy = NULL;
    if (count) {
        copy = fg__real_malloc(count * sizeof(*copy));
        if (copy)
            memcpy(copy, sh->sites, count * sizeof(*copy));
    }
    if (count && !copy)
        return FG_ENOMEM;
    *out = copy;
    *n = count;
    return 0;
}

void fg__heap_snapshot_free(struct fg__heap_site *s)
{
    fg__real_free(s);
}

void fg__heap_atfork_prepare(void)
{
    pthread_mutex_lock(&heap_mu);
}

void fg__heap_atfork_parent(void)
{
    pthread_mutex_unlock(&heap_mu);
}

void fg__heap_atfork_child(void)
{
    /* The child is not profiled; its frees still find the blocks it inherited, but do not
     * count them: the sites they name are the parent's, in memory shared with it. */
    atomic_store(&heap_on, 0);
    heap_gen++;
    pthread_mutex_init(&heap_mu, NULL);
}

void fg__heap_request_fork_restart(void)
{
    /* Only stores (async-signal-safe). The forking thread's next allocation takes the slow
     * path, which restarts the agent: by then the child itself calls malloc, so it is past
     * the point where only async-signal-safe calls are allowed. */
    atomic_store(&fork_restart_pending, 1);
    tls_bytes_left = 0;
    tls_sampler_ready = false;
    tls_rng = 0; /* else every worker would draw the parent's next sample points */
}

/* ---- the interposed functions: a countdown or a range compare, then a tail call ---- */

EXPORT HEAP_TEXT void *malloc(size_t n)
{
    return malloc_impl(n);
}

EXPORT HEAP_TEXT void free(void *p)
{
    if (UNLIKELY(is_own(p)))
        free_own(p);
    else
        NEXT(free)(p);
}

EXPORT HEAP_TEXT void *calloc(size_t n, size_t size)
{
    /* A wrapped product only skews the countdown; the next calloc (or calloc_slow) fails it. */
    if (UNLIKELY(countdown(n * size)))
        return calloc_slow(n, size);
    return NEXT(calloc)(n, size);
}

EXPORT HEAP_TEXT void *realloc(void *p, size_t n)
{
    return realloc_impl(p, n);
}

EXPORT HEAP_TEXT void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc_impl(p, total);
}

EXPORT HEAP_TEXT int posix_memalign(void **out, size_t align, size_t n)
{
    if (UNLIKELY(countdown(n)))
        return posix_memalign_slow(out, align, n);
    return NEXT(posix_memalign)(out, align, n);
}

EXPORT HEAP_TEXT void *aligned_alloc(size_t align, size_t n)
{
    if (UNLIKELY(countdown(n)))
        return aligned_slow(align, n, ALIGNED_ALLOC);
    return NEXT(aligned_alloc)(align, n);
}

EXPORT HEAP_TEXT void *memalign(size_t align, size_t n)
{
    if (UNLIKELY(countdown(n)))
        return aligned_slow(align, n, MEMALIGN);
    return NEXT(memalign)(align, n);
}

EXPORT HEAP_TEXT void *valloc(size_t n)
{
    if (UNLIKELY(countdown(n)))
        return aligned_slow(0, n, VALLOC);
    return NEXT(valloc)(n);
}

EXPORT HEAP_TEXT void *pvalloc(size_t n)
{
    if (UNLIKELY(countdown(n)))
        return aligned_slow(0, n, PVALLOC);
    return NEXT(pvalloc)(n);
}

EXPORT HEAP_TEXT size_t malloc_usable_size(void *p)
{
    if (UNLIKELY(is_own(p)))
        return own_usable(p);
    return NEXT(malloc_usable_size)(p);
}
