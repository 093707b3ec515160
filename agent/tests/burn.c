/* Agent test workload with a known CPU split: each thread spends ~70% of its CPU in burn_a
 * and ~30% in burn_b, measures both with CLOCK_THREAD_CPUTIME_ID and prints the totals.
 * usage: agent_burn THREADS CPU_SECONDS_PER_THREAD */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile uint64_t sink;

/* A call makes burn_a/burn_b non-leaf, so gcc 12 gives them a frame pointer (it ignores
 * -mno-omit-leaf-frame-pointer) and their caller shows up in the stacks. */
__attribute__((noinline)) void store(uint64_t x)
{
    sink = x;
}

static int64_t thread_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The work stays inside the function itself, so samples land in it as the leaf. */
__attribute__((noinline)) void burn_a(long iters)
{
    uint64_t x = sink;
    for (long i = 0; i < iters; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    store(x);
}

__attribute__((noinline)) void burn_b(long iters)
{
    uint64_t x = sink;
    for (long i = 0; i < iters; i++)
        x = x * 2862933555777941757ULL + 3037000493ULL;
    store(x);
}

struct result {
    double seconds;
    int64_t a_ns, b_ns;
};

/* Chunk lengths vary at random (means 700k and 300k iterations) so that the work never
 * falls into step with the timer tick that CPU-clock timers fire on. */
__attribute__((noinline)) static void *worker(void *arg)
{
    struct result *r = arg;
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL | 1;
    int64_t budget = (int64_t)(r->seconds * 1e9), start = thread_ns();
    while (thread_ns() - start < budget) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        long na = 350000 + (long)((rng >> 33) % 700000);
        long nb = 150000 + (long)((rng >> 13) % 300000);
        int64_t t0 = thread_ns();
        burn_a(na);
        int64_t t1 = thread_ns();
        burn_b(nb);
        int64_t t2 = thread_ns();
        r->a_ns += t1 - t0;
        r->b_ns += t2 - t1;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 1;
    double seconds = argc > 2 ? strtod(argv[2], NULL) : 1.0;
    if (threads < 1 || threads > 64)
        return 2;
    pthread_t th[64];
    struct result res[64] = {{0}};
    for (int i = 0; i < threads; i++) {
        res[i].seconds = seconds;
        if (i > 0 && pthread_create(&th[i], NULL, worker, &res[i]) != 0)
            return 1;
    }
    worker(&res[0]); /* the main thread works too */
    int64_t a = res[0].a_ns, b = res[0].b_ns;
    for (int i = 1; i < threads; i++) {
        pthread_join(th[i], NULL);
        a += res[i].a_ns;
        b += res[i].b_ns;
    }
    printf("{\"burn_a_ns\": %lld, \"burn_b_ns\": %lld}\n", (long long)a, (long long)b);
    fflush(stdout); /* before exit's handlers: the tests time the agent's exit from here */
    return 0;
}
