#ifndef RS_CLUSTER_SLOT_H
#define RS_CLUSTER_SLOT_H

/*
 * Redis Cluster key slots, computed exactly as Redis does (CRC16/XMODEM of the key, or of its
 * hash tag, modulo 16384), and the naming rule that keeps a stream's dead-letter stream on
 * the same slot as the stream itself, so the dead-letter transaction (MULTI, XADD to the
 * dead-letter stream, XACK on the source, EXEC) runs on one node.
 *
 * Pure functions; any thread.
 */

#include <stdbool.h>
#include <stddef.h>

#define RS_CLUSTER_SLOTS 16384

/* The slot of the `len`-byte key `key` (binary-safe). When the key holds a '{' followed later
 * by a '}' with at least one byte between them, only the bytes between the first '{' and the
 * first '}' after it are hashed (the hash tag); otherwise the whole key is. Returns
 * 0..RS_CLUSTER_SLOTS-1. */
unsigned rs_cluster_keyslot(const char *key, size_t len);

/* True when `key` has a hash tag as rs_cluster_keyslot() defines it. */
bool rs_cluster_has_hash_tag(const char *key, size_t len);

/* Writes into `out` (`outlen` bytes, NUL-terminated) the name of the dead-letter stream of
 * `stream` (a NUL-terminated name), whose dead letters get the `suffix`
 * (group.dead_letter_suffix):
 *  - standalone (`cluster` false): "<stream><suffix>", as always;
 *  - cluster, stream with a hash tag ("{orders}.eu"): "<stream><suffix>" too, since the tag
 *    (the first one) still decides the slot;
 *  - cluster, stream without one ("orders", "a{b"): "{<stream>}<suffix>" ("{orders}:dlq",
 *    "{a{b}:dlq"), whose tag is the whole stream name, so it hashes like the stream.
 * In cluster mode rs_cluster_keyslot() of the result equals that of the stream (checked
 * before returning). Returns 0, or -1 with a message naming the stream in `err` when the
 * name cannot be built: it does not fit in `outlen`, or (cluster mode) the stream has no
 * hash tag but contains '}' (or is empty), so no tag could reproduce its slot (rename it, or
 * give it a tag). */
int rs_cluster_dlq_name(const char *stream, const char *suffix, bool cluster, char *out,
                        size_t outlen, char *err, size_t errlen);

#endif
