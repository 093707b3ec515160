/* Overhead bench, CPU-bound workload: a fixed amount of integer work spread over a few call
 * paths (so profilers have real stacks to walk). usage: bench_agent_cpu [ROUNDS] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static volatile uint64_t sink;

__attribute__((noinline)) static uint64_t mix(uint64_t x, long n)
{
    for (long i = 0; i < n; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x;
}

__attribute__((noinline)) static uint64_t fib(int n)
{
    return n < 2 ? (uint64_t)n : fib(n - 1) + fib(n - 2);
}

__attribute__((noinline)) static uint64_t level3(uint64_t x)
{
    return mix(x, 200000) ^ fib(18);
}

__attribute__((noinline)) static uint64_t level2(uint64_t x)
{
    return level3(x) + mix(x, 100000);
}

__attribute__((noinline)) static uint64_t level1(uint64_t x)
{
    return level2(x) * 3 + fib(16);
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 3000;
    uint64_t x = 1;
    for (long r = 0; r < rounds; r++)
        x = level1(x + (uint64_t)r);
    sink = x;
    printf("%llu\n", (unsigned long long)(x & 0xffff));
    return 0;
}
