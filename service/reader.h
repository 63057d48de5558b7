#ifndef RS_READER_H
#define RS_READER_H

/*
 * A stream's reader: one thread with its own Redis connection that joins the consumer group
 * and moves entries from Redis into the work queue.
 *
 * At start, and again after every reconnection (once the entries already in flight have
 * settled), it re-reads this consumer's own pending entries (XREADGROUP ... 0), so work
 * delivered before a crash or a lost reply is done again. Then it loops on
 * XREADGROUP ... COUNT n BLOCK ms ... >, asking for no more entries than it could reserve in
 * the queue: a slow pool makes it stop reading instead of growing memory.
 */

#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"
#include "config.h"
#include "log.h"
#include "queue.h"
#include "refusal.h"
#include "stream.h"

typedef struct rs_reader rs_reader_t;

/* What a reader is doing, for health reports. */
typedef enum {
    RS_READER_STARTING = 0,       /* created, thread not running yet */
    RS_READER_CONNECTING,         /* connecting to Redis (with backoff) */
    RS_READER_CREATING_GROUP,     /* XGROUP CREATE ... MKSTREAM */
    RS_READER_RECOVERING,         /* re-reading this consumer's pending entries */
    RS_READER_READING,            /* XREADGROUP ... BLOCK ... > */
    RS_READER_CLAIMING,           /* XAUTOCLAIM pass, idle consumer clean-up */
    RS_READER_WAITING_FOR_ROOM,   /* backpressure: waiting for room in the work queue */
    RS_READER_WAITING_FOR_SETTLE, /* waiting for its in-flight entries before recovering */
    RS_READER_REFUSED,            /* waiting (with backoff) after Redis refused a command */
    RS_READER_STOPPED,            /* the thread has exited */
} rs_reader_activity_t;

/* A reader's health, read lock-free from its atomics. */
typedef struct {
    bool alive;                    /* the thread has been started and has not exited */
    bool ready;                    /* as rs_reader_ready() */
    rs_reader_activity_t activity; /* what it is doing now */
    /* Time since the reader last completed a read (an XREADGROUP or XAUTOCLAIM reply, a BLOCK
     * timeout included, or the group's creation), not counting the time it spent waiting for
     * the workers (RS_READER_WAITING_FOR_*): backpressure from slow handlers is not a stall;
     * nor the backoff after Redis refused a command (RS_READER_REFUSED): Redis answers, and a
     * restart cannot fix what it refuses. 0 during those waits. */
    int64_t stalled_ns;
    int last_connect_error; /* rs_redis_status_t of the last failed connection attempt, or
                             * RS_REDIS_OK once connected */
    rs_refusal_t refused;   /* why Redis refuses the reader's commands (a key of another type,
                             * a read-only replica, maxmemory, ...), or RS_REFUSAL_NONE: the
                             * last one was accepted */
} rs_reader_health_t;

/* Creates the reader of `stream` feeding `q`, asking for at most `batch_max` entries (and
 * holding at most that many queue slots) per read. Everything is borrowed for the reader's
 * lifetime. Returns NULL when out of memory. Caller frees with rs_reader_free(). */
rs_reader_t *rs_reader_new(const rs_config_t *cfg, rs_stream_t *stream, rs_queue_t *q,
                           size_t batch_max, rs_logger_t *log);

/* Cluster mode: every connection of the reader goes to the master serving its stream's slot,
 * routed by `cluster` (borrowed for the reader's lifetime), and follows the stream when its
 * slot moves. Main thread, before rs_reader_start(). */
void rs_reader_route(rs_reader_t *r, rs_cluster_t *cluster);

/* Starts the thread. Returns 0, or -1 with a message in `err`. Main thread. */
int rs_reader_start(rs_reader_t *r, char *err, size_t errlen);

/* Asks the reader to stop and wakes it wherever it waits: in XREADGROUP's BLOCK (its socket
 * is shut down), for room in the queue, in a reconnect backoff. Does not wait. Any thread. */
void rs_reader_stop(rs_reader_t *r);

/* Lowers (or raises again, up to the `batch_max` it was created with) how many entries the
 * reader asks for and holds slots for per read, from its next read on: its fair share of the
 * queue when streams are added or removed. Any thread; lock-free. */
void rs_reader_set_batch_limit(rs_reader_t *r, size_t n);

/* Waits for the thread to exit (after rs_reader_stop()). Main thread. */
void rs_reader_join(rs_reader_t *r);

/* True while the reader holds a connection, its group exists and Redis accepts its commands.
 * Any thread; lock-free. */
bool rs_reader_ready(const rs_reader_t *r);

/* Fills `out` with the reader's health as of `now_ns` (CLOCK_MONOTONIC). Any thread; lock-free,
 * never blocks. */
void rs_reader_health(const rs_reader_t *r, int64_t now_ns, rs_reader_health_t *out);

/* A lower-case phrase for an activity ("connecting to Redis"), for messages. Pure. */
const char *rs_reader_activity_name(rs_reader_activity_t activity);

/* Reconnections of the reader's Redis connection (rs_redis_reconnects()). Any thread;
 * lock-free. */
unsigned long rs_reader_reconnects(const rs_reader_t *r);

/* Frees the reader (after join); NULL is ignored. */
void rs_reader_free(rs_reader_t *r);

#endif
