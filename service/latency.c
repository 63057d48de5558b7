/*
 * The log-linear latency histogram: percentiles of XADD round trips (producer load mode) and
 * of end-to-end latencies (consumer), with a bounded relative error and a fixed size.
 *
 * DESIGN: HdrHistogram's bucket layout with 2^7 sub-buckets per power of two. A value v below
 * 256 has its own bucket (index v). Above, with m the position of v's highest set bit and
 * shift = m - 7, v lies in [2^m, 2^(m+1)) and its bucket is shift * 128 + (v >> shift): the
 * top eight bits of v pick one of 128 equal slices of that power of two, each 2^shift wide,
 * which is at most 1/128 of any value in it. The indexes run on without a gap (the slices of
 * [256, 512) start at 256), so the bucket array is in value order and a percentile is one
 * walk. Values up to 2^40 - 1 need (40 - 7 + 1) * 128 = 4352 buckets.
 * Threads: a single writer (see latency.h), so each update is a relaxed atomic load and
 * store, which compile to plain moves on x86-64 and ARM64 (a lock-prefixed add would cost
 * ten times as much in the producer's reply loop); readers use relaxed loads. The writer
 * stores a bucket before the maximum, so a reader can see a recording in a bucket while the
 * maximum is still the old one: the percentile caps at the maximum only when the maximum lies
 * in the chosen bucket or above it. The minimum is kept as INT64_MAX while empty.
 */

#include "latency.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define SUB_BITS  7
#define SUB_COUNT (1u << SUB_BITS) /* linear sub-buckets per power of two */
#define MAX_BITS  40               /* values below 2^MAX_BITS */
#define BUCKETS   ((MAX_BITS - SUB_BITS + 1) * SUB_COUNT)

struct rs_latency {
    _Atomic uint64_t counts[BUCKETS];
    _Atomic uint64_t total;
    _Atomic uint64_t sum_ns;
    _Atomic int64_t min_ns; /* INT64_MAX while empty */
    _Atomic int64_t max_ns;
};

