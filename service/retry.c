/*
 * The retry scheduler thread.
 *
 * DESIGN: a binary min-heap of (due time, stream, id, deliveries so far), fixed at the queue's
 * capacity, guarded by one mutex; one thread ("rs-retry") sleeps on a CLOCK_MONOTONIC
 * condition variable until the earliest due time, takes up to RETRY_BATCH due ids of one
 * stream, reserves room for them in the work queue (blocking there is fine: the queue being
 * full is exactly when retries should wait), and sends
 *     XCLAIM <stream> <group> <consumer> <min-idle> <id> ...
 * on its own connection. XCLAIM re-delivers the entries with their fields and increments
 * Redis's delivery counter, so a retry is counted where every consumer of the group can see
 * it, and survives a crash of this process.
 *
 * min-idle is the shortest backoff of the batch less a margin: if another consumer took the
 * entry meanwhile (its idle time was reset), XCLAIM returns nothing for it and we drop it
 * from our books instead of stealing it back. An id XCLAIM does not return (claimed
 * elsewhere, acknowledged, or deleted from the stream) is settled here.
 *
 * On a lost connection the batch goes back into the heap, due at once, and the thread
 * reconnects with backoff. When Redis refuses XCLAIM for now (a replica during a failover,
 * LOADING: refusal.h) the batch goes back due after a backoff, logged once per step; a
 * refusal waiting cannot fix (NOGROUP: the group is gone with its pending list) drops the
 * batch, whose entries the reader delivers again once it has created the group again. Stopping
 * abandons what waits: those entries stay pending in Redis and are delivered again at the next
 * start.
 *
 * Ordered entries (queue.h): the item keeps the entry's lane, whose later entries wait while
 * it does. The queue kept a slot for it (rs_queue_hold()), so it goes back with
 * rs_queue_push_held() without reserving room: reserving could wait for ever behind the very
 * entries that wait for it. An ordered id that is not coming back (dropped, cancelled)
 * releases its lane with rs_queue_unhold(). The heap holds queue_capacity unordered ids, and
 * room beyond that for the ordered ones, which the queue's capacity bounds (plus one per
 * worker), so an ordered retry is never refused for want of room.
 *
 * r->lock is a leaf: it is never held while another lock is taken (streams are settled
 * outside it), across a network call, or across rs_queue_reserve().
 */

#include "retry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "clock.h"
#include "entry.h"
#include "redis_conn.h"
#include "redis_routes.h"
#include "refusal.h"

#define RETRY_BATCH        64 /* ids per XCLAIM */
#define MIN_IDLE_MARGIN_MS 50 /* slack for clocks and scheduling */
#define NS_PER_MS          INT64_C(1000000)

typedef struct {
    int64_t due_ns;
    int64_t delay_ms;
    rs_stream_t *stream;
    struct rs_lane *lane; /* the ordered entry's lane, or NULL */
    uint64_t delivery;
    char id[RS_ENTRY_ID_MAX];
} retry_item_t;

struct rs_retry {
    const rs_config_t *cfg;
    rs_queue_t *q;
    rs_logger_t *log;
    /* The connection in use, retry thread only: `own` in standalone mode; in cluster mode
     * the one of `routes` for the batch's stream. */
    rs_redis_t *redis;
    rs_redis_t *own;
    rs_redis_routes_t *routes;    /* NULL in standalone mode */
    rs_backoff_t refused_backoff; /* after transient refusals of XCLAIM; retry thread only */

    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_size_t waiting; /* == n, readable without the lock */

    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; new earliest item, or stop */
    retry_item_t *heap;  /* guarded by lock */
    size_t n, cap;       /* guarded by lock */
    size_t plain;        /* items of unordered entries, <= plain_cap; guarded by lock */
    size_t plain_cap;
    struct rs_lane **lanes; /* cap lanes: rs_retry_cancel_stream()'s scratch (main thread) */
};

/* --- the heap (caller holds r->lock) ------------------------------------------------------- */

static void heap_swap(retry_item_t *a, retry_item_t *b)
{
    retry_item_t t = *a;
    *a = *b;
    *b = t;
}

