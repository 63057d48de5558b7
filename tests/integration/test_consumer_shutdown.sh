#!/usr/bin/env bash
#
# Graceful shutdown and restart of redstream-consumer: SIGTERM in the middle of a backlog
# stops it in time without losing an entry (each is acknowledged, still pending, or was never
# delivered, and nothing is acknowledged unhandled); a restart finishes the work. Entries
# left pending for this consumer by an earlier life are handled before new ones. And handlers
# blocked for good (stdout nobody reads) do not keep the consumer from exiting at the shutdown
# deadline: what they held stays pending and a restart handles it.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

TOTAL=20000
SHUTDOWN_MS=3000
STOP_AFTER=2000 # lines handled before SIGTERM: well inside the backlog
# The first run's stdout goes through a FIFO to a reader that copies it to a file, pausing
# this long per line (about 4,000 lines a second at most): however fast the consumer (an
# unsanitized build writes a file at 100,000+ lines a second), a backlog is left at SIGTERM,
# and the queue (1,024) still drains well within the shutdown timeout.
LINE_DELAY_MS=0.2

# all_ids STREAM: every id in STREAM, in order (XRANGE prints an id and 6 field lines per
# demo entry).
all_ids() {
    rs_cli XRANGE "$1" - + | awk 'NR % 7 == 1'
}

# xadd_ids STREAM FIRST COUNT: XADDs COUNT demo entries through redis-cli and prints their ids.
xadd_ids() {
    local i
    for ((i = $2; i < $2 + $3; i++)); do
        printf 'XADD %s * message "Message #%d" type test timestamp %s\n' "$1" "$i" \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    done | rs_cli
}

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
conf=$(cl_config shutdown streams="events:log" threads=4 queue=1024 shutdown_ms=$SHUTDOWN_MS)
cl_resp_xadd "$RS_TMP/backlog.resp" events "$TOTAL"
cl_pipe "$RS_TMP/backlog.resp"
all_ids events >"$RS_TMP/all.ids"
rs_assert_eq "$TOTAL" "$(wc -l <"$RS_TMP/all.ids")" "ids in events"

# --- SIGTERM with a backlog ---------------------------------------------------------------------
rs_case "SIGTERM with a backlog of $TOTAL: exit 0 within ${SHUTDOWN_MS} ms, no entry lost"
fifo=$RS_TMP/first.fifo
mkfifo "$fifo"
out1=$RS_TMP/first.out
rs_spawn copier "$RS_PYTHON" -c "$CL_PY" slow-reader "$RS_TMP/first.count" "$LINE_DELAY_MS" \
    "$fifo" "$out1"
copier=$RS_PID
cl_spawn_io first /dev/null "$fifo" "$RS_CONSUMER" -c "$conf"
pid=$RS_PID
err1=$RS_ERR
cl_wait_for "$pid" $((20 * RS_SCALE)) cl_has_lines "$out1" events "$STOP_AFTER" ||
    rs_fail "only $(cl_count_lines "$out1" events) lines handled"
cl_stop_consumer "$pid" "$SHUTDOWN_MS"
rs_assert_exit 0
rs_assert_le $((SHUTDOWN_MS + 1000 * RS_SCALE)) "$CL_STOP_MS" "shutdown time (ms)"
cl_assert_clean_stderr "$err1"
rs_assert_file_contains "$err1" "stopped in"
# The copier has everything the consumer wrote once it sees EOF.
rs_wait_exit "$copier" $((10 * RS_SCALE))
rs_assert_exit 0
cl_handled "$out1" | awk '{ print $2 }' >"$RS_TMP/handled1.ids"
cl_pending_ids events >"$RS_TMP/pending1.ids"
last=$(cl_group_field events last-delivered-id)
echo "  stopped in ${CL_STOP_MS} ms; last delivered id $last"
# The sets, in Python: ids compare as (ms, seq) pairs, not as text.
"$RS_PYTHON" - "$RS_TMP" "$last" <<'PY' || rs_fail "entries lost or acknowledged unhandled"
import sys
tmp, last = sys.argv[1], sys.argv[2]
key = lambda i: tuple(int(x) for x in i.split("-"))
read = lambda name: [l.strip() for l in open("%s/%s" % (tmp, name)) if l.strip()]
all_ids, handled_list, pending = read("all.ids"), read("handled1.ids"), set(read("pending1.ids"))
handled = set(handled_list)
every = set(all_ids)
delivered = {i for i in every if key(i) <= key(last)}
never = every - delivered
acked = delivered - pending
print("  handled %d (%d duplicates), pending %d, never delivered %d, acked %d" %
      (len(handled), len(handled_list) - len(handled), len(pending), len(never), len(acked)))
