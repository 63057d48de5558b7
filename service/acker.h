#ifndef RS_ACKER_H
#define RS_ACKER_H

/*
 * The acknowledger: batches XACKs and sends them on its own Redis connection.
 *
 * Workers hand over the ids of entries their handler finished with; the acknowledger thread
 * sends one XACK per stream carrying many ids, pipelined, when a batch fills or a few
 * milliseconds after the first id arrived, so an ack never waits out a reader's BLOCK.
 * Ids that could not be sent (Redis away) are kept and sent after reconnecting, never dropped.
 */

#include <stddef.h>

#include "cluster.h"
#include "config.h"
#include "entry.h"
#include "log.h"

typedef struct rs_acker rs_acker_t;

/* How an entry handed to the acknowledger was settled. */
typedef enum {
    RS_SETTLED_ACKED,         /* XACK confirmed (or the entry was no longer pending) */
    RS_SETTLED_DEAD_LETTERED, /* copied to the dead-letter stream and acked, atomically */
    RS_SETTLED_LEFT_PENDING,  /* Redis refused (NOGROUP, a dead-letter key of another type):
                               * the entry stays pending and will be delivered again */
} rs_settled_t;

/* Called on the acknowledger thread once Redis has answered for `n` entries of `stream`. */
typedef void (*rs_acked_fn)(void *arg, void *stream, size_t n, rs_settled_t how);

/* Creates the acknowledger for group `cfg->group.name` with its own connection built from
 * `cfg->redis`. Everything is borrowed for the acknowledger's lifetime. Returns NULL with a
 * message in `err`. Caller frees with rs_acker_free(). Main thread. */
rs_acker_t *rs_acker_new(const rs_config_t *cfg, rs_logger_t *log, rs_acked_fn acked,
                         void *acked_arg, char *err, size_t errlen);

/* Cluster mode: sends each stream's acks and dead letters on a connection of its own, routed
 * by `cluster` (borrowed for the acknowledger's lifetime) to the master serving the stream,
 * instead of on the one connection to cfg->redis. Returns 0, or -1 when out of memory. Main
 * thread, before rs_acker_start(). */
int rs_acker_set_cluster(rs_acker_t *a, rs_cluster_t *cluster);

/* Starts the acknowledger thread. Returns 0, or -1 with a message in `err`. Main thread. */
int rs_acker_start(rs_acker_t *a, char *err, size_t errlen);

/* Queues the ack of entry `id` of stream `stream_name` (`stream` is the caller's cookie passed
 * back to the acked callback; both borrowed until that callback). Copies the id. Never waits
 * on the network; takes a short lock. Any thread. Returns 0, or -1 when out of memory (the
 * entry then stays pending and is delivered again). */
int rs_acker_add(rs_acker_t *a, void *stream, const char *stream_name, const char *id);

/* One ack of rs_acker_add_many(): the same three arguments as rs_acker_add(). */
typedef struct {
    void *stream;
    const char *stream_name;
    const char *id;
} rs_ack_ref_t;

/* rs_acker_add() for `n` entries under one lock acquisition (a worker's batch). Returns 0, or
 * -1 when out of memory (then none was queued: those entries stay pending). Any thread. */
int rs_acker_add_many(rs_acker_t *a, const rs_ack_ref_t *refs, size_t n);

/* Queues entry `e` (taking ownership) for the dead-letter stream of `stream_name`
 * (stream_name + group.dead_letter_suffix), with the reason `error` (copied). The acknowledger
 * then runs, on its own connection,
 *     WATCH <dlq>, TYPE <dlq>, MULTI, XADD <dlq> * <fields> <metadata>, XACK, EXEC
 * so the dead letter and the ack happen together or not at all, and a lost reply is resolved
 * by checking whether the entry is still pending before trying again: the dead letter is
 * written exactly once. The metadata fields are listed in README.md. Never waits on the
 * network. Returns 0, or -1 when out of memory (then `e` is freed and the entry stays
 * pending). Any thread. */
int rs_acker_dead_letter(rs_acker_t *a, void *stream, const char *stream_name, rs_entry_t *e,
                         const char *error);

/* Flushes everything queued and stops the thread, waiting for Redis at most until
 * `deadline_ns` (CLOCK_MONOTONIC). Returns the number of acks that could not be sent (they
 * stay pending in Redis). Main thread; call once, after the workers have stopped. */
size_t rs_acker_stop(rs_acker_t *a, int64_t deadline_ns);

/* Reconnections of the acknowledger's Redis connection (rs_redis_reconnects()). Any thread;
 * lock-free. */
unsigned long rs_acker_reconnects(const rs_acker_t *a);

/* Frees the acknowledger (stopping it first if needed); NULL is ignored. Main thread. */
void rs_acker_free(rs_acker_t *a);

#endif
