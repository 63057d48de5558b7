#!/usr/bin/env bash
#
# redstream-producer's load mode (--rate) against a private redis-server: exact counts over
# several pipelined connections, pacing, payload size, the --e2e send time, the summary's
# machine-readable result line, --progress, usage errors, stopping on SIGTERM, and the exit
# codes it shares with the demo mode.

# Conditions polled with rs_wait_for are small functions called indirectly (SC2317);
# rs_start_redis takes optional redis-server arguments, none needed here (SC2119).
# shellcheck disable=SC2317,SC2119
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"
rs_start_redis

# load NAME ARGS...: lib.sh's rs_produce.
load() {
    rs_produce "$@"
}

xlen() {
    rs_cli XLEN "$1"
}

# The summary's last line, as the bench script parses it.
RESULT_RE='^result: sent=([0-9]+) errors=([0-9]+) seconds=([0-9]+\.[0-9]{3}) rate=([0-9]+\.[0-9]) '
RESULT_RE+='p50_us=[0-9]+\.[0-9] p90_us=[0-9]+\.[0-9] p99_us=[0-9]+\.[0-9] '
RESULT_RE+='p999_us=[0-9]+\.[0-9] max_us=[0-9]+\.[0-9]$'

# check_result: the run's stdout ends with a well-formed result line; sets SENT, ERRORS,
# SECONDS_MS (the seconds field in milliseconds) and RATE (whole messages per second).
check_result() {
    local line
    line=$(grep '^result: ' "$RS_OUT" || true)
    rs_assert_eq 1 "$(grep -c '^result: ' "$RS_OUT" || true)" "result lines on stdout"
    rs_assert_match "$RESULT_RE" "$line" "result line"
    SENT=${BASH_REMATCH[1]}
    ERRORS=${BASH_REMATCH[2]}
    SECONDS_MS=$((10#${BASH_REMATCH[3]/./}))
    RATE=${BASH_REMATCH[4]%.*}
    rs_assert_eq "$line" "$(tail -n 1 "$RS_OUT")" "the result line is the last line"
}

# check_stream STREAM N: STREAM holds exactly N entries with the demo's fields in order, the
# messages "Message #1" .. "Message #N" each exactly once, the type "test" and an RFC 3339
# timestamp.
check_stream() {
    local stream=$1 n=$2 bad
    rs_assert_eq "$n" "$(xlen "$stream")" "XLEN $stream"
    rs_cli XRANGE "$stream" - + >"$RS_TMP/xrange.txt"
    # Plain POSIX classes: mawk, Debian's awk, knows no {n} intervals.
    bad=$(awk -v n="$n" '
        NR % 7 == 1 && $0 !~ /^[0-9]+-[0-9]+$/ { print "bad id at line " NR ": " $0; exit }
        NR % 7 == 2 && $0 != "message" { print "line " NR ": " $0 " is not message"; exit }
        NR % 7 == 3 {
            if ($0 !~ /^Message #[0-9]+$/) { print "bad message " $0; exit }
            k = substr($0, 10) + 0
            if (k < 1 || k > n || seen[k]++) { print "message number out of range or twice: " $0; exit }
        }
        NR % 7 == 4 && $0 != "type" { print "line " NR ": " $0 " is not type"; exit }
        NR % 7 == 5 && $0 != "test" { print "type " $0; exit }
        NR % 7 == 6 && $0 != "timestamp" { print "line " NR ": " $0 " is not timestamp"; exit }
        NR % 7 == 0 && $0 !~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z$/ {
            print "timestamp " $0; exit
        }
        END { if (NR != 7 * n) print "XRANGE printed " NR " lines, not " 7 * n }
    ' "$RS_TMP/xrange.txt")
    [[ -z $bad ]] || rs_fail "stream $stream: $bad"
}

# --- (a) --count over several pipelined connections ---------------------------------------------
rs_case "--count 2000 over 3 connections, pipeline 16, unpaced: exactly 2000 demo entries"
load a --stream counted --rate 0 --connections 3 --pipeline 16 --count 2000
rs_assert_exit 0
check_result
rs_assert_eq 2000 "$SENT" "sent"
rs_assert_eq 0 "$ERRORS" "errors"
check_stream counted 2000
rs_assert_file_contains "$RS_OUT" "2000 sent, 0 errors"
rs_assert_file_contains "$RS_ERR" "stopped after 2000 messages (0 errors): --count reached"
# Load mode logs no line per entry.
rs_assert_file_lacks "$RS_ERR" "published stream="
rs_assert_file_lacks "$RS_ERR" "$RS_REDIS_PASSWORD"
rs_pass

# --- (b) pacing ------------------------------------------------------------------------------------
rs_case "--rate 500 --duration 2s sends about 1000 in about 2 s"
started=$SECONDS
load b --stream paced --rate 500 --duration 2s --connections 2 --pipeline 4
took=$((SECONDS - started))
rs_assert_exit 0
check_result
rs_assert_ge 850 "$SENT" "sent at 500/s for 2 s"
rs_assert_le 1150 "$SENT" "sent at 500/s for 2 s"
rs_assert_eq 0 "$ERRORS" "errors"
rs_assert_ge 1900 "$SECONDS_MS" "seconds (ms)"
rs_assert_le 2600 "$SECONDS_MS" "seconds (ms)"
rs_assert_le 5 "$took" "wall-clock seconds"
rs_assert_ge 425 "$RATE" "rate"
rs_assert_le 575 "$RATE" "rate"
rs_assert_eq "$SENT" "$(xlen paced)" "XLEN paced"
rs_assert_file_contains "$RS_ERR" "--duration elapsed"
rs_pass

# --- (c) --payload-size ----------------------------------------------------------------------------
# Longer than "Message #1": padded with a space and x's; shorter: cut.
rs_case "--payload-size makes the message field exactly that long"
want_message="Message #1"
for size in 1000 5 1; do
    stream=payload-$size
    load "c-$size" --stream "$stream" --rate 0 --payload-size "$size" --count 3 --pipeline 2
    rs_assert_exit 0
    check_result
    rs_assert_eq 3 "$(xlen "$stream")" "XLEN $stream"
    message=$(rs_cli XRANGE "$stream" - + COUNT 1 | sed -n 3p)
    rs_assert_eq "$size" "${#message}" "length of the message field with --payload-size $size"
    if ((size >= 11)); then
        rs_assert_match '^Message #1 x+$' "$message" "padded message"
    else
        rs_assert_eq "${want_message:0:size}" "$message" "cut message"
    fi
done
rs_pass

# --- (d) --e2e ---------------------------------------------------------------------------------------
rs_case "--e2e adds redstream.sent_ns, the send time in ns, in load and demo mode"
before=$(date +%s%N)
load d --stream e2e --rate 0 --e2e --count 5 --connections 2
rs_assert_exit 0
load d2 --stream e2e-demo --e2e --count 2 --interval 0
rs_assert_exit 0
after=$(date +%s%N)
for stream in e2e e2e-demo; do
    mapfile -t lines < <(rs_cli XRANGE "$stream" - + COUNT 1)
    rs_assert_eq "message type timestamp redstream.sent_ns" \
        "${lines[1]} ${lines[3]} ${lines[5]} ${lines[7]}" "fields of $stream"
    sent=${lines[8]}
    rs_assert_match '^[0-9]{19}$' "$sent" "redstream.sent_ns of $stream"
    rs_assert_ge "$before" "$sent" "redstream.sent_ns of $stream (after the start)"
    rs_assert_le "$after" "$sent" "redstream.sent_ns of $stream (before the end)"
done
rs_pass

# --- (e) --progress ----------------------------------------------------------------------------------
rs_case "--progress prints a line each second"
load e --stream progress --rate 200 --duration 2500ms --progress
rs_assert_exit 0
check_result
progress=$(grep -c '^progress: ' "$RS_ERR" || true)
rs_assert_ge 2 "$progress" "progress lines"
rs_assert_le 3 "$progress" "progress lines"
first=$(grep -m 1 '^progress: ' "$RS_ERR")
rs_assert_match '^progress: sent=[0-9]+ errors=0 rate=[0-9]+\.[0-9] p50_us=[0-9]+\.[0-9] p99_us=[0-9]+\.[0-9]$' \
    "$first" "progress line"
rate=$(sed -E 's/.* rate=([0-9]+)\..*/\1/' <<<"$first")
rs_assert_ge 150 "$rate" "progress rate"
rs_assert_le 250 "$rate" "progress rate"
rs_pass

# --- (f) --maxlen ------------------------------------------------------------------------------------
rs_case "--maxlen trims in load mode too"
load f --stream trimmed --rate 0 --pipeline 32 --count 3000 --maxlen 100
rs_assert_exit 0
len=$(xlen trimmed)
rs_assert_ge 100 "$len" "XLEN trimmed"
rs_assert_le 300 "$len" "XLEN trimmed"
rs_pass

# --- (g) usage errors ----------------------------------------------------------------------------------
# Each: the arguments, then the text stderr must contain.
bad_flags=(
    "--pipeline 4|--pipeline: needs --rate"        # load flags need --rate
    "--connections 2|--connections: needs --rate"
    "--payload-size 10|--payload-size: needs --rate"
    "--duration 1s|--duration: needs --rate"
    "--progress|--progress: needs --rate"
    "--rate 0 --pipeline 0|--pipeline"             # at least one in flight
    "--rate 0 --pipeline 65537|--pipeline"         # at most 65536
    "--rate 0 --connections 0|--connections"       # at least one connection
    "--rate 0 --connections 1025|--connections"    # at most 1024
    "--rate 0 --payload-size 0|--payload-size"     # at least one byte
    "--rate 0 --payload-size 536870913|--payload-size" # above 512 MiB
    "--rate -1|--rate"                             # no negative rate
    "--rate fast|--rate"                           # not a number
    "--rate 1e99|--rate"                           # absurd
    "--rate 0 --duration 0|--duration"             # nothing would be sent
    "--rate 0 --duration 5|--duration"             # a duration needs a unit
    "--rate 0 --duration -1s|--duration"           # no negative durations
    "--rate 0 --count 0|--count"                   # at least one message
    "--rate 0 --count many|--count"                # not a number
    "--rate 10 --interval 1s|--interval"           # load mode paces by --rate
    "--rate 0 --replay-dlq events|--replay-dlq"    # one thing at a time
)
for spec in "${bad_flags[@]}"; do
    args=${spec%%|*}
    want=${spec#*|}
    rs_case "bad usage '$args' exits 64 naming $want"
    # shellcheck disable=SC2086 # word splitting of the argument list is intended
    rs_run g "$RS_PRODUCER" --redis-addr "127.0.0.1:$RS_REDIS_PORT" $args
    rs_assert_exit 64
    rs_assert_file_contains "$RS_ERR" "$want"
    rs_pass
done
rs_case "the --rate hint says 0 means as fast as possible"
rs_run g "$RS_PRODUCER" --pipeline 8
rs_assert_exit 64
rs_assert_file_contains "$RS_ERR" "--rate 0 = as fast as possible"
rs_pass

# --- (h) SIGTERM mid-run ---------------------------------------------------------------------------
rs_case "SIGTERM stops an endless load run: exit 0 with the summary"
rs_spawn h env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" "$RS_PRODUCER" \
    --redis-addr "127.0.0.1:$RS_REDIS_PORT" --stream endless --rate 2000 --connections 2 \
    --pipeline 8
pid=$RS_PID
has_entries() { (($(xlen endless) >= 200)); }
rs_wait_for has_entries || rs_fail "fewer than 200 entries in endless after 10 s"
kill -TERM "$pid"
rs_wait_exit "$pid" 5
rs_assert_exit 0
check_result
rs_assert_ge 200 "$SENT" "sent"
rs_assert_eq 0 "$ERRORS" "errors"
rs_assert_eq "$SENT" "$(xlen endless)" "XLEN endless (every sent entry is there)"
rs_assert_file_contains "$RS_ERR" "SIGTERM"
rs_pass

# --- (i) the demo mode's exit codes ------------------------------------------------------------------
rs_case "a key that is not a stream: exit 1 with Redis's words"
rs_cli SET notastream x >/dev/null
load i --stream notastream --rate 0 --pipeline 8 --connections 2 --count 100
rs_assert_exit 1
rs_assert_file_contains "$RS_ERR" "WRONGTYPE"
check_result
rs_assert_eq 0 "$SENT" "sent"
rs_pass

rs_case "a wrong password exits 77, an unreachable server 69"
rs_run i2 "$RS_PRODUCER" --redis-addr "127.0.0.1:$RS_REDIS_PORT" --redis-pass wrong-one \
    --rate 0 --count 10 --connections 3
rs_assert_exit 77
rs_assert_file_contains "$RS_ERR" "WRONGPASS"
port=$(rs_free_port)
rs_run i3 env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" "$RS_PRODUCER" \
    --redis-addr "127.0.0.1:$port" --rate 0 --count 10
rs_assert_exit 69
rs_assert_file_contains "$RS_ERR" "127.0.0.1:$port"
rs_pass
