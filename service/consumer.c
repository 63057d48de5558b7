/*
 * The consumer service: wires readers, the work queue, the worker pool, the retry scheduler
 * and the acknowledger together, and shuts them down in order.
 *
 * DESIGN: data flows one way.
 *
 *   Redis --XREADGROUP/XAUTOCLAIM--> reader (one per stream) --reserve/push--> queue --> worker
 *   worker --handler--> success --------------------------> acker --XACK (batched)--> Redis
 *                       retryable, deliveries < max ------> retry --XCLAIM (after backoff)--> queue
 *                       permanent, or deliveries >= max --> acker --MULTI XADD dlq + XACK EXEC
 *
 * Every entry read is "in flight" for its stream until it is settled: acknowledged, dead-
 * lettered, or given up to Redis (left pending, to be delivered again later). Readers use
 * that count to re-read their pending entries only when nothing of theirs is in flight.
 *
 * Ownership: this object owns the stream states, the queue, the pool, the readers, the retry
 * scheduler and the acker; an entry is owned by whoever holds its pointer (reader or retry
 * scheduler, then queue, then one worker, which frees it or hands it to the acker).
 *
 * Health: the HTTP server's threads ask this object whether it is alive and ready, and for a
 * snapshot of its counters. The answers come from atomics (the phase below, each reader's
 * progress and state, the pool's live and busy counts, every counter), read under the stream
 * list's lock so a reload cannot free a stream meanwhile; a probe never waits for a reader or
 * a worker and never takes one of their locks.
 *
 * Reload: streams live in slots. A removed or changed stream's slot retires: its reader is
 * stopped and joined, its ids waiting for a retry are cancelled (left pending in Redis), and
 * rs_consumer_tick() frees it once nothing of it is in flight, then starts the changed
 * stream's successor with a fresh reader (whose recovery pass reads again what the old one
 * had received but not queued). Lock order: c->lock is a leaf; it is never held across a
 * join, a thread start, or a stream's settle.
 *
 * Shutdown order, each step's precondition being the previous one's end:
 *   0. mark the service stopping, so /readyz answers 503 from the first moment;
 *   1. stop every reader (woken at once) and the retry scheduler, and join them: nothing new
 *      enters the queue; entries waiting for a retry stay pending in Redis;
 *   2. close the queue: workers drain it and exit; wait until the deadline less a reserve
 *      kept for flushing acks; past it, abandon the queue (remaining entries stay pending);
 *   3. stop the acker, which flushes every ack and dead letter it holds, until the deadline;
 *   4. when tracing, flush the spans (every worker has ended its spans by now) for at most
 *      min(2 s, the time left), then stop the rs-trace thread.
 *
 * Tracing: each handled entry gets a CONSUMER span on its worker's stack, a child of the
 * producer's span when the entry carries a valid `traceparent` field. The worker lends the
 * span's context to the handler through rs_entry_t.trace and hands the finished span to the
 * exporter, which copies it (never waiting on the network).
 */

#include "consumer.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acker.h"
#include "backoff.h"
#include "clock.h"
#include "latency.h"
#include "message.h"
#include "pool.h"
#include "queue.h"
#include "reader.h"
#include "retry.h"
#include "stream.h"
#include "trace.h"
#include "trace_export.h"
#include "version.h"

/* The longest the exporter may take to flush spans at shutdown. */
#define TRACE_FLUSH_MAX_NS INT64_C(2000000000)

/* The service's life, for /healthz and /readyz (read by the HTTP server's threads). */
typedef enum {
    PHASE_NEW = 0, /* built, threads not started */
    PHASE_RUNNING, /* rs_consumer_start() succeeded */
    PHASE_STOPPING /* rs_consumer_stop() has begun (and maybe ended) */
} phase_t;

/* One configured stream: its state and its reader, and what a reload decided for it. */
typedef struct {
    rs_stream_t *stream;
    rs_reader_t *reader; /* NULL once retiring and joined */
    /* A reload removed or changed the stream: its reader has been stopped and joined, and the
     * slot waits for its in-flight entries to settle (rs_consumer_tick()). Then the stream is
     * freed, and the slot either goes away or takes up `successor`. */
    bool retiring;
    rs_stream_t *successor; /* a changed stream's new state, not yet running; or NULL */
} slot_t;

struct rs_consumer {
    const rs_config_t *cfg; /* the configuration started with; every setting but the streams'
                             * and the log level stays as it says until a restart */
    rs_logger_t *log;
    rs_handler_env_t env; /* what every stream's handler is built with */
    size_t batch_max;     /* the most a reader may ever ask for per read (its arrays' size) */

    /* The streams. The main thread is the only writer, and writes under `lock`; other threads
     * (the HTTP server's) read under `lock`. The main thread reads without it. */
    pthread_mutex_t lock;
    slot_t *slots;
    size_t nslots, slots_cap;
    unsigned long retired_reconnects; /* of readers freed by reloads; guarded by lock */

    rs_cluster_t *cluster; /* cluster mode's router, shared by every connection; or NULL */
    rs_queue_t *queue;
    rs_pool_t *pool;
    rs_retry_t *retry;
    rs_acker_t *acker;
    rs_backoff_t *jitter;        /* one per worker: retry delays, used by that worker only */
    rs_output_t *out;            /* stdout, shared by the log handlers */
    rs_trace_exporter_t *tracer; /* NULL when tracing is off */
    /* End-to-end latency of entries carrying RS_FIELD_SENT_NS: one histogram per worker, the
     * worker its only writer, created on first use (NULL until then). */
    _Atomic(rs_latency_t *) *e2e;
    bool started;     /* main thread only */
    atomic_int phase; /* phase_t; written by the main thread, read by any */
};