static void heap_push_locked(rs_retry_t *r, const retry_item_t *it)
{
    size_t i = r->n++;
    r->heap[i] = *it;
    r->plain += it->lane == NULL;
    while (i > 0 && r->heap[(i - 1) / 2].due_ns > r->heap[i].due_ns) {
        heap_swap(&r->heap[(i - 1) / 2], &r->heap[i]);
        i = (i - 1) / 2;
    }
    atomic_store_explicit(&r->waiting, r->n, memory_order_relaxed);
}

static retry_item_t heap_pop_locked(rs_retry_t *r)
{
    retry_item_t top = r->heap[0];
    r->plain -= top.lane == NULL;
    r->heap[0] = r->heap[--r->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < r->n && r->heap[l].due_ns < r->heap[m].due_ns)
            m = l;
        if (l + 1 < r->n && r->heap[l + 1].due_ns < r->heap[m].due_ns)
            m = l + 1;
        if (m == i)
            break;
        heap_swap(&r->heap[i], &r->heap[m]);
        i = m;
    }
    atomic_store_explicit(&r->waiting, r->n, memory_order_relaxed);
    return top;
}

/* --- public API ---------------------------------------------------------------------------- */

rs_retry_t *rs_retry_new(const rs_config_t *cfg, rs_queue_t *q, rs_logger_t *log, char *err,
                         size_t errlen)
{
    rs_retry_t *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->plain_cap = (size_t)cfg->workers.queue_capacity;
        r->cap = 2 * r->plain_cap + (size_t)cfg->workers.threads;
        r->heap = calloc(r->cap, sizeof(*r->heap));
        r->lanes = calloc(r->cap, sizeof(*r->lanes));
    }
    if (r != NULL && r->heap != NULL && r->lanes != NULL)
        r->own = r->redis =
            rs_redis_new_from_config(cfg, "retry", cfg->redis.connect_timeout_ms, log);
    if (r == NULL || r->heap == NULL || r->lanes == NULL || r->redis == NULL) {
        snprintf(err, errlen, "retry scheduler: out of memory");
        if (r != NULL) {
            free(r->heap);
            free(r->lanes);
        }
        free(r);
        return NULL;
    }
    r->cfg = cfg;
    r->q = q;
    r->log = log;
    rs_backoff_init(&r->refused_backoff, 100, 5000, 0);
    pthread_mutex_init(&r->lock, NULL);
    rs_clock_cond_init(&r->cond);
    return r;
}

