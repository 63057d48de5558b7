/* Unit tests for the dashboard's pieces: the per-second stats ring (stats_ring.c), the
 * logger's ring of recent problems (log.c), and the JSON renderers and embedded page
 * (dashboard.c). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"
#include "log.h"
#include "stats_ring.h"

/* Parses a renderer's output; `len` is read after the call that set it. */
static json_t *parse(char *text, const size_t *len)
{
    assert_non_null(text);
    assert_int_equal(*len, strlen(text));
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    assert_non_null(j);
    free(text);
    return j;
}

/* Rates are differences of consecutive seconds; a missed second, a stale lap and a total that
 * went down are unknown, never a wrong number. */
static void test_stats_ring_rates(void **state)
{
    (void)state;
    rs_stats_ring_t *r = rs_stats_ring_new();
    assert_non_null(r);
    static rs_stats_rate_t out[RS_STATS_RING_SECONDS];

    rs_stats_ring_rates(r, 1000, out);
    for (size_t k = 0; k < RS_STATS_RING_SECONDS; k++)
        assert_false(out[k].known);

    rs_stats_ring_record(r, 997, 10, 1);
    rs_stats_ring_record(r, 998, 15, 1);
    rs_stats_ring_record(r, 999, 15, 3); /* replaced by the next sample of the same second */
    rs_stats_ring_record(r, 999, 20, 4);
    /* 1000 not sampled */
    rs_stats_ring_record(r, 1001, 30, 4);
    rs_stats_ring_record(r, 1002, 25, 4); /* went down (a stream removed) */
    rs_stats_ring_rates(r, 1002, out);
    const rs_stats_rate_t *last = &out[RS_STATS_RING_SECONDS - 1]; /* second 1002 */
    assert_false(last[0].known);                                   /* 1002: went down */
    assert_false(last[-1].known);                                  /* 1001: 1000 missing */
    assert_false(last[-2].known);                                  /* 1000: not sampled */
    assert_true(last[-3].known);                                   /* 999 */
    assert_int_equal(last[-3].handled, 5);
    assert_int_equal(last[-3].failed, 3);
    assert_true(last[-4].known); /* 998 */
    assert_int_equal(last[-4].handled, 5);
    assert_int_equal(last[-4].failed, 0);
    assert_false(last[-5].known); /* 997: 996 missing */

    /* A full lap later the old slots are stale, not read as this lap's. */
    rs_stats_ring_rates(r, 1002 + RS_STATS_RING_SECONDS, out);
    for (size_t k = 0; k < RS_STATS_RING_SECONDS; k++)
        assert_false(out[k].known);
    rs_stats_ring_free(r);
}

/* WARN and ERROR lines are kept, newest first, at most RS_LOG_PROBLEMS, with the stream
 * taken from a word "stream=NAME"; INFO lines are not. */
static void test_log_problems(void **state)
{
    (void)state;
    FILE *sink = fopen("/dev/null", "w");
    assert_non_null(sink);
    rs_logger_t *lg = rs_logger_new(sink, RS_LOG_INFO);
    assert_non_null(lg);
    static rs_log_problem_t p[RS_LOG_PROBLEMS + 5];

    rs_log(lg, RS_LOG_INFO, "reader", "stream=events connected");
    assert_int_equal(rs_logger_problems(lg, p, RS_LOG_PROBLEMS), 0);
    rs_log(lg, RS_LOG_WARN, "worker", "stream=events id=1-0 handler failed: <b>x</b>");
    rs_log(lg, RS_LOG_ERROR, "acker", "no stream here, upstream=nope");
    assert_int_equal(rs_logger_problems(lg, p, RS_LOG_PROBLEMS), 2);
    assert_int_equal(p[0].level, RS_LOG_ERROR);
    assert_string_equal(p[0].module, "acker");
    assert_string_equal(p[0].stream, "");
    assert_int_equal(p[1].level, RS_LOG_WARN);
    assert_string_equal(p[1].stream, "events");
    assert_string_equal(p[1].message, "stream=events id=1-0 handler failed: <b>x</b>");
    assert_true(p[1].time_ns > 0);

    for (int i = 0; i < RS_LOG_PROBLEMS + 3; i++)
        rs_log(lg, RS_LOG_WARN, "worker", "stream=s%d n", i);
    assert_int_equal(rs_logger_problems(lg, p, RS_LOG_PROBLEMS + 5), RS_LOG_PROBLEMS);
    char want[32];
    snprintf(want, sizeof(want), "s%d", RS_LOG_PROBLEMS + 2);
    assert_string_equal(p[0].stream, want);
    assert_string_equal(p[RS_LOG_PROBLEMS - 1].stream, "s3");
    assert_int_equal(rs_logger_problems(lg, p, 1), 1);

    /* A long message is cut to fit, never past a UTF-8 sequence's start. */
    char big[2000];
    memset(big, 'a', sizeof(big));
    memcpy(big + sizeof(p[0].message) - 2, "\xc3\xa9", 2); /* across the 511-byte cut */
    big[sizeof(big) - 1] = '\0';
    rs_log(lg, RS_LOG_WARN, "worker", "%s", big);
    assert_int_equal(rs_logger_problems(lg, p, 1), 1);
    assert_int_equal(strlen(p[0].message), sizeof(p[0].message) - 2);
    rs_logger_free(lg);
    fclose(sink);
}

