/*
 * The bounded work queue between readers and workers.
 *
 * DESIGN: a FIFO list of ready entries (linked through rs_entry_t.next, so it needs no array
 * and cannot overflow) with one mutex and two condition variables (`not_empty` for workers,
 * `has_room` for readers), in the manner of libuv's threadpool queue. Invariant, under the
 * lock: count + reserved + held <= capacity, where `count` entries are queued (ready, or
 * waiting in a lane), `reserved` slots are promised to readers that are reading from Redis,
 * and `held` slots are kept by ordered entries waiting for a retry. Because a reader asks
 * Redis for at most what it reserved, a push never blocks. (The sum may pass the capacity by
 * the entries workers hold, at most one per worker, when they go on to wait for a retry; the
 * readers then wait a little longer.) Readers push a whole XREADGROUP reply's entries under
 * one lock acquisition and wake no more idle workers than entries arrived.
 *
 * Ordering lanes: a hash table (chained, a power-of-two number of buckets near the capacity,
 * allocated at the first ordered entry) maps (scope, key) to a lane, which exists exactly
 * while it has a holder: an entry of it that is ready, in a worker (`active` counts those),
 * or waiting for its retry (`held`). Later entries of the lane wait in the lane's own list
 * and do not count as ready. When the holder is done (rs_queue_done()) the next one is
 * appended to the ready list; when none is left the lane is freed. So no two entries of a
 * lane are ever handled at once, they are handled in push order, and the ready list serves
 * the lanes round-robin. The table's hash is FNV-1a seeded per queue; a lookup costs at worst
 * the number of lanes, which the capacity bounds.
 *
 * Wakeups are what a busy queue costs most (each is a futex call and a context switch; they
 * were the largest item of a profile at full speed), so:
 *   - a push wakes one idle worker, and a worker that leaves entries behind wakes one more: a
 *     chain that stops as soon as the entries are taken, instead of waking every worker for
 *     every batch;
 *   - workers pop batches (as many as the pool says are worth it for the handlers' speed,
 *     but no more than a fair share of what is ready while other workers are idle), one lock
 *     acquisition per batch instead of per entry;
 *   - a reader that found the queue full is woken only once as much room as it asked for is
 *     free (hysteresis), not after every pop: otherwise a reader under backpressure is woken
 *     per entry and reads one entry per XREADGROUP.
 *
 * Shutdown: close() lets workers drain what is ready, and what becomes ready as the ordered
 * entries in workers are done; abandon() makes them stop at once when the shutdown deadline
 * has passed. Either way every waiter is woken by a broadcast.
 *
 * The depth and the lane counts are mirrored in atomics so /metrics can read them without
 * the lock.
 */

#include "queue.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

#define BUCKETS_MIN 64
#define BUCKETS_MAX (UINT64_C(1) << 20)

typedef struct rs_lane {
    struct rs_lane *chain;   /* next lane of the same bucket */
    uint64_t hash;           /* of scope and key */
    const void *scope;       /* the entries' order_scope */
    rs_entry_t *head, *tail; /* entries waiting behind the holder, oldest first */
    size_t key_len;
    char key[]; /* key_len bytes (any bytes) */
} rs_lane_t;

struct rs_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty; /* signalled when entries become ready or the queue closes */
    pthread_cond_t has_room;  /* signalled when slots free up or on wake/close */
    rs_entry_t *ready_head, *ready_tail;
    size_t ready; /* entries in the ready list */
    size_t count; /* entries queued: ready, or waiting in a lane */
    size_t capacity;
    size_t reserved; /* slots promised to readers */
    size_t held;     /* slots kept by ordered entries waiting for a retry */
    size_t active;   /* ordered entries in workers (popped, neither done nor held) */
    bool closed;
    unsigned idle;         /* workers waiting in rs_queue_pop_batch() */
    unsigned room_waiters; /* threads waiting in rs_queue_reserve() */
    size_t room_wanted;    /* the least room one of them waits for (SIZE_MAX: none waits) */

    rs_lane_t **buckets; /* NULL until the first ordered entry */
    size_t nbuckets;     /* a power of two */
    uint64_t seed;

    atomic_bool abandoned;      /* written under the lock, read anywhere */
    atomic_size_t depth;        /* == count, readable without the lock */
    atomic_size_t nlanes;       /* lanes in the table */
    atomic_size_t lane_waiting; /* entries waiting behind a holder */
};

rs_queue_t *rs_queue_new(size_t capacity)
{
    if (capacity == 0)
        return NULL;
    rs_queue_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->capacity = capacity;
    q->room_wanted = SIZE_MAX;
    /* Not a secret, only different per process, so keys that collide are not a constant. */
    q->seed =
        UINT64_C(14695981039346656037) ^ (uint64_t)rs_clock_monotonic_ns() ^ (uint64_t)(uintptr_t)q;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->has_room, NULL);
    atomic_init(&q->depth, 0);
    atomic_init(&q->nlanes, 0);
    atomic_init(&q->lane_waiting, 0);
    return q;
}

