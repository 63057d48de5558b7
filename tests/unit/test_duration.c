/* Unit tests for duration.c: the Go-style durations the producer's flags take. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "duration.h"

#define MAX_MS INT64_C(86400000)

static void duration_accepts_go_notation(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
    } cases[] = {
        {"0", 0},             /* bare zero, as Go allows */
        {"0s", 0},            /* zero with a unit */
        {"500ms", 500},       /* the demo's typical sub-second interval */
        {"1s", 1000},         /* the demo's default */
        {"2m", 120000},       /* minutes */
        {"1h", 3600000},      /* hours */
        {"1h30m", 5400000},   /* several terms add up */
        {"1m0.5s", 60500},    /* a fraction inside a sequence */
        {"1.5s", 1500},       /* decimal fraction */
        {".25s", 250},        /* fraction without an integer part */
        {"0.3s", 300},        /* exact: no binary floating point involved */
        {"1000us", 1},        /* microseconds that make whole milliseconds */
        {"1000\xc2\xb5s", 1}, /* micro sign */
        {"2000000ns", 2},     /* nanoseconds that make whole milliseconds */
        {"24h", MAX_MS},      /* exactly the maximum */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[128] = "";
        int64_t ms = -1;
        int rc = rs_duration_parse_ms(cases[i].text, MAX_MS, &ms, err, sizeof(err));
        if (rc != 0)
            fail_msg("'%s' rejected: %s", cases[i].text, err);
        assert_int_equal(ms, cases[i].ms);
    }
}

static void duration_rejects_bad_input(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *phrase; /* expected in the message */
    } cases[] = {
        {"", "empty"},                              /* nothing */
        {"5", "missing unit"},                      /* a bare number other than 0 */
        {"1s5", "missing unit"},                    /* trailing number */
        {"5x", "unknown unit"},                     /* unknown unit */
        {"5 s", "unknown unit"},                    /* no spaces allowed */
        {"s", "invalid duration"},                  /* unit without a number */
        {".s", "invalid duration"},                 /* a dot is not a number */
        {"-1s", "must not be signed"},              /* negative */
        {"+1s", "must not be signed"},              /* explicit sign */
        {"1500us", "whole number of milliseconds"}, /* 1.5 ms */
        {"1ns", "whole number of milliseconds"},    /* far below a millisecond */
        {"25h", "too large"},                       /* above the caller's maximum */
        {"9999999999999999999h", "too large"},      /* integer overflow */
        {"2562048h", "too large"},                  /* overflows int64 nanoseconds */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[128] = "";
        int64_t ms = -1;
        int rc = rs_duration_parse_ms(cases[i].text, MAX_MS, &ms, err, sizeof(err));
        if (rc != -1)
            fail_msg("'%s' accepted as %lld ms", cases[i].text, (long long)ms);
        if (strstr(err, cases[i].phrase) == NULL)
            fail_msg("'%s': message '%s' lacks '%s'", cases[i].text, err, cases[i].phrase);
        assert_int_equal(ms, -1); /* the output is untouched on error */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(duration_accepts_go_notation),
        cmocka_unit_test(duration_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
