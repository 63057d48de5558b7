#!/usr/bin/env bash
#
# redstream-consumer rides out a Redis crash. redis-server runs with an fsync'ed AOF
# (--appendonly yes --appendfsync always: every write it confirmed survives SIGKILL), the
# producer adds an entry every 5 ms and logs each id Redis confirmed, and mid-run the server is
# killed with SIGKILL and restarted on the same port from its AOF. Afterwards every confirmed id
# has been handled, and nothing stays pending or unread: nothing lost, everything acknowledged
# after the recovery.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"

BEFORE=200 # entries handled before the crash
AFTER=200  # entries published after the restart

rs_start_redis --appendonly yes --appendfsync always
conf=$(cl_config restart streams="events:log" threads=4 queue=64 shutdown_ms=5000)

# published FILE: how many ids the producer has logged as confirmed so far.
published() {
    local n
    n=$(grep -c ' published stream=events id=' "$1" 2>/dev/null) || true
    echo "${n:-0}"
}

rs_case "Redis killed (SIGKILL) and restarted from its AOF mid-run: every confirmed id handled"
cl_spawn_consumer consumer "$conf"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists events ||
    rs_fail "the consumer never created its group"
rs_spawn producer env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" "$RS_PRODUCER" \
    --redis-addr "127.0.0.1:$RS_REDIS_PORT" --stream events --interval 5ms
producer=$RS_PID
producer_err=$RS_ERR
RS_ERR=$err
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_has_lines "$out" events "$BEFORE" ||
    rs_fail "only $(cl_count_lines "$out" events) entries handled before the crash"

rs_stop_redis
killed_at=$(published "$producer_err")
# Restart only once both programs have seen the outage, so their reconnect paths really run.
outage_seen() {
    grep -q "still unreachable" "$err" && grep -q "Connection refused" "$producer_err"
}
cl_wait_for "$pid" $((10 * RS_SCALE)) outage_seen ||
    rs_fail "the outage was not noticed by both programs"
rs_restart_redis
echo "  crash after $killed_at confirmed ids; restarted on port $RS_REDIS_PORT"

more_published() {
    (($(published "$producer_err") >= killed_at + AFTER))
}
cl_wait_for "$producer" $((20 * RS_SCALE)) more_published ||
    rs_fail "the producer did not resume: $(published "$producer_err") ids"
kill -TERM "$producer"
rs_wait_exit "$producer" $((5 * RS_SCALE))
rs_assert_exit 0
grep -o ' published stream=events id=[0-9-]*' "$producer_err" | sed 's/.*id=//' \
    >"$RS_TMP/confirmed.ids"
rs_cli XRANGE events - + | awk 'NR % 7 == 1' >"$RS_TMP/stream.ids"

# all_handled: every confirmed id is in the output, and the group has nothing pending or
# unread.
all_handled() {
    cl_settled events || return 1
    cl_handled "$out" | awk '{ print $2 }' | sort -u >"$RS_TMP/handled.ids"
    [[ -z $(sort -u "$RS_TMP/confirmed.ids" | comm -23 - "$RS_TMP/handled.ids") ]]
}
cl_wait_for "$pid" $((30 * RS_SCALE)) all_handled ||
    cl_fail "not all handled after the restart: pending $(cl_pending events)," \
        "lag $(cl_group_field events lag), confirmed but not handled:" \
        "$(sort -u "$RS_TMP/confirmed.ids" | comm -23 - "$RS_TMP/handled.ids" | wc -l)"
"$RS_PYTHON" - "$RS_TMP" "$out" <<'PY' || rs_fail "entries lost across the Redis restart"
import collections, json, sys
tmp, out = sys.argv[1], sys.argv[2]
read = lambda name: [l.strip() for l in open("%s/%s" % (tmp, name)) if l.strip()]
confirmed, in_stream = read("confirmed.ids"), set(read("stream.ids"))
lines = [json.loads(l) for l in open(out, "rb")]
handled = collections.Counter(o["id"] for o in lines)
redelivered = sum(1 for o in lines if o["delivery"] > 1)
print("  confirmed %d, in the stream %d, handled %d (%d duplicate lines, %d with delivery > 1)" %
      (len(confirmed), len(in_stream), len(handled), len(lines) - len(handled), redelivered))
problems = []
lost_by_redis = [i for i in confirmed if i not in in_stream]
if lost_by_redis:
    problems.append("confirmed but gone from the stream (AOF?): %s" % lost_by_redis[:5])
unhandled = [i for i in confirmed if i not in handled]
if unhandled:
    problems.append("confirmed but never handled: %s" % unhandled[:5])
# Pending 0 and lag 0 say every entry was acknowledged; each must have been handled too.
acked_unhandled = sorted(in_stream - set(handled))
if acked_unhandled:
    problems.append("in the stream, acknowledged, never handled: %s" % acked_unhandled[:5])
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
rs_assert_file_contains "$err" "connected to redis 127.0.0.1:$RS_REDIS_PORT after"
rs_pass

rs_case "after the recovery, SIGTERM stops it with status 0"
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
rs_assert_file_lacks "$err" "$RS_REDIS_PASSWORD"
rs_assert_file_lacks "$err" "Sanitizer"
rs_pass
