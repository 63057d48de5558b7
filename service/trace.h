#ifndef RS_TRACE_H
#define RS_TRACE_H

/*
 * Tracing without an OpenTelemetry SDK: a span is a plain struct with fixed-size storage
 * (no allocation on the hot path), identifiers come from getrandom(2), a parent-based ratio
 * sampler decides whether a span is recorded, and a batch of finished spans is encoded as an
 * OTLP/HTTP JSON ExportTraceServiceRequest. Exporting is trace_export.h's job.
 *
 * The producer makes a PRODUCER span per published entry and writes its context into the
 * entry as a W3C `traceparent` field; the consumer makes a CONSUMER span per handled entry,
 * a child of that context when the field is valid.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "traceparent.h"

/* OTLP's Span.SpanKind values. */
typedef enum {
    RS_SPAN_KIND_INTERNAL = 1,
    RS_SPAN_KIND_PRODUCER = 4,
    RS_SPAN_KIND_CONSUMER = 5,
} rs_span_kind_t;

/* OTLP's Status.StatusCode values. */
typedef enum {
    RS_SPAN_STATUS_UNSET = 0,
    RS_SPAN_STATUS_OK = 1,
    RS_SPAN_STATUS_ERROR = 2,
} rs_span_status_t;

#define RS_SPAN_MAX_ATTRS 8
#define RS_SPAN_KEY_MAX   48
#define RS_SPAN_TEXT_MAX  160

typedef struct {
    char key[RS_SPAN_KEY_MAX];
    bool is_int;
    int64_t int_value;
    char str_value[RS_SPAN_TEXT_MAX];
} rs_span_attr_t;

/* One span. Plain data: copying it copies everything it holds. Texts longer than their
 * storage are truncated (at a UTF-8 boundary, so the JSON stays valid). */
typedef struct {
    rs_trace_context_t ctx; /* this span's trace id, span id, and sampled flag */
    uint8_t parent_span_id[8];
    bool has_parent;
    char name[RS_SPAN_TEXT_MAX];
    rs_span_kind_t kind;
    int64_t start_ns, end_ns; /* CLOCK_REALTIME, nanoseconds since the Unix epoch */
    rs_span_status_t status;
    char status_message[RS_SPAN_TEXT_MAX];
    size_t nattrs;
    rs_span_attr_t attrs[RS_SPAN_MAX_ATTRS];
} rs_span_t;

/* The process that emits the spans: OTLP resource attributes and the scope's version. */
typedef struct {
    const char *service_name;    /* service.name; borrowed */
    const char *service_version; /* service.version and the scope's version; borrowed */
    const char *host_name;       /* host.name; borrowed */
} rs_trace_resource_t;

/* The sampling decision, parent-based with a trace-id ratio for roots: with a `parent`
 * (non-NULL, already validated), follows its sampled flag; without, samples when the trace
 * id's last 8 bytes, read as a big-endian uint64, are below ratio * 2^64 (OpenTelemetry's
 * TraceIdRatioBased), so ratio 0 never and ratio 1 always samples. Pure; any thread. */
bool rs_trace_should_sample(double ratio, const rs_trace_context_t *parent,
                            const uint8_t trace_id[16]);

/* Starts span `s` (overwriting it): a fresh span id, the parent's trace id (or a fresh one
 * when `parent` is NULL), the sampled flag from rs_trace_should_sample(), the start time now.
 * Identifiers are never all zero. Returns 0, or -1 when getrandom(2) fails (then the caller
 * does without a span). Never blocks once the kernel's pool is initialised; any thread. */
int rs_span_start(rs_span_t *s, const char *name, rs_span_kind_t kind,
                  const rs_trace_context_t *parent, double ratio);

/* Adds an attribute; silently ignored beyond RS_SPAN_MAX_ATTRS. `value` is copied. Pure. */
void rs_span_set_str(rs_span_t *s, const char *key, const char *value);
void rs_span_set_int(rs_span_t *s, const char *key, int64_t value);

/* Sets the status; `message` (may be NULL) is copied, and kept only for an error. Pure. */
void rs_span_set_status(rs_span_t *s, rs_span_status_t status, const char *message);

/* Records the end time now. Any thread. */
void rs_span_end(rs_span_t *s);

/* True when the span is to be recorded and exported (its sampled flag). Pure. */
bool rs_span_sampled(const rs_span_t *s);

/* Encodes `n` spans (n >= 1) as one OTLP/HTTP JSON ExportTraceServiceRequest:
 * {"resourceSpans":[{"resource":{"attributes":[...]},"scopeSpans":[{"scope":{"name":"redstream",
 * "version":...},"spans":[...]}]}]}, ids as lowercase hex, times as decimal strings, kind as the
 * OTLP enum number, int attributes as {"intValue":"<decimal>"}. Returns a heap string with its
 * length in *len (caller frees with free()), or NULL when out of memory. Pure; any thread
 * (jansson's hash seed must have been set before threads started: json_object_seed()). */
char *rs_trace_otlp_json(const rs_trace_resource_t *res, const rs_span_t *spans, size_t n,
                         size_t *len);

#endif
