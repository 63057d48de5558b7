/*
 * Rendering the consumer's numbers: Prometheus text for /metrics and the JSON overview for
 * /streams, from a snapshot the caller filled.
 *
 * DESIGN: pure functions over rs_metrics_t. They allocate their output and nothing else
 * happens: no clock, no I/O, no shared state, so the HTTP server can call them from any of
 * its threads and the unit tests can check the exact text. The Prometheus families are
 * described by tables (name, help, which field), so a family cannot be written without its
 * HELP and TYPE lines. The exposition format (0.0.4) wants label values escaped (backslash,
 * double quote, line feed) and UTF-8; names from the configuration or from Redis may be any
 * bytes, so invalid sequences are replaced by U+FFFD before escaping, in the JSON output too
 * (jansson refuses invalid UTF-8 outright). That rule and the JSON builders are json.c's,
 * shared with the other renderers.
 */

#include "metrics.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------------------------ */
/* Prometheus text.                                                                            */

/* Writes a label value: valid UTF-8, with \, " and line feed escaped. */
static void put_label_char(void *arg, const char *p, size_t n)
{
    FILE *f = arg;
    if (n == 1 && p[0] == '\\')
        fputs("\\\\", f);
    else if (n == 1 && p[0] == '"')
        fputs("\\\"", f);
    else if (n == 1 && p[0] == '\n')
        fputs("\\n", f);
    else
        fwrite(p, 1, n, f);
}

static void put_label_value(FILE *f, const char *s)
{
    rs_json_utf8_each(s, strlen(s), put_label_char, f);
}

