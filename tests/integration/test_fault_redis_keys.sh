#!/usr/bin/env bash
#
# Faults in Redis's keyspace under a running consumer: the stream deleted, the group
# destroyed, a key of another type under a stream's name. For each, the consumer must log a
# clear line naming the stream and what is wrong, keep serving the other stream, and lose
# nothing that was published after (or not yet delivered before) the fault.
#
# The consumer reads "events" and "logs" with the log handler; its stdout is a FIFO read
# slowly (4 ms a line, each line over 1.5 KB so the pipe holds few), so entries are in flight
# (queued, in a worker) when each fault hits, and the events reader is often waiting for room
# in the queue rather than blocked in XREADGROUP. group.start_id is "$": a reader that created
# a vanished group again at its start_id would skip every entry added between the fault and
# its next read; the restart point it records (service/stream_id.h) must deliver them all.
# Cases:
#   - DEL events with entries in flight, and 100 published right after it (in the same
#     MULTI/EXEC, so they are there before any reader can notice): the reader creates
#     stream and group again at its restart point and says so; all 100 are handled; logs
#     flows meanwhile and is settled (nothing pending, lag 0);
#   - XGROUP DESTROY while 200 entries flow, 100 more published with it: every one of the
#     300 is handled (some twice: at-least-once), and the log names stream, group and id;
#   - DEL + SET events while running: an ERROR per backoff step (a bounded number of lines)
#     naming the stream and the key's type; logs keeps flowing; /readyz 503 names events and
#     the cause, /healthz stays 200 past the liveness window, /streams shows Redis's error;
#     DEL (the fix) and entries published right after are handled, a recovery line is logged;
#   - a consumer started while a key "bad" is a hash: the same for "bad", events served; once
#     the key is deleted the group is created and bad's entries are handled; SIGTERM exits 0.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/health_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/health_lib.sh"
# shellcheck source=tests/integration/redis_fault_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/redis_fault_lib.sh"

LIVENESS_MS=2000

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
hc_pick_port
conf=$(rs_write_config keys <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; start_id = "\$"; block_ms = 200; read_count = 8;
          claim_idle_ms = 2000; retry_max_ms = 1000; };
workers = { threads = 2; queue_capacity = 16; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $HC_PORT; liveness_timeout_ms = $LIVENESS_MS; };
streams = ( { name = "events"; handler = "log"; }, { name = "logs"; handler = "log"; } );
log = { level = "info"; };
EOF
)
fifo=$RS_TMP/stdout.fifo
mkfifo "$fifo"
out=$RS_TMP/handled.jsonl
rs_spawn slow-reader "$RS_PYTHON" -c "$CL_PY" slow-reader "$RS_TMP/read.count" 4 "$fifo" "$out"
cl_spawn_io c1 /dev/null "$fifo" "$RS_CONSUMER" -c "$conf"
pid=$RS_PID
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists events ||
    rs_fail "the consumer never created its group on events"
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists logs ||
    rs_fail "the consumer never created its group on logs"

# ---------------------------------------------------------------------------------------------
rs_case "DEL of the stream with entries in flight: stream and group created again, nothing after lost"
before=$RS_TMP/before-del.txt # published before the DEL: those not delivered are deleted data
after=$RS_TMP/after-del.txt   # published after it: every one must be handled
others=$RS_TMP/logs.txt       # the other stream's, all along: every one handled exactly once
: >"$before"
: >"$after"
: >"$others"
rf_publish "$before" events before 200
rf_publish "$others" logs during-del 20
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_has_lines "$out" events 30 ||
    rs_fail "the first 30 entries were not handled: $(cl_count_lines "$out" events)"
mark=$(rf_mark "$err")
rf_publish_after "$after" events after 100 DEL events
rf_publish "$others" logs after-del 20
recreated() {
    rf_logged_since "$err" "$mark" "WARN +reader: stream=events created group workers again at [0-9]+-[0-9]+: "
}
cl_wait_for "$pid" $((10 * RS_SCALE)) recreated ||
    rs_fail "no 'created group workers again' line: $(rf_since "$err" "$mark" | head -n 5)"
del_done() {
    rf_all_handled "$after" "$out" && rf_all_handled "$others" "$out" && cl_settled events logs
}
cl_wait_for "$pid" $((20 * RS_SCALE)) del_done ||
    cl_fail "not done: $(rf_missing "$after" "$RS_TMP/rf-handled.txt") of 100 published after" \
        "the DEL unhandled; pending events $(cl_pending events), logs $(cl_pending logs)"
# The reader saw the key go (woken in XREADGROUP, or at its next read) and said so.
rf_since "$err" "$mark" | grep -E "reader: stream=events (XREADGROUP|XAUTOCLAIM): " |
    head -n 1 >"$RS_TMP/noticed.txt" || true
