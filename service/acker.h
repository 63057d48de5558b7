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

#include "config.h"
#include "log.h"

typedef struct rs_acker rs_acker_t;

/* Called on the acknowledger thread after Redis confirmed (or definitively refused) the acks
 * of `n` entries of `stream`. */
typedef void (*rs_acked_fn)(void *arg, void *stream, size_t n);

/* Creates the acknowledger for group `cfg->group.name` with its own connection built from
 * `cfg->redis`. Everything is borrowed for the acknowledger's lifetime. Returns NULL with a
 * message in `err`. Caller frees with rs_acker_free(). Main thread. */
rs_acker_t *rs_acker_new(const rs_config_t *cfg, rs_logger_t *log, rs_acked_fn acked,
                         void *acked_arg, char *err, size_t errlen);

/* Starts the acknowledger thread. Returns 0, or -1 with a message in `err`. Main thread. */
int rs_acker_start(rs_acker_t *a, char *err, size_t errlen);

/* Queues the ack of entry `id` of stream `stream_name` (`stream` is the caller's cookie passed
 * back to the acked callback; both borrowed until that callback). Copies the id. Never waits
 * on the network; takes a short lock. Any thread. Returns 0, or -1 when out of memory (the
 * entry then stays pending and is delivered again). */
int rs_acker_add(rs_acker_t *a, void *stream, const char *stream_name, const char *id);

/* Flushes everything queued and stops the thread, waiting for Redis at most until
 * `deadline_ns` (CLOCK_MONOTONIC). Returns the number of acks that could not be sent (they
 * stay pending in Redis). Main thread; call once, after the workers have stopped. */
size_t rs_acker_stop(rs_acker_t *a, int64_t deadline_ns);

/* Frees the acknowledger (stopping it first if needed); NULL is ignored. Main thread. */
void rs_acker_free(rs_acker_t *a);

#endif
