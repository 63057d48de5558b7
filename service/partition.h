#ifndef RS_PARTITION_H
#define RS_PARTITION_H

/*
 * Keyed publishing: which key a message carries and which partition stream a key belongs to.
 *
 * Ordering across several consumer instances cannot come from one Redis consumer group, so a
 * logical stream is partitioned by key over N streams, `<stream>:0` ... `<stream>:<N-1>`, each
 * read by one ordered reader. An entry with key value K goes to partition
 *
 *     rs_partition_of(K) = FNV-1a-32(bytes of K) mod N
 *
 * FNV-1a, 32 bits: h = 2166136261 (the offset basis); for each byte b of the key, in order,
 * h = (h XOR b) * 16777619 (the FNV prime), modulo 2^32. No terminating NUL, no trailing
 * newline, no character-set conversion: the hash is of the bytes Redis stores. Another
 * language reproduces it in a few lines; in Python 3:
 *
 *     def partition_of(key: bytes, n: int) -> int:
 *         h = 2166136261
 *         for b in key:
 *             h = ((h ^ b) * 16777619) & 0xFFFFFFFF
 *         return h % n
 *
 * Test vectors: "" -> 0x811c9dc5, "a" -> 0xe40c292c, "foobar" -> 0xbf9cf968.
 *
 * redstream-producer --key-field F --keys K gives message n (1, 2, 3, ...) the field F with
 * the value "key-<k>", k = rs_key_index(n, K, hot_share), described below.
 *
 * Everything here is pure: no allocation, no state; any thread.
 */

#include <stddef.h>
#include <stdint.h>

/* The most keys --keys takes, and the most partitions --partitions takes. */
#define RS_KEYS_MAX       UINT64_C(10000000)
#define RS_PARTITIONS_MAX 1024u

/* The keys' text is RS_KEY_PREFIX followed by the key's index in decimal. */
#define RS_KEY_PREFIX "key-"

/* Room for any key's text with its NUL: the prefix and up to 20 digits. */
#define RS_KEY_TEXT_MAX 32

/* No hot key: rs_key_index()'s `hot_share` when --hot-key-share was not given. */
#define RS_HOT_SHARE_NONE (-1)

/* The 32-bit FNV-1a hash of the `len` bytes at `data` (NULL is allowed when len is 0). */
uint32_t rs_fnv1a32(const void *data, size_t len);

/* The partition, 0 .. n-1, of the key of `len` bytes at `key`: rs_fnv1a32(key, len) % n.
 * `n` must be at least 1 (0 is treated as 1). */
uint32_t rs_partition_of(const char *key, size_t len, unsigned n);

/* The index, 0 .. keys-1, of the key message number `seq` (counted from 1) carries, out of
 * `keys` (>= 1; 0 is treated as 1). Deterministic, so every run and every connection of the
 * load generator agrees, and every key gets its share:
 * - hot_share RS_HOT_SHARE_NONE: round robin, k = (seq - 1) mod keys.
 * - hot_share P from 0 to 100 (with keys >= 2): key 0, the hot key, gets P% of the messages,
 *   spread evenly (message seq is hot when floor(seq * P / 100) > floor((seq - 1) * P / 100),
 *   so any run of 100 consecutive messages holds exactly P hot ones), and the others go round
 *   robin over keys 1 .. keys-1 in the order they come. P = 0 leaves key 0 unused. With
 *   keys == 1 every message gets key 0 whatever P. */
uint64_t rs_key_index(uint64_t seq, uint64_t keys, int hot_share);

/* Writes the text of key `index` ("key-<index>") with a NUL into `buf`; returns its length
 * (without the NUL). */
size_t rs_key_format(char buf[RS_KEY_TEXT_MAX], uint64_t index);

#endif
