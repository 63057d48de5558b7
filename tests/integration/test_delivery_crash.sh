#!/usr/bin/env bash
#
# The crash test of the delivery guarantees: at-least-once across SIGKILLs.
#
# N numbered entries (field n = 1..N) are published in ROUNDS batches, interleaved with the
# kills, while two consumers of one group run the log handler, each one's stdout appended to a
# file of its own (c1.out, c2.out). Consumer c1 is killed with SIGKILL once per round, at a
# random point of its progress, and restarted under the same name (it re-reads its own
# pending entries); consumer c2 is killed with SIGKILL midway and never restarted, so its
# pending entries must be claimed by c1 (XAUTOCLAIM after claim_idle_ms). At the end:
#   - every number 1..N was handled at least once (in the union of both outputs), nothing else;
#   - nothing is pending and nothing unread (XPENDING 0, lag 0), nothing dead-lettered;
#   - every handling is a delivery of its own: no (id, delivery) pair was handled twice, and
#     there are no more duplicates than lines with delivery > 1 (Redis counted each one);
#   - if c2 died holding entries, c1 logged claiming them;
#   - the last c1 stops cleanly on SIGTERM.
# It prints the duplicate count ("duplicates: D"); duplicates are allowed (at-least-once).
#
# A slow sink: each consumer's stdout is a FIFO read by a small copier that appends to the
# consumer's file at a bounded rate (SINK_RATE lines a second). Unthrottled, a consumer
# handles ~100,000 entries a second, faster than this script can publish and kill, and most
# kills would land on an idle process;
# throttled, its queue and handlers are full when it is killed, which is the case that
# matters. A line is written and flushed (into the FIFO, whose content outlives the writer)
# before its ack, so every acknowledged entry reaches the file. A line cut by a kill would be
# skipped by the parser.
#
# Publishing is paced by the consumers: the next batch goes out once fewer than 2 * BATCH
# entries are left undelivered, so there is a backlog and the kills are spread over the run.
#
# Environment: RS_SEED seeds $RANDOM (the kill points); it is printed for reproducing a run.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

if ((RS_SLOW)); then
    N=40000
    SINK_RATE=1200
else
    N=200000
    SINK_RATE=8000
fi
ROUNDS=12                # batches published, and kills of c1 (one per round)
C2_ROUND=$((ROUNDS / 2)) # the round in which c2 dies for good
BATCH=$(((N + ROUNDS - 1) / ROUNDS))
CLAIM_IDLE_MS=2000
RS_SEED=${RS_SEED:-$(((RANDOM << 15) | RANDOM))}
RANDOM=$RS_SEED
echo "  N=$N entries in $ROUNDS batches, sink $SINK_RATE lines/s per consumer," \
    "claim_idle_ms $CLAIM_IDLE_MS, seed $RS_SEED"

# Set by spawn; read directly and through ${!name}.
# shellcheck disable=SC2034
PID_c1="" PID_c2="" SINK_c1="" SINK_c2=""
rs_start_redis

# write_conf CONSUMER: writes $RS_TMP/CONSUMER.conf for consumer CONSUMER of group "workers"
# on "events" (log handler). max_deliveries is high: a kill must never dead-letter.
write_conf() {
    rs_write_config "$1" >/dev/null <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "$1"; start_id = "0"; read_count = 200; block_ms = 200;
          max_deliveries = 1000; claim_idle_ms = $CLAIM_IDLE_MS; retry_base_ms = 100;
          retry_max_ms = 1000; idle_consumer_timeout_ms = 0; };
workers = { threads = 4; queue_capacity = 1024; shutdown_timeout_ms = 5000; };
streams = ( { name = "events"; handler = "log"; } );
health = { port = $(rs_free_port); };
log = { level = "info"; };
EOF
}

# The copier: FIFO -> file (appending), at most RATE lines a second (a token bucket holding
# at most 50 ms of credit). Exits at EOF: the consumer has exited and the FIFO is drained.
cat >"$RS_TMP/sink.py" <<'PY'
import os, sys, time
fifo, path, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
src = os.open(fifo, os.O_RDONLY)
dst = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
due = time.monotonic()
while True:
    data = os.read(src, 8192)
    if not data:
        break
    os.write(dst, data)
    now = time.monotonic()
    due = max(due, now - 0.05) + data.count(b"\n") / rate
    if due > now:
        time.sleep(due - now)
PY

# spawn NAME: starts consumer NAME (c1, c2) with $RS_TMP/NAME.conf, its stdout through a
# copier appending to $RS_TMP/NAME.out, its stderr appended to NAME.err (both files kept
# across restarts). Sets PID_<NAME> and SINK_<NAME>.
spawn() {
    local fifo=$RS_TMP/$1.fifo
    [[ -p $fifo ]] || mkfifo "$fifo"
    "$RS_PYTHON" "$RS_TMP/sink.py" "$fifo" "$RS_TMP/$1.out" "$SINK_RATE" &
    rs_track $!
    printf -v "SINK_$1" %s $!
    "$RS_CONSUMER" -c "$RS_TMP/$1.conf" </dev/null >"$fifo" 2>>"$RS_TMP/$1.err" &
    rs_track $!
    printf -v "PID_$1" %s $!
}

