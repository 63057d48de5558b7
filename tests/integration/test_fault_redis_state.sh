#!/usr/bin/env bash
#
# Redis refusing writes as a whole: out of memory under maxmemory, and read-only as a replica.
# For each, the consumer must log a clear error naming the stream and the cause, keep doing
# what Redis still allows, lose nothing, and finish the work once Redis accepts it again.
#
# Out of memory (maxmemory below what Redis uses, policy noeviction): XGROUP CREATE and XADD
# are refused, reading and XACK are not. Entries published before, the consumer started
# after:
#   - "fresh", a stream with no key yet: its group cannot be made; an ERROR per backoff step
#     names the stream and the cause, /readyz names it, /healthz stays 200;
#   - "events", whose group exists: read on ("XGROUP CREATE refused ... but group workers
#     exists"), also after its connections are killed and it reconnects under OOM; its ok
#     entries are handled and acknowledged; its poison entries' dead letters are refused
#     (MULTI/EXEC: EXECABORT), logged, left pending, claimed again after claim_idle_ms;
#   - memory raised: fresh's group is created and its entries handled; each poison entry is
#     dead-lettered exactly once; nothing stays pending.
# Read-only (a second redis-server, started as a replica of the first):
#   - a consumer pointed at the replica logs READONLY with the cause and retries (bounded
#     lines; /readyz says why); it starts consuming once the replica is promoted;
#   - a failover and back under a consumer with entries in flight: the master is demoted
#     (REPLICAOF the promoted replica) and promoted again (REPLICAOF NO ONE); its readers log
#     the refusals, its acknowledger keeps the refused acks and sends them again, both log
#     their recovery; every entry, including those published to the other server meanwhile,
#     is handled, and nothing stays pending.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/health_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/health_lib.sh"
# shellcheck source=tests/integration/redis_fault_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/redis_fault_lib.sh"

# No delay before a replica's sync; the password also authenticates it to its master.
rs_start_redis --repl-diskless-sync-delay 0 --masterauth "$RS_REDIS_PASSWORD"
A_PORT=$RS_REDIS_PORT

