/*
 * The worker pool.
 *
 * DESIGN: N threads loop on rs_queue_pop_batch(); the queue's close/abandon is the stop
 * signal, so
 * there is no separate flag to get out of step with it. A worker that leaves decrements
 * `running` under the lock and broadcasts, which lets the main thread wait for all of them
 * with a deadline (pthread_join has none): a handler stuck past the shutdown deadline must
 * not keep the process from exiting. The work function owns everything about an entry's
 * fate; the pool only counts busy workers and live ones (atomics, for /metrics and /healthz).
 *
 * Batch size: a worker takes as many entries as its handlers get through in about
 * BATCH_TARGET_NS, judged from a moving average of the time per entry (`cost_ns`, updated by
 * every worker after every batch). Fast handlers (discard, log) get batches of up to
 * RS_POOL_BATCH_MAX, so one wakeup and one lock acquisition serve many entries; slow ones
 * (a webhook) get one entry at a time, so no entry waits behind another while a worker is
 * idle. The average starts high, so the first entries are taken one by one; and while other
 * workers are idle the queue hands out no more than a fair share of what is ready.
 */

#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

#define BATCH_TARGET_NS INT64_C(200000)  /* handler time one batch should take */
#define COST_INITIAL_NS INT64_C(1000000) /* assumed per entry until measured */

typedef struct {
    rs_pool_t *pool;
    unsigned index;
    pthread_t thread;
    bool started;
} worker_t;

struct rs_pool {
    rs_queue_t *queue;
    rs_work_fn fn;
    void *arg;
    unsigned nthreads;
    worker_t *workers;
    atomic_uint busy;
    atomic_uint alive;    /* threads started and not yet exited */
    atomic_llong cost_ns; /* moving average of the time per entry (ns) */

    pthread_mutex_t lock;
    pthread_cond_t exited; /* CLOCK_MONOTONIC; broadcast when a worker leaves */
    unsigned running;      /* guarded by lock */
};

rs_pool_t *rs_pool_new(unsigned threads, rs_queue_t *q, rs_work_fn fn, void *arg)
{
    rs_pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->workers = calloc(threads, sizeof(*p->workers));
    if (p->workers == NULL) {
        free(p);
        return NULL;
    }
    p->queue = q;
    p->fn = fn;
    p->arg = arg;
    p->nthreads = threads;
    atomic_init(&p->cost_ns, COST_INITIAL_NS);
    pthread_mutex_init(&p->lock, NULL);
    rs_clock_cond_init(&p->exited);
    return p;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    rs_pool_t *p = w->pool;
    rs_entry_t *batch[RS_POOL_BATCH_MAX];
    for (;;) {
        int64_t cost = atomic_load_explicit(&p->cost_ns, memory_order_relaxed);
        int64_t want = BATCH_TARGET_NS / (cost > 1 ? cost : 1);
        size_t max = want < 1 ? 1 : want > RS_POOL_BATCH_MAX ? RS_POOL_BATCH_MAX : (size_t)want;
        size_t n = rs_queue_pop_batch(p->queue, batch, max);
        if (n == 0)
            break;
        atomic_fetch_add_explicit(&p->busy, 1, memory_order_relaxed);
        int64_t began = rs_clock_monotonic_ns();
        p->fn(p->arg, w->index, batch, n);
        int64_t per_entry = (rs_clock_monotonic_ns() - began) / (int64_t)n;
        /* A racy update of a moving average: a lost sample does not matter. */
        atomic_store_explicit(&p->cost_ns, cost + (per_entry - cost) / 8, memory_order_relaxed);
        atomic_fetch_sub_explicit(&p->busy, 1, memory_order_relaxed);
    }
    atomic_fetch_sub(&p->alive, 1);
    pthread_mutex_lock(&p->lock);
    p->running--;
    pthread_cond_broadcast(&p->exited);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int rs_pool_start(rs_pool_t *p, char *err, size_t errlen)
{
    for (unsigned i = 0; i < p->nthreads; i++) {
        worker_t *w = &p->workers[i];
        w->pool = p;
        w->index = i;
        pthread_mutex_lock(&p->lock);
        p->running++;
        pthread_mutex_unlock(&p->lock);
        atomic_fetch_add(&p->alive, 1);
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            atomic_fetch_sub(&p->alive, 1);
            pthread_mutex_lock(&p->lock);
            p->running--;
            pthread_mutex_unlock(&p->lock);
            snprintf(err, errlen, "cannot start worker %u: %s", i, strerror(rc));
            return -1;
        }
        w->started = true;
        char name[32]; /* thread names are cut to 15 bytes */
        snprintf(name, sizeof(name), "rs-worker-%u", i);
        name[15] = '\0';
        pthread_setname_np(w->thread, name);
    }
    return 0;
}

int rs_pool_join(rs_pool_t *p, int64_t deadline_ns)
{
    struct timespec ts = rs_clock_timespec(deadline_ns);
    int timed_out = 0;
    pthread_mutex_lock(&p->lock);
    while (p->running > 0 && !timed_out)
        timed_out = pthread_cond_timedwait(&p->exited, &p->lock, &ts) != 0 && p->running > 0;
    pthread_mutex_unlock(&p->lock);
    if (timed_out)
        return -1;
    for (unsigned i = 0; i < p->nthreads; i++) {
        if (p->workers[i].started) {
            pthread_join(p->workers[i].thread, NULL);
            p->workers[i].started = false;
        }
    }
    return 0;
}

unsigned rs_pool_busy(const rs_pool_t *p)
{
    return atomic_load_explicit(&p->busy, memory_order_relaxed);
}

unsigned rs_pool_alive(const rs_pool_t *p)
{
    return atomic_load(&p->alive);
}

void rs_pool_free(rs_pool_t *p)
{
    if (p == NULL)
        return;
    pthread_cond_destroy(&p->exited);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
}
