#ifndef RS_STATS_RING_H
#define RS_STATS_RING_H

/*
 * The last RS_STATS_RING_SECONDS seconds of the service's throughput, for the dashboard's
 * graph (GET /api/stats): one slot per second of CLOCK_MONOTONIC holding the cumulative
 * handled and failed totals sampled in that second. A rate is the difference of two
 * consecutive seconds' totals, so a missed sample leaves a gap, never a wrong value.
 *
 * One thread samples (the HTTP server's reaper thread, once a second), any thread reads; a
 * small mutex, a leaf, guards the slots.
 */

#include <stddef.h>
#include <stdint.h>

#define RS_STATS_RING_SECONDS 600

typedef struct rs_stats_ring rs_stats_ring_t;

/* One second's rates; `known` is false when that second or the one before was not sampled
 * (or a total went down, as when a reload removed a stream). */
typedef struct {
    int known;
    uint64_t handled, failed;
} rs_stats_rate_t;

/* Creates an empty ring. Returns NULL when out of memory. Caller frees with
 * rs_stats_ring_free(). */
rs_stats_ring_t *rs_stats_ring_new(void);

/* Frees the ring; NULL is ignored. */
void rs_stats_ring_free(rs_stats_ring_t *r);

/* Records the cumulative totals seen at `second` (a CLOCK_MONOTONIC second). A later sample in
 * the same second replaces the earlier one. Any thread. */
void rs_stats_ring_record(rs_stats_ring_t *r, int64_t second, uint64_t handled, uint64_t failed);

/* Fills `out` (RS_STATS_RING_SECONDS elements) with the per-second rates of the seconds
 * `now - RS_STATS_RING_SECONDS + 1` .. `now`, oldest first. Any thread. */
void rs_stats_ring_rates(rs_stats_ring_t *r, int64_t now, rs_stats_rate_t *out);

#endif
