#!/usr/bin/env bash
#
# redstream-producer against a Redis Cluster (--cluster, cluster_lib.sh): a 3-master cluster
# with a password; --count in interval mode writes every entry on the master serving the
# stream, with --partitions on several masters; a slot that moves while the producer writes
# (interval and load mode) loses and duplicates nothing; load mode writes exact totals over
# partition streams on different masters; --replay-dlq moves {stream}:dlq back; and the
# refusals: a seed that is no cluster node (69), a wrong password (77), redis.db with
# --cluster and a seed without a port (64).

# Conditions polled with rs_wait_for are small functions called indirectly (SC2317);
# rs_start_redis takes optional redis-server arguments, none needed here (SC2119).
# shellcheck disable=SC2317,SC2119
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=cluster_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"

# The summary's last line, as the bench script parses it (test_producer_load.sh).
RESULT_RE='^result: sent=([0-9]+) errors=([0-9]+) seconds=[0-9]+\.[0-9]{3} rate=[0-9]+\.[0-9] '
RESULT_RE+='p50_us=[0-9]+\.[0-9] p90_us=[0-9]+\.[0-9] p99_us=[0-9]+\.[0-9] '
RESULT_RE+='p999_us=[0-9]+\.[0-9] max_us=[0-9]+\.[0-9]$'

# check_result: the run's stdout ends with the result line; sets SENT and ERRORS.
check_result() {
    local line
    line=$(tail -n 1 "$RS_OUT")
    rs_assert_match "$RESULT_RE" "$line" "result line"
    SENT=${BASH_REMATCH[1]}
    ERRORS=${BASH_REMATCH[2]}
}

# cproduce NAME ARGS...: rs_run of the producer in cluster mode, seeded with SEED (a master
# that owns none of the streams written below, so every write is routed), the password from
# the environment.
cproduce() {
    local name=$1
    shift
    rs_run "$name" env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" \
        "$RS_PRODUCER" --cluster --redis-addr "127.0.0.1:$SEED" "$@"
}

# owner_xlen KEY: XLEN of KEY on the master that owns it.
owner_xlen() {
    rc_cli "$(rc_owner "$1")" XLEN "$1"
}

# xlen_sum STREAM N: the XLENs of STREAM:0 .. STREAM:N-1 added up, each asked of its owner.
xlen_sum() {
    local p sum=0
    for ((p = 0; p < $2; p++)); do
        sum=$((sum + $(owner_xlen "$1:$p")))
    done
    echo "$sum"
}

# owners STREAM N: the distinct masters owning STREAM:0 .. STREAM:N-1, one per line.
owners() {
    local p
    for ((p = 0; p < $2; p++)); do
        rc_owner "$1:$p"
    done | sort -u
}

# unique_messages KEY...: "Message #<n>" texts over the streams KEY..., each asked of its
# owner: prints "<total> <distinct>".
unique_messages() {
    local key
    for key in "$@"; do
        rc_cli "$(rc_owner "$key")" XRANGE "$key" - + | grep '^Message #' || true
    done | awk '{ n++; if (!seen[$0]++) d++ } END { print n + 0, d + 0 }'
}

started=$SECONDS
rc_start_cluster 3 0
echo "  cluster of 3 masters up in $((SECONDS - started)) s: ${RC_MASTERS[*]}"
SEED=${RC_MASTERS[0]}

# --- --count in interval mode ----------------------------------------------------------------
rs_case "--cluster --count 200: every entry on the master serving the stream"
stream=$(rc_key_on_master 2 orders)
cproduce count --stream "$stream" --count 200 --interval 0
rs_assert_exit 0
rs_assert_eq 200 "$(rc_cli "${RC_MASTERS[2]}" XLEN "$stream")" "XLEN $stream on its owner"
rs_assert_eq 0 "$(rc_cli "$SEED" DBSIZE)" "keys on the seed"
rs_assert_file_contains "$RS_ERR" "redis=cluster (seed 127.0.0.1:$SEED, 3 masters)"
rs_assert_file_contains "$RS_ERR" "connected to redis 127.0.0.1:${RC_MASTERS[2]}"
rs_assert_file_contains "$RS_ERR" "stopped after 200 messages: --count reached"
rs_assert_file_lacks "$RS_ERR" "$RS_REDIS_PASSWORD"
rs_pass

