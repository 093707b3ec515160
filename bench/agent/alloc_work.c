/* Overhead bench, allocation-heavy workload: malloc/free of mixed sizes (mostly small, some
 * large) through a ring of live blocks, the shape of a server's request handling.
 * usage: bench_agent_alloc [MILLION_OPS] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE 8192

static void *ring[LIVE];

__attribute__((noinline)) static void *make_small(size_t n)
{
    char *p = malloc(n);
    if (p)
        p[0] = (char)n;
    return p;
}

__attribute__((noinline)) static void *make_large(size_t n)
{
    char *p = malloc(n);
    if (p)
        memset(p, 0, 64);
    return p;
}

int main(int argc, char **argv)
{
    long ops = (argc > 1 ? strtol(argv[1], NULL, 10) : 20) * 1000000L;
    uint64_t rng = 88172645463325252ULL;
    uint64_t sum = 0;
    for (long i = 0; i < ops; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        size_t slot = (size_t)(rng % LIVE);
        free(ring[slot]);
        size_t n = (rng >> 20) % 100 == 0 ? 4096 + (rng >> 32) % 65536 : 16 + (rng >> 40) % 240;
        ring[slot] = n > 4096 ? make_large(n) : make_small(n);
        if (!ring[slot])
            return 1;
        sum += n;
    }
    for (size_t i = 0; i < LIVE; i++)
        free(ring[i]);
    printf("%llu\n", (unsigned long long)(sum & 0xffff));
    return 0;
}
