/*
 * Keyed publishing: the key sequence of redstream-producer --key-field, and the FNV-1a hash
 * that maps a key to its partition stream (partition.h states both as a contract other
 * languages can reproduce).
 *
 * DESIGN: pure functions of their arguments, cheap enough for the load generator's hot path
 * (a handful of integer operations per message, no allocation). FNV-1a was chosen over a
 * stronger hash because it is a dozen lines in any language, has no seed to agree on, and
 * spreads short keys such as "key-17" well enough for up to RS_PARTITIONS_MAX partitions.
 * The key sequence is a closed form of the message number, not a generator with state, so
 * the load generator's connections (which send interleaved message numbers) need no shared
 * state to agree on it, and a message sent again after a reconnection keeps its key.
 */

#include "partition.h"

#include <string.h>

#define FNV1A32_OFFSET_BASIS UINT32_C(2166136261)
#define FNV1A32_PRIME        UINT32_C(16777619)

uint32_t rs_fnv1a32(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t h = FNV1A32_OFFSET_BASIS;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV1A32_PRIME; /* unsigned: wraps modulo 2^32 as FNV wants */
    }
    return h;
}

uint32_t rs_partition_of(const char *key, size_t len, unsigned n)
{
    if (n <= 1)
        return 0;
    return rs_fnv1a32(key, len) % n;
}

/* floor(m * p / 100) for p <= 100, without overflowing for any m. */
static uint64_t share_of(uint64_t m, uint64_t p)
{
    return (m / 100) * p + (m % 100) * p / 100;
}

uint64_t rs_key_index(uint64_t seq, uint64_t keys, int hot_share)
{
    if (keys <= 1)
        return 0;
    uint64_t before = seq - 1; /* messages before this one; seq 0 wraps, harmlessly */
    if (hot_share < 0)
        return before % keys;
    uint64_t p = hot_share > 100 ? 100 : (uint64_t)hot_share;
    uint64_t hot_before = share_of(before, p);
    if (share_of(seq, p) != hot_before)
        return 0;
    return 1 + (before - hot_before) % (keys - 1);
}

size_t rs_key_format(char buf[RS_KEY_TEXT_MAX], uint64_t index)
{
    size_t n = sizeof(RS_KEY_PREFIX) - 1;
    memcpy(buf, RS_KEY_PREFIX, n);
    char tmp[20];
    size_t d = 0;
    do {
        tmp[d++] = (char)('0' + index % 10);
        index /= 10;
    } while (index != 0);
    while (d > 0)
        buf[n++] = tmp[--d];
    buf[n] = '\0';
    return n;
}
