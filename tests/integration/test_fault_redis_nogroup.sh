#!/usr/bin/env bash
#
# NOGROUP on the acknowledger's and the retry scheduler's paths: the consumer group is
# destroyed while a dead letter is on its way, retries wait and acks are batched, and it
# stays gone for a while. (Redis 7.0 answers XACK for a missing group with 0, not NOGROUP:
# those acks are simply void, and the entries come back with the group.) The consumer runs as the README's ACL user without
# "+xgroup|create" (its groups made beforehand by an administrator, which the README allows),
# so its reader cannot create the group again until the test grants that permission: every
# path meets NOGROUP for certain, not just when it wins a race against the reader.
#
# An exec handler, one worker, handles the 9 entries of one read in this order: 3 "flaky"
# (exit 75 the first time each is seen: a retry in 1.5 to 3 s), a "destroyer" (runs XGROUP
# DESTROY as the administrator, once), 2 "poison" (exit 3: dead-lettered at once), 3 "late"
# ok entries. It checks that:
#   - the acknowledger logs each dead letter it could not write ("not dead-lettered: XPENDING
#     refused: NOGROUP", with the cause), counting nothing as dead-lettered that was not;
#   - the retry scheduler logs the refused XCLAIM of the waiting retries (a line per batch);
#   - the reader logs the refusal of XGROUP CREATE (NOPERM, naming the ACL as the cause),
#     once per backoff step; "logs" is still served; /readyz names events and the cause;
#   - nothing spins meanwhile: the process uses well under half a CPU, the lines are few;
#   - once XGROUP CREATE is allowed, the reader creates the group at its restart point, says
#     so, and every entry is handled again or for the first time: each flaky and ok entry
#     succeeds, each poison entry is dead-lettered exactly once, nothing stays pending.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/health_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/health_lib.sh"
# shellcheck source=tests/integration/redis_fault_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/redis_fault_lib.sh"

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis

# The README's rule for the consumer, minus XGROUP CREATE.
rule=$(grep -E "^    ACL SETUSER redstream-consumer " "$RS_SOURCE_DIR/README.md" | head -n 1) ||
    rs_fail "README.md has no 'ACL SETUSER redstream-consumer' rule"
rule=${rule#    ACL SETUSER redstream-consumer }
rule=${rule//<password>/worker-secret}
[[ $rule == *" +xgroup|create "* ]] || rs_fail "the README's rule lacks +xgroup|create: $rule"
rule=${rule/ +xgroup|create / }
# shellcheck disable=SC2086 # the rule is a list of words
rs_assert_eq OK "$(rs_cli ACL SETUSER worker reset $rule 2>&1)" "ACL SETUSER worker"
rs_cli XGROUP CREATE events workers '$' MKSTREAM >/dev/null
rs_cli XGROUP CREATE logs workers '$' MKSTREAM >/dev/null

CALLS=$RS_TMP/calls.txt # every handler run: "id kind delivery outcome"
: >"$CALLS"
handler=$RS_TMP/handler.sh
cat >"$handler" <<EOF
#!/bin/bash
# The exec handler of $RS_TEST_NAME (see there).
json=\$(cat)
kind=unknown
[[ \$json =~ \"kind\":\"([a-z]+)\" ]] && kind=\${BASH_REMATCH[1]}
call() { echo "\$REDSTREAM_ID \$kind \$REDSTREAM_DELIVERY \$1" >>"$CALLS"; }
case \$kind in
ok | late) call ok; exit 0 ;;
flaky)
    if [[ ! -e "$RS_TMP/flaky-\$REDSTREAM_ID" ]]; then
        touch "$RS_TMP/flaky-\$REDSTREAM_ID"
        call retry
        exit 75
    fi
    call ok
    exit 0
    ;;
destroyer)
    if [[ ! -e "$RS_TMP/destroyed" ]]; then
        touch "$RS_TMP/destroyed"
        "$REDIS_CLI" -h 127.0.0.1 -p $RS_REDIS_PORT -a "$RS_REDIS_PASSWORD" --no-auth-warning \\
            XGROUP DESTROY events workers >/dev/null 2>&1
    fi
    call ok
    exit 0
    ;;
poison) call poison; echo "cannot digest this entry" >&2; exit 3 ;;
esac
exit 2
EOF
chmod +x "$handler"

