/*
 * The consumer service: wires readers, the work queue, the worker pool and the acknowledger
 * together, and shuts them down in order.
 *
 * DESIGN: data flows one way.
 *
 *   Redis --XREADGROUP--> reader (one per stream) --reserve/push--> queue --pop--> worker
 *   worker --handler--> success: acker --XACK (batched)--> Redis --> settle in-flight
 *                       failure: log, leave pending in Redis  --> settle in-flight
 *
 * Ownership: this object owns the stream states, the queue, the pool, the readers and the
 * acker; an entry is owned by whoever holds its pointer (reader, then queue, then one worker,
 * which frees it after handing its id to the acker).
 *
 * Shutdown order, each step's precondition being the previous one's end:
 *   1. stop every reader (woken at once) and join them: nothing new enters the queue;
 *   2. close the queue: workers drain it and exit; wait until the deadline less a reserve
 *      kept for flushing acks; past it, abandon the queue (remaining entries stay pending);
 *   3. stop the acker, which flushes every ack it holds, until the final deadline.
 */

#include "consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acker.h"
#include "clock.h"
#include "pool.h"
#include "queue.h"
#include "reader.h"
#include "stream.h"

struct rs_consumer {
    const rs_config_t *cfg;
    rs_logger_t *log;
    size_t nstreams;
    rs_stream_t **streams;
    rs_reader_t **readers;
    rs_queue_t *queue;
    rs_pool_t *pool;
    rs_acker_t *acker;
    bool started;
};

/* The work function: runs on a worker thread for each entry. */
static void handle_entry(void *arg, unsigned worker, rs_entry_t *e)
{
    rs_consumer_t *c = arg;
    rs_stream_t *s = e->stream;
    rs_handler_report_t report;
    rs_outcome_t outcome = rs_handler_handle(s->handler, worker, e, &report);
    if (outcome == RS_OUTCOME_SUCCESS) {
        atomic_fetch_add(&s->stats.succeeded, 1);
        if (rs_acker_add(c->acker, s, s->name, e->id) != 0) {
            rs_log(c->log, RS_LOG_ERROR, "worker",
                   "stream=%s id=%s out of memory queueing the ack; it will be delivered again",
                   s->name, e->id);
            rs_stream_settle(s, 1);
        }
    } else {
        atomic_fetch_add(&s->stats.failed, 1);
        rs_log(c->log, RS_LOG_WARN, "worker",
               "stream=%s id=%s delivery=%llu handler %s failed (%s): %s; left pending", s->name,
               e->id, (unsigned long long)e->delivery, s->handler->ops->kind,
               outcome == RS_OUTCOME_RETRY ? "retryable" : "permanent", report.error);
        rs_stream_settle(s, 1);
    }
    rs_entry_free(e);
}

/* The acker's callback: Redis confirmed `n` acks of `stream`. */
static void entries_acked(void *arg, void *stream, size_t n)
{
    (void)arg;
    rs_stream_t *s = stream;
    atomic_fetch_add(&s->stats.acked, n);
    rs_stream_settle(s, (long)n);
}

rs_consumer_t *rs_consumer_new(const rs_config_t *cfg, rs_logger_t *log, char *err, size_t errlen)
{
    rs_consumer_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto oom;
    c->cfg = cfg;
    c->log = log;
    c->nstreams = cfg->nstreams;
    c->streams = calloc(cfg->nstreams, sizeof(*c->streams));
    c->readers = calloc(cfg->nstreams, sizeof(*c->readers));
    c->queue = rs_queue_new((size_t)cfg->workers.queue_capacity);
    if (c->streams == NULL || c->readers == NULL || c->queue == NULL)
        goto oom;
    c->pool = rs_pool_new((unsigned)cfg->workers.threads, c->queue, handle_entry, c);
    if (c->pool == NULL)
        goto oom;
    c->acker = rs_acker_new(cfg, log, entries_acked, c, err, errlen);
    if (c->acker == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->nstreams; i++) {
        c->streams[i] =
            rs_stream_new(&cfg->streams[i], (unsigned)cfg->workers.threads, log, err, errlen);
        if (c->streams[i] == NULL)
            goto fail;
        c->readers[i] = rs_reader_new(cfg, c->streams[i], c->queue, log);
        if (c->readers[i] == NULL)
            goto oom;
    }
    return c;
oom:
    snprintf(err, errlen, "consumer: out of memory");
fail:
    rs_consumer_free(c);
    return NULL;
}

