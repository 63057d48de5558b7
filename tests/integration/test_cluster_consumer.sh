#!/usr/bin/env bash
#
# redstream-consumer in cluster mode (redis.cluster = true) against a private 3-master Redis
# Cluster with a password:
#   a. three streams placed on the three masters: every entry handled exactly once and
#      acknowledged on the master that owns its stream; the seed is one master only;
#   b. an entry whose handler always fails is dead-lettered to {STREAM}:dlq, which lives on
#      the stream's own master (the MULTI/EXEC of the dead letter runs on one node);
#   c. a stream's slot migrated to another master while entries flow: nothing lost, every
#      entry acknowledged, the reader follows the slot;
#   e. a seed that is not a cluster node: a clear error in the log and in /readyz, and the
#      consumer keeps trying (as with a wrong password in standalone mode).

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/cluster_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"
# shellcheck source=tests/integration/cluster_consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster_consumer_lib.sh"

PER_STREAM=300

rc_start_cluster 3 0

S0=$(rc_key_on_master 0 orders)
S1=$(rc_key_on_master 1 orders)
S2=$(rc_key_on_master 2 orders)
FAIL=$(rc_key_on_master 1 failing)

rs_case "a. three streams on three masters, one seed"
rs_assert_eq 3 "$(printf '%s\n' "$(rc_owner "$S0")" "$(rc_owner "$S1")" "$(rc_owner "$S2")" | sort -u | wc -l)" \
    "masters holding the three streams"
CONF=$(cc_config a c1 "${RC_MASTERS[2]}" "$S0:log" "$S1:log" "$S2:log" "$FAIL:exec")
for s in "$S0" "$S1" "$S2"; do cc_xadd "$s" 1 "$PER_STREAM"; done
cl_spawn_consumer a "$CONF"
CPID=$RS_PID
OUT=$RS_OUT
ERR=$RS_ERR
cl_wait_for "$CPID" $((30 * RS_SCALE)) cc_settled "$S0" ||
    rs_fail "$S0 not settled: $(tail -n 5 "$ERR")"
cl_wait_for "$CPID" $((30 * RS_SCALE)) cc_settled "$S1" || rs_fail "$S1 not settled"
cl_wait_for "$CPID" $((30 * RS_SCALE)) cc_settled "$S2" || rs_fail "$S2 not settled"
for s in "$S0" "$S1" "$S2"; do
    rs_assert_eq "$PER_STREAM" "$(cc_unique_handled "$OUT" "$s")" "entries of $s handled"
done
rs_assert_eq $((3 * PER_STREAM)) "$(cl_handled "$OUT" | wc -l)" "handled lines (no duplicates)"
rs_assert_file_contains "$ERR" "slot map fetched"
rs_pass

rs_case "b. dead letters go to {stream}:dlq on the stream's master"
cc_xadd "$FAIL" 1 3
DLQ="{$FAIL}:dlq"
rs_assert_eq "$(rc_slot "$FAIL")" "$(rc_slot "$DLQ")" "slot of the dead-letter stream"
dlq_len() { rc_cli "$(rc_owner "$DLQ")" XLEN "$DLQ"; }
dlq_full() { [[ $(dlq_len) == 3 ]]; }
cl_wait_for "$CPID" $((30 * RS_SCALE)) dlq_full || rs_fail "dead letters: $(dlq_len) of 3"
cl_wait_for "$CPID" $((10 * RS_SCALE)) cc_settled "$FAIL" || rs_fail "$FAIL not settled"
rs_assert_file_contains "$ERR" "dead-lettered to $DLQ"
# /streams asks each master about its own streams.
HPORT=$(awk -F'port = ' '/^health/ { split($2, a, ";"); print a[1] }' "$CONF")
curl -sf "http://127.0.0.1:$HPORT/streams" >"$RS_TMP/streams.json" || rs_fail "GET /streams failed"
"$RS_PYTHON" - "$RS_TMP/streams.json" "$S0" "$S1" "$S2" <<'PY' || rs_fail "/streams in cluster mode: $(head -c 600 "$RS_TMP/streams.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
streams = {s["name"]: s for s in doc["streams"]}
for name in sys.argv[2:]:
    s = streams[name]
    assert s["length"] == 300, (name, s["length"])