rs_assert_match "(UNBLOCKED the stream key no longer exists \(the stream was deleted\)|NOGROUP .*\(the consumer group or the stream was deleted\)); creating group workers again" \
    "$(cat "$RS_TMP/noticed.txt")" "the line noticing the DEL"
read -r once more never < <(rf_times "$others" "$out")
rs_assert_eq "40 0 0" "$once $more $never" "logs entries handled once, more, never"
read -r once more never < <(rf_times "$before" "$out")
echo "  of 200 entries published before the DEL: $once handled, $never deleted unhandled"
rs_assert_ge 30 "$once" "entries handled before the DEL"
# Nothing here is an error: acks of entries in flight that reach the new stream before its
# group exists are answered 0 (not pending), as the deleted entries are.
rs_assert_eq 0 "$(rf_count_since "$err" "$mark" " ERROR ")" "ERROR lines after the DEL"
rs_pass

# ---------------------------------------------------------------------------------------------
rs_case "XGROUP DESTROY while entries flow: created again at a safe id, every entry handled"
flowing=$RS_TMP/flowing.txt
: >"$flowing"
base=$(cl_count_lines "$out" events)
rf_publish "$flowing" events flowing 200
rf_publish "$others" logs during-destroy 20
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_has_lines "$out" events $((base + 30)) ||
    rs_fail "30 of the entries were not handled"
mark=$(rf_mark "$err")
rf_publish_after "$flowing" events added 100 XGROUP DESTROY events workers
rf_publish "$others" logs after-destroy 20
destroy_done() {
    rf_all_handled "$flowing" "$out" && rf_all_handled "$others" "$out" && cl_settled events logs
}
cl_wait_for "$pid" $((20 * RS_SCALE)) destroy_done ||
    cl_fail "not done: $(rf_missing "$flowing" "$RS_TMP/rf-handled.txt") of 300 unhandled;" \
        "pending events $(cl_pending events), lag $(cl_group_field events lag)"
line=$(rf_since "$err" "$mark" | grep -E "reader: stream=events created group workers again at " |
    head -n 1) || true
rs_assert_match "WARN +reader: stream=events created group workers again at [0-9]+-[0-9]+: every entry after that id is delivered" \
    "$line" "the line naming stream, group and restart id"
echo "  ${line#* reader: }"
rs_assert_match "reader: stream=events (XREADGROUP|XAUTOCLAIM): NOGROUP .*\(the consumer group or the stream was deleted\); creating group workers again" \
    "$(rf_since "$err" "$mark" | grep -E 'reader: stream=events (XREADGROUP|XAUTOCLAIM): ' | head -n 1)" \
    "the line noticing the destroyed group"
read -r once more never < <(rf_times "$flowing" "$out")
echo "  300 entries: $once handled once, $more more than once (at-least-once), $never never"
rs_assert_eq 0 "$never" "entries never handled"
read -r once more never < <(rf_times "$others" "$out")
rs_assert_eq "80 0 0" "$once $more $never" "logs entries handled once, more, never"
rs_pass

# ---------------------------------------------------------------------------------------------
rs_case "a string replaces the stream while running: bounded errors, logs served, health says why"
mark=$(rf_mark "$err")
start_ms=$(cl_now_ms)
rs_cli DEL events >/dev/null
rs_cli SET events "not a stream" >/dev/null
wrongtype_lines() {
    rf_count_since "$err" "$mark" "ERROR +reader: stream=events (XGROUP CREATE|XREADGROUP) refused: WRONGTYPE .*\(key events is a string; the key holds another type than a stream: rename or delete it\); retrying in [0-9]+ ms$"
}
refused_six_times() {
    (($(wrongtype_lines) >= 6))
}
during=$RS_TMP/during-wrongtype.txt
: >"$during"
rf_publish "$during" logs during-wrongtype 30
# Six refusals take at least 1.5 s of backoff (100 + 200 + 400 + 800 ms, jittered down to
# half): time enough to see the liveness window (2 s) pass with it.
cl_wait_for "$pid" $((15 * RS_SCALE)) refused_six_times ||
    rs_fail "not refused six times: $(rf_since "$err" "$mark" | head -n 5)"
cl_wait_for "$pid" $((10 * RS_SCALE)) rf_all_handled "$during" "$out" ||
    rs_fail "logs was not served meanwhile: $(rf_missing "$during" "$RS_TMP/rf-handled.txt") unhandled"
