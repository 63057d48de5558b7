#ifndef RS_CONSUMER_H
#define RS_CONSUMER_H

/*
 * The consumer service: everything redstream-consumer runs, hung off one object.
 *
 * Threads (the one table; docs/ARCHITECTURE.md repeats it with more words):
 *
 * | thread (name)   | role                                 | owner        | stopped by          |
 * |-----------------|--------------------------------------|--------------|---------------------|
 * | main            | signals, start, ordered shutdown     | main()       | returns after stop  |
 * | rs-rd-<stream>  | one per stream: XREADGROUP -> queue  | rs_reader_t  | flag + shutdown(2)  |
 * | rs-worker-<n>   | pop an entry, run its handler        | rs_pool_t    | queue closed        |
 * | rs-retry        | XCLAIM failed entries after backoff  | rs_retry_t   | flag + broadcast    |
 * | rs-acker        | batched XACK, dead letters           | rs_acker_t   | flag, after flush   |
 * | MHD-worker (3)  | HTTP: /healthz /readyz /streams ...  | rs_health_t  | MHD_stop_daemon()   |
 * | rs-http-reaper  | closes HTTP requests over time limit | rs_health_t  | flag + broadcast    |
 * | rs-trace        | OTLP export of buffered spans        | exporter     | flag + deadline     |
 *
 * The MHD-worker threads are libmicrohttpd's (it names them); they only read atomics of this
 * service, never take a lock a reader or worker holds, and open their own Redis connections.
 * Every thread that talks to Redis has its own connection.
 */

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "log.h"
#include "metrics.h"

typedef struct rs_consumer rs_consumer_t;

/* Builds the service for `cfg` (borrowed for the consumer's lifetime, as is `log`): one
 * stream state with its handler per configured stream, the queue, readers, workers and the
 * acknowledger. Starts no thread and touches no network. Returns NULL with a message in
 * `err`. Caller frees with rs_consumer_free(). Main thread. */
rs_consumer_t *rs_consumer_new(const rs_config_t *cfg, rs_logger_t *log, char *err, size_t errlen);

/* Starts the acknowledger, the workers and the readers. A Redis that is down is not an
 * error: the threads keep reconnecting. Returns 0, or -1 with a message in `err` when a
 * thread cannot be created. Main thread. */
int rs_consumer_start(rs_consumer_t *c, char *err, size_t errlen);

/* Liveness, for /healthz. While running: true when every worker thread and every reader
 * thread is alive and each reader has completed a read (a BLOCK timeout counts) within
 * health.liveness_timeout_ms, not counting time it spent waiting for the workers
 * (backpressure is not a stall). Before rs_consumer_start() succeeded: false ("starting").
 * Once rs_consumer_stop() has begun: true, since threads then end on purpose and the process
 * is on its way out; rs_consumer_stopping() tells that case apart. When false, `why` holds one
 * line per problem, each naming its stream ("stream events: the reader has not completed a
 * read for 31000 ms (limit 30000 ms); it is connecting to Redis"). Any thread; lock-free,
 * never blocks. */
bool rs_consumer_alive(const rs_consumer_t *c, char *why, size_t whylen);

/* Readiness, for /readyz: true while running with every reader connected and its group
 * existing. False before the start, once rs_consumer_stop() has begun ("shutting down"), and
 * while a reader is not connected, with one line per stream in `why` saying why ("stream
 * events: not connected: Redis refused the credentials"). Any thread; lock-free. */
bool rs_consumer_ready(const rs_consumer_t *c, char *why, size_t whylen);

/* True once rs_consumer_stop() has begun. Any thread; lock-free. */
bool rs_consumer_stopping(const rs_consumer_t *c);

/* The number of configured streams (the size rs_consumer_snapshot() needs). Any thread. */
size_t rs_consumer_nstreams(const rs_consumer_t *c);

/* Fills `m`'s service fields (group and consumer names, queue, workers, retry, reconnects over
 * every Redis connection) and its `streams`, pointed at `streams` (room for
 * rs_consumer_nstreams() entries, caller-owned), with each stream's counters, in-flight count,
 * reader state and handler-duration histogram. Leaves `version`, the process_* fields and
 * `redis` alone. Names are borrowed for the consumer's lifetime. Any thread; lock-free (only
 * atomic loads), never blocks. */
void rs_consumer_snapshot(const rs_consumer_t *c, rs_metrics_t *m, rs_metrics_stream_t *streams);

/* Graceful shutdown within cfg->workers.shutdown_timeout_ms. First marks the service as
 * stopping (rs_consumer_ready() turns false), then readers stop at once, workers
 * finish the entries already queued, every ack is flushed. What could not be finished stays
 * pending in Redis for the next start. Returns 0 when everything stopped in time, -1 when a
 * handler was still running at the deadline (the caller must then exit without freeing).
 * Main thread; once. */
int rs_consumer_stop(rs_consumer_t *c);

/* Frees the service; NULL is ignored. Only after rs_consumer_stop() returned 0, or when it
 * was never started. Main thread. */
void rs_consumer_free(rs_consumer_t *c);

#endif
