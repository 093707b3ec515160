/* Agent test workload with known live memory: alloc_big allocates 64 MiB in 256 KiB blocks,
 * alloc_small 8 MiB in 64-byte blocks; every other block of both is freed, the rest is
 * still live when the program exits (the agent's final upload sees it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG_BLOCK (256 * 1024)
#define BIG_N (64 * 1024 * 1024 / BIG_BLOCK)
#define SMALL_BLOCK 64
#define SMALL_N (8 * 1024 * 1024 / SMALL_BLOCK)

static void *big[BIG_N];
static void *small[SMALL_N];

__attribute__((noinline)) void *alloc_big(void)
{
    void *p = malloc(BIG_BLOCK);
    if (p)
        memset(p, 1, 64);
    return p;
}

__attribute__((noinline)) void *alloc_small(void)
{
    void *p = malloc(SMALL_BLOCK);
    if (p)
        memset(p, 2, SMALL_BLOCK);
    return p;
}

int main(void)
{
    for (int i = 0; i < BIG_N; i++)
        if (!(big[i] = alloc_big()))
            return 1;
    for (int i = 0; i < SMALL_N; i++)
        if (!(small[i] = alloc_small()))
            return 1;
    for (int i = 0; i < BIG_N; i += 2)
        free(big[i]);
    for (int i = 0; i < SMALL_N; i += 2)
        free(small[i]);
    printf("{\"big_alloc\": %d, \"big_inuse\": %d, \"small_alloc\": %d, \"small_inuse\": %d}\n",
           BIG_N * BIG_BLOCK, BIG_N / 2 * BIG_BLOCK, SMALL_N * SMALL_BLOCK,
           SMALL_N / 2 * SMALL_BLOCK);
    return 0; /* the odd blocks stay live on purpose */
}
