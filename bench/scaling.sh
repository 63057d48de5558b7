#!/usr/bin/env bash
#
# bench/scaling.sh: how redstream's throughput grows with Redis Cluster shards and consumer
# instances, measured on this machine on loopback (the figures of docs/SCALING.md).
#
# First on one standalone redis-server (the baseline, as bench/run.sh measures), then on a
# 1-master and a 3-master Redis Cluster (throwaway, with a password, started by the tests'
# cluster_lib.sh, no replicas, no persistence), with STREAMS streams spread over the masters:
#   drain    ENTRIES entries pre-filled (redis-cli --pipe on each stream's master), then one
#            redstream-consumer (discard handler, 8 workers) started; entries/s until every
#            group has nothing pending and a lag of 0;
#   drain×2  the same with two consumer processes in the group (3 masters only);
#   produce  redstream-producer --cluster in load mode writing ENTRIES entries over the
#            streams (--partitions), pipeline 64, 4 connections: entries/s as it reports.
# Every figure is the median of REPEAT runs; the ratios are against the standalone server
# measured in the same run.
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

MODE=standalone # or cluster
LIMIT=$RS_BUILD_DIR/bench/redstream-bench-limit
[[ -x $LIMIT ]] || rs_fail "$LIMIT not built (configure with -DREDSTREAM_BENCH=ON)"

# owner STREAM: the port of the server holding STREAM.
owner() {
    if [[ $MODE == cluster ]]; then rc_owner "$1"; else echo "$RS_REDIS_PORT"; fi
}

# fill: ENTRIES entries spread evenly over the streams, each sent to its stream's master.
fill() {
    local s per=$((ENTRIES / NSTREAMS)) out
    for s in $(streams); do
        rc_cli "$(owner "$s")" DEL "$s" >/dev/null
        cl_resp_xadd "$RS_TMP/fill.resp" "$s" "$per"
        out=$(rc_cli "$(owner "$s")" --pipe <"$RS_TMP/fill.resp" 2>&1)
        [[ $out == *"errors: 0,"* ]] || rs_fail "filling $s: $out"
    done
}

# consumer_conf NAME CONSUMER: cluster mode, every stream with the discard handler.
consumer_conf() {
    local list="" s
    for s in $(streams); do list+="${list:+, }{ name = \"$s\"; handler = \"discard\"; }"; done
    local redis="port = $RS_REDIS_PORT;"
    [[ $MODE == standalone ]] || redis="cluster = true; nodes = [ \"127.0.0.1:${RC_MASTERS[0]}\" ];"
    rs_write_config "$1" <<EOF
redis = { host = "127.0.0.1"; $redis password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "$2"; start_id = "0"; };
workers = { threads = 8; queue_capacity = 4096; };
health = { address = "127.0.0.1"; port = $(rs_free_port); };
streams = ( $list );
log = { level = "warn"; };
EOF
}

# drain INSTANCES: fills, starts INSTANCES consumers, prints entries/s until every group has
# nothing pending and no lag. Timed from outside by redstream-bench-limit watch (bench/limit.c:
# XINFO GROUPS on one connection every 20 ms), one per server for the streams it holds, so
# that polling costs the machine as little as in bench/run.sh.
drain() {
    local n=$1 i start end=0 pids=() watchers=() s port t
    declare -A on=()
    fill
    for s in $(streams); do
        port=$(owner "$s")
        rc_cli "$port" XGROUP DESTROY "$s" workers >/dev/null
        on[$port]+=" --stream $s"
    done
    start=$(date +%s%N)
    for ((i = 1; i <= n; i++)); do
        rs_spawn "drain$i" "$RS_CONSUMER" -c "$(consumer_conf "drain$i" "c$i")"
        pids+=("$RS_PID")
    done
    for port in "${!on[@]}"; do
        # shellcheck disable=SC2086 # the --stream words
        REDSTREAM_REDIS_PASSWORD=$RS_REDIS_PASSWORD "$LIMIT" watch --port "$port" --group workers \
            ${on[$port]} --count 1 --interval-ms 20 --timeout-ms 600000 >"$RS_TMP/watch.$port" &
        watchers+=("$!")
    done
    for i in "${watchers[@]}"; do wait "$i" || rs_fail "the drain did not finish"; done
    for port in "${!on[@]}"; do
        t=$(grep -oE 'settled_ns=[0-9]+' "$RS_TMP/watch.$port" | cut -d= -f2)
        ((t > end)) && end=$t
    done
    for i in "${pids[@]}"; do kill -TERM "$i" && rs_wait_exit "$i" 20; done
    echo $((ENTRIES * 1000000000 / (end - start)))
}