problems = []
if handled | pending | never != every:
    problems.append("lost: %s" % sorted(every - (handled | pending | never), key=key)[:5])
if not acked <= handled:
    problems.append("acknowledged but never handled: %s" % sorted(acked - handled, key=key)[:5])
if not handled <= delivered:
    problems.append("handled but never delivered: %s" % sorted(handled - delivered, key=key)[:5])
if not pending <= delivered:
    problems.append("pending but never delivered: %s" % sorted(pending - delivered, key=key)[:5])
if not never:
    problems.append("no backlog was left at SIGTERM: the case tested nothing")
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
rs_pass

# --- the restart finishes the work ---------------------------------------------------------------
rs_case "a restart handles the rest: every id handled, nothing pending, lag 0"
cl_spawn_consumer second "$conf"
pid=$RS_PID
out2=$RS_OUT
err2=$RS_ERR
cl_wait_for "$pid" $((30 * RS_SCALE)) cl_settled events ||
    rs_fail "not settled: pending $(cl_pending events), lag $(cl_group_field events lag)"
cl_stop_consumer "$pid" "$SHUTDOWN_MS"
rs_assert_exit 0
cl_assert_clean_stderr "$err2"
cl_handled "$out2" >"$RS_TMP/handled2.txt"
"$RS_PYTHON" - "$RS_TMP" <<'PY' || rs_fail "the restart did not finish the work"
import sys
tmp = sys.argv[1]
read = lambda name: [l.split() for l in open("%s/%s" % (tmp, name)) if l.strip()]
every = {l[0] for l in read("all.ids")}
first = [l[0] for l in read("handled1.ids")]
pending1 = {l[0] for l in read("pending1.ids")}
second = read("handled2.txt")
both = first + [l[1] for l in second]
dups = len(both) - len(set(both))
acked1 = set(first) - pending1
print("  second run handled %d; duplicates over both runs: %d" % (len(second), dups))
problems = []
if set(both) != every:
    problems.append("never handled: %s" % sorted(every - set(both))[:5])
again = [l[1] for l in second if l[1] in acked1]
if again:
    problems.append("acknowledged in the first run, delivered again: %s" % again[:5])
redelivered = [l[1] for l in second if int(l[2]) > 1 and l[1] not in pending1]
if redelivered:
    problems.append("delivery > 1 for entries that were not pending: %s" % redelivered[:5])
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
rs_pass

# --- pending entries come first ------------------------------------------------------------------
rs_case "entries already pending for c1 are handled before new ones, with delivery >= 2"
rs_cli XGROUP CREATE prio workers 0 MKSTREAM >/dev/null
xadd_ids prio 1 10 >"$RS_TMP/old.ids"
# Delivered to c1 and never acknowledged: pending, as after a crash.
rs_cli XREADGROUP GROUP workers c1 COUNT 10 STREAMS prio '>' >/dev/null
rs_assert_eq 10 "$(cl_pending prio)" "pending in prio before the start"
xadd_ids prio 11 10 >"$RS_TMP/new.ids"
# One worker: with several, two entries taken from the queue back to back may be written in
# either order, so "first" would only hold for the queue, not for the output.
conf_prio=$(cl_config prio streams="prio:log" threads=1 shutdown_ms=$SHUTDOWN_MS)
cl_spawn_consumer prio "$conf_prio"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
prio_done() {
    cl_has_lines "$out" prio 20 && cl_settled prio
}
cl_wait_for "$pid" $((10 * RS_SCALE)) prio_done ||
    rs_fail "$(cl_count_lines "$out" prio) of 20 handled, pending $(cl_pending prio)"