# reap PID: waits for PID (ours) to exit, checks it exited with status 0, and forgets it.
reap() {
    rs_wait_exit "$1" $((10 * RS_SCALE))
    rs_assert_exit 0
}

TRUNCATED=0
# sigkill NAME: SIGKILLs consumer NAME, reaps it and its copier (which drains the FIFO
# first), and ends NAME.out with a newline if a line was cut, so that the next incarnation's
# first line is not glued to it.
sigkill() {
    local pid=PID_$1 sink=SINK_$1
    # Disowned first, so bash reaps it silently instead of reporting "Killed".
    disown "${!pid}"
    kill -KILL "${!pid}"
    RS_WAIT_TIMEOUT=$((10 * RS_SCALE)) rs_wait_for rs_exited "${!pid}" ||
        rs_fail "$1 (pid ${!pid}) still running $((10 * RS_SCALE)) s after SIGKILL"
    rs_untrack "${!pid}"
    reap "${!sink}"
    if [[ -n $(tail -c 1 "$RS_TMP/$1.out") ]]; then
        echo >>"$RS_TMP/$1.out"
        TRUNCATED=$((TRUNCATED + 1))
    fi
}

# lines NAME: lines in NAME.out so far.
lines() {
    wc -l <"$RS_TMP/$1.out"
}

# consumer_pending NAME: entries pending on consumer NAME (XINFO CONSUMERS), 0 when unknown.
consumer_pending() {
    rs_cli XINFO CONSUMERS events workers 2>/dev/null | awk -v want="$1" '
        prev == "name" { ours = ($0 == want) }
        ours && prev == "pending" { print; found = 1; exit }
        { prev = $0 }
        END { if (!found) print 0 }'
}

# progressed NAME FROM R: true once NAME.out has FROM + R lines while NAME has entries
# pending (it is in the middle of its work), once the stream has been delivered and
# acknowledged entirely (nothing left to do), or once the consumer exited.
progressed() {
    local pid=PID_$1
    rs_exited "${!pid}" && return 0
    if (($(lines "$1") >= $2 + $3)); then
        (($(consumer_pending "$1") > 0)) && return 0
    fi
    cl_settled events
}

# backlog_below MAX: true when fewer than MAX entries of events are undelivered (lag).
backlog_below() {
    local lag
    lag=$(cl_group_field events lag)
    [[ $lag =~ ^[0-9]+$ ]] && ((lag < $1))
}

# --- the batches ---------------------------------------------------------------------------------
"$RS_PYTHON" - "$RS_TMP" "$N" "$BATCH" <<'PY' || rs_fail "cannot write the batches"
import sys
tmp, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def bulk(s):
    s = s.encode()
    return b"$%d\r\n%s\r\n" % (len(s), s)
for r in range((n + per - 1) // per):
    with open("%s/batch%d.resp" % (tmp, r + 1), "wb") as out:
        for k in range(r * per + 1, min(n, (r + 1) * per) + 1):
            out.write(b"*5\r\n" + b"".join(bulk(a) for a in ("XADD", "events", "*", "n", str(k))))
PY

rs_case "$N entries, c1 SIGKILLed and restarted $ROUNDS times, c2 SIGKILLed for good midway"
: >"$RS_TMP/c1.out"
: >"$RS_TMP/c2.out"
write_conf c1
write_conf c2
start_ms=$(cl_now_ms)
spawn c1
spawn c2
RS_ERR=$RS_TMP/c1.err
kills_busy=0 # kills of c1 while it had entries pending
c2_pending=0
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round > 1)); then
        RS_WAIT_TIMEOUT=$((30 * RS_SCALE)) rs_wait_for backlog_below $((2 * BATCH)) ||
            cl_fail "round $round: the consumers stopped making progress:" \
                "lag $(cl_group_field events lag), pending $(cl_pending events)"
    fi
    cl_pipe "$RS_TMP/batch$round.resp"
    if ((round == C2_ROUND)); then
        from=$(lines c2)
        r=$((1 + RANDOM % (BATCH / 3)))
        RS_WAIT_TIMEOUT=$((10 * RS_SCALE)) rs_wait_for progressed c2 "$from" "$r" || true
        rs_exited "$PID_c2" && rs_fail "c2 exited by itself before it was killed"
        c2_pending=$(consumer_pending c2)
        sigkill c2
        echo "  round $round: killed c2 for good after $(($(lines c2) - from)) more lines" \
            "(target $r), $c2_pending pending"
    fi
    from=$(lines c1)
    # Mostly inside the batch; sometimes at once (during its recovery or first claim pass).
    share=$((round < C2_ROUND ? BATCH / 3 : 2 * BATCH / 3))
    if ((RANDOM % 4 == 0)); then r=$((1 + RANDOM % 20)); else r=$((1 + RANDOM % share)); fi
    RS_WAIT_TIMEOUT=$((10 * RS_SCALE)) rs_wait_for progressed c1 "$from" "$r" || true
    rs_exited "$PID_c1" && rs_fail "c1 exited by itself (round $round)"
    pending=$(consumer_pending c1)
    if ((pending > 0)); then kills_busy=$((kills_busy + 1)); fi
    sigkill c1
    echo "  round $round: killed c1 after $(($(lines c1) - from)) more lines (target $r)," \
        "$pending pending"
    spawn c1
