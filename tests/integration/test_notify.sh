#!/usr/bin/env bash
#
# systemd's notify protocol, as a Type=notify unit with WatchdogSec= sees it.
#
# The test plays the service manager: it binds a datagram socket, passes it to the consumer as
# $NOTIFY_SOCKET with $WATCHDOG_USEC (1 s), and records every datagram with its arrival time.
# It checks that:
#   - with Redis down at start, no READY=1 is sent, STATUS= says what the start waits for, and
#     WATCHDOG=1 still arrives (a Redis outage is not a hang: a restart would not help);
#   - once Redis is up, READY=1 arrives, and by then every stream's group exists;
#   - STATUS= counts the messages handled;
#   - WATCHDOG=1 keeps arriving at least twice per interval, also during an outage long enough
#     to make /healthz fail;
#   - SIGHUP gives RELOADING=1 then READY=1;
#   - SIGTERM gives STOPPING=1 before the process exits, and the exit is clean.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

SOCK=$RS_TMP/notify.sock
LOG=$RS_TMP/notify.log
HEALTH_PORT=$(rs_free_port)
WATCHDOG_USEC=1000000

# The service manager's end: one line per datagram, "<monotonic ms> <fields joined by |>".
cat >"$RS_TMP/listen.py" <<'PY'
import os, socket, sys, time
sock_path, log_path = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock_path)
with open(log_path, "a", buffering=1) as log:
    log.write("%d LISTENING\n" % (time.monotonic() * 1000))
    deadline = time.monotonic() + 300  # never outlive a broken test
    s.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            data = s.recv(4096)
        except socket.timeout:
            continue
        log.write("%d %s\n" % (time.monotonic() * 1000, data.decode("utf-8", "replace").strip().replace("\n", "|")))
PY
rs_spawn listener "$RS_PYTHON" "$RS_TMP/listen.py" "$SOCK" "$LOG"
rs_wait_for grep -qs LISTENING "$LOG" || rs_fail "the notify listener did not start"

# count PATTERN: datagrams so far matching the extended regex PATTERN.
count() {
    grep -cE -- "$1" "$LOG" || true
}
has() {
    (($(count "$1") >= $2))
}
# last_ms PATTERN: arrival time of the last datagram matching PATTERN.
last_ms() {
    grep -E -- "$1" "$LOG" | tail -n 1 | cut -d' ' -f1
}

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
REDIS_PORT=$RS_REDIS_PORT
rs_stop_redis
CONF=$(cl_config notify port="$REDIS_PORT" streams="events:log logs:log" \
    health_port="$HEALTH_PORT" block_ms=200 liveness_ms=1000)

rs_case "Redis down at start: no READY, STATUS says why, the watchdog is fed"
NOTIFY_SOCKET=$SOCK WATCHDOG_USEC=$WATCHDOG_USEC cl_spawn_consumer consumer "$CONF"
CONSUMER=$RS_PID
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) has 'WATCHDOG=1' 3 || rs_fail "no WATCHDOG=1 while starting"
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) has 'STATUS=starting: stream (events|logs): not connected' 1 ||
    rs_fail "no STATUS= naming what the start waits for: $(tail -n 3 "$LOG")"
rs_assert_eq 0 "$(count 'READY=1')" "READY=1 datagrams before Redis is up"
rs_pass

rs_case "READY=1 once the groups exist"
rs_restart_redis
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) has 'READY=1' 1 || rs_fail "no READY=1 after Redis came up"
cl_group_exists events || rs_fail "READY=1 sent before the group on events existed"
cl_group_exists logs || rs_fail "READY=1 sent before the group on logs existed"
rs_assert_match 'STATUS=2 streams; [0-9]+ messages handled' "$(grep 'READY=1' "$LOG" | head -n 1)" \
    "READY=1 datagram"
rs_pass

rs_case "STATUS= counts the messages handled"
for i in $(seq 1 25); do rs_cli XADD events '*' message "m$i" type test >/dev/null; done
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) has 'STATUS=2 streams; 25 messages handled' 1 ||
    rs_fail "no STATUS= with 25 messages handled: $(grep STATUS "$LOG" | tail -n 1)"
rs_pass

rs_case "the watchdog is fed at least twice per interval, through an outage that fails /healthz"
rs_stop_redis
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) bash -c \
    "! curl -fsS -o /dev/null 2>/dev/null http://127.0.0.1:$HEALTH_PORT/healthz" ||
    rs_fail "/healthz kept passing with Redis down past liveness_timeout_ms"
START=$(last_ms 'WATCHDOG=1')
BEFORE=$(count 'WATCHDOG=1')
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) has 'WATCHDOG=1' $((BEFORE + 4)) ||
    rs_fail "the watchdog stopped being fed during the outage"
# The largest gap between consecutive pings since the outage began: under the interval.
GAP=$(grep 'WATCHDOG=1' "$LOG" | awk -v from="$START" '$1 >= from { if (prev) { g = $1 - prev; if (g > max) max = g } prev = $1 } END { print max + 0 }')
rs_assert_le $((WATCHDOG_USEC * 3 / 4000 + 250 * RS_SCALE)) "$GAP" "largest gap between WATCHDOG=1 (ms)"
rs_restart_redis
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) curl -fs -o /dev/null "http://127.0.0.1:$HEALTH_PORT/readyz" ||
    rs_fail "not ready again after Redis came back"
rs_pass

rs_case "SIGHUP: RELOADING=1, then READY=1"
READY_BEFORE=$(count 'READY=1')
kill -HUP "$CONSUMER"
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) has 'READY=1' $((READY_BEFORE + 1)) ||
    rs_fail "no READY=1 after the reload"
RELOADING=$(last_ms 'RELOADING=1')
[[ -n $RELOADING ]] || rs_fail "no RELOADING=1"
rs_assert_match 'MONOTONIC_USEC=[0-9]+' "$(grep 'RELOADING=1' "$LOG" | tail -n 1)" "RELOADING=1 datagram"
rs_assert_le "$(last_ms 'READY=1')" "$RELOADING" "RELOADING=1 arrival (must precede READY=1)"
rs_pass

rs_case "SIGTERM: STOPPING=1 before the exit"
kill -TERM "$CONSUMER"
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) has 'STOPPING=1' 1 || true
rs_wait_exit "$CONSUMER" $((10 * RS_SCALE))
rs_assert_exit 0
rs_assert_eq 1 "$(count 'STOPPING=1')" "STOPPING=1 datagrams"
rs_assert_match 'STATUS=stopping: ' "$(grep 'STOPPING=1' "$LOG")" "STOPPING=1 datagram"
rs_assert_file_lacks "$RS_TMP/consumer.err" "$RS_REDIS_PASSWORD"
rs_assert_file_lacks "$LOG" "$RS_REDIS_PASSWORD"
rs_pass
