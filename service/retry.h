#ifndef RS_RETRY_H
#define RS_RETRY_H

/*
 * The retry scheduler: entries whose handler failed with a retryable error wait here, without
 * holding a worker, until their backoff has passed; then they are delivered again through
 * Redis (XCLAIM, which counts the delivery in Redis's own counter) and put back in the work
 * queue.
 *
 * Only ids wait here, not whole entries: the fields are fetched again by XCLAIM, so a long
 * outage of a webhook costs a few bytes per waiting entry. The number of unordered entries
 * waiting is capped at the queue's capacity; past that, a failed entry is simply left pending,
 * and XAUTOCLAIM delivers it again after group.claim_idle_ms. An ordered entry keeps its lane
 * (and a slot of the queue) while it waits, so the later entries of its key wait behind it;
 * the queue's capacity bounds how many do, and the schedule always has room for them.
 */

#include <stdint.h>

#include "cluster.h"
#include "config.h"
#include "log.h"
#include "queue.h"
#include "stream.h"

typedef struct rs_retry rs_retry_t;

/* Creates the scheduler, with its own Redis connection built from cfg->redis and room for
 * cfg->workers.queue_capacity waiting entries. Everything is borrowed for its lifetime.
 * Returns NULL with a message in `err`. Caller frees with rs_retry_free(). Main thread. */
rs_retry_t *rs_retry_new(const rs_config_t *cfg, rs_queue_t *q, rs_logger_t *log, char *err,
                         size_t errlen);

/* Starts the scheduler thread. Returns 0, or -1 with a message in `err`. Main thread. */
int rs_retry_start(rs_retry_t *r, char *err, size_t errlen);

/* Cluster mode: claims each stream's retries on a connection of its own, routed by `cluster`
 * (borrowed for the scheduler's lifetime) to the master serving the stream. Returns 0, or -1
 * when out of memory. Main thread, before rs_retry_start(). */
int rs_retry_set_cluster(rs_retry_t *r, rs_cluster_t *cluster);

/* Schedules entry `id` of `stream` (delivered `delivery` times so far) for another delivery
 * in `delay_ms`. Copies the id. The entry stays in flight for its stream until it is
 * delivered again (or dropped, when Redis no longer has it pending for us). An ordered entry
 * passes its `lane`, held with rs_queue_hold() before the call (NULL: unordered); the
 * scheduler then gives it back to the queue with the entry, or releases it.
 * Returns 0, or -1 when the schedule is full (never for an ordered entry) or stopping: the
 * caller then leaves the entry pending, settles it, and unholds its lane. Never blocks on the
 * network. Any thread. */
int rs_retry_schedule(rs_retry_t *r, rs_stream_t *stream, const char *id, uint64_t delivery,
                      int64_t delay_ms, struct rs_lane *lane);

/* Drops every entry of `stream` still waiting (not those the thread is claiming now: they go
 * on to the queue), releases their lanes, settles them for the stream, and returns how many.
 * They stay pending in Redis, for this consumer's next recovery pass or another consumer's
 * claim. Used when a reload retires the stream. Main thread; never blocks on the network. */
size_t rs_retry_cancel_stream(rs_retry_t *r, rs_stream_t *stream);

/* Entries waiting now. Any thread; lock-free. */
size_t rs_retry_waiting(const rs_retry_t *r);

/* Stops the thread; entries still waiting stay pending in Redis and are delivered again
 * after the next start. Main thread; before the queue is closed. */
void rs_retry_stop(rs_retry_t *r);

/* Reconnections of the scheduler's Redis connection (rs_redis_reconnects()). Any thread;
 * lock-free. */
unsigned long rs_retry_reconnects(const rs_retry_t *r);

/* Frees the scheduler (stopping it first if needed); NULL is ignored. Main thread. */
void rs_retry_free(rs_retry_t *r);

#endif