static void free_list(rs_entry_t *e)
{
    while (e != NULL) {
        rs_entry_t *next = e->next;
        rs_entry_free(e);
        e = next;
    }
}

void rs_queue_free(rs_queue_t *q)
{
    if (q == NULL)
        return;
    free_list(q->ready_head);
    for (size_t b = 0; b < q->nbuckets; b++) {
        rs_lane_t *lane = q->buckets[b];
        while (lane != NULL) {
            rs_lane_t *next = lane->chain;
            free_list(lane->head);
            free(lane);
            lane = next;
        }
    }
    free(q->buckets);
    pthread_cond_destroy(&q->has_room);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

/* --- caller holds q->lock ------------------------------------------------------------------ */

static size_t free_slots_locked(const rs_queue_t *q)
{
    size_t used = q->count + q->reserved + q->held;
    return used >= q->capacity ? 0 : q->capacity - used;
}

/* Wakes the threads waiting for room when enough of it is free. */
static void room_freed_locked(rs_queue_t *q)
{
    if (q->room_waiters > 0 && free_slots_locked(q) >= q->room_wanted)
        pthread_cond_broadcast(&q->has_room);
}

static void ready_append_locked(rs_queue_t *q, rs_entry_t *e)
{
    e->next = NULL;
    if (q->ready_tail != NULL)
        q->ready_tail->next = e;
    else
        q->ready_head = e;
    q->ready_tail = e;
    q->ready++;
}

/* Wakes the workers once nothing more can become ready in a closed queue, so they leave. */
static void maybe_drained_locked(rs_queue_t *q)
{
    if (q->closed && q->ready == 0 && q->active == 0)
        pthread_cond_broadcast(&q->not_empty);
}

static uint64_t lane_hash(const rs_queue_t *q, const void *scope, const char *key, size_t len)
{
    uint64_t h = q->seed;
    uintptr_t s = (uintptr_t)scope;
    for (size_t i = 0; i < sizeof(s); i++) {
        h ^= (uint64_t)((s >> (8 * i)) & 0xff);
        h *= UINT64_C(1099511628211);
    }
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= UINT64_C(1099511628211);
    }
    return h ^ (h >> 32);
}

/* The lane of entry `e`, created (with `e` as its holder: *fresh = true) when it has none.
 * NULL when memory runs out. */
static rs_lane_t *lane_get_locked(rs_queue_t *q, const rs_entry_t *e, bool *fresh)
{
    if (q->buckets == NULL) {
        size_t n = BUCKETS_MIN;
        while (n < q->capacity && n < BUCKETS_MAX)
            n *= 2;
        q->buckets = calloc(n, sizeof(*q->buckets));
        if (q->buckets == NULL)
            return NULL;
        q->nbuckets = n;
    }
    const char *key = e->order_key != NULL ? e->order_key : "";
    size_t len = e->order_key != NULL ? e->order_key_len : 0;
    uint64_t h = lane_hash(q, e->order_scope, key, len);
    rs_lane_t **bucket = &q->buckets[h & (q->nbuckets - 1)];
    for (rs_lane_t *lane = *bucket; lane != NULL; lane = lane->chain) {
        if (lane->hash == h && lane->scope == e->order_scope && lane->key_len == len &&
            memcmp(lane->key, key, len) == 0) {
            *fresh = false;
            return lane;
        }
    }
    rs_lane_t *lane = malloc(sizeof(*lane) + len);
    if (lane == NULL)
        return NULL;
    lane->hash = h;
    lane->scope = e->order_scope;
    lane->head = lane->tail = NULL;
    lane->key_len = len;
    if (len > 0)
        memcpy(lane->key, key, len);
    lane->chain = *bucket;
    *bucket = lane;
    atomic_fetch_add_explicit(&q->nlanes, 1, memory_order_relaxed);
    *fresh = true;
    return lane;
}

/* The lane's holder is finished with: the next entry becomes ready, or the lane goes. */
static void lane_release_locked(rs_queue_t *q, rs_lane_t *lane)
{
    rs_entry_t *e = lane->head;
    if (e != NULL) {
        lane->head = e->next;
        if (lane->head == NULL)
            lane->tail = NULL;
        atomic_fetch_sub_explicit(&q->lane_waiting, 1, memory_order_relaxed);
        ready_append_locked(q, e);
        if (q->idle > 0)
            pthread_cond_signal(&q->not_empty);
        return;
    }
    rs_lane_t **p = &q->buckets[lane->hash & (q->nbuckets - 1)];
    while (*p != lane)
        p = &(*p)->chain;
    *p = lane->chain;
    atomic_fetch_sub_explicit(&q->nlanes, 1, memory_order_relaxed);
    free(lane);
}

