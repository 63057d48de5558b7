/*
 * The bounded work queue between readers and workers.
 *
 * DESIGN: a ring buffer of entry pointers with one mutex and two condition variables
 * (`not_empty` for workers, `has_room` for readers), in the manner of libuv's threadpool
 * queue. Invariant, under the lock: count + reserved <= capacity, where `count` entries sit in
 * the ring and `reserved` slots are promised to readers that are reading from Redis. Because
 * a reader asks Redis for at most what it reserved, the ring can never overflow and a push
 * never blocks. Readers push a whole XREADGROUP reply's entries under one lock acquisition
 * and wake as many workers as entries arrived, not one per entry call.
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
    bool abandoned;
    atomic_size_t depth; /* == count, readable without the lock */
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

size_t rs_queue_reserve(rs_queue_t *q, size_t max, const atomic_bool *cancel)
{
    size_t got = 0;
    pthread_mutex_lock(&q->lock);
    while (!q->closed && !atomic_load(cancel) && q->count + q->reserved >= q->capacity)
        pthread_cond_wait(&q->has_room, &q->lock);
    if (!q->closed && !atomic_load(cancel)) {
        size_t room = q->capacity - q->count - q->reserved;
        got = max < room ? max : room;
        q->reserved += got;
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
    pthread_cond_broadcast(&q->has_room);
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
    if (n == 1)
        pthread_cond_signal(&q->not_empty);
    else
        pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

rs_entry_t *rs_queue_pop(rs_queue_t *q)
{
    rs_entry_t *e = NULL;
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed && !q->abandoned)
        pthread_cond_wait(&q->not_empty, &q->lock);
    if (q->count > 0 && !q->abandoned) {
        e = q->ring[q->head];
        q->head = (q->head + 1) % q->capacity;
        q->count--;
        atomic_store_explicit(&q->depth, q->count, memory_order_relaxed);
        pthread_cond_signal(&q->has_room);
    }
    pthread_mutex_unlock(&q->lock);
    return e;
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
    q->abandoned = true;
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
