/* Unit tests for metrics.c: the Prometheus text and the /streams JSON, from hand-made
 * snapshots. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A snapshot of one stream with nothing counted. */
static rs_metrics_t one_stream(rs_metrics_stream_t *s, const char *name)
{
    memset(s, 0, sizeof(*s));
    s->name = name;
    s->handler = "log";
    rs_metrics_t m = {.version = "1.2.3", .group = "workers", .consumer = "c1"};
    m.nstreams = 1;
    m.streams = s;
    return m;
}

static char *render(const rs_metrics_t *m)
{
    size_t len = 0;
    char *text = rs_metrics_prometheus(m, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    return text;
}

/* Label values are escaped as the exposition format says (backslash, double quote, line
 * feed) and made valid UTF-8. */
static void metrics_escapes_label_values(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *label; /* as it must appear between the quotes */
    } cases[] = {
        {"events", "events"},                     /* plain */
        {"a\"b", "a\\\"b"},                       /* double quote */
        {"a\\b", "a\\\\b"},                       /* backslash */
        {"a\nb", "a\\nb"},                        /* line feed */
        {"\\n", "\\\\n"},                         /* a backslash then n is not a line feed */
        {"caf\xc3\xa9", "caf\xc3\xa9"},           /* valid UTF-8 passes through */
        {"x\xffy", "x\xef\xbf\xbdy"},             /* an invalid byte becomes U+FFFD */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"}, /* an overlong '/' is two invalid bytes */
        {"t\tab", "t\tab"},                       /* other control characters are left alone */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        rs_metrics_stream_t s;
        rs_metrics_t m = one_stream(&s, cases[i].name);
        s.received = 42;
        char *text = render(&m);
        char want[256];
        snprintf(want, sizeof(want), "\nredstream_messages_received_total{stream=\"%s\"} 42\n",
                 cases[i].label);
        if (strstr(text, want) == NULL)
            fail_msg("case %zu: no line %s in\n%s", i, want, text);
        free(text);
    }
}

/* Every histogram's buckets are cumulative, ordered, end with +Inf equal to _count, and the
 * sum is printed as exact seconds. */
