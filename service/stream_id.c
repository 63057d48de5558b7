/*
 * Redis stream entry ids: parsing, formatting, ordering, and the restart point of a consumer
 * group that has to be created again.
 *
 * DESIGN: an id is a pair of unsigned 64-bit numbers ordered lexicographically, exactly as
 * Redis orders them; everything here is pure arithmetic on that pair, so the reader's choice
 * of a restart point (see stream_id.h) is unit-tested without a server. Parsing is strict:
 * ids come from Redis replies and from the configuration, and a malformed one must be
 * refused, not read as 0.
 */

#include "stream_id.h"

#include <stdio.h>

/* Parses an unsigned decimal of `len` bytes (at least one digit, nothing else). */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int rs_stream_id_parse(const char *s, size_t len, rs_stream_id_t *out)
{
    if (s == NULL)
        return -1;
    size_t dash = 0;
    while (dash < len && s[dash] != '-')
        dash++;
    rs_stream_id_t id = {0, 0};
    if (parse_u64(s, dash, &id.ms) != 0)
        return -1;
    if (dash < len && parse_u64(s + dash + 1, len - dash - 1, &id.seq) != 0)
        return -1;
    *out = id;
    return 0;
}

void rs_stream_id_format(rs_stream_id_t id, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%llu-%llu", (unsigned long long)id.ms, (unsigned long long)id.seq);
}

int rs_stream_id_compare(rs_stream_id_t a, rs_stream_id_t b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq)
        return a.seq < b.seq ? -1 : 1;
    return 0;
}

rs_stream_id_t rs_stream_id_restart_point(rs_stream_id_t last_delivered, bool has_pending,
                                          rs_stream_id_t first_pending)
{
    if (!has_pending || rs_stream_id_compare(first_pending, last_delivered) > 0)
        return last_delivered; /* a pending id past last-delivered-id is not possible; be safe */
    /* The id just before first_pending. 0-0 is never an entry's id, so it has none: then
     * 0-0 itself, which delivers everything. */
    rs_stream_id_t before = first_pending;
    if (before.seq > 0) {
        before.seq--;
    } else if (before.ms > 0) {
        before.ms--;
        before.seq = UINT64_MAX;
    }
    return before;
}
