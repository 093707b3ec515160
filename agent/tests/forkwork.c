/* Agent test workload for FLAMEGATE_FOLLOW_FORK: a pre-fork server in miniature. The parent
 * allocates (parent_alloc) and burns (parent_burn), forks 3 workers, and burns while they
 * run; worker k frees half of the parent's blocks, allocates from child_alloc_<k> and burns
 * in child_burn, then exits normally (its final upload). Prints "ok" when all ran. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 3
#define BLOCK 4096
#define N_BLOCKS 2048 /* 8 MiB per site */

static void *inherited[N_BLOCKS];
static void *own[N_BLOCKS];
static volatile unsigned long sink;

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Inlined: a leaf's caller is missing from frame-pointer stacks (gcc 12 omits the leaf
 * frame pointer), so the burn functions themselves must be the leaves. */
static inline __attribute__((always_inline)) void spin(unsigned long n, unsigned long salt)
{
    for (unsigned long i = 0; i < n; i++)
        sink += (i ^ (sink >> 3)) + salt;
}

/* Each burns until the process has used `until` CPU-seconds. */
__attribute__((noinline)) void parent_burn(double until)
{
    while (cpu_seconds() < until)
        spin(100000, 1);
}

__attribute__((noinline)) void child_burn(double until)
{
    while (cpu_seconds() < until)
        spin(100000, 2);
}

__attribute__((noinline)) void *parent_alloc(void)
{
    void *p = malloc(BLOCK);
    if (p)
        memset(p, 1, 64);
    return p;
}

/* One distinct allocation site per worker. */
#define CHILD_ALLOC(k)                                                                         \
    __attribute__((noinline)) void *child_alloc_##k(void)                                      \
    {                                                                                          \
        void *p = malloc(BLOCK);                                                               \
        if (p)                                                                                 \
            memset(p, 2, 64);                                                                  \
        return p;                                                                              \
    }
CHILD_ALLOC(0)
CHILD_ALLOC(1)
CHILD_ALLOC(2)
static void *(*const child_alloc[WORKERS])(void) = {child_alloc_0, child_alloc_1, child_alloc_2};

static int worker(int k, double seconds)
{
    for (int i = 0; i < N_BLOCKS; i += 2)
        free(inherited[i]); /* the parent's blocks, sampled ones included */
    for (int i = 0; i < N_BLOCKS; i++)
        if (!(own[i] = child_alloc[k]()))
            return 1;
    child_burn(cpu_seconds() + seconds);
    return 0; /* own[] stays live: the final upload sees it in use */
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    for (int i = 0; i < N_BLOCKS; i++)
        if (!(inherited[i] = parent_alloc()))
            return 1;
    parent_burn(cpu_seconds() + seconds / 4);
    pid_t pids[WORKERS];
    for (int k = 0; k < WORKERS; k++) {
        fflush(stdout);
        pids[k] = fork();
        if (pids[k] < 0)
            return 2;
        if (pids[k] == 0)
            exit(worker(k, seconds));
    }
    parent_burn(cpu_seconds() + seconds);
    for (int k = 0; k < WORKERS; k++) {
        int st;
        if (waitpid(pids[k], &st, 0) != pids[k] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return 3;
    }
    printf("ok\n");
    return 0;
}
