#!/usr/bin/env bash
#
# Network fault: Redis stops answering for longer than every timeout (CLIENT PAUSE 8000 ALL:
# the server holds every command of every client, new connections' AUTH included), while two
# producers publish to streams events and logs every 10 ms and the consumer reads both.
#
# The timeouts in play (connect_timeout_ms 2000, block_ms 200): a reader waits block_ms +
# connect_timeout_ms = 2200 ms for a reply, the acknowledger connect_timeout_ms, the producer
# max(connect_timeout_ms, 5000 ms), a handshake connect_timeout_ms. /healthz fails once a
# reader has completed no read for health.liveness_timeout_ms (2000 here).
#
# During the pause: the readers log the XREADGROUP timeout naming the address and reconnect
# (their handshakes time out too, with backoff), /readyz and /healthz answer 503, the producers
# log their XADD timeout and keep the entry to send it again. After it: both probes recover,
# the producers go on, every id a producer reported as confirmed is in its stream, every entry
# is handled and acknowledged; an entry handled twice must have been delivered twice by Redis
# (at-least-once); the number of duplicates is printed.
#
# While Redis is paused the test itself must not ask it anything (redis-cli would wait too):
# it watches the logs and the HTTP probes, which never touch Redis.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/health_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/health_lib.sh"

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"

PAUSE_MS=8000 # longer than every timeout above, the producer's 5000 ms included
AFTER=100     # entries each producer confirms after the pause before it is stopped

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
hc_pick_port
conf=$(cl_config pause streams="events:log logs:log" health_port="$HC_PORT" liveness_ms=2000 \
    block_ms=200)

# confirmed FILE STREAM: how many ids the producer logged as confirmed so far.
confirmed() {
    local n
    n=$(grep -c " published stream=$2 id=" "$1" 2>/dev/null) || true
    echo "${n:-0}"
}

rs_case "Redis paused ${PAUSE_MS} ms: timeouts logged, reconnects, /readyz and /healthz 503"
cl_spawn_consumer consumer "$conf"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) hc_status_is GET /readyz 200 ||
    rs_fail "the consumer never got ready: $HC_STATUS $(cat "$HC_BODY" 2>/dev/null)"
declare -A producer producer_err
for s in events logs; do
    rs_spawn "producer-$s" env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" "$RS_PRODUCER" \
        --redis-addr "127.0.0.1:$RS_REDIS_PORT" --stream "$s" --interval 10ms
    producer[$s]=$RS_PID
    producer_err[$s]=$RS_ERR
done
RS_ERR=$err
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_has_lines "$out" events 100 ||
    rs_fail "only $(cl_count_lines "$out" events) entries handled before the pause"

rs_cli CLIENT PAUSE "$PAUSE_MS" ALL >/dev/null
paused_at=$(cl_now_ms)
before_events=$(confirmed "${producer_err[events]}" events)
before_logs=$(confirmed "${producer_err[logs]}" logs)
# Everything below until the pause ends only reads files and the HTTP probes.
cl_wait_for "$pid" $((PAUSE_MS / 1000)) hc_status_is GET /readyz 503 "not connected" ||
    rs_fail "/readyz did not turn 503 during the pause: $HC_STATUS $(cat "$HC_BODY")"
readyz_ms=$(($(cl_now_ms) - paused_at))
cl_wait_for "$pid" $((PAUSE_MS / 1000)) hc_status_is GET /healthz 503 \
    "the reader has not completed a read for" ||
    rs_fail "/healthz did not turn 503 during the pause: $HC_STATUS $(cat "$HC_BODY")"
healthz_ms=$(($(cl_now_ms) - paused_at))
# Both probes must have turned while Redis was still paused (not merely after it).
rs_assert_le "$PAUSE_MS" "$healthz_ms" "ms until /healthz turned 503"
echo "  /readyz 503 after $readyz_ms ms, /healthz 503 after $healthz_ms ms: $(head -n 1 "$HC_BODY")"
for s in events logs; do
    line="stream=$s lost the connection: redis 127.0.0.1:$RS_REDIS_PORT: XREADGROUP: timed out after 2200 ms; reconnecting"
    cl_wait_for "$pid" $((PAUSE_MS / 1000)) grep -qF "$line" "$err" ||
        rs_fail "no timeout logged for the $s reader (want: $line)"
    line="XADD: timed out after 5000 ms; reconnecting, then sending the same entry again"
    cl_wait_for "${producer[$s]}" $((PAUSE_MS / 1000)) grep -qF "$line" "${producer_err[$s]}" ||
        rs_fail "no XADD timeout logged by the $s producer"
