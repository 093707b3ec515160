/* Agent test workload for the edges of the heap profiler. Run with
 * FLAMEGATE_HEAP_SAMPLE_BYTES=1 every allocation is sampled, so every block below comes from
 * the agent's own range; the same checks must hold without the agent.
 *   agent_heapedge edge    : realloc / memalign / usable size / calloc of sampled blocks, 0
 *                            and huge sizes, blocks freed by another thread, fork; prints
 *                            "ok" and a JSON line with the live blocks it keeps
 *   agent_heapedge exhaust : 48 live blocks of 8 MiB (run under a small RLIMIT_AS: more than
 *                            the agent's range holds); every allocation must succeed
 * Exits non-zero naming the failed check. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "check failed at line %d: %s\n", __LINE__, #cond); \
            exit(10);                                                   \
        }                                                               \
    } while (0)

#define CROSS_N 1000
#define CROSS_SIZE 200
#define KEPT_N 100
#define KEPT_SIZE 1000
#define GROWN_SIZE 16384

static void *cross[CROSS_N];
/* Huge sizes read at run time: the compiler would reject the constants. */
static volatile size_t size_max = SIZE_MAX;
static void *kept[KEPT_N];

/* The stores must happen even right before a free (the compiler would drop them). */
__attribute__((noinline)) static void fill(void *p, size_t n, unsigned char v)
{
    memset(p, v, n);
    __asm__ volatile("" : : "r"(p) : "memory");
}

static int all_bytes(const void *p, size_t n, unsigned char v)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != v)
            return 0;
    return 1;
}

static void check_aligned(void *p, size_t align, size_t n)
{
    CHECK(p);
    CHECK((uintptr_t)p % align == 0);
    CHECK(malloc_usable_size(p) >= n);
    fill(p, n, 0x5a);
    free(p);
}

__attribute__((noinline)) void cross_alloc(void)
{
    for (int i = 0; i < CROSS_N; i++) {
        cross[i] = malloc(CROSS_SIZE);
        CHECK(cross[i]);
        fill(cross[i], CROSS_SIZE, (unsigned char)i);
    }
}

static void *cross_free(void *arg)
{
    (void)arg;
    for (int i = 0; i < CROSS_N; i++) {
        if (!all_bytes(cross[i], CROSS_SIZE, (unsigned char)i))
            return (void *)1;
        free(cross[i]);
    }
    return NULL;
}

__attribute__((noinline)) void *realloc_grow(void)
{
    char *p = NULL;
    for (size_t n = 16; n <= GROWN_SIZE; n *= 2) {
        char *q = realloc(p, n);
        CHECK(q);
        if (p)
            CHECK(all_bytes(q, n / 2, (unsigned char)(n / 2)));
        fill(q, n, (unsigned char)n);
        p = q;
    }
    return p;
}

__attribute__((noinline)) void kept_alloc(void)
{
    for (int i = 0; i < KEPT_N; i++) {
        kept[i] = malloc(KEPT_SIZE);
        CHECK(kept[i]);
        fill(kept[i], KEPT_SIZE, 7);
    }
}

static void check_calloc(void)
{
    /* Dirty a slot, free it, then calloc the same size: the reused slot must be zero. */
    static const size_t sizes[] = {24, 200, 3000, 70000, 300000, 3u << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (int round = 0; round < 3; round++) {
            char *d = malloc(sizes[i]);
            CHECK(d);
            fill(d, sizes[i], 0xff);
            free(d);
            char *z = calloc(1, sizes[i]);
            CHECK(z);
            CHECK(all_bytes(z, sizes[i], 0));
            fill(z, sizes[i], 0xee);
            free(z);
        }
    }
}