/* Hands a failed entry to the acker for its dead-letter stream (taking ownership). */
static void dead_letter(rs_consumer_t *c, rs_entry_t *e, const char *error)
{
    rs_stream_t *s = e->stream;
    if (rs_acker_dead_letter(c->acker, s, s->name, e, error) != 0) {
        rs_log(c->log, RS_LOG_ERROR, "worker",
               "stream=%s out of memory queueing a dead letter; the entry stays pending", s->name);
        rs_stream_settle(s, 1);
    }
}

/* A retryable failure: schedule another delivery after the backoff for this delivery count,
 * or the target's own Retry-After when that is longer. Everything it needs of the stream is
 * used before the hand-off: once the id waits in the retry scheduler, a reload may retire the
 * stream, cancel the retry, and free the stream. An ordered entry's lane stays held while it
 * waits (the scheduler gives it back), or is released here when the entry is left pending. */
static void schedule_retry(rs_consumer_t *c, unsigned worker, rs_entry_t *e,
                           const rs_handler_report_t *report)
{
    rs_stream_t *s = e->stream;
    unsigned attempt = e->delivery > 64 ? 64 : (unsigned)e->delivery - 1;
    int64_t delay = rs_backoff_at_ms(&c->jitter[worker], attempt);
    if (report->retry_after_ms > delay)
        delay = report->retry_after_ms < c->cfg->group.retry_max_ms ? report->retry_after_ms
                                                                    : c->cfg->group.retry_max_ms;
    atomic_fetch_add(&s->stats.retried, 1);
    rs_log(c->log, RS_LOG_WARN, "worker",
           "stream=%s id=%s delivery=%llu handler %s failed: %s; retrying in %lld ms", s->name,
           e->id, (unsigned long long)e->delivery, s->handler->ops->kind, report->error,
           (long long)delay);
    struct rs_lane *lane = e->lane;
    if (lane != NULL)
        rs_queue_hold(c->queue);
    if (rs_retry_schedule(c->retry, s, e->id, e->delivery, delay, lane) == 0)
        return;
    atomic_fetch_sub(&s->stats.retried, 1);
    rs_log(c->log, RS_LOG_WARN, "worker",
           "stream=%s id=%s too many retries waiting: left pending until claimed after %d ms",
           s->name, e->id, c->cfg->group.claim_idle_ms);
    if (lane != NULL)
        rs_queue_unhold(c->queue, lane);
    rs_stream_settle(s, 1);
}

/* Starts the CONSUMER span for `e`: a child of the entry's `traceparent` field when that is
 * valid (an invalid one is only worth a debug line), a new root otherwise. Returns 0, or -1
 * when no span could be started (the entry is handled untraced). */
static int start_span(rs_consumer_t *c, const rs_entry_t *e, rs_span_t *span)
{
    rs_trace_context_t parent;
    const rs_trace_context_t *pp = NULL;
    for (size_t i = 0; i < e->nfields; i++) {
        const rs_field_t *f = &e->fields[i];
        if (f->name_len != sizeof(RS_FIELD_TRACEPARENT) - 1 ||
            memcmp(f->name, RS_FIELD_TRACEPARENT, f->name_len) != 0)
            continue;
        if (rs_traceparent_parse(f->value, f->value_len, &parent) == 0)
            pp = &parent;
        else
            rs_log(c->log, RS_LOG_DEBUG, "worker",
                   "stream=%s id=%s invalid traceparent field ignored; starting a new trace",
                   e->stream_name, e->id);
        break;
    }
    char name[RS_SPAN_TEXT_MAX];
    snprintf(name, sizeof(name), "%s process", e->stream_name);
    if (rs_span_start(span, name, RS_SPAN_KIND_CONSUMER, pp, c->cfg->tracing.sample_ratio) != 0)
        return -1;
    rs_span_set_str(span, "messaging.system", "redis");
    rs_span_set_str(span, "messaging.destination.name", e->stream_name);
    rs_span_set_str(span, "messaging.message.id", e->id);
    rs_span_set_str(span, "messaging.consumer.group.name", c->cfg->group.name);
    rs_span_set_str(span, "messaging.operation.type", "process");
    rs_span_set_int(span, "messaging.redis.delivery_count",
                    e->delivery > INT64_MAX ? INT64_MAX : (int64_t)e->delivery);
    return 0;
}

/* Ends a CONSUMER span with the handler's outcome and hands it to the exporter. */
static void finish_span(rs_consumer_t *c, rs_span_t *span, rs_outcome_t outcome,
                        const rs_handler_report_t *report)
{
    if (outcome == RS_OUTCOME_SUCCESS)
        rs_span_set_status(span, RS_SPAN_STATUS_UNSET, NULL);
    else
        rs_span_set_status(span, RS_SPAN_STATUS_ERROR, report->error);
    rs_span_end(span);
    rs_trace_exporter_submit(c->tracer, span);
}

