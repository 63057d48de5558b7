# shellcheck shell=bash disable=SC2034 # variables here are used by the sourcing scripts
#
# Helpers for the Redis Cluster integration tests: a private, throwaway Redis Cluster on
# loopback. Source it after lib.sh, whose temp directory, EXIT trap (which kills every node),
# waits and assertions it builds on:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     source "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"
#
#     rc_start_cluster 3 1                     # 3 masters, 1 replica each, password redis123
#     key=$(rc_key_on_master 0 events)         # a key whose slot master 0 owns
#     rc_cli "$(rc_owner "$key")" XADD "$key" '*' n 1
#     rc_migrate_slot "$(rc_slot "$key")" "${RC_MASTERS[2]}"
#     rc_kill_master 1                         # never as $(rc_kill_master 1)
#
# It adds: starting the nodes (each on its own free loopback ports, files in
# $RS_TMP/cluster/<port>/) and joining them with redis-cli --cluster create; redis-cli against
# one node or the whole cluster; a key's slot and the master that owns it; a key name that
# lands on a chosen master; moving a slot the way redis-cli --cluster reshard does, in steps
# so that a test can hold the slot half-migrated (MIGRATING on the source, IMPORTING on the
# target) while traffic flows; and killing a master, waiting for its replica's failover.
#
# Every wait has a deadline (RC_TIMEOUT seconds, default 30) and fails the test when it
# passes, after printing each node's view and the end of its log. Every internal redis-cli
# call is bounded too (5 s), so a stopped node cannot hang the script. The "cluster agrees"
# condition used after start, after a slot move and after a failover is: every live node
# says cluster_state:ok with all 16384 slots assigned; all of them print the same CLUSTER
# SLOTS (slot ranges and each range's master, so the new config epochs have reached
# everyone) and the same CLUSTER NODES topology (which node is a master, whose replica each
# replica is, which slots each master serves; nodes flagged failing left out); and every live
# replica's link to its master is up (so that a replica can be promoted: one that never
# synced refuses to fail over, and WAIT counts only connected replicas).
#
# State (read it, do not change it; only the functions below update it):
#   RC_PORTS      every node's client port, in start order
#   RC_PIDS       every node's pid, in the same order as RC_PORTS
#   RC_PID        associative: port -> pid
#   RC_MASTERS    the masters' ports, in slot order when the cluster started (RC_MASTERS[0]
#                 owned slot 0). An index keeps naming the same shard: rc_migrate_slot does
#                 not reorder it, and rc_kill_master puts the promoted replica in its place.
#   RC_PASSWORD   the nodes' requirepass/masterauth ("" = none)
#   RC_NEW_MASTER the replica the last rc_kill_master saw promoted
#   RC_DOWN       associative: port -> 1 for each node killed (no longer "live")
#
# Limits: keys are passed through redis-cli's arguments and output lines, so a key moved by
# rc_migrate_slot_keys must not contain a newline. Nodes announce 127.0.0.1 (no hostnames).
#
# Environment, beyond lib.sh's:
#   RC_TIMEOUT   seconds each wait may take before the test fails (default 30)

RC_TIMEOUT=${RC_TIMEOUT:-30}
RC_PORTS=()
RC_PIDS=()
RC_MASTERS=()
RC_PASSWORD=""
RC_NEW_MASTER=""
declare -A RC_PID=()
declare -A RC_DOWN=()
declare -A RC_MIGRATING=() # slot -> "SOURCE_PORT TARGET_PORT" between _begin and _end
declare -A _RC_USED_PORTS=()
declare -A _RC_ROLE=()

# --- running redis-cli -----------------------------------------------------------------------

# _rc_cli_t SECONDS PORT ARGS...: redis-cli against node PORT with the cluster's password,
# killed after SECONDS. Like any redis-cli, it exits 0 on an error reply ("MOVED ...",
# "ERR ..." on stdout): callers check what was printed.
_rc_cli_t() {
    local secs=$1 port=$2
    shift 2
    local auth=()
    [[ -z $RC_PASSWORD ]] || auth=(-a "$RC_PASSWORD")
    timeout --kill-after=2 "$secs" "$REDIS_CLI" -h 127.0.0.1 -p "$port" \
        ${auth[@]+"${auth[@]}"} --no-auth-warning "$@"
}