int rs_retry_schedule(rs_retry_t *r, rs_stream_t *stream, const char *id, uint64_t delivery,
                      int64_t delay_ms, struct rs_lane *lane)
{
    retry_item_t it = {
        .due_ns = rs_clock_monotonic_ns() + delay_ms * NS_PER_MS,
        .delay_ms = delay_ms,
        .stream = stream,
        .lane = lane,
        .delivery = delivery,
    };
    snprintf(it.id, sizeof(it.id), "%s", id);
    int rc = -1;
    pthread_mutex_lock(&r->lock);
    if (r->n < r->cap && (lane != NULL || r->plain < r->plain_cap) && !atomic_load(&r->stop)) {
        heap_push_locked(r, &it);
        if (r->heap[0].due_ns == it.due_ns)
            pthread_cond_signal(&r->cond); /* the new item is the earliest */
        rc = 0;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

size_t rs_retry_waiting(const rs_retry_t *r)
{
    return atomic_load_explicit(&r->waiting, memory_order_relaxed);
}

/* --- the thread ---------------------------------------------------------------------------- */

/* Sleeps `ms` or until stopped (rs_redis_wait_fn). */
static int retry_wait(void *arg, long ms)
{
    rs_retry_t *r = arg;
    int64_t until = rs_clock_monotonic_ns() + (int64_t)ms * NS_PER_MS;
    struct timespec ts = rs_clock_timespec(until);
    pthread_mutex_lock(&r->lock);
    while (!atomic_load(&r->stop) && rs_clock_monotonic_ns() < until)
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    pthread_mutex_unlock(&r->lock);
    return atomic_load(&r->stop);
}

/* Takes up to `max` due items of one stream (the earliest item's) out of the heap. Blocks
 * until one is due. Returns the count, 0 when stopping. */
static size_t take_due(rs_retry_t *r, retry_item_t *batch, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        if (atomic_load(&r->stop))
            break;
        if (r->n == 0) {
            pthread_cond_wait(&r->cond, &r->lock);
            continue;
        }
        int64_t due = r->heap[0].due_ns;
        if (due > rs_clock_monotonic_ns()) {
            struct timespec ts = rs_clock_timespec(due);
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
            continue;
        }
        rs_stream_t *stream = r->heap[0].stream;
        /* Items of other streams that are due stay for the next round. */
        retry_item_t other[RETRY_BATCH];
        size_t nother = 0;
        int64_t now = rs_clock_monotonic_ns();
        while (r->n > 0 && n < max && nother < RETRY_BATCH && r->heap[0].due_ns <= now) {
            retry_item_t it = heap_pop_locked(r);
            if (it.stream == stream)
                batch[n++] = it;
            else
                other[nother++] = it;
        }
        for (size_t i = 0; i < nother; i++)
            heap_push_locked(r, &other[i]);
        break;
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* Puts a batch back, due at once (after a lost connection). */
static void put_back(rs_retry_t *r, const retry_item_t *batch, size_t n)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < n; i++)
        heap_push_locked(r, &batch[i]);
    pthread_mutex_unlock(&r->lock);
}

/* Puts a batch back due in `ms` (after a transient refusal). */
static void put_back_later(rs_retry_t *r, retry_item_t *batch, size_t n, int64_t ms)
{
    int64_t due = rs_clock_monotonic_ns() + ms * NS_PER_MS;
    for (size_t i = 0; i < n; i++)
        batch[i].due_ns = due;
    put_back(r, batch, n);
}

/* Sends XCLAIM for `batch` and queues what comes back into `reserved` slots. Returns the
 * number queued, -1 when the connection was lost, or -2 when Redis refused it for now (a
 * transient refusal, logged; *later_ms says when to try again): nothing was queued in either
 * case and the batch is the caller's to put back. */
static long claim_batch(rs_retry_t *r, const retry_item_t *batch, size_t n, int64_t *later_ms)
{
    const rs_config_t *cfg = r->cfg;
    rs_stream_t *s = batch[0].stream;
    bool ordered = batch[0].lane != NULL; /* a stream's entries are all ordered, or none */
    int64_t min_idle = batch[0].delay_ms;
    for (size_t i = 1; i < n; i++)
        min_idle = batch[i].delay_ms < min_idle ? batch[i].delay_ms : min_idle;
    min_idle = min_idle > MIN_IDLE_MARGIN_MS ? min_idle - MIN_IDLE_MARGIN_MS : 0;

    char idle[24];
    snprintf(idle, sizeof(idle), "%lld", (long long)min_idle);
    const char *argv[5 + RETRY_BATCH];
    size_t argvlen[5 + RETRY_BATCH];
    int argc = 0;
    argv[argc++] = "XCLAIM";
    argv[argc++] = s->name;
    argv[argc++] = cfg->group.name;
    argv[argc++] = cfg->group.consumer;
    argv[argc++] = idle;
    for (size_t i = 0; i < n; i++)
        argv[argc++] = batch[i].id;
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);

    redisReply *reply = rs_redis_command_argv(r->redis, argc, argv, argvlen);
    if (reply == NULL)
        return -1;
    rs_entry_t *entries[RETRY_BATCH];
    bool returned[RETRY_BATCH] = {false};
    size_t pushed = 0;
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t k = 0; k < reply->elements && pushed < n; k++) {
            const redisReply *el = reply->element[k];
            if (el->type != REDIS_REPLY_ARRAY || el->elements != 2 ||
                el->element[0]->type != REDIS_REPLY_STRING)
                continue;
            /* Match the id to learn how often it was delivered before. */
            size_t i = 0;
            while (i < n && (returned[i] || strcmp(batch[i].id, el->element[0]->str) != 0))
                i++;
            if (i == n)
                continue;
            char err[256];
            int deleted;
            rs_entry_t *e = rs_entry_from_reply(el, NULL, s, s->name, batch[i].delivery + 1,
                                                &deleted, err, sizeof(err));
            if (e == NULL) {
                if (!deleted)
                    rs_log(r->log, RS_LOG_ERROR, "retry", "%s", err);
                continue;
            }
            returned[i] = true;
            e->lane = batch[i].lane;
            entries[pushed++] = e;
        }
    } else if (reply->type == REDIS_REPLY_ERROR &&
               rs_refusal_transient(rs_refusal_of(reply->str, reply->len))) {
        *later_ms = rs_backoff_next_ms(&r->refused_backoff);
        rs_log(r->log, RS_LOG_WARN, "retry",
               "stream=%s XCLAIM of %zu ids refused: %s (%s); trying again in %lld ms", s->name, n,
               reply->str, rs_refusal_hint(rs_refusal_of(reply->str, reply->len)),
               (long long)*later_ms);
        freeReplyObject(reply);
        return -2;
    } else {
        /* NOGROUP and the like: these retries cannot be delivered; the entries are not lost
         * (see DESIGN). One line for the batch, not one per id. */
        rs_log(r->log, RS_LOG_ERROR, "retry",
               "stream=%s XCLAIM of %zu ids refused: %s (%s); their retries are dropped, "
               "and they are delivered again if the group is created again",
               s->name, n, reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply",
               reply->type == REDIS_REPLY_ERROR
                   ? rs_refusal_hint(rs_refusal_of(reply->str, reply->len))
                   : "malformed reply");
        freeReplyObject(reply);
        for (size_t i = 0; i < n && ordered; i++)
            rs_queue_unhold(r->q, batch[i].lane);
        rs_stream_settle(s, (long)n);
        return 0;
    }
    freeReplyObject(reply);
    rs_backoff_reset(&r->refused_backoff);
    if (ordered)
        rs_queue_push_held(r->q, entries, pushed);
    else
        rs_queue_push_reserved(r->q, entries, pushed);
    for (size_t i = 0; i < n; i++) {
        if (!returned[i]) {
            /* Acknowledged, claimed by another consumer, or deleted meanwhile: it is no
             * longer ours to deliver, and its key (if ordered) moves on. */
            rs_log(r->log, RS_LOG_INFO, "retry",
                   "stream=%s id=%s is no longer pending for this consumer; retry dropped", s->name,
                   batch[i].id);
            if (ordered)
                rs_queue_unhold(r->q, batch[i].lane);
            rs_stream_settle(s, 1);
        }
    }
    return (long)pushed;
}

