#!/usr/bin/env bash
#
# redstream-producer against a private redis-server: the entries it writes, its flags and
# configuration, its exit codes, its refusal to print the password, stopping on a signal, and
# riding out a Redis restart.

# Conditions polled with rs_wait_for are small functions called indirectly (SC2317);
# rs_start_redis takes optional redis-server arguments, none needed here (SC2119).
# shellcheck disable=SC2317,SC2119
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"
rs_start_redis

# produce NAME ARGS...: lib.sh's rs_produce.
produce() {
    rs_produce "$@"
}

xlen() {
    rs_cli XLEN "$1"
}

# check_entries STREAM COUNT TYPE [FIRST]: the stream holds exactly COUNT entries, each with
# exactly the fields message, type, timestamp (in that order), the messages numbered from
# FIRST (default 1) upwards, the given type, and an RFC 3339 UTC timestamp.
check_entries() {
    local stream=$1 n=$2 type=$3 first=${4:-1}
    local lines i base
    rs_assert_eq "$n" "$(xlen "$stream")" "XLEN $stream"
    # redis-cli prints one value per line when its output is not a terminal: id, then the
    # field/value pairs.
    mapfile -t lines < <(rs_cli XRANGE "$stream" - +)
    rs_assert_eq $((n * 7)) "${#lines[@]}" "lines printed by XRANGE $stream"
    for ((i = 0; i < n; i++)); do
        base=$((i * 7))
        rs_assert_match '^[0-9]+-[0-9]+$' "${lines[base]}" "id of entry $i"
        rs_assert_eq "message type timestamp" \
            "${lines[base + 1]} ${lines[base + 3]} ${lines[base + 5]}" \
            "fields of entry ${lines[base]}"
        rs_assert_eq "Message #$((first + i))" "${lines[base + 2]}" "message of entry $i"
        rs_assert_eq "$type" "${lines[base + 4]}" "type of entry $i"
        rs_assert_match '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' \
            "${lines[base + 6]}" "timestamp of entry $i"
    done
}

# --- (a) the demo's entries --------------------------------------------------------------------
rs_case "publishes --count entries in the demo's format"
rs_run a "$RS_PRODUCER" --redis-addr "127.0.0.1:$RS_REDIS_PORT" \
    --redis-pass "$RS_REDIS_PASSWORD" --count 5 --interval 10ms
rs_assert_exit 0
check_entries events 5 test
rs_assert_file_contains "$RS_ERR" 'published stream=events id='
rs_assert_file_contains "$RS_ERR" 'message="Message #5"'
rs_assert_file_contains "$RS_ERR" "stopped after 5 messages"
rs_assert_file_lacks "$RS_ERR" "$RS_REDIS_PASSWORD"
rs_pass

# --- (b) --stream and --type ---------------------------------------------------------------------
rs_case "--stream and --type override the defaults"
produce b --stream logs --type alert --count 2 --interval 0
rs_assert_exit 0
check_entries logs 2 alert
rs_assert_eq 5 "$(xlen events)" "XLEN events (untouched)"
rs_pass

# --- (c) --maxlen ------------------------------------------------------------------------------
rs_case "--maxlen trims the stream approximately"
# Approximate trimming only drops whole radix-tree nodes; with 10 entries per node the stream
# must end with between 10 (MAXLEN ~ never goes below N) and 10 + one node entries.
rs_cli CONFIG SET stream-node-max-entries 10 >/dev/null
produce c --stream trimmed --maxlen 10 --count 100 --interval 0
rs_cli CONFIG SET stream-node-max-entries 100 >/dev/null
rs_assert_exit 0
len=$(xlen trimmed)
rs_assert_ge 10 "$len" "XLEN trimmed"
rs_assert_le 20 "$len" "XLEN trimmed"
rs_assert_file_contains "$RS_ERR" 'message="Message #100"'
rs_pass

# --- (d) wrong password --------------------------------------------------------------------------
rs_case "a wrong password exits 77 and is never printed"
wrong='Wr0ng-Secret-4711'
rs_run d "$RS_PRODUCER" --redis-addr "127.0.0.1:$RS_REDIS_PORT" --redis-pass "$wrong" --count 1
rs_assert_exit 77
rs_assert_file_contains "$RS_ERR" "WRONGPASS"
rs_assert_file_contains "$RS_ERR" "127.0.0.1:$RS_REDIS_PORT"
rs_assert_file_lacks "$RS_ERR" "$wrong"
rs_assert_file_lacks "$RS_ERR" "$RS_REDIS_PASSWORD"
rs_assert_file_lacks "$RS_OUT" "$wrong"
rs_pass