# rc_cli PORT ARGS...: redis-cli against node PORT (127.0.0.1) with the cluster's password,
# without the password warning. Bounded by 60 s (a BLOCKing read in a test must be shorter).
# An error reply is printed on stdout and the exit status is still 0, as with any redis-cli.
rc_cli() {
    _rc_cli_t 60 "$@"
}

# rc_cli_cluster ARGS...: redis-cli -c (follows MOVED and ASK) against the first live master
# of RC_MASTERS. Bounded by 60 s.
rc_cli_cluster() {
    local port
    port=$(_rc_first_live_master) || return 1
    _rc_cli_t 60 "$port" -c "$@"
}

# --- nodes -----------------------------------------------------------------------------------

# _rc_live PORT: true unless the node on PORT was killed or has exited.
_rc_live() {
    [[ -z ${RC_DOWN[$1]:-} && -n ${RC_PID[$1]:-} ]] && ! rs_exited "${RC_PID[$1]}"
}

# _rc_live_ports: the live nodes' ports, one per line.
_rc_live_ports() {
    local port
    for port in ${RC_PORTS[@]+"${RC_PORTS[@]}"}; do
        if _rc_live "$port"; then echo "$port"; fi
    done
}

# _rc_first_live_master: the first live port of RC_MASTERS (any live node when none is).
_rc_first_live_master() {
    local port
    for port in ${RC_MASTERS[@]+"${RC_MASTERS[@]}"}; do
        if _rc_live "$port"; then
            echo "$port"
            return 0
        fi
    done
    port=$(_rc_live_ports | head -n 1)
    [[ -n $port ]] || rs_fail "no live cluster node"
    echo "$port"
}

# _rc_no_subshell NAME: fails the test when NAME runs in a subshell ($(...), a pipeline),
# where the state it sets and the processes it reaps would be lost.
_rc_no_subshell() {
    ((BASH_SUBSHELL == 0)) || rs_fail "$1 must not run in a subshell such as \$(...)"
}

# _rc_pick_port: a free loopback port (lib.sh's rs_free_port) this cluster has not used yet.
_rc_pick_port() {
    local port attempt
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port=$(rs_free_port) || return 1
        if [[ -z ${_RC_USED_PORTS[$port]:-} ]]; then
            echo "$port"
            return 0
        fi
    done
    rs_fail "no unused free port found"
}

# True when the node on PORT answers and is the process PID in cluster mode (a random port
# may be taken by someone else's redis, which must never be mistaken for ours).
_rc_node_is_ours() {
    local info
    info=$(_rc_cli_t 5 "$1" INFO server 2>/dev/null) || return 1
    [[ $info == *"process_id:$2"* && $info == *"redis_mode:cluster"* ]]
}

# Stops the wait early when the server died (a port taken), so a retry costs no time.
_rc_node_up() {
    rs_exited "$2" && return 0
    _rc_node_is_ours "$1" "$2"
}

# _rc_launch_node: starts one cluster node on fresh free ports (client and bus), without
# waiting for it; sets _RC_LAUNCHED to "PORT PID".
_rc_launch_node() {
    local port bus dir auth=()
    [[ -z $RC_PASSWORD ]] || auth=(--requirepass "$RC_PASSWORD" --masterauth "$RC_PASSWORD")
    port=$(_rc_pick_port) || rs_fail "no free port"
    _RC_USED_PORTS[$port]=1
    bus=$(_rc_pick_port) || rs_fail "no free port"
    _RC_USED_PORTS[$bus]=1
    dir=$RS_TMP/cluster/$port
    mkdir -p "$dir"
    # The bus port is chosen (cluster-port, Redis 7) rather than left at port + 10000, which
    # could fall in the kernel's ephemeral range and be held by any outgoing connection.
    "$REDIS_SERVER" --port "$port" --cluster-port "$bus" --bind 127.0.0.1 \
        --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
        --cluster-node-timeout 2000 --repl-diskless-sync-delay 0 \
        --save '' --appendonly no --dir "$dir" \
        --daemonize no --logfile "$dir/redis.log" ${auth[@]+"${auth[@]}"} &
    rs_track "$!"
    _RC_LAUNCHED="$port $!"
}

