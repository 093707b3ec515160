/* SHA-1 (FIPS 180-4), only for htpasswd's "{SHA}" entries, which Apache defines with it. */
#ifndef FG_SHA1_H
#define FG_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define FG_SHA1_LEN 20

void fg_sha1(const void *data, size_t len, uint8_t out[FG_SHA1_LEN]);

#endif
