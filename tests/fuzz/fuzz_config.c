/* Fuzz target: arbitrary bytes as a YAML configuration; loading must never crash or leak,
 * whatever the outcome. */
#include <stddef.h>
#include <stdint.h>

#include "fg_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fg_config *cfg = NULL;
    struct fg_diag diag;
    fg_diag_init(&diag);
    if (fg_config_load_string("fuzz.yaml", (const char *)data, size, &cfg, &diag) == 0)
        fg_config_free(cfg);
    fg_diag_free(&diag);
    return 0;
}