static void test_stats_json(void **state)
{
    (void)state;
    rs_metrics_stream_t streams[2] = {
        {.name = "<img src=x onerror=alert(1)>",
         .handler = "log",
         .ordering = "key",
         .key_field = "customer",
         .succeeded = 7,
         .failed = 2,
         .retried = 1,
         .dead_lettered = 1,
         .reader_connected = true},
        {.name = "bad\xff", .handler = "exec", .ordering = "none", .succeeded = 3},
    };
    rs_metrics_t m = {.version = "1.2.3",
                      .group = "workers",
                      .consumer = "c1",
                      .queue_depth = 4,
                      .queue_capacity = 64,
                      .workers = 8,
                      .workers_busy = 2,
                      .nstreams = 2,
                      .streams = streams};
    static rs_stats_rate_t rates[RS_STATS_RING_SECONDS];
    rates[RS_STATS_RING_SECONDS - 1] = (rs_stats_rate_t){1, 12, 3};
    rs_dashboard_stats_t s = {.m = &m,
                              .uptime_s = 5.5,
                              .redis_ready = false,
                              .redis_state = "stream x: not connected",
                              .rates = rates};
    size_t len = 0;
    json_t *j = parse(rs_dashboard_stats_json(&s, &len), &len);
    assert_string_equal(json_string_value(json_object_get(j, "version")), "1.2.3");
    json_t *redis = json_object_get(j, "redis");
    assert_true(json_is_false(json_object_get(redis, "ready")));
    assert_string_equal(json_string_value(json_object_get(redis, "state")),
                        "stream x: not connected");
    json_t *totals = json_object_get(j, "totals");
    assert_int_equal(json_integer_value(json_object_get(totals, "handled")), 10);
    assert_int_equal(json_integer_value(json_object_get(totals, "failed")), 2);
    assert_int_equal(json_integer_value(json_object_get(totals, "dead_lettered")), 1);
    json_t *st = json_object_get(j, "streams");
    assert_int_equal(json_array_size(st), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(st, 0), "name")),
                        "<img src=x onerror=alert(1)>");
    /* An invalid byte becomes U+FFFD, the rule of json.h that /streams and /metrics follow. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(st, 1), "name")),
                        "bad\xef\xbf\xbd");
    assert_string_equal(json_string_value(json_object_get(json_array_get(st, 0), "ordering")),
                        "key");
    assert_string_equal(json_string_value(json_object_get(json_array_get(st, 0), "key_field")),
                        "customer");
    assert_string_equal(json_string_value(json_object_get(json_array_get(st, 1), "ordering")),
                        "none");
    assert_null(json_object_get(json_array_get(st, 1), "key_field"));
    json_t *h = json_object_get(json_object_get(j, "series"), "handled");
    assert_int_equal(json_array_size(h), RS_STATS_RING_SECONDS);
    assert_true(json_is_null(json_array_get(h, 0)));
    assert_int_equal(json_integer_value(json_array_get(h, RS_STATS_RING_SECONDS - 1)), 12);
    json_decref(j);
}

static void test_problems_json(void **state)
{
    (void)state;
    rs_log_problem_t p[2] = {{.time_ns = INT64_C(1795812108915000000),
                              .level = RS_LOG_ERROR,
                              .module = "acker",
                              .stream = "",
                              .message = "</script>"},
                             {.time_ns = 0,
                              .level = RS_LOG_WARN,
                              .module = "worker",
                              .stream = "events",
                              .message = "x\x80y"}};
    size_t len = 0;
    json_t *j = parse(rs_dashboard_problems_json(p, 2, &len), &len);
    json_t *list = json_object_get(j, "problems");
    assert_int_equal(json_array_size(list), 2);
    json_t *a = json_array_get(list, 0), *b = json_array_get(list, 1);
    assert_string_equal(json_string_value(json_object_get(a, "time")), "2026-11-27T20:41:48.915Z");
    assert_string_equal(json_string_value(json_object_get(a, "level")), "error");
    assert_true(json_is_null(json_object_get(a, "stream")));
    assert_string_equal(json_string_value(json_object_get(a, "message")), "</script>");
    assert_string_equal(json_string_value(json_object_get(b, "stream")), "events");
    assert_string_equal(json_string_value(json_object_get(b, "message")), "x\xef\xbf\xbdy");
    json_decref(j);
}

static rs_info_string_t str(const char *s, size_t len)
{
    rs_info_string_t r = {malloc(len + 1), len};
    assert_non_null(r.str);
    memcpy(r.str, s, len);
    r.str[len] = '\0';
    return r;
}

/* The metadata fields become the dead letter's own keys, the others stay fields; binary
 * values are base64; the replay command quotes a name a shell would split. */
