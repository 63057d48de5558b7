#ifndef RS_QUEUE_H
#define RS_QUEUE_H

/*
 * The bounded work queue between the readers (producers of entries) and the worker pool
 * (consumers of entries): many writers, many readers, a fixed capacity.
 *
 * Capacity is enforced by reservation: a reader first reserves the slots it will fill, asks
 * Redis for no more entries than it reserved, pushes what arrives and gives back the rest.
 * The queue therefore never holds more than its capacity, and a slow handler pushes back on
 * Redis (readers stop reading) instead of growing memory.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "entry.h"

typedef struct rs_queue rs_queue_t;

/* Creates a queue of `capacity` (>= 1) entries. Returns NULL when out of memory. Caller frees
 * with rs_queue_free(). */
rs_queue_t *rs_queue_new(size_t capacity);

/* Frees the queue and every entry still in it (those entries stay pending in Redis and are
 * handled after a restart). NULL is ignored. No thread may use the queue any more. */
void rs_queue_free(rs_queue_t *q);

/* Reserves between 1 and `max` free slots: what is free now, up to `max`; when nothing is,
 * blocks until `max` slots (or the whole capacity, if smaller) are free, so a reader under
 * backpressure reads a full batch instead of one entry per pop. Returns the number reserved,
 * or 0 when `*cancel` became true or the queue is closed (then nothing is reserved). A
 * canceller sets *cancel and calls rs_queue_wake() so the wait ends. Any thread. */
size_t rs_queue_reserve(rs_queue_t *q, size_t max, const atomic_bool *cancel);

/* Reserves exactly `n` slots if that many are free now, without waiting. Returns `n`, or 0
 * (nothing reserved). Any thread. */
size_t rs_queue_try_reserve(rs_queue_t *q, size_t n);

/* Gives back `n` reserved slots that were not used. Never blocks. Any thread. */
void rs_queue_unreserve(rs_queue_t *q, size_t n);

/* Appends `n` entries into slots reserved earlier (n must not exceed what the caller holds).
 * Takes ownership of the entries. Never blocks. Any thread. */
void rs_queue_push_reserved(rs_queue_t *q, rs_entry_t **entries, size_t n);

/* Removes up to `max` (>= 1) of the oldest entries into `out`, blocking while the queue is
 * empty and open, and wakes one more waiting worker when entries remain. Returns how many
 * (ownership passes to the caller), or 0 once the queue is closed and empty, or abandoned.
 * Any thread. */
size_t rs_queue_pop_batch(rs_queue_t *q, rs_entry_t **out, size_t max);

/* rs_queue_pop_batch() of one entry: the entry, or NULL. Any thread. */
rs_entry_t *rs_queue_pop(rs_queue_t *q);

/* True once rs_queue_abandon() was called: a worker holding a batch stops handling it. Any
 * thread; lock-free. */
bool rs_queue_abandoned(const rs_queue_t *q);

/* Closes the queue: reservations fail from now on, pops drain what is left and then return
 * NULL. Any thread; idempotent. */
void rs_queue_close(rs_queue_t *q);

/* Like close, but pops return NULL at once even while entries remain (the shutdown deadline
 * passed). The entries left are freed by rs_queue_free(). Any thread. */
void rs_queue_abandon(rs_queue_t *q);

/* Wakes every thread blocked in rs_queue_reserve() so it rechecks its cancel flag. */
void rs_queue_wake(rs_queue_t *q);

/* Entries in the queue now, and the capacity. Any thread; lock-free reads. */
size_t rs_queue_depth(const rs_queue_t *q);
size_t rs_queue_capacity(const rs_queue_t *q);

#endif
