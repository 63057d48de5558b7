#ifndef RS_METRICS_H
#define RS_METRICS_H

/*
 * The consumer's numbers as the HTTP server shows them: a snapshot struct filled from the
 * live objects (lock-free reads of their atomics), and pure functions that render it in the
 * Prometheus text exposition format 0.0.4 (/metrics) or as the JSON stream overview
 * (/streams). Rendering does no I/O and reads no clock, so the unit tests drive it with
 * hand-made snapshots.
 *
 * Every text that comes from outside (stream, group and consumer names) is made valid UTF-8
 * on output (an invalid byte becomes U+FFFD) and escaped for its format. The Redis password
 * is never part of a snapshot.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"
#include "latency.h"
#include "stream_info.h"

/* The Content-Type of rs_metrics_prometheus()'s output. */
#define RS_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* One configured stream, as this process sees it. */
typedef struct {
    const char *name;      /* borrowed */
    const char *handler;   /* the handler kind's name ("log"); borrowed */
    const char *ordering;  /* "none", "stream" or "key" (rs_ordering_name()); borrowed */
    const char *key_field; /* with ordering "key", the key's field; borrowed; else NULL */
    uint64_t received, succeeded, retried, failed, dead_lettered, acked, deleted, claimed;
    int64_t inflight;
    bool reader_connected; /* the reader holds a connection and its group exists */
    rs_histogram_snapshot_t handler_duration;
} rs_metrics_stream_t;

typedef struct {
    const char *version;  /* the program's version, for redstream_build_info */
    const char *group;    /* group.name: whose lag /metrics reports */
    const char *consumer; /* group.consumer */

    uint64_t redis_reconnects; /* over every connection of the process */
    uint64_t queue_depth, queue_capacity;
    uint64_t queue_lanes, queue_lane_waiting; /* ordering lanes, entries waiting behind one */
    uint64_t workers, workers_busy;
    uint64_t retry_waiting;

    bool has_tracing; /* tracing is on: the trace_* counters below are rendered */
    uint64_t trace_spans_exported, trace_spans_dropped;

    bool has_process; /* the process_* values below were read */
    uint64_t resident_memory_bytes;
    uint64_t open_fds;
    double start_time_seconds; /* since the Unix epoch */

    /* End-to-end latency (now - the producer's --e2e send time) of the entries that carried
     * one, over every stream; NULL or empty when none did (the family is then left out).
     * Borrowed. */
    const rs_latency_t *e2e;

    size_t nstreams;
    rs_metrics_stream_t *streams; /* nstreams, in configuration order; borrowed */

    /* What Redis reported (XLEN, XINFO), or NULL when it could not be asked: then the lag
     * samples are left out. Borrowed. Its streams are in the same order as `streams`. */
    const rs_streams_info_t *redis;
} rs_metrics_t;

/* Renders `m` in the Prometheus text exposition format 0.0.4: HELP and TYPE lines for every
 * family, per-stream counters and gauges labelled stream="...", the handler-duration
 * histogram, the span exporter's counters (when has_tracing), process metrics (when
 * has_process) and redstream_build_info. The names are
 * listed in README.md. Returns a NUL-terminated heap string with its length in `*len` (caller
 * frees with free()), or NULL when out of memory. Pure; any thread. */
char *rs_metrics_prometheus(const rs_metrics_t *m, size_t *len);

/* Renders the /streams overview as one JSON object: the group and consumer names, the
 * version, and per stream its name, handler, length, groups (name, pending, consumers,
 * last_delivered_id, entries_read, lag; the last two null when Redis did not say) with their
 * consumers (name, pending, idle_ms), any per-stream error Redis gave, and this process's own
 * counters under "process". `m->redis` must be set. Returns a heap string and its length
 * (caller frees with free()), or NULL when out of memory. Pure; any thread. */
char *rs_metrics_streams_json(const rs_metrics_t *m, size_t *len);

/* Renders {"error": message} (message made valid UTF-8). Returns a heap string and its length
 * (caller frees with free()), or NULL when out of memory. Pure; any thread. */
char *rs_metrics_error_json(const char *message, size_t *len);

#endif
