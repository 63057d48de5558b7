/*
 * The bounded work queue between readers and workers.
 *
 * DESIGN: a ring buffer of entry pointers with one mutex and two condition variables
 * (`not_empty` for workers, `has_room` for readers), in the manner of libuv's threadpool
 * queue. Invariant, under the lock: count + reserved <= capacity, where `count` entries sit in
 * the ring and `reserved` slots are promised to readers that are reading from Redis. Because
 * a reader asks Redis for at most what it reserved, the ring can never overflow and a push
 * never blocks. Readers push a whole XREADGROUP reply's entries under one lock acquisition
 * and wake no more idle workers than entries arrived.
 *
 * Wakeups are what a busy queue costs most (each is a futex call and a context switch; they
 * were the largest item of a profile at full speed), so:
 *   - a push wakes one idle worker, and a worker that leaves entries behind wakes one more: a
 *     chain that stops as soon as the entries are taken, instead of waking every worker for
 *     every batch;
 *   - workers pop batches (as many as the pool says are worth it for the handlers' speed),
 *     one lock acquisition per batch instead of per entry;
 *   - a reader that found the queue full is woken only once as much room as it asked for is
 *     free (hysteresis), not after every pop: otherwise a reader under backpressure is woken
 *     per entry and reads one entry per XREADGROUP.
 *
 * Shutdown: close() lets workers drain the ring, abandon() makes them stop at once when the
 * shutdown deadline has passed. Either way every waiter is woken by a broadcast.
 *
 * The depth is mirrored in an atomic so /metrics can read it without the lock.
 */

#include "queue.h"

#include <pthread.h>
#include <stdlib.h>

struct rs_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty; /* signalled when entries arrive or the queue closes */
    pthread_cond_t has_room;  /* signalled when slots free up or on wake/close */
    rs_entry_t **ring;
    size_t capacity;
    size_t head;     /* index of the oldest entry */
    size_t count;    /* entries in the ring */
    size_t reserved; /* slots promised to readers */
    bool closed;
    unsigned idle;         /* workers waiting in rs_queue_pop_batch() */
    unsigned room_waiters; /* threads waiting in rs_queue_reserve() */
    size_t room_wanted;    /* the least room one of them waits for (SIZE_MAX: none waits) */
    atomic_bool abandoned; /* written under the lock, read anywhere */
    atomic_size_t depth;   /* == count, readable without the lock */
};

rs_queue_t *rs_queue_new(size_t capacity)
{
    if (capacity == 0)
        return NULL;
    rs_queue_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->ring = calloc(capacity, sizeof(*q->ring));
    if (q->ring == NULL) {
        free(q);
        return NULL;
    }
    q->capacity = capacity;
    q->room_wanted = SIZE_MAX;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->has_room, NULL);
    atomic_init(&q->depth, 0);
    return q;
}

void rs_queue_free(rs_queue_t *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->count; i++)
        rs_entry_free(q->ring[(q->head + i) % q->capacity]);
    pthread_cond_destroy(&q->has_room);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->lock);
    free(q->ring);
    free(q);
}

/* Wakes the threads waiting for room when enough of it is free. Caller holds q->lock. */
static void room_freed_locked(rs_queue_t *q)
{
    if (q->room_waiters > 0 && q->capacity - q->count - q->reserved >= q->room_wanted)
        pthread_cond_broadcast(&q->has_room);
}

size_t rs_queue_reserve(rs_queue_t *q, size_t max, const atomic_bool *cancel)
{
    size_t got = 0;
    /* Once the queue is full, wait until all of `max` fits (never more than the whole queue),
     * not just one slot: a reader woken for one slot would read one entry per XREADGROUP. */
    size_t want = max < q->capacity ? max : q->capacity;
    if (want == 0)
        want = 1;
    pthread_mutex_lock(&q->lock);
    if (q->count + q->reserved >= q->capacity) {
        while (!q->closed && !atomic_load(cancel) && q->capacity - q->count - q->reserved < want) {
            q->room_waiters++;
            if (want < q->room_wanted)
                q->room_wanted = want;
            pthread_cond_wait(&q->has_room, &q->lock);
            if (--q->room_waiters == 0)
                q->room_wanted = SIZE_MAX;
        }
    }
    if (!q->closed && !atomic_load(cancel)) {
        size_t room = q->capacity - q->count - q->reserved;
        got = max < room ? max : room;
        q->reserved += got;
    }
    pthread_mutex_unlock(&q->lock);
    return got;
}

size_t rs_queue_try_reserve(rs_queue_t *q, size_t n)
{
    size_t got = 0;
    pthread_mutex_lock(&q->lock);
    if (!q->closed && q->capacity - q->count - q->reserved >= n) {
        q->reserved += n;
        got = n;
    }
    pthread_mutex_unlock(&q->lock);
    return got;
}

void rs_queue_unreserve(rs_queue_t *q, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&q->lock);
    q->reserved -= n < q->reserved ? n : q->reserved;
    room_freed_locked(q);
    pthread_mutex_unlock(&q->lock);
}

void rs_queue_push_reserved(rs_queue_t *q, rs_entry_t **entries, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < n; i++) {
        q->ring[(q->head + q->count) % q->capacity] = entries[i];
        q->count++;
    }
    q->reserved -= n;
    atomic_store_explicit(&q->depth, q->count, memory_order_relaxed);
    /* One wakeup; the worker that takes entries passes it on while some are left. */
    if (q->idle > 0)
        pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

size_t rs_queue_pop_batch(rs_queue_t *q, rs_entry_t **out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed && !atomic_load(&q->abandoned)) {
        q->idle++;
        pthread_cond_wait(&q->not_empty, &q->lock);
        q->idle--;
    }
    if (q->count > 0 && !atomic_load(&q->abandoned)) {
        n = q->count < max ? q->count : max;
        n = n < 1 ? 1 : n;
        for (size_t i = 0; i < n; i++) {
            out[i] = q->ring[q->head];
            q->head = (q->head + 1) % q->capacity;
        }
        q->count -= n;
        atomic_store_explicit(&q->depth, q->count, memory_order_relaxed);
        /* More than this worker takes: pass the wakeup on to one more. */
        if (q->count > 0 && q->idle > 0)
            pthread_cond_signal(&q->not_empty);
        room_freed_locked(q);
    }
    pthread_mutex_unlock(&q->lock);
    return n;
}

rs_entry_t *rs_queue_pop(rs_queue_t *q)
{
    rs_entry_t *e = NULL;
    return rs_queue_pop_batch(q, &e, 1) == 1 ? e : NULL;
}

bool rs_queue_abandoned(const rs_queue_t *q)
{
    return atomic_load_explicit(&q->abandoned, memory_order_relaxed);
}

void rs_queue_close(rs_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->has_room);
    pthread_mutex_unlock(&q->lock);
}

void rs_queue_abandon(rs_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    atomic_store(&q->abandoned, true);
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->has_room);
    pthread_mutex_unlock(&q->lock);
}

void rs_queue_wake(rs_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    pthread_cond_broadcast(&q->has_room);
    pthread_mutex_unlock(&q->lock);
}

size_t rs_queue_depth(const rs_queue_t *q)
{
    return atomic_load_explicit(&q->depth, memory_order_relaxed);
}

size_t rs_queue_capacity(const rs_queue_t *q)
{
    return q->capacity;
}