# produce: redstream-producer --cluster load mode; prints the entries/s it reports ("-" when
# this producer has no --cluster).
produce() {
    local s
    local help
    help=$("$RS_PRODUCER" --help 2>&1) || true
    if [[ $help != *--cluster* ]]; then
        echo "-"
        return
    fi
    for s in $(streams); do rc_cli "$(owner "$s")" DEL "$s" >/dev/null; done
    local where=(--redis-addr "127.0.0.1:$RS_REDIS_PORT")
    [[ $MODE == standalone ]] || where=(--cluster --redis-addr "127.0.0.1:${RC_MASTERS[0]}")
    rs_run produce env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" "$RS_PRODUCER" "${where[@]}" \
        --stream bench --rate 0 --count "$ENTRIES" \
        --pipeline 64 --connections 4 --key-field k --keys 10000 --partitions "$NSTREAMS"
    ((RS_RC == 0)) || rs_fail "producer failed: $(tail -n 3 "$RS_ERR")"
    # The summary line ends "... errors in 1.234 s = 123456.7 msg/s".
    cat "$RS_OUT" "$RS_ERR" | grep -oE '= [0-9.]+ msg/s' | tail -n 1 | awk '{ printf "%d\n", $2 }'
}

declare -A RESULT
RC_PASSWORD=$RS_REDIS_PASSWORD
say "starting a standalone redis-server"
rs_start_redis
runs=()
for ((r = 1; r <= REPEAT; r++)); do runs+=("$(drain 1)"); say "standalone, 1 consumer: ${runs[-1]} entries/s"; done
RESULT[drain0]=$(median "${runs[@]}")
runs=()
for ((r = 1; r <= REPEAT; r++)); do runs+=("$(drain 2)"); say "standalone, 2 consumers: ${runs[-1]} entries/s"; done
RESULT[drain2_0]=$(median "${runs[@]}")
runs=()
for ((r = 1; r <= REPEAT; r++)); do runs+=("$(produce)"); say "standalone, producer: ${runs[-1]} entries/s"; done
RESULT[produce0]=$(median "${runs[@]}")
rs_stop_redis
MODE=cluster
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
    echo "| entries/s | standalone (baseline) | cluster, 1 master | cluster, 3 masters | 1 master / baseline | 3 masters / baseline |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    echo "| drain, 1 consumer | ${RESULT[drain0]} | ${RESULT[drain1]} | ${RESULT[drain3]} | $(ratio "${RESULT[drain1]}" "${RESULT[drain0]}") | $(ratio "${RESULT[drain3]}" "${RESULT[drain0]}") |"
    echo "| drain, 2 consumers | ${RESULT[drain2_0]} | - | ${RESULT[drain2_3]} | - | $(ratio "${RESULT[drain2_3]}" "${RESULT[drain2_0]}") |"
    echo "| producer load mode | ${RESULT[produce0]} | ${RESULT[produce1]} | ${RESULT[produce3]} | $(ratio "${RESULT[produce1]}" "${RESULT[produce0]}") | $(ratio "${RESULT[produce3]}" "${RESULT[produce0]}") |"
} >&3