# --- (e) nothing listening -----------------------------------------------------------------------
rs_case "an unreachable server exits 69 and names the address"
port=$(rs_free_port)
rs_run e env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" \
    "$RS_PRODUCER" --redis-addr "127.0.0.1:$port" --count 1
rs_assert_exit 69
rs_assert_file_contains "$RS_ERR" "127.0.0.1:$port"
rs_assert_file_contains "$RS_ERR" "Connection refused"
rs_pass

# --- (f) SIGTERM and SIGINT ----------------------------------------------------------------------
for sig in TERM INT; do
    rs_case "SIG$sig stops an endless run with status 0"
    stream=endless-$sig
    rs_spawn "f-$sig" "$RS_PRODUCER" --redis-addr "127.0.0.1:$RS_REDIS_PORT" \
        --redis-pass "$RS_REDIS_PASSWORD" --stream "$stream" --interval 50ms
    pid=$RS_PID
    has_entries() { (($(xlen "$stream") >= 1)); }
    rs_wait_for has_entries || rs_fail "no entry in $stream after 10 s"
    # The flag's copy of the password is blanked in argv, so ps does not show it.
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
    [[ $cmdline != *"$RS_REDIS_PASSWORD"* ]] || rs_fail "password visible in ps: $cmdline"
    kill -"$sig" "$pid"
    rs_wait_exit "$pid" 5
    rs_assert_exit 0
    rs_assert_file_contains "$RS_ERR" "stopped after"
    rs_assert_file_contains "$RS_ERR" "SIG$sig"
    rs_assert_ge 1 "$(xlen "$stream")" "XLEN $stream"
    rs_pass
done

# --- (g) REDSTREAM_REDIS_PASSWORD ----------------------------------------------------------------
rs_case "REDSTREAM_REDIS_PASSWORD overrides the configuration's password"
conf=$(rs_write_config g <<EOF
redis = {
  host = "127.0.0.1";
  port = $RS_REDIS_PORT;
  password = "not-the-password";
};
EOF
)
# Control: the file's password alone is refused, so a success below is the variable's doing.
rs_run g-control "$RS_PRODUCER" -c "$conf" --stream envpw --count 1 --interval 0
rs_assert_exit 77
rs_run g env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" \
    "$RS_PRODUCER" -c "$conf" --stream envpw --count 1 --interval 0
rs_assert_exit 0
check_entries envpw 1 test
rs_assert_file_lacks "$RS_ERR" "not-the-password"
rs_assert_file_lacks "$RS_ERR" "$RS_REDIS_PASSWORD"
rs_pass

