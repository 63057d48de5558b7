#ifndef RS_CONSUMER_H
#define RS_CONSUMER_H

/*
 * The consumer service: everything redstream-consumer runs, hung off one object.
 *
 * Threads (the one table; docs/ARCHITECTURE.md repeats it with more words):
 *
 * | thread (name)   | role                                 | owner        | stopped by          |
 * |-----------------|--------------------------------------|--------------|---------------------|
 * | main            | signals, reload, systemd, shutdown   | main()       | returns after stop  |
 * | rs-rd-<stream>  | one per stream: XREADGROUP -> queue  | rs_reader_t  | flag + shutdown(2)  |
 * | rs-worker-<n>   | pop an entry, run its handler        | rs_pool_t    | queue closed        |
 * | rs-retry        | XCLAIM failed entries after backoff  | rs_retry_t   | flag + broadcast    |
 * | rs-acker        | batched XACK, dead letters           | rs_acker_t   | flag, after flush   |
 * | MHD-worker (3)  | HTTP: /healthz /readyz /streams ...  | rs_health_t  | MHD_stop_daemon()   |
 * | rs-http-reaper  | closes HTTP requests over time limit;| rs_health_t  | flag + broadcast    |
 * |                 | samples the dashboard's stats ring   |              |                     |
 * | rs-trace        | OTLP export of buffered spans        | exporter     | flag + deadline     |
 *
 * The MHD-worker threads are libmicrohttpd's (it names them); they read atomics of this
 * service under the stream list's lock (which only main takes besides them, to change the
 * list), never take a lock a reader or worker holds, and open their own Redis connections.
 * A reload stops and joins a retired stream's reader; a new stream's reader is started.
 * Every thread that talks to Redis has its own connection.
 */

#include <stdbool.h>
#include <stddef.h>

#include "cluster.h"
#include "config.h"
#include "log.h"
#include "metrics.h"

typedef struct rs_consumer rs_consumer_t;

/* Builds the service for `cfg` (borrowed for the consumer's lifetime, as is `log`; reloads
 * never replace it, they only copy the streams' entries from a newer configuration): one
 * stream state with its handler per configured stream, the queue, readers, workers and the
 * acknowledger. Starts no thread and touches no network. Returns NULL with a message in
 * `err`. Caller frees with rs_consumer_free(). Main thread. */
rs_consumer_t *rs_consumer_new(const rs_config_t *cfg, rs_logger_t *log, char *err, size_t errlen);

/* Starts the acknowledger, the workers and the readers. A Redis that is down is not an
 * error: the threads keep reconnecting. Returns 0, or -1 with a message in `err` when a
 * thread cannot be created. Main thread. */
int rs_consumer_start(rs_consumer_t *c, char *err, size_t errlen);

/* Applies a new configuration, read and validated by the caller (borrowed for the call; the
 * streams copy what they keep), without a restart:
 *   - a stream that is new gets its reader, which creates the group as at start;
 *   - a stream no longer listed stops being read at once; the entries already read finish
 *     with their handler and are acknowledged, then its state is freed (rs_consumer_tick());
 *   - a stream whose handler or handler settings changed is retired the same way and then
 *     started again with the new settings, so every entry read after the reload gets them and
 *     none is handled by both;
 *   - log.level applies at once;
 *   - every other setting (redis, group, workers, health, tracing) needs a restart: each
 *     changed key is named in a warning and the running value stays.
 * Ids waiting for a retry of a retired stream stay pending in Redis and are delivered again
 * by the next reader of the stream (its recovery pass) or claimed by another consumer.
 * Every new handler is built before anything changes: when one cannot be built (a CA file
 * that vanished, out of memory), returns -1 with the reason in `err` and nothing changed.
 * Returns -1 as well, after applying the rest, when a new reader thread cannot be started.
 * Returns 0 otherwise. Blocks while retired readers stop (they are woken at once). Main
 * thread, after rs_consumer_start(). */
int rs_consumer_reload(rs_consumer_t *c, const rs_config_t *next, char *err, size_t errlen);