int rs_consumer_start(rs_consumer_t *c, char *err, size_t errlen)
{
    c->started = true;
    if (rs_acker_start(c->acker, err, errlen) != 0 || rs_pool_start(c->pool, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < c->nstreams; i++) {
        if (rs_reader_start(c->readers[i], err, errlen) != 0)
            return -1;
    }
    rs_log(c->log, RS_LOG_INFO, "consumer",
           "consuming %zu streams as %s in group %s with %d workers, queue %d", c->nstreams,
           c->cfg->group.consumer, c->cfg->group.name, c->cfg->workers.threads,
           c->cfg->workers.queue_capacity);
    return 0;
}

bool rs_consumer_ready(const rs_consumer_t *c)
{
    for (size_t i = 0; i < c->nstreams; i++) {
        if (!rs_reader_ready(c->readers[i]))
            return false;
    }
    return true;
}

int rs_consumer_stop(rs_consumer_t *c)
{
    if (!c->started)
        return 0;
    int64_t start = rs_clock_monotonic_ns();
    int64_t timeout = (int64_t)c->cfg->workers.shutdown_timeout_ms * 1000000;
    int64_t deadline = start + timeout;
    /* Keep a quarter of the time (at most a second) for flushing acks after the workers. */
    int64_t reserve = timeout / 4 < INT64_C(1000000000) ? timeout / 4 : INT64_C(1000000000);

    rs_log(c->log, RS_LOG_INFO, "consumer", "shutting down: %zu entries queued, %u in handlers",
           rs_queue_depth(c->queue), rs_pool_busy(c->pool));
    for (size_t i = 0; i < c->nstreams; i++)
        rs_reader_stop(c->readers[i]);
    for (size_t i = 0; i < c->nstreams; i++)
        rs_reader_join(c->readers[i]);

    rs_queue_close(c->queue);
    int rc = 0;
    if (rs_pool_join(c->pool, deadline - reserve) != 0) {
        size_t left = rs_queue_depth(c->queue);
        rs_queue_abandon(c->queue);
        rs_log(c->log, RS_LOG_WARN, "consumer",
               "shutdown deadline near: %zu queued entries left pending for the next start", left);
        if (rs_pool_join(c->pool, deadline - reserve / 2) != 0) {
            rs_log(c->log, RS_LOG_ERROR, "consumer",
                   "%u handlers still running at the deadline; their entries stay pending",
                   rs_pool_busy(c->pool));
            rc = -1;
        }
    }
    size_t unsent = rs_acker_stop(c->acker, deadline);
    if (unsent > 0)
        rs_log(c->log, RS_LOG_WARN, "consumer",
               "%zu acks could not be sent; those entries stay pending and will be "
               "delivered again",
               unsent);
    for (size_t i = 0; i < c->nstreams; i++) {
        rs_stream_stats_t *st = &c->streams[i]->stats;
        rs_log(c->log, RS_LOG_INFO, "consumer",
               "stream=%s received=%llu succeeded=%llu failed=%llu acked=%llu deleted=%llu",
               c->streams[i]->name, atomic_load(&st->received), atomic_load(&st->succeeded),
               atomic_load(&st->failed), atomic_load(&st->acked), atomic_load(&st->deleted));
    }
    rs_log(c->log, RS_LOG_INFO, "consumer", "stopped in %lld ms",
           (long long)((rs_clock_monotonic_ns() - start) / 1000000));
    c->started = rc != 0; /* a stuck worker still uses everything */
    return rc;
}

void rs_consumer_free(rs_consumer_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nstreams; i++) {
        if (c->readers != NULL)
            rs_reader_free(c->readers[i]);
        if (c->streams != NULL)
            rs_stream_free(c->streams[i]);
    }
    rs_acker_free(c->acker);
    rs_pool_free(c->pool);
    rs_queue_free(c->queue);
    free(c->readers);
    free(c->streams);
    free(c);
}
