#!/usr/bin/env bash
#
# redstream-consumer's HTTP server against a private redis-server: /healthz, /readyz, /streams
# and /metrics while healthy, while Redis refuses the password, while Redis is down (readiness
# at once, liveness only after health.liveness_timeout_ms), after Redis comes back, and during
# a graceful shutdown; counters that match the work done; the JSON overview against XINFO;
# 404, 405 and HEAD; a port already in use; the password never in a body.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/health_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/health_lib.sh"

EVENTS=300       # entries for the discard stream
JOBS_OK=15       # exec stream entries that succeed
JOBS_FAIL=5      # ... and that fail permanently (dead-lettered at once)
LIVENESS_MS=3000 # health.liveness_timeout_ms: short, so the outage case takes seconds

# The exec handler: fails permanently for entries of type "fail", sleeps a second per entry
# while $RS_TMP/slow exists (to make a shutdown take a moment). It gets a scrubbed environment,
# so the paths are written into it.
job=$RS_TMP/job.sh
cat >"$job" <<EOF
#!/bin/bash
input=\$(cat)
if [[ -e $RS_TMP/slow ]]; then sleep 1; fi
case \$input in *'"type":"fail"'*) echo "permanent failure on purpose" >&2; exit 1 ;; esac
exit 0
EOF
chmod +x "$job"

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
hc_pick_port
conf=$(rs_write_config health <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; connect_timeout_ms = 1000; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; };
workers = { threads = 4; queue_capacity = 64; shutdown_timeout_ms = 8000; };
health = { address = "127.0.0.1"; port = $HC_PORT; liveness_timeout_ms = $LIVENESS_MS; };
streams = (
  { name = "events"; handler = "discard"; },
  { name = "jobs"; handler = "exec"; command = ["$job"]; timeout_ms = 20000; }
);
log = { level = "info"; };
EOF
)

# --- healthy ---------------------------------------------------------------------------------
rs_case "healthy: /healthz and /readyz answer 200 OK, HEAD works"
cl_spawn_consumer c1 "$conf"
pid=$RS_PID
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) hc_status_is GET /readyz 200 ||
    rs_fail "/readyz never 200: $HC_STATUS $(cat "$HC_BODY" 2>/dev/null)"
rs_assert_eq "OK" "$(cat "$HC_BODY")" "/readyz body"
rs_assert_eq "text/plain; charset=utf-8" "$(hc_header content-type)" "/readyz Content-Type"
hc_expect GET /healthz 200
rs_assert_eq "OK" "$(cat "$HC_BODY")" "/healthz body"
hc_expect HEAD /healthz 200
rs_assert_eq 0 "$(stat -c %s "$HC_BODY")" "HEAD /healthz body size"
hc_expect HEAD /metrics 200
rs_assert_eq 0 "$(stat -c %s "$HC_BODY")" "HEAD /metrics body size"
rs_assert_eq "text/plain; version=0.0.4; charset=utf-8" "$(hc_header content-type)" \
    "HEAD /metrics Content-Type"
rs_assert_file_contains "$err" "serving /healthz, /readyz, /streams and /metrics on http://127.0.0.1:$HC_PORT"
rs_pass

rs_case "a second consumer on the same health port exits 1 naming the address"
rs_run second "$RS_CONSUMER" -c "$conf"
rs_assert_exit 1
rs_assert_file_contains "$RS_ERR" "cannot listen on 127.0.0.1:$HC_PORT: Address already in use"
RS_ERR=$err
rs_pass

rs_case "404 for other paths, 405 with Allow for other methods"
hc_expect GET /nope 404
hc_expect GET /healthz/ 404
hc_expect GET /index.html 404 # / is the dashboard (test_dashboard.sh)
hc_expect POST /healthz 405
rs_assert_eq "GET, HEAD" "$(hc_header allow)" "Allow header of POST"
hc_expect DELETE /metrics 405
rs_assert_eq "GET, HEAD" "$(hc_header allow)" "Allow header of DELETE"
hc_expect PUT /streams 405
rs_pass

# --- counters --------------------------------------------------------------------------------
rs_case "/metrics counts what was handled ($EVENTS discarded, $JOBS_OK + $JOBS_FAIL exec) and passes promtool"
cl_resp_xadd "$RS_TMP/events.resp" events "$EVENTS"
cl_pipe "$RS_TMP/events.resp"
for ((i = 1; i <= JOBS_OK + JOBS_FAIL; i++)); do
    kind="test"
    ((i % 4 == 0)) && kind="fail" # 5 of 20
    printf 'XADD jobs * message "Job #%d" type %s\n' "$i" "$kind"