/* Finishes what reloads left in progress: frees each retired stream whose entries have all
 * settled, starting its successor when it was changed. Returns how many streams are still
 * retiring (the caller ticks sooner while any are). Never blocks on the network. Main thread;
 * call it at least once a second. */
size_t rs_consumer_tick(rs_consumer_t *c);

/* Liveness, for /healthz. While running: true when every worker thread and every reader
 * thread is alive and each reader has completed a read (a BLOCK timeout counts) within
 * health.liveness_timeout_ms, not counting time it spent waiting for the workers
 * (backpressure is not a stall). Before rs_consumer_start() succeeded: false ("starting").
 * Once rs_consumer_stop() has begun: true, since threads then end on purpose and the process
 * is on its way out; rs_consumer_stopping() tells that case apart. When false, `why` holds one
 * line per problem, each naming its stream ("stream events: the reader has not completed a
 * read for 31000 ms (limit 30000 ms); it is connecting to Redis"). Streams a reload is
 * retiring are not checked. Any thread; takes the stream list's lock briefly, never waits for
 * a reader or a worker. */
bool rs_consumer_alive(rs_consumer_t *c, char *why, size_t whylen);

/* The systemd watchdog's check: as rs_consumer_alive(), except that a reader that is only
 * reconnecting to a Redis that is down counts as alive (a restart would not bring Redis back).
 * Any thread; as rs_consumer_alive(). */
bool rs_consumer_watchdog(rs_consumer_t *c, char *why, size_t whylen);

/* Readiness, for /readyz: true while running with every reader connected and its group
 * existing. False before the start, once rs_consumer_stop() has begun ("shutting down"), and
 * while a reader is not connected, with one line per stream in `why` saying why ("stream
 * events: not connected: Redis refused the credentials"). Any thread; as rs_consumer_alive(). */
bool rs_consumer_ready(rs_consumer_t *c, char *why, size_t whylen);

/* True once rs_consumer_stop() has begun. Any thread; lock-free. */
bool rs_consumer_stopping(const rs_consumer_t *c);

/* One line for a service manager's status ("3 streams; 1200 messages handled, 2 failed, 0
 * dead-lettered; queue 0/1024"). Any thread; as rs_consumer_alive(). */
void rs_consumer_status(rs_consumer_t *c, char *buf, size_t buflen);

/* Fills `m`'s service fields (group and consumer names, queue, workers, retry, reconnects over
 * every Redis connection) and its `streams` (allocated, names copied: a reload may free a
 * stream right after) with each configured stream's counters, in-flight count, reader state
 * and handler-duration histogram. Leaves `version`, the process_* fields and `redis` alone.
 * The group and consumer names are borrowed for the consumer's lifetime. Returns 0, or -1
 * when out of memory (then `m->streams` is NULL). Caller releases the streams with
 * rs_consumer_snapshot_clear(). Any thread; as rs_consumer_alive(). */
int rs_consumer_snapshot(rs_consumer_t *c, rs_metrics_t *m);

/* Frees what rs_consumer_snapshot() allocated in `m`. */
void rs_consumer_snapshot_clear(rs_metrics_t *m);

/* Graceful shutdown within cfg->workers.shutdown_timeout_ms. First marks the service as
 * stopping (rs_consumer_ready() turns false), then readers stop at once, workers
 * finish the entries already queued, every ack is flushed. What could not be finished stays
 * pending in Redis for the next start. Returns 0 when everything stopped in time, -1 when a
 * handler was still running at the deadline (the caller must then exit without freeing).
 * Main thread; once. */
int rs_consumer_stop(rs_consumer_t *c);

/* Frees the service; NULL is ignored. Only after rs_consumer_stop() returned 0, or when it
 * was never started. Main thread. */
/* Cluster mode's router (borrowed for the consumer's lifetime), or NULL in standalone mode:
 * the HTTP server asks it which masters to query. Any thread. */
rs_cluster_t *rs_consumer_cluster(const rs_consumer_t *c);

void rs_consumer_free(rs_consumer_t *c);

#endif
