#!/usr/bin/env bash
#
# The Redis Cluster harness itself (cluster_lib.sh), with no redstream program: a cluster of
# 3 masters with a replica each and a password starts and agrees; keys are placed on a chosen
# master; streams and consumer groups work on each master; a node that does not own a key
# answers -MOVED; a slot moved with its keys keeps them, half-moved it answers -ASK; and a
# killed master's replica takes over with the entries that WAIT confirmed.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/cluster_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((10#$t / 1000))
}

# in_list WORD LIST...: true when WORD is one of LIST.
in_list() {
    local w=$1
    shift
    local x
    for x in "$@"; do [[ $x == "$w" ]] && return 0; done
    return 1
}

rs_case "3 masters x 1 replica with a password: started, agreeing, files in place"
t0=$(now_ms)
rc_start_cluster 3 1
echo "  cluster up in $(($(now_ms) - t0)) ms: masters ${RC_MASTERS[*]}, all ${RC_PORTS[*]}"
rs_assert_eq 6 "${#RC_PORTS[@]}" "nodes"
rs_assert_eq 6 "${#RC_PIDS[@]}" "pids"
rs_assert_eq 3 "${#RC_MASTERS[@]}" "masters"
rs_assert_eq "$RS_REDIS_PASSWORD" "$RC_PASSWORD" "RC_PASSWORD"
for port in "${RC_PORTS[@]}"; do
    rs_assert_match "process_id:${RC_PID[$port]}" "$(rc_cli "$port" INFO server)" "pid of $port"
    rs_assert_eq "cluster_state:ok" "$(rc_cli "$port" CLUSTER INFO | head -n 1 | tr -d '\r')" \
        "state of $port"
    [[ -s $RS_TMP/cluster/$port/nodes.conf && -s $RS_TMP/cluster/$port/redis.log ]] ||
        rs_fail "node $port has no nodes.conf or redis.log in $RS_TMP/cluster/$port"
done
rs_assert_match "NOAUTH" "$("$REDIS_CLI" -h 127.0.0.1 -p "${RC_MASTERS[0]}" PING)" \
    "a command without the password"
# CLUSTER SLOTS, flattened: first range's start, end, then its master's IP and port.
mapfile -t first < <(rc_cli "${RC_PORTS[0]}" CLUSTER SLOTS | head -n 4)
rs_assert_eq "0 ${RC_MASTERS[0]}" "${first[0]} ${first[3]}" "RC_MASTERS[0] owns slot 0"
roles=""
for port in "${RC_PORTS[@]}"; do
    if in_list "$port" "${RC_MASTERS[@]}"; then
        roles+="$(rc_cli "$port" ROLE | head -n 1) "
    fi
done
rs_assert_eq "master master master " "$roles" "roles of RC_MASTERS"
rs_pass

rs_case "rc_key_on_master places a key on each master; a stream and a group work there"
declare -a keys ids
for i in 0 1 2; do
    keys[i]=$(rc_key_on_master "$i" harness)
    rs_assert_eq "${RC_MASTERS[$i]}" "$(rc_owner "${keys[$i]}")" "owner of ${keys[$i]}"
    owner=${RC_MASTERS[$i]}
    rs_assert_eq OK "$(rc_cli "$owner" XGROUP CREATE "${keys[$i]}" workers '$' MKSTREAM)" \
        "XGROUP CREATE on $owner"
    ids[i]=$(rc_cli "$owner" XADD "${keys[$i]}" '*' n "$i")
    rs_assert_match '^[0-9]+-[0-9]+$' "${ids[$i]}" "XADD on $owner"
    read_out=$(rc_cli "$owner" XREADGROUP GROUP workers c1 COUNT 10 STREAMS "${keys[$i]}" '>')
    rs_assert_match "${ids[$i]}" "$read_out" "XREADGROUP on $owner"
    rs_assert_eq 1 "$(rc_cli "$owner" XPENDING "${keys[$i]}" workers | head -n 1)" \
        "pending on $owner"
done
echo "  keys: ${keys[*]}"
rs_pass

rs_case "a node that does not own the key answers MOVED; rc_cli_cluster follows it"
key=${keys[0]}
slot=$(rc_slot "$key")
wrong=${RC_MASTERS[1]}
rs_assert_eq "MOVED $slot 127.0.0.1:${RC_MASTERS[0]}" "$(rc_cli "$wrong" XLEN "$key")" \
    "XLEN $key on $wrong"
for i in 0 1 2; do
    rs_assert_eq 1 "$(rc_cli_cluster XLEN "${keys[$i]}")" "rc_cli_cluster XLEN ${keys[$i]}"
done
rs_pass

