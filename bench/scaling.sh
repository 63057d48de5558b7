#!/usr/bin/env bash
#
# bench/scaling.sh: how redstream's throughput grows with Redis Cluster shards and consumer
# instances, measured on this machine on loopback (the figures of docs/SCALING.md).
#
# For 1 and then 3 masters (a throwaway Redis Cluster with a password, started by the tests'
# cluster_lib.sh, no replicas, no persistence), with STREAMS streams spread over the masters:
#   drain    ENTRIES entries pre-filled (redis-cli --pipe on each stream's master), then one
#            redstream-consumer (discard handler, 8 workers) started; entries/s until every
#            group has nothing pending and a lag of 0;
#   drain×2  the same with two consumer processes in the group (3 masters only);
#   produce  redstream-producer --cluster in load mode writing ENTRIES entries over the
#            streams (--partitions), pipeline 64, 4 connections: entries/s as it reports.
# Every figure is the median of REPEAT runs. The standalone drain of bench/run.sh is the
# baseline to compare with (same machine, same handler).
#
# Usage: bash bench/scaling.sh [ENTRIES [STREAMS [REPEAT]]]    (default 300000 6 3)
# Environment: RS_BUILD_DIR (default build/), REDIS_SERVER, REDIS_CLI.
# Progress on stderr; the Markdown table on stdout. Loopback only; every wait has a deadline.

ENTRIES=${1:-300000}
NSTREAMS=${2:-6}
REPEAT=${3:-3}

# The tests' harness gives the temp directory, the trap that kills everything, the waits and
# the cluster; its "N passed" line at exit goes to stderr with the rest of the progress.
RS_TEST_NAME=scaling
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/integration/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/integration/consumer_lib.sh"
# shellcheck source=tests/integration/cluster_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/integration/cluster_lib.sh"
exec 3>&1 1>&2 # the table goes to the original stdout (fd 3), everything else to stderr
RC_TIMEOUT=60

say() { echo "scaling: $*"; }

# median V...: the median of the numbers given.
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# streams: the stream names ("bench:<p>" as redstream-producer --partitions writes them).
streams() {
    local p
    for ((p = 0; p < NSTREAMS; p++)); do echo "bench:$p"; done
}

# fill: ENTRIES entries spread evenly over the streams, each sent to its stream's master.
fill() {
    local s per=$((ENTRIES / NSTREAMS)) out
    for s in $(streams); do
        rc_cli "$(rc_owner "$s")" DEL "$s" >/dev/null
        cl_resp_xadd "$RS_TMP/fill.resp" "$s" "$per"
        out=$(rc_cli "$(rc_owner "$s")" --pipe <"$RS_TMP/fill.resp" 2>&1)
        [[ $out == *"errors: 0,"* ]] || rs_fail "filling $s: $out"
    done
}

# settled_all: every stream has group workers with nothing pending and a lag of 0.
settled_all() {
    local s owner info
    for s in $(streams); do
        owner=$(rc_owner "$s")
        info=$(rc_cli "$owner" XINFO GROUPS "$s" 2>/dev/null) || return 1
        awk 'prev == "pending" { p = $0 } prev == "lag" { l = $0 } { prev = $0 }
             END { exit !(p == "0" && l == "0") }' <<<"$info" || return 1
    done
}

# consumer_conf NAME CONSUMER: cluster mode, every stream with the discard handler.
consumer_conf() {
    local list="" s
    for s in $(streams); do list+="${list:+, }{ name = \"$s\"; handler = \"discard\"; }"; done
    rs_write_config "$1" <<EOF
redis = { cluster = true; nodes = [ "127.0.0.1:${RC_MASTERS[0]}" ]; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "$2"; start_id = "0"; };
workers = { threads = 8; queue_capacity = 4096; };
health = { address = "127.0.0.1"; port = $(rs_free_port); };
streams = ( $list );
log = { level = "warn"; };
EOF
}