cl_stop_consumer "$pid" "$SHUTDOWN_MS"
rs_assert_exit 0
cl_assert_clean_stderr "$err"
cl_handled "$out" >"$RS_TMP/prio.txt"
rs_assert_eq 20 "$(wc -l <"$RS_TMP/prio.txt")" "lines handled"
rs_assert_eq "$(sort "$RS_TMP/old.ids" | tr '\n' ' ')" \
    "$(head -n 10 "$RS_TMP/prio.txt" | awk '{ print $2 }' | sort | tr '\n' ' ')" \
    "ids of the first 10 lines"
rs_assert_eq "$(sort "$RS_TMP/new.ids" | tr '\n' ' ')" \
    "$(tail -n 10 "$RS_TMP/prio.txt" | awk '{ print $2 }' | sort | tr '\n' ' ')" \
    "ids of the last 10 lines"
while read -r _ id delivery; do
    rs_assert_ge 2 "$delivery" "delivery of pending entry $id"
done < <(head -n 10 "$RS_TMP/prio.txt")
while read -r _ id delivery; do
    rs_assert_eq 1 "$delivery" "delivery of new entry $id"
done < <(tail -n 10 "$RS_TMP/prio.txt")
rs_pass

# --- a handler that cannot finish -----------------------------------------------------------------
rs_case "SIGTERM while every handler is blocked on its output: exit 0 within the timeout"
# stdout is a FIFO that nobody reads until the consumer has exited: once the pipe buffer is
# full, every worker sits in write(2) inside the log handler and cannot finish by the deadline.
# consumer.h promises an exit anyway ("the caller must then exit without freeing"); what was not
# finished stays pending. Afterwards the holder drains what the pipe kept, for the checks.
STUCK_MS=1000
STUCK_QUEUE=64
fifo=$RS_TMP/stuck.fifo
mkfifo "$fifo"
flag=$RS_TMP/stuck.drain
cl_resp_xadd "$RS_TMP/stuck.resp" stuck 2000
cl_pipe "$RS_TMP/stuck.resp"
all_ids stuck >"$RS_TMP/stuck-all.ids"
# (The program is an argument: a background job's stdin is /dev/null, not a here-document.)
# shellcheck disable=SC2016 # Python code, not shell
holder_py='
import os, sys, time
fifo, flag, out = sys.argv[1:4]
src = open(fifo, "rb")  # returns once the consumer has opened its end
deadline = time.monotonic() + 300
while not os.path.exists(flag) and time.monotonic() < deadline:
    time.sleep(0.02)
with open(out, "wb") as f:
    while True:
        chunk = src.read(65536)
        if not chunk:
            break
        f.write(chunk)
