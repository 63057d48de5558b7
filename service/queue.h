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
 *
 * Ordering: an entry queued with an `order_scope` (entry.h) belongs to the lane of its scope
 * and key. At most one entry of a lane is ready, in a worker, or waiting for its retry at a
 * time (the lane's *holder*); the others wait in the lane in the order they were pushed, and
 * the next one becomes ready when the holder is done (rs_queue_done()). Ready entries are
 * taken first in, first out, so a lane's next entry queues up behind the other lanes' ready
 * ones: a hot key gets one turn per round, never the whole pool. Entries waiting in a lane
 * count against the capacity like ready ones, so memory is bounded by the capacity however
 * many keys are active; a lane exists only while it holds an entry.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "entry.h"

typedef struct rs_queue rs_queue_t;

/* Creates a queue of `capacity` (>= 1) entries. Returns NULL when out of memory. Caller frees
 * with rs_queue_free(). */
rs_queue_t *rs_queue_new(size_t capacity);

/* Frees the queue, its lanes and every entry still in it (those entries stay pending in
 * Redis and are handled after a restart). NULL is ignored. No thread may use the queue any
 * more. */
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
 * An entry with an `order_scope` goes to its lane: ready at once (and the lane's holder) when
 * the lane has no holder, else waiting behind the lane's earlier entries. Should a lane not be
 * allocatable (out of memory), the entry is queued unordered. Takes ownership of the entries.
 * Never blocks. Any thread. */
void rs_queue_push_reserved(rs_queue_t *q, rs_entry_t **entries, size_t n);

/* Removes up to `max` (>= 1) of the oldest ready entries into `out`, blocking while none is
 * ready and more may become so, and wakes one more waiting worker when entries remain. An
 * ordered entry taken (e->lane != NULL) must be given back with rs_queue_done() or
 * rs_queue_hold(). Returns how many (ownership passes to the caller); 0 once the queue is
 * abandoned, or closed with nothing ready and no ordered entry in a worker (entries waiting
 * behind a lane whose holder waits for a retry that a stopped scheduler will not make then
 * stay pending in Redis). Any thread. */
size_t rs_queue_pop_batch(rs_queue_t *q, rs_entry_t **out, size_t max);

/* rs_queue_pop_batch() of one entry: the entry, or NULL. Any thread. */
rs_entry_t *rs_queue_pop(rs_queue_t *q);

/* The worker holding an ordered entry is done with it, whatever its fate (handled, dead-
 * lettered, left pending): the lane's next entry, if any, becomes ready (and the holder), else
 * the lane goes away. NULL is ignored. `lane` must not be used afterwards. Never blocks. Any
 * thread. */
void rs_queue_done(rs_queue_t *q, struct rs_lane *lane);

/* The worker holding an ordered entry hands it to the retry scheduler: the lane stays held
 * while the entry waits for its next delivery, and the entry keeps a slot of the capacity, so
 * the entries waiting behind it can never take the room its return needs. Call it before the
 * hand-off, then exactly one of rs_queue_push_held() (the entry is back) or rs_queue_unhold()
 * (it is not coming back). Never blocks. Any thread. */
void rs_queue_hold(rs_queue_t *q);

/* The retry scheduler puts held entries back, each carrying in `lane` the lane its earlier
 * delivery had: each becomes ready at once, in the slot rs_queue_hold() kept. Takes ownership.
 * Never blocks. Any thread. */
void rs_queue_push_held(rs_queue_t *q, rs_entry_t **entries, size_t n);

/* A held entry is not coming back (its retry was dropped or cancelled; it stays pending):
 * gives back its slot and releases the lane as rs_queue_done() does. Never blocks. Any
 * thread. */
void rs_queue_unhold(rs_queue_t *q, struct rs_lane *lane);

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

/* Entries in the queue now (ready, or waiting in a lane), and the capacity. Any thread;
 * lock-free reads. */
size_t rs_queue_depth(const rs_queue_t *q);
size_t rs_queue_capacity(const rs_queue_t *q);

/* Ordering lanes now (each has a holder: an entry ready, in a worker or waiting for its
 * retry), and the entries waiting behind their lane's holder. Any thread; lock-free reads. */
size_t rs_queue_lanes(const rs_queue_t *q);
size_t rs_queue_lane_waiting(const rs_queue_t *q);

#endif