static void check_realloc(void)
{
    char *p = malloc(100);
    CHECK(p);
    fill(p, 100, 3);
    CHECK(malloc_usable_size(p) >= 100);
    char *q = realloc(p, 40); /* shrink keeps the first bytes */
    CHECK(q && all_bytes(q, 40, 3));
    p = realloc(q, 100000); /* grow into a large slot */
    CHECK(p && all_bytes(p, 40, 3));
    fill(p, 100000, 4);
    q = reallocarray(p, 1000, 200);
    CHECK(q && all_bytes(q, 100000, 4));
    errno = 0;
    p = reallocarray(q, size_max / 2, 3); /* overflow: fails, q stays */
    CHECK(!p && errno == ENOMEM);
    errno = 0;
    p = realloc(q, size_max - 4096); /* fails, q stays */
    CHECK(!p && errno == ENOMEM);
    CHECK(all_bytes(q, 100000, 4));
    CHECK(realloc(q, 0) == NULL); /* frees q (glibc's behaviour) */
    p = realloc(NULL, 50);
    CHECK(p);
    fill(p, 50, 1);
    free(p);
    /* the usable size is usable, and survives a realloc */
    p = malloc(33);
    CHECK(p);
    size_t u = malloc_usable_size(p);
    CHECK(u >= 33);
    fill(p, u, 9);
    q = realloc(p, u + 1000);
    CHECK(q && all_bytes(q, u, 9));
    free(q);
}

static void check_aligned_family(void)
{
    long page = sysconf(_SC_PAGESIZE);
    for (size_t align = 16; align <= (4u << 20); align *= 4) {
        void *p = NULL;
        CHECK(posix_memalign(&p, align, 1000) == 0);
        check_aligned(p, align, 1000);
        check_aligned(aligned_alloc(align, 3 * align), align, 3 * align);
        check_aligned(memalign(align, 5000), align, 5000);
    }
    check_aligned(valloc(100), (size_t)page, 100);
    check_aligned(pvalloc(100), (size_t)page, (size_t)page); /* rounds up to a page */
    void *p = NULL;
    CHECK(posix_memalign(&p, 24, 100) == EINVAL);
    CHECK(posix_memalign(&p, 4, 100) == EINVAL);
    CHECK(posix_memalign(&p, 64, size_max - 100) == ENOMEM);
    errno = 0;
    CHECK(aligned_alloc(64, size_max - 100) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(pvalloc(size_max - 10) == NULL && errno == ENOMEM);
}

static void check_sizes(void)
{
    void *z = malloc(0); /* a unique pointer (or NULL) that free accepts */
    free(z);
    z = calloc(0, 100);
    free(z);
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0);
    errno = 0;
    CHECK(malloc(size_max) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(size_max / 2 + 1) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(size_max / 2, 3) == NULL && errno == ENOMEM);
    /* a size the range refuses (more than its reservation): the next allocator decides */
    void *big = malloc((size_t)96 << 30);
    free(big);
    for (size_t n = 1; n < (64u << 20); n = n * 3 + 1) {
        char *p = malloc(n);
        CHECK(p);
        p[0] = 1;
        p[n - 1] = 2;
        CHECK(malloc_usable_size(p) >= n);
        free(p);
    }
}

static void check_fork(void)
{
    char *inherited = malloc(500);
    CHECK(inherited);
    fill(inherited, 500, 8);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int ok = all_bytes(inherited, 500, 8);
        char *q = realloc(inherited, 5000);
        ok = ok && q && all_bytes(q, 500, 8);
        free(q);
        for (int i = 0; i < 1000; i++)
            free(malloc((size_t)i * 7 + 1));
        _exit(ok ? 0 : 1);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    free(inherited);
}

static int edge(void)
{
    check_sizes();
    check_calloc();
    check_realloc();
    check_aligned_family();
    check_fork();
    cross_alloc();
    pthread_t t;
    void *rv;
    CHECK(pthread_create(&t, NULL, cross_free, NULL) == 0);
    CHECK(pthread_join(t, &rv) == 0 && rv == NULL);
    void *grown = realloc_grow();
    kept_alloc();
    printf("ok\n{\"cross_alloc_objects\": %d, \"kept_objects\": %d, \"kept_space\": %d, "
           "\"grown_space\": %d}\n",
           CROSS_N, KEPT_N, KEPT_N * KEPT_SIZE, GROWN_SIZE);
    (void)grown; /* live at exit on purpose, like kept[] */
    return 0;
}

static int exhaust(void)
{
    enum { N = 48, SIZE = 8 << 20 };
    static char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(SIZE);
        CHECK(blocks[i]);
        blocks[i][0] = blocks[i][SIZE - 1] = (char)i;
    }
    for (int i = 0; i < N; i++) {
        CHECK(blocks[i][0] == (char)i && blocks[i][SIZE - 1] == (char)i);
        free(blocks[i]);
    }
    printf("ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "exhaust") == 0)
        return exhaust();
    return edge();
}
