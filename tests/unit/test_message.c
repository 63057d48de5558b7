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

static void message_xadd_with_traceparent(void **state)
{
    (void)state;
    rs_demo_entry_t e;
    rs_demo_entry_init(&e, 3, "test", 0);
    /* init leaves no traceparent: the field is added only when the producer traces. */
    assert_string_equal(e.traceparent, "");
    strcpy(e.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    const char *argv[RS_XADD_MAX_ARGS];
    size_t argvlen[RS_XADD_MAX_ARGS];
    char buf[24];
    /* The longest form: MAXLEN and the traceparent together fill RS_XADD_MAX_ARGS. */
    int argc = rs_xadd_argv("events", 5, buf, &e, argv, argvlen);
    assert_int_equal(argc, RS_XADD_MAX_ARGS);
    assert_arg(argv, argvlen, 12, "traceparent");
    assert_arg(argv, argvlen, 13, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(message_demo_entry_fields),
        cmocka_unit_test(message_xadd_without_trim),
        cmocka_unit_test(message_xadd_with_maxlen),
        cmocka_unit_test(message_xadd_with_traceparent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
