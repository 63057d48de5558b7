# shellcheck shell=bash
#
# Helpers for tests that run redstream-consumer against the private Redis Cluster of
# cluster_lib.sh. Source it after lib.sh, consumer_lib.sh and cluster_lib.sh.
#
# It adds: a cluster-mode configuration writer, XADD of demo entries on a stream's master,
# the group's state on the master that owns a stream now, and the distinct entries the log
# handler wrote.

# cc_config NAME CONSUMER SEED [KEY=VALUE...] STREAMS...: a cluster-mode configuration; each
# STREAMS item is NAME:HANDLER (exec runs the exec setting's program, default /bin/false). An
# argument that begins with one of these keys and "=" is a setting, not a stream (defaults in
# brackets): claim_idle_ms (2000), retry_base_ms (50), retry_max_ms (100, must stay below
# claim_idle_ms), max_deliveries (2), threads (4), queue (64), read_count (50), block_ms (200),
# exec (/bin/false: the absolute path the exec handler runs, no arguments), health_port (a
# free port), liveness_ms (30000), level (info).
cc_config() {
    local name=$1 consumer=$2 seed=$3 spec list=""
    local claim_idle_ms=2000 retry_base_ms=50 retry_max_ms=100 max_deliveries=2 threads=4
    local queue=64 read_count=50 block_ms=200 exec=/bin/false health_port="" liveness_ms=30000
    local level=info
    shift 3
    local specs=()
    for spec in "$@"; do
        case $spec in
        claim_idle_ms=* | retry_base_ms=* | retry_max_ms=* | max_deliveries=* | threads=* | \
            queue=* | read_count=* | block_ms=* | exec=* | health_port=* | liveness_ms=* | level=*)
            local "$spec"
            ;;
        *) specs+=("$spec") ;;
        esac
    done
    [[ -n $health_port ]] || health_port=$(rs_free_port)
    for spec in ${specs[@]+"${specs[@]}"}; do
        case ${spec#*:} in
        exec) list+="${list:+, }{ name = \"${spec%%:*}\"; handler = \"exec\"; command = [ \"$exec\" ]; }" ;;
        *) list+="${list:+, }{ name = \"${spec%%:*}\"; handler = \"${spec#*:}\"; }" ;;
        esac
    done
    rs_write_config "$name" <<EOF
redis = { cluster = true; nodes = [ "127.0.0.1:$seed" ]; password = "$RS_REDIS_PASSWORD"; connect_timeout_ms = 2000; };
group = { name = "workers"; consumer = "$consumer"; block_ms = $block_ms; read_count = $read_count;
          max_deliveries = $max_deliveries; retry_base_ms = $retry_base_ms; retry_max_ms = $retry_max_ms;
          claim_idle_ms = $claim_idle_ms; };
workers = { threads = $threads; queue_capacity = $queue; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $health_port; liveness_timeout_ms = $liveness_ms; };
streams = ( $list );
log = { level = "$level"; };
EOF
}

# cc_xadd STREAM FIRST COUNT: COUNT entries "Message #FIRST".. on STREAM's master.
cc_xadd() {
    local stream=$1 first=$2 count=$3 i owner
    owner=$(rc_owner "$stream")
    for ((i = first; i < first + count; i++)); do
        printf 'XADD %s * message "Message #%d" type test timestamp 2026-01-01T00:00:00Z\n' \
            "$stream" "$i"
    done | rc_cli "$owner" >"$RS_TMP/xadd.out"
    rs_assert_eq "$count" "$(grep -cE '^[0-9]+-[0-9]+$' "$RS_TMP/xadd.out")" "XADDs to $stream"
}

# cc_settled STREAM: nothing pending and a lag of 0 in group workers, on STREAM's master now.
cc_settled() {
    local owner info
    owner=$(rc_owner "$1")
    [[ $(rc_cli "$owner" XPENDING "$1" workers | head -n 1) == 0 ]] || return 1
    info=$(rc_cli "$owner" XINFO GROUPS "$1")
    awk 'prev == "lag" { lag = $0 } { prev = $0 } END { exit !(lag == "0") }' <<<"$info"
}

# cc_unique_handled OUT STREAM: how many distinct entries of STREAM the log handler wrote.
cc_unique_handled() {
    cl_handled "$1" | awk -v s="$2" '$1 == s { print $2 }' | sort -u | wc -l
}


# cc_health_port CONF: the health port a cc_config configuration names.
cc_health_port() {
    awk -F'port = ' '/^health/ { split($2, a, ";"); print a[1] }' "$1"
}