# drain INSTANCES: fills, starts INSTANCES consumers, prints entries/s until settled.
drain() {
    local n=$1 i start end pids=() s
    fill
    for s in $(streams); do rc_cli "$(rc_owner "$s")" XGROUP DESTROY "$s" workers >/dev/null; done
    start=$(cl_now_ms)
    for ((i = 1; i <= n; i++)); do
        rs_spawn "drain$i" "$RS_CONSUMER" -c "$(consumer_conf "drain$i" "c$i")"
        pids+=("$RS_PID")
    done
    RS_WAIT_TIMEOUT=600 rs_wait_for settled_all || rs_fail "the drain did not finish"
    end=$(cl_now_ms)
    for i in "${pids[@]}"; do kill -TERM "$i" && rs_wait_exit "$i" 20; done
    echo $((ENTRIES * 1000 / (end - start)))
}

# produce: redstream-producer --cluster load mode; prints the entries/s it reports ("-" when
# this producer has no --cluster).
produce() {
    local s
    if ! "$RS_PRODUCER" --help 2>&1 | grep -q -- '--cluster'; then
        echo "-"
        return
    fi
    for s in $(streams); do rc_cli "$(rc_owner "$s")" DEL "$s" >/dev/null; done
    rs_run produce env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" "$RS_PRODUCER" --cluster \
        --redis-addr "127.0.0.1:${RC_MASTERS[0]}" --stream bench --rate 0 --count "$ENTRIES" \
        --pipeline 64 --connections 4 --key-field k --keys 10000 --partitions "$NSTREAMS"
    ((RS_RC == 0)) || rs_fail "producer failed: $(tail -n 3 "$RS_ERR")"
    # The summary line ends "... errors in 1.234 s = 123456.7 msg/s".
    cat "$RS_OUT" "$RS_ERR" | grep -oE '= [0-9.]+ msg/s' | tail -n 1 | awk '{ printf "%d\n", $2 }'
}

declare -A RESULT
for masters in 1 3; do
    say "starting a $masters-master cluster"
    rc_start_cluster "$masters" 0
    runs=()
    for ((r = 1; r <= REPEAT; r++)); do runs+=("$(drain 1)"); say "$masters masters, 1 consumer: ${runs[-1]} entries/s"; done
    RESULT[drain$masters]=$(median "${runs[@]}")
    if ((masters == 3)); then
        runs=()
        for ((r = 1; r <= REPEAT; r++)); do runs+=("$(drain 2)"); say "$masters masters, 2 consumers: ${runs[-1]} entries/s"; done
        RESULT[drain2_$masters]=$(median "${runs[@]}")
    fi
    runs=()
    for ((r = 1; r <= REPEAT; r++)); do runs+=("$(produce)"); say "$masters masters, producer: ${runs[-1]} entries/s"; done
    RESULT[produce$masters]=$(median "${runs[@]}")
    # Stop this cluster before the next one starts (its processes are tracked by lib.sh).
    for port in "${RC_PORTS[@]}"; do kill -KILL "${RC_PID[$port]}" 2>/dev/null || true; done
    RC_PORTS=() RC_PIDS=() RC_MASTERS=()
    RC_PID=()
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
{
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m), redis $("$REDIS_SERVER" --version | awk '{ sub("v=", "", $3); print $3 }'); $ENTRIES entries over $NSTREAMS streams, median of $REPEAT."
    echo
    echo "| measurement | 1 master | 3 masters | 3 / 1 |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| drain, 1 consumer (entries/s) | ${RESULT[drain1]} | ${RESULT[drain3]} | $(ratio "${RESULT[drain3]}" "${RESULT[drain1]}") |"
    echo "| drain, 2 consumers (entries/s) | - | ${RESULT[drain2_3]} | - |"
    echo "| producer load mode (entries/s) | ${RESULT[produce1]} | ${RESULT[produce3]} | $(ratio "${RESULT[produce3]}" "${RESULT[produce1]}") |"
} >&3
