/* Unit tests for histogram.c: the lock-free handler-duration histogram. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>

#include "histogram.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Where each observation lands: "le" buckets take values equal to their bound. */
static void histogram_bucket_boundaries(void **state)
{
    (void)state;
    static const struct {
        int64_t ns;
        size_t bucket; /* RS_HISTOGRAM_BOUNDS is +Inf */
    } cases[] = {
        {0, 0},                                   /* zero: the first bucket */
        {-5, 0},                                  /* negative counts as zero */
        {500000, 0},                              /* exactly 0.0005 s */
        {500001, 1},                              /* just above it */
        {1000000, 1},                             /* exactly 0.001 s */
        {2500000000LL, 11},                       /* exactly 2.5 s */
        {10000000000LL, RS_HISTOGRAM_BOUNDS - 1}, /* exactly 10 s, the last bound */
        {10000000001LL, RS_HISTOGRAM_BOUNDS},     /* above every bound: +Inf */
        {INT64_MAX, RS_HISTOGRAM_BOUNDS},         /* absurdly long: +Inf */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        rs_histogram_t h;
        rs_histogram_snapshot_t snap;
        rs_histogram_init(&h);
        rs_histogram_observe(&h, cases[i].ns);
        rs_histogram_read(&h, &snap);
        for (size_t b = 0; b <= RS_HISTOGRAM_BOUNDS; b++) {
            uint64_t want = b >= cases[i].bucket ? 1 : 0; /* cumulative */
            if (snap.cumulative[b] != want)
                fail_msg("case %zu (%lld ns): bucket %zu holds %llu, want %llu", i,
                         (long long)cases[i].ns, b, (unsigned long long)snap.cumulative[b],
                         (unsigned long long)want);
        }
        assert_int_equal(snap.count, 1);
    }
}

/* The bounds are the documented Prometheus ones, ascending. */
static void histogram_bounds_are_the_documented_ones(void **state)
{
    (void)state;
    static const double seconds[] = {.0005, .001, .0025, .005, .01, .025, .05,
                                     .1,    .25,  .5,    1,    2.5, 5,    10};
    assert_int_equal(ARRAY_LEN(seconds), RS_HISTOGRAM_BOUNDS);
    for (size_t i = 0; i < RS_HISTOGRAM_BOUNDS; i++) {
        assert_true((double)rs_histogram_bounds_ns[i] / 1e9 == seconds[i]);
        if (i > 0)
            assert_true(rs_histogram_bounds_ns[i] > rs_histogram_bounds_ns[i - 1]);
    }
}

/* Sum and count over several observations; cumulative counts never decrease. */
static void histogram_sum_count_cumulative(void **state)
{
    (void)state;
    rs_histogram_t h;
    rs_histogram_snapshot_t snap;
    rs_histogram_init(&h);
    static const int64_t ns[] = {100, 3000000, 3000000, 700000000, 20000000000LL};
    uint64_t sum = 0;
    for (size_t i = 0; i < ARRAY_LEN(ns); i++) {
        rs_histogram_observe(&h, ns[i]);
        sum += (uint64_t)ns[i];
    }
    rs_histogram_read(&h, &snap);
    assert_int_equal(snap.count, ARRAY_LEN(ns));
    assert_int_equal(snap.sum_ns, sum);
    assert_int_equal(snap.cumulative[RS_HISTOGRAM_BOUNDS], snap.count);
    for (size_t b = 1; b <= RS_HISTOGRAM_BOUNDS; b++)
        assert_true(snap.cumulative[b] >= snap.cumulative[b - 1]);
    assert_int_equal(snap.cumulative[0], 1);  /* 100 ns */
    assert_int_equal(snap.cumulative[3], 3);  /* <= 5 ms: 100 ns and the two 3 ms */
    assert_int_equal(snap.cumulative[9], 3);  /* <= 0.5 s */
    assert_int_equal(snap.cumulative[10], 4); /* <= 1 s: the 0.7 s one */
}

#define THREADS    4
#define PER_THREAD 20000

static void *observer(void *arg)
{
    rs_histogram_t *h = arg;
    for (int i = 0; i < PER_THREAD; i++)
        rs_histogram_observe(h, (int64_t)(i % 7) * 1000000);
    return NULL;
}

/* Concurrent observers lose nothing (and TSan sees no race). */
static void histogram_concurrent_observers(void **state)
{
    (void)state;
    rs_histogram_t h;
    rs_histogram_snapshot_t snap;
    rs_histogram_init(&h);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, observer, &h), 0);
    for (int i = 0; i < 10; i++) {
        rs_histogram_read(&h, &snap); /* a reader racing with them sees a consistent +Inf */
        assert_int_equal(snap.cumulative[RS_HISTOGRAM_BOUNDS], snap.count);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    rs_histogram_read(&h, &snap);
    assert_int_equal(snap.count, THREADS * PER_THREAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(histogram_bucket_boundaries),
        cmocka_unit_test(histogram_bounds_are_the_documented_ones),
        cmocka_unit_test(histogram_sum_count_cumulative),
        cmocka_unit_test(histogram_concurrent_observers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
