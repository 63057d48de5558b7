#ifndef RS_STREAM_ID_H
#define RS_STREAM_ID_H

/*
 * Redis stream entry ids ("<milliseconds>-<sequence>", two unsigned 64-bit numbers), and the
 * choice of where a consumer group that vanished is created again so that nothing it had not
 * settled is skipped.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t ms;
    uint64_t seq;
} rs_stream_id_t;

/* Room for the longest id: two 20-digit numbers, the dash and the NUL. */
#define RS_STREAM_ID_LEN 42

/* Parses "<ms>-<seq>", or "<ms>" alone (sequence 0, as Redis reads it for XGROUP CREATE), of
 * `len` bytes. Returns 0, or -1 when it is not an id (empty, a sign, other characters, out of
 * range). Pure; any thread. */
int rs_stream_id_parse(const char *s, size_t len, rs_stream_id_t *out);

/* Writes "<ms>-<seq>" into `buf` (at least RS_STREAM_ID_LEN bytes). Pure; any thread. */
void rs_stream_id_format(rs_stream_id_t id, char *buf, size_t buflen);

/* -1, 0 or 1 as `a` is before, equal to or after `b`. Pure; any thread. */
int rs_stream_id_compare(rs_stream_id_t a, rs_stream_id_t b);

/* Where to create a consumer group again, after it vanished, so that no entry it had not
 * settled is skipped: XGROUP CREATE delivers the entries *after* the id given. The inputs
 * are the group's state as last seen: its last-delivered-id and, when entries were pending,
 * the smallest pending id. An entry unsettled when the group vanished was either pending
 * then (its id >= the smallest pending id) or delivered since (its id > last-delivered-id,
 * since new entries are delivered in id order), so the answer is the id just before the
 * smallest pending one, or last-delivered-id when nothing was pending. Older state only
 * means more entries are delivered again (at-least-once), never fewer. Pure; any thread. */
rs_stream_id_t rs_stream_id_restart_point(rs_stream_id_t last_delivered, bool has_pending,
                                          rs_stream_id_t first_pending);

#endif
