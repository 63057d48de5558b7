#!/usr/bin/env bash
#
# Network fault: the connection is reset (RST) in the middle of a reply. faultproxy.py sits
# between redstream-consumer and redis-server and cuts one chosen connection after a given
# number of reply bytes, closing both sockets with SO_LINGER 0.
#
#   - an XREADGROUP reply of 100 entries of 8 KiB each (about 800 KiB) to stream events'
#     reader is cut after 256 KiB: the reader logs the reset naming the address, reconnects,
#     and re-reads the entries Redis delivered but it never received from its pending list
#     (delivery 2); stream logs, on its own connection, is not disturbed; every entry is
#     handled exactly once and nothing stays pending;
#   - the acknowledger's connection is cut in the middle of an XACK reply (Redis has run the
#     XACK, the reply is lost): it logs it, reconnects and sends the acks again; every entry
#     is handled once, with delivery 1, and nothing stays pending.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/netfault_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/netfault_lib.sh"

BIG=300        # entries of BIG_BYTES in stream events
BIG_BYTES=8192 # size of each one's payload field
SMALL=100      # small entries in stream logs, per case

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
fp_start "$RS_REDIS_PORT"

# resp_big FILE STREAM COUNT FIRST: COUNT XADDs with a "payload" field of BIG_BYTES bytes, as
# RESP for redis-cli --pipe.
resp_big() {
    "$RS_PYTHON" - "$@" "$BIG_BYTES" <<'PY'
import sys
path, stream, count, first, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def resp(out, *args):
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        a = a if isinstance(a, bytes) else a.encode()
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))
with open(path, "wb") as out:
    for n in range(first, first + count):
        body = (b"%08d" % n) * (size // 8)
        resp(out, "XADD", stream, "*", "message", "Message #%d" % n, "type", "test", "payload", body)
PY
}

# check_once FILE STREAM... : every entry of each STREAM in Redis was handled exactly once
# (one output line per id, no id missing, none unknown).
check_once() {
    local out=$1
    shift
    "$RS_PYTHON" - "$out" "$RS_TMP" "$@" <<'PY' || rs_fail "entries lost or handled twice"
import collections, json, subprocess, sys
out, tmp, streams = sys.argv[1], sys.argv[2], sys.argv[3:]
lines = [json.loads(l) for l in open(out, "rb")]
ok = True
for s in streams:
    ids = open("%s/%s.ids" % (tmp, s)).read().split()
    seen = collections.Counter(o["id"] for o in lines if o["stream"] == s)
    missing = [i for i in ids if i not in seen]
    twice = [i for i, n in seen.items() if n > 1]
    unknown = [i for i in seen if i not in set(ids)]
    print("  %s: %d in the stream, %d handled, %d missing, %d twice" % (s, len(ids), sum(seen.values()), len(missing), len(twice)))
    if missing or twice or unknown:
        ok = False
        print("  missing %s twice %s unknown %s" % (missing[:5], twice[:5], unknown[:5]))
sys.exit(0 if ok else 1)
PY
}

# stream_ids STREAM: saves the stream's ids to $RS_TMP/STREAM.ids.
stream_ids() {
    rs_cli XRANGE "$1" - + | awk '/^[0-9]+-[0-9]+$/' >"$RS_TMP/$1.ids"
}

# settled_once PID OUT EVENTS: waits until consumer PID has settled streams events and logs
# (nothing pending, no lag) and its output OUT holds EVENTS lines of events, then checks that
# every entry of both streams in Redis was handled exactly once (check_once).
settled_once() {
    local pid=$1 out=$2 n=$3
    cl_wait_for "$pid" $((20 * RS_SCALE)) cl_settled events logs ||
        cl_fail "not settled: events pending $(cl_pending events) lag $(cl_group_field events lag)," \
            "logs pending $(cl_pending logs) lag $(cl_group_field logs lag)"
    cl_wait_for "$pid" $((5 * RS_SCALE)) cl_has_lines "$out" events "$n" ||
        rs_fail "events: $(cl_count_lines "$out" events) of $n handled"
    stream_ids events
    stream_ids logs
    check_once "$out" events logs
}

