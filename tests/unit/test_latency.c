/* Unit tests for latency.c: the log-linear latency histogram. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latency.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A deterministic generator (splitmix64), so every run sees the same samples. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static double next_unit(uint64_t *state)
{
    return (double)(next_random(state) >> 11) / 9007199254740992.0;
}

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The exact percentile of sorted values, with the histogram's rank rule. */
static int64_t exact_percentile(const int64_t *sorted, size_t n, double q)
{
    double want = q / 100.0 * (double)n;
    size_t rank = (size_t)want;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

enum distribution { UNIFORM, EXPONENTIAL, LOGNORMAL, BIMODAL, CONSTANT, TINY };

/* Sample i of a distribution, in nanoseconds. */
static int64_t sample(enum distribution d, uint64_t *rng, size_t i)
{
    double u = next_unit(rng);
    switch (d) {
    case UNIFORM: /* 1 us .. 10 ms */
        return 1000 + (int64_t)(u * 9999000.0);
    case EXPONENTIAL: /* mean 50 us */
        return (int64_t)(-log(1.0 - u) * 50000.0);
    case LOGNORMAL: { /* median 80 us, heavy tail into seconds */
        double u2 = next_unit(rng);
        double z = sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * u2);
        return (int64_t)(80000.0 * exp(1.5 * z));
    }
    case BIMODAL: /* 90% around 60 us, 10% around 40 ms */
        return i % 10 == 9 ? 40000000 + (int64_t)(u * 1e6) : 60000 + (int64_t)(u * 5000.0);
    case CONSTANT:
        return 123456;
    case TINY: /* 0 .. 300 ns: the exact buckets and the first shared ones */
        return (int64_t)(u * 300.0);
    }
    return 0;
}

/* Percentiles of known distributions are within 1% of the exact ones (and never below them,
 * since a bucket reports its upper bound). */
static void latency_percentiles_within_one_percent(void **state)
{
    (void)state;
    static const struct {
        enum distribution dist;
        size_t n;
        const char *name;
    } cases[] = {
        {UNIFORM, 100000, "uniform 1us..10ms"},
        {EXPONENTIAL, 100000, "exponential, mean 50us"},
        {LOGNORMAL, 100000, "lognormal, heavy tail"},
        {BIMODAL, 50000, "bimodal 60us / 40ms"},
        {CONSTANT, 1000, "one value"},
        {TINY, 10000, "below 300 ns"},
        {UNIFORM, 1, "a single recording"},
        {EXPONENTIAL, 7, "a handful"},
    };
    static const double qs[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};

    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        rs_latency_t *h = rs_latency_new();
        assert_non_null(h);
        int64_t *v = malloc(cases[c].n * sizeof(*v));
        assert_non_null(v);
        uint64_t rng = 42 + c;
        double sum = 0;
        for (size_t i = 0; i < cases[c].n; i++) {
            v[i] = sample(cases[c].dist, &rng, i);
            sum += (double)v[i];
            rs_latency_record(h, v[i]);
        }
        qsort(v, cases[c].n, sizeof(*v), compare_i64);

        assert_int_equal(rs_latency_count(h), cases[c].n);
        assert_int_equal(rs_latency_min(h), v[0]);
        assert_int_equal(rs_latency_max(h), v[cases[c].n - 1]);
        assert_true(fabs(rs_latency_mean(h) - sum / (double)cases[c].n) < 1e-6 * sum);
        for (size_t k = 0; k < ARRAY_LEN(qs); k++) {
            int64_t want = exact_percentile(v, cases[c].n, qs[k]);
            int64_t got = rs_latency_percentile(h, qs[k]);
            if (got < want || (double)(got - want) > 0.01 * (double)want)
                fail_msg("%s: p%g is %lld, exact %lld", cases[c].name, qs[k], (long long)got,
                         (long long)want);
        }
        assert_int_equal(rs_latency_percentile(h, 100), v[cases[c].n - 1]);
        free(v);
        rs_latency_free(h);
    }
}

/* Every value from 1 ns to the top of the range is reported within 1/128 above itself. */
static void latency_relative_error_across_the_range(void **state)
{
    (void)state;
    rs_latency_t *h = rs_latency_new();
    assert_non_null(h);
    for (int64_t v = 1; v <= RS_LATENCY_MAX_NS / 2; v = v + v / 97 + 1) {
        rs_latency_reset(h);
        rs_latency_record(h, v);
        rs_latency_record(h, 2 * v + 1000);
        int64_t got = rs_latency_percentile(h, 50); /* rank 1 of 2: v's bucket */
        if (got < v || got > v + v / 128)
            fail_msg("value %lld reported as %lld", (long long)v, (long long)got);
    }
    rs_latency_free(h);
}

