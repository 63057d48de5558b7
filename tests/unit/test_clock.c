/* Unit tests for clock.c: RFC 3339 timestamps as the Go demo writes them. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "clock.h"

static void clock_formats_rfc3339_utc(void **state)
{
    (void)state;
    static const struct {
        time_t t;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00Z"},           /* the epoch */
        {951782400, "2000-02-29T00:00:00Z"},   /* a leap day in a century leap year */
        {1709251199, "2024-02-29T23:59:59Z"},  /* last second of a leap day */
        {1798761599, "2026-12-31T23:59:59Z"},  /* last second of a year */
        {-1, "1969-12-31T23:59:59Z"},          /* before the epoch */
        {253402300799, "9999-12-31T23:59:59Z"} /* the last instant RFC 3339 can write */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[RS_RFC3339_LEN];
        int n = rs_clock_format_rfc3339(cases[i].t, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].text);
        assert_int_equal(n, 20);
    }
}

static void clock_rejects_unformattable(void **state)
{
    (void)state;
    char buf[RS_RFC3339_LEN];
    /* Year 10000 has five digits: RFC 3339 cannot express it. */
    assert_int_equal(rs_clock_format_rfc3339(253402300800, buf, sizeof(buf)), -1);
    /* One byte short of room for the text and its NUL. */
    char small[20];
    assert_int_equal(rs_clock_format_rfc3339(0, small, sizeof(small)), -1);
}

static void clock_formats_milliseconds(void **state)
{
    (void)state;
    static const struct {
        int64_t ns;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},                   /* the epoch */
        {1798761599999999999, "2026-12-31T23:59:59.999Z"}, /* truncated, not rounded up */
        {-1000000, "1969-12-31T23:59:59.999Z"},            /* before the epoch floors */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[RS_RFC3339_LEN];
        assert_int_equal(rs_clock_format_rfc3339_ms(cases[i].ns, buf, sizeof(buf)), 24);
        assert_string_equal(buf, cases[i].text);
    }
}

static void clock_monotonic_never_goes_back(void **state)
{
    (void)state;
    int64_t prev = rs_clock_monotonic_ns();
    for (int i = 0; i < 1000; i++) {
        int64_t now = rs_clock_monotonic_ns();
        assert_true(now >= prev);
        prev = now;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clock_formats_rfc3339_utc),
        cmocka_unit_test(clock_rejects_unformattable),
        cmocka_unit_test(clock_formats_milliseconds),
        cmocka_unit_test(clock_monotonic_never_goes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
