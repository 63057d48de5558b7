/*
 * Unit tests for the pure part of handler_http.c: reading an HTTP Retry-After value
 * (delay-seconds or an HTTP-date) into the wait the http handler reports, capped at
 * RS_RETRY_AFTER_MAX_MS. The requests themselves are covered by
 * tests/integration/test_handler_http.sh against a real HTTP server.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <time.h>

#include "handler.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* 2015-10-21T07:28:00Z, the date RFC 9110 uses in its examples. */
#define EXAMPLE_TIME ((time_t)1445412480)

static void handler_http_retry_after_parses(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        time_t now;
        int64_t want;
    } cases[] = {
        /* delay-seconds */
        {"0", EXAMPLE_TIME, 0},
        {"1", EXAMPLE_TIME, 1000},
        {"120", EXAMPLE_TIME, 120000},
        /* whitespace around the value, as libcurl hands the header line over (CRLF) */
        {" 5\r\n", EXAMPLE_TIME, 5000},
        /* the cap: an hour, however large the number (no overflow) */
        {"3600", EXAMPLE_TIME, 3600000},
        {"3601", EXAMPLE_TIME, RS_RETRY_AFTER_MAX_MS},
        {"99999999999999999999999999", EXAMPLE_TIME, RS_RETRY_AFTER_MAX_MS},
        /* an HTTP-date 90 s ahead, in the preferred and the two obsolete forms */
        {"Wed, 21 Oct 2015 07:29:30 GMT", EXAMPLE_TIME, 90000},
        {"Wednesday, 21-Oct-15 07:29:30 GMT", EXAMPLE_TIME, 90000},
        {"Wed Oct 21 07:29:30 2015", EXAMPLE_TIME, 90000},
        /* a date now or in the past: retry at once */
        {"Wed, 21 Oct 2015 07:28:00 GMT", EXAMPLE_TIME, 0},
        {"Tue, 20 Oct 2015 07:28:00 GMT", EXAMPLE_TIME, 0},
        /* a date more than an hour ahead: the cap */
        {"Thu, 22 Oct 2015 07:28:00 GMT", EXAMPLE_TIME, RS_RETRY_AFTER_MAX_MS},
        /* neither: ignored (-1), the service's own backoff decides */
        {"", EXAMPLE_TIME, -1},
        {"   ", EXAMPLE_TIME, -1},
        {"-5", EXAMPLE_TIME, -1},
        {"1.5", EXAMPLE_TIME, -1},
        {"soon", EXAMPLE_TIME, -1},
        {"12abc", EXAMPLE_TIME, -1},
        /* longer than any valid value */
        {"Wed, 21 Oct 2015 07:29:30 GMT Wed, 21 Oct 2015 07:29:30 GMT xxxxxxxx", EXAMPLE_TIME, -1},
    };

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int64_t got = rs_http_retry_after_ms(cases[i].value, cases[i].now);
        if (got != cases[i].want)
            fail_msg("Retry-After '%s': expected %lld, got %lld", cases[i].value,
                     (long long)cases[i].want, (long long)got);
    }
    assert_int_equal(rs_http_retry_after_ms(NULL, EXAMPLE_TIME), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handler_http_retry_after_parses),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
