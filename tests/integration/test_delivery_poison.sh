#!/usr/bin/env bash
#
# Retries, dead letters and their replay, with the exec handler and one worker thread.
#
# The handler (a bash script in $RS_TMP) reads the entry's JSON on stdin and acts on its
# field "kind":
#   ok        exit 0, record the id
#   poison    exit 3: a permanent failure
#   flaky     exit 75 (retryable) on deliveries 1 and 2, then exit 0 and record the id
#   always75  exit 75 every time
# With max_deliveries 4, retry_base_ms 100, retry_max_ms 400 it checks that:
#   - poison entries are dead-lettered to events:dlq after exactly one delivery
#     (redstream.delivery_count 1, redstream.last_error naming the exit status);
#   - always75 entries are delivered exactly 4 times, with the backoff between deliveries
#     ("retrying in N ms", N within the jittered range) and not much later than it once a
#     worker is free, then dead-lettered (delivery_count 4);
#   - flaky entries succeed on delivery 3 and are not dead-lettered;
#   - a waiting retry holds no worker: every ok entry, including those published after the
#     failures were seen, is handled before the first always75 entry runs its 4th delivery;
#   - nothing stays pending; the dead letters carry every original field and the metadata;
#   - redstream-producer --replay-dlq: --dry-run lists them and changes nothing, --count 1
#     moves exactly the oldest one, a plain run moves the rest; events:dlq ends empty and the
#     moved entries are back in events with their original fields only;
#   - last, a due retry is delivered promptly even while an idle reader holds every free
#     queue slot in a blocking XREADGROUP (read_count >= queue_capacity).

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"

# Entries per kind. Few: each is a process spawn, and the timing claims below need the one
# worker to get through the ok entries well within the always75 entries' backoff (>= 350 ms).
POISON=3
FLAKY=3
ALWAYS=3
OK_FIRST=10 # published right after the failing ones, in the same batch
OK_LATER=10 # published once the failing ones have been seen failing
MAX_DELIVERIES=4
echo "  $POISON poison, $FLAKY flaky, $ALWAYS always75, $((OK_FIRST + OK_LATER)) ok entries"

CALLS=$RS_TMP/calls.txt     # every run of the handler: "usec id kind delivery json_delivery"
RECORDED=$RS_TMP/recorded.txt # successes: "id kind delivery"
: >"$CALLS"
: >"$RECORDED"
handler=$RS_TMP/handler.sh
cat >"$handler" <<EOF
#!/bin/bash
# The exec handler of $RS_TEST_NAME (see there).
json=\$(cat)
kind=unknown
[[ \$json =~ \"kind\":\"([a-z0-9]+)\" ]] && kind=\${BASH_REMATCH[1]}
jd=?
[[ \$json =~ \"delivery\":([0-9]+) ]] && jd=\${BASH_REMATCH[1]}
echo "\${EPOCHREALTIME/./} \$REDSTREAM_ID \$kind \$REDSTREAM_DELIVERY \$jd \$REDSTREAM_STREAM" \
    >>"$CALLS"
case \$kind in
ok) echo "\$REDSTREAM_ID ok \$REDSTREAM_DELIVERY" >>"$RECORDED"; exit 0 ;;
poison) echo "cannot digest this entry" >&2; exit 3 ;;
flaky)
    if ((REDSTREAM_DELIVERY <= 2)); then exit 75; fi
    echo "\$REDSTREAM_ID flaky \$REDSTREAM_DELIVERY" >>"$RECORDED"
    exit 0
    ;;
always75) exit 75 ;;
*) exit 2 ;;
esac
EOF
chmod +x "$handler"

rs_start_redis
conf=$(rs_write_config poison <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; read_count = 16;
          max_deliveries = $MAX_DELIVERIES; retry_base_ms = 100; retry_max_ms = 400;
          claim_idle_ms = 5000; idle_consumer_timeout_ms = 0; };
workers = { threads = 1; queue_capacity = 256; shutdown_timeout_ms = 5000; };
streams = ( { name = "events"; handler = "exec"; command = ["$handler"]; timeout_ms = 5000; } );
health = { port = $(rs_free_port); };
log = { level = "info"; };
EOF
)

