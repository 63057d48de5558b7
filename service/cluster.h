#ifndef RS_CLUSTER_H
#define RS_CLUSTER_H

/*
 * The router of cluster mode (redis.cluster = true): which master serves a key, from the
 * slot map that CLUSTER SLOTS reports, kept current as the cluster changes.
 *
 * One rs_cluster_t is shared by every thread of a program that talks to the cluster (the
 * readers, the acknowledger, the retry thread, the HTTP server, the producer's connections).
 * Each of those keeps its own connections (rs_redis_route() binds one to a key); the router
 * only answers "where does this key live" and refreshes its map when told the answer was
 * wrong (a -MOVED reply, a master that stopped answering).
 */

#include <stdbool.h>
#include <stddef.h>

#include "cluster_map.h"
#include "config.h"
#include "log.h"
#include "redis_conn.h"

/* Refreshes closer together than this are answered from the map just fetched, so a burst of
 * -MOVED replies from many threads costs one CLUSTER SLOTS. */
#define RS_CLUSTER_REFRESH_MIN_MS 100

typedef struct rs_cluster rs_cluster_t;

/* Creates a router for the cluster that cfg->redis describes (seeds: redis.nodes, or
 * redis.host:port; credentials and connect timeout as in standalone mode). Copies what it
 * needs from `cfg`; `log` is borrowed for the router's lifetime. Does not touch the network:
 * the first rs_cluster_owner() or rs_cluster_refresh() fetches the map. Returns NULL with a
 * message in `err` when out of memory or a seed does not parse. Caller frees with
 * rs_cluster_free(). */
rs_cluster_t *rs_cluster_new(const rs_config_t *cfg, rs_logger_t *log, char *err, size_t errlen);

/* Frees the router; NULL is ignored. No other thread may be using it. */
void rs_cluster_free(rs_cluster_t *c);

/* Fetches the slot map with CLUSTER SLOTS, asking the masters of the current map and then the
 * seeds, each in turn until one answers with a usable map. One refresh runs at a time: a call
 * made while another runs waits for it and returns its outcome; a call within
 * RS_CLUSTER_REFRESH_MIN_MS of the last successful refresh returns RS_REDIS_OK at once. Logs
 * each change of the map (INFO) and the first of a run of failures (WARN). Blocks for up to
 * connect_timeout_ms per node tried. Returns RS_REDIS_OK, or, with a message in `err`, the
 * worst failure among the nodes tried: RS_REDIS_ERR_AUTH (a node refused the credentials),
 * RS_REDIS_ERR_REPLY (a node is not in cluster mode, or sent a malformed map), else
 * RS_REDIS_ERR_IO. Any thread; the caller holds no lock. */
rs_redis_status_t rs_cluster_refresh(rs_cluster_t *c, char *err, size_t errlen);

/* Writes into `out` the master that serves the `len`-byte key `key`. Fetches the map first
 * when there is none yet, and again (rate-limited) when the key's slot has no master. Returns
 * RS_REDIS_OK, or the failure of that fetch with a message in `err`; RS_REDIS_ERR_IO when the
 * slot has no master (a failover under way). May block as rs_cluster_refresh() does. Any
 * thread. */
rs_redis_status_t rs_cluster_owner(rs_cluster_t *c, const char *key, size_t len,
                                   rs_cluster_node_t *out, char *err, size_t errlen);

/* Takes note of a -MOVED reply: the slot is served by `to` now. Updates that slot at once and
 * then refreshes the whole map (a resharding or failover usually moved more than one slot).
 * Any thread. */
void rs_cluster_moved(rs_cluster_t *c, unsigned slot, const rs_cluster_node_t *to);

/* Copies into `out` up to `max` of the masters in the current map (those serving at least one
 * slot) and returns how many there are, which may exceed `max`. Does not fetch. Any thread. */
size_t rs_cluster_masters(rs_cluster_t *c, rs_cluster_node_t *out, size_t max);

#endif
