#ifndef RS_TRACE_EXPORT_H
#define RS_TRACE_EXPORT_H

/*
 * The batch span processor and OTLP/HTTP exporter: finished spans are copied into a bounded
 * buffer; one thread, "rs-trace", sends them in batches as OTLP JSON to tracing.endpoint.
 * Callers never wait on the network: when the buffer is full, a span is dropped and counted.
 */

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "trace.h"

/* Spans the buffer holds while the collector is slow or away. */
#define RS_TRACE_BUFFER_SPANS 4096
/* Spans per request; a request is sent when this many wait, or every RS_TRACE_EXPORT_MS. */
#define RS_TRACE_BATCH_SPANS 512
#define RS_TRACE_EXPORT_MS   1000

typedef struct rs_trace_exporter rs_trace_exporter_t;

/* Builds an exporter for cfg->tracing (endpoint, service name) that reports `program_version`
 * (borrowed, static) as service.version; `log` and `cfg` are borrowed for its lifetime.
 * Allocates the buffer and the libcurl handle, starts no thread. curl_global_init() must have
 * run. Returns NULL with a message in `err`. Caller frees with rs_trace_exporter_free().
 * Main thread. */
rs_trace_exporter_t *rs_trace_exporter_new(const rs_config_t *cfg, const char *program_version,
                                           rs_logger_t *log, char *err, size_t errlen);

/* Starts the "rs-trace" thread, which owns the libcurl handle from then on. It inherits the
 * caller's signal mask. Returns 0, or -1 with a message in `err`. Main thread; once. */
int rs_trace_exporter_start(rs_trace_exporter_t *x, char *err, size_t errlen);

/* Queues a copy of `span` for export when it is sampled (an unsampled span is ignored).
 * Never blocks on the network: holds the buffer's mutex only for the copy, and drops (and
 * counts) the span when the buffer is full or the exporter is stopping. Any thread. */
void rs_trace_exporter_submit(rs_trace_exporter_t *x, const rs_span_t *span);

/* Spans dropped (buffer full, rejected by the collector, or unsent at shutdown) and spans
 * the collector accepted. Any thread; lock-free. */
uint64_t rs_trace_exporter_dropped(const rs_trace_exporter_t *x);
uint64_t rs_trace_exporter_exported(const rs_trace_exporter_t *x);

/* Flushes what is buffered until `deadline_ns` (CLOCK_MONOTONIC), then stops the thread and
 * joins it; what is still unsent then is counted as dropped. The join happens by the deadline
 * plus at most a moment (requests are given only the time left). No-op when not started.
 * Main thread; once. */
void rs_trace_exporter_stop(rs_trace_exporter_t *x, int64_t deadline_ns);

/* Frees the exporter; NULL is ignored. Only after rs_trace_exporter_stop() or when never
 * started. Main thread. */
void rs_trace_exporter_free(rs_trace_exporter_t *x);

#endif