/* Adds `n` to a counter that only the calling thread writes. */
static inline void add_single_writer(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t load(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static inline int64_t clamp(int64_t ns)
{
    if (ns < 0)
        return 0;
    return ns > RS_LATENCY_MAX_NS ? RS_LATENCY_MAX_NS : ns;
}

/* The bucket of a clamped value. */
static inline unsigned bucket_of(int64_t ns)
{
    uint64_t v = (uint64_t)ns;
    if (v < 2 * SUB_COUNT)
        return (unsigned)v;
    unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - SUB_BITS;
    return shift * SUB_COUNT + (unsigned)(v >> shift);
}

/* The smallest and the largest value of bucket `b`. */
static int64_t bucket_low(unsigned b)
{
    if (b < 2 * SUB_COUNT)
        return (int64_t)b;
    unsigned shift = b / SUB_COUNT - 1;
    return (int64_t)((uint64_t)(b - shift * SUB_COUNT) << shift);
}

static int64_t bucket_high(unsigned b)
{
    if (b < 2 * SUB_COUNT)
        return (int64_t)b;
    unsigned shift = b / SUB_COUNT - 1;
    return bucket_low(b) + (INT64_C(1) << shift) - 1;
}

rs_latency_t *rs_latency_new(void)
{
    rs_latency_t *h = calloc(1, sizeof(*h));
    if (h != NULL)
        atomic_store_explicit(&h->min_ns, INT64_MAX, memory_order_relaxed);
    return h;
}

void rs_latency_free(rs_latency_t *h)
{
    free(h);
}

void rs_latency_record(rs_latency_t *h, int64_t ns)
{
    ns = clamp(ns);
    add_single_writer(&h->counts[bucket_of(ns)], 1);
    if (ns < atomic_load_explicit(&h->min_ns, memory_order_relaxed))
        atomic_store_explicit(&h->min_ns, ns, memory_order_relaxed);
    if (ns > atomic_load_explicit(&h->max_ns, memory_order_relaxed))
        atomic_store_explicit(&h->max_ns, ns, memory_order_relaxed);
    add_single_writer(&h->sum_ns, (uint64_t)ns);
    add_single_writer(&h->total, 1);
}

void rs_latency_merge(rs_latency_t *dst, const rs_latency_t *src)
{
    uint64_t n = 0;
    for (unsigned b = 0; b < BUCKETS; b++) {
        uint64_t c = load(&src->counts[b]);
        if (c != 0) {
            add_single_writer(&dst->counts[b], c);
            n += c;
        }
    }
    if (n == 0)
        return;
    int64_t lo = atomic_load_explicit(&src->min_ns, memory_order_relaxed);
    int64_t hi = atomic_load_explicit(&src->max_ns, memory_order_relaxed);
    if (lo < atomic_load_explicit(&dst->min_ns, memory_order_relaxed))
        atomic_store_explicit(&dst->min_ns, lo, memory_order_relaxed);
    if (hi > atomic_load_explicit(&dst->max_ns, memory_order_relaxed))
        atomic_store_explicit(&dst->max_ns, hi, memory_order_relaxed);
    add_single_writer(&dst->sum_ns, load(&src->sum_ns));
    /* The buckets read, not src's total: they are what dst now holds. */
    add_single_writer(&dst->total, n);
}

void rs_latency_reset(rs_latency_t *h)
{
    for (unsigned b = 0; b < BUCKETS; b++)
        atomic_store_explicit(&h->counts[b], 0, memory_order_relaxed);
    atomic_store_explicit(&h->total, 0, memory_order_relaxed);
    atomic_store_explicit(&h->sum_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&h->min_ns, INT64_MAX, memory_order_relaxed);
    atomic_store_explicit(&h->max_ns, 0, memory_order_relaxed);
}

uint64_t rs_latency_count(const rs_latency_t *h)
{
    return load(&h->total);
}

int64_t rs_latency_percentile(const rs_latency_t *h, double q)
{
    /* Count the buckets themselves rather than read `total`, so the rank is reached within
     * this walk's own view of the counts even while the writer records. */
    uint64_t n = 0;
    for (unsigned b = 0; b < BUCKETS; b++)
        n += load(&h->counts[b]);
    if (n == 0)
        return 0;
    if (!(q > 0)) /* also NaN */
        q = 0;
    if (q > 100)
        q = 100;
    double want = q / 100.0 * (double)n;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;

    int64_t max = rs_latency_max(h);
    uint64_t seen = 0;
    for (unsigned b = 0; b < BUCKETS; b++) {
        seen += load(&h->counts[b]);
        if (seen >= rank) {
            int64_t v = bucket_high(b);
            return max >= bucket_low(b) && v > max ? max : v;
        }
    }
    /* Only reachable when a reset raced with the walk. */
    return max;
}

int64_t rs_latency_max(const rs_latency_t *h)
{
    return atomic_load_explicit(&h->max_ns, memory_order_relaxed);
}

int64_t rs_latency_min(const rs_latency_t *h)
{
    int64_t v = atomic_load_explicit(&h->min_ns, memory_order_relaxed);
    return v == INT64_MAX ? 0 : v;
}

double rs_latency_mean(const rs_latency_t *h)
{
    uint64_t n = load(&h->total);
    return n == 0 ? 0.0 : (double)load(&h->sum_ns) / (double)n;
}

uint64_t rs_latency_count_le(const rs_latency_t *h, int64_t bound_ns)
{
    if (bound_ns < 0)
        return 0;
    unsigned last = bucket_of(clamp(bound_ns));
    uint64_t n = 0;
    for (unsigned b = 0; b <= last; b++)
        n += load(&h->counts[b]);
    return n;
}

void rs_latency_format(const rs_latency_t *h, char *buf, size_t buflen)
{
    if (buflen == 0)
        return;
    snprintf(buf, buflen, "n=%llu p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f",
             (unsigned long long)rs_latency_count(h), (double)rs_latency_percentile(h, 50) / 1e3,
             (double)rs_latency_percentile(h, 90) / 1e3, (double)rs_latency_percentile(h, 99) / 1e3,
             (double)rs_latency_percentile(h, 99.9) / 1e3, (double)rs_latency_max(h) / 1e3);
}
