#ifndef RS_TRACEPARENT_H
#define RS_TRACEPARENT_H

/*
 * W3C Trace Context: the `traceparent` value that carries a trace from the producer, through
 * a stream entry's field, to the consumer and on to a webhook.
 *
 *     traceparent = version "-" trace-id "-" parent-id "-" trace-flags
 *     e.g.          00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of a version-00 traceparent, plus the NUL. */
#define RS_TRACEPARENT_LEN 56

/* Bit 0 of trace-flags: the caller recorded (sampled) its span. */
#define RS_TRACE_FLAG_SAMPLED 0x01

typedef struct {
    uint8_t trace_id[16];
    uint8_t span_id[8]; /* the parent-id field: the sender's span */
    uint8_t flags;
} rs_trace_context_t;

/* Parses `len` bytes of `text` as the W3C Recommendation requires: lowercase hex only;
 * version "ff" is invalid; version 00 is exactly 55 characters; a higher version may be
 * longer, but only after a "-"; an all-zero trace-id or parent-id is invalid. Returns 0 with
 * *out set, or -1 for anything else (the caller then starts a new trace). Pure; any thread. */
int rs_traceparent_parse(const char *text, size_t len, rs_trace_context_t *out);

/* Writes `ctx` as a version-00 traceparent and its NUL into `buf`. Pure; any thread. */
void rs_traceparent_format(const rs_trace_context_t *ctx, char buf[RS_TRACEPARENT_LEN]);

/* Writes `n` bytes as lowercase hex and a NUL into `out` (2n+1 bytes). Pure. */
void rs_hex_encode(const uint8_t *bytes, size_t n, char *out);

#endif
