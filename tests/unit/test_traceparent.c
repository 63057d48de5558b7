/* Unit tests for traceparent.c against the W3C Trace Context Recommendation's examples and
 * its test suite's invalid cases. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "traceparent.h"

static void traceparent_accepts_valid(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *trace_id, *span_id;
        uint8_t flags;
    } cases[] = {
        /* The Recommendation's examples: sampled and not sampled. */
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
         "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0x01},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
         "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0x00},
        /* Unknown flag bits are kept (a future flag is not an error). */
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
         "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0x09},
        /* A future version may carry more fields after a dash. */
        {"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
         "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0x01},
        /* A future version of exactly the version-00 length. */
        {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
         "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0x01},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rs_trace_context_t ctx;
        if (rs_traceparent_parse(cases[i].text, strlen(cases[i].text), &ctx) != 0)
            fail_msg("rejected: %s", cases[i].text);
        char hex[33];
        rs_hex_encode(ctx.trace_id, 16, hex);
        assert_string_equal(hex, cases[i].trace_id);
        rs_hex_encode(ctx.span_id, 8, hex);
        assert_string_equal(hex, cases[i].span_id);
        assert_int_equal(ctx.flags, cases[i].flags);
    }
}

static void traceparent_rejects_invalid(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "",                                                          /* empty */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",      /* no flags */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  /* 00 with extra text */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  /* 00 too long */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version not hex */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* uppercase trace-id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",   /* uppercase parent-id */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace-id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero parent-id */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",    /* short trace-id */
        "00-4bf92f3577b34da6a3ce929d0e0e47366-0f067aa0ba902b7-01",   /* dash misplaced */
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",   /* wrong separators */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",   /* flags not hex */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x", /* future: no dash */
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* leading space */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rs_trace_context_t ctx;
        if (rs_traceparent_parse(cases[i], strlen(cases[i]), &ctx) != -1)
            fail_msg("accepted: '%s'", cases[i]);
    }
}

static void traceparent_round_trips(void **state)
{
    (void)state;
    const char *text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    rs_trace_context_t ctx;
    assert_int_equal(rs_traceparent_parse(text, strlen(text), &ctx), 0);
    char buf[RS_TRACEPARENT_LEN];
    rs_traceparent_format(&ctx, buf);
    assert_string_equal(buf, text);
    /* A future version is written back as version 00 with the fields we understood. */
    const char *future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
    assert_int_equal(rs_traceparent_parse(future, strlen(future), &ctx), 0);
    rs_traceparent_format(&ctx, buf);
    assert_string_equal(buf, text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(traceparent_accepts_valid),
        cmocka_unit_test(traceparent_rejects_invalid),
        cmocka_unit_test(traceparent_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
