#ifndef RS_POOL_H
#define RS_POOL_H

/*
 * The worker pool: a fixed number of threads that take entries from the work queue and run
 * a work function on each, until the queue is closed and drained (or abandoned).
 */

#include <stdint.h>

#include "entry.h"
#include "queue.h"

typedef struct rs_pool rs_pool_t;

/* The most entries a worker takes from the queue at once (fast handlers, deep queue). */
#define RS_POOL_BATCH_MAX 128

/* Runs on a worker thread for each batch of 1 .. RS_POOL_BATCH_MAX entries taken from the
 * queue in order; takes ownership of every entry. `worker` is the thread's index,
 * 0 .. threads-1. It should stop early (leaving the rest pending) once rs_queue_abandoned(). */
typedef void (*rs_work_fn)(void *arg, unsigned worker, rs_entry_t **entries, size_t n);

/* Creates a pool of `threads` workers over `q` (borrowed). Returns NULL when out of memory.
 * Caller frees with rs_pool_free(). Main thread. */
rs_pool_t *rs_pool_new(unsigned threads, rs_queue_t *q, rs_work_fn fn, void *arg);

/* Starts the threads. Returns 0, or -1 with a message in `err` (threads already started
 * keep running until the queue closes). Main thread. */
int rs_pool_start(rs_pool_t *p, char *err, size_t errlen);

/* Waits until every worker has exited (after rs_queue_close() or rs_queue_abandon()) or
 * CLOCK_MONOTONIC reaches `deadline_ns`. Returns 0 when all exited and were joined, -1 on
 * timeout (some worker is still inside a handler). Main thread. */
int rs_pool_join(rs_pool_t *p, int64_t deadline_ns);

/* Workers busy inside the work function right now. Any thread; lock-free. */
unsigned rs_pool_busy(const rs_pool_t *p);

/* Worker threads started and not exited (they exit only once the queue is closed or
 * abandoned). Any thread; lock-free. */
unsigned rs_pool_alive(const rs_pool_t *p);

/* Frees the pool; NULL is ignored. Only after rs_pool_join() returned 0 (or before start). */
void rs_pool_free(rs_pool_t *p);

#endif
