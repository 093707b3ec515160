/* Fuzz target for the multipart/form-data splitter: the input is "<Content-Type>\n<body>".
 * Parts found must lie inside the body, in order, without overlapping. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fg_multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl || nl - data > 512)
        return 0;
    char ct[513];
    memcpy(ct, data, (size_t)(nl - data));
    ct[nl - data] = '\0';
    const uint8_t *body = nl + 1;
    size_t len = size - (size_t)(body - data);
    struct fg_multipart_part parts[8];
    size_t n = 0;
    struct fg_err err;
    if (fg_multipart_parse(ct, body, len, parts, 8, &n, &err) != 0)
        return 0;
    const uint8_t *prev_end = body;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].data < prev_end || parts[i].data + parts[i].len > body + len)
            abort();
        if (parts[i].name && ((const uint8_t *)parts[i].name < body ||
                              (const uint8_t *)parts[i].name + parts[i].name_len > parts[i].data))
            abort();
        prev_end = parts[i].data + parts[i].len;
    }
    return 0;
}