done
# A handshake during the pause times out too, and is retried with backoff.
rs_assert_file_contains "$err" "redis 127.0.0.1:$RS_REDIS_PORT: AUTH: timed out after 2000 ms; retrying in"
rs_pass

rs_case "after the pause: probes recover, producers go on; every confirmed id handled, nothing pending"
cl_wait_for "$pid" $(((PAUSE_MS / 1000 + 10) * RS_SCALE)) hc_status_is GET /readyz 200 ||
    rs_fail "/readyz did not recover: $HC_STATUS $(cat "$HC_BODY")"
echo "  /readyz 200 again $(($(cl_now_ms) - paused_at)) ms after the pause began"
cl_wait_for "$pid" $((5 * RS_SCALE)) hc_status_is GET /healthz 200 ||
    rs_fail "/healthz did not recover: $HC_STATUS $(cat "$HC_BODY")"
more_confirmed() {
    (($(confirmed "${producer_err[events]}" events) >= before_events + AFTER &&
        $(confirmed "${producer_err[logs]}" logs) >= before_logs + AFTER))
}
cl_wait_for "$pid" $((15 * RS_SCALE)) more_confirmed ||
    rs_fail "the producers did not resume after the pause"
for s in events logs; do
    kill -TERM "${producer[$s]}"
    RS_ERR=${producer_err[$s]}
    rs_wait_exit "${producer[$s]}" $((5 * RS_SCALE))
    rs_assert_exit 0
    grep -o " published stream=$s id=[0-9-]*" "${producer_err[$s]}" | sed 's/.*id=//' \
        >"$RS_TMP/$s.confirmed"
done
RS_ERR=$err
cl_wait_for "$pid" $((20 * RS_SCALE)) cl_settled events logs ||
    cl_fail "not settled: events pending $(cl_pending events) lag $(cl_group_field events lag)," \
        "logs pending $(cl_pending logs) lag $(cl_group_field logs lag)"
for s in events logs; do
    # Each entry's id followed by its message, one pair per line.
    rs_cli --no-raw XRANGE "$s" - + >"$RS_TMP/$s.xrange"
done
"$RS_PYTHON" - "$RS_TMP" "$out" <<'PY' || rs_fail "entries lost, or handled twice without a redelivery"
import collections, json, re, sys
tmp, out = sys.argv[1], sys.argv[2]
lines = [json.loads(l) for l in open(out, "rb")]
ok = True
for s in ("events", "logs"):
    confirmed = open("%s/%s.confirmed" % (tmp, s)).read().split()
    # redis-cli --no-raw: '1) 1) "<id>"' starts an entry, '2) "Message #N"' follows "message".
    text = open("%s/%s.xrange" % (tmp, s)).read()
    ids = re.findall(r'^\s*\d+\) 1\) "(\d+-\d+)"', text, re.M)
    messages = re.findall(r'"message"\n\s*\d+\) "(Message #\d+)"', text)
    mine = [o for o in lines if o["stream"] == s]
    times = collections.Counter(o["id"] for o in mine)
    deliveries = collections.defaultdict(set)
    for o in mine:
        deliveries[o["id"]].add(o["delivery"])
    in_stream = set(ids)
    lost = [i for i in confirmed if i not in in_stream]
    unhandled = [i for i in ids if i not in times]
    twice = [i for i, n in times.items() if n > 1]
    # Handled twice without Redis delivering it twice would be a bug, not at-least-once.
    bad_twice = [i for i in twice if max(deliveries[i]) < 2]
    dup_messages = sum(n - 1 for n in collections.Counter(messages).values() if n > 1)
    print("  %s: %d confirmed, %d in the stream, %d handled; duplicates: %d entries handled twice "
          "(consumer), %d messages stored twice (producer resend)" %
          (s, len(confirmed), len(ids), sum(times.values()), len(twice), dup_messages))
    for what, bad in (("confirmed but not in the stream", lost), ("never handled", unhandled),
                      ("handled twice in one delivery", bad_twice)):
        if bad:
            ok = False
            print("  %s %s: %s" % (s, what, bad[:5]))
    if len(messages) != len(ids):
        ok = False
        print("  %s: cannot parse XRANGE (%d ids, %d messages)" % (s, len(ids), len(messages)))
sys.exit(0 if ok else 1)
PY
rs_assert_file_contains "$err" "connected to redis 127.0.0.1:$RS_REDIS_PORT after"
rs_pass

rs_case "SIGTERM stops it with status 0; no ERROR line, no sanitizer report, no password"
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
cl_assert_clean_stderr "$err"
for s in events logs; do
    rs_assert_file_lacks "${producer_err[$s]}" "$RS_REDIS_PASSWORD"
    rs_assert_file_lacks "${producer_err[$s]}" "Sanitizer"
done
rs_pass