# --- (h) bad flags -------------------------------------------------------------------------------
# Each: the arguments, then the text stderr must contain (the flag's name).
bad_flags=(
    "--interval 5|--interval"           # a duration needs a unit
    "--interval -1s|--interval"         # no negative durations
    "--count 0|--count"                 # at least one message
    "--count ten|--count"               # not a number
    "--maxlen 0|--maxlen"               # at least one entry
    "--redis-addr host:99999|--redis-addr" # port out of range
    "--stream=|--stream"                # empty stream name
    "--no-such-flag|--no-such-flag"     # unknown flag
    "surplus|surplus"                   # positional argument
)
for spec in "${bad_flags[@]}"; do
    args=${spec%%|*}
    want=${spec#*|}
    rs_case "bad usage '$args' exits 64 naming $want"
    # shellcheck disable=SC2086 # word splitting of the argument list is intended
    rs_run h "$RS_PRODUCER" $args
    rs_assert_exit 64
    rs_assert_file_contains "$RS_ERR" "$want"
    rs_pass
done

# --- (i) a configuration file, and flags over it ------------------------------------------------
rs_case "-c loads the file; flags override it"
conf=$(rs_write_config i <<EOF
# Written by test_producer.sh.
redis = {
  host = "127.0.0.1";
  port = $RS_REDIS_PORT;
  password = "$RS_REDIS_PASSWORD";
};
producer = {
  stream = "cfgstream";
  type = "cfgtype";
  interval_ms = 0;
};
EOF
)
rs_run i "$RS_PRODUCER" -c "$conf" --count 3
rs_assert_exit 0
check_entries cfgstream 3 cfgtype
rs_run i2 "$RS_PRODUCER" -c "$conf" --stream cfgover --type flagtype --interval 1ms --count 2
rs_assert_exit 0
check_entries cfgover 2 flagtype
rs_assert_eq 3 "$(xlen cfgstream)" "XLEN cfgstream (untouched)"
# --redis-addr beats the file's address: point the file at a dead port.
dead=$(rs_free_port)
sed "s/port = $RS_REDIS_PORT;/port = $dead;/" "$conf" >"$RS_TMP/i-dead.conf"
rs_run i3 "$RS_PRODUCER" -c "$RS_TMP/i-dead.conf" --count 1
rs_assert_exit 69
rs_assert_file_contains "$RS_ERR" "127.0.0.1:$dead"
rs_run i4 "$RS_PRODUCER" -c "$RS_TMP/i-dead.conf" --redis-addr "127.0.0.1:$RS_REDIS_PORT" --count 1
rs_assert_exit 0
rs_assert_eq 4 "$(xlen cfgstream)" "XLEN cfgstream"
rs_pass

# --- (k) an error reply retrying cannot fix -------------------------------------------------------
rs_case "WRONGTYPE is fatal: exit 1 with Redis's words, no retry"
rs_cli SET notastream x >/dev/null
produce k --stream notastream --count 3 --interval 0
rs_assert_exit 1
rs_assert_file_contains "$RS_ERR" "WRONGTYPE"
rs_assert_file_contains "$RS_ERR" "stopped after 0 messages"
rs_pass

# --- (l) a busy server is waited out -----------------------------------------------------------------
rs_case "a BUSY reply is retried until the server is free"
rs_spawn l "$RS_PRODUCER" --redis-addr "127.0.0.1:$RS_REDIS_PORT" \
    --redis-pass "$RS_REDIS_PASSWORD" --stream busy --interval 20ms
pid=$RS_PID
producer_err=$RS_ERR
has_entries() { (($(xlen busy) >= 1)); }
rs_wait_for has_entries || rs_fail "no entry in busy"
# A script that never ends makes Redis answer BUSY to everyone once it has run 50 ms.
rs_cli CONFIG SET lua-time-limit 50 >/dev/null
rs_spawn l-script "$REDIS_CLI" -h 127.0.0.1 -p "$RS_REDIS_PORT" -a "$RS_REDIS_PASSWORD" \
    --no-auth-warning EVAL "while true do end" 0
script=$RS_PID
rs_wait_for grep -q "BUSY" "$producer_err" || rs_fail "the producer never saw BUSY"
rs_cli SCRIPT KILL >/dev/null
rs_wait_exit "$script" 10
before=$(xlen busy)
more_entries() { (($(xlen busy) > before)); }
rs_wait_for more_entries || rs_fail "no entry after the script was killed"
kill -TERM "$pid"
rs_wait_exit "$pid" 5
RS_ERR=$producer_err
rs_assert_exit 0
rs_assert_file_contains "$RS_ERR" "retrying in"
rs_pass

# --- (j) Redis restarts mid-run ------------------------------------------------------------------
rs_case "survives a Redis restart and finishes --count"
rs_spawn j "$RS_PRODUCER" --redis-addr "127.0.0.1:$RS_REDIS_PORT" \
    --redis-pass "$RS_REDIS_PASSWORD" --stream restart --count 40 --interval 50ms
pid=$RS_PID
has_three() { (($(xlen restart) >= 3)); }
rs_wait_for has_three || rs_fail "fewer than 3 entries before the restart"
rs_stop_redis
# Restart only once the producer has seen the outage, so the reconnect path really runs.
rs_wait_for grep -q "Connection refused" "$RS_ERR" || rs_fail "producer never noticed the outage"
rs_restart_redis
rs_wait_exit "$pid" 30
rs_assert_exit 0
# The data died with the old server: what is there now was written after the restart.
rs_assert_ge 1 "$(xlen restart)" "XLEN restart after the restart"
last=$(rs_cli XREVRANGE restart + - COUNT 1 | sed -n 3p)
rs_assert_eq "Message #40" "$last" "last message written"
rs_assert_file_contains "$RS_ERR" "connected to redis 127.0.0.1:$RS_REDIS_PORT after"
rs_assert_file_contains "$RS_ERR" "stopped after 40 messages"
rs_assert_file_contains "$RS_ERR" "reconnects=1"
rs_assert_file_lacks "$RS_ERR" "$RS_REDIS_PASSWORD"
rs_pass

# --- (m) stopping during an outage -----------------------------------------------------------------
rs_case "SIGTERM while reconnecting stops at once with status 0"
rs_spawn m "$RS_PRODUCER" --redis-addr "127.0.0.1:$RS_REDIS_PORT" \
    --redis-pass "$RS_REDIS_PASSWORD" --stream outage --interval 20ms
pid=$RS_PID
has_entries() { (($(xlen outage) >= 1)); }
rs_wait_for has_entries || rs_fail "no entry in outage"
rs_stop_redis
rs_wait_for grep -q "still unreachable" "$RS_ERR" || rs_fail "producer never retried"
kill -TERM "$pid"
rs_wait_exit "$pid" 3
rs_assert_exit 0
rs_assert_file_contains "$RS_ERR" "stopped after"
rs_pass
