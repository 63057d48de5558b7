/*
 * W3C traceparent parsing and formatting.
 *
 * DESIGN: a strict, allocation-free parser over (pointer, length), because the value comes
 * from a stream entry, i.e. from outside: any deviation from the grammar is "no valid
 * parent" rather than a partial parse, exactly as the Recommendation's processing model asks
 * ("If the vendor failed to parse traceparent, it MUST NOT attempt to parse tracestate" and
 * starts a new trace).
 */

#include "traceparent.h"

#include <string.h>

/* Value of a lowercase hex digit, or -1 (uppercase is not allowed by the grammar). */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes 2n hex digits into n bytes. Returns 0, or -1 on a non-hex digit. */
static int hex_decode(const char *text, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

int rs_traceparent_parse(const char *text, size_t len, rs_trace_context_t *out)
{
    /* version(2) - trace-id(32) - parent-id(16) - flags(2) */
    if (len < 55 || text[2] != '-' || text[35] != '-' || text[52] != '-')
        return -1;
    uint8_t version;
    if (hex_decode(text, 1, &version) != 0 || version == 0xff)
        return -1;
    if (version == 0 && len != 55)
        return -1;
    if (version != 0 && len > 55 && text[55] != '-')
        return -1;
    rs_trace_context_t ctx;
    if (hex_decode(text + 3, 16, ctx.trace_id) != 0 || hex_decode(text + 36, 8, ctx.span_id) != 0 ||
        hex_decode(text + 53, 1, &ctx.flags) != 0)
        return -1;
    if (all_zero(ctx.trace_id, sizeof(ctx.trace_id)) || all_zero(ctx.span_id, sizeof(ctx.span_id)))
        return -1;
    *out = ctx;
    return 0;
}

void rs_hex_encode(const uint8_t *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

void rs_traceparent_format(const rs_trace_context_t *ctx, char buf[RS_TRACEPARENT_LEN])
{
    memcpy(buf, "00-", 3);
    rs_hex_encode(ctx->trace_id, sizeof(ctx->trace_id), buf + 3);
    buf[35] = '-';
    rs_hex_encode(ctx->span_id, sizeof(ctx->span_id), buf + 36);
    buf[52] = '-';
    rs_hex_encode(&ctx->flags, 1, buf + 53);
}