rs_case "rc_migrate_slot moves a stream's slot with its entries and group"
key=${keys[0]}
slot=$(rc_slot "$key")
from=${RC_MASTERS[0]}
to=${RC_MASTERS[2]}
for n in 2 3 4; do rc_cli "$from" XADD "$key" '*' n "$n" >/dev/null; done
before=$(rc_cli "$from" XRANGE "$key" - +)
t0=$(now_ms)
rc_migrate_slot "$slot" "$to"
echo "  slot $slot moved $from -> $to in $(($(now_ms) - t0)) ms"
rs_assert_eq "$to" "$(rc_owner "$key")" "owner after the move"
rs_assert_eq "$before" "$(rc_cli "$to" XRANGE "$key" - +)" "entries on the new owner"
rs_assert_eq 1 "$(rc_cli "$to" XPENDING "$key" workers | head -n 1)" "pending on the new owner"
rs_assert_eq 0 "$(rc_cli "$from" CLUSTER COUNTKEYSINSLOT "$slot")" "keys left on the source"
rs_assert_eq "MOVED $slot 127.0.0.1:$to" "$(rc_cli "$from" XLEN "$key")" "the source redirects"
for port in $(_rc_live_ports); do # the library's own view of each node, checked directly
    rs_assert_eq "$to" "$(_rc_table_owner "$(_rc_table "$port")" "$slot")" "owner as $port sees it"
done
rs_pass

rs_case "a slot held half-migrated: the source serves what it holds, then answers ASK"
key=${keys[1]}
slot=$(rc_slot "$key")
from=${RC_MASTERS[1]}
to=${RC_MASTERS[0]}
other="{$key}-new" # same slot (hash tag), not yet anywhere
rc_migrate_slot_begin "$slot" "$to"
rs_assert_eq 1 "$(rc_cli "$from" XLEN "$key")" "the source still serves $key before its move"
rs_assert_eq "ASK $slot 127.0.0.1:$to" "$(rc_cli "$from" XADD "$other" '*' n 1)" \
    "a new key in the slot on the source"
rc_migrate_slot_keys "$slot"
rs_assert_eq "ASK $slot 127.0.0.1:$to" "$(rc_cli "$from" XLEN "$key")" \
    "the source, once $key has moved"
rs_assert_eq "MOVED $slot 127.0.0.1:$from" "$(rc_cli "$to" XLEN "$key")" \
    "the target without ASKING"
rs_assert_eq "OK 1" "$(printf 'ASKING\nXLEN "%s"\n' "$key" | rc_cli "$to" | tr '\n' ' ' |
    sed 's/ $//')" "the target after ASKING"
rs_assert_eq 1 "$(rc_cli_cluster XLEN "$key")" "rc_cli_cluster follows ASK"
rs_assert_match '^[0-9]+-[0-9]+$' "$(rc_cli_cluster XADD "$other" '*' n 1)" \
    "rc_cli_cluster writes a new key of the slot (to the target)"
rs_assert_eq "$from" "$(rc_owner "$key")" "the owner is still the source while migrating"
rc_migrate_slot_end "$slot"
rs_assert_eq "$to" "$(rc_owner "$key")" "owner after rc_migrate_slot_end"
rs_assert_eq 1 "$(rc_cli "$to" XLEN "$other")" "the key written through ASK, on the target"
rs_assert_eq 1 "$(rc_cli "$to" XLEN "$key")" "XLEN $key on the target"
rs_pass

rs_case "rc_kill_master 1: a replica takes over with the entries WAIT confirmed"
key=$(rc_key_on_master 1 failover)
victim=${RC_MASTERS[1]}
rs_assert_eq "$victim" "$(rc_owner "$key")" "owner of $key"
rc_cli "$victim" XGROUP CREATE "$key" workers '$' MKSTREAM >/dev/null
for n in 1 2 3 4 5; do rc_cli "$victim" XADD "$key" '*' n "$n" >/dev/null; done
rs_assert_eq 1 "$(rc_cli "$victim" WAIT 1 1000)" "replicas that acknowledged (WAIT 1 1000)"
confirmed=$(rc_cli "$victim" XRANGE "$key" - +)
mapfile -t replicas < <(rc_cli "$victim" ROLE | awk 'NR > 3 && NR % 3 == 1')
rs_assert_eq 1 "${#replicas[@]}" "replicas of $victim"
t0=$(now_ms)
rc_kill_master 1
echo "  master $victim killed; $RC_NEW_MASTER promoted in $(($(now_ms) - t0)) ms"
rs_assert_eq "${replicas[0]}" "$RC_NEW_MASTER" "RC_NEW_MASTER is the replica"
rs_assert_eq "$RC_NEW_MASTER" "${RC_MASTERS[1]}" "RC_MASTERS[1] updated"
rs_assert_eq 1 "${RC_DOWN[$victim]:-}" "RC_DOWN[$victim]"
rs_assert_eq "$RC_NEW_MASTER" "$(rc_owner "$key")" "owner of $key after the failover"
rs_assert_eq "$confirmed" "$(rc_cli "$RC_NEW_MASTER" XRANGE "$key" - +)" \
    "entries on the promoted replica"
rs_assert_eq "$confirmed" "$(rc_cli_cluster XRANGE "$key" - +)" "entries through rc_cli_cluster"
rs_assert_match '^[0-9]+-[0-9]+$' "$(rc_cli "$RC_NEW_MASTER" XADD "$key" '*' n 6)" \
    "XADD on the promoted replica"
rs_assert_eq 1 "$(rc_cli "$RC_NEW_MASTER" XINFO GROUPS "$key" | grep -c '^workers$')" \
    "the group survived"
rc_wait_ok
for port in $(_rc_live_ports); do
    rs_assert_eq "cluster_state:ok" "$(rc_cli "$port" CLUSTER INFO | head -n 1 | tr -d '\r')" \
        "state of $port"
done
rs_pass