CALLS=$RS_TMP/calls.txt # every exec handler run: "id kind delivery"
: >"$CALLS"
handler=$RS_TMP/handler.sh
cat >"$handler" <<EOF
#!/bin/bash
# The exec handler of $RS_TEST_NAME: "poison" entries fail for good, the others succeed.
json=\$(cat)
kind=unknown
[[ \$json =~ \"kind\":\"([a-z]+)\" ]] && kind=\${BASH_REMATCH[1]}
echo "\$REDSTREAM_ID \$kind \$REDSTREAM_DELIVERY" >>"$CALLS"
[[ \$kind == poison ]] && { echo "cannot digest this entry" >&2; exit 3; }
exit 0
EOF
chmod +x "$handler"

# ---------------------------------------------------------------------------------------------
rs_case "out of memory: fresh's group refused and reported, events read on, ok entries acked"
rs_cli XGROUP CREATE events workers '$' MKSTREAM >/dev/null
published=$RS_TMP/published.txt
: >"$published"
RF_PAD=10
rf_publish "$published" events ok 10
rf_publish "$published" events poison 2
used=$(rs_cli INFO memory | sed -nE 's/^used_memory:([0-9]+).*/\1/p')
# Below what Redis uses already, so every write that may allocate is refused whatever the
# connections add; "used + a little" would depend on how much they add.
rs_assert_eq OK "$(rs_cli CONFIG SET maxmemory $((used / 2)))" "CONFIG SET maxmemory"
rs_assert_match "^OOM " "$(rs_cli XADD events '*' kind late 2>&1)" "XADD under maxmemory"
hc_pick_port
conf=$(rs_write_config oom <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $A_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; read_count = 16;
          claim_idle_ms = 1000; retry_base_ms = 100; retry_max_ms = 500; };
workers = { threads = 2; queue_capacity = 32; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $HC_PORT; liveness_timeout_ms = 2000; };
streams = (
  { name = "events"; handler = "exec"; command = ["$handler"]; timeout_ms = 5000; },
  { name = "fresh"; handler = "log"; }
);
log = { level = "info"; };
EOF
)
cl_spawn_consumer c1 "$conf"
pid=$RS_PID
err=$RS_ERR
out=$RS_OUT
start_ms=$(cl_now_ms)
OOM_RE="OOM command not allowed when used memory > 'maxmemory'\. \(Redis is out of memory \(maxmemory with a noeviction policy\): raise maxmemory or free memory\)"
fresh_lines() {
    rf_count_since "$err" 0 "ERROR +reader: stream=fresh XGROUP CREATE refused: $OOM_RE; retrying in [0-9]+ ms$"
}
read_on() {
    rf_count_since "$err" 0 "WARN +reader: stream=events XGROUP CREATE refused \(OOM .*\) but group workers exists; reading on$"
}
dl_refused() {
    rf_count_since "$err" 0 "ERROR +acker: stream=events id=[0-9-]+ dead letter refused by Redis: $OOM_RE; the entry stays pending and is claimed again after group.claim_idle_ms$"
}
oks_acked() {
    (($(awk '$2 == "ok"' "$CALLS" | wc -l) >= 10)) && [[ $(cl_pending events) == 2 ]]
}
cl_wait_for "$pid" $((10 * RS_SCALE)) oks_acked ||
    rs_fail "ok entries not handled and acked: $(wc -l <"$CALLS") runs, pending $(cl_pending events)"
rs_assert_ge 1 "$(read_on)" "'reading on' lines for events"
two_refused() {
    (($(dl_refused) >= 2))
}
cl_wait_for "$pid" $((10 * RS_SCALE)) two_refused ||
    rs_fail "no refused dead letters: $(grep -E 'acker' "$err" | tail -n 3)"
three_fresh() {
    (($(fresh_lines) >= 3))
}
cl_wait_for "$pid" $((10 * RS_SCALE)) three_fresh ||
    rs_fail "fresh's refusals not logged: $(grep -F fresh "$err" | tail -n 3)"
rs_assert_eq 0 "$(rs_cli EXISTS events:dlq)" "events:dlq exists"
hc_expect GET /readyz 503
rs_assert_file_contains "$HC_BODY" "stream fresh: Redis refuses the reader's commands: Redis is out of memory"
rs_assert_file_lacks "$HC_BODY" "stream events"
hc_expect GET /healthz 200
rs_pass

rs_case "out of memory: readers reconnected under OOM read on; poison entries claimed again"
reads_on_before=$(read_on)
rs_cli CLIENT KILL TYPE normal >/dev/null
reconnected_reading() {
    (($(read_on) > reads_on_before))
}
cl_wait_for "$pid" $((10 * RS_SCALE)) reconnected_reading ||
    rs_fail "events did not read on after reconnecting: $(tail -n 5 "$err")"
# The poison entries come back through the claim pass (claim_idle_ms 1000) and fail again.
claimed_again() {
    (($(awk '$2 == "poison" && $3 >= 2' "$CALLS" | wc -l) >= 2))
}
cl_wait_for "$pid" $((10 * RS_SCALE)) claimed_again ||
    rs_fail "the poison entries were not delivered again: $(awk '$2 == "poison"' "$CALLS")"
cl_wait_for "$pid" $((5 * RS_SCALE)) hc_status_is GET /readyz 503 "stream fresh:" ||
    rs_fail "/readyz: $HC_STATUS $(cat "$HC_BODY")"
rs_assert_file_lacks "$HC_BODY" "stream events"
rs_assert_eq 2 "$(cl_pending events)" "entries pending in events (the poison ones)"
rs_pass

rs_case "memory raised: fresh consumed, each poison entry dead-lettered once, nothing pending"
rs_assert_eq OK "$(rs_cli CONFIG SET maxmemory 0)" "CONFIG SET maxmemory 0"
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists fresh ||
    rs_fail "fresh's group was not created: $(grep -F fresh "$err" | tail -n 3)"
fresh=$RS_TMP/fresh.txt
: >"$fresh"
rf_publish "$fresh" fresh ok 10
done_all() {
    rf_all_handled "$fresh" "$out" && cl_settled events fresh && (($(rs_cli XLEN events:dlq) >= 2))
}
cl_wait_for "$pid" $((15 * RS_SCALE)) done_all ||
    cl_fail "not done: pending events $(cl_pending events), fresh $(cl_pending fresh)," \
        "$(rs_cli XLEN events:dlq) dead letters"
dead=$(rs_cli --json -2 XRANGE events:dlq - + | "$RS_PYTHON" -c '
import collections, json, sys
c = collections.Counter(dict(zip(f[::2], f[1::2]))["redstream.original_id"] for _, f in json.load(sys.stdin))
print(" ".join("%s:%d" % kv for kv in sorted(c.items())))')
want=$(tail -n 2 "$published" | awk '{ print $2 ":1" }' | sort | xargs) # the poison ones
rs_assert_eq "$want" "$dead" "dead letters per poison id"
elapsed=$(($(cl_now_ms) - start_ms))
echo "  fresh: $(fresh_lines) refusal lines in $elapsed ms; $(dl_refused) refused dead letters"
rs_assert_le "$(rf_max_refusal_lines "$elapsed")" "$(fresh_lines)" "refusal lines for fresh"
# One refused dead letter per poison entry per delivery, a delivery per claim pass at most.
rs_assert_le $((2 * (elapsed / 1000 + 2))) "$(dl_refused)" "refused dead-letter lines"
rs_assert_file_contains "$err" "stream=fresh Redis accepts the reader's commands again after"
rf_stop_and_check "$pid" "$err"
rs_pass

# --- a replica -------------------------------------------------------------------------------
B_PORT=""
B_PID=""
# b_cli ARGS...: redis-cli against the second server.
b_cli() {
    "$REDIS_CLI" -h 127.0.0.1 -p "$B_PORT" -a "$RS_REDIS_PASSWORD" --no-auth-warning "$@"
}
b_is_ours() {
    rs_exited "$B_PID" && return 0
    [[ $(b_cli INFO server 2>/dev/null) == *"process_id:$B_PID"* ]]
}
# start_replica: a second redis-server as a replica of the first, by rs_start_redis's
# conventions: loopback, a free port, the same password, files in $RS_TMP/b, killed by the
# trap.
start_replica() {
    local attempt
    mkdir -p "$RS_TMP/b"
    for attempt in 1 2 3 4 5; do
        B_PORT=$(rs_free_port)
        "$REDIS_SERVER" --port "$B_PORT" --bind 127.0.0.1 --requirepass "$RS_REDIS_PASSWORD" \
            --masterauth "$RS_REDIS_PASSWORD" --replicaof 127.0.0.1 "$A_PORT" \
            --repl-diskless-sync-delay 0 --save '' --appendonly no --dir "$RS_TMP/b" \
            --daemonize no --logfile "$RS_TMP/redis-b.log" &
        B_PID=$!
        rs_track "$B_PID"
        if RS_WAIT_TIMEOUT=10 rs_wait_for b_is_ours && ! rs_exited "$B_PID"; then
            return 0
        fi
        kill -KILL "$B_PID" 2>/dev/null || true
        wait "$B_PID" 2>/dev/null || true
        rs_untrack "$B_PID"
    done
    rs_fail "could not start the replica"
}
# link_up CLI: true once the server CLI talks to (a_cli, b_cli) is a replica in sync.
link_up() {
    [[ $("$@" INFO replication | tr -d '\r') == *"master_link_status:up"* ]]
}
a_cli() {
    rs_cli "$@"
}

rs_case "a consumer pointed at a replica: READONLY logged with its cause, retried, reported"
start_replica
RS_WAIT_TIMEOUT=$((10 * RS_SCALE)) rs_wait_for link_up b_cli ||
    rs_fail "the replica never synced: $(tail -n 5 "$RS_TMP/redis-b.log")"
hc_pick_port
HC_REPLICA=$HC_PORT
conf3=$(rs_write_config replica <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $B_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c3"; block_ms = 200; read_count = 16; };
workers = { threads = 2; queue_capacity = 32; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $HC_REPLICA; liveness_timeout_ms = 2000; };
streams = ( { name = "jobs"; handler = "log"; } );
log = { level = "info"; };
EOF
)
cl_spawn_consumer c3 "$conf3"
pid3=$RS_PID
err3=$RS_ERR
out3=$RS_OUT
start3=$(cl_now_ms)
readonly_lines() {
    rf_count_since "$err3" 0 "ERROR +reader: stream=jobs XGROUP CREATE refused: READONLY You can't write against a read only replica\. \(the server is a read-only replica: point redis.host at the master, or wait for a failover\); retrying in [0-9]+ ms$"
}
four_readonly() {
    (($(readonly_lines) >= 4))
}
cl_wait_for "$pid3" $((10 * RS_SCALE)) four_readonly ||
    rs_fail "no READONLY refusals: $(tail -n 5 "$err3")"
hc_expect GET /readyz 503
rs_assert_file_contains "$HC_BODY" "stream jobs: Redis refuses the reader's commands: the server is a read-only replica"
hc_expect GET /healthz 200
elapsed=$(($(cl_now_ms) - start3))
rs_assert_le "$(rf_max_refusal_lines "$elapsed")" "$(readonly_lines)" "READONLY lines in $elapsed ms"
rs_pass

rs_case "failover and back under a consumer with entries in flight: nothing lost, all acked"
hc_pick_port
conf2=$(rs_write_config failover <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $A_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c2"; block_ms = 200; read_count = 8; };
workers = { threads = 2; queue_capacity = 16; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $HC_PORT; liveness_timeout_ms = 2000; };
streams = ( { name = "orders"; handler = "log"; }, { name = "logs"; handler = "log"; } );
log = { level = "info"; };
EOF
)
fifo=$RS_TMP/stdout.fifo
mkfifo "$fifo"
out2=$RS_TMP/failover.jsonl
# 10 ms a line: the 150 entries take 1.5 s to handle, so many are in flight (and their acks
# still to come) when the master is demoted.
rs_spawn slow-reader "$RS_PYTHON" -c "$CL_PY" slow-reader "$RS_TMP/read.count" 10 "$fifo" "$out2"
cl_spawn_io c2 /dev/null "$fifo" "$RS_CONSUMER" -c "$conf2"
pid2=$RS_PID
err2=$RS_ERR
cl_wait_for "$pid2" $((10 * RS_SCALE)) cl_group_exists orders || rs_fail "no group on orders"
cl_wait_for "$pid2" $((10 * RS_SCALE)) cl_group_exists logs || rs_fail "no group on logs"
list=$RS_TMP/failover.txt
: >"$list"
RF_PAD=1500
rf_publish "$list" orders before 150
rf_publish "$list" logs before 30
cl_wait_for "$pid2" $((10 * RS_SCALE)) cl_has_lines "$out2" orders 20 ||
    rs_fail "the first entries were not handled"
# The replica has everything written so far, then takes over; the master follows it. (Redis
# 7.0 wakes the blocked readers with UNBLOCKED and may close their connections: a reader
# meets READONLY next, in XREADGROUP or, after reconnecting, XGROUP CREATE, or waits for its
# entries in flight to settle before it re-reads its pending ones, as a failover may have
# lost acks.)
rs_assert_eq 1 "$(a_cli WAIT 1 5000)" "replicas acknowledging the writes"
mark=$(rf_mark "$err2")
mark3=$(rf_mark "$err3")
rs_assert_eq OK "$(b_cli REPLICAOF NO ONE)" "promoting the replica"
rs_assert_eq OK "$(a_cli REPLICAOF 127.0.0.1 "$B_PORT")" "demoting the master"
# Meanwhile the work goes to the new master: orders for c2 (replicated to its server), jobs
# for c3, which was waiting for that.
B_LIST=$RS_TMP/jobs.txt
: >"$B_LIST"
saved_port=$RS_REDIS_PORT
RS_REDIS_PORT=$B_PORT
rf_publish "$list" orders during 50
rf_publish "$B_LIST" jobs during 30
RS_REDIS_PORT=$saved_port
reader_refused() {
    rf_logged_since "$err2" "$mark" "ERROR +reader: stream=(orders|logs) (XREADGROUP|XAUTOCLAIM|XGROUP CREATE) refused: READONLY .*\(the server is a read-only replica: point redis.host at the master, or wait for a failover\); retrying in [0-9]+ ms$"
}
acks_refused() {
    rf_logged_since "$err2" "$mark" "WARN +acker: XACK refused: READONLY .*\(the server is a read-only replica: point redis.host at the master, or wait for a failover\); sending again in [0-9]+ ms$"
}
cl_wait_for "$pid2" $((10 * RS_SCALE)) reader_refused ||
    rs_fail "the reader's READONLY refusal was not logged: $(rf_since "$err2" "$mark" | head -n 5)"
cl_wait_for "$pid2" $((10 * RS_SCALE)) acks_refused ||
    rs_fail "the acker's READONLY refusal was not logged: $(rf_since "$err2" "$mark" | head -n 5)"
# c3 consumes from the promoted replica.
cl_wait_for "$pid3" $((15 * RS_SCALE)) rf_all_handled "$B_LIST" "$out3" ||
    rs_fail "c3 did not consume jobs after the promotion: $(tail -n 3 "$err3")"
rf_logged_since "$err3" "$mark3" "INFO +reader: stream=jobs Redis accepts the reader's commands again after [0-9]+ refusals?$" ||
    rs_fail "c3 logged no recovery: $(rf_since "$err3" "$mark3" | head -n 5)"
RS_REDIS_PORT=$B_PORT
cl_wait_for "$pid3" $((10 * RS_SCALE)) cl_settled jobs ||
    rs_fail "jobs not settled on the promoted replica: pending $(cl_pending jobs)"
RS_REDIS_PORT=$saved_port
cl_stop_consumer "$pid3" 5000
rs_assert_exit 0
# The old master has caught up with the new one; then it is promoted back.
caught_up() {
    link_up a_cli && (($(a_cli XLEN orders) == 200))
}
RS_WAIT_TIMEOUT=$((10 * RS_SCALE)) rs_wait_for caught_up ||
    rs_fail "the demoted master did not catch up: XLEN $(a_cli XLEN orders)"
rs_assert_eq OK "$(a_cli REPLICAOF NO ONE)" "promoting the old master back"
rs_assert_eq OK "$(b_cli REPLICAOF 127.0.0.1 "$A_PORT")" "making the other a replica again"
after=$RS_TMP/after.txt
: >"$after"
rf_publish "$after" logs after 20
all_done() {
    rf_all_handled "$list" "$out2" && rf_all_handled "$after" "$out2" && cl_settled orders logs
}
cl_wait_for "$pid2" $((30 * RS_SCALE)) all_done ||
    cl_fail "not done: $(rf_missing "$list" "$RS_TMP/rf-handled.txt") unhandled; pending orders" \
        "$(cl_pending orders), logs $(cl_pending logs)"
read -r once more never < <(rf_times "$list" "$out2")
echo "  230 entries: $once handled once, $more more than once, $never never"
rs_assert_eq 0 "$never" "entries never handled"
rs_assert_match "INFO +reader: stream=orders Redis accepts the reader's commands again after [0-9]+ refusals?" \
    "$(rf_since "$err2" "$mark" | grep -F "stream=orders Redis accepts" | head -n 1)" \
    "the reader's recovery line"
rs_assert_match "INFO +acker: Redis accepts acks and dead letters again after [0-9]+ refusals?" \
    "$(rf_since "$err2" "$mark" | grep -F "acker: Redis accepts" | head -n 1)" \
    "the acker's recovery line"
cl_wait_for "$pid2" $((5 * RS_SCALE)) hc_status_is GET /readyz 200 ||
    rs_fail "/readyz did not recover: $HC_STATUS $(cat "$HC_BODY")"
cl_stop_consumer "$pid2" 5000
rs_assert_exit 0
rs_assert_file_contains "$err2" "stream=logs Redis accepts the reader's commands again after"
rf_assert_no_report "$err2"
rf_assert_no_report "$err3" # c3, stopped above
rs_pass