hc_expect GET /readyz 503
rs_assert_file_contains "$HC_BODY" "stream events: Redis refuses the reader's commands: the key holds another type than a stream"
rs_assert_file_lacks "$HC_BODY" "stream logs"
# Alive: Redis answers and the reader retries; a restart could not fix the key. Wait out the
# liveness window from the first refusal before asking.
past_window() {
    (($(cl_now_ms) - start_ms > LIVENESS_MS + 500))
}
cl_wait_for "$pid" $((10 * RS_SCALE)) past_window
hc_expect GET /healthz 200
hc_expect GET /streams 200
"$RS_PYTHON" - "$HC_BODY" <<'PY' || rs_fail "/streams: $(head -c 600 "$HC_BODY")"
import json, sys
doc = json.load(open(sys.argv[1]))
ev = [s for s in doc["streams"] if s["name"] == "events"][0]
lg = [s for s in doc["streams"] if s["name"] == "logs"][0]
assert "WRONGTYPE" in (ev.get("error") or ""), ev
assert ev["process"]["reader_connected"] is False, ev["process"]
assert lg["process"]["reader_connected"] is True and not lg.get("error"), lg
PY
# The fix, and entries published at once after it.
fixed=$RS_TMP/after-fix.txt
: >"$fixed"
rs_cli DEL events >/dev/null
rf_publish "$fixed" events after-fix 50
cl_wait_for "$pid" $((15 * RS_SCALE)) rf_all_handled "$fixed" "$out" ||
    rs_fail "$(rf_missing "$fixed" "$RS_TMP/rf-handled.txt") of the 50 entries after the fix unhandled"
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_settled events logs ||
    rs_fail "not settled: pending $(cl_pending events), lag $(cl_group_field events lag)"
elapsed=$(($(cl_now_ms) - start_ms))
lines=$(wrongtype_lines)
echo "  $lines refusal lines in $elapsed ms (at most $(rf_max_refusal_lines "$elapsed"))"
rs_assert_le "$(rf_max_refusal_lines "$elapsed")" "$lines" "refusal lines for events"
rs_assert_match "INFO +reader: stream=events Redis accepts the reader's commands again after [0-9]+ refusals?" \
    "$(rf_since "$err" "$mark" | grep -F "accepts the reader's commands again" | head -n 1)" \
    "the recovery line"
cl_wait_for "$pid" $((5 * RS_SCALE)) hc_status_is GET /readyz 200 ||
    rs_fail "/readyz did not recover: $HC_STATUS $(cat "$HC_BODY")"
rs_pass

rs_case "SIGTERM stops it with status 0; no sanitizer report, no password"
rf_stop_and_check "$pid" "$err"
rs_pass

# ---------------------------------------------------------------------------------------------
rs_case "started while a stream's key is a hash: that stream retried and reported, the other served"
rs_cli HSET bad field value >/dev/null
hc_pick_port
conf2=$(rs_write_config bad <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c2"; block_ms = 200; read_count = 8; };
workers = { threads = 2; queue_capacity = 16; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $HC_PORT; liveness_timeout_ms = $LIVENESS_MS; };
streams = ( { name = "events"; handler = "log"; }, { name = "bad"; handler = "log"; } );
log = { level = "info"; };
EOF
)
cl_spawn_consumer c2 "$conf2"
pid=$RS_PID
err=$RS_ERR
out2=$RS_OUT
start_ms=$(cl_now_ms)
bad_lines() {
    rf_count_since "$err" 0 "ERROR +reader: stream=bad XGROUP CREATE refused: WRONGTYPE .*\(key bad is a hash; the key holds another type than a stream: rename or delete it\); retrying in [0-9]+ ms$"
}
refused_four_times() {
    (($(bad_lines) >= 4))
}
cl_wait_for "$pid" $((10 * RS_SCALE)) refused_four_times ||
    rs_fail "bad was not refused four times: $(head -n 5 "$err")"
served=$RS_TMP/served.txt
: >"$served"
rf_publish "$served" events served 20
cl_wait_for "$pid" $((10 * RS_SCALE)) rf_all_handled "$served" "$out2" ||
    rs_fail "events was not served: $(rf_missing "$served" "$RS_TMP/rf-handled.txt") unhandled"
hc_expect GET /readyz 503
rs_assert_file_contains "$HC_BODY" "stream bad: Redis refuses the reader's commands: the key holds another type than a stream"
rs_assert_file_lacks "$HC_BODY" "stream events"
hc_expect GET /healthz 200
rs_cli DEL bad >/dev/null
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists bad ||
    rs_fail "the group on bad was not created after the fix"
fixed=$RS_TMP/bad-fixed.txt
: >"$fixed"
rf_publish "$fixed" bad fixed 20
cl_wait_for "$pid" $((10 * RS_SCALE)) rf_all_handled "$fixed" "$out2" ||
    rs_fail "$(rf_missing "$fixed" "$RS_TMP/rf-handled.txt") of bad's entries unhandled"
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_settled bad events ||
    rs_fail "not settled: pending bad $(cl_pending bad), events $(cl_pending events)"
elapsed=$(($(cl_now_ms) - start_ms))
lines=$(bad_lines)
echo "  $lines refusal lines in $elapsed ms (at most $(rf_max_refusal_lines "$elapsed"))"
rs_assert_le "$(rf_max_refusal_lines "$elapsed")" "$lines" "refusal lines for bad"
rs_assert_file_contains "$err" "stream=bad Redis accepts the reader's commands again after"
rf_stop_and_check "$pid" "$err"
rs_pass