static void *retry_main(void *arg)
{
    rs_retry_t *r = arg;
    retry_item_t batch[RETRY_BATCH];
    while (!atomic_load(&r->stop)) {
        size_t n = take_due(r, batch, RETRY_BATCH);
        if (n == 0)
            continue;
        /* Room in the queue first: when it is full, retries wait like new entries. Ordered
         * entries have theirs (see DESIGN); `reserved` is what to give back. */
        bool ordered = batch[0].lane != NULL;
        size_t room = ordered ? n : rs_queue_reserve(r->q, n, &r->stop);
        if (room < n)
            put_back(r, batch + room, n - room);
        if (room == 0)
            continue;
        size_t reserved = ordered ? 0 : room;
        /* The stream may be retired once its entries are pushed: its name for the log. */
        char name[128];
        snprintf(name, sizeof(name), "%s", batch[0].stream->name);
        rs_redis_route_t *route = NULL;
        if (r->routes == NULL) {
            r->redis = r->own;
        } else if ((route = rs_redis_routes_get(r->routes, batch[0].stream->name)) == NULL) {
            rs_log(r->log, RS_LOG_ERROR, "retry", "stream=%s out of memory; trying again",
                   batch[0].stream->name);
            rs_queue_unreserve(r->q, reserved);
            put_back_later(r, batch, room, 100);
            continue;
        } else {
            r->redis = route->redis;
        }
        if (route != NULL) {
            /* Cluster mode: a master that is down delays only its own streams' retries; the
             * batch waits for its route's next attempt while other streams' retries go on. */
            int64_t now = rs_clock_monotonic_ns();
            if (now < route->retry_at_ns) {
                rs_queue_unreserve(r->q, reserved);
                put_back_later(r, batch, room, (route->retry_at_ns - now) / NS_PER_MS + 1);
                continue;
            }
            if (!rs_redis_connected(r->redis) && rs_redis_connect(r->redis) != RS_REDIS_OK) {
                long ms = rs_redis_route_failed(route, now);
                rs_log(r->log, RS_LOG_WARN, "retry",
                       "stream=%s retries wait: %s; trying again in %ld ms", batch[0].stream->name,
                       rs_redis_errstr(r->redis), ms);
                rs_queue_unreserve(r->q, reserved);
                put_back_later(r, batch, room, ms);
                continue;
            }
        } else if (!rs_redis_connected(r->redis) &&
                   rs_redis_connect_retry(r->redis, retry_wait, r) != RS_REDIS_OK) {
            if (!atomic_load(&r->stop)) {
                rs_log(r->log, RS_LOG_ERROR, "retry", "%s", rs_redis_errstr(r->redis));
                retry_wait(r, 1000);
            }
            rs_queue_unreserve(r->q, reserved);
            put_back(r, batch, room);
            continue;
        }
        int64_t later_ms = 0;
        long pushed = claim_batch(r, batch, room, &later_ms);
        if (pushed == -2) {
            rs_queue_unreserve(r->q, reserved);
            put_back_later(r, batch, room, later_ms);
            continue;
        }
        if (pushed < 0) {
            rs_queue_unreserve(r->q, reserved);
            put_back(r, batch, room);
            if (!atomic_load(&r->stop))
                rs_log(r->log, RS_LOG_WARN, "retry", "lost the connection: %s; reconnecting",
                       rs_redis_errstr(r->redis));
            continue;
        }
        if (!ordered)
            rs_queue_unreserve(r->q, room - (size_t)pushed);
        if (route != NULL && rs_redis_route_succeeded(route) > 0)
            rs_log(r->log, RS_LOG_INFO, "retry", "stream=%s retries go on again", name);
    }
    return NULL;
}