# _rc_spawn_nodes COUNT: starts COUNT nodes at once and waits for each; a node that died
# (its port was taken meanwhile) or never answered is replaced by one on other ports, up to
# 10 rounds. Appends to RC_PORTS, RC_PIDS, RC_PID in the order the nodes came up.
_rc_spawn_nodes() {
    local missing=$1 round i launched port pid
    for round in 1 2 3 4 5 6 7 8 9 10; do
        launched=()
        for ((i = 0; i < missing; i++)); do
            _rc_launch_node
            launched+=("$_RC_LAUNCHED")
        done
        for i in "${launched[@]}"; do
            read -r port pid <<<"$i"
            if RS_WAIT_TIMEOUT=10 rs_wait_for _rc_node_up "$port" "$pid" && ! rs_exited "$pid"; then
                RC_PORTS+=("$port")
                RC_PIDS+=("$pid")
                RC_PID[$port]=$pid
                missing=$((missing - 1))
            else
                kill -KILL "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
                rs_untrack "$pid"
                # Kept for a post-mortem, out of the way of a later node on that port.
                mv "$RS_TMP/cluster/$port" "$RS_TMP/cluster/$port.failed-$round"
            fi
        done
        ((missing > 0)) || return 0
    done
    rs_fail "could not start $missing cluster node(s) on free ports in $round rounds"
}

# --- the cluster's view ----------------------------------------------------------------------

# _rc_slots_parse: reads a CLUSTER SLOTS reply as redis-cli prints it and writes
# "START END MASTER_PORT" lines, in slot order.
#
# redis-cli prints the nested reply flattened, one element a line: per range START and END,
# then per node its IP (empty on a lone node, which has not learned its address from a
# MEET), port, id and metadata (an empty line for the empty map, as no hostname is
# announced; "hostname" and its value otherwise). Where a node's IP may come, a number is
# the next range's START instead. The first port of a range is its master's. Replicas are
# left out: Redis 7.0 lists a replica only once its replication offset, as gossiped, is not
# 0, so different nodes list different replicas for a while (_rc_nodes_parse covers them).
_rc_slots_parse() {
    awk '
        function ip_or_start() {
            if ($0 ~ /^[0-9]+$/) { start = $0; state = "end"; master = "" }
            else state = "port"
        }
        state == "" || state == "ip" { ip_or_start(); next }
        state == "end" { end = $0; state = "ip"; next }
        state == "port" {
            if (master == "") { master = $0; print start, end, master }
            state = "id"; next
        }
        state == "id" { state = "meta"; next }
        state == "meta" {
            if ($0 == "") state = "ip"
            else if ($0 ~ /^[0-9]+$/ || $0 ~ /[.:]/) ip_or_start() # no metadata printed
            else state = "meta-value"
            next
        }
        state == "meta-value" { state = "meta"; next }'
}

