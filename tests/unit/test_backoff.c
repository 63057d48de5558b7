/* Unit tests for backoff.c: capped exponential backoff with jitter. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "backoff.h"

static void backoff_grows_then_caps(void **state)
{
    (void)state;
    rs_backoff_t b;
    rs_backoff_init(&b, 100, 5000, 42);
    /* Step n waits in [d/2, d] with d = min(5000, 100 * 2^n). */
    static const int64_t ceiling[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    for (size_t i = 0; i < sizeof(ceiling) / sizeof(ceiling[0]); i++) {
        int64_t d = rs_backoff_next_ms(&b);
        assert_in_range(d, ceiling[i] - ceiling[i] / 2, ceiling[i]);
    }
    /* Far past the shift limit it stays capped and never overflows. */
    for (int i = 0; i < 200; i++)
        assert_in_range(rs_backoff_next_ms(&b), 2500, 5000);
}

static void backoff_reset_starts_over(void **state)
{
    (void)state;
    rs_backoff_t b;
    rs_backoff_init(&b, 100, 5000, 7);
    for (int i = 0; i < 10; i++)
        (void)rs_backoff_next_ms(&b);
    rs_backoff_reset(&b);
    assert_in_range(rs_backoff_next_ms(&b), 50, 100);
}

static void backoff_jitter_varies(void **state)
{
    (void)state;
    /* Jitter exists so that a herd of clients spreads out: capped steps must not all be
     * the same value. */
    rs_backoff_t b;
    rs_backoff_init(&b, 1000, 1000, 0);
    int64_t first = rs_backoff_next_ms(&b);
    int differs = 0;
    for (int i = 0; i < 100; i++)
        differs |= rs_backoff_next_ms(&b) != first;
    assert_true(differs);
}

static void backoff_clamps_bad_parameters(void **state)
{
    (void)state;
    rs_backoff_t b;
    /* A zero base becomes 1 ms, a cap below the base becomes the base. */
    rs_backoff_init(&b, 0, -5, 1);
    assert_int_equal(b.base_ms, 1);
    assert_int_equal(b.cap_ms, 1);
    assert_in_range(rs_backoff_next_ms(&b), 1, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backoff_grows_then_caps),
        cmocka_unit_test(backoff_reset_starts_over),
        cmocka_unit_test(backoff_jitter_varies),
        cmocka_unit_test(backoff_clamps_bad_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