static void test_dead_letters_json(void **state)
{
    (void)state;
    rs_info_entries_t e = {.exists = true, .nentries = 1};
    e.entries = calloc(1, sizeof(*e.entries));
    assert_non_null(e.entries);
    rs_info_entry_t *d = &e.entries[0];
    d->id = str("5-0", 3);
    const char *kv[][2] = {{"note", "</script>"},
                           {"redstream.original_stream", "a b"},
                           {"redstream.original_id", "1-0"},
                           {"redstream.delivery_count", "4"},
                           {"redstream.last_error", "exited with status 3"},
                           {"redstream.dead_lettered_at", "2026-11-27T20:41:49.303Z"}};
    d->fields = calloc(8, sizeof(*d->fields));
    assert_non_null(d->fields);
    for (size_t i = 0; i < 6; i++) {
        d->fields[i].name = str(kv[i][0], strlen(kv[i][0]));
        d->fields[i].value = str(kv[i][1], strlen(kv[i][1]));
    }
    d->fields[6].name = str("bin", 3);
    d->fields[6].value = str("\x00\xff", 2);
    d->nfields = 7;

    size_t len = 0;
    json_t *j = parse(rs_dashboard_dead_letters_json("a b'c", "a b'c:dlq", &e, NULL, &len), &len);
    assert_string_equal(json_string_value(json_object_get(j, "replay")),
                        "redstream-producer --replay-dlq 'a b'\\''c'");
    assert_string_equal(json_string_value(json_object_get(j, "dead_letter_stream")), "a b'c:dlq");
    assert_true(json_is_null(json_object_get(j, "error")));
    json_t *dl = json_array_get(json_object_get(j, "dead_letters"), 0);
    assert_string_equal(json_string_value(json_object_get(dl, "id")), "5-0");
    assert_string_equal(json_string_value(json_object_get(dl, "original_id")), "1-0");
    assert_string_equal(json_string_value(json_object_get(dl, "delivery_count")), "4");
    assert_string_equal(json_string_value(json_object_get(dl, "error")), "exited with status 3");
    json_t *fields = json_object_get(dl, "fields");
    assert_int_equal(json_array_size(fields), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(fields, 0), "value")),
                        "</script>");
    assert_string_equal(json_string_value(json_object_get(json_array_get(fields, 1), "value")),
                        "base64:AP8=");
    json_decref(j);

    j = parse(rs_dashboard_dead_letters_json("events", "events:dlq", &e, "/etc/r.conf", &len),
              &len);
    assert_string_equal(json_string_value(json_object_get(j, "replay")),
                        "redstream-producer -c /etc/r.conf --replay-dlq events");
    json_decref(j);
    rs_info_entries_clear(&e);
}

/* The page is embedded, with no reference to anything outside the server. */
static void test_assets(void **state)
{
    (void)state;
    const char *paths[] = {"/", "/app.js", "/style.css"};
    for (size_t i = 0; i < 3; i++) {
        const rs_dashboard_asset_t *a = rs_dashboard_asset(paths[i]);
        assert_non_null(a);
        assert_true(a->len > 100);
        assert_int_equal(a->data[a->len], 0); /* NUL-terminated past the end */
        assert_null(strstr((const char *)a->data, "http://"));
        assert_null(strstr((const char *)a->data, "https://"));
        assert_null(strstr((const char *)a->data, "innerHTML"));
    }
    assert_null(rs_dashboard_asset("/index.html"));
    assert_string_equal(rs_dashboard_asset("/")->content_type, "text/html; charset=utf-8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_ring_rates),  cmocka_unit_test(test_log_problems),
        cmocka_unit_test(test_stats_json),        cmocka_unit_test(test_problems_json),
        cmocka_unit_test(test_dead_letters_json), cmocka_unit_test(test_assets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