/* An empty histogram answers zeros everywhere. */
static void latency_empty(void **state)
{
    (void)state;
    rs_latency_t *h = rs_latency_new();
    assert_non_null(h);
    assert_int_equal(rs_latency_count(h), 0);
    assert_int_equal(rs_latency_percentile(h, 0), 0);
    assert_int_equal(rs_latency_percentile(h, 50), 0);
    assert_int_equal(rs_latency_percentile(h, 100), 0);
    assert_int_equal(rs_latency_max(h), 0);
    assert_int_equal(rs_latency_min(h), 0);
    assert_true(rs_latency_mean(h) == 0.0);
    assert_int_equal(rs_latency_count_le(h, 0), 0);
    assert_int_equal(rs_latency_count_le(h, INT64_MAX), 0);
    char buf[128];
    rs_latency_format(h, buf, sizeof(buf));
    assert_string_equal(buf, "n=0 p50_us=0.0 p90_us=0.0 p99_us=0.0 p999_us=0.0 max_us=0.0");

    /* A reset histogram is empty again, minimum included. */
    rs_latency_record(h, 5000);
    rs_latency_reset(h);
    assert_int_equal(rs_latency_count(h), 0);
    assert_int_equal(rs_latency_min(h), 0);
    rs_latency_record(h, 7000);
    assert_int_equal(rs_latency_min(h), 7000);
    rs_latency_free(h);
    rs_latency_free(NULL); /* NULL is ignored */
}

/* Merging gives what recording everything into one histogram gives. */
static void latency_merge(void **state)
{
    (void)state;
    static const struct {
        size_t na, nb; /* recordings in a (the destination) and b */
    } cases[] = {
        {1000, 1000}, /* both full */
        {0, 500},     /* into an empty one: its minimum must come from b */
        {500, 0},     /* an empty source changes nothing */
        {0, 0},       /* both empty */
    };
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        rs_latency_t *a = rs_latency_new(), *b = rs_latency_new(), *all = rs_latency_new();
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(all);
        uint64_t rng = 7 + c;
        for (size_t i = 0; i < cases[c].na; i++) {
            int64_t v = sample(LOGNORMAL, &rng, i);
            rs_latency_record(a, v);
            rs_latency_record(all, v);
        }
        for (size_t i = 0; i < cases[c].nb; i++) {
            int64_t v = sample(UNIFORM, &rng, i);
            rs_latency_record(b, v);
            rs_latency_record(all, v);
        }
        rs_latency_merge(a, b);
        assert_int_equal(rs_latency_count(a), cases[c].na + cases[c].nb);
        assert_int_equal(rs_latency_count(b), cases[c].nb); /* the source is unchanged */
        assert_int_equal(rs_latency_min(a), rs_latency_min(all));
        assert_int_equal(rs_latency_max(a), rs_latency_max(all));
        assert_true(rs_latency_mean(a) == rs_latency_mean(all));
        for (double q = 0; q <= 100; q += 2.5)
            assert_int_equal(rs_latency_percentile(a, q), rs_latency_percentile(all, q));
        rs_latency_free(a);
        rs_latency_free(b);
        rs_latency_free(all);
    }
}

/* Values outside the range: negative counts as 0, too large as the top of the range. */
static void latency_out_of_range(void **state)
{
    (void)state;
    static const struct {
        int64_t ns;
        int64_t recorded;
    } cases[] = {
        {-1, 0},
        {INT64_MIN, 0},
        {0, 0},
        {1, 1},
        {RS_LATENCY_MAX_NS, RS_LATENCY_MAX_NS},
        {RS_LATENCY_MAX_NS + 1, RS_LATENCY_MAX_NS},
        {INT64_MAX, RS_LATENCY_MAX_NS},
        {INT64_C(100000000000), INT64_C(100000000000)}, /* 100 s is inside the range */
    };
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        rs_latency_t *h = rs_latency_new();
        assert_non_null(h);
        rs_latency_record(h, cases[c].ns);
        assert_int_equal(rs_latency_count(h), 1);
        assert_int_equal(rs_latency_min(h), cases[c].recorded);
        assert_int_equal(rs_latency_max(h), cases[c].recorded);
        assert_int_equal(rs_latency_percentile(h, 50), cases[c].recorded);
        assert_true(rs_latency_mean(h) == (double)cases[c].recorded);
        assert_int_equal(rs_latency_count_le(h, cases[c].recorded), 1);
        rs_latency_free(h);
    }
    /* Percentiles outside 0..100 are clamped. */
    rs_latency_t *h = rs_latency_new();
    assert_non_null(h);
    rs_latency_record(h, 10);
    rs_latency_record(h, 20);
    assert_int_equal(rs_latency_percentile(h, -5), 10);
    assert_int_equal(rs_latency_percentile(h, 250), 20);
    assert_int_equal(rs_latency_percentile(h, NAN), 10);
    rs_latency_free(h);
}

