/*
 * The Go demo's entry format, shared by the producer and the tests.
 *
 * DESIGN: the producer publishes one entry per interval, or many thousands per second in
 * load mode, so building an entry allocates nothing: the values are formatted into fixed
 * buffers inside rs_demo_entry_t and the XADD arguments point into them.
 */

#include "message.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int rs_demo_entry_init(rs_demo_entry_t *e, uint64_t seq, const char *type, time_t now)
{
    snprintf(e->message, sizeof(e->message), "Message #%" PRIu64, seq);
    e->type = type;
    e->traceparent[0] = '\0';
    return rs_clock_format_rfc3339(now, e->timestamp, sizeof(e->timestamp)) < 0 ? -1 : 0;
}

int rs_xadd_argv(const char *stream, uint64_t maxlen, char maxlen_buf[24], const rs_demo_entry_t *e,
                 const char **argv, size_t *argvlen)
{
    int argc = 0;
#define PUSH(s, n)                                                                                 \
    do {                                                                                           \
        argv[argc] = (s);                                                                          \
        argvlen[argc] = (n);                                                                       \
        argc++;                                                                                    \
    } while (0)
#define PUSH_STR(s) PUSH((s), strlen(s))

    PUSH_STR("XADD");
    PUSH_STR(stream);
    if (maxlen > 0) {
        int n = snprintf(maxlen_buf, 24, "%" PRIu64, maxlen);
        PUSH_STR("MAXLEN");
        PUSH_STR("~");
        PUSH(maxlen_buf, (size_t)n);
    }
    PUSH_STR("*");
    PUSH_STR(RS_FIELD_MESSAGE);
    PUSH_STR(e->message);
    PUSH_STR(RS_FIELD_TYPE);
    PUSH_STR(e->type);
    PUSH_STR(RS_FIELD_TIMESTAMP);
    PUSH_STR(e->timestamp);
    if (e->traceparent[0] != '\0') {
        PUSH_STR(RS_FIELD_TRACEPARENT);
        PUSH_STR(e->traceparent);
    }
#undef PUSH_STR
#undef PUSH
    return argc;
}
