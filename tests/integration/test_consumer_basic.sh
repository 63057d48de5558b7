#!/usr/bin/env bash
#
# redstream-consumer against a private redis-server, the plain path: the Go demo's entries on
# two streams are each handled exactly once and acknowledged; SIGTERM stops it cleanly; a
# Redis that is down at start is waited for; --check-config keeps the password to itself.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

PER_STREAM=500 # entries per stream in (a); cheap enough for sanitizer builds too
EXPECTED=$RS_TMP/expected.txt
: >"$EXPECTED"

# xadd_demo STREAM FIRST COUNT: XADDs COUNT demo entries ("Message #FIRST"...) through
# redis-cli, one command per line on its stdin, and appends "stream id n timestamp" for each
# id Redis returned to $EXPECTED.
xadd_demo() {
    local stream=$1 first=$2 count=$3 ts i
    local cmds=$RS_TMP/xadd-$stream-$first.txt ids=$RS_TMP/xadd-$stream-$first.ids
    ts=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    for ((i = first; i < first + count; i++)); do
        printf 'XADD %s * message "Message #%d" type test timestamp %s\n' "$stream" "$i" "$ts"
    done >"$cmds"
    rs_cli <"$cmds" >"$ids"
    rs_assert_eq "$count" "$(grep -cE '^[0-9]+-[0-9]+$' "$ids")" "ids returned by XADD to $stream"
    awk -v s="$stream" -v f="$first" -v ts="$ts" '{ print s, $0, f + NR - 1, ts }' "$ids" \
        >>"$EXPECTED"
}

# check_demo_output EXPECTED OUT: every expected entry appears exactly once in OUT with its
# fields intact and delivery 1, and OUT holds nothing else. Prints a one-line summary.
check_demo_output() {
    "$RS_PYTHON" - "$1" "$2" <<'PY' || rs_fail "the consumer's output does not match what was added"
import collections, json, sys
exp = {}
for line in open(sys.argv[1]):
    stream, id_, n, ts = line.split()
    exp[(stream, id_)] = {"message": "Message #" + n, "type": "test", "timestamp": ts}
seen, bad = collections.Counter(), []
for raw in open(sys.argv[2], "rb"):
    o = json.loads(raw)
    key = (o["stream"], o["id"])
    seen[key] += 1
    if key not in exp:
        bad.append("unexpected entry %s %s" % key)
    elif o["fields"] != exp[key]:
        bad.append("fields of %s %s: %r" % (key + (o["fields"],)))
    elif o["delivery"] != 1:
        bad.append("delivery of %s %s: %d" % (key + (o["delivery"],)))
bad += ["handled %d times: %s %s" % ((c,) + k) for k, c in seen.items() if c > 1]
bad += ["never handled: %s %s" % k for k in exp if k not in seen]
per = collections.Counter(k[0] for k in seen)
print("  handled %s; %d problems" % (dict(per), len(bad)))
for b in bad[:10]:
    print("  " + b)
sys.exit(1 if bad else 0)
PY
}

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
conf=$(cl_config basic)

# --- (d) --check-config --------------------------------------------------------------------------
rs_case "--check-config accepts the test configuration and never prints the password"
rs_run check "$RS_CONSUMER" -c "$conf" --check-config
rs_assert_exit 0
rs_assert_file_contains "$RS_OUT" "is valid"
rs_assert_file_contains "$RS_OUT" "events"
rs_assert_file_lacks "$RS_OUT" "$RS_REDIS_PASSWORD"
rs_assert_file_lacks "$RS_ERR" "$RS_REDIS_PASSWORD"
rs_pass

# --- (a) every entry handled exactly once and acknowledged ----------------------------------------
rs_case "$PER_STREAM demo entries per stream are handled exactly once and acknowledged"
# Part of the entries exists before the consumer starts (read from id 0), the rest arrives
# while it runs.
backlog=$((PER_STREAM * 2 / 5))
xadd_demo events 1 "$backlog"
xadd_demo logs 1 "$backlog"
cl_spawn_consumer a "$conf"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
xadd_demo events $((backlog + 1)) $((PER_STREAM - backlog))
xadd_demo logs $((backlog + 1)) $((PER_STREAM - backlog))
all_done() {
    cl_has_lines "$out" events "$PER_STREAM" && cl_has_lines "$out" logs "$PER_STREAM" &&
        cl_settled events logs
}
cl_wait_for "$pid" $((20 * RS_SCALE)) all_done ||
    cl_fail "not all handled and acked: events $(cl_count_lines "$out" events) lines," \
        "pending $(cl_pending events), lag $(cl_group_field events lag); logs" \
        "$(cl_count_lines "$out" logs) lines, pending $(cl_pending logs)," \
        "lag $(cl_group_field logs lag)"
check_demo_output "$EXPECTED" "$out"
rs_pass

# --- (b) SIGTERM ---------------------------------------------------------------------------------
rs_case "SIGTERM stops it with status 0 and no ERROR line"
RS_ERR=$err
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
echo "  stopped in ${CL_STOP_MS} ms"
cl_assert_clean_stderr "$err"
rs_assert_file_contains "$err" "received Terminated"
rs_assert_file_contains "$err" "stopped in"
# Nothing was handled a second time on the way out.
check_demo_output "$EXPECTED" "$out"
rs_pass

# --- (c) Redis down at start ----------------------------------------------------------------------
rs_case "started while Redis is down, it retries, then consumes once Redis is up"
rs_stop_redis
port=$(rs_free_port)
conf_down=$(cl_config down port="$port")
cl_spawn_consumer down "$conf_down"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((5 * RS_SCALE)) grep -qsE " WARN .*127\.0\.0\.1:$port" "$err" ||
    rs_fail "no warning naming 127.0.0.1:$port"
# Retrying, not given up: a later attempt is logged and the process is still there.
cl_wait_for "$pid" $((5 * RS_SCALE)) grep -qs "still unreachable" "$err" ||
    rs_fail "no second connection attempt logged"
rs_exited "$pid" && rs_fail "the consumer exited while Redis was down"
rs_assert_file_lacks "$err" "$RS_REDIS_PASSWORD"
# The same port now gets a server (lib.sh restarts on $RS_REDIS_PORT).
RS_REDIS_PORT=$port
rs_restart_redis
: >"$EXPECTED"
xadd_demo events 1 20
xadd_demo logs 1 20
down_done() {
    cl_has_lines "$out" events 20 && cl_has_lines "$out" logs 20 && cl_settled events logs
}
# The backoff caps at 5 s between attempts, so allow for one full step.
cl_wait_for "$pid" $((15 * RS_SCALE)) down_done ||
    cl_fail "not handled after Redis came up: events $(cl_count_lines "$out" events)," \
        "logs $(cl_count_lines "$out" logs) lines"
check_demo_output "$EXPECTED" "$out"
rs_assert_file_contains "$err" "connected to redis 127.0.0.1:$port after"
rs_pass

rs_case "SIGINT stops it like SIGTERM: status 0, no ERROR line"
RS_ERR=$err
cl_stop_consumer "$pid" 5000 INT
rs_assert_exit 0
cl_assert_clean_stderr "$err"
rs_assert_file_contains "$err" "received Interrupt"
rs_pass
