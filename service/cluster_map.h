#ifndef RS_CLUSTER_MAP_H
#define RS_CLUSTER_MAP_H

/*
 * The slot map of a Redis Cluster, as CLUSTER SLOTS reports it, and the redirections
 * (-MOVED, -ASK) a node answers with when it does not own a key's slot.
 *
 * These parse input from the network: every reply element's type and size is checked, and a
 * malformed reply is refused with a message, never trusted (fuzz/fuzz_cluster_map.c).
 *
 * Pure functions over caller-owned values; any thread.
 */

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster_slot.h"

/* Longest host name or address kept for a node (longer ones are refused). */
#define RS_CLUSTER_HOST_MAX 256

/* A master node's address. */
typedef struct {
    char host[RS_CLUSTER_HOST_MAX]; /* as the cluster announces it (IPv4, IPv6 or hostname) */
    int port;                       /* 1..65535 */
} rs_cluster_node_t;

/* Which master serves each slot. */
typedef struct {
    rs_cluster_node_t *nodes; /* the distinct masters, in the order first seen; owned */
    size_t nnodes;
    uint16_t owner[RS_CLUSTER_SLOTS]; /* index into nodes, or RS_CLUSTER_NO_OWNER */
} rs_cluster_map_t;

#define RS_CLUSTER_NO_OWNER UINT16_MAX

/* Fills `out` (whose previous contents are ignored, not freed) from a CLUSTER SLOTS reply:
 * an array of [start, end, master, replica...], each node [host, port, id?, endpoints?, ...]
 * with host a string (or nil), port an integer (or a string of digits), id a string, and
 * endpoints (Redis 7: {"hostname": ...}) an array (RESP2) or a map (RESP3); elements past
 * these are ignored, as Redis asks of clients. Only the masters are kept, each distinct
 * host:port once in `nodes`; replicas are checked for shape only. A master whose host is ""
 * or nil (Redis's "the address you asked"; nil is Redis 7's unknown-endpoint) is given
 * `asked_host` (refused when that is NULL or ""); one whose host is "?" (hostnames preferred
 * but the node announces none) is refused. Slots no range covers are left
 * RS_CLUSTER_NO_OWNER (a cluster being set up, or a slot being failed over). Ranges that
 * overlap are refused, not resolved: one node's view never overlaps.
 * Returns 0, or -1 with a message in `err` on an error reply, a malformed reply (wrong
 * types, a range outside 0..16383 or with end < start, overlapping ranges, a port outside
 * 1..65535, a host too long or holding a NUL) or when out of memory; `out` then owns nothing
 * (every slot RS_CLUSTER_NO_OWNER). The message names the element ("range 2 (slots
 * 10923-16383): master port is not in 1..65535"), not the node or the command: the caller
 * adds those. `reply` is borrowed for the call. The caller frees with rs_cluster_map_clear()
 * (also after a failure, harmlessly). */
int rs_cluster_map_parse(const redisReply *reply, const char *asked_host, rs_cluster_map_t *out,
                         char *err, size_t errlen);

/* Frees what the map owns and leaves it empty (every slot RS_CLUSTER_NO_OWNER); NULL is
 * ignored. `map` must have been filled by rs_cluster_map_parse() (successfully or not) or
 * zeroed: on an uninitialised map it frees a garbage pointer. */
void rs_cluster_map_clear(rs_cluster_map_t *map);

/* The master serving `slot`, or NULL when the map has none (or `slot` is past 16383).
 * Borrowed from `map` until it is cleared. */
const rs_cluster_node_t *rs_cluster_map_owner(const rs_cluster_map_t *map, unsigned slot);

/* True when both maps give every slot the same master address (host and port). */
bool rs_cluster_map_equal(const rs_cluster_map_t *a, const rs_cluster_map_t *b);

/* Slots with no master in `map`. */
size_t rs_cluster_map_unowned(const rs_cluster_map_t *map);

typedef enum {
    RS_REDIRECT_NONE = 0,
    RS_REDIRECT_MOVED, /* "MOVED <slot> <host>:<port>": the slot lives there now */
    RS_REDIRECT_ASK,   /* "ASK <slot> <host>:<port>": this key, this once, there (migration) */
} rs_redirect_kind_t;

typedef struct {
    rs_redirect_kind_t kind;
    unsigned slot;
    rs_cluster_node_t node;
} rs_redirect_t;

/* Parses the text of an error reply (`msg`, `len` bytes, as reply->str/len; binary-safe).
 * Returns RS_REDIRECT_MOVED or RS_REDIRECT_ASK with `out` filled, or RS_REDIRECT_NONE (`out`
 * untouched) when the text is anything else or is malformed: the exact form is
 * "MOVED|ASK <slot> <host>:<port>", single spaces, slot and port in decimal without leading
 * zeros, nothing after the port; a slot past 16383, no port, a port outside 1..65535, a host
 * with a space, control byte or NUL, longer than RS_CLUSTER_HOST_MAX - 1, or "?" (no
 * address known) is refused. Redis 7 writes an unknown endpoint as ":<port>" (empty host):
 * `out->node.host` is then `asked_host` (refused when that is NULL or ""). IPv6 hosts are
 * written by Redis without brackets ("MOVED 1 ::1:7001"): the port is after the last ':'. */
rs_redirect_kind_t rs_cluster_redirect_parse(const char *msg, size_t len, const char *asked_host,
                                             rs_redirect_t *out);

#endif
