/* Agent test workload with a known CPU split: each thread spends ~70% of its CPU in burn_a
 * and ~30% in burn_b, measures both with CLOCK_THREAD_CPUTIME_ID and prints the totals.
 * usage: agent_burn THREADS CPU_SECONDS_PER_THREAD */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile uint64_t sink;

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
    sink = x;
}

__attribute__((noinline)) void burn_b(long iters)
{
    uint64_t x = sink;
    for (long i = 0; i < iters; i++)
        x = x * 2862933555777941757ULL + 3037000493ULL;
    sink = x;
}

struct result {
    double seconds;
    int64_t a_ns, b_ns;
};

static void *worker(void *arg)
{
    struct result *r = arg;
    int64_t budget = (int64_t)(r->seconds * 1e9), start = thread_ns();
    while (thread_ns() - start < budget) {
        int64_t t0 = thread_ns();
        burn_a(700000);
        int64_t t1 = thread_ns();
        burn_b(300000);
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
    return 0;
}