PY
rs_pass

rs_case "c. a slot migrated while entries flow"
SLOT=$(rc_slot "$S0")
FROM=$(rc_owner "$S0")
TO=${RC_MASTERS[1]}
# Entries keep coming while the slot moves, 10 at a time through redis-cli -c (which follows
# MOVED and ASK), until the move is over (at most 3000).
MOVED_FLAG=$RS_TMP/moved
(
    n=$PER_STREAM
    while [[ ! -e $MOVED_FLAG ]] && ((n < PER_STREAM + 3000)); do
        for ((i = n + 1; i <= n + 10; i++)); do
            printf 'XADD %s * message "Message #%d" type test timestamp 2026-01-01T00:00:00Z\n' "$S0" "$i"
        done | rc_cli_cluster >>"$RS_TMP/flow.out"
        n=$((n + 10))
    done
    for ((i = n + 1; i <= n + 10; i++)); do
        printf 'XADD %s * message "Message #%d" type test timestamp 2026-01-01T00:00:00Z\n' "$S0" "$i"
    done | rc_cli_cluster >>"$RS_TMP/flow.out"
) &
FLOW=$!
rs_track "$FLOW"
flowing() { [[ $(grep -cE '^[0-9]+-[0-9]+$' "$RS_TMP/flow.out" 2>/dev/null) -ge 50 ]]; }
rs_wait_for flowing || rs_fail "entries do not flow"
rc_migrate_slot_begin "$SLOT" "$TO"
rc_migrate_slot_keys "$SLOT"
rc_migrate_slot_end "$SLOT"
touch "$MOVED_FLAG"
wait "$FLOW" || rs_fail "the writer failed"
rs_assert_eq "$TO" "$(rc_owner "$S0")" "owner of $S0 after the move (was $FROM)"
ADDED=$(grep -cE '^[0-9]+-[0-9]+$' "$RS_TMP/flow.out") || true
# redis-cli -c says "-> Redirected to slot ..." when it follows a redirection; nothing else
# may be there.
rs_assert_eq 0 "$(grep -vE '^[0-9]+-[0-9]+$' "$RS_TMP/flow.out" | grep -cv '^-> Redirected')" \
    "writer errors"
echo "  $ADDED entries added while the slot moved"
cc_xadd "$S0" 100001 50
TOTAL=$((PER_STREAM + ADDED + 50))
all_handled() { [[ $(cc_unique_handled "$OUT" "$S0") == "$TOTAL" ]]; }
cl_wait_for "$CPID" $((40 * RS_SCALE)) all_handled ||
    rs_fail "$S0: $(cc_unique_handled "$OUT" "$S0") of $TOTAL handled"
cl_wait_for "$CPID" $((20 * RS_SCALE)) cc_settled "$S0" || rs_fail "$S0 not settled on its new master"
rs_assert_eq "$TOTAL" "$(rc_cli "$TO" XLEN "$S0")" "XLEN on the new master"
rs_assert_file_contains "$ERR" "cluster: slot $SLOT moved to 127.0.0.1:$TO"
rs_pass

rs_case "d. stop"
cl_stop_consumer "$CPID"
cl_assert_clean_stderr "$ERR"
rs_pass

rs_case "e. a seed that is not a cluster node"
rs_start_redis
CONF=$(cc_config e c9 "$RS_REDIS_PORT" "events:log")
HPORT=$(awk -F'port = ' '/^health/ { split($2, a, ";"); print a[1] }' "$CONF")
cl_spawn_consumer e "$CONF"
EPID=$RS_PID
said_why() { grep -qF "is this node part of a Redis Cluster?" "$RS_TMP/e.err"; }
cl_wait_for "$EPID" $((15 * RS_SCALE)) said_why || rs_fail "no clear error: $(tail -n 3 "$RS_TMP/e.err")"
CODE=$(curl -s -o "$RS_TMP/readyz.txt" -w '%{http_code}' "http://127.0.0.1:$HPORT/readyz") || true
rs_assert_eq 503 "$CODE" "/readyz status"
rs_assert_file_contains "$RS_TMP/readyz.txt" "Redis refused the connection setup"
cl_stop_consumer "$EPID"
rs_pass
