#ifndef RS_REDIS_ROUTES_H
#define RS_REDIS_ROUTES_H

/*
 * One thread's connections in cluster mode, one per key (stream) it writes to: the
 * acknowledger and the retry thread serve every stream, and in a cluster each stream may
 * live on another master, so each gets its own connection routed to its key
 * (rs_redis_route()). The connections are made on first use and kept for the table's life.
 */

#include <stdint.h>

#include "backoff.h"
#include "cluster.h"
#include "config.h"
#include "log.h"
#include "redis_conn.h"

typedef struct rs_redis_routes rs_redis_routes_t;

/* One key's connection, and the owner's note of when to try that key's master again: a thread
 * serving many streams must not wait on one master that is down while the others answer, so
 * it gives each key its own backoff instead of blocking in rs_redis_connect_retry(). */
typedef struct {
    rs_redis_t *redis;    /* routed to the key */
    int64_t retry_at_ns;  /* CLOCK_MONOTONIC; before it, leave this key's work for later */
    rs_backoff_t backoff; /* the waits between failed attempts (100 ms doubling to 5 s) */
    unsigned failures;    /* attempts failed in a row */
} rs_redis_route_t;

/* Creates an empty table whose connections use cfg->redis's credentials and timeouts, wait
 * up to `command_timeout_ms` per reply, are named "<client_name> <key>" in messages, and are
 * routed by `cluster`. `cfg`, `cluster` and `log` are borrowed for the table's lifetime.
 * Returns NULL when out of memory. Caller frees with rs_redis_routes_free(). */
rs_redis_routes_t *rs_redis_routes_new(const rs_config_t *cfg, rs_cluster_t *cluster,
                                       const char *client_name, int command_timeout_ms,
                                       rs_logger_t *log);

/* The route of `key` (NUL-terminated), made (unconnected, due at once) on first use. Borrowed
 * until rs_redis_routes_free(). Returns NULL when out of memory. Owner thread only. */
rs_redis_route_t *rs_redis_routes_get(rs_redis_routes_t *t, const char *key);

/* Records a failed attempt on `route` at `now_ns`: sets its retry time one backoff step later
 * and returns that step in milliseconds. Owner thread only. */
long rs_redis_route_failed(rs_redis_route_t *route, int64_t now_ns);

/* Records a successful attempt: due at once again, backoff reset. Returns how many attempts
 * had failed before it (for a recovery log line). Owner thread only. */
unsigned rs_redis_route_succeeded(rs_redis_route_t *route);

/* Reconnections summed over the table's connections (rs_redis_reconnects()). Any thread;
 * lock-free. */
unsigned long rs_redis_routes_reconnects(const rs_redis_routes_t *t);

/* Closes every connection and frees the table; NULL is ignored. Owner thread, after any
 * other thread's last rs_redis_routes_reconnects(). */
void rs_redis_routes_free(rs_redis_routes_t *t);

#endif
