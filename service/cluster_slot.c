/*
 * Redis Cluster key slots and the dead-letter stream name that shares its stream's slot.
 *
 * A cluster routes each key by its slot: CRC16 (the XMODEM variant: polynomial 0x1021, initial
 * value 0, no reflection, no final XOR) of the key, or of its hash tag, modulo 16384. This is
 * the same computation as Redis's src/crc16.c and keyHashSlot() in src/cluster.c, so a slot
 * computed here is the one CLUSTER KEYSLOT answers (tests/unit/test_cluster_slot.c holds
 * values read from a real server).
 *
 * DESIGN: pure functions, no allocation. The CRC uses Redis's 256-entry table (generated from
 * the polynomial and checked against Redis's) rather than a bit loop: the slot of every key a
 * producer writes may be computed on a hot path. The dead-letter name is built so that its
 * hash tag is the stream's own tag, or the whole stream name when it has none; the function
 * then recomputes both slots and refuses to return a name whose slot differs, so a mistake
 * in the rule can never send a dead-letter transaction across two nodes (Redis would refuse
 * it with CROSSSLOT, and entries would stay pending for ever). That check is a plain `if`,
 * not assert(): the release builds define NDEBUG, and this is exactly the invariant that must
 * hold there.
 */

#include "cluster_slot.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* CRC16/XMODEM, one entry per byte value: the table of Redis's src/crc16.c. */
static const uint16_t crc16_table[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b,
    0xc18c, 0xd1ad, 0xe1ce, 0xf1ef, 0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de, 0x2462, 0x3443, 0x0420, 0x1401,
    0x64e6, 0x74c7, 0x44a4, 0x5485, 0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4, 0xb75b, 0xa77a, 0x9719, 0x8738,
    0xf7df, 0xe7fe, 0xd79d, 0xc7bc, 0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b, 0x5af5, 0x4ad4, 0x7ab7, 0x6a96,
    0x1a71, 0x0a50, 0x3a33, 0x2a12, 0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41, 0xedae, 0xfd8f, 0xcdec, 0xddcd,
    0xad2a, 0xbd0b, 0x8d68, 0x9d49, 0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78, 0x9188, 0x81a9, 0xb1ca, 0xa1eb,
    0xd10c, 0xc12d, 0xf14e, 0xe16f, 0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e, 0x02b1, 0x1290, 0x22f3, 0x32d2,
    0x4235, 0x5214, 0x6277, 0x7256, 0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405, 0xa7db, 0xb7fa, 0x8799, 0x97b8,
    0xe75f, 0xf77e, 0xc71d, 0xd73c, 0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab, 0x5844, 0x4865, 0x7806, 0x6827,
    0x18c0, 0x08e1, 0x3882, 0x28a3, 0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92, 0xfd2e, 0xed0f, 0xdd6c, 0xcd4d,
    0xbdaa, 0xad8b, 0x9de8, 0x8dc9, 0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8, 0x6e17, 0x7e36, 0x4e55, 0x5e74,
    0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

static uint16_t crc16(const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^ crc16_table[((crc >> 8) ^ p[i]) & 0xff]);
    return crc;
}

/* Finds the hash tag of `key`: sets *start and *taglen and returns true when there is one
 * (keyHashSlot()'s rule: the first '{', then the first '}' after it, at least one byte
 * between them). */
static bool find_hash_tag(const char *key, size_t len, size_t *start, size_t *taglen)
{
    const char *open = len > 0 ? memchr(key, '{', len) : NULL;
    if (open == NULL)
        return false;
    size_t s = (size_t)(open - key);
    const char *close = memchr(open + 1, '}', len - s - 1);
    if (close == NULL || close == open + 1)
        return false;
    *start = s + 1;
    *taglen = (size_t)(close - open) - 1;
    return true;
}

unsigned rs_cluster_keyslot(const char *key, size_t len)
{
    size_t start = 0, taglen = len;
    if (find_hash_tag(key, len, &start, &taglen))
        return crc16(key + start, taglen) & (RS_CLUSTER_SLOTS - 1);
    return crc16(key, len) & (RS_CLUSTER_SLOTS - 1);
}

bool rs_cluster_has_hash_tag(const char *key, size_t len)
{
    size_t start, taglen;
    return find_hash_tag(key, len, &start, &taglen);
}

int rs_cluster_dlq_name(const char *stream, const char *suffix, bool cluster, char *out,
                        size_t outlen, char *err, size_t errlen)
{
    size_t slen = strlen(stream), xlen = strlen(suffix);
    bool wrap = cluster && !rs_cluster_has_hash_tag(stream, slen);
    if (wrap && slen == 0) {
        /* "{}<suffix>" has an empty tag, so the whole name would be hashed. */
        snprintf(err, errlen,
                 "stream \"\": in cluster mode a stream needs a name (its dead-letter stream "
                 "could not share its slot)");
        return -1;
    }
    if (wrap && memchr(stream, '}', slen) != NULL) {
        /* "{a}b}<suffix>" would hash "a", not "a}b". Prefixing '{' makes the part before the
         * first '}' a tag, unless the name starts with '}'; then a tag in front is needed. */
        snprintf(err, errlen,
                 "stream \"%s\": in cluster mode a stream name without a hash tag must not "
                 "contain '}' (its dead-letter stream could not share its slot); rename it or "
                 "give it a hash tag like %s%s",
                 stream, stream[0] == '}' ? "{tag}" : "{", stream);
        return -1;
    }
    size_t need = (wrap ? slen + 2 : slen) + xlen + 1;
    if (need > outlen) {
        snprintf(err, errlen,
                 "stream \"%s\": its dead-letter stream name (%zu bytes) is longer than the "
                 "%zu allowed",
                 stream, need - 1, outlen > 0 ? outlen - 1 : 0);
        return -1;
    }
    size_t n = 0;
    if (wrap)
        out[n++] = '{';
    memcpy(out + n, stream, slen);
    n += slen;
    if (wrap)
        out[n++] = '}';
    memcpy(out + n, suffix, xlen);
    n += xlen;
    out[n] = '\0';
    if (cluster && rs_cluster_keyslot(out, n) != rs_cluster_keyslot(stream, slen)) {
        snprintf(err, errlen,
                 "stream \"%s\": internal error: dead-letter stream \"%s\" would be on slot %u, "
                 "the stream on slot %u",
                 stream, out, rs_cluster_keyslot(out, n), rs_cluster_keyslot(stream, slen));
        out[0] = '\0';
        return -1;
    }
    return 0;
}
