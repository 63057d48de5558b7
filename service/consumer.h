#ifndef RS_CONSUMER_H
#define RS_CONSUMER_H

/*
 * The consumer service: everything redstream-consumer runs, hung off one object.
 *
 * Threads (the one table; docs/ARCHITECTURE.md repeats it):
 *
 * | thread          | role                                      | owner       | stopped by |
 * |-----------------|-------------------------------------------|-------------|------------------------------------|
 * | main            | signals, start and ordered shutdown       | main()      | returns after
 * rs_consumer_stop()   | | rs-rd-<stream>  | one per stream: XREADGROUP -> work queue  |
 * rs_reader_t | stop flag + shutdown(2) on socket  | | rs-worker-<n>   | pop entry, run the
 * stream's handler       | rs_pool_t   | queue closed (drain) or abandoned  | | rs-acker        |
 * batched, pipelined XACK                   | rs_acker_t  | stop flag + broadcast, after flush |
 *
 * Every thread that talks to Redis has its own connection.
 */

#include <stdbool.h>

#include "config.h"
#include "log.h"

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

/* True when every reader is connected and its group exists. Any thread. */
bool rs_consumer_ready(const rs_consumer_t *c);

/* Graceful shutdown within cfg->workers.shutdown_timeout_ms: readers stop at once, workers
 * finish the entries already queued, every ack is flushed. What could not be finished stays
 * pending in Redis for the next start. Returns 0 when everything stopped in time, -1 when a
 * handler was still running at the deadline (the caller must then exit without freeing).
 * Main thread; once. */
int rs_consumer_stop(rs_consumer_t *c);

/* Frees the service; NULL is ignored. Only after rs_consumer_stop() returned 0, or when it
 * was never started. Main thread. */
void rs_consumer_free(rs_consumer_t *c);

#endif
