/* Unit tests for stream_id.c: parsing, ordering, and the restart point of a vanished group. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "stream_id.h"

static void stream_id_parses_and_formats(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        uint64_t ms, seq;
        const char *formatted; /* for rc 0 */
    } cases[] = {
        /* A full id, as Redis returns them. */
        {"1700000000000-5", 0, 1700000000000, 5, "1700000000000-5"},
        /* The milliseconds alone: sequence 0, as XGROUP CREATE reads it. */
        {"1700000000000", 0, 1700000000000, 0, "1700000000000-0"},
        /* The start of every stream. */
        {"0", 0, 0, 0, "0-0"},
        {"0-0", 0, 0, 0, "0-0"},
        /* The largest id there is. */
        {"18446744073709551615-18446744073709551615", 0, UINT64_MAX, UINT64_MAX,
         "18446744073709551615-18446744073709551615"},
        /* Out of range, by one. */
        {"18446744073709551616-0", -1, 0, 0, NULL},
        {"1-18446744073709551616", -1, 0, 0, NULL},
        /* Not ids: empty parts, signs, special ids, other characters. */
        {"", -1, 0, 0, NULL},
        {"-", -1, 0, 0, NULL},
        {"5-", -1, 0, 0, NULL},
        {"-5", -1, 0, 0, NULL},
        {"+5", -1, 0, 0, NULL},
        {"$", -1, 0, 0, NULL},
        {"5-1-2", -1, 0, 0, NULL},
        {"5 -1", -1, 0, 0, NULL},
        {"0x10", -1, 0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rs_stream_id_t id = {7, 7};
        int rc = rs_stream_id_parse(cases[i].text, strlen(cases[i].text), &id);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d", cases[i].text, rc, cases[i].rc);
        if (rc != 0) {
            assert_true(id.ms == 7 && id.seq == 7); /* untouched on failure */
            continue;
        }
        if (id.ms != cases[i].ms || id.seq != cases[i].seq)
            fail_msg("'%s': parsed %llu-%llu", cases[i].text, (unsigned long long)id.ms,
                     (unsigned long long)id.seq);
        char buf[RS_STREAM_ID_LEN];
        rs_stream_id_format(id, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].formatted);
    }
    /* Only `len` bytes are read. */
    rs_stream_id_t id;
    assert_int_equal(rs_stream_id_parse("12-3junk", 4, &id), 0);
    assert_true(id.ms == 12 && id.seq == 3);
    assert_int_equal(rs_stream_id_parse(NULL, 0, &id), -1);
}

static void stream_id_compares(void **state)
{
    (void)state;
    static const struct {
        rs_stream_id_t a, b;
        int want;
    } cases[] = {
        {{1, 0}, {1, 0}, 0},
        /* The milliseconds decide first... */
        {{1, 9}, {2, 0}, -1},
        {{2, 0}, {1, 9}, 1},
        /* ...then the sequence. */
        {{5, 1}, {5, 2}, -1},
        {{5, 2}, {5, 1}, 1},
        /* Unsigned: the top values are the largest. */
        {{UINT64_MAX, 0}, {0, UINT64_MAX}, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(rs_stream_id_compare(cases[i].a, cases[i].b), cases[i].want);
}

static void stream_id_restart_point_skips_nothing_unsettled(void **state)
{
    (void)state;
    static const struct {
        rs_stream_id_t last;    /* last-delivered-id */
        bool has_pending;       /* XPENDING listed entries */
        rs_stream_id_t pending; /* the smallest pending id */
        const char *want;
    } cases[] = {
        /* Nothing pending: restart after the last delivered entry. */
        {{1700000000500, 3}, false, {0, 0}, "1700000000500-3"},
        /* A group that never delivered anything. */
        {{0, 0}, false, {0, 0}, "0-0"},
        /* Pending entries: just before the oldest, which is then delivered again. */
        {{1700000000500, 3}, true, {1700000000100, 7}, "1700000000100-6"},
        /* The oldest pending has sequence 0: the previous millisecond's last sequence. */
        {{1700000000500, 3}, true, {1700000000100, 0}, "1700000000099-18446744073709551615"},
        /* The only pending entry is the last delivered one. */
        {{42, 1}, true, {42, 1}, "42-0"},
        /* The smallest possible entry id: from the very start. */
        {{9, 0}, true, {0, 1}, "0-0"},
        /* A pending id past last-delivered-id (XGROUP SETID moved it back): the smaller. */
        {{10, 0}, true, {20, 0}, "10-0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[RS_STREAM_ID_LEN];
        rs_stream_id_format(
            rs_stream_id_restart_point(cases[i].last, cases[i].has_pending, cases[i].pending), buf,
            sizeof(buf));
        if (strcmp(buf, cases[i].want) != 0)
            fail_msg("case %zu: got %s, want %s", i, buf, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stream_id_parses_and_formats),
        cmocka_unit_test(stream_id_compares),
        cmocka_unit_test(stream_id_restart_point_skips_nothing_unsettled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
