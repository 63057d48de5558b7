#ifndef RS_LATENCY_H
#define RS_LATENCY_H

/*
 * A log-linear latency histogram (HdrHistogram's layout) for percentiles: the producer's XADD
 * round trips in load mode, and the consumer's end-to-end latencies (now - redstream.sent_ns).
 *
 * Values are nanoseconds. Each power of two is split into 128 linear sub-buckets, so a
 * bucket is never wider than 1/128 of the values it holds: every figure read back (a
 * percentile, count_le's bucket edge) is within 0.79% of a value that was recorded. Values
 * from 0 to 255 ns are exact. The range is 0 to RS_LATENCY_MAX_NS (2^40 - 1 ns, about 18
 * minutes); a negative value counts as 0, a larger one as RS_LATENCY_MAX_NS.
 *
 * Threads: one writer at a time (record, merge into, reset), any number of readers at the
 * same time. The counts are C11 atomics that the writer updates with a relaxed load and
 * store, not a read-modify-write, since it is the only writer: recording costs a few
 * nanoseconds and takes no lock. A reader racing with the writer sees each count either
 * before or after a recording, so a percentile read during a run is as good as a snapshot a
 * moment earlier or later. Handing the writer role to another thread needs a
 * happens-before edge (a mutex, a thread join).
 *
 * Fixed size (about 35 KiB); nothing is allocated after rs_latency_new().
 */

#include <stddef.h>
#include <stdint.h>

/* The largest value the histogram holds apart; larger values are recorded as this one. */
#define RS_LATENCY_MAX_NS ((INT64_C(1) << 40) - 1)

typedef struct rs_latency rs_latency_t;

/* Creates an empty histogram. Returns NULL when out of memory. Caller frees with
 * rs_latency_free(). Any thread; the caller becomes its writer. */
rs_latency_t *rs_latency_new(void);

/* Frees `h`; NULL is ignored. No thread may use `h` afterwards. */
void rs_latency_free(rs_latency_t *h);

/* Records one value of `ns` nanoseconds (negative counts as 0, above RS_LATENCY_MAX_NS as
 * RS_LATENCY_MAX_NS). The writer thread only; lock-free, never blocks. */
void rs_latency_record(rs_latency_t *h, int64_t ns);

/* Adds every recording of `src` to `dst` (counts, minimum, maximum, sum). `src` is only read,
 * so its own writer may keep recording meanwhile. `dst`'s writer thread only. */
void rs_latency_merge(rs_latency_t *dst, const rs_latency_t *src);

/* Empties `h`. The writer thread only; a reader racing with it may see a partly emptied
 * histogram. */
void rs_latency_reset(rs_latency_t *h);

/* The number of recordings. Any thread; lock-free. */
uint64_t rs_latency_count(const rs_latency_t *h);

/* The value at percentile `q` (0 to 100; outside that range clamped): the upper bound of the
 * bucket that holds the recording of rank ceil(q/100 * count) (rank 1 for q = 0), but never
 * above the largest recording, so percentile 100 is the maximum. Returns 0 when empty. Any
 * thread; lock-free; walks the buckets (a few microseconds). */
int64_t rs_latency_percentile(const rs_latency_t *h, double q);

/* The largest and the smallest recording (after clamping), exact; 0 when empty. Any thread. */
int64_t rs_latency_max(const rs_latency_t *h);
int64_t rs_latency_min(const rs_latency_t *h);

/* The exact mean of the recordings (after clamping); 0 when empty. Any thread. The sum is
 * kept in 64 bits, which holds 2^24 recordings even at RS_LATENCY_MAX_NS. */
double rs_latency_mean(const rs_latency_t *h);

/* For Prometheus's cumulative "le" buckets: the number of recordings <= bound_ns, counted in
 * whole buckets: the bucket holding bound_ns is included, so a recording equal to the bound
 * always counts, and one up to 0.79% above it may count too. 0 for a negative bound, the
 * total count for a bound >= RS_LATENCY_MAX_NS. Never decreases as bound_ns grows. Any
 * thread; lock-free. */
uint64_t rs_latency_count_le(const rs_latency_t *h, int64_t bound_ns);

/* Writes one line, "n=%llu p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f"
 * (microseconds, no newline), into `buf` (`buflen` bytes, truncated to fit and always
 * terminated when buflen > 0). Any thread. */
void rs_latency_format(const rs_latency_t *h, char *buf, size_t buflen);

#endif