/* count_le: cumulative counts in whole buckets, a recording equal to the bound included. */
static void latency_count_le(void **state)
{
    (void)state;
    rs_latency_t *h = rs_latency_new();
    assert_non_null(h);
    /* 100 ns (exact bucket), 500 us, 1 ms, 1 ms, 2.5 s, 200 s (beyond 100 s, in range). */
    static const int64_t recorded[] = {100, 500000, 1000000, 1000000, 2500000000, 200000000000};
    for (size_t i = 0; i < ARRAY_LEN(recorded); i++)
        rs_latency_record(h, recorded[i]);
    static const struct {
        int64_t bound;
        uint64_t want;
    } cases[] = {
        {-1, 0},                /* nothing is negative */
        {0, 0},                 /* nothing at 0 */
        {99, 0},                /* exact buckets below 256 ns */
        {100, 1},               /* equal to the bound counts */
        {400000, 1},            /* well below 500 us */
        {500000, 2},            /* 500 us itself */
        {999000, 2},            /* 0.1% below 1 ms: another bucket */
        {1000000, 4},           /* both 1 ms recordings */
        {2500000000, 5},        /* Prometheus's 2.5 s bound */
        {10000000000, 5},       /* 10 s */
        {RS_LATENCY_MAX_NS, 6}, /* the top of the range holds everything */
        {INT64_MAX, 6},         /* beyond it too */
    };
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        uint64_t got = rs_latency_count_le(h, cases[c].bound);
        if (got != cases[c].want)
            fail_msg("count_le(%lld) = %llu, want %llu", (long long)cases[c].bound,
                     (unsigned long long)got, (unsigned long long)cases[c].want);
    }
    /* Monotonic in the bound. */
    uint64_t prev = 0;
    for (int64_t b = 0; b < INT64_C(300000000000); b = b * 3 / 2 + 1) {
        uint64_t n = rs_latency_count_le(h, b);
        assert_true(n >= prev);
        prev = n;
    }
    rs_latency_free(h);
}

/* The one-line summary, with its exact layout, and truncation. */
static void latency_format(void **state)
{
    (void)state;
    static const struct {
        int64_t value; /* recorded `times` times */
        unsigned times;
        int64_t outlier; /* recorded once when non-zero */
        const char *want;
    } cases[] = {
        /* 1000 ns: bucket [1000, 1003], capped at the maximum. */
        {1000, 1000, 0, "n=1000 p50_us=1.0 p90_us=1.0 p99_us=1.0 p999_us=1.0 max_us=1.0"},
        /* 99 values of 250 ns (exact) and one of 2 ms. */
        {250, 99, 2000000, "n=100 p50_us=0.2 p90_us=0.2 p99_us=0.2 p999_us=2000.0 max_us=2000.0"},
        /* A value beyond the range. */
        {INT64_MAX, 1, 0,
         "n=1 p50_us=1099511627.8 p90_us=1099511627.8 p99_us=1099511627.8 "
         "p999_us=1099511627.8 max_us=1099511627.8"},
    };
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        rs_latency_t *h = rs_latency_new();
        assert_non_null(h);
        for (unsigned i = 0; i < cases[c].times; i++)
            rs_latency_record(h, cases[c].value);
        if (cases[c].outlier != 0)
            rs_latency_record(h, cases[c].outlier);
        char buf[256];
        rs_latency_format(h, buf, sizeof(buf));
        assert_string_equal(buf, cases[c].want);

        /* A short buffer gets a terminated prefix; a zero-length one is left alone. */
        char small[8];
        rs_latency_format(h, small, sizeof(small));
        assert_int_equal(strlen(small), sizeof(small) - 1);
        assert_memory_equal(small, cases[c].want, sizeof(small) - 1);
        char untouched = 'x';
        rs_latency_format(h, &untouched, 0);
        assert_int_equal(untouched, 'x');
        rs_latency_free(h);
    }
}

/* One writer records while another thread reads: counts only grow, percentiles stay within
 * the recorded range, and ThreadSanitizer finds no race. */
typedef struct {
    rs_latency_t *h;
    atomic_bool done;
} shared_t;

static void *writer_main(void *arg)
{
    shared_t *s = arg;
    uint64_t rng = 99;
    for (size_t i = 0; i < 200000; i++)
        rs_latency_record(s->h, 1000 + (int64_t)(next_random(&rng) % 1000000));
    atomic_store(&s->done, true);
    return NULL;
}

static void latency_concurrent_reader(void **state)
{
    (void)state;
    shared_t s;
    s.h = rs_latency_new();
    assert_non_null(s.h);
    atomic_init(&s.done, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &s), 0);
    uint64_t prev = 0;
    char buf[256];
    for (unsigned reads = 0; reads < 100000 && !atomic_load(&s.done); reads++) {
        uint64_t n = rs_latency_count(s.h);
        assert_true(n >= prev);
        prev = n;
        int64_t p99 = rs_latency_percentile(s.h, 99);
        assert_true(p99 == 0 || (p99 >= 1000 && p99 <= 1001000 + 1001000 / 128));
        (void)rs_latency_count_le(s.h, 500000);
        rs_latency_format(s.h, buf, sizeof(buf));
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rs_latency_count(s.h), 200000);
    rs_latency_free(s.h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(latency_percentiles_within_one_percent),
        cmocka_unit_test(latency_relative_error_across_the_range),
        cmocka_unit_test(latency_empty),
        cmocka_unit_test(latency_merge),
        cmocka_unit_test(latency_out_of_range),
        cmocka_unit_test(latency_count_le),
        cmocka_unit_test(latency_format),
        cmocka_unit_test(latency_concurrent_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