done | rs_cli >/dev/null
ev='{stream="events"}'
jb='{stream="jobs"}'
want=(
    "redstream_messages_received_total$ev=$EVENTS"
    "redstream_messages_succeeded_total$ev=$EVENTS"
    "redstream_messages_acked_total$ev=$EVENTS"
    "redstream_messages_failed_total$ev=0"
    "redstream_handler_duration_seconds_count$ev=$EVENTS"
    "redstream_handler_duration_seconds_bucket{stream=\"events\",le=\"+Inf\"}=$EVENTS"
    "redstream_messages_received_total$jb=$((JOBS_OK + JOBS_FAIL))"
    "redstream_messages_succeeded_total$jb=$JOBS_OK"
    "redstream_messages_acked_total$jb=$JOBS_OK"
    "redstream_messages_failed_total$jb=$JOBS_FAIL"
    "redstream_messages_dead_lettered_total$jb=$JOBS_FAIL"
    "redstream_messages_retried_total$jb=0"
    "redstream_handler_duration_seconds_count$jb=$((JOBS_OK + JOBS_FAIL))"
    "redstream_inflight_messages$ev=0"
    "redstream_inflight_messages$jb=0"
    "redstream_consumer_lag$ev=0"
    "redstream_consumer_lag$jb=0"
)
cl_wait_for "$pid" $((20 * RS_SCALE)) hc_metrics_are "${want[@]}" ||
    cl_fail "counters never matched; last /metrics:" \
        "$(grep -E '^redstream_(messages|consumer_lag|inflight)' "$HC_BODY" | tr '\n' ' ')"
hc_promtool "$HC_BODY"
m=$HC_BODY
hc_samples_are "$m" "redstream_reader_connected$ev=1" "redstream_reader_connected$jb=1" \
    'redstream_build_info{version="0.1.0"}=1' "redstream_queue_capacity=64" \
    "redstream_workers=4" "redstream_retry_waiting=0" "redstream_redis_reconnects_total=0" ||
    rs_fail "gauges: $(grep -E '^redstream_(reader|build|queue|workers|retry|redis)' "$m" | tr '\n' ' ')"
for name in process_resident_memory_bytes process_open_fds process_start_time_seconds; do
    rs_assert_match '^[0-9]+(\.[0-9]+)?$' "$(hc_sample "$m" "$name")" "$name"
done
# The histogram's buckets are cumulative and end at the count.
"$RS_PYTHON" - "$m" <<'PY' || rs_fail "histogram buckets are not cumulative"
import re, sys
buckets = {}
for line in open(sys.argv[1]):
    m = re.match(r'redstream_handler_duration_seconds_bucket\{stream="(\w+)",le="([^"]+)"\} (\d+)$', line)
    if m:
        buckets.setdefault(m.group(1), []).append((m.group(2), int(m.group(3))))
assert set(buckets) == {"events", "jobs"}, buckets
for s, bs in buckets.items():
    assert bs[-1][0] == "+Inf" and len(bs) == 15, bs
    assert all(a[1] <= b[1] for a, b in zip(bs, bs[1:])), bs
PY
rs_assert_eq "$JOBS_FAIL" "$(rs_cli XLEN jobs:dlq)" "dead letters in jobs:dlq"
rs_pass