hc_pick_port
conf=$(rs_write_config nogroup <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; username = "worker"; password = "worker-secret"; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; read_count = 16;
          retry_base_ms = 3000; retry_max_ms = 3000; };
workers = { threads = 1; queue_capacity = 32; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $HC_PORT; };
streams = (
  { name = "events"; handler = "exec"; command = ["$handler"]; timeout_ms = 5000; },
  { name = "logs"; handler = "log"; }
);
log = { level = "info"; };
EOF
)

rs_case "without XGROUP CREATE, the consumer reads the groups made beforehand"
cl_spawn_consumer c1 "$conf"
pid=$RS_PID
err=$RS_ERR
out=$RS_OUT
for s in events logs; do
    cl_wait_for "$pid" $((10 * RS_SCALE)) grep -qE \
        "WARN +reader: stream=$s XGROUP CREATE refused \(NOPERM .*\) but group workers exists; reading on" \
        "$err" || rs_fail "no 'reading on' line for $s: $(head -n 5 "$err")"
done
cl_wait_for "$pid" $((10 * RS_SCALE)) hc_status_is GET /readyz 200 ||
    rs_fail "/readyz: $HC_STATUS $(cat "$HC_BODY")"
rs_pass

# ---------------------------------------------------------------------------------------------
rs_case "the group destroyed under acks, a dead letter and waiting retries: clear lines, no spin"
published=$RS_TMP/published.txt # "events id" lines, in the order of KINDS
KINDS="flaky flaky flaky destroyer poison poison late late late"
# One pipeline, so the reader gets all of them in one read, before the group is destroyed.
for kind in $KINDS; do
    echo "XADD events * kind $kind"
done | rs_cli | sed 's/^/events /' >"$published"
rs_assert_eq 9 "$(grep -cE '^events [0-9]+-[0-9]+$' "$published")" "ids returned by XADD"
mark=0
poison_refused() {
    (($(rf_count_since "$err" "$mark" "ERROR +acker: stream=events id=[0-9-]+ not dead-lettered: XPENDING refused: NOGROUP .*\(the consumer group or the stream was deleted\); it is delivered again if the group is created again$") == 2))
}
# The three retries are due at jittered times: one XCLAIM each, or fewer carrying more ids.
retries_refused() {
    (($(rf_since "$err" "$mark" | sed -nE 's/.*ERROR +retry: stream=events XCLAIM of ([0-9]+) ids refused: NOGROUP .*\(the consumer group or the stream was deleted\); their retries are dropped, and they are delivered again if the group is created again$/\1/p' |
        awk '{ n += $1 } END { print n + 0 }') == 3))
}
create_refused() {
    rf_logged_since "$err" "$mark" "ERROR +reader: stream=events XGROUP CREATE refused: NOPERM .*\(the ACL user lacks a permission \(see README, Least privilege in Redis\)\); retrying in [0-9]+ ms$"
}
for what in poison_refused retries_refused create_refused; do
    cl_wait_for "$pid" $((10 * RS_SCALE)) "$what" ||
        rs_fail "$what: not logged; the log so far: $(grep -E 'ERROR|WARN' "$err" | tail -n 8)"
done
rs_assert_eq 0 "$(rs_cli EXISTS events:dlq)" "events:dlq exists"
# The other stream is served meanwhile.
served=$RS_TMP/served.txt
: >"$served"
rf_publish "$served" logs served 10
cl_wait_for "$pid" $((10 * RS_SCALE)) rf_all_handled "$served" "$out" ||
    rs_fail "logs was not served: $(rf_missing "$served" "$RS_TMP/rf-handled.txt") unhandled"
