/* Message digests written here: the Merkle-Damgard frame that MD5 (relabel's hashmod),
 * SHA-1 (core/fg_sha1.c) and SHA-256 (the attributes hash action, basicauth's cache) share. */
#ifndef FG_DIGEST_H
#define FG_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Feeds data in 64-byte blocks, then the padding (0x80, zeros, the length in bits in the
 * last 8 bytes: big-endian for SHA-1/SHA-256, little-endian for MD5) through block, which
 * updates the state h. */
typedef void (*fg_md_block_fn)(uint32_t *h, const uint8_t *block);
void fg_md_hash(uint32_t *h, fg_md_block_fn block, const void *data, size_t len,
                bool length_big_endian);

/* SHA-256 of data as 64 lower-case hex digits plus NUL. */
void fg_sha256_hex(const void *data, size_t len, char hex[65]);

#endif