# publish KIND FIRST COUNT: XADDs COUNT entries of KIND (n = FIRST...) with a payload of
# spaces and UTF-8, and appends "id kind n" for each to $RS_TMP/published.txt.
published=$RS_TMP/published.txt
: >"$published"
publish() {
    local i ids=$RS_TMP/ids.txt
    for ((i = $2; i < $2 + $3; i++)); do
        printf 'XADD events * kind %s n %d payload "caf\\xc3\\xa9 #%d, \\"quoted\\""\n' \
            "$1" "$i" "$i"
    done | rs_cli >"$ids"
    rs_assert_eq "$3" "$(grep -cE '^[0-9]+-[0-9]+$' "$ids")" "ids returned by XADD ($1)"
    awk -v k="$1" -v f="$2" '{ print $0, k, f + NR - 1 }' "$ids" >>"$published"
}

# calls_of KIND [DELIVERY]: handler runs so far for entries of KIND (at DELIVERY).
calls_of() {
    awk -v k="$1" -v d="${2:-}" '$3 == k && (d == "" || $4 == d)' "$CALLS" | wc -l
}

# late CALLS_FILE ERR_FILE STREAM BOUND_MS [live]: for each "retrying in N ms" line of STREAM
# in ERR_FILE, how long after its due time (the line's time + N) the entry's next delivery
# started (CALLS_FILE); fails when one started more than BOUND_MS late although no other
# handler run started in between (the one worker was free for it), or never started. Prints
# the worst case. With "live", quietly: a next delivery not started yet fails only once it is
# BOUND_MS overdue (for waiting on "done, or already late").
late() {
    "$RS_PYTHON" - "$@" <<'PY'
import datetime, re, sys, time
calls_path, err_path, stream, bound = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
live = sys.argv[5:] == ["live"]
calls = [(int(p[0]) / 1000.0, p[1], int(p[3])) for p in (l.split() for l in open(calls_path)) if p]
rx = re.compile(r"(\S+) WARN +worker: stream=%s id=(\S+) delivery=(\d+) handler exec failed: "
                r".*; retrying in (\d+) ms$" % re.escape(stream))
worst, n, bad = 0.0, 0, []
for line in open(err_path, errors="replace"):
    m = rx.match(line.rstrip("\n"))
    if not m:
        continue
    logged = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000
    id_, d, due = m.group(2), int(m.group(3)), logged + int(m.group(4))
    nxt = [t for t, i, dd in calls if i == id_ and dd == d + 1]
    if not nxt:
        if not live or time.time() * 1000 - due > bound:
            bad.append("%s: delivery %d has not started %.0f ms after its retry was due"
                       % (id_, d + 1, time.time() * 1000 - due))
        continue
    n += 1
    if any(due < t < nxt[0] for t, _, _ in calls):
        continue  # the worker was busy with another entry
    worst = max(worst, nxt[0] - due)
    if nxt[0] - due > bound:
        bad.append("%s: delivery %d started %.0f ms after its retry was due (backoff %s ms)"
                   % (id_, d + 1, nxt[0] - due, m.group(4)))
if not live:
    print("  %d retries of %s; with the worker free, the latest started %.0f ms after it was due"
          % (n, stream, worst))
    for b in bad:
        print("  " + b)
sys.exit(1 if bad or (n == 0 and not live) else 0)
PY
}

# --- the run -------------------------------------------------------------------------------------
rs_case "poison, flaky and always75 entries are retried or dead-lettered; ok ones keep flowing"
cl_spawn_consumer c1 "$conf"
pid=$RS_PID
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists events ||
    rs_fail "the consumer never created its group"
# One batch, failing kinds first (interleaved), then ok: a worker that sat out the backoff of a
# failure in place would hold the ok entries behind it.
for ((i = 1; i <= ALWAYS || i <= POISON || i <= FLAKY; i++)); do
    if ((i <= POISON)); then printf 'poison %d\n' "$i"; fi
    if ((i <= FLAKY)); then printf 'flaky %d\n' "$i"; fi
    if ((i <= ALWAYS)); then printf 'always75 %d\n' "$i"; fi