static void metrics_histogram_is_cumulative(void **state)
{
    (void)state;
    rs_metrics_stream_t s;
    rs_metrics_t m = one_stream(&s, "events");
    rs_histogram_t h;
    rs_histogram_init(&h);
    static const int64_t ns[] = {100000, 600000, 600000, 30000000, 4000000000LL, 11000000000LL};
    for (size_t i = 0; i < ARRAY_LEN(ns); i++)
        rs_histogram_observe(&h, ns[i]);
    rs_histogram_read(&h, &s.handler_duration);
    char *text = render(&m);

    static const char *const le[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                     "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                     "1",      "2.5",   "5",      "10",    "+Inf"};
    static const unsigned want[] = {1, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5, 5, 6};
    const char *at = text;
    for (size_t b = 0; b < ARRAY_LEN(le); b++) {
        char line[160];
        snprintf(line, sizeof(line),
                 "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"%s\"} %u\n",
                 le[b], want[b]);
        const char *found = strstr(at, line);
        if (found == NULL)
            fail_msg("bucket %s: no line %s after the previous bucket in\n%s", le[b], line, text);
        at = found + strlen(line); /* in order */
    }
    assert_non_null(strstr(at, "redstream_handler_duration_seconds_sum{stream=\"events\"} "
                               "15.031300000\n"));
    assert_non_null(strstr(at, "redstream_handler_duration_seconds_count{stream=\"events\"} 6\n"));
    free(text);
}

/* The whole text for a small snapshot: families, HELP/TYPE lines, order, values. */
static void metrics_prometheus_golden(void **state)
{
    (void)state;
    rs_metrics_stream_t s;
    rs_metrics_t m = one_stream(&s, "events");
    s.received = 10, s.succeeded = 7, s.retried = 2, s.failed = 3, s.dead_lettered = 1;
    s.acked = 7, s.claimed = 4, s.deleted = 5, s.inflight = 2, s.reader_connected = true;
    rs_histogram_t h;
    rs_histogram_init(&h);
    rs_histogram_observe(&h, 1000000); /* le 0.001 */
    rs_histogram_read(&h, &s.handler_duration);
    m.redis_reconnects = 3, m.queue_depth = 4, m.queue_capacity = 64, m.workers = 8;
    m.workers_busy = 1, m.retry_waiting = 2, m.queue_lanes = 3, m.queue_lane_waiting = 5;
    m.has_process = true, m.resident_memory_bytes = 4096, m.open_fds = 9;
    m.start_time_seconds = 1700000000.5;
    /* Redis knows two groups; only ours ("workers") gives the lag. */
    rs_group_info_t groups[2] = {
        {.name = {"other", 5}, .has_lag = true, .lag = 99},
        {.name = {"workers", 7}, .has_lag = true, .lag = 5},
    };
    /* Every consumer of our group, another instance's too, with a name to escape. */
    rs_consumer_info_t consumers[2] = {
        {.name = {"c1", 2}, .pending = 3, .idle_ms = 1500},
        {.name = {"host\"2", 6}, .pending = 0, .idle_ms = 42},
    };
    groups[1].nconsumer_list = 2;
    groups[1].consumer_list = consumers;
    rs_stream_info_t si = {.name = "events", .exists = true, .ngroups = 2, .groups = groups};
    rs_streams_info_t info = {.nstreams = 1, .streams = &si};
    m.redis = &info;

    static const char want[] =
        "# HELP redstream_build_info The version of redstream-consumer running; the value is "
        "always 1.\n"
        "# TYPE redstream_build_info gauge\n"
        "redstream_build_info{version=\"1.2.3\"} 1\n"
        "# HELP redstream_messages_received_total Entries read from Redis: new, re-read after "
        "a reconnection, or claimed.\n"
        "# TYPE redstream_messages_received_total counter\n"
        "redstream_messages_received_total{stream=\"events\"} 10\n"
        "# HELP redstream_messages_succeeded_total Entries whose handler succeeded.\n"
        "# TYPE redstream_messages_succeeded_total counter\n"
        "redstream_messages_succeeded_total{stream=\"events\"} 7\n"
        "# HELP redstream_messages_retried_total Retryable handler failures scheduled for "
        "another delivery.\n"
        "# TYPE redstream_messages_retried_total counter\n"
        "redstream_messages_retried_total{stream=\"events\"} 2\n"
        "# HELP redstream_messages_failed_total Handler failures, retryable or not.\n"
        "# TYPE redstream_messages_failed_total counter\n"
        "redstream_messages_failed_total{stream=\"events\"} 3\n"
        "# HELP redstream_messages_dead_lettered_total Entries moved to the dead-letter "
        "stream.\n"
        "# TYPE redstream_messages_dead_lettered_total counter\n"
        "redstream_messages_dead_lettered_total{stream=\"events\"} 1\n"
        "# HELP redstream_messages_acked_total Entries acknowledged in Redis.\n"
        "# TYPE redstream_messages_acked_total counter\n"
        "redstream_messages_acked_total{stream=\"events\"} 7\n"
        "# HELP redstream_messages_claimed_total Entries taken over from idle consumers "
        "(XAUTOCLAIM).\n"
        "# TYPE redstream_messages_claimed_total counter\n"
        "redstream_messages_claimed_total{stream=\"events\"} 4\n"
        "# HELP redstream_messages_deleted_total Pending entries found deleted from the "
        "stream, acknowledged without handling.\n"
        "# TYPE redstream_messages_deleted_total counter\n"
        "redstream_messages_deleted_total{stream=\"events\"} 5\n"
        "# HELP redstream_inflight_messages Entries read from Redis and not yet settled "
        "(acknowledged, dead-lettered or left pending).\n"
        "# TYPE redstream_inflight_messages gauge\n"
        "redstream_inflight_messages{stream=\"events\"} 2\n"
        "# HELP redstream_reader_connected 1 while the stream's reader is connected to Redis "
        "and its group exists.\n"
        "# TYPE redstream_reader_connected gauge\n"
        "redstream_reader_connected{stream=\"events\"} 1\n"
        "# HELP redstream_consumer_lag Entries of the stream not yet delivered to the consumer "
        "group (XINFO GROUPS lag).\n"
        "# TYPE redstream_consumer_lag gauge\n"
        "redstream_consumer_lag{stream=\"events\"} 5\n"
        "# HELP redstream_group_consumer_pending_messages Entries delivered to this consumer of "
        "the group and not yet acknowledged (XINFO CONSUMERS), for every consumer of the group, "
        "in this process or another.\n"
        "# TYPE redstream_group_consumer_pending_messages gauge\n"
        "redstream_group_consumer_pending_messages{stream=\"events\",consumer=\"c1\"} 3\n"
        "redstream_group_consumer_pending_messages{stream=\"events\",consumer=\"host\\\"2\"} 0\n"
        "# HELP redstream_group_consumer_idle_seconds Time since this consumer of the group last "
        "read or claimed (XINFO CONSUMERS idle).\n"
        "# TYPE redstream_group_consumer_idle_seconds gauge\n"
        "redstream_group_consumer_idle_seconds{stream=\"events\",consumer=\"c1\"} 1.500\n"
        "redstream_group_consumer_idle_seconds{stream=\"events\",consumer=\"host\\\"2\"} 0.042\n"
        "# HELP redstream_redis_reconnects_total Connections to Redis made again after a "
        "connection was lost, over every connection of the process.\n"
        "# TYPE redstream_redis_reconnects_total counter\n"
        "redstream_redis_reconnects_total 3\n"
        "# HELP redstream_queue_depth Entries waiting in the work queue.\n"
        "# TYPE redstream_queue_depth gauge\n"
        "redstream_queue_depth 4\n"
        "# HELP redstream_queue_capacity Capacity of the work queue (workers.queue_capacity).\n"
        "# TYPE redstream_queue_capacity gauge\n"
        "redstream_queue_capacity 64\n"
        "# HELP redstream_queue_lanes Ordering lanes (keys of streams with ordering \"key\", "
        "streams with \"stream\") holding an entry now.\n"
        "# TYPE redstream_queue_lanes gauge\n"
        "redstream_queue_lanes 3\n"
        "# HELP redstream_queue_lane_waiting Queued entries waiting for an earlier entry of their "
        "key (or stream) to be handled.\n"
        "# TYPE redstream_queue_lane_waiting gauge\n"
        "redstream_queue_lane_waiting 5\n"
        "# HELP redstream_workers Worker threads (workers.threads).\n"
        "# TYPE redstream_workers gauge\n"
        "redstream_workers 8\n"
        "# HELP redstream_workers_busy Worker threads running a handler now.\n"
        "# TYPE redstream_workers_busy gauge\n"
        "redstream_workers_busy 1\n"
        "# HELP redstream_retry_waiting Failed entries waiting for their retry.\n"
        "# TYPE redstream_retry_waiting gauge\n"
        "redstream_retry_waiting 2\n"
        "# HELP redstream_handler_duration_seconds Time the stream's handler took per entry.\n"
        "# TYPE redstream_handler_duration_seconds histogram\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"0.0005\"} 0\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"0.001\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"0.0025\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"0.005\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"0.01\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"0.025\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"0.05\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"0.1\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"0.25\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"0.5\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"1\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"2.5\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"5\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"10\"} 1\n"
        "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"+Inf\"} 1\n"
        "redstream_handler_duration_seconds_sum{stream=\"events\"} 0.001000000\n"
        "redstream_handler_duration_seconds_count{stream=\"events\"} 1\n"
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes 4096\n"
        "# HELP process_open_fds Number of open file descriptors.\n"
        "# TYPE process_open_fds gauge\n"
        "process_open_fds 9\n"
        "# HELP process_start_time_seconds Start time of the process since the Unix epoch in "
        "seconds.\n"
        "# TYPE process_start_time_seconds gauge\n"
        "process_start_time_seconds 1700000000.50\n";
    char *text = render(&m);
    assert_string_equal(text, want);
    free(text);
}

/* The lag is left out, family and all, when Redis was not asked, did not answer about our
 * group, or could not tell (nil lag); the process metrics when /proc was not read. */
static void metrics_lag_left_out_when_unknown(void **state)
{
    (void)state;
    rs_group_info_t other = {.name = {"other", 5}, .has_lag = true, .lag = 1};
    rs_group_info_t nil_lag = {.name = {"workers", 7}, .has_lag = false};
    rs_stream_info_t with_other = {
        .name = "events", .exists = true, .ngroups = 1, .groups = &other};
    rs_stream_info_t with_nil = {
        .name = "events", .exists = true, .ngroups = 1, .groups = &nil_lag};
    rs_streams_info_t infos[] = {{1, &with_other}, {1, &with_nil}};
    const rs_streams_info_t *cases[] = {
        NULL,      /* Redis unreachable */
        &infos[0], /* only another group */
        &infos[1], /* our group, nil lag */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        rs_metrics_stream_t s;
        rs_metrics_t m = one_stream(&s, "events");
        m.redis = cases[i];
        char *text = render(&m);
        if (strstr(text, "redstream_consumer_lag") != NULL)
            fail_msg("case %zu: lag present in\n%s", i, text);
        assert_null(strstr(text, "process_"));
        free(text);
    }
}

/* The span exporter's counters appear only when tracing is on, as two counters. */
static void metrics_prometheus_tracing_counters(void **state)
{
    (void)state;
    rs_metrics_stream_t s;
    rs_metrics_t m = one_stream(&s, "events");
    char *text = render(&m);
    assert_null(strstr(text, "redstream_trace_"));
    free(text);
    m.has_tracing = true, m.trace_spans_exported = 7, m.trace_spans_dropped = 2;
    text = render(&m);
    assert_non_null(strstr(text, "# TYPE redstream_trace_spans_exported_total counter\n"
                                 "redstream_trace_spans_exported_total 7\n"));
    assert_non_null(strstr(text, "# TYPE redstream_trace_spans_dropped_total counter\n"
                                 "redstream_trace_spans_dropped_total 2\n"));
    free(text);
}

/* /streams: Redis's view and the process's counters, with nil values as null and names from
 * Redis made valid UTF-8 (NUL bytes kept). */
static void metrics_streams_json_structure(void **state)
{
    (void)state;
    rs_metrics_stream_t s;
    rs_metrics_t m = one_stream(&s, "events");
    s.received = 3, s.succeeded = 2, s.failed = 1, s.dead_lettered = 1, s.acked = 2;
    s.reader_connected = true;
    s.ordering = "key", s.key_field = "customer";
    rs_consumer_info_t consumers[2] = {
        {.name = {"c1", 2}, .pending = 1, .idle_ms = 250},
        {.name = {"b\xff\0z", 4}, .pending = 0, .idle_ms = 9},
    };
    rs_group_info_t group = {.name = {"workers", 7},
                             .last_delivered_id = {"5-0", 3},
                             .consumers = 2,
                             .pending = 1,
                             .has_entries_read = true,
                             .entries_read = 3,
                             .has_lag = false,
                             .nconsumer_list = 2,
                             .consumer_list = consumers};
    rs_stream_info_t si = {
        .name = "events", .exists = true, .length = 4, .ngroups = 1, .groups = &group};
    rs_streams_info_t info = {1, &si};
    m.redis = &info;

    size_t len = 0;
    char *text = rs_metrics_streams_json(&m, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_ALLOW_NUL, &jerr); /* a NUL in a name is \u0000 */
    if (root == NULL)
        fail_msg("not JSON (%s): %s", jerr.text, text);
    assert_string_equal(json_string_value(json_object_get(root, "group")), "workers");
    assert_string_equal(json_string_value(json_object_get(root, "consumer")), "c1");
    assert_string_equal(json_string_value(json_object_get(root, "version")), "1.2.3");
    json_t *st = json_array_get(json_object_get(root, "streams"), 0);
    assert_string_equal(json_string_value(json_object_get(st, "name")), "events");
    assert_int_equal(json_integer_value(json_object_get(st, "length")), 4);
    assert_true(json_is_true(json_object_get(st, "exists")));
    json_t *proc = json_object_get(st, "process");
    assert_string_equal(json_string_value(json_object_get(proc, "ordering")), "key");
    assert_string_equal(json_string_value(json_object_get(proc, "key_field")), "customer");
    json_t *g = json_array_get(json_object_get(st, "groups"), 0);
    assert_string_equal(json_string_value(json_object_get(g, "name")), "workers");
    assert_int_equal(json_integer_value(json_object_get(g, "pending")), 1);
    assert_int_equal(json_integer_value(json_object_get(g, "entries_read")), 3);
    assert_true(json_is_null(json_object_get(g, "lag")));
    assert_string_equal(json_string_value(json_object_get(g, "last_delivered_id")), "5-0");
    json_t *cs = json_object_get(g, "consumers");
    assert_int_equal(json_array_size(cs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(cs, 0), "name")), "c1");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(cs, 0), "idle_ms")), 250);
    json_t *odd = json_object_get(json_array_get(cs, 1), "name");
    assert_int_equal(json_string_length(odd), 6); /* b, U+FFFD (3 bytes), NUL, z */
    assert_memory_equal(json_string_value(odd), "b\xef\xbf\xbd\0z", 6);
    json_t *p = json_object_get(st, "process");
    assert_string_equal(json_string_value(json_object_get(p, "handler")), "log");
    assert_true(json_is_true(json_object_get(p, "reader_connected")));
    assert_int_equal(json_integer_value(json_object_get(p, "received")), 3);
    assert_int_equal(json_integer_value(json_object_get(p, "dead_lettered")), 1);
    assert_int_equal(json_integer_value(json_object_get(p, "acked")), 2);
    json_decref(root);
    free(text);
}

/* The error body is valid JSON even for a message that is not valid UTF-8. */
static void metrics_error_json_is_valid(void **state)
{
    (void)state;
    static const char *const messages[] = {
        "redis 127.0.0.1:6380: connect: Connection refused", /* the usual one */
        "quote \" backslash \\ line\nfeed",                  /* escapes */
        "bad \xff byte",                                     /* invalid UTF-8 */
    };
    for (size_t i = 0; i < ARRAY_LEN(messages); i++) {
        size_t len = 0;
        char *text = rs_metrics_error_json(messages[i], &len);
        assert_non_null(text);
        json_t *root = json_loads(text, 0, NULL);
        assert_non_null(root);
        assert_true(json_is_string(json_object_get(root, "error")));
        json_decref(root);
        free(text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_escapes_label_values),
        cmocka_unit_test(metrics_histogram_is_cumulative),
        cmocka_unit_test(metrics_prometheus_golden),
        cmocka_unit_test(metrics_lag_left_out_when_unknown),
        cmocka_unit_test(metrics_prometheus_tracing_counters),
        cmocka_unit_test(metrics_streams_json_structure),
        cmocka_unit_test(metrics_error_json_is_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
