/*
 * Spans, identifiers, sampling and the OTLP/HTTP JSON encoding, for both programs.
 *
 * DESIGN: a span is a fixed-size struct the caller keeps on its stack (a worker's, the
 * producer's main thread's); nothing here allocates until a batch is encoded, and nothing
 * here holds state, so every function is safe on any thread. The batch processor
 * (trace_export.c) copies finished sampled spans into its buffer, which is why spans carry
 * their texts inline rather than pointing at entries that are freed right after handling.
 * Identifiers come from getrandom(2): the kernel's CSPRNG is fast, needs no per-thread seed,
 * and the W3C recommendation asks for random trace ids. The encoding uses jansson, which the
 * project already links, so escaping and UTF-8 validity are its problem, not ours.
 */

#include "trace.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"

bool rs_trace_should_sample(double ratio, const rs_trace_context_t *parent,
                            const uint8_t trace_id[16])
{
    if (parent != NULL)
        return (parent->flags & RS_TRACE_FLAG_SAMPLED) != 0;
    if (ratio >= 1.0)
        return true;
    if (ratio <= 0.0)
        return false;
    uint64_t low = 0;
    for (int i = 8; i < 16; i++)
        low = low << 8 | trace_id[i];
    /* 2^64 as a double is exact; ratio < 1 keeps the bound below 2^64. */
    uint64_t bound = (uint64_t)(ratio * 18446744073709551616.0);
    return low < bound;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

/* Fills `b` with random bytes, never all zero. Returns 0 or -1. */
static int random_id(uint8_t *b, size_t n)
{
    do {
        size_t got = 0;
        while (got < n) {
            ssize_t r = getrandom(b + got, n - got, 0);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            got += (size_t)r;
        }
    } while (all_zero(b, n));
    return 0;
}

/* Copies `src` into `dst` (size `size`), cutting at a UTF-8 character boundary. */
static void copy_text(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int rs_span_start(rs_span_t *s, const char *name, rs_span_kind_t kind,
                  const rs_trace_context_t *parent, double ratio)
{
    memset(s, 0, sizeof(*s));
    if (parent != NULL) {
        memcpy(s->ctx.trace_id, parent->trace_id, sizeof(s->ctx.trace_id));
        memcpy(s->parent_span_id, parent->span_id, sizeof(s->parent_span_id));
        s->has_parent = true;
    } else if (random_id(s->ctx.trace_id, sizeof(s->ctx.trace_id)) != 0) {
        return -1;
    }
    if (random_id(s->ctx.span_id, sizeof(s->ctx.span_id)) != 0)
        return -1;
    s->ctx.flags =
        rs_trace_should_sample(ratio, parent, s->ctx.trace_id) ? RS_TRACE_FLAG_SAMPLED : 0;
    copy_text(s->name, sizeof(s->name), name);
    s->kind = kind;
    s->start_ns = rs_clock_realtime_ns();
    return 0;
}

static rs_span_attr_t *add_attr(rs_span_t *s, const char *key)
{
    if (s->nattrs >= RS_SPAN_MAX_ATTRS)
        return NULL;
    rs_span_attr_t *a = &s->attrs[s->nattrs++];
    memset(a, 0, sizeof(*a));
    copy_text(a->key, sizeof(a->key), key);
    return a;
}

void rs_span_set_str(rs_span_t *s, const char *key, const char *value)
{
    rs_span_attr_t *a = add_attr(s, key);
    if (a != NULL)
        copy_text(a->str_value, sizeof(a->str_value), value);
}

void rs_span_set_int(rs_span_t *s, const char *key, int64_t value)
{
    rs_span_attr_t *a = add_attr(s, key);
    if (a != NULL) {
        a->is_int = true;
        a->int_value = value;
    }
}

void rs_span_set_status(rs_span_t *s, rs_span_status_t status, const char *message)
{
    s->status = status;
    copy_text(s->status_message, sizeof(s->status_message),
              status == RS_SPAN_STATUS_ERROR && message != NULL ? message : "");
}

void rs_span_end(rs_span_t *s)
{
    s->end_ns = rs_clock_realtime_ns();
}

bool rs_span_sampled(const rs_span_t *s)
{
    return (s->ctx.flags & RS_TRACE_FLAG_SAMPLED) != 0;
}

/* --- OTLP JSON ---------------------------------------------------------------------------- */

/* Appends {"key":k,"value":{"stringValue":v}} to `arr`. Returns 0 or -1. */
static int put_str_attr(json_t *arr, const char *key, const char *value)
{
    json_t *a = json_pack("{s:s, s:{s:s}}", "key", key, "value", "stringValue", value);
    return a == NULL ? -1 : json_array_append_new(arr, a);
}

static int put_int_attr(json_t *arr, const char *key, int64_t value)
{
    char text[24];
    snprintf(text, sizeof(text), "%" PRId64, value);
    json_t *a = json_pack("{s:s, s:{s:s}}", "key", key, "value", "intValue", text);
    return a == NULL ? -1 : json_array_append_new(arr, a);
}

static json_t *hex(const uint8_t *b, size_t n)
{
    char text[33];
    rs_hex_encode(b, n, text);
    return json_string(text);
}

static json_t *decimal(int64_t ns)
{
    char text[24];
    snprintf(text, sizeof(text), "%" PRId64, ns < 0 ? 0 : ns);
    return json_string(text);
}

static json_t *span_json(const rs_span_t *s)
{
    json_t *attrs = json_array();
    if (attrs == NULL)
        return NULL;
    for (size_t i = 0; i < s->nattrs; i++) {
        const rs_span_attr_t *a = &s->attrs[i];
        int rc = a->is_int ? put_int_attr(attrs, a->key, a->int_value)
                           : put_str_attr(attrs, a->key, a->str_value);
        if (rc != 0) {
            json_decref(attrs);
            return NULL;
        }
    }
    json_t *status =
        s->status == RS_SPAN_STATUS_ERROR
            ? json_pack("{s:i, s:s}", "code", (int)s->status, "message", s->status_message)
            : json_pack("{s:i}", "code", (int)s->status);
    json_t *o =
        json_pack("{s:o, s:o, s:s, s:i, s:o, s:o, s:o, s:o}", "traceId", hex(s->ctx.trace_id, 16),
                  "spanId", hex(s->ctx.span_id, 8), "name", s->name, "kind", (int)s->kind,
                  "startTimeUnixNano", decimal(s->start_ns), "endTimeUnixNano", decimal(s->end_ns),
                  "attributes", attrs, "status", status);
    if (o != NULL && s->has_parent &&
        json_object_set_new(o, "parentSpanId", hex(s->parent_span_id, 8)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *rs_trace_otlp_json(const rs_trace_resource_t *res, const rs_span_t *spans, size_t n,
                         size_t *len)
{
    json_t *rattrs = json_array();
    json_t *list = json_array();
    if (rattrs == NULL || list == NULL || put_str_attr(rattrs, "service.name", res->service_name) ||
        put_str_attr(rattrs, "service.version", res->service_version) ||
        put_str_attr(rattrs, "host.name", res->host_name))
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(list, span_json(&spans[i])) != 0)
            goto fail;
    json_t *req = json_pack("{s:[{s:{s:o}, s:[{s:{s:s, s:s}, s:o}]}]}", "resourceSpans", "resource",
                            "attributes", rattrs, "scopeSpans", "scope", "name", "redstream",
                            "version", res->service_version, "spans", list);
    if (req == NULL)
        return NULL; /* json_pack's "o" consumed both arrays, even on failure */
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (text != NULL)
        *len = strlen(text);
    return text;
fail:
    json_decref(rattrs);
    json_decref(list);
    return NULL;
}
