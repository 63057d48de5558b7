/* Unit tests for redis_conn.c: how Redis error replies are classified. The connection itself
 * is tested against a real redis-server by the integration tests. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "redis_conn.h"

static void redis_conn_classifies_errors(void **state)
{
    (void)state;
    static const struct {
        const char *msg;
        rs_redis_status_t want;
    } cases[] = {
        /* Redis 6+ credential refusals. */
        {"WRONGPASS invalid username-password pair or user is disabled.", RS_REDIS_ERR_AUTH},
        {"NOAUTH Authentication required.", RS_REDIS_ERR_AUTH},
        {"NOPERM this user has no permissions to run the 'xadd' command", RS_REDIS_ERR_AUTH},
        /* Older servers phrase it as a plain ERR. */
        {"ERR invalid password", RS_REDIS_ERR_AUTH},
        {"ERR AUTH <password> called without any password configured for the default user.",
         RS_REDIS_ERR_AUTH},
        /* Transient server states: retry like a lost connection. */
        {"LOADING Redis is loading the dataset in memory", RS_REDIS_ERR_IO},
        {"BUSY Redis is busy running a script.", RS_REDIS_ERR_IO},
        {"MASTERDOWN Link with MASTER is down", RS_REDIS_ERR_IO},
        {"TRYAGAIN Multiple keys request during rehashing of slot", RS_REDIS_ERR_IO},
        /* Everything else is a reply error retrying cannot fix. */
        {"WRONGTYPE Operation against a key holding the wrong kind of value", RS_REDIS_ERR_REPLY},
        {"ERR DB index is out of range", RS_REDIS_ERR_REPLY},
        {"NOGROUP No such key 'events' or consumer group 'workers'", RS_REDIS_ERR_REPLY},
        {"", RS_REDIS_ERR_REPLY},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rs_redis_status_t got = rs_redis_classify_error(cases[i].msg, strlen(cases[i].msg));
        if (got != cases[i].want)
            fail_msg("'%s': got %d, want %d", cases[i].msg, got, cases[i].want);
    }
    assert_int_equal(rs_redis_classify_error(NULL, 0), RS_REDIS_ERR_REPLY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(redis_conn_classifies_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
