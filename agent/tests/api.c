/* The agent's C API linked statically: start with an explicit config (OTLP files), label
 * the work, flush, stop, start again, stop. usage: agent_api OUTPUT_PREFIX */
#include <stdint.h>
#include <stdio.h>

#include "fg_agent.h"

static volatile uint64_t sink;

__attribute__((noinline)) void labelled_work(long iters)
{
    uint64_t x = sink;
    for (long i = 0; i < iters; i++)
        x = x * 6364136223846793005ULL + 7;
    sink = x;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    char out[4096];
    snprintf(out, sizeof(out), "otlp-file:%s", argv[1]);
    struct fg_agent_config cfg = {0};
    cfg.output = out;
    cfg.service_name = "api-test";
    cfg.cpu_hz = 250;
    cfg.upload_interval_ms = 3600000; /* only explicit flushes and the final upload */
    if (fg_agent_start(&cfg) != 0)
        return 3;
    if (fg_agent_start(&cfg) == 0) /* a second start is refused */
        return 4;
    if (fg_agent_set_label("phase", "one") || fg_agent_set_label("user", "alice"))
        return 5;
    labelled_work(300000000);
    if (fg_agent_flush() != 0)
        return 6;
    fg_agent_set_label("user", NULL);
    fg_agent_set_label("phase", "two");
    labelled_work(300000000);
    fg_agent_stop();
    if (fg_agent_flush() == 0) /* stopped: nothing to flush */
        return 7;
    /* started again in the same process: a new helper; the label set made while stopped
     * holds; its final upload takes the next free file number */
    fg_agent_set_label("phase", "three");
    if (fg_agent_start(&cfg) != 0)
        return 8;
    labelled_work(300000000);
    fg_agent_stop();
    printf("ok\n");
    return 0;
}
