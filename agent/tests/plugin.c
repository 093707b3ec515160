/* A module the robustness workload dlopens and dlcloses while being profiled. */
#include <stdint.h>
#include <stdlib.h>

static volatile uint64_t plugin_sink;

__attribute__((noinline)) uint64_t plugin_burn(long iters)
{
    uint64_t x = plugin_sink;
    for (long i = 0; i < iters; i++)
        x = x * 6364136223846793005ULL + 1;
    void *p = malloc(4096);
    free(p);
    plugin_sink = x;
    return x;
}