rs_case "--cluster --partitions 6 in interval mode: each partition on its own master"
cproduce parts --stream ipart --count 120 --interval 0 --key-field user --keys 12 \
    --partitions 6
rs_assert_exit 0
rs_assert_eq 120 "$(xlen_sum ipart 6)" "XLEN over ipart:0 .. ipart:5"
rs_assert_ge 2 "$(owners ipart 6 | wc -l)" "masters owning the partitions"
rs_pass

# --- a slot that moves under interval mode ---------------------------------------------------
rs_case "interval mode: the stream's slot moves mid-run; MOVED is followed, nothing lost"
stream=$(rc_key_on_master 1 moving)
from=${RC_MASTERS[1]}
to=${RC_MASTERS[2]}
rs_spawn imove env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" "$RS_PRODUCER" --cluster \
    --redis-addr "127.0.0.1:$SEED" --stream "$stream" --count 300 --interval 10ms
pid=$RS_PID
some_written() { (($(rc_cli "$from" XLEN "$stream") >= 50)); }
RS_WAIT_TIMEOUT=20 rs_wait_for some_written || rs_fail "the producer wrote nothing on $from"
rc_migrate_slot "$(rc_slot "$stream")" "$to"
rs_wait_exit "$pid" 60
rs_assert_exit 0
rs_assert_eq "$to" "$(rc_owner "$stream")" "owner after the move"
rs_assert_eq 300 "$(rc_cli "$to" XLEN "$stream")" "XLEN $stream on the new owner"
rs_assert_eq "300 300" "$(unique_messages "$stream")" "messages, distinct messages"
rs_assert_file_contains "$RS_ERR" "moved to 127.0.0.1:$to"
rs_pass

# --- load mode -------------------------------------------------------------------------------
rs_case "load mode --partitions 6: exact totals over partition streams on several masters"
cproduce load --rate 0 --stream lpart --count 20000 --connections 2 --pipeline 32 \
    --key-field user --keys 1000 --partitions 6
rs_assert_exit 0
check_result
rs_assert_eq 20000 "$SENT" "sent"
rs_assert_eq 0 "$ERRORS" "errors"
rs_assert_eq 20000 "$(xlen_sum lpart 6)" "XLEN over lpart:0 .. lpart:5"
rs_assert_ge 2 "$(owners lpart 6 | wc -l)" "masters owning the partitions"
rs_assert_file_contains "$RS_ERR" "redis=cluster (seed 127.0.0.1:$SEED, 3 masters)"
rs_assert_file_contains "$RS_ERR" "connected 2 connections x 6 streams to redis cluster"
rs_pass

rs_case "load mode: a partition's slot moves mid-run; totals exact, nothing lost or twice"
n=30000
rs_spawn lmove env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" "$RS_PRODUCER" --cluster \
    --redis-addr "127.0.0.1:$SEED" --rate 6000 --stream mpart --count "$n" --connections 2 \
    --pipeline 16 --key-field user --keys 600 --partitions 6
pid=$RS_PID
# The partition to move, and a master that does not own it.
moved=mpart:3
from=$(rc_owner "$moved")
to=${RC_MASTERS[0]}
[[ $to != "$from" ]] || to=${RC_MASTERS[1]}
partition_written() { (($(rc_cli "$from" XLEN "$moved") >= 300)); }
RS_WAIT_TIMEOUT=20 rs_wait_for partition_written || rs_fail "nothing written to $moved"
rc_migrate_slot "$(rc_slot "$moved")" "$to"
rs_wait_exit "$pid" 60
rs_assert_exit 0
check_result
rs_assert_eq "$to" "$(rc_owner "$moved")" "owner of $moved after the move"
rs_assert_eq "$n" "$SENT" "sent"
rs_assert_eq 0 "$ERRORS" "errors"
rs_assert_eq "$SENT" "$(xlen_sum mpart 6)" "XLEN over mpart:0 .. mpart:5"
rs_assert_eq "$n $n" "$(unique_messages mpart:{0..5})" "messages, distinct messages"
rs_assert_file_contains "$RS_ERR" "stream $moved: now on redis 127.0.0.1:$to"
rs_pass