/* --- the API ------------------------------------------------------------------------------- */

size_t rs_queue_reserve(rs_queue_t *q, size_t max, const atomic_bool *cancel)
{
    size_t got = 0;
    /* Once the queue is full, wait until all of `max` fits (never more than the whole queue),
     * not just one slot: a reader woken for one slot would read one entry per XREADGROUP. */
    size_t want = max < q->capacity ? max : q->capacity;
    if (want == 0)
        want = 1;
    pthread_mutex_lock(&q->lock);
    if (free_slots_locked(q) == 0) {
        while (!q->closed && !atomic_load(cancel) && free_slots_locked(q) < want) {
            q->room_waiters++;
            if (want < q->room_wanted)
                q->room_wanted = want;
            pthread_cond_wait(&q->has_room, &q->lock);
            if (--q->room_waiters == 0)
                q->room_wanted = SIZE_MAX;
        }
    }
    if (!q->closed && !atomic_load(cancel)) {
        size_t room = free_slots_locked(q);
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
    if (!q->closed && free_slots_locked(q) >= n) {
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
    size_t ready_before = q->ready;
    for (size_t i = 0; i < n; i++) {
        rs_entry_t *e = entries[i];
        rs_lane_t *lane = NULL;
        bool fresh = true;
        if (e->order_scope != NULL)
            lane = lane_get_locked(q, e, &fresh);
        e->lane = lane;
        e->next = NULL;
        if (fresh) {
            ready_append_locked(q, e);
        } else {
            if (lane->tail != NULL)
                lane->tail->next = e;
            else
                lane->head = e;
            lane->tail = e;
            atomic_fetch_add_explicit(&q->lane_waiting, 1, memory_order_relaxed);
        }
    }
    q->count += n;
    q->reserved -= n < q->reserved ? n : q->reserved;
    atomic_store_explicit(&q->depth, q->count, memory_order_relaxed);
    /* One wakeup; the worker that takes entries passes it on while some are left. */
    if (q->idle > 0 && q->ready > ready_before)
        pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

size_t rs_queue_pop_batch(rs_queue_t *q, rs_entry_t **out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&q->lock);
    while (q->ready == 0 && !atomic_load(&q->abandoned) && !(q->closed && q->active == 0)) {
        q->idle++;
        pthread_cond_wait(&q->not_empty, &q->lock);
        q->idle--;
    }
    if (q->ready > 0 && !atomic_load(&q->abandoned)) {
        n = q->ready < max ? q->ready : max;
        /* Other workers are idle: take no more than a fair share, so a burst of slow entries
         * is not run one after another by one worker while the others wait (the batch size
         * comes from the pool's cost average, which a fast stream can keep low). */
        if (q->idle > 0 && n > q->ready / (q->idle + 1))
            n = q->ready / (q->idle + 1);
        n = n < 1 ? 1 : n;
        for (size_t i = 0; i < n; i++) {
            rs_entry_t *e = q->ready_head;
            q->ready_head = e->next;
            e->next = NULL;
            q->active += e->lane != NULL;
            out[i] = e;
        }
        if (q->ready_head == NULL)
            q->ready_tail = NULL;
        q->ready -= n;
        q->count -= n;
        atomic_store_explicit(&q->depth, q->count, memory_order_relaxed);
        /* More than this worker takes: pass the wakeup on to one more. */
        if (q->ready > 0 && q->idle > 0)
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

void rs_queue_done(rs_queue_t *q, struct rs_lane *lane)
{
    if (lane == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    q->active--;
    lane_release_locked(q, lane);
    maybe_drained_locked(q);
    pthread_mutex_unlock(&q->lock);
}

void rs_queue_hold(rs_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->active--;
    q->held++;
    maybe_drained_locked(q);
    pthread_mutex_unlock(&q->lock);
}

void rs_queue_push_held(rs_queue_t *q, rs_entry_t **entries, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < n; i++)
        ready_append_locked(q, entries[i]);
    q->count += n;
    q->held -= n < q->held ? n : q->held;
    atomic_store_explicit(&q->depth, q->count, memory_order_relaxed);
    if (q->idle > 0)
        pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

void rs_queue_unhold(rs_queue_t *q, struct rs_lane *lane)
{
    pthread_mutex_lock(&q->lock);
    q->held -= q->held > 0;
    lane_release_locked(q, lane);
    room_freed_locked(q);
    maybe_drained_locked(q);
    pthread_mutex_unlock(&q->lock);
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

size_t rs_queue_lanes(const rs_queue_t *q)
{
    return atomic_load_explicit(&q->nlanes, memory_order_relaxed);
}

size_t rs_queue_lane_waiting(const rs_queue_t *q)
{
    return atomic_load_explicit(&q->lane_waiting, memory_order_relaxed);
}
