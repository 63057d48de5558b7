#ifndef RS_MESSAGE_H
#define RS_MESSAGE_H

/*
 * The entries redstream writes and reads. The Go demo's entry has three fields:
 *     message    "Message #<n>"
 *     type       the message type ("test")
 *     timestamp  RFC 3339, UTC ("2026-11-27T14:04:30Z")
 * and, when the producer traces, a fourth:
 *     traceparent  the W3C trace context of the producer's span (see traceparent.h)
 * Field names and values are binary-safe byte strings: lengths are carried everywhere.
 */

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"
#include "traceparent.h"

#define RS_FIELD_MESSAGE   "message"
#define RS_FIELD_TYPE      "type"
#define RS_FIELD_TIMESTAMP "timestamp"
/* The producer's trace context, written only when tracing is on. */
#define RS_FIELD_TRACEPARENT "traceparent"

/* The producer's send time with --e2e: CLOCK_REALTIME in nanoseconds since the epoch, in
 * decimal. The consumer records now - sent for every entry it handles that carries it. */
#define RS_FIELD_SENT_NS "redstream.sent_ns"

/* A dead letter carries all of the original entry's fields, then these five, in this order. */
#define RS_DLQ_FIELD_STREAM     "redstream.original_stream"
#define RS_DLQ_FIELD_ID         "redstream.original_id"
#define RS_DLQ_FIELD_DELIVERIES "redstream.delivery_count"
#define RS_DLQ_FIELD_ERROR      "redstream.last_error"
#define RS_DLQ_FIELD_TIME       "redstream.dead_lettered_at"
#define RS_DLQ_FIELDS           5

/* The demo entry's three values, formatted into storage the struct owns (no allocation). */
typedef struct {
    char message[32]; /* "Message #<n>" */
    char timestamp[RS_RFC3339_LEN];
    const char *type;                     /* borrowed */
    char traceparent[RS_TRACEPARENT_LEN]; /* "" (set by init): no traceparent field */
} rs_demo_entry_t;

/* Fills `e` for message number `seq`, of type `type` (borrowed until `e` is last used), sent
 * at wall-clock time `now`, with no traceparent (the caller may write one into
 * e->traceparent). Returns 0, or -1 when `now` cannot be formatted. Pure. */
int rs_demo_entry_init(rs_demo_entry_t *e, uint64_t seq, const char *type, time_t now);

/* Maximum number of arguments rs_xadd_argv() produces. */
#define RS_XADD_MAX_ARGS 14

/* Builds the arguments of XADD <stream> [MAXLEN ~ <maxlen>] * message .. type .. timestamp ..
 * [traceparent ..] (the last only when e->traceparent is not empty) into argv/argvlen (each at
 * least RS_XADD_MAX_ARGS long). `maxlen` 0 means no trimming; `maxlen_buf` holds its decimal text
 * and must outlive argv. Everything is borrowed. Returns argc. Pure. */
int rs_xadd_argv(const char *stream, uint64_t maxlen, char maxlen_buf[24], const rs_demo_entry_t *e,
                 const char **argv, size_t *argvlen);

#endif
