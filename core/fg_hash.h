/* Fast non-cryptographic hashing for hash-consing (not for untrusted-collision resistance
 * beyond a per-process seed). */
#ifndef FG_HASH_H
#define FG_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t fg_hash_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 31);
}

static inline uint64_t fg_hash_bytes(uint64_t seed, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = fg_hash_mix(h, v);
        p += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    if (len)
        memcpy(&tail, p, len);
    return fg_hash_mix(h, tail);
}

#endif