rs_cli XGROUP CREATE events workers 0 MKSTREAM >/dev/null
rs_cli XGROUP CREATE logs workers 0 MKSTREAM >/dev/null
resp_big "$RS_TMP/big.resp" events "$BIG" 1
cl_pipe "$RS_TMP/big.resp"
conf=$(cl_config reset port="$FP_PORT" streams="events:log logs:log" read_count=100 queue=200)

rs_case "an XREADGROUP reply of 100 x 8 KiB entries reset after 256 KiB: re-read, all handled once"
# Only the XREADGROUP ... > of stream events (not its recovery read from id 0, not logs).
# shellcheck disable=SC2016 # RESP text for the proxy, not a shell expansion
fp_ctl reset 262144 'STREAMS\r\n$6\r\nevents\r\n$1\r\n>'
cl_spawn_consumer reset "$conf"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_resp_xadd "$RS_TMP/logs1.resp" logs "$SMALL" 1
cl_pipe "$RS_TMP/logs1.resp"
cl_wait_for "$pid" $((10 * RS_SCALE)) fp_field_ge resets 1 ||
    rs_fail "the proxy never reset the XREADGROUP reply: $FP_REPLY"
lost="stream=events lost the connection: redis 127.0.0.1:$FP_PORT: XREADGROUP: Connection reset by peer; reconnecting"
cl_wait_for "$pid" $((5 * RS_SCALE)) grep -qF "$lost" "$err" ||
    rs_fail "no log line for the reset (want: $lost)"
settled_once "$pid" "$out" "$BIG"
# The entries of the cut reply were delivered by Redis (they were in c1's pending list) and
# never received: the recovery read them again, so Redis counts a second delivery.
reread=$(sed -n 's/.*stream=events re-read \([0-9]*\) pending entries of consumer c1.*/\1/p' "$err" | head -n 1)
[[ -n $reread ]] || rs_fail "no recovery pass logged for stream events"
second=$(cl_handled "$out" | awk '$1 == "events" && $3 == 2' | wc -l)
echo "  $reread entries re-read after the reset; $second handled with delivery 2"
rs_assert_ge 1 "$reread" "entries re-read"
rs_assert_eq "$reread" "$second" "entries handled with delivery 2"
rs_assert_eq 0 "$(cl_handled "$out" | awk '$3 > 2' | wc -l)" "entries delivered more than twice"
rs_assert_eq 0 "$(grep -c 'stream=logs lost the connection' "$err" || true)" "logs reader reconnects"
rs_assert_eq 1 "$(grep -c 'lost the connection' "$err" || true)" "connections lost"
rs_pass

rs_case "the acker's connection reset in the middle of an XACK reply: acks sent again, all handled once"
# Two bytes of the reply (":1" of ":100\r\n") get through, then the reset.
fp_ctl reset 2 XACK
cl_resp_xadd "$RS_TMP/events2.resp" events 200 $((BIG + 1))
cl_resp_xadd "$RS_TMP/logs2.resp" logs "$SMALL" $((SMALL + 1))
cl_pipe "$RS_TMP/events2.resp"
cl_pipe "$RS_TMP/logs2.resp"
cl_wait_for "$pid" $((10 * RS_SCALE)) fp_field_ge resets 2 ||
    rs_fail "the proxy never reset the acker's connection: $FP_REPLY"
acker_lost="acker: acks not sent: redis 127.0.0.1:$FP_PORT: connection lost: Connection reset by peer; sending again"
cl_wait_for "$pid" $((5 * RS_SCALE)) grep -qF "$acker_lost" "$err" ||
    rs_fail "no log line for the acker's reset (want: $acker_lost)"
settled_once "$pid" "$out" $((BIG + 200))
# The acks were sent again; no entry was delivered again.
rs_assert_eq "$second" "$(cl_handled "$out" | awk '$3 > 1' | wc -l)" "entries with delivery > 1"
# The readers' connections were not touched this time.
rs_assert_eq 1 "$(grep -c 'lost the connection' "$err" || true)" "reader connections lost"
rs_pass

rs_case "SIGTERM stops it with status 0; no ERROR line, no sanitizer report"
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
cl_assert_clean_stderr "$err"
rs_pass