done >"$RS_TMP/order.txt"
{
    while read -r kind n; do
        printf 'XADD events * kind %s n %d payload "caf\\xc3\\xa9 #%d, \\"quoted\\""\n' \
            "$kind" "$n" "$n"
    done <"$RS_TMP/order.txt"
    for ((i = 1; i <= OK_FIRST; i++)); do
        printf 'XADD events * kind ok n %d payload "caf\\xc3\\xa9 #%d, \\"quoted\\""\n' "$i" "$i"
    done
} | rs_cli >"$RS_TMP/ids.txt"
rs_assert_eq $((POISON + FLAKY + ALWAYS + OK_FIRST)) \
    "$(grep -cE '^[0-9]+-[0-9]+$' "$RS_TMP/ids.txt")" "ids returned by XADD"
paste -d ' ' "$RS_TMP/ids.txt" <(cat "$RS_TMP/order.txt" && seq 1 "$OK_FIRST" | sed 's/^/ok /') \
    >>"$published"
# The second wave of ok entries arrives while the always75 ones wait for their retries.
first_failures_seen() {
    (($(calls_of always75 1) == ALWAYS))
}
cl_wait_for "$pid" $((10 * RS_SCALE)) first_failures_seen ||
    rs_fail "the always75 entries were not all delivered once: $(calls_of always75 1)"
publish ok $((OK_FIRST + 1)) "$OK_LATER"

all_done() {
    (($(wc -l <"$RECORDED") >= OK_FIRST + OK_LATER + FLAKY)) &&
        (($(rs_cli XLEN events:dlq) >= POISON + ALWAYS)) && cl_settled events
}
cl_wait_for "$pid" $((20 * RS_SCALE)) all_done ||
    cl_fail "not settled: $(wc -l <"$RECORDED") recorded, $(rs_cli XLEN events:dlq) dead" \
        "letters, pending $(cl_pending events), lag $(cl_group_field events lag)"
rs_cli --json -2 XRANGE events:dlq - + >"$RS_TMP/dlq.json"
"$RS_PYTHON" - "$published" "$CALLS" "$RECORDED" "$RS_TMP/dlq.json" "$err" "$MAX_DELIVERIES" \
    <<'PY' || rs_fail "wrong outcome (see above)"
import collections, json, re, sys
pub_path, calls_path, rec_path, dlq_path, err_path, maxd = sys.argv[1:7]
maxd = int(maxd)
kind_of, n_of = {}, {}
for line in open(pub_path):
    id_, kind, n = line.split()
    kind_of[id_], n_of[id_] = kind, n
calls = [l.split() for l in open(calls_path) if l.strip()]
problems = []
runs = collections.defaultdict(list)  # id -> [(usec, delivery)]
for i, (usec, id_, kind, d, jd, stream) in enumerate(calls):
    if id_ not in kind_of or kind_of[id_] != kind:
        problems.append("handler ran for unknown entry %s (%s)" % (id_, kind))
    if jd != d or stream != "events":
        problems.append("%s: REDSTREAM_DELIVERY %s, JSON delivery %s, REDSTREAM_STREAM %s"
                        % (id_, d, jd, stream))
    runs[id_].append((int(usec), int(d), i))
want = {"ok": [1], "poison": [1], "flaky": [1, 2, 3], "always75": list(range(1, maxd + 1))}
for id_, kind in kind_of.items():
    got = [d for _, d, _ in runs.get(id_, [])]
    if got != want[kind]:
        problems.append("%s %s: deliveries handled %s, expected %s" % (kind, id_, got, want[kind]))
recorded = collections.Counter()
for line in open(rec_path):
    id_, kind, d = line.split()
    recorded[id_] += 1
    if kind == "flaky" and d != "3":
        problems.append("flaky %s succeeded on delivery %s, expected 3" % (id_, d))
should = {i for i, k in kind_of.items() if k in ("ok", "flaky")}
if set(recorded) != should or any(c != 1 for c in recorded.values()):
    problems.append("recorded %s, expected each of %d ok/flaky ids once"
                    % (dict(recorded), len(should)))

# Backoff: each "retrying in N ms" (N within [d/2, d] of 100 << (delivery-1), capped at 400)
# is waited out before the next delivery starts.
retry_ms = {}
for line in open(err_path, errors="replace"):
    m = re.search(r"stream=events id=(\S+) delivery=(\d+) handler exec failed: .*; "
                  r"retrying in (\d+) ms", line)
    if m:
        retry_ms[(m.group(1), int(m.group(2)))] = int(m.group(3))