int rs_retry_set_cluster(rs_retry_t *r, rs_cluster_t *cluster)
{
    r->routes =
        rs_redis_routes_new(r->cfg, cluster, "retry", r->cfg->redis.connect_timeout_ms, r->log);
    return r->routes != NULL ? 0 : -1;
}

int rs_retry_start(rs_retry_t *r, char *err, size_t errlen)
{
    int rc = pthread_create(&r->thread, NULL, retry_main, r);
    if (rc != 0) {
        snprintf(err, errlen, "retry scheduler: cannot start thread: %s", strerror(rc));
        return -1;
    }
    pthread_setname_np(r->thread, "rs-retry");
    r->started = true;
    return 0;
}

void rs_retry_stop(rs_retry_t *r)
{
    if (!r->started)
        return;
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->stop, true);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    rs_queue_wake(r->q);
    pthread_join(r->thread, NULL);
    r->started = false;
}

void rs_retry_free(rs_retry_t *r)
{
    if (r == NULL)
        return;
    rs_retry_stop(r);
    rs_redis_free(r->own);
    rs_redis_routes_free(r->routes);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r->heap);
    free(r->lanes);
    free(r);
}

size_t rs_retry_cancel_stream(rs_retry_t *r, rs_stream_t *stream)
{
    pthread_mutex_lock(&r->lock);
    size_t kept = 0, dropped = 0, nlanes = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->heap[i].stream != stream) {
            r->heap[kept++] = r->heap[i];
            continue;
        }
        dropped++;
        if (r->heap[i].lane != NULL)
            r->lanes[nlanes++] = r->heap[i].lane;
    }
    if (dropped > 0) {
        /* Re-insert what is left, in place: each insert writes at or below the slot it
         * reads from. */
        r->n = 0;
        r->plain = 0;
        for (size_t i = 0; i < kept; i++)
            heap_push_locked(r, &r->heap[i]);
        atomic_store_explicit(&r->waiting, r->n, memory_order_relaxed);
    }
    pthread_mutex_unlock(&r->lock);
    /* Lanes released and entries settled outside r->lock (it is a leaf); the stream's entries
     * stay pending in Redis. */
    for (size_t i = 0; i < nlanes; i++)
        rs_queue_unhold(r->q, r->lanes[i]);
    if (dropped > 0)
        rs_stream_settle(stream, (long)dropped);
    return dropped;
}

unsigned long rs_retry_reconnects(const rs_retry_t *r)
{
    return rs_redis_reconnects(r->own) +
           (r->routes != NULL ? rs_redis_routes_reconnects(r->routes) : 0);
}
