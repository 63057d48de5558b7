/*
 * Fuzz harness for rs_traceparent_parse(): the `traceparent` field of a stream entry comes
 * from whoever wrote to the stream.
 *
 * Beyond the sanitizers it checks the parser against the W3C grammar by round trip: a value
 * accepted is re-formatted as version 00 and must parse to the same context; the formatted
 * text must equal the input's first 55 bytes (apart from the version), which also proves that
 * nothing but lowercase hex was accepted; a version-00 value must be exactly 55 bytes; and an
 * all-zero trace-id or parent-id is never accepted.
 */

#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "traceparent.h"

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    rs_trace_context_t ctx;

    if (rs_traceparent_parse(text, size, &ctx) != 0)
        return 0;
    FUZZ_CHECK(size >= 55, "accepted %zu bytes", size);
    FUZZ_CHECK(!all_zero(ctx.trace_id, sizeof(ctx.trace_id)), "all-zero trace-id accepted");
    FUZZ_CHECK(!all_zero(ctx.span_id, sizeof(ctx.span_id)), "all-zero parent-id accepted");
    bool v00 = text[0] == '0' && text[1] == '0';
    FUZZ_CHECK(!v00 || size == 55, "version 00 with %zu bytes accepted", size);
    FUZZ_CHECK(!(text[0] == 'f' && text[1] == 'f'), "version ff accepted");
    FUZZ_CHECK(size == 55 || text[55] == '-', "a longer value without '-' after 55 bytes");

    char buf[RS_TRACEPARENT_LEN];
    rs_traceparent_format(&ctx, buf);
    FUZZ_CHECK(strlen(buf) == 55, "formatted %zu bytes", strlen(buf));
    FUZZ_CHECK(memcmp(buf + 2, text + 2, 53) == 0, "'%.55s' formats as '%s'", text, buf);
    FUZZ_CHECK(!v00 || memcmp(buf, text, 55) == 0, "'%.55s' formats as '%s'", text, buf);

    rs_trace_context_t again;
    FUZZ_CHECK(rs_traceparent_parse(buf, 55, &again) == 0, "own output '%s' rejected", buf);
    FUZZ_CHECK(memcmp(again.trace_id, ctx.trace_id, sizeof(ctx.trace_id)) == 0 &&
                   memcmp(again.span_id, ctx.span_id, sizeof(ctx.span_id)) == 0 &&
                   again.flags == ctx.flags,
               "'%s' parses to another context", buf);
    return 0;
}
