#ifndef RS_REDIS_ROUTES_H
#define RS_REDIS_ROUTES_H

/*
 * One thread's connections in cluster mode, one per key (stream) it writes to: the
 * acknowledger and the retry thread serve every stream, and in a cluster each stream may
 * live on another master, so each gets its own connection routed to its key
 * (rs_redis_route()). The connections are made on first use and kept for the table's life.
 */

#include "cluster.h"
#include "config.h"
#include "log.h"
#include "redis_conn.h"

typedef struct rs_redis_routes rs_redis_routes_t;

/* Creates an empty table whose connections use cfg->redis's credentials and timeouts, wait
 * up to `command_timeout_ms` per reply, are named "<client_name> <key>" in messages, and are
 * routed by `cluster`. `cfg`, `cluster` and `log` are borrowed for the table's lifetime.
 * Returns NULL when out of memory. Caller frees with rs_redis_routes_free(). */
rs_redis_routes_t *rs_redis_routes_new(const rs_config_t *cfg, rs_cluster_t *cluster,
                                       const char *client_name, int command_timeout_ms,
                                       rs_logger_t *log);

/* The connection for `key` (NUL-terminated), made (unconnected) on first use. Borrowed until
 * rs_redis_routes_free(). Returns NULL when out of memory. Owner thread only. */
rs_redis_t *rs_redis_routes_get(rs_redis_routes_t *t, const char *key);

/* Reconnections summed over the table's connections (rs_redis_reconnects()). Any thread;
 * lock-free. */
unsigned long rs_redis_routes_reconnects(const rs_redis_routes_t *t);

/* Closes every connection and frees the table; NULL is ignored. Owner thread, after any
 * other thread's last rs_redis_routes_reconnects(). */
void rs_redis_routes_free(rs_redis_routes_t *t);

#endif
