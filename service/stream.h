#ifndef RS_STREAM_H
#define RS_STREAM_H

/*
 * The consumer's state for one configured stream: its handler, its counters, and the number
 * of its entries in flight (read from Redis and not yet acknowledged or given up on).
 *
 * Counters (and the handler-duration histogram) are C11 atomics, updated lock-free on the hot
 * path by readers, workers and the acknowledger, and read by whoever reports them (the HTTP
 * server's /metrics and /streams, the shutdown summary).
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "entry.h"
#include "handler.h"
#include "histogram.h"

typedef struct {
    atomic_ullong received;      /* entries read from Redis (new, redelivered, claimed) */
    atomic_ullong succeeded;     /* handler returned success */
    atomic_ullong retried;       /* retryable failure, scheduled for another delivery */
    atomic_ullong failed;        /* handler failed (retryable or not) */
    atomic_ullong dead_lettered; /* moved to the dead-letter stream */
    atomic_ullong acked;         /* acknowledged in Redis */
    atomic_ullong deleted;       /* pending entries found deleted from the stream, acked */
    atomic_ullong claimed;       /* entries taken over from idle consumers (XAUTOCLAIM) */
} rs_stream_stats_t;

typedef struct rs_stream {
    rs_stream_config_t *cfg; /* owned: a copy of the configuration's entry */
    const char *name;        /* == cfg->name */
    rs_handler_t *handler;   /* owned */
    rs_stream_stats_t stats;
    rs_histogram_t handler_duration; /* per entry the handler ran for; workers, lock-free */

    /* Entries read and not yet settled. A reader that lost its connection waits for this to
     * reach zero before it re-reads its pending entries, so nothing still in the queue or in
     * a worker is read twice. */
    atomic_long inflight;
    pthread_mutex_t lock;
    pthread_cond_t settled; /* broadcast when inflight drops to zero, or to wake a waiter */
} rs_stream_t;

/* Creates the state for stream `sc` (copied: the configuration may be freed afterwards) with
 * its handler. Returns NULL with a message in `err`. Caller frees with rs_stream_free(). Main
 * thread. */
rs_stream_t *rs_stream_new(const rs_stream_config_t *sc, const rs_handler_env_t *env, char *err,
                           size_t errlen);

/* Frees the state and its handler; NULL is ignored. Nothing may use it any more. */
void rs_stream_free(rs_stream_t *s);

/* Sets the ordering fields of a new entry `e` of this stream (entry.h) from the stream's
 * `ordering`: none, nothing; "stream", one lane for the whole stream; "key", the lane of the
 * value of the first field named key_field (entries without it, or with an empty value,
 * share one lane of their own). The key points into the entry. Any thread; pure. */
void rs_stream_order_entry(const rs_stream_t *s, rs_entry_t *e);

/* Counts `n` entries as in flight. Any thread. */
void rs_stream_begin(rs_stream_t *s, long n);

/* Counts `n` entries as settled (acknowledged, or failed and left pending), waking a waiter
 * when none remain. The caller must not touch the stream afterwards unless it still holds
 * other in-flight entries of it: a retired stream is freed once idle. Any thread. */
void rs_stream_settle(rs_stream_t *s, long n);

/* True when no entry is in flight. Once it returned true, no rs_stream_settle() call is still
 * running, so a stream nobody can add entries to any more (its reader joined) may be freed.
 * Any thread. */
bool rs_stream_idle(rs_stream_t *s);

/* Adds the counters and histogram of `from` (which nothing updates any more) to `s`, so a
 * stream rebuilt by a reload keeps counting where its predecessor stopped. Main thread. */
void rs_stream_adopt_stats(rs_stream_t *s, const rs_stream_t *from);

/* Waits until no entry is in flight or `*cancel` is true (re-checked whenever the stream is
 * woken with rs_stream_wake()). Returns true when idle. Any thread. */
bool rs_stream_wait_settled(rs_stream_t *s, const atomic_bool *cancel);

/* Wakes rs_stream_wait_settled() callers so they recheck their cancel flag. Any thread. */
void rs_stream_wake(rs_stream_t *s);

#endif