for id_, kind in kind_of.items():
    if kind not in ("flaky", "always75"):
        continue
    r = runs.get(id_, [])
    for (t0, d0, _), (t1, _, _) in zip(r, r[1:]):
        ms = retry_ms.get((id_, d0))
        full = min(100 << (d0 - 1), 400)
        if ms is None:
            problems.append("%s %s delivery %d: no 'retrying in' line" % (kind, id_, d0))
        elif not full - full // 2 <= ms <= full:
            problems.append("%s %s delivery %d: retrying in %d ms, expected %d..%d"
                            % (kind, id_, d0, ms, full - full // 2, full))
        elif (t1 - t0) / 1000 < ms - 5:
            problems.append("%s %s: delivery %d started %.0f ms after delivery %d, before its "
                            "%d ms backoff" % (kind, id_, d0 + 1, (t1 - t0) / 1000, d0, ms))
if len(retry_ms) != 2 * sum(k == "flaky" for k in kind_of.values()) + \
        (maxd - 1) * sum(k == "always75" for k in kind_of.values()):
    problems.append("%d 'retrying in' lines" % len(retry_ms))

# No head-of-line blocking: every ok run comes before the first 4th delivery of an always75.
last = [(t, i) for id_, k in kind_of.items() if k == "always75"
        for t, d, i in runs.get(id_, []) if d == maxd]
oks = [(t, i) for id_, k in kind_of.items() if k == "ok" for t, d, i in runs.get(id_, [])]
if last and oks:
    first_last, last_ok = min(last), max(oks)
    print("  last ok entry handled %.0f ms before the first always75 entry's delivery %d"
          % ((first_last[0] - last_ok[0]) / 1000, maxd))
    if last_ok[1] > first_last[1]:
        problems.append("an ok entry ran after an always75 entry's last delivery: "
                        "head-of-line blocking")

# The dead letters: every original field, then the metadata.
dlq = json.load(open(dlq_path))
meta_re = {"redstream.dead_lettered_at": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"}
dead = set()
for dlq_id, flat in dlq:
    f = dict(zip(flat[::2], flat[1::2]))
    orig = f.get("redstream.original_id")
    kind = kind_of.get(orig)
    dead.add(orig)
    if kind not in ("poison", "always75"):
        problems.append("dead letter %s of %s (%s)" % (dlq_id, orig, kind))
        continue
    want_fields = ["kind", kind, "n", n_of[orig], "payload",
                   "caf\u00e9 #%s, \"quoted\"" % n_of[orig]]
    if flat[:6] != want_fields:
        problems.append("dead letter %s: original fields %r, expected %r"
                        % (dlq_id, flat[:6], want_fields))
    meta = dict(zip(flat[6::2], flat[7::2]))
    if sorted(meta) != sorted(["redstream.original_stream", "redstream.original_id",
                               "redstream.delivery_count", "redstream.last_error",
                               "redstream.dead_lettered_at"]):
        problems.append("dead letter %s: metadata fields %s" % (dlq_id, sorted(meta)))
        continue
    count = "1" if kind == "poison" else str(maxd)
    err = meta["redstream.last_error"]
    if meta["redstream.original_stream"] != "events" or meta["redstream.delivery_count"] != count:
        problems.append("dead letter %s: %r" % (dlq_id, meta))
    if not re.fullmatch(meta_re["redstream.dead_lettered_at"], meta["redstream.dead_lettered_at"]):
        problems.append("dead letter %s: dead_lettered_at %r"
                        % (dlq_id, meta["redstream.dead_lettered_at"]))
    if kind == "poison" and not ("exited with status 3" in err and "cannot digest" in err):
        problems.append("poison %s: last_error %r" % (orig, err))
    if kind == "always75" and "exited with status 75" not in err:
        problems.append("always75 %s: last_error %r" % (orig, err))
expected_dead = {i for i, k in kind_of.items() if k in ("poison", "always75")}
if dead != expected_dead or len(dlq) != len(expected_dead):
    problems.append("%d dead letters for %s, expected one each for %s"
                    % (len(dlq), sorted(dead), sorted(expected_dead)))
# Each dead letter logged by the acker with its delivery count.
log = open(err_path, errors="replace").read()
for id_ in expected_dead:
    n = 1 if kind_of[id_] == "poison" else maxd
    if not re.search(r"id=%s dead-lettered to events:dlq as \S+ after %d deliveries"
                     % (re.escape(id_), n), log):
        problems.append("no 'dead-lettered ... after %d deliveries' line for %s" % (n, id_))
print("  %d handler runs, %d recorded, %d dead letters, %d retries" %
      (len(calls), sum(recorded.values()), len(dlq), len(retry_ms)))
for p in problems[:15]:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
late "$CALLS" "$err" events $((1000 + 250 * RS_SCALE)) || rs_fail "a due retry waited (see above)"
rs_assert_eq 0 "$(cl_pending events)" "XPENDING count"
rs_assert_eq 0 "$(cl_group_field events lag)" "group lag"
rs_pass

rs_case "SIGTERM stops it with status 0 and no ERROR line"
RS_ERR=$err
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
cl_assert_clean_stderr "$err"
rs_pass

# --- replay --------------------------------------------------------------------------------------
# dlq_ids: the ids in events:dlq, oldest first.
dlq_ids() {
    rs_cli --json -2 XRANGE events:dlq - + | "$RS_PYTHON" -c \
        'import json, sys; [print(e[0]) for e in json.load(sys.stdin)]'
}
DEAD=$((POISON + ALWAYS))
rs_cli --json -2 XRANGE events:dlq - + >"$RS_TMP/dlq-before.json"
dlq_ids >"$RS_TMP/dlq-before.ids"
events_len=$(rs_cli XLEN events)

rs_case "--replay-dlq events --dry-run lists the $DEAD dead letters and changes nothing"
rs_run dry "$RS_PRODUCER" -c "$conf" --replay-dlq events --dry-run
rs_assert_exit 0
rs_assert_eq "$DEAD" "$(grep -c '^would move events:dlq ' "$RS_OUT")" "'would move' lines"
rs_assert_eq "$(cat "$RS_TMP/dlq-before.ids")" \
    "$(sed -nE 's/^would move events:dlq ([0-9-]+) -> events .*/\1/p' "$RS_OUT")" \
    "ids listed by the dry run"
rs_assert_eq "$(cat "$RS_TMP/dlq-before.json")" "$(rs_cli --json -2 XRANGE events:dlq - +)" \
    "events:dlq after the dry run"
rs_assert_eq "$events_len" "$(rs_cli XLEN events)" "entries in events after the dry run"
rs_assert_file_lacks "$RS_OUT" "moved"
rs_pass

# check_moved OUT: every "moved events:dlq D -> events N" line in OUT names a dead letter D
# that is gone from events:dlq, and events holds N with exactly D's original fields.
check_moved() {
    rs_cli --json -2 XRANGE events - + >"$RS_TMP/events.json"
    rs_cli --json -2 XRANGE events:dlq - + >"$RS_TMP/dlq-now.json"
    "$RS_PYTHON" - "$1" "$RS_TMP/dlq-before.json" "$RS_TMP/events.json" "$RS_TMP/dlq-now.json" \
        <<'PY' || rs_fail "moved entries are not what they should be (see above)"
import json, re, sys
out, before, events, now = sys.argv[1:5]
dead = {i: f for i, f in json.load(open(before))}
in_events = {i: f for i, f in json.load(open(events))}
still = {i for i, _ in json.load(open(now))}
problems = []
for line in open(out):
    m = re.fullmatch(r"moved events:dlq (\S+) -> events (\S+)\n", line)
    if not m:
        problems.append("unexpected output line %r" % line)
        continue
    d, n = m.groups()
    if d not in dead:
        problems.append("moved %s, which was not a dead letter" % d)
        continue
    if d in still:
        problems.append("%s was moved but is still in events:dlq" % d)
    want = [x for pair in zip(dead[d][::2], dead[d][1::2]) if not pair[0].startswith("redstream.")
            for x in pair]
    if in_events.get(n) != want:
        problems.append("events %s holds %r, expected the original fields %r"
                        % (n, in_events.get(n), want))
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
}

rs_case "--replay-dlq events --count 1 moves exactly the oldest dead letter"
rs_run one "$RS_PRODUCER" -c "$conf" --replay-dlq events --count 1
rs_assert_exit 0
rs_assert_eq 1 "$(grep -c '^moved ' "$RS_OUT")" "'moved' lines"
rs_assert_match "^moved events:dlq $(head -n 1 "$RS_TMP/dlq-before.ids") -> events [0-9]+-[0-9]+$" \
    "$(cat "$RS_OUT")" "the line for the oldest dead letter"
check_moved "$RS_OUT"
rs_assert_eq $((DEAD - 1)) "$(rs_cli XLEN events:dlq)" "entries left in events:dlq"
rs_assert_eq $((events_len + 1)) "$(rs_cli XLEN events)" "entries in events"
rs_pass

rs_case "--replay-dlq events moves the rest; events:dlq ends empty"
rs_run rest "$RS_PRODUCER" -c "$conf" --replay-dlq events
rs_assert_exit 0
rs_assert_eq $((DEAD - 1)) "$(grep -c '^moved ' "$RS_OUT")" "'moved' lines"
rs_assert_eq "$(tail -n +2 "$RS_TMP/dlq-before.ids")" \
    "$(sed -nE 's/^moved events:dlq ([0-9-]+) -> .*/\1/p' "$RS_OUT")" "ids moved, in order"
check_moved "$RS_OUT"
rs_assert_eq 0 "$(rs_cli XLEN events:dlq)" "entries left in events:dlq"
rs_assert_eq $((events_len + DEAD)) "$(rs_cli XLEN events)" "entries in events"
rs_assert_file_lacks "$RS_ERR" "$RS_REDIS_PASSWORD"
# Named by its dead-letter stream, with nothing left in it: nothing to do, status 0.
rs_run empty "$RS_PRODUCER" -c "$conf" --replay-dlq events:dlq --dry-run
rs_assert_exit 0
rs_assert_eq "" "$(cat "$RS_OUT")" "output for an empty events:dlq"
rs_pass

# --- a retry and an idle reader ------------------------------------------------------------------
# The reader reserves queue slots (up to read_count) before each XREADGROUP and holds them
# while Redis blocks it (block_ms) on an idle stream. When that is every free slot (here
# read_count >= queue_capacity with an empty queue; also several idle streams together), a
# due retry must still get a slot promptly, not only when it happens to win the race for the
# queue's lock in the instant between two XREADGROUP calls. The backoff (1-2 s) outlasts the
# reader's first BLOCK (800 ms), so the reader has re-reserved the whole, empty queue by the
# time each retry is due.
RETRY_BOUND_MS=$((1000 + 250 * RS_SCALE))
rs_case "a due retry is delivered at once although an idle reader holds the free queue slots"
: >"$CALLS"
conf2=$(rs_write_config idle <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; block_ms = 800; read_count = 100;
          max_deliveries = 4; retry_base_ms = 2000; retry_max_ms = 2000;
          claim_idle_ms = 60000; idle_consumer_timeout_ms = 0; };
workers = { threads = 1; queue_capacity = 8; shutdown_timeout_ms = 5000; };
streams = ( { name = "retries"; handler = "exec"; command = ["$handler"]; timeout_ms = 5000; } );
health = { port = $(rs_free_port); };
log = { level = "info"; };
EOF
)
cl_spawn_consumer idle "$conf2"
pid=$RS_PID
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists retries ||
    rs_fail "the consumer never created its group"
rs_cli XADD retries '*' kind always75 n 1 >/dev/null
# dead_lettered_or_late: the entry has reached retries:dlq (3 retries), or a retry is late.
dead_lettered_or_late() {
    (($(rs_cli XLEN retries:dlq) == 1)) || ! late "$CALLS" "$err" retries "$RETRY_BOUND_MS" live
}
cl_wait_for "$pid" $((30 * RS_SCALE)) dead_lettered_or_late ||
    rs_fail "neither dead-lettered nor late: $(wc -l <"$CALLS") runs"
late "$CALLS" "$err" retries "$RETRY_BOUND_MS" || rs_fail "a due retry waited (see above)"
rs_assert_eq 1 "$(rs_cli XLEN retries:dlq)" "entries in retries:dlq"
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
rs_pass