/* The entry's RS_FIELD_SENT_NS (the producer's --e2e send time), or -1 when it has none. */
static int64_t sent_ns(const rs_entry_t *e)
{
    for (size_t i = 0; i < e->nfields; i++) {
        const rs_field_t *f = &e->fields[i];
        if (f->name_len != sizeof(RS_FIELD_SENT_NS) - 1 ||
            memcmp(f->name, RS_FIELD_SENT_NS, f->name_len) != 0)
            continue;
        int64_t v = 0;
        for (size_t k = 0; k < f->value_len; k++) {
            unsigned char ch = (unsigned char)f->value[k];
            if (ch < '0' || ch > '9' || v > (INT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + (ch - '0');
        }
        return f->value_len > 0 ? v : -1;
    }
    return -1;
}

/* Records now - sent for an entry carrying the producer's send time, in this worker's own
 * histogram (created on first use: a consumer that never sees one pays nothing). */
static void record_e2e(rs_consumer_t *c, unsigned worker, const rs_entry_t *e)
{
    int64_t sent = sent_ns(e);
    if (sent < 0)
        return;
    rs_latency_t *h = atomic_load_explicit(&c->e2e[worker], memory_order_acquire);
    if (h == NULL) {
        h = rs_latency_new();
        if (h == NULL)
            return;
        atomic_store_explicit(&c->e2e[worker], h, memory_order_release);
    }
    rs_latency_record(h, rs_clock_realtime_ns() - sent);
}

/* Runs the handler for one entry and decides its fate. Returns true when it succeeded: the
 * caller then queues its ack (with the rest of the batch) and frees it; otherwise the entry
 * was handed on (retry, dead letter) or freed here. Either way an ordered entry's lane is
 * passed on here: released (the key's next entry may start at once), or held by the retry. */
static bool handle_entry(rs_consumer_t *c, unsigned worker, rs_entry_t *e)
{
    rs_stream_t *s = e->stream;
    uint64_t max = (uint64_t)c->cfg->group.max_deliveries;
    struct rs_lane *lane = e->lane;
    e->lane = NULL;

    if (e->delivery > max) {
        /* Delivered again by a crash recovery or a claim after its last allowed attempt. */
        char why[128];
        snprintf(why, sizeof(why), "delivered %llu times, more than max_deliveries (%llu)",
                 (unsigned long long)e->delivery, (unsigned long long)max);
        dead_letter(c, e, why);
        rs_queue_done(c->queue, lane);
        return false;
    }
    rs_handler_report_t report;
    rs_span_t span;
    bool traced = c->tracer != NULL && start_span(c, e, &span) == 0;
    e->trace = traced ? &span.ctx : NULL;
    int64_t began = rs_clock_monotonic_ns();
    rs_outcome_t outcome = rs_handler_handle(s->handler, worker, e, &report);
    rs_histogram_observe(&s->handler_duration, rs_clock_monotonic_ns() - began);
    e->trace = NULL;
    if (traced)
        finish_span(c, &span, outcome, &report);
    if (outcome == RS_OUTCOME_SUCCESS) {
        record_e2e(c, worker, e);
        atomic_fetch_add_explicit(&s->stats.succeeded, 1, memory_order_relaxed);
        rs_queue_done(c->queue, lane);
        return true;
    }
    atomic_fetch_add(&s->stats.failed, 1);
    if (outcome == RS_OUTCOME_RETRY && e->delivery < max) {
        e->lane = lane;
        schedule_retry(c, worker, e, &report);
        rs_entry_free(e);
        return false;
    }
    if (outcome == RS_OUTCOME_RETRY) {
        char why[sizeof(report.error) + 64];
        snprintf(why, sizeof(why), "%s (gave up after %llu deliveries)", report.error,
                 (unsigned long long)e->delivery);
        dead_letter(c, e, why);
    } else {
        dead_letter(c, e, report.error);
    }
    rs_queue_done(c->queue, lane);
    return false;
}

/* The work function: runs on a worker thread for each batch the pool took from the queue.
 * Handles the entries in order, then queues the acks of those that succeeded in one call to
 * the acker (one lock acquisition and at most one wakeup per batch, not per entry). */
static void handle_batch(void *arg, unsigned worker, rs_entry_t **entries, size_t n)
{
    rs_consumer_t *c = arg;
    rs_ack_ref_t acks[RS_POOL_BATCH_MAX];
    rs_entry_t *handled[RS_POOL_BATCH_MAX];
    size_t nacks = 0;
    size_t i = 0;
    for (; i < n && !rs_queue_abandoned(c->queue); i++) {
        rs_entry_t *e = entries[i];
        if (!handle_entry(c, worker, e))
            continue;
        acks[nacks] =
            (rs_ack_ref_t){.stream = e->stream, .stream_name = e->stream->name, .id = e->id};
        handled[nacks++] = e;
    }
    /* The shutdown deadline passed: what is left stays pending for the next start. */
    for (; i < n; i++) {
        rs_queue_done(c->queue, entries[i]->lane);
        rs_stream_settle(entries[i]->stream, 1);
        rs_entry_free(entries[i]);
    }
    if (nacks > 0 && rs_acker_add_many(c->acker, acks, nacks) != 0) {
        for (size_t k = 0; k < nacks; k++) {
            rs_log(c->log, RS_LOG_ERROR, "worker",
                   "stream=%s id=%s out of memory queueing the ack; it will be delivered again",
                   handled[k]->stream->name, handled[k]->id);
            rs_stream_settle(handled[k]->stream, 1);
        }
    }
    /* The acks may be settled (and a retired stream freed) by now; the entries hold copies of
     * everything they need. */
    for (size_t k = 0; k < nacks; k++)
        rs_entry_free(handled[k]);
}

/* The acker's callback: Redis has answered for `n` entries of `stream`. */
static void entries_settled(void *arg, void *stream, size_t n, rs_settled_t how)
{
    (void)arg;
    rs_stream_t *s = stream;
    if (how == RS_SETTLED_ACKED)
        atomic_fetch_add(&s->stats.acked, n);
    else if (how == RS_SETTLED_DEAD_LETTERED)
        atomic_fetch_add(&s->stats.dead_lettered, n);
    rs_stream_settle(s, (long)n);
}

/* The fair share of the queue for each of `nstreams` readers: each reader holds its slots
 * while it blocks, so none may take more than its share; one more share stays free for due
 * retries. */
static size_t reader_share(const rs_consumer_t *c, size_t nstreams)
{
    size_t share = (size_t)c->cfg->workers.queue_capacity / (nstreams + 1);
    return share < 1 ? 1 : share;
}

/* The number of streams being read: every slot that is not retiring. Main thread, or any
 * thread holding c->lock. */
static size_t active_streams(const rs_consumer_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nslots; i++)
        n += !c->slots[i].retiring;
    return n;
}

/* Gives every running reader its share of the queue for the current number of streams. */
static void rebalance_readers(rs_consumer_t *c)
{
    size_t share = reader_share(c, active_streams(c));
    for (size_t i = 0; i < c->nslots; i++)
        if (c->slots[i].reader != NULL)
            rs_reader_set_batch_limit(c->slots[i].reader, share);
}

static int reserve_slots(rs_consumer_t *c, size_t n)
{
    if (c->nslots + n <= c->slots_cap)
        return 0;
    size_t cap = c->slots_cap > 0 ? c->slots_cap : 4;
    while (cap < c->nslots + n)
        cap *= 2;
    pthread_mutex_lock(&c->lock);
    slot_t *grown = realloc(c->slots, cap * sizeof(*grown));
    if (grown != NULL) {
        c->slots = grown;
        c->slots_cap = cap;
    }
    pthread_mutex_unlock(&c->lock);
    return grown != NULL ? 0 : -1;
}

rs_consumer_t *rs_consumer_new(const rs_config_t *cfg, rs_logger_t *log, char *err, size_t errlen)
{
    rs_consumer_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto oom;
    c->cfg = cfg;
    c->log = log;
    pthread_mutex_init(&c->lock, NULL);
    c->jitter = calloc((size_t)cfg->workers.threads, sizeof(*c->jitter));
    c->e2e = calloc((size_t)cfg->workers.threads, sizeof(*c->e2e));
    c->queue = rs_queue_new((size_t)cfg->workers.queue_capacity);
    c->out = rs_output_new(STDOUT_FILENO);
    if (c->jitter == NULL || c->e2e == NULL || c->queue == NULL || c->out == NULL ||
        reserve_slots(c, cfg->nstreams) != 0)
        goto oom;
    for (int i = 0; i < cfg->workers.threads; i++)
        rs_backoff_init(&c->jitter[i], cfg->group.retry_base_ms, cfg->group.retry_max_ms, 0);
    c->pool = rs_pool_new((unsigned)cfg->workers.threads, c->queue, handle_batch, c);
    if (c->pool == NULL)
        goto oom;
    if (cfg->redis.cluster && (c->cluster = rs_cluster_new(cfg, log, err, errlen)) == NULL)
        goto fail;
    c->acker = rs_acker_new(cfg, log, entries_settled, c, err, errlen);
    if (c->acker == NULL)
        goto fail;
    c->retry = rs_retry_new(cfg, c->queue, log, err, errlen);
    if (c->retry == NULL)
        goto fail;
    if (c->cluster != NULL && (rs_acker_set_cluster(c->acker, c->cluster) != 0 ||
                               rs_retry_set_cluster(c->retry, c->cluster) != 0))
        goto oom;
    if (cfg->tracing.enabled) {
        c->tracer = rs_trace_exporter_new(cfg, RS_VERSION, log, err, errlen);
        if (c->tracer == NULL)
            goto fail;
    }
    /* A reader's arrays are sized once; a reload that removes streams can raise its share
     * back up to this, never past it. */
    c->batch_max = (size_t)cfg->group.read_count < (size_t)cfg->workers.queue_capacity
                       ? (size_t)cfg->group.read_count
                       : (size_t)cfg->workers.queue_capacity;
    c->env =
        (rs_handler_env_t){.workers = (unsigned)cfg->workers.threads, .log = log, .out = c->out};
    size_t share = reader_share(c, cfg->nstreams);
    for (size_t i = 0; i < cfg->nstreams; i++) {
        slot_t *slot = &c->slots[c->nslots];
        *slot = (slot_t){0};
        slot->stream = rs_stream_new(&cfg->streams[i], &c->env, err, errlen);
        if (slot->stream == NULL)
            goto fail;
        c->nslots++;
        slot->reader = rs_reader_new(cfg, slot->stream, c->queue, c->batch_max, log);
        if (slot->reader == NULL)
            goto oom;
        if (c->cluster != NULL)
            rs_reader_route(slot->reader, c->cluster);
        rs_reader_set_batch_limit(slot->reader, share);
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
    if (c->tracer != NULL && rs_trace_exporter_start(c->tracer, err, errlen) != 0)
        return -1;
    if (rs_acker_start(c->acker, err, errlen) != 0 || rs_pool_start(c->pool, err, errlen) != 0 ||
        rs_retry_start(c->retry, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < c->nslots; i++) {
        if (rs_reader_start(c->slots[i].reader, err, errlen) != 0)
            return -1;
    }
    atomic_store(&c->phase, PHASE_RUNNING);
    rs_log(c->log, RS_LOG_INFO, "consumer",
           "consuming %zu streams as %s in group %s with %d workers, queue %d", c->nslots,
           c->cfg->group.consumer, c->cfg->group.name, c->cfg->workers.threads,
           c->cfg->workers.queue_capacity);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Reload.                                                                                    */

/* The slot of the stream named `name`, or NULL. Main thread. */
static slot_t *find_slot(rs_consumer_t *c, const char *name)
{
    for (size_t i = 0; i < c->nslots; i++)
        if (strcmp(c->slots[i].stream->name, name) == 0)
            return &c->slots[i];
    return NULL;
}

/* The settings a slot will run with once any retirement is over: its successor's, or its
 * own unless it is being removed. */
static const rs_stream_config_t *slot_target(const slot_t *slot)
{
    if (slot->successor != NULL)
        return slot->successor->cfg;
    return slot->retiring ? NULL : slot->stream->cfg;
}

/* Stops reading a stream that a reload removed or changed. Its reader is stopped and joined
 * at once (it wakes from any wait); entries already read finish with the handler they were
 * read for; ids waiting for a retry are dropped and stay pending in Redis. */
static void retire(rs_consumer_t *c, slot_t *slot)
{
    pthread_mutex_lock(&c->lock);
    slot->retiring = true; /* from now on health checks pass it over */
    pthread_mutex_unlock(&c->lock);
    rs_reader_t *reader = slot->reader;
    if (reader != NULL && c->started) {
        rs_reader_stop(reader);
        rs_reader_join(reader);
    }
    pthread_mutex_lock(&c->lock);
    slot->reader = NULL;
    if (reader != NULL)
        c->retired_reconnects += rs_reader_reconnects(reader);
    pthread_mutex_unlock(&c->lock);
    rs_reader_free(reader);
    rs_retry_cancel_stream(c->retry, slot->stream);
}

/* Creates (and, when running, starts) the reader of `slot`'s stream. Returns 0, or -1 with
 * a message in `err`. */
static int slot_start_reader(rs_consumer_t *c, slot_t *slot, char *err, size_t errlen)
{
    rs_reader_t *reader = rs_reader_new(c->cfg, slot->stream, c->queue, c->batch_max, c->log);
    if (reader == NULL) {
        snprintf(err, errlen, "stream %s: out of memory", slot->stream->name);
        return -1;
    }
    if (c->cluster != NULL)
        rs_reader_route(reader, c->cluster);
    rs_reader_set_batch_limit(reader, reader_share(c, active_streams(c)));
    if (c->started && rs_reader_start(reader, err, errlen) != 0) {
        rs_reader_free(reader);
        return -1;
    }
    pthread_mutex_lock(&c->lock);
    slot->reader = reader;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* Appends `buf` with ", name" (or "name" first). */
static void list_name(char *buf, size_t buflen, const char *name)
{
    size_t used = strnlen(buf, buflen);
    if (used + 1 < buflen)
        snprintf(buf + used, buflen - used, "%s%s", used > 0 ? ", " : "", name);
}

int rs_consumer_reload(rs_consumer_t *c, const rs_config_t *next, char *err, size_t errlen)
{
    char restart[512];
    if (rs_config_restart_keys(c->cfg, next, restart, sizeof(restart)) > 0)
        rs_log(c->log, RS_LOG_WARN, "consumer",
               "reload: %s changed, which takes a restart to apply; running with the old "
               "value until then",
               restart);

    /* First build the state of every added or changed stream (its handler included), so a
     * handler that cannot be built rejects the whole reload before anything changed. */
    rs_stream_t **built = calloc(next->nstreams > 0 ? next->nstreams : 1, sizeof(*built));
    if (built == NULL || reserve_slots(c, next->nstreams) != 0) {
        free(built);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < next->nstreams; i++) {
        const slot_t *slot = find_slot(c, next->streams[i].name);
        const rs_stream_config_t *now = slot != NULL ? slot_target(slot) : NULL;
        if (now != NULL && rs_stream_config_equal(now, &next->streams[i]))
            continue;
        built[i] = rs_stream_new(&next->streams[i], &c->env, err, errlen);
        if (built[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                rs_stream_free(built[j]);
            free(built);
            return -1;
        }
    }

    /* Then apply: nothing below can fail but a reader's start, which leaves that one stream
     * unread and is reported, never undone half-way. */
    char added[256] = "", removed[256] = "", changed[256] = "";
    int rc = 0;
    for (size_t i = 0; i < c->nslots; i++) {
        slot_t *slot = &c->slots[i];
        bool kept = false;
        for (size_t j = 0; j < next->nstreams && !kept; j++)
            kept = strcmp(slot->stream->name, next->streams[j].name) == 0;
        if (kept || slot_target(slot) == NULL)
            continue;
        list_name(removed, sizeof(removed), slot->stream->name);
        rs_stream_t *dropped = slot->successor;
        pthread_mutex_lock(&c->lock);
        slot->successor = NULL;
        pthread_mutex_unlock(&c->lock);
        rs_stream_free(dropped);
        if (!slot->retiring)
            retire(c, slot);
    }
    for (size_t i = 0; i < next->nstreams; i++) {
        if (built[i] == NULL)
            continue;
        slot_t *slot = find_slot(c, next->streams[i].name);
        if (slot == NULL) {
            list_name(added, sizeof(added), built[i]->name);
            pthread_mutex_lock(&c->lock);
            slot = &c->slots[c->nslots++];
            *slot = (slot_t){.stream = built[i]};
            pthread_mutex_unlock(&c->lock);
            char why[256];
            if (slot_start_reader(c, slot, why, sizeof(why)) != 0) {
                rs_log(c->log, RS_LOG_ERROR, "consumer", "reload: stream=%s not read: %s",
                       built[i]->name, why);
                snprintf(err, errlen, "stream %s: %s", built[i]->name, why);
                rc = -1;
            }
            continue;
        }
        list_name(changed, sizeof(changed), built[i]->name);
        rs_stream_t *replaced = slot->successor;
        pthread_mutex_lock(&c->lock);
        slot->successor = built[i];
        pthread_mutex_unlock(&c->lock);
        rs_stream_free(replaced);
        if (!slot->retiring)
            retire(c, slot);
    }
    free(built);
    rebalance_readers(c);

    if (next->log.level != rs_logger_level(c->log)) {
        rs_log(c->log, RS_LOG_INFO, "consumer", "reload: log level now %s",
               rs_log_level_name(next->log.level));
        rs_logger_set_level(c->log, next->log.level);
    }
    rs_log(c->log, RS_LOG_INFO, "consumer",
           "reload: %zu streams; added: %s; removed: %s; changed: %s", next->nstreams,
           added[0] ? added : "none", removed[0] ? removed : "none", changed[0] ? changed : "none");
    rs_consumer_tick(c);
    return rc;
}

size_t rs_consumer_tick(rs_consumer_t *c)
{
    size_t retiring = 0;
    for (size_t i = 0; i < c->nslots;) {
        slot_t *slot = &c->slots[i];
        if (!slot->retiring) {
            i++;
            continue;
        }
        /* A worker may have scheduled a retry of the stream since it was retired. */
        rs_retry_cancel_stream(c->retry, slot->stream);
        if (!rs_stream_idle(slot->stream)) {
            retiring++;
            i++;
            continue;
        }
        rs_stream_t *old = slot->stream;
        rs_stream_t *next = slot->successor;
        if (next != NULL) {
            rs_stream_adopt_stats(next, old);
            pthread_mutex_lock(&c->lock);
            *slot = (slot_t){.stream = next};
            pthread_mutex_unlock(&c->lock);
            char why[256];
            if (slot_start_reader(c, slot, why, sizeof(why)) != 0)
                rs_log(c->log, RS_LOG_ERROR, "consumer", "stream=%s not read: %s", next->name, why);
            else
                rs_log(c->log, RS_LOG_INFO, "consumer",
                       "stream=%s now handled with its new settings (handler %s%s%s)", next->name,
                       next->handler->ops->kind,
                       next->cfg->ordering != RS_ORDERING_NONE ? ", ordering " : "",
                       next->cfg->ordering != RS_ORDERING_NONE
                           ? rs_ordering_name(next->cfg->ordering)
                           : "");
            i++;
        } else {
            rs_log(c->log, RS_LOG_INFO, "consumer",
                   "stream=%s removed: every entry read was settled; no longer read", old->name);
            pthread_mutex_lock(&c->lock);
            memmove(slot, slot + 1, (c->nslots - i - 1) * sizeof(*slot));
            c->nslots--;
            pthread_mutex_unlock(&c->lock);
        }
        rs_stream_free(old);
    }
    if (retiring == 0)
        rebalance_readers(c);
    return retiring;
}

/* ------------------------------------------------------------------------------------------ */
/* Health and metrics (any thread).                                                           */

/* Appends a line to a reason buffer (truncating quietly: the first problems matter most). */
__attribute__((format(printf, 3, 4))) static void add_reason(char *why, size_t whylen,
                                                             const char *fmt, ...)
{
    size_t used = strnlen(why, whylen);
    if (whylen == 0 || used + 1 >= whylen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + used, whylen - used, fmt, ap);
    va_end(ap);
    used = strnlen(why, whylen);
    if (used + 1 < whylen) {
        why[used] = '\n';
        why[used + 1] = '\0';
    }
}

bool rs_consumer_stopping(const rs_consumer_t *c)
{
    return atomic_load(&c->phase) == PHASE_STOPPING;
}

/* The checks of rs_consumer_alive(); with `outage_ok`, a reader that is only waiting for
 * Redis to come back is not counted as stalled (rs_consumer_watchdog()). */
static bool check_alive(rs_consumer_t *c, bool outage_ok, char *why, size_t whylen)
{
    if (whylen > 0)
        why[0] = '\0';
    int phase = atomic_load(&c->phase);
    if (phase == PHASE_NEW) {
        add_reason(why, whylen, "starting");
        return false;
    }
    if (phase == PHASE_STOPPING)
        return true; /* threads end on purpose now; see the header */
    bool alive = true;
    unsigned workers = rs_pool_alive(c->pool);
    if (workers < (unsigned)c->cfg->workers.threads) {
        add_reason(why, whylen, "worker threads: %u of %d running", workers,
                   c->cfg->workers.threads);
        alive = false;
    }
    int64_t now = rs_clock_monotonic_ns();
    int64_t window_ns = (int64_t)c->cfg->health.liveness_timeout_ms * 1000000;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nslots; i++) {
        const slot_t *slot = &c->slots[i];
        /* Retiring: stopped on purpose. `retiring` is what says so; `reader` stays set until
         * the thread was joined, and a thread that has ended says it is not alive. */
        if (slot->reader == NULL || slot->retiring)
            continue;
        rs_reader_health_t h;
        rs_reader_health(slot->reader, now, &h);
        if (!h.alive) {
            add_reason(why, whylen, "stream %s: the reader thread is not running",
                       slot->stream->name);
            alive = false;
        } else if (h.stalled_ns > window_ns && !(outage_ok && h.activity == RS_READER_CONNECTING)) {
            add_reason(why, whylen,
                       "stream %s: the reader has not completed a read for %lld ms (limit %d "
                       "ms); it is %s",
                       slot->stream->name, (long long)(h.stalled_ns / 1000000),
                       c->cfg->health.liveness_timeout_ms, rs_reader_activity_name(h.activity));
            alive = false;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return alive;
}

bool rs_consumer_alive(rs_consumer_t *c, char *why, size_t whylen)
{
    return check_alive(c, false, why, whylen);
}

bool rs_consumer_watchdog(rs_consumer_t *c, char *why, size_t whylen)
{
    return check_alive(c, true, why, whylen);
}

bool rs_consumer_ready(rs_consumer_t *c, char *why, size_t whylen)
{
    if (whylen > 0)
        why[0] = '\0';
    int phase = atomic_load(&c->phase);
    if (phase != PHASE_RUNNING) {
        add_reason(why, whylen, phase == PHASE_NEW ? "starting" : "shutting down");
        return false;
    }
    bool ready = true;
    int64_t now = rs_clock_monotonic_ns();
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nslots; i++) {
        const slot_t *slot = &c->slots[i];
        if (slot->retiring)
            continue;
        rs_reader_health_t h = {.activity = RS_READER_STARTING};
        if (slot->reader != NULL)
            rs_reader_health(slot->reader, now, &h);
        if (h.ready)
            continue;
        const char *state;
        if (h.last_connect_error == RS_REDIS_ERR_AUTH)
            state = "Redis refused the credentials";
        else if (h.last_connect_error == RS_REDIS_ERR_REPLY)
            state = "Redis refused the connection setup (see the log)";
        else
            state = rs_reader_activity_name(h.activity);
        ready = false;
        if (h.refused != RS_REFUSAL_NONE && h.last_connect_error == RS_REDIS_OK) {
            /* Connected, but Redis refuses the reader's commands: say why. */
            add_reason(why, whylen, "stream %s: Redis refuses the reader's commands: %s",
                       slot->stream->name, rs_refusal_hint(h.refused));
            continue;
        }
        add_reason(why, whylen, "stream %s: not connected: %s", slot->stream->name, state);
    }
    pthread_mutex_unlock(&c->lock);
    return ready;
}

void rs_consumer_status(rs_consumer_t *c, char *buf, size_t buflen)
{
    unsigned long long handled = 0, failed = 0, dead = 0;
    size_t n = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nslots; i++) {
        const rs_stream_stats_t *st = &c->slots[i].stream->stats;
        n += !c->slots[i].retiring;
        handled += atomic_load(&st->succeeded);
        failed += atomic_load(&st->failed);
        dead += atomic_load(&st->dead_lettered);
    }
    pthread_mutex_unlock(&c->lock);
    snprintf(buf, buflen,
             "%zu streams; %llu messages handled, %llu failed, %llu dead-lettered; queue %zu/%zu",
             n, handled, failed, dead, rs_queue_depth(c->queue), rs_queue_capacity(c->queue));
}

/* The workers' end-to-end histograms merged into a new one (caller frees), or NULL when no
 * entry carried a send time yet (or out of memory). Any thread: the workers' histograms are
 * read with atomic loads while they record. */
static rs_latency_t *merged_e2e(const rs_consumer_t *c)
{
    rs_latency_t *all = NULL;
    for (int i = 0; i < c->cfg->workers.threads; i++) {
        const rs_latency_t *h = atomic_load_explicit(&c->e2e[i], memory_order_acquire);
        if (h == NULL)
            continue;
        if (all == NULL && (all = rs_latency_new()) == NULL)
            return NULL;
        rs_latency_merge(all, h);
    }
    return all;
}

int rs_consumer_snapshot(rs_consumer_t *c, rs_metrics_t *m)
{
    m->group = c->cfg->group.name;
    m->consumer = c->cfg->group.consumer;
    m->queue_depth = rs_queue_depth(c->queue);
    m->queue_capacity = rs_queue_capacity(c->queue);
    m->queue_lanes = rs_queue_lanes(c->queue);
    m->queue_lane_waiting = rs_queue_lane_waiting(c->queue);
    m->workers = (uint64_t)c->cfg->workers.threads;
    m->workers_busy = rs_pool_busy(c->pool);
    m->retry_waiting = rs_retry_waiting(c->retry);
    m->redis_reconnects = rs_acker_reconnects(c->acker) + rs_retry_reconnects(c->retry);
    m->has_tracing = c->tracer != NULL;
    if (c->tracer != NULL) {
        m->trace_spans_dropped = rs_trace_exporter_dropped(c->tracer);
        m->trace_spans_exported = rs_trace_exporter_exported(c->tracer);
    }
    m->nstreams = 0;
    m->streams = NULL;
    m->e2e = NULL;
    rs_latency_t *e2e = merged_e2e(c);
    m->e2e = e2e;

    pthread_mutex_lock(&c->lock);
    /* One block: the array, then the names it points into (the streams may be freed by a
     * reload as soon as the lock is released). */
    size_t names = 0;
    for (size_t i = 0; i < c->nslots; i++) {
        const rs_stream_config_t *sc = c->slots[i].stream->cfg;
        names += strlen(sc->name) + 1 + (sc->key_field != NULL ? strlen(sc->key_field) + 1 : 0);
    }
    size_t n = c->nslots;
    rs_metrics_stream_t *streams = calloc(1, (n > 0 ? n : 1) * sizeof(*streams) + names);
    if (streams == NULL) {
        pthread_mutex_unlock(&c->lock);
        rs_latency_free(e2e);
        m->e2e = NULL;
        return -1;
    }
    char *name_at = (char *)(streams + (n > 0 ? n : 1));
    m->redis_reconnects += c->retired_reconnects;
    for (size_t i = 0; i < n; i++) {
        const slot_t *slot = &c->slots[i];
        const rs_stream_t *s = slot->stream;
        rs_metrics_stream_t *ms = &streams[i];
        if (slot->reader != NULL) {
            m->redis_reconnects += rs_reader_reconnects(slot->reader);
            ms->reader_connected = rs_reader_ready(slot->reader);
        }
        size_t len = strlen(s->name) + 1;
        memcpy(name_at, s->name, len);
        ms->name = name_at;
        name_at += len;
        ms->handler = s->handler->ops->kind; /* a string literal: outlives the stream */
        ms->ordering = rs_ordering_name(s->cfg->ordering); /* a literal too */
        if (s->cfg->key_field != NULL) {
            len = strlen(s->cfg->key_field) + 1;
            memcpy(name_at, s->cfg->key_field, len);
            ms->key_field = name_at;
            name_at += len;
        }
        ms->received = atomic_load(&s->stats.received);
        ms->succeeded = atomic_load(&s->stats.succeeded);
        ms->retried = atomic_load(&s->stats.retried);
        ms->failed = atomic_load(&s->stats.failed);
        ms->dead_lettered = atomic_load(&s->stats.dead_lettered);
        ms->acked = atomic_load(&s->stats.acked);
        ms->deleted = atomic_load(&s->stats.deleted);
        ms->claimed = atomic_load(&s->stats.claimed);
        ms->inflight = atomic_load(&s->inflight);
        rs_histogram_read(&s->handler_duration, &ms->handler_duration);
    }
    pthread_mutex_unlock(&c->lock);
    m->nstreams = n;
    m->streams = streams;
    return 0;
}

void rs_consumer_snapshot_clear(rs_metrics_t *m)
{
    rs_latency_free((rs_latency_t *)(uintptr_t)m->e2e); /* ours: made by the snapshot */
    m->e2e = NULL;
    free(m->streams);
    m->streams = NULL;
    m->nstreams = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Shutdown.                                                                                  */

int rs_consumer_stop(rs_consumer_t *c)
{
    /* From here on /readyz answers 503, so a load balancer stops sending work here. */
    atomic_store(&c->phase, PHASE_STOPPING);
    if (!c->started)
        return 0;
    int64_t start = rs_clock_monotonic_ns();
    int64_t timeout = (int64_t)c->cfg->workers.shutdown_timeout_ms * 1000000;
    int64_t deadline = start + timeout;
    /* Keep a quarter of the time (at most a second) for flushing acks after the workers. */
    int64_t reserve = timeout / 4 < INT64_C(1000000000) ? timeout / 4 : INT64_C(1000000000);

    rs_log(c->log, RS_LOG_INFO, "consumer",
           "shutting down: %zu entries queued, %u in handlers, %zu waiting for a retry",
           rs_queue_depth(c->queue), rs_pool_busy(c->pool), rs_retry_waiting(c->retry));
    for (size_t i = 0; i < c->nslots; i++)
        if (c->slots[i].reader != NULL)
            rs_reader_stop(c->slots[i].reader);
    for (size_t i = 0; i < c->nslots; i++)
        if (c->slots[i].reader != NULL)
            rs_reader_join(c->slots[i].reader);
    rs_retry_stop(c->retry);

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
    if (c->tracer != NULL) {
        int64_t now = rs_clock_monotonic_ns();
        int64_t left = deadline - now > 0 ? deadline - now : 0;
        rs_trace_exporter_stop(c->tracer,
                               now + (left < TRACE_FLUSH_MAX_NS ? left : TRACE_FLUSH_MAX_NS));
    }
    for (size_t i = 0; i < c->nslots; i++) {
        const rs_stream_t *s = c->slots[i].stream;
        const rs_stream_stats_t *st = &s->stats;
        rs_log(c->log, RS_LOG_INFO, "consumer",
               "stream=%s received=%llu succeeded=%llu failed=%llu retried=%llu "
               "dead_lettered=%llu acked=%llu claimed=%llu deleted=%llu",
               s->name, atomic_load(&st->received), atomic_load(&st->succeeded),
               atomic_load(&st->failed), atomic_load(&st->retried), atomic_load(&st->dead_lettered),
               atomic_load(&st->acked), atomic_load(&st->claimed), atomic_load(&st->deleted));
    }
    rs_latency_t *e2e = merged_e2e(c);
    if (e2e != NULL) {
        char line[256];
        rs_latency_format(e2e, line, sizeof(line));
        rs_log(c->log, RS_LOG_INFO, "consumer", "e2e latency (entries carrying %s, all streams) %s",
               RS_FIELD_SENT_NS, line);
        rs_latency_free(e2e);
    }
    rs_log(c->log, RS_LOG_INFO, "consumer", "stopped in %lld ms",
           (long long)((rs_clock_monotonic_ns() - start) / 1000000));
    c->started = rc != 0; /* a stuck worker still uses everything */
    return rc;
}

rs_cluster_t *rs_consumer_cluster(const rs_consumer_t *c)
{
    return c->cluster;
}

void rs_consumer_free(rs_consumer_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nslots; i++) {
        rs_reader_free(c->slots[i].reader);
        rs_stream_free(c->slots[i].successor);
        rs_stream_free(c->slots[i].stream);
    }
    rs_retry_free(c->retry);
    rs_acker_free(c->acker);
    rs_cluster_free(c->cluster); /* after every connection it routes */
    rs_trace_exporter_free(c->tracer);
    rs_pool_free(c->pool);
    rs_queue_free(c->queue);
    rs_output_free(c->out);
    pthread_mutex_destroy(&c->lock);
    for (int i = 0; c->e2e != NULL && i < c->cfg->workers.threads; i++)
        rs_latency_free(atomic_load(&c->e2e[i]));
    free(c->e2e);
    free(c->jitter);
    free(c->slots);
    free(c);
}