'
rs_spawn holder "$RS_PYTHON" -c "$holder_py" "$fifo" "$flag" "$RS_TMP/stuck1.out"
holder=$RS_PID
conf_stuck=$(cl_config stuck streams="stuck:log" threads=4 queue=$STUCK_QUEUE shutdown_ms=$STUCK_MS)
cl_spawn_io stuck /dev/null "$fifo" "$RS_CONSUMER" -c "$conf_stuck"
pid=$RS_PID
err=$RS_ERR
# Stalled: the queue is (nearly) full, every worker holds an entry, and nothing has moved for
# 0.5 s. Nearly: a reader that found the queue full waits until a whole batch fits (its share,
# half the queue here), so the queue may stay up to that many entries short of full.
stall_seen=""
stall_since=0
stalled() {
    local now cur
    now=$(cl_now_ms)
    cur="$(cl_group_field stuck entries-read)/$(cl_pending stuck)"
    if [[ $cur != "$stall_seen" ]]; then
        stall_seen=$cur
        stall_since=$now
        return 1
    fi
    [[ ${cur#*/} =~ ^[0-9]+$ ]] && ((now - stall_since >= 500 && ${cur#*/} >= STUCK_QUEUE / 2 + 4))
}
cl_wait_for "$pid" $((15 * RS_SCALE)) stalled ||
    rs_fail "the handlers never blocked: delivered/pending $stall_seen"
echo "  stalled with delivered/pending $stall_seen"
start=$(cl_now_ms)
kill -TERM "$pid"
limit_s=$(((STUCK_MS + 999) / 1000 + RS_SCALE))
if ! RS_WAIT_TIMEOUT=$limit_s rs_wait_for rs_exited "$pid"; then
    threads=$(for t in /proc/"$pid"/task/*; do
        printf '%s:%s ' "$(cat "$t/comm")" "$(cat "$t/wchan" 2>/dev/null)"
    done)
    cl_fail "still running $(($(cl_now_ms) - start)) ms after SIGTERM with" \
        "shutdown_timeout_ms=$STUCK_MS; threads (name:wait channel): $threads"
fi
rs_wait_exit "$pid" 1
rs_assert_exit 0
echo "  exited $(($(cl_now_ms) - start)) ms after SIGTERM"
rs_assert_file_contains "$err" "left pending for the next start"
touch "$flag"
rs_wait_exit "$holder" $((10 * RS_SCALE))
rs_assert_exit 0
# A worker killed inside write(2) leaves a partial last line: its entry was not acknowledged.
"$RS_PYTHON" -c '
import sys
data = open(sys.argv[1], "rb").read()
open(sys.argv[1], "wb").write(data[:data.rfind(b"\n") + 1])' "$RS_TMP/stuck1.out"
cl_handled "$RS_TMP/stuck1.out" | awk '{ print $2 }' >"$RS_TMP/stuck1.ids"
cl_pending_ids stuck >"$RS_TMP/stuck-pending.ids"
last=$(cl_group_field stuck last-delivered-id)
"$RS_PYTHON" - "$RS_TMP" "$last" <<'PY' || rs_fail "entries lost or acknowledged unhandled"
import sys
tmp, last = sys.argv[1], sys.argv[2]
key = lambda i: tuple(int(x) for x in i.split("-"))
read = lambda name: {l.strip() for l in open("%s/%s" % (tmp, name)) if l.strip()}
every, written, pending = read("stuck-all.ids"), read("stuck1.ids"), read("stuck-pending.ids")
delivered = {i for i in every if key(i) <= key(last)}
acked = delivered - pending
print("  written %d, acked %d, left pending %d, never delivered %d" %
      (len(written), len(acked), len(pending), len(every - delivered)))
problems = []
if not acked <= written:
    problems.append("acknowledged but never written: %s" % sorted(acked - written, key=key)[:5])
if not pending:
    problems.append("nothing left pending although the handlers were blocked")
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
rs_pass

rs_case "after a blocked shutdown, a restart handles every entry"
conf_stuck2=$(cl_config stuck2 streams="stuck:log" threads=4 shutdown_ms=$SHUTDOWN_MS)
cl_spawn_consumer stuck2 "$conf_stuck2"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((20 * RS_SCALE)) cl_settled stuck ||
    rs_fail "not settled: pending $(cl_pending stuck), lag $(cl_group_field stuck lag)"
cl_stop_consumer "$pid" "$SHUTDOWN_MS"
rs_assert_exit 0
cl_assert_clean_stderr "$err"
cl_handled "$out" | awk '{ print $2 }' >"$RS_TMP/stuck2.ids"
missing=$(sort -u "$RS_TMP/stuck1.ids" "$RS_TMP/stuck2.ids" | comm -13 - <(sort "$RS_TMP/stuck-all.ids") | head -n 5)
[[ -z $missing ]] || rs_fail "never handled: $missing"
echo "  duplicates over both runs: $(($(cat "$RS_TMP/stuck1.ids" "$RS_TMP/stuck2.ids" | wc -l) - $(sort -u "$RS_TMP/stuck1.ids" "$RS_TMP/stuck2.ids" | wc -l)))"
rs_pass
