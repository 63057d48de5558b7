/* Unit tests for message.c: the demo entry and its XADD arguments. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "message.h"

static void assert_arg(const char **argv, const size_t *argvlen, int i, const char *want)
{
    assert_int_equal(argvlen[i], strlen(want));
    assert_memory_equal(argv[i], want, argvlen[i]);
}

static void message_demo_entry_fields(void **state)
{
    (void)state;
    rs_demo_entry_t e;
    assert_int_equal(rs_demo_entry_init(&e, 18446744073709551615u, "test", 0), 0);
    /* The largest sequence number still fits the fixed buffer. */
    assert_string_equal(e.message, "Message #18446744073709551615");
    assert_string_equal(e.type, "test");
    assert_string_equal(e.timestamp, "1970-01-01T00:00:00Z");
}

static void message_xadd_without_trim(void **state)
{
    (void)state;
    rs_demo_entry_t e;
    rs_demo_entry_init(&e, 1, "alert", 0);
    const char *argv[RS_XADD_MAX_ARGS];
    size_t argvlen[RS_XADD_MAX_ARGS];
    char buf[24];
    int argc = rs_xadd_argv("notifications", 0, buf, &e, argv, argvlen);
    static const char *const want[] = {"XADD",    "notifications", "*",
                                       "message", "Message #1",    "type",
                                       "alert",   "timestamp",     "1970-01-01T00:00:00Z"};
    assert_int_equal(argc, 9);
    for (int i = 0; i < argc; i++)
        assert_arg(argv, argvlen, i, want[i]);
}

static void message_xadd_with_maxlen(void **state)
{
    (void)state;
    rs_demo_entry_t e;
    rs_demo_entry_init(&e, 2, "test", 0);
    const char *argv[RS_XADD_MAX_ARGS];
    size_t argvlen[RS_XADD_MAX_ARGS];
    char buf[24];
    int argc = rs_xadd_argv("events", 10000, buf, &e, argv, argvlen);
    /* MAXLEN ~ N comes before the id, as XADD requires. */
    assert_int_equal(argc, 12);
    assert_int_equal(argc <= RS_XADD_MAX_ARGS, 1);
    assert_arg(argv, argvlen, 2, "MAXLEN");
    assert_arg(argv, argvlen, 3, "~");
    assert_arg(argv, argvlen, 4, "10000");
    assert_arg(argv, argvlen, 5, "*");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(message_demo_entry_fields),
        cmocka_unit_test(message_xadd_without_trim),
        cmocka_unit_test(message_xadd_with_maxlen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