static void put_family(FILE *f, const char *name, const char *type, const char *help)
{
    /* Help texts are ours and hold neither backslashes nor line feeds. */
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_stream_sample(FILE *f, const char *name, const char *stream, uint64_t value)
{
    fprintf(f, "%s{stream=\"", name);
    put_label_value(f, stream);
    fprintf(f, "\"} %" PRIu64 "\n", value);
}

/* Nanoseconds as exact decimal seconds ("1.500000000"). */
static void put_seconds(FILE *f, uint64_t ns)
{
    fprintf(f, "%" PRIu64 ".%09" PRIu64, ns / 1000000000u, ns % 1000000000u);
}

typedef struct {
    const char *name;
    const char *type;
    const char *help;
    const char *json_key; /* the same counter in /streams' "process" object */
    size_t offset;        /* of a uint64_t in rs_metrics_stream_t */
} stream_family_t;

static const stream_family_t stream_counters[] = {
    {"redstream_messages_received_total", "counter",
     "Entries read from Redis: new, re-read after a reconnection, or claimed.", "received",
     offsetof(rs_metrics_stream_t, received)},
    {"redstream_messages_succeeded_total", "counter", "Entries whose handler succeeded.",
     "succeeded", offsetof(rs_metrics_stream_t, succeeded)},
    {"redstream_messages_retried_total", "counter",
     "Retryable handler failures scheduled for another delivery.", "retried",
     offsetof(rs_metrics_stream_t, retried)},
    {"redstream_messages_failed_total", "counter", "Handler failures, retryable or not.", "failed",
     offsetof(rs_metrics_stream_t, failed)},
    {"redstream_messages_dead_lettered_total", "counter",
     "Entries moved to the dead-letter stream.", "dead_lettered",
     offsetof(rs_metrics_stream_t, dead_lettered)},
    {"redstream_messages_acked_total", "counter", "Entries acknowledged in Redis.", "acked",
     offsetof(rs_metrics_stream_t, acked)},
    {"redstream_messages_claimed_total", "counter",
     "Entries taken over from idle consumers (XAUTOCLAIM).", "claimed",
     offsetof(rs_metrics_stream_t, claimed)},
    {"redstream_messages_deleted_total", "counter",
     "Pending entries found deleted from the stream, acknowledged without handling.", "deleted",
     offsetof(rs_metrics_stream_t, deleted)},
};

typedef struct {
    const char *name;
    const char *type;
    const char *help;
    size_t offset; /* of a uint64_t in rs_metrics_t */
} process_family_t;

static const process_family_t process_gauges[] = {
    {"redstream_redis_reconnects_total", "counter",
     "Connections to Redis made again after a connection was lost, over every connection of "
     "the process.",
     offsetof(rs_metrics_t, redis_reconnects)},
    {"redstream_queue_depth", "gauge", "Entries waiting in the work queue.",
     offsetof(rs_metrics_t, queue_depth)},
    {"redstream_queue_capacity", "gauge", "Capacity of the work queue (workers.queue_capacity).",
     offsetof(rs_metrics_t, queue_capacity)},
    {"redstream_queue_lanes", "gauge",
     "Ordering lanes (keys of streams with ordering \"key\", streams with \"stream\") holding "
     "an entry now.",
     offsetof(rs_metrics_t, queue_lanes)},
    {"redstream_queue_lane_waiting", "gauge",
     "Queued entries waiting for an earlier entry of their key (or stream) to be handled.",
     offsetof(rs_metrics_t, queue_lane_waiting)},
    {"redstream_workers", "gauge", "Worker threads (workers.threads).",
     offsetof(rs_metrics_t, workers)},
    {"redstream_workers_busy", "gauge", "Worker threads running a handler now.",
     offsetof(rs_metrics_t, workers_busy)},
    {"redstream_retry_waiting", "gauge", "Failed entries waiting for their retry.",
     offsetof(rs_metrics_t, retry_waiting)},
};

static uint64_t field_u64(const void *base, size_t offset)
{
    uint64_t v;
    memcpy(&v, (const char *)base + offset, sizeof(v));
    return v;
}

/* The lag Redis reported for our group on stream i, if any. */
/* Our group in Redis's answer about stream `i`, or NULL (Redis not asked, or no such group). */
static const rs_group_info_t *our_group(const rs_metrics_t *m, size_t i)
{
    if (m->redis == NULL || i >= m->redis->nstreams || m->group == NULL)
        return NULL;
    const rs_stream_info_t *s = &m->redis->streams[i];
    for (size_t j = 0; j < s->ngroups; j++) {
        const rs_group_info_t *g = &s->groups[j];
        if (g->name.len == strlen(m->group) && memcmp(g->name.str, m->group, g->name.len) == 0)
            return g;
    }
    return NULL;
}

static bool group_lag(const rs_metrics_t *m, size_t i, long long *lag)
{
    const rs_group_info_t *g = our_group(m, i);
    if (g == NULL)
        return false;
    *lag = g->lag;
    return g->has_lag && g->lag >= 0;
}

/* One family per line of XINFO CONSUMERS: every consumer of our group on every stream, this
 * process or another instance (their pending entries are what a dead instance leaves
 * behind). The families are left out when Redis gave no consumer. */
static void put_group_consumers(FILE *f, const rs_metrics_t *m)
{
    static const struct {
        const char *name, *help;
        bool seconds;
    } families[] = {
        {"redstream_group_consumer_pending_messages",
         "Entries delivered to this consumer of the group and not yet acknowledged (XINFO "
         "CONSUMERS), for every consumer of the group, in this process or another.",
         false},
        {"redstream_group_consumer_idle_seconds",
         "Time since this consumer of the group last read or claimed (XINFO CONSUMERS idle).",
         true},
    };
    for (size_t k = 0; k < ARRAY_LEN(families); k++) {
        bool any = false;
        for (size_t i = 0; i < m->nstreams; i++) {
            const rs_group_info_t *g = our_group(m, i);
            for (size_t c = 0; g != NULL && c < g->nconsumer_list; c++) {
                const rs_consumer_info_t *ci = &g->consumer_list[c];
                if (!any)
                    put_family(f, families[k].name, "gauge", families[k].help);
                any = true;
                fprintf(f, "%s{stream=\"", families[k].name);
                put_label_value(f, m->streams[i].name);
                fputs("\",consumer=\"", f);
                rs_json_utf8_each(ci->name.str, ci->name.len, put_label_char, f);
                long long v = families[k].seconds ? ci->idle_ms : ci->pending;
                v = v > 0 ? v : 0;
                if (families[k].seconds)
                    fprintf(f, "\"} %lld.%03lld\n", v / 1000, v % 1000);
                else
                    fprintf(f, "\"} %lld\n", v);
            }
        }
    }
}

static void put_histograms(FILE *f, const rs_metrics_t *m)
{
    static const char name[] = "redstream_handler_duration_seconds";
    put_family(f, name, "histogram", "Time the stream's handler took per entry.");
    for (size_t i = 0; i < m->nstreams; i++) {
        const rs_metrics_stream_t *s = &m->streams[i];
        const rs_histogram_snapshot_t *h = &s->handler_duration;
        for (size_t b = 0; b <= RS_HISTOGRAM_BOUNDS; b++) {
            fprintf(f, "%s_bucket{stream=\"", name);
            put_label_value(f, s->name);
            if (b < RS_HISTOGRAM_BOUNDS)
                fprintf(f, "\",le=\"%g\"} %" PRIu64 "\n", (double)rs_histogram_bounds_ns[b] / 1e9,
                        h->cumulative[b]);
            else
                fprintf(f, "\",le=\"+Inf\"} %" PRIu64 "\n", h->cumulative[b]);
        }
        fprintf(f, "%s_sum{stream=\"", name);
        put_label_value(f, s->name);
        fprintf(f, "\"} ");
        put_seconds(f, h->sum_ns);
        fprintf(f, "\n");
        put_stream_sample(f, "redstream_handler_duration_seconds_count", s->name, h->count);
    }
}

/* Bucket bounds of the end-to-end latency histogram: from loopback's tens of microseconds to
 * a backlog's seconds. */
static const int64_t e2e_bounds_ns[] = {
    50000,     100000,     250000,     500000,     1000000,     2500000,
    5000000,   10000000,   25000000,   50000000,   100000000,   250000000,
    500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};

static void put_e2e(FILE *f, const rs_latency_t *h)
{
    static const char name[] = "redstream_e2e_latency_seconds";
    uint64_t count = h != NULL ? rs_latency_count(h) : 0;
    if (count == 0)
        return;
    put_family(f, name, "histogram",
               "Time from the producer's send (the redstream.sent_ns field, producer --e2e) to "
               "the end of the handler, for entries carrying it.");
    for (size_t b = 0; b < ARRAY_LEN(e2e_bounds_ns); b++) {
        uint64_t le = rs_latency_count_le(h, e2e_bounds_ns[b]);
        fprintf(f, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, (double)e2e_bounds_ns[b] / 1e9,
                le < count ? le : count);
    }
    fprintf(f, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, count);
    fprintf(f, "%s_sum %.9f\n", name, rs_latency_mean(h) * (double)count / 1e9);
    fprintf(f, "%s_count %" PRIu64 "\n", name, count);
}

char *rs_metrics_prometheus(const rs_metrics_t *m, size_t *len)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (f == NULL)
        return NULL;

    put_family(f, "redstream_build_info", "gauge",
               "The version of redstream-consumer running; the value is always 1.");
    fprintf(f, "redstream_build_info{version=\"");
    put_label_value(f, m->version != NULL ? m->version : "");
    fprintf(f, "\"} 1\n");

    for (size_t k = 0; k < ARRAY_LEN(stream_counters); k++) {
        const stream_family_t *fam = &stream_counters[k];
        put_family(f, fam->name, fam->type, fam->help);
        for (size_t i = 0; i < m->nstreams; i++)
            put_stream_sample(f, fam->name, m->streams[i].name,
                              field_u64(&m->streams[i], fam->offset));
    }

    put_family(f, "redstream_inflight_messages", "gauge",
               "Entries read from Redis and not yet settled (acknowledged, dead-lettered or "
               "left pending).");
    for (size_t i = 0; i < m->nstreams; i++)
        put_stream_sample(f, "redstream_inflight_messages", m->streams[i].name,
                          m->streams[i].inflight > 0 ? (uint64_t)m->streams[i].inflight : 0);

    put_family(f, "redstream_reader_connected", "gauge",
               "1 while the stream's reader is connected to Redis and its group exists.");
    for (size_t i = 0; i < m->nstreams; i++)
        put_stream_sample(f, "redstream_reader_connected", m->streams[i].name,
                          m->streams[i].reader_connected ? 1 : 0);

    /* Lag only for the streams Redis answered about; the family only when there is one. */
    bool any_lag = false;
    for (size_t i = 0; i < m->nstreams; i++) {
        long long lag;
        if (!group_lag(m, i, &lag))
            continue;
        if (!any_lag)
            put_family(f, "redstream_consumer_lag", "gauge",
                       "Entries of the stream not yet delivered to the consumer group (XINFO "
                       "GROUPS lag).");
        any_lag = true;
        put_stream_sample(f, "redstream_consumer_lag", m->streams[i].name, (uint64_t)lag);
    }
    put_group_consumers(f, m);

    for (size_t k = 0; k < ARRAY_LEN(process_gauges); k++) {
        const process_family_t *fam = &process_gauges[k];
        put_family(f, fam->name, fam->type, fam->help);
        fprintf(f, "%s %" PRIu64 "\n", fam->name, field_u64(m, fam->offset));
    }

    put_histograms(f, m);
    put_e2e(f, m->e2e);

    if (m->has_tracing) {
        put_family(f, "redstream_trace_spans_exported_total", "counter",
                   "Spans the OTLP collector accepted.");
        fprintf(f, "redstream_trace_spans_exported_total %" PRIu64 "\n", m->trace_spans_exported);
        put_family(f, "redstream_trace_spans_dropped_total", "counter",
                   "Spans lost: the buffer was full, the collector rejected them, or they were "
                   "unsent at shutdown.");
        fprintf(f, "redstream_trace_spans_dropped_total %" PRIu64 "\n", m->trace_spans_dropped);
    }

    if (m->has_process) {
        put_family(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        fprintf(f, "process_resident_memory_bytes %" PRIu64 "\n", m->resident_memory_bytes);
        put_family(f, "process_open_fds", "gauge", "Number of open file descriptors.");
        fprintf(f, "process_open_fds %" PRIu64 "\n", m->open_fds);
        put_family(f, "process_start_time_seconds", "gauge",
                   "Start time of the process since the Unix epoch in seconds.");
        fprintf(f, "process_start_time_seconds %.2f\n", m->start_time_seconds);
    }

    if (ferror(f)) {
        fclose(f);
        free(text);
        return NULL;
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    *len = size;
    return text;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON.                                                                                       */

/* A JSON string of `s` made valid UTF-8; NULL (never the case in the consumer's snapshot) is
 * written as "", so /streams keeps a string where a name belongs. */
static json_t *json_cstr(const char *s)
{
    return rs_json_cstr(s != NULL ? s : "");
}

static json_t *process_json(const rs_metrics_stream_t *s, int *bad)
{
    json_t *p = json_object();
    if (p == NULL) {
        (*bad)++;
        return NULL;
    }
    rs_json_set(p, "handler", json_cstr(s->handler), bad);
    rs_json_set(p, "ordering", json_cstr(s->ordering), bad);
    if (s->key_field != NULL)
        rs_json_set(p, "key_field", rs_json_cstr(s->key_field), bad);
    rs_json_set(p, "reader_connected", json_boolean(s->reader_connected), bad);
    rs_json_set(p, "inflight", json_integer(s->inflight), bad);
    for (size_t k = 0; k < ARRAY_LEN(stream_counters); k++) {
        rs_json_set(p, stream_counters[k].json_key,
                    rs_json_u64(field_u64(s, stream_counters[k].offset)), bad);
    }
    const rs_histogram_snapshot_t *h = &s->handler_duration;
    rs_json_set(p, "handler_calls", rs_json_u64(h->count), bad);
    rs_json_set(p, "handler_seconds", json_real((double)h->sum_ns / 1e9), bad);
    return p;
}

static json_t *group_json(const rs_group_info_t *g, int *bad)
{
    json_t *o = json_object();
    json_t *consumers = json_array();
    if (o == NULL || consumers == NULL) {
        json_decref(o);
        json_decref(consumers);
        (*bad)++;
        return NULL;
    }
    rs_json_set(o, "name", rs_json_text(g->name.str, g->name.len), bad);
    rs_json_set(o, "pending", json_integer(g->pending), bad);
    rs_json_set(o, "last_delivered_id",
                rs_json_text(g->last_delivered_id.str, g->last_delivered_id.len), bad);
    rs_json_set(o, "entries_read",
                g->has_entries_read ? json_integer(g->entries_read) : json_null(), bad);
    rs_json_set(o, "lag", g->has_lag ? json_integer(g->lag) : json_null(), bad);
    for (size_t k = 0; k < g->nconsumer_list; k++) {
        const rs_consumer_info_t *c = &g->consumer_list[k];
        json_t *co = json_object();
        if (co == NULL) {
            (*bad)++;
            continue;
        }
        rs_json_set(co, "name", rs_json_text(c->name.str, c->name.len), bad);
        rs_json_set(co, "pending", json_integer(c->pending), bad);
        rs_json_set(co, "idle_ms", json_integer(c->idle_ms), bad);
        rs_json_append(consumers, co, bad);
    }
    rs_json_set(o, "consumers", consumers, bad);
    return o;
}

char *rs_metrics_streams_json(const rs_metrics_t *m, size_t *len)
{
    int bad = 0;
    json_t *root = json_object();
    json_t *streams = json_array();
    if (root == NULL || streams == NULL) {
        json_decref(root);
        json_decref(streams);
        return NULL;
    }
    rs_json_set(root, "version", json_cstr(m->version), &bad);
    rs_json_set(root, "group", json_cstr(m->group), &bad);
    rs_json_set(root, "consumer", json_cstr(m->consumer), &bad);
    for (size_t i = 0; i < m->nstreams; i++) {
        const rs_metrics_stream_t *ms = &m->streams[i];
        const rs_stream_info_t *ri =
            m->redis != NULL && i < m->redis->nstreams ? &m->redis->streams[i] : NULL;
        json_t *s = json_object();
        json_t *groups = json_array();
        if (s == NULL || groups == NULL) {
            json_decref(s);
            json_decref(groups);
            bad++;
            continue;
        }
        rs_json_set(s, "name", json_cstr(ms->name), &bad);
        if (ri != NULL) {
            rs_json_set(s, "exists", json_boolean(ri->exists), &bad);
            rs_json_set(s, "length", json_integer(ri->length), &bad);
            if (ri->error != NULL)
                rs_json_set(s, "error", json_cstr(ri->error), &bad);
            for (size_t j = 0; j < ri->ngroups; j++)
                rs_json_append(groups, group_json(&ri->groups[j], &bad), &bad);
        }
        rs_json_set(s, "groups", groups, &bad);
        rs_json_set(s, "process", process_json(ms, &bad), &bad);
        rs_json_append(streams, s, &bad);
    }
    rs_json_set(root, "streams", streams, &bad);
    return rs_json_finish(root, bad, JSON_INDENT(2), true, len);
}

char *rs_metrics_error_json(const char *message, size_t *len)
{
    int bad = 0;
    json_t *root = json_object();
    if (root == NULL)
        return NULL;
    rs_json_set(root, "error", json_cstr(message), &bad);
    return rs_json_finish(root, bad, JSON_INDENT(2), true, len);
}
