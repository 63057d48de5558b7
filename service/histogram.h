#ifndef RS_HISTOGRAM_H
#define RS_HISTOGRAM_H

/*
 * A latency histogram with fixed buckets that any number of threads update without a lock,
 * and that any thread reads for /metrics (Prometheus's histogram type: cumulative buckets,
 * a sum and a count).
 *
 * The bucket bounds are Prometheus's usual ones for request latencies, from 0.5 ms to 10 s:
 * .0005 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10, and +Inf.
 */

#include <stdatomic.h>
#include <stdint.h>

/* Finite upper bounds; the +Inf bucket comes after them. */
#define RS_HISTOGRAM_BOUNDS 14

/* The finite upper bounds in nanoseconds, ascending. An observation equal to a bound falls in
 * that bound's bucket ("le", less or equal). */
extern const int64_t rs_histogram_bounds_ns[RS_HISTOGRAM_BOUNDS];

/* The live histogram. Embed it in a zeroed struct (calloc) or initialise it with
 * rs_histogram_init(). Counts are per bucket, not cumulative, so an observation is one atomic
 * add to its bucket and one to the sum. */
typedef struct {
    atomic_ullong buckets[RS_HISTOGRAM_BOUNDS + 1]; /* the last one is +Inf */
    atomic_ullong sum_ns;
} rs_histogram_t;

/* A reading, as Prometheus wants it: cumulative counts, the last (+Inf) equal to `count`. */
typedef struct {
    uint64_t cumulative[RS_HISTOGRAM_BOUNDS + 1];
    uint64_t count;
    uint64_t sum_ns;
} rs_histogram_snapshot_t;

/* Sets every count and the sum to zero. Before any thread uses `h`. */
void rs_histogram_init(rs_histogram_t *h);

/* Records one observation of `ns` nanoseconds (negative counts as 0). Any thread; lock-free,
 * never blocks. */
void rs_histogram_observe(rs_histogram_t *h, int64_t ns);

/* Adds every count and the sum of `from` to `h`. Any thread; lock-free. */
void rs_histogram_add(rs_histogram_t *h, const rs_histogram_t *from);

/* Reads `h` into `out`. The count is the sum of the buckets read, so the +Inf bucket always
 * equals the count; an observation racing with the read may be in the buckets and not yet in
 * the sum (or the reverse). Any thread; lock-free. */
void rs_histogram_read(const rs_histogram_t *h, rs_histogram_snapshot_t *out);

#endif
