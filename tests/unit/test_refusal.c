/* Unit tests for refusal.c: how error replies to stream commands are classified. The texts
 * are Redis 7.0's own. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "refusal.h"

static void refusal_classifies_replies(void **state)
{
    (void)state;
    static const struct {
        const char *msg;
        rs_refusal_t want;
        bool transient, group_gone;
    } cases[] = {
        /* XREADGROUP, XACK, XCLAIM on a stream whose group was destroyed, or on no key. */
        {"NOGROUP No such key 'events' or consumer group 'workers' in XREADGROUP with GROUP "
         "option",
         RS_REFUSAL_NOGROUP, false, true},
        /* A blocked XREADGROUP when XGROUP DESTROY ran. */
        {"NOGROUP the consumer group this client was blocked on no longer exists",
         RS_REFUSAL_NOGROUP, false, true},
        /* A blocked XREADGROUP when the key was deleted (or replaced). */
        {"UNBLOCKED the stream key no longer exists", RS_REFUSAL_DELETED, false, true},
        /* A blocked XREADGROUP when the server became a replica. */
        {"UNBLOCKED force unblock from blocking operation, instance state changed (master -> "
         "replica?)",
         RS_REFUSAL_NOT_READY, true, false},
        {"WRONGTYPE Operation against a key holding the wrong kind of value", RS_REFUSAL_WRONGTYPE,
         false, false},
        {"READONLY You can't write against a read only replica.", RS_REFUSAL_READONLY, true, false},
        {"OOM command not allowed when used memory > 'maxmemory'.", RS_REFUSAL_OOM, false, false},
        /* States a server leaves by itself. */
        {"LOADING Redis is loading the dataset in memory", RS_REFUSAL_NOT_READY, true, false},
        {"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN "
         "NOSAVE.",
         RS_REFUSAL_NOT_READY, true, false},
        {"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
         RS_REFUSAL_NOT_READY, true, false},
        {"TRYAGAIN Multiple keys request during rehashing of slot", RS_REFUSAL_NOT_READY, true,
         false},
        {"NOPERM this user has no permissions to access one of the keys used as arguments",
         RS_REFUSAL_NOPERM, false, false},
        /* A code is a whole word: BUSYGROUP is not BUSY, OOMPH not OOM. */
        {"BUSYGROUP Consumer Group name already exists", RS_REFUSAL_OTHER, false, false},
        {"OOMPH", RS_REFUSAL_OTHER, false, false},
        /* A code alone, without text. */
        {"READONLY", RS_REFUSAL_READONLY, true, false},
        /* Everything else. */
        {"EXECABORT Transaction discarded because of previous errors.", RS_REFUSAL_OTHER, false,
         false},
        {"ERR no such key", RS_REFUSAL_OTHER, false, false},
        {"", RS_REFUSAL_OTHER, false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rs_refusal_t got = rs_refusal_of(cases[i].msg, strlen(cases[i].msg));
        if (got != cases[i].want)
            fail_msg("'%s': got %d, want %d", cases[i].msg, got, cases[i].want);
        if (rs_refusal_transient(got) != cases[i].transient)
            fail_msg("'%s': transient %d", cases[i].msg, rs_refusal_transient(got));
        if (rs_refusal_group_gone(got) != cases[i].group_gone)
            fail_msg("'%s': group gone %d", cases[i].msg, rs_refusal_group_gone(got));
    }
    assert_int_equal(rs_refusal_of(NULL, 0), RS_REFUSAL_OTHER);
    /* Only `len` bytes are read: "OOM" of "OOM command..." cut after the code. */
    assert_int_equal(rs_refusal_of("OOM command", 3), RS_REFUSAL_OOM);
}

static void refusal_hints_name_the_cause(void **state)
{
    (void)state;
    static const struct {
        rs_refusal_t kind;
        const char *needle; /* the hint must say this */
    } cases[] = {
        {RS_REFUSAL_NOGROUP, "deleted"},
        {RS_REFUSAL_DELETED, "deleted"},
        {RS_REFUSAL_WRONGTYPE, "another type"},
        {RS_REFUSAL_READONLY, "read-only replica"},
        {RS_REFUSAL_OOM, "maxmemory"},
        {RS_REFUSAL_NOT_READY, "not ready"},
        {RS_REFUSAL_NOPERM, "ACL"},
        {RS_REFUSAL_OTHER, "refused"},
        {RS_REFUSAL_NONE, "no refusal"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *hint = rs_refusal_hint(cases[i].kind);
        if (strstr(hint, cases[i].needle) == NULL)
            fail_msg("kind %d: '%s' lacks '%s'", cases[i].kind, hint, cases[i].needle);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refusal_classifies_replies),
        cmocka_unit_test(refusal_hints_name_the_cause),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