done
echo "  $ROUNDS kills of c1 ($kills_busy with entries pending); all published" \
    "$(($(cl_now_ms) - start_ms)) ms after the start"
# Most kills land on a busy c1 (it always is once c2 is gone and a backlog is left); a few
# idle ones are fine, but a run where none hit work would have tested nothing.
rs_assert_ge 3 "$kills_busy" "kills of c1 while it had entries pending"
rs_assert_eq "$N" "$(rs_cli XLEN events)" "entries in events"

# all_seen: nothing pending or unread, and every number is in the union of the outputs (the
# expensive check runs only once the cheap one holds).
all_seen() {
    cl_settled events || return 1
    "$RS_PYTHON" - "$N" "$RS_TMP/c1.out" "$RS_TMP/c2.out" <<'PY'
import json, sys
n, seen = int(sys.argv[1]), set()
for path in sys.argv[2:]:
    for raw in open(path, "rb"):
        try:
            seen.add(int(json.loads(raw)["fields"]["n"]))
        except Exception:
            pass
sys.exit(0 if len(seen & set(range(1, n + 1))) == n else 1)
PY
}
cl_wait_for "$PID_c1" $((60 * RS_SCALE)) all_seen ||
    cl_fail "not all handled: pending $(cl_pending events), lag $(cl_group_field events lag)," \
        "lines c1 $(lines c1) c2 $(lines c2)"
echo "  settled $(($(cl_now_ms) - start_ms)) ms after the start"

"$RS_PYTHON" - "$N" "$TRUNCATED" "$RS_TMP/c1.out" "$RS_TMP/c2.out" <<'PY' ||
import collections, json, sys
n, truncated, paths = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
handled = collections.Counter()       # number -> handlings
per_delivery = collections.Counter()  # (id, delivery) -> handlings
id_of, problems, invalid, total, redelivered = {}, [], 0, 0, 0
for path in paths:
    for raw in open(path, "rb"):
        try:
            o = json.loads(raw)
            num = int(o["fields"]["n"])
        except Exception:
            invalid += 1  # a line cut by SIGKILL
            continue
        total += 1
        if o["stream"] != "events" or set(o["fields"]) != {"n"} or not 1 <= num <= n:
            problems.append("unexpected line: %r" % raw[:200])
            continue
        if id_of.setdefault(num, o["id"]) != o["id"]:
            problems.append("number %d under two ids: %s and %s" % (num, id_of[num], o["id"]))
        handled[num] += 1
        per_delivery[(o["id"], o["delivery"])] += 1
        redelivered += o["delivery"] > 1
missing = [k for k in range(1, n + 1) if k not in handled]
if missing:
    problems.append("%d numbers never handled, e.g. %s" % (len(missing), missing[:10]))
twice = [k for k, c in per_delivery.items() if c > 1]
if twice:
    problems.append("%d deliveries handled more than once, e.g. (id, delivery) %s"
                    % (len(twice), twice[:5]))
dups = total - len(handled)
print("  handled %d distinct of %d; %d lines, %d with delivery > 1, max delivery %d; "
      "%d unparsable lines (%d cut by a kill)"
      % (len(handled), n, total, redelivered, max([d for _, d in per_delivery] or [0]),
         invalid, truncated))
print("duplicates: %d" % dups)
if dups > redelivered:
    problems.append("%d duplicates but only %d lines with delivery > 1" % (dups, redelivered))
for p in problems[:10]:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
    rs_fail "entries lost or handled wrongly (see above)"
rs_assert_eq 0 "$(cl_pending events)" "XPENDING count"
rs_assert_eq 0 "$(cl_group_field events lag)" "group lag"
rs_assert_eq 0 "$(rs_cli XLEN events:dlq)" "entries in events:dlq"
rs_assert_eq 0 "$(consumer_pending c2)" "entries still pending on the dead c2"
if ((c2_pending > 0)); then
    grep -qE "stream=events claimed [0-9]+ entries pending longer than $CLAIM_IDLE_MS ms" \
        "$RS_TMP/c1.err" || rs_fail "c2 died with $c2_pending pending but c1 never claimed any"
fi
rs_pass

rs_case "the last c1 stops on SIGTERM with status 0; no sanitizer report, no ERROR line"
cl_stop_consumer "$PID_c1" 5000
rs_assert_exit 0
reap "$SINK_c1"
cl_assert_clean_stderr "$RS_TMP/c1.err"
cl_assert_clean_stderr "$RS_TMP/c2.err"
rs_pass