hc_expect GET /readyz 503
rs_assert_file_contains "$HC_BODY" "stream events: Redis refuses the reader's commands: the ACL user lacks a permission"
rs_assert_file_lacks "$HC_BODY" "stream logs"
# No spin: over the next few reader refusals (a second or more of backoff), the process
# uses well under half a CPU, and the acker and retry lines stay few.
refusals_now=$(rf_count_since "$err" 0 "reader: stream=events XGROUP CREATE refused")
cpu0=$(rf_cpu_ms "$pid")
t0=$(cl_now_ms)
two_more_refusals() {
    (($(rf_count_since "$err" 0 "reader: stream=events XGROUP CREATE refused") >= refusals_now + 2))
}
cl_wait_for "$pid" $((15 * RS_SCALE)) two_more_refusals || rs_fail "the reader stopped retrying"
cpu=$(($(rf_cpu_ms "$pid") - cpu0))
wall=$(($(cl_now_ms) - t0))
echo "  $cpu ms of CPU in $wall ms while the group was gone"
rs_assert_le $((wall / 2)) "$cpu" "CPU ms used while the group was gone"
rs_assert_le 5 "$(rf_count_since "$err" 0 "(acker|retry): stream=events")" \
    "acker and retry lines about events"
rs_pass

# ---------------------------------------------------------------------------------------------
rs_case "XGROUP CREATE allowed again: the group is created at its restart point, nothing lost"
mark=$(rf_mark "$err")
rs_assert_eq OK "$(rs_cli ACL SETUSER worker '+xgroup|create')" "ACL SETUSER worker +xgroup|create"
cl_wait_for "$pid" $((15 * RS_SCALE)) rf_logged_since "$err" "$mark" \
    "WARN +reader: stream=events created group workers again at [0-9]+-[0-9]+: every entry after that id is delivered" ||
    rs_fail "the group was not created again: $(rf_since "$err" "$mark" | head -n 5)"
# all_settled: every entry succeeded or (poison) failed once more, nothing is pending and
# both dead letters are written.
all_settled() {
    "$RS_PYTHON" - "$published" "$CALLS" <<'PY' && cl_settled events && (($(rs_cli XLEN events:dlq) >= 2))
import sys
published = [l.split()[1] for l in open(sys.argv[1])]
outcomes = {}
for l in open(sys.argv[2]):
    id_, kind, delivery, outcome = l.split()
    outcomes.setdefault(id_, set()).add(outcome)
sys.exit(0 if all(("ok" in outcomes.get(i, ())) or ("poison" in outcomes.get(i, ())) for i in published) else 1)
PY
}
cl_wait_for "$pid" $((20 * RS_SCALE)) all_settled ||
    cl_fail "not settled: pending $(cl_pending events), lag $(cl_group_field events lag)," \
        "$(rs_cli XLEN events:dlq) dead letters"
rs_cli --json -2 XRANGE events:dlq - + >"$RS_TMP/dlq.json"
"$RS_PYTHON" - "$published" "$CALLS" "$RS_TMP/dlq.json" <<'PY' || rs_fail "wrong outcome (see above)"
import collections, json, sys
pub, calls, dlq = sys.argv[1:4]
ids = [l.split()[1] for l in open(pub)]
kinds = ["flaky"] * 3 + ["destroyer"] + ["poison"] * 2 + ["late"] * 3
kind_of = dict(zip(ids, kinds))
runs = collections.defaultdict(list)
for l in open(calls):
    id_, kind, delivery, outcome = l.split()
    runs[id_].append(outcome)
problems = []
for id_, kind in kind_of.items():
    r = runs.get(id_, [])
    if kind == "poison":
        if "ok" in r or not r:
            problems.append("poison %s: runs %s" % (id_, r))
    elif "ok" not in r:
        problems.append("%s %s never succeeded: runs %s" % (kind, id_, r))
dead = collections.Counter()
for _, flat in json.load(open(dlq)):
    f = dict(zip(flat[::2], flat[1::2]))
    dead[f["redstream.original_id"]] += 1
want = {i for i, k in kind_of.items() if k == "poison"}
if set(dead) != want or any(n != 1 for n in dead.values()):
    problems.append("dead letters %s, expected one each for %s" % (dict(dead), sorted(want)))
print("  handler runs per entry: %s" % ", ".join("%s %d" % (kind_of[i], len(runs[i])) for i in ids))
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
rs_assert_file_contains "$err" "stream=events Redis accepts the reader's commands again after"
cl_wait_for "$pid" $((5 * RS_SCALE)) hc_status_is GET /readyz 200 ||
    rs_fail "/readyz did not recover: $HC_STATUS $(cat "$HC_BODY")"
rs_pass

rs_case "SIGTERM stops it with status 0; no sanitizer report, no password"
rf_stop_and_check "$pid" "$err" worker-secret
rs_pass
