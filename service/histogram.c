/*
 * A lock-free latency histogram for the handlers' durations.
 *
 * DESIGN: one relaxed atomic counter per bucket (not cumulative) plus an atomic sum in
 * nanoseconds. A worker's observation is a short linear search over 14 bounds and two atomic
 * adds, with no lock and no shared cache line written by anything but these counters. A
 * reader (the HTTP server's thread) loads the buckets one by one and accumulates them, so
 * the cumulative counts it reports are monotonic by construction and the +Inf bucket is the
 * count, as the exposition format requires, even while workers keep adding. Relaxed ordering
 * is enough: nothing else is published through these counters. The sum in nanoseconds wraps
 * after 584 years of handler time.
 */

#include "histogram.h"

#include <stddef.h>

const int64_t rs_histogram_bounds_ns[RS_HISTOGRAM_BOUNDS] = {
    500000,    1000000,   2500000,    5000000,    10000000,    25000000,    50000000,
    100000000, 250000000, 500000000L, 1000000000, 2500000000L, 5000000000L, 10000000000L,
};

void rs_histogram_init(rs_histogram_t *h)
{
    for (size_t i = 0; i <= RS_HISTOGRAM_BOUNDS; i++)
        atomic_init(&h->buckets[i], 0);
    atomic_init(&h->sum_ns, 0);
}

void rs_histogram_observe(rs_histogram_t *h, int64_t ns)
{
    if (ns < 0)
        ns = 0; /* a monotonic clock never goes back; defensive only */
    size_t i = 0;
    while (i < RS_HISTOGRAM_BOUNDS && ns > rs_histogram_bounds_ns[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (unsigned long long)ns, memory_order_relaxed);
}

void rs_histogram_read(const rs_histogram_t *h, rs_histogram_snapshot_t *out)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= RS_HISTOGRAM_BOUNDS; i++) {
        total += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        out->cumulative[i] = total;
    }
    out->count = total;
    out->sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
}

void rs_histogram_add(rs_histogram_t *h, const rs_histogram_t *from)
{
    for (size_t i = 0; i <= RS_HISTOGRAM_BOUNDS; i++)
        atomic_fetch_add_explicit(&h->buckets[i], atomic_load(&from->buckets[i]),
                                  memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, atomic_load(&from->sum_ns), memory_order_relaxed);
}