# --- --replay-dlq ----------------------------------------------------------------------------
rs_case "--replay-dlq in cluster mode moves {stream}:dlq back, named either way"
stream=$(rc_key_on_master 1 replayed)
owner=${RC_MASTERS[1]}
dlq="{$stream}:dlq"
rs_assert_eq "$owner" "$(rc_owner "$dlq")" "the dead-letter stream's owner"
for i in 1 2 3; do
    rc_cli "$owner" XADD "$dlq" '*' message "dead $i" type test \
        redstream.original_stream "$stream" redstream.original_id "1-$i" \
        redstream.delivery_count 5 redstream.last_error boom \
        redstream.dead_lettered_at 1700000000000 >/dev/null
done
cproduce dry --replay-dlq "$dlq" --dry-run
rs_assert_exit 0
rs_assert_eq 3 "$(grep -c "^would move $dlq " "$RS_OUT" || true)" "listed"
cproduce replay1 --replay-dlq "$stream" --count 2
rs_assert_exit 0
rs_assert_eq 2 "$(grep -c "^moved $dlq .* -> $stream " "$RS_OUT" || true)" "moved lines"
cproduce replay2 --replay-dlq "$stream:dlq"
rs_assert_exit 0
rs_assert_eq 0 "$(rc_cli "$owner" XLEN "$dlq")" "XLEN $dlq after the replays"
rs_assert_eq 3 "$(rc_cli "$owner" XLEN "$stream")" "XLEN $stream after the replays"
rs_assert_eq "message dead 1 type test" \
    "$(rc_cli "$owner" XRANGE "$stream" - + COUNT 1 | sed -n '2,5p' | tr '\n' ' ' | sed 's/ $//')" \
    "the first entry's fields"
rs_assert_file_contains "$RS_ERR" "connected to redis 127.0.0.1:$owner, the master of $dlq"
rs_pass

# --- refusals --------------------------------------------------------------------------------
rs_case "a seed that is no cluster node: exit 69 and a clear message, in both modes"
rs_start_redis
for mode in interval load; do
    extra=(--count 5 --interval 0)
    [[ $mode == interval ]] || extra=(--rate 0 --count 5)
    rs_run "plain-$mode" env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" "$RS_PRODUCER" \
        --cluster --redis-addr "127.0.0.1:$RS_REDIS_PORT" "${extra[@]}"
    rs_assert_exit 69
    rs_assert_file_contains "$RS_ERR" "cannot use the redis cluster (seed 127.0.0.1:$RS_REDIS_PORT)"
    rs_assert_file_contains "$RS_ERR" "is this node part of a Redis Cluster?"
done
rs_assert_eq 0 "$(rs_cli DBSIZE)" "keys written on the plain server"
rs_pass

rs_case "a wrong password: exit 77 as in standalone mode, and never printed"
for mode in interval load; do
    extra=(--count 5 --interval 0)
    [[ $mode == interval ]] || extra=(--rate 0 --count 5)
    rs_run "auth-$mode" env REDSTREAM_REDIS_PASSWORD=wrong-password "$RS_PRODUCER" --cluster \
        --redis-addr "127.0.0.1:$SEED" "${extra[@]}"
    rs_assert_exit 77
    rs_assert_file_contains "$RS_ERR" "WRONGPASS"
    rs_assert_file_lacks "$RS_ERR" "wrong-password"
done
rs_pass

rs_case "usage: redis.db with --cluster, a seed without a port (64)"
conf=$(rs_write_config db2 <<EOF
redis = { db = 2; };
EOF
)
rs_run db env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" "$RS_PRODUCER" -c "$conf" \
    --cluster --redis-addr "127.0.0.1:$SEED" --count 1
rs_assert_exit 64
rs_assert_file_contains "$RS_ERR" "--cluster: redis.db is 2 in the configuration, but a Redis Cluster has only database 0"
rs_run noport "$RS_PRODUCER" --cluster --redis-addr 127.0.0.1 --count 1
rs_assert_exit 64
rs_assert_file_contains "$RS_ERR" "--redis-addr: '127.0.0.1' has no port"
help=$("$RS_PRODUCER" --help)
[[ $help == *"--cluster "* ]] || rs_fail "--help does not mention --cluster"
rs_pass