# --- /streams --------------------------------------------------------------------------------
rs_case "/streams reports what XLEN, XINFO GROUPS and XINFO CONSUMERS say, plus our counters"
hc_expect GET /streams 200
rs_assert_eq "application/json" "$(hc_header content-type)" "/streams Content-Type"
# What Redis says, per stream: length, then the group's fields, then "name pending" per consumer.
xinfo() {
    echo "$(rs_cli XLEN "$1") $(cl_group_field "$1" lag) $(cl_group_field "$1" entries-read)" \
        "$(cl_group_field "$1" pending) $(cl_group_field "$1" last-delivered-id)"
    rs_cli XINFO CONSUMERS "$1" workers | awk 'prev == "name" { n = $0 } prev == "pending" { print n, $0 } { prev = $0 }'
}
xinfo events >"$RS_TMP/xinfo-events.txt"
xinfo jobs >"$RS_TMP/xinfo-jobs.txt"
"$RS_PYTHON" - "$HC_BODY" "$RS_TMP" "$EVENTS" "$JOBS_OK" "$JOBS_FAIL" <<'PY' || rs_fail "/streams does not match Redis"
import json, sys
body, tmp, events, ok, fail = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
doc = json.load(open(body))
assert doc["group"] == "workers" and doc["consumer"] == "c1" and doc["version"] == "0.1.0", doc
assert [s["name"] for s in doc["streams"]] == ["events", "jobs"], doc["streams"]
for s in doc["streams"]:
    lines = open("%s/xinfo-%s.txt" % (tmp, s["name"])).read().split("\n")
    length, lag, read, pending, last = lines[0].split()
    assert s["exists"] is True and s["length"] == int(length), (s["name"], s["length"], length)
    [g] = [g for g in s["groups"] if g["name"] == "workers"]
    assert g["lag"] == int(lag) and g["entries_read"] == int(read), (g, lag, read)
    assert g["pending"] == int(pending) and g["last_delivered_id"] == last, (g, pending, last)
    want = sorted(tuple(l.split()) for l in lines[1:] if l)
    got = sorted((c["name"], str(c["pending"])) for c in g["consumers"])
    assert got == want, (got, want)
    assert all(isinstance(c["idle_ms"], int) and c["idle_ms"] >= 0 for c in g["consumers"])
    p = s["process"]
    assert p["reader_connected"] is True and p["inflight"] == 0, p
ev, jb = doc["streams"]
assert ev["length"] == events and ev["process"]["received"] == events and ev["process"]["acked"] == events, ev
assert ev["process"]["handler"] == "discard" and jb["process"]["handler"] == "exec", (ev, jb)
assert jb["process"]["succeeded"] == ok and jb["process"]["dead_lettered"] == fail, jb
print("  events: length %d, lag %s; jobs: length %d" % (ev["length"], ev["groups"][0]["lag"], jb["length"]))
PY
rs_pass

# --- credentials refused ---------------------------------------------------------------------
rs_case "/readyz says 503 while Redis refuses the password, and recovers"
rs_cli CONFIG SET requirepass other-password >/dev/null
# New connections now fail AUTH; drop the existing ones (the redis-cli itself is spared).
"$REDIS_CLI" -h 127.0.0.1 -p "$RS_REDIS_PORT" -a other-password --no-auth-warning \
    CLIENT KILL TYPE normal >/dev/null
cl_wait_for "$pid" $((5 * RS_SCALE)) hc_status_is GET /readyz 503 "Redis refused the credentials" ||
    rs_fail "/readyz: $HC_STATUS $(cat "$HC_BODY")"
rs_assert_file_contains "$HC_BODY" "stream events: not connected: Redis refused the credentials"
"$REDIS_CLI" -h 127.0.0.1 -p "$RS_REDIS_PORT" -a other-password --no-auth-warning \
    CONFIG SET requirepass "$RS_REDIS_PASSWORD" >/dev/null
# A refused AUTH is retried with a backoff of up to 5 s.
cl_wait_for "$pid" $((12 * RS_SCALE)) hc_status_is GET /readyz 200 ||
    rs_fail "/readyz did not recover: $HC_STATUS $(cat "$HC_BODY")"
cl_wait_for "$pid" $((5 * RS_SCALE)) hc_status_is GET /healthz 200 ||
    rs_fail "/healthz did not recover: $HC_STATUS $(cat "$HC_BODY")"
rs_pass

# --- Redis down ------------------------------------------------------------------------------
rs_case "Redis down: /readyz 503 at once, /healthz 200 until the ${LIVENESS_MS} ms window, /streams 503"
rs_stop_redis
down_at=$(cl_now_ms)
cl_wait_for "$pid" $((2 * RS_SCALE)) hc_status_is GET /readyz 503 "stream events: not connected" ||
    rs_fail "/readyz not 503 within $((2 * RS_SCALE)) s: $HC_STATUS $(cat "$HC_BODY")"
echo "  /readyz 503 after $(($(cl_now_ms) - down_at)) ms: $(head -n 1 "$HC_BODY")"
hc_expect GET /healthz 200
rs_assert_eq "OK" "$(cat "$HC_BODY")" "/healthz body while Redis has just gone"
hc_expect GET /streams 503
rs_assert_eq "application/json" "$(hc_header content-type)" "/streams Content-Type when down"
"$RS_PYTHON" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert "Connection refused" in d["error"], d' \
    "$HC_BODY" || rs_fail "/streams error body: $(cat "$HC_BODY")"