# _rc_nodes_parse: reads a CLUSTER NODES reply and writes the topology it describes, as
# "PORT master|slave MASTER_PORT|- [SLOT RANGES...]" lines sorted by port, leaving out nodes
# this one thinks failing (fail or fail?) or does not know yet (handshake, noaddr), and the
# [slot->-id] markers of slots being migrated.
_rc_nodes_parse() {
    awk '
        {
            sub(/\r$/, "")
            if ($0 == "") next
            n++; id[n] = $1; flags[n] = $3; master[n] = $4
            addr = $2; sub(/@.*/, "", addr); sub(/.*:/, "", addr); port[$1] = addr
            s = ""
            for (i = 9; i <= NF; i++) if ($i !~ /^\[/) s = s " " $i
            slots[n] = s
        }
        END {
            for (k = 1; k <= n; k++) {
                if (flags[k] ~ /fail|handshake|noaddr/) continue
                role = flags[k] ~ /master/ ? "master" : "slave"
                m = master[k] == "-" ? "-" : port[master[k]]
                print port[id[k]], role, m slots[k]
            }
        }' | sort -n
}

# _rc_table PORT: node PORT's CLUSTER SLOTS as _rc_slots_parse lines. Fails (status 1) when
# the node does not answer.
_rc_table() {
    local out
    out=$(_rc_cli_t 5 "$1" CLUSTER SLOTS 2>/dev/null) || return 1
    [[ -n $out && $out != *ERR* && $out != *LOADING* ]] || return 1
    _rc_slots_parse <<<"$out"
}

# _rc_table_owner TABLE SLOT: the master port owning SLOT in a _rc_table output.
_rc_table_owner() {
    awk -v s="$2" '$1 <= s + 0 && s + 0 <= $2 { print $3; exit }' <<<"$1"
}

# _rc_field TEXT NAME: the value of "NAME:VALUE" in an INFO or CLUSTER INFO reply, in
# _RC_FIELD (empty when absent). No subshell, no process: the waits call it a lot.
_rc_field() {
    local re="(^|"$'\n'")$2:([^"$'\r\n'"]*)"
    _RC_FIELD=""
    if [[ $1 =~ $re ]]; then _RC_FIELD=${BASH_REMATCH[2]}; fi
}

# _rc_view PORT: node PORT's CLUSTER INFO, CLUSTER SLOTS, CLUSTER NODES and INFO replication,
# fetched with one redis-cli (a process costs tens of milliseconds on a loaded machine), in
# _RC_V_INFO, _RC_V_SLOTS, _RC_V_NODES and _RC_V_REPL. Fails (status 1) when the node does
# not answer all four.
_rc_view() {
    local out sep=$'\n'"rc-view-sep"$'\n'
    out=$(printf '%s\n' "CLUSTER INFO" "ECHO rc-view-sep" "CLUSTER SLOTS" "ECHO rc-view-sep" \
        "CLUSTER NODES" "ECHO rc-view-sep" "INFO replication" | _rc_cli_t 5 "$1" 2>/dev/null) ||
        return 1
    [[ $out == *"$sep"*"$sep"*"$sep"* ]] || return 1
    _RC_V_INFO=${out%%"$sep"*}
    out=${out#*"$sep"}
    _RC_V_SLOTS=${out%%"$sep"*}
    out=${out#*"$sep"}
    _RC_V_NODES=${out%%"$sep"*}
    _RC_V_REPL=${out#*"$sep"}
}

# _rc_state_ok PORT: node PORT says cluster_state:ok.
_rc_state_ok() {
    local out
    out=$(_rc_cli_t 5 "$1" CLUSTER INFO 2>/dev/null) || return 1
    _rc_field "$out" cluster_state
    [[ $_RC_FIELD == ok ]]
}

# _rc_all_ok: every live node says cluster_state:ok.
_rc_all_ok() {
    local port
    for port in $(_rc_live_ports); do
        _rc_state_ok "$port" || return 1
    done
}

# _rc_agree: the cluster agrees (see the top of this file): every live node says
# cluster_state:ok with 16384 slots assigned, prints the same CLUSTER SLOTS table (ranges and
# masters) and the same topology (_rc_nodes_parse), and each live replica's link is up. On
# success _RC_TABLE holds the common table, _RC_TOPOLOGY the common topology and _RC_ROLE
# (port -> master|slave) each live node's own INFO replication role.
_rc_agree() {
    local port table topology first="" first_topology="" covered
    _RC_ROLE=()
    for port in $(_rc_live_ports); do
        _rc_view "$port" || return 1
        _rc_field "$_RC_V_INFO" cluster_state
        [[ $_RC_FIELD == ok ]] || return 1
        _rc_field "$_RC_V_INFO" cluster_slots_assigned
        [[ $_RC_FIELD == 16384 ]] || return 1
        table=$(_rc_slots_parse <<<"$_RC_V_SLOTS")
        topology=$(_rc_nodes_parse <<<"$_RC_V_NODES")
        if [[ -z $first ]]; then
            first=$table
            first_topology=$topology
        elif [[ $table != "$first" || $topology != "$first_topology" ]]; then
            return 1
        fi
        _rc_field "$_RC_V_REPL" role
        _RC_ROLE[$port]=$_RC_FIELD
        if [[ $_RC_FIELD == slave ]]; then
            _rc_field "$_RC_V_REPL" master_link_status
            [[ $_RC_FIELD == up ]] || return 1
        fi
    done
    [[ -n $first ]] || return 1
    covered=$(awk '{ n += $2 - $1 + 1 } END { print n + 0 }' <<<"$first")
    ((covered == 16384)) || return 1
    _RC_TABLE=$first
    _RC_TOPOLOGY=$first_topology
}

# _rc_wait WHAT CMD...: runs CMD every 0.1 s until it succeeds; fails the test (with the
# cluster's state) when RC_TIMEOUT seconds pass first. The poll count is bounded too.
_rc_wait() {
    local what=$1
    shift
    local deadline=$((SECONDS + RC_TIMEOUT + 1)) tries=$((RC_TIMEOUT * 10 + 10))
    while ((tries-- > 0 && SECONDS < deadline)); do
        if "$@"; then
            return 0
        fi
        sleep 0.1
    done
    "$@" || _rc_fail "$what: not reached within ${RC_TIMEOUT}s"
}

# _rc_fail MESSAGE: rs_fail, after printing every node's view of the cluster and the end of
# its log (to stderr).
_rc_fail() {
    local port state
    {
        for port in ${RC_PORTS[@]+"${RC_PORTS[@]}"}; do
            if _rc_live "$port"; then state="pid ${RC_PID[$port]}"; else state="down"; fi
            echo "--- node $port ($state) ---"
            if _rc_live "$port"; then
                _rc_cli_t 2 "$port" CLUSTER NODES 2>&1 || true
            fi
            tail -n 8 "$RS_TMP/cluster/$port/redis.log" 2>/dev/null || true
        done
    } >&2
    rs_fail "$1"
}

# _rc_myid PORT: the node's id.
_rc_myid() {
    local id
    id=$(_rc_cli_t 5 "$1" CLUSTER MYID 2>/dev/null) || true
    [[ $id =~ ^[0-9a-f]{40}$ ]] || rs_fail "CLUSTER MYID on $1: '$id'"
    echo "$id"
}

# _rc_expect_ok WHAT PORT ARGS...: runs ARGS on node PORT and fails the test unless it
# answered OK.
_rc_expect_ok() {
    local what=$1 port=$2 out
    shift 2
    out=$(_rc_cli_t 10 "$port" "$@" 2>&1) || true
    [[ $out == OK ]] || _rc_fail "$what on $port: expected OK, got '$out'"
}

# --- starting --------------------------------------------------------------------------------

# rc_start_cluster MASTERS REPLICAS_PER_MASTER [PASSWORD]: starts MASTERS * (1 + REPLICAS)
# redis-server nodes (cluster-enabled, node timeout 2000 ms so a failover takes seconds,
# repl-diskless-sync-delay 0 so a replica syncs at once rather than after Redis 7's 5 s, no
# persistence, requirepass and masterauth PASSWORD; default $RS_REDIS_PASSWORD, "" for none),
# each on a free loopback port with its files and redis.log in $RS_TMP/cluster/<port>/, joins
# them with redis-cli --cluster create (MASTERS >= 3, as redis-cli requires) and waits until
# the cluster agrees. Sets RC_PORTS, RC_PIDS, RC_PID, RC_MASTERS and RC_PASSWORD. Fails the
# test on any error or after RC_TIMEOUT seconds of waiting. Call it once per test, not in a
# subshell.
rc_start_cluster() {
    _rc_no_subshell rc_start_cluster
    local masters=$1 replicas=$2 port addrs=() out
    [[ $masters =~ ^[0-9]+$ && $replicas =~ ^[0-9]+$ ]] ||
        rs_fail "rc_start_cluster: MASTERS and REPLICAS must be numbers"
    ((masters >= 3 || (masters == 1 && replicas == 0))) ||
        rs_fail "rc_start_cluster: Redis Cluster needs at least 3 masters (or 1 without replicas)"
    ((${#RC_PORTS[@]} == 0)) || rs_fail "rc_start_cluster: a cluster is already running"
    RC_PASSWORD=${3-$RS_REDIS_PASSWORD}
    mkdir -p "$RS_TMP/cluster"

    _rc_spawn_nodes $((masters * (1 + replicas)))
    for port in "${RC_PORTS[@]}"; do
        addrs+=("127.0.0.1:$port")
    done
    out=$RS_TMP/cluster/create.log
    if ((masters == 1)); then
        # redis-cli --cluster create wants 3 masters; one node simply takes every slot (the
        # one-shard baseline of bench/scaling.sh).
        _rc_cli_t 10 "${RC_PORTS[0]}" CLUSTER ADDSLOTSRANGE 0 16383 >"$out" 2>&1
        grep -q '^OK$' "$out" || _rc_fail "CLUSTER ADDSLOTSRANGE failed: $(cat "$out")"
    elif ! _rc_cli_t 60 "${RC_PORTS[0]}" --cluster create "${addrs[@]}" \
        --cluster-replicas "$replicas" --cluster-yes </dev/null >"$out" 2>&1 ||
        ! grep -q 'All 16384 slots covered' "$out"; then
        tail -n 20 "$out" >&2
        _rc_fail "redis-cli --cluster create failed (see above)"
    fi

    _rc_wait "cluster of ${#RC_PORTS[@]} nodes agreeing" _rc_agree
    # The masters in slot order: the table is sorted by slot, so first appearances.
    mapfile -t RC_MASTERS < <(awk '!seen[$3]++ { print $3 }' <<<"$_RC_TABLE")
    ((${#RC_MASTERS[@]} == masters)) ||
        _rc_fail "expected $masters masters, the cluster has ${#RC_MASTERS[@]}"
}

# --- keys and slots --------------------------------------------------------------------------

# rc_slot KEY: prints KEY's hash slot (CLUSTER KEYSLOT on a live node).
rc_slot() {
    local port slot
    port=$(_rc_first_live_master) || return 1
    slot=$(_rc_cli_t 5 "$port" CLUSTER KEYSLOT "$1" 2>&1) || true
    [[ $slot =~ ^[0-9]+$ ]] || rs_fail "CLUSTER KEYSLOT $1: '$slot'"
    echo "$slot"
}

# rc_owner KEY: prints the port of the master that owns KEY's slot now, as the CLUSTER SLOTS
# of a live node (the first live master) says. During a migration that is the source.
rc_owner() {
    local slot port table owner
    slot=$(rc_slot "$1") || return 1
    port=$(_rc_first_live_master) || return 1
    table=$(_rc_table "$port") || rs_fail "CLUSTER SLOTS on $port failed"
    owner=$(_rc_table_owner "$table" "$slot")
    [[ -n $owner ]] || rs_fail "slot $slot has no owner in the view of $port"
    echo "$owner"
}

# rc_key_on_master INDEX PREFIX: prints the first of PREFIX-0, PREFIX-1, ... whose slot
# master RC_MASTERS[INDEX] owns now. Tries up to 10,000 names (enough unless that master owns
# only a handful of slots). The slots are asked in batches, one redis-cli call per 100 names.
rc_key_on_master() {
    local target=${RC_MASTERS[$1]:-} prefix=$2 port table base i quoted slots
    [[ -n $target ]] || rs_fail "rc_key_on_master: no master $1"
    port=$(_rc_first_live_master) || return 1
    table=$(_rc_table "$port") || rs_fail "CLUSTER SLOTS on $port failed"
    # redis-cli reads the batch from stdin, where arguments are quoted like its prompt's.
    quoted=${prefix//\\/\\\\}
    quoted=${quoted//\"/\\\"}
    for ((base = 0; base < 10000; base += 100)); do
        mapfile -t slots < <(for ((i = base; i < base + 100; i++)); do
            printf 'CLUSTER KEYSLOT "%s-%d"\n' "$quoted" "$i"
        done | _rc_cli_t 10 "$port" 2>/dev/null)
        ((${#slots[@]} == 100)) || rs_fail "CLUSTER KEYSLOT batch on $port: ${slots[*]:0:3}"
        # The first name of the batch whose slot falls in one of the target's ranges.
        i=$(awk -v m="$target" -v list="${slots[*]}" '
            $3 == m { lo[++n] = $1; hi[n] = $2 }
            END {
                k = split(list, s, " ")
                for (i = 1; i <= k; i++)
                    for (j = 1; j <= n; j++)
                        if (lo[j] <= s[i] + 0 && s[i] + 0 <= hi[j]) { print i - 1; exit }
            }' <<<"$table")
        if [[ -n $i ]]; then
            echo "$prefix-$((base + i))"
            return 0
        fi
    done
    rs_fail "no key $prefix-N in 10000 lands on master $target"
}

# --- moving a slot ---------------------------------------------------------------------------

# rc_migrate_slot SLOT TO_PORT: moves SLOT and all its keys from its owner to master TO_PORT,
# as redis-cli --cluster reshard does (the three steps below), and waits until the cluster
# agrees that TO_PORT owns it. Not in a subshell.
rc_migrate_slot() {
    rc_migrate_slot_begin "$1" "$2"
    rc_migrate_slot_keys "$1"
    rc_migrate_slot_end "$1"
}

# rc_migrate_slot_begin SLOT TO_PORT: marks SLOT IMPORTING on master TO_PORT, then MIGRATING
# on its current owner. From here the owner still serves the slot's keys it holds and answers
# -ASK for the others; TO_PORT serves the slot only after ASKING (else -MOVED to the owner).
# Not in a subshell (it records the migration for the two calls below).
rc_migrate_slot_begin() {
    _rc_no_subshell rc_migrate_slot_begin
    local slot=$1 to=$2 port table from
    if ! [[ $slot =~ ^[0-9]+$ ]] || ((slot >= 16384)); then
        rs_fail "rc_migrate_slot_begin: bad slot '$slot'"
    fi
    [[ -z ${RC_MIGRATING[$slot]:-} ]] || rs_fail "slot $slot is already being migrated"
    _rc_live "$to" || rs_fail "rc_migrate_slot_begin: $to is not a live node"
    port=$(_rc_first_live_master)
    table=$(_rc_table "$port") || rs_fail "CLUSTER SLOTS on $port failed"
    from=$(_rc_table_owner "$table" "$slot")
    [[ -n $from && $from != "$to" ]] || rs_fail "slot $slot: owner '$from', cannot move it to $to"
    _rc_expect_ok "CLUSTER SETSLOT $slot IMPORTING" "$to" \
        CLUSTER SETSLOT "$slot" IMPORTING "$(_rc_myid "$from")"
    _rc_expect_ok "CLUSTER SETSLOT $slot MIGRATING" "$from" \
        CLUSTER SETSLOT "$slot" MIGRATING "$(_rc_myid "$to")"
    RC_MIGRATING[$slot]="$from $to"
}

# rc_migrate_slot_keys SLOT: moves every key of SLOT still on the source to the target
# (CLUSTER GETKEYSINSLOT, then MIGRATE ... KEYS, 100 at a time, until none is left). Keys
# written meanwhile through -ASK land on the target already. Fails the test on a MIGRATE
# error or after RC_TIMEOUT seconds.
rc_migrate_slot_keys() {
    local slot=$1 from to keys out auth=() deadline=$((SECONDS + RC_TIMEOUT)) rounds=0
    [[ -n ${RC_MIGRATING[$slot]:-} ]] || rs_fail "rc_migrate_slot_keys: slot $slot is not migrating"
    read -r from to <<<"${RC_MIGRATING[$slot]}"
    [[ -z $RC_PASSWORD ]] || auth=(AUTH "$RC_PASSWORD")
    while :; do
        out=$(_rc_cli_t 10 "$from" CLUSTER GETKEYSINSLOT "$slot" 100 2>&1) ||
            _rc_fail "CLUSTER GETKEYSINSLOT $slot on $from failed: $out"
        [[ -n $out ]] || return 0
        [[ $out != ERR* ]] || _rc_fail "CLUSTER GETKEYSINSLOT $slot on $from: $out"
        mapfile -t keys <<<"$out"
        out=$(_rc_cli_t 10 "$from" MIGRATE 127.0.0.1 "$to" "" 0 5000 \
            ${auth[@]+"${auth[@]}"} KEYS "${keys[@]}" 2>&1) || true
        [[ $out == OK || $out == NOKEY ]] || _rc_fail "MIGRATE of slot $slot to $to: $out"
        ((++rounds < 10000 && SECONDS < deadline)) ||
            _rc_fail "slot $slot still has keys on $from after ${RC_TIMEOUT}s"
    done
}

# rc_migrate_slot_end SLOT: moves any key still left on the source (the slot cannot be handed
# over while it holds some), then CLUSTER SETSLOT SLOT NODE <target> on the target, the
# source and every other live master, and waits until the cluster agrees that the target
# owns SLOT. Not in a subshell.
rc_migrate_slot_end() {
    _rc_no_subshell rc_migrate_slot_end
    local slot=$1 from to id port masters
    [[ -n ${RC_MIGRATING[$slot]:-} ]] || rs_fail "rc_migrate_slot_end: slot $slot is not migrating"
    read -r from to <<<"${RC_MIGRATING[$slot]}"
    rc_migrate_slot_keys "$slot"
    id=$(_rc_myid "$to")
    _rc_expect_ok "CLUSTER SETSLOT $slot NODE (target)" "$to" CLUSTER SETSLOT "$slot" NODE "$id"
    _rc_expect_ok "CLUSTER SETSLOT $slot NODE (source)" "$from" CLUSTER SETSLOT "$slot" NODE "$id"
    masters=$(_rc_table "$to") || rs_fail "CLUSTER SLOTS on $to failed"
    masters=$(awk '{ print $3 }' <<<"$masters" | sort -u)
    for port in $masters; do
        if [[ $port != "$to" && $port != "$from" ]] && _rc_live "$port"; then
            _rc_expect_ok "CLUSTER SETSLOT $slot NODE" "$port" CLUSTER SETSLOT "$slot" NODE "$id"
        fi
    done
    unset "RC_MIGRATING[$slot]"
    _RC_SLOT=$slot
    _RC_TO=$to
    _rc_wait "slot $slot owned by $to everywhere" _rc_agree_owner
}
_rc_agree_owner() {
    _rc_agree && [[ $(_rc_table_owner "$_RC_TABLE" "$_RC_SLOT") == "$_RC_TO" ]]
}

# --- failures --------------------------------------------------------------------------------

# rc_kill_master INDEX: kills master RC_MASTERS[INDEX] with SIGKILL (a crash) and waits until
# one of its replicas says role:master (INFO replication) and the cluster agrees again (see
# the top of this file; the promoted replica owning every slot of the dead master). Sets
# RC_NEW_MASTER to the promoted replica's port, RC_MASTERS[INDEX] to it and RC_DOWN[port of
# the dead master]; prints nothing. Fails the test when the master has no replica or after
# RC_TIMEOUT seconds (Redis needs about 3-4 s: the 2 s node timeout, the failure reports,
# the replica's 0.5-1 s election delay).
# Must NOT be called in a subshell such as $(rc_kill_master 1): the process it kills must be
# reaped by this shell, and RC_MASTERS, RC_NEW_MASTER and RC_DOWN would be lost.
rc_kill_master() {
    _rc_no_subshell rc_kill_master
    local index=$1 port pid table
    port=${RC_MASTERS[$index]:-}
    if [[ -z $port ]] || ! _rc_live "$port"; then
        rs_fail "rc_kill_master: no live master $index"
    fi
    # Its replicas and slots as the master itself sees them.
    _rc_view "$port" || rs_fail "node $port does not answer"
    _RC_REPLICAS=$(_rc_nodes_parse <<<"$_RC_V_NODES" |
        awk -v m="$port" '$2 == "slave" && $3 == m { print $1 }')
    [[ -n $_RC_REPLICAS ]] || rs_fail "rc_kill_master: master $port has no replica"
    table=$(_rc_slots_parse <<<"$_RC_V_SLOTS")
    _RC_OLD_SLOTS=$(awk -v m="$port" '$3 == m { print $1 }' <<<"$table")
    pid=${RC_PID[$port]}
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    rs_untrack "$pid"
    RC_DOWN[$port]=1
    _rc_wait "a replica of $port promoted and the cluster agreeing" _rc_failed_over
    RC_NEW_MASTER=$_RC_PROMOTED
    RC_MASTERS[index]=$RC_NEW_MASTER
}
_rc_failed_over() {
    local replica slot
    _RC_PROMOTED=""
    _rc_agree || return 1
    for replica in $_RC_REPLICAS; do
        if [[ ${_RC_ROLE[$replica]:-} == master ]]; then
            _RC_PROMOTED=$replica
        fi
    done
    [[ -n $_RC_PROMOTED ]] || return 1
    for slot in $_RC_OLD_SLOTS; do
        [[ $(_rc_table_owner "$_RC_TABLE" "$slot") == "$_RC_PROMOTED" ]] || return 1
    done
}

# rc_wait_ok: waits until every live node says cluster_state:ok; fails the test after
# RC_TIMEOUT seconds.
rc_wait_ok() {
    _rc_wait "cluster_state:ok on every live node" _rc_all_ok
}