# /metrics still answers, without the lag it cannot know, and stays valid.
hc_expect GET /metrics 200
hc_promtool "$HC_BODY"
rs_assert_file_lacks "$HC_BODY" "redstream_consumer_lag"
rs_assert_eq 0 "$(hc_sample "$HC_BODY" "redstream_reader_connected$ev")" "reader_connected while down"
# Liveness turns only once the window has passed, naming the streams.
cl_wait_for "$pid" $(((LIVENESS_MS / 1000 + 4) * RS_SCALE)) hc_status_is GET /healthz 503 ||
    rs_fail "/healthz never turned 503: $HC_STATUS $(cat "$HC_BODY")"
flip_ms=$(($(cl_now_ms) - down_at))
echo "  /healthz 503 after $flip_ms ms: $(head -n 1 "$HC_BODY")"
# The window counts from the reader's last completed read, at most block_ms before the kill.
rs_assert_ge $((LIVENESS_MS - 500)) "$flip_ms" "ms until /healthz turned 503"
# Each reader's window runs from its own last read: the other one follows within a BLOCK.
both_stalled() {
    hc_status_is GET /healthz 503 "stream events: the reader has not completed a read for" &&
        grep -qF "stream jobs: the reader has not completed a read for" "$HC_BODY"
}
cl_wait_for "$pid" $((2 * RS_SCALE)) both_stalled ||
    rs_fail "/healthz does not name both streams: $HC_STATUS $(cat "$HC_BODY")"
rs_assert_file_contains "$HC_BODY" "it is connecting to Redis"
rs_pass

rs_case "Redis back: /readyz and /healthz recover, reconnects are counted"
rs_restart_redis
# The reconnect backoff caps at 5 s.
cl_wait_for "$pid" $((15 * RS_SCALE)) hc_status_is GET /readyz 200 ||
    rs_fail "/readyz did not recover: $HC_STATUS $(cat "$HC_BODY")"
cl_wait_for "$pid" $((5 * RS_SCALE)) hc_status_is GET /healthz 200 ||
    rs_fail "/healthz did not recover: $HC_STATUS $(cat "$HC_BODY")"
hc_expect GET /metrics 200
reconnects=$(hc_sample "$HC_BODY" redstream_redis_reconnects_total)
rs_assert_ge 2 "$reconnects" "redstream_redis_reconnects_total after two outages"
hc_expect GET /streams 200
rs_pass

# --- shutdown --------------------------------------------------------------------------------
rs_case "during a graceful shutdown /readyz says 503 and /healthz 200, then it exits 0"
touch "$RS_TMP/slow"
# 16 one-second entries on 4 workers: the shutdown drains for about 4 s, time enough for the
# probes below even on a loaded machine under a sanitizer (shutdown_timeout_ms is 8000).
for i in $(seq 1 16); do
    printf 'XADD jobs * message "Slow #%d" type test\n' "$i"
done | rs_cli >/dev/null
cl_wait_for "$pid" $((10 * RS_SCALE)) hc_metrics_are "redstream_workers_busy=4" ||
    rs_fail "the slow handlers never all ran: $(grep -E '^redstream_workers_busy' "$HC_BODY")"
kill -TERM "$pid"
stop_at=$(cl_now_ms)
cl_wait_for "$pid" $((2 * RS_SCALE)) hc_status_is GET /readyz 503 ||
    rs_fail "/readyz during shutdown: $HC_STATUS $(cat "$HC_BODY" 2>/dev/null)"
rs_assert_eq "shutting down" "$(cat "$HC_BODY")" "/readyz body during shutdown"
hc_expect GET /healthz 200
rs_assert_eq "OK: shutting down" "$(cat "$HC_BODY")" "/healthz body during shutdown"
rs_exited "$pid" && rs_fail "the consumer had already exited"
echo "  answered 503 within $(($(cl_now_ms) - stop_at)) ms of SIGTERM"
rs_wait_exit "$pid" $((10 + 2 * RS_SCALE))
rs_assert_exit 0
rs_assert_file_contains "$err" "stopped in"
rs_assert_eq 0 "$(cl_pending jobs)" "entries left pending after the shutdown"
# The server is gone with the process.
hc_request GET /healthz
rs_assert_eq 000 "$HC_STATUS" "a request after the exit"
rs_pass

rs_case "no body, and no log line, holds the password; no sanitizer report"
hc_assert_no_password
rs_assert_file_lacks "$err" "$RS_REDIS_PASSWORD"
rs_assert_file_lacks "$err" "Sanitizer"
rs_assert_file_lacks "$err" "runtime error:"
rs_pass
