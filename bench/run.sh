#!/usr/bin/env bash
#
# bench/run.sh: redstream's benchmark, one command. It starts its own redis-server (127.0.0.1,
# a free private port, password redis123, no persistence, files in a temp directory; never
# the system's Redis), measures, and writes the figures as Markdown tables with the machine,
# the date and the versions:
#
#   a. drain: 1,000,000 entries pre-filled in one stream, redstream-consumer with the discard
#      handler and default settings; messages/s until the group's lag and pending are 0;
#   b. the same drain by bench/limit (plain hiredis: XREADGROUP COUNT 1000 + one pipelined
#      XACK per batch), and the ratio a / b;
#   c. three streams and 64 streams (1,000,000 entries in total) with one consumer;
#   d. end-to-end latency at 1,000 and 10,000 messages/s: redstream-producer --e2e into the
#      consumer, against the bare XADD -> XREADGROUP BLOCK pair (bench/limit e2e);
#   e. redstream-producer's load mode at pipeline 1 and 64, 1 and 4 connections, against
#      redis-benchmark XADD with the same fields, depth and connections;
#   f. the consumer's peak RSS in (a), and with a 1,000,000- vs a 10,000-entry backlog behind
#      a slow handler (it must not grow with the backlog);
#   g. ordering: 20,000 entries over 1,000 keys, 8 workers, the http handler posting to a
#      webhook that answers after 1 ms (tests/webhook-receiver/receiver.js, Node.js): messages/s
#      with ordering "stream" (the baseline), "key" and "none", and the ratio key / stream.
#
# Usage: bash bench/run.sh [--quick] [--scale N] [--repeat N] [--steps LETTERS] [--out FILE]
#   --quick          counts divided by 20, 2 s latency runs, 3 s slow-handler runs, one run
#                    each (a smoke test)
#   --scale N        divide the counts by N (overrides --quick's 20)
#   --repeat N       run the drains (a, b) and the producer comparison (e) N times and report
#                    the medians (default 3; 1 with --quick)
#   --steps LETTERS  run only these steps, e.g. "af" (default abcdefg; b, c and f use a's figures)
#   --out FILE       where to write the results (default bench/RESULTS.md)
#
# Environment:
#   RS_BUILD_DIR  an existing build directory holding redstream-consumer, redstream-producer
#                 and bench/redstream-bench-limit: used as it is, nothing is built. Without it
#                 the script configures and builds build-bench/ (Release) in the source tree.
#   REDIS_SERVER, REDIS_CLI, REDIS_BENCHMARK  the Redis binaries (default: from PATH).
#
# Progress goes to stderr. Every wait has a deadline; a step that fails (or whose program
# lacks a feature, e.g. an older producer without load mode) is reported in its section as
# "not available" or "failed" and the other steps still run. Speed targets are reported,
# never enforced: the exit status is 0 whenever the results file was written.
#
# DESIGN: each step runs in a subshell with `set -e`, writes its own section to a file in the
# temp directory and tracks the processes it starts in a pid file; the subshell's EXIT trap
# kills those, so a failed step leaves nothing running, and the main EXIT trap kills whatever
# is left (Redis included) and removes the temp directory. Timing of the consumer is done from
# outside by `redstream-bench-limit watch`, which polls XINFO GROUPS on one connection every
# 20 ms (a redis-cli process per poll would steal CPU from what is measured).

set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$SRC/bench/RESULTS.md
QUICK=0
DIV=""
REPEAT=""
STEPS=abcdefg

usage() {
    sed -n '/^# Usage:/,/^#   --out/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --scale)
        [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || {
            echo "run.sh: --scale needs a positive integer" >&2
            exit 64
        }
        DIV=$2
        shift
        ;;
    --repeat)
        [[ ${2:-} =~ ^[1-9][0-9]?$ ]] || {
            echo "run.sh: --repeat needs an integer from 1 to 99" >&2
            exit 64
        }
        REPEAT=$2
        shift
        ;;
    --steps)
        [[ ${2:-} =~ ^[a-g]+$ ]] || {
            echo "run.sh: --steps takes letters from a to g, e.g. af" >&2
            exit 64
        }
        STEPS=$2
        shift
        ;;
    --out)
        [[ -n ${2:-} ]] || {
            echo "run.sh: --out needs a file name" >&2
            exit 64
        }
        OUT=$2
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "run.sh: unknown argument '$1' (see --help)" >&2
        exit 64
        ;;
    esac
    shift
done
[[ $OUT == /* ]] || OUT=$PWD/$OUT

if [[ -z $DIV ]]; then
    if ((QUICK)); then DIV=20; else DIV=1; fi
fi

# --- sizes -----------------------------------------------------------------------------------

N_DRAIN=$((1000000 / DIV))    # (a), (b), (c) and the big backlog of (f)
N_PROD=$((200000 / DIV))      # (e), per run at pipeline 1
N_PROD_PIPELINED=$((1000000 / DIV)) # (e), per run at pipeline 64
N_SMALL=10000                 # the small backlog of (f)
((N_SMALL < N_DRAIN)) || N_SMALL=$((N_DRAIN / 5 + 1))
N_ORDER=$((20000 / DIV))      # (g), per run
((N_ORDER >= 100)) || N_ORDER=100
if ((QUICK)); then
    E2E_MS=2000
    SLOW_MS=3000
    REPEAT=${REPEAT:-1}
else
    E2E_MS=10000
    SLOW_MS=10000
    REPEAT=${REPEAT:-3}
fi
E2E_RATES="1000 10000"
PASSWORD=redis123

say() {
    echo "[bench $(date +%T)] $*" >&2
}

# --- the programs ----------------------------------------------------------------------------

REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=python3

if [[ -n ${RS_BUILD_DIR:-} ]]; then
    BUILD=$RS_BUILD_DIR
    say "using the programs in $BUILD (RS_BUILD_DIR)"
else
    BUILD=$SRC/build-bench
    say "building in $BUILD (Release)"
    mkdir -p "$BUILD"
    if ! { cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DREDSTREAM_TESTS=OFF \
        -DREDSTREAM_BENCH=ON && cmake --build "$BUILD" -j"$(nproc)" --target \
        redstream-consumer redstream-producer redstream-bench-limit; } >"$BUILD/bench-build.log" 2>&1; then
        tail -n 30 "$BUILD/bench-build.log" >&2
        echo "run.sh: the build failed (full log: $BUILD/bench-build.log)" >&2
        exit 1
    fi
fi
CONSUMER=$BUILD/redstream-consumer
PRODUCER=$BUILD/redstream-producer
LIMIT=$BUILD/bench/redstream-bench-limit
for bin in "$CONSUMER" "$PRODUCER" "$LIMIT"; do
    [[ -x $bin ]] || {
        echo "run.sh: $bin is missing (build it, or unset RS_BUILD_DIR)" >&2
        exit 1
    }
done
for bin in "$REDIS_SERVER" "$REDIS_CLI"; do
    command -v "$bin" >/dev/null || {
        echo "run.sh: $bin not found (apt-get install redis-server redis-tools)" >&2
        exit 1
    }
done

# A sanitizer build runs 3-10x slower: deadlines are stretched, and the figures say so.
SLOW=0
if grep -qE '^REDSTREAM_(ASAN|TSAN):BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    SLOW=1
fi
if ((SLOW)); then T_SCALE=5; else T_SCALE=1; fi
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
BUILD_CFLAGS=$(sed -n 's/^CMAKE_C_FLAGS:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)

# The programs take the password from here; no configuration file names it.
export REDSTREAM_REDIS_PASSWORD=$PASSWORD
# systemd's marker would change the consumer's log format.
unset JOURNAL_STREAM

# --- temp directory, processes, cleanup ------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/redstream-bench.XXXXXX")
PIDS_FILE=$TMP/pids # processes of the running step, one pid a line
REDIS_PID=""
: >"$PIDS_FILE"

kill_tracked() {
    local pid
    while read -r pid; do
        if [[ -n $pid ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
    done <"$PIDS_FILE"
    : >"$PIDS_FILE"
}

cleanup() {
    local rc=$?
    set +e
    kill_tracked
    if [[ -n $REDIS_PID ]]; then
        kill -KILL "$REDIS_PID" 2>/dev/null
        wait "$REDIS_PID" 2>/dev/null
    fi
    if [[ -n ${RS_BENCH_KEEP_TMP:-} ]]; then
        echo "run.sh: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# track PID: the step's EXIT trap (or the main one) kills PID if it is still running.
track() {
    echo "$1" >>"$PIDS_FILE"
}

# untrack PID: PID has been reaped; forget it, so a reused pid is never killed.
untrack() {
    local rest
    rest=$(grep -vx -- "$1" "$PIDS_FILE" || true)
    printf '%s\n' "$rest" | sed '/^$/d' >"$PIDS_FILE"
}

# exited PID: true once PID is gone or a zombie.
exited() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat:0:1} == Z ]]
}

# stop PID SECONDS: SIGTERM, then SIGKILL after SECONDS; reaps PID. Prints nothing.
stop() {
    local pid=$1 limit=$2 tries
    kill -TERM "$pid" 2>/dev/null || true
    tries=$((limit * 20))
    while ((tries-- > 0)) && ! exited "$pid"; do
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    untrack "$pid"
}

# wait_until SECONDS CMD...: runs CMD every 50 ms until it succeeds; 1 at the deadline.
wait_until() {
    local tries=$(($1 * 20))
    shift
    while ((tries-- > 0)); do
        "$@" && return 0
        sleep 0.05
    done
    "$@"
}

# fail MESSAGE: ends the current step (a subshell) with MESSAGE as the reason.
fail() {
    echo "$1" >"$TMP/fail-reason"
    echo "run.sh: $1" >&2
    exit 1
}

now_ns() {
    local t=${EPOCHREALTIME/./}
    echo $((10#$t * 1000))
}

# free_port: a loopback port nothing listens on, below the ephemeral range when possible.
free_port() {
    local port low=0 high=60000 _
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    ((low > 21000)) && high=$((low - 1))
    for _ in $(seq 1 50); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % (high - 20000 + 1)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# --- redis -----------------------------------------------------------------------------------

PORT=""

cli() {
    "$REDIS_CLI" -h 127.0.0.1 -p "$PORT" -a "$PASSWORD" --no-auth-warning "$@"
}

redis_is_ours() {
    exited "$REDIS_PID" && return 0 # stop waiting: it died (port taken)
    [[ $(cli INFO server 2>/dev/null) == *"process_id:$REDIS_PID"* ]]
}

start_redis() {
    local _
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        PORT=$(free_port) || break
        "$REDIS_SERVER" --port "$PORT" --bind 127.0.0.1 --requirepass "$PASSWORD" \
            --save '' --appendonly no --dir "$TMP" --daemonize no \
            --logfile "$TMP/redis.log" &
        REDIS_PID=$!
        if wait_until 10 redis_is_ours && ! exited "$REDIS_PID"; then
            return 0
        fi
        kill -KILL "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
    done
    echo "run.sh: could not start redis-server on a free port" >&2
    exit 1
}

flushall() {
    [[ $(cli FLUSHALL) == OK ]] || fail "FLUSHALL failed"
}

# fill NSTREAMS TOTAL: XADDs TOTAL entries with the Go demo's fields (message "Message #N",
# type test, a timestamp) round-robin into streams bench-0 .. bench-(NSTREAMS-1), as RESP
# through redis-cli --pipe.
fill() {
    local k=$1 n=$2 out
    out=$(awk -v n="$n" -v k="$k" 'BEGIN {
            ts = "2026-11-27T14:04:30Z"
            for (i = 1; i <= n; i++) {
                s = "bench-" ((i - 1) % k); m = "Message #" i
                printf "*9\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n" \
                       "$4\r\ntype\r\n$4\r\ntest\r\n$9\r\ntimestamp\r\n$20\r\n%s\r\n",
                       length(s), s, length(m), m, ts
            }
        }' | timeout $((120 * T_SCALE)) "$REDIS_CLI" -h 127.0.0.1 -p "$PORT" -a "$PASSWORD" \
        --no-auth-warning --pipe 2>&1) || fail "filling $n entries failed: $out"
    [[ $out == *"errors: 0, replies: $n"* ]] || fail "filling $n entries: redis-cli --pipe said: $out"
}

# stream_names NSTREAMS: "bench-0 bench-1 ..."
stream_names() {
    local i names=""
    for ((i = 0; i < $1; i++)); do names+="bench-$i "; done
    echo "${names% }"
}

# --- configuration files ---------------------------------------------------------------------

# consumer_conf NAME HANDLER LEVEL STREAM...: a consumer configuration with default settings
# except the Redis address, a free health port and the log level; prints its path.
consumer_conf() {
    local name=$1 handler=$2 level=$3 list="" s hport
    shift 3
    hport=$(free_port) || fail "no free port for the health server"
    for s in "$@"; do
        list+="${list:+,
  }{ name = \"$s\"; handler = \"$handler\"; }"
    done
    cat >"$TMP/$name.conf" <<EOF
# Written by bench/run.sh: defaults except these.
redis = { host = "127.0.0.1"; port = $PORT; };
health = { address = "127.0.0.1"; port = $hport; };
streams = (
  $list
);
log = { level = "$level"; };
EOF
    echo "$TMP/$name.conf"
}

producer_conf() {
    cat >"$TMP/producer.conf" <<EOF
# Written by bench/run.sh.
redis = { host = "127.0.0.1"; port = $PORT; };
log = { level = "warn"; };
EOF
    echo "$TMP/producer.conf"
}

# --- figures ---------------------------------------------------------------------------------

# kv LINE KEY: the value of KEY=value in LINE ("" when absent).
kv() {
    sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1" | head -n 1
}

isnum() {
    [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]
}

# div A B [DECIMALS]: A / B, or "—" when either is not a number or B is 0.
div() {
    if isnum "$1" && isnum "$2"; then
        awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b > 0) printf "%.*f", d, a / b; else printf "—" }'
    else
        printf '—'
    fi
}

# rate COUNT NS: COUNT per second over NS nanoseconds, whole.
rate() {
    div "$1" "$(awk -v ns="$2" 'BEGIN { printf "%.9f", ns / 1e9 }')" 0
}

# met VALUE OP TARGET: "yes", "**no**" (OP ge or le), or "—" when VALUE is not a number.
met() {
    if ! isnum "$1"; then
        printf '—'
        return
    fi
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        ok = (op == "ge") ? (v + 0 >= t + 0) : (v + 0 <= t + 0)
        printf "%s", ok ? "yes" : "**no**" }'
}

# fmt_int N: 1234567 -> 1,234,567 (other text unchanged).
fmt_int() {
    local n=$1 out=""
    if [[ $n =~ ^[0-9]+$ ]]; then
        while ((${#n} > 3)); do
            out=",${n: -3}$out"
            n=${n:0:${#n}-3}
        done
    fi
    printf '%s' "$n$out"
}

SECTION="" # the current step's section file

# section FILE TITLE: starts the step's section.
section() {
    SECTION=$1
    {
        echo "## $2"
        echo
        echo "Load average before the step: $(cut -d' ' -f1-3 /proc/loadavg)."
        echo
    } >"$SECTION"
}

# para TEXT: a paragraph in the current section.
para() {
    printf '%s\n\n' "$*" >>"$SECTION"
}

# table_head COLUMNS...: a table header in the current section.
table_head() {
    local c line="|" sep="|"
    for c in "$@"; do
        line+=" $c |"
        sep+=" --- |"
    done
    printf '%s\n%s\n' "$line" "$sep" >>"$SECTION"
}

# row CELLS...: a table row in the current section.
row() {
    local c line="|"
    for c in "$@"; do line+=" $c |"; done
    printf '%s\n' "$line" >>"$SECTION"
}

# summary TARGET FIGURE MET: a row of the "targets at a glance" table at the top.
summary() {
    printf '| %s | %s | %s |\n' "$1" "$2" "$3" >>"$TMP/summary.md"
}

vmhwm_kb() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

vmrss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

mib() {
    div "$1" 1024 1
}

# settings CONF: the consumer's settings that matter here, as its --check-config reports them
# ("8 workers, queue 1024, read_count 1000, block_ms 5000"), so the text never goes stale.
settings() {
    local report workers reads
    report=$("$CONSUMER" -c "$1" --check-config 2>/dev/null) || {
        printf 'see redstream-consumer --check-config'
        return
    }
    workers=$(sed -n 's/^workers: *\([0-9]*\) threads, queue capacity \([0-9]*\).*/\1 workers, queue \2/p' <<<"$report")
    reads=$(sed -n 's/.*read \([0-9]*\) per call, block \([0-9]*\) ms.*/read_count \1, block_ms \2/p' <<<"$report")
    printf '%s' "${workers:-?}, ${reads:-?}"
}

# redis_ticks: CPU time redis-server has used so far (user + system), in clock ticks.
redis_ticks() {
    local stat
    stat=$(cat "/proc/$REDIS_PID/stat")
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat" # utime and stime, fields 14 and 15 of the whole line
}

# redis_busy TICKS0 TICKS1 NS: redis-server's CPU use between two redis_ticks readings NS
# nanoseconds apart, in percent of one core. Near 100 means Redis itself is the bottleneck
# (it runs commands on one thread).
redis_busy() {
    div "$(awk -v t=$(($2 - $1)) -v hz="$CLK_TCK" 'BEGIN { printf "%.6f", t / hz * 100 }')" \
        "$(awk -v ns="$3" 'BEGIN { printf "%.9f", ns / 1e9 }')" 0
}

# --- measuring the consumer ------------------------------------------------------------------

# drain_with_consumer NAME NSTREAMS TOTAL: runs the consumer (discard handler, defaults, log
# level warn) over streams pre-filled with TOTAL entries until the group has nothing pending
# and no lag; sets D_SECONDS (process start to settled), D_RATE, D_RATE_ACK (first ack to
# settled), D_HWM_KB (the consumer's VmHWM when settled), D_REDIS_BUSY (redis-server's CPU use
# from start to settled, % of one core).
drain_with_consumer() {
    local name=$1 k=$2 total=$3
    local -a streams
    read -r -a streams <<<"$(stream_names "$k")"
    drain_conf "$name" "$(consumer_conf "$name" discard warn "${streams[@]}")" "$total" \
        "${streams[@]}"
}

# drain_conf NAME CONF TOTAL STREAM...: drain_with_consumer with the configuration file CONF
# (which must consume exactly the STREAMs, pre-filled with TOTAL entries in all); sets the
# same D_* figures.
drain_conf() {
    local name=$1 conf=$2 total=$3 t0 pid line settled first acked_first ticks0 ticks1
    shift 3
    local -a streams=("$@")
    local -a watch_args=()
    local s
    for s in "${streams[@]}"; do watch_args+=(--stream "$s"); done
    ticks0=$(redis_ticks)
    t0=$(now_ns)
    "$CONSUMER" -c "$conf" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    pid=$!
    track "$pid"
    line=$("$LIMIT" watch --port "$PORT" --group workers "${watch_args[@]}" --count "$total" \
        --interval-ms 20 --timeout-ms $((300000 * T_SCALE)) 2>"$TMP/$name.watch.err") || true
    ticks1=$(redis_ticks)
    D_HWM_KB=$(vmhwm_kb "$pid")
    if exited "$pid"; then
        wait "$pid" 2>/dev/null || true
        untrack "$pid"
        fail "the consumer exited early: $(tail -n 3 "$TMP/$name.err" | tr '\n' ' ')"
    fi
    stop "$pid" $((15 * T_SCALE))
    [[ $line == "result: settled=yes"* ]] ||
        fail "the consumer did not drain the streams: $(tail -n 1 "$TMP/$name.watch.err")"
    settled=$(kv "$line" settled_ns)
    first=$(kv "$line" first_ack_ns)
    acked_first=$(kv "$line" acked_at_first)
    D_SECONDS=$(div $((settled - t0)) 1000000000 3)
    D_RATE=$(rate "$total" $((settled - t0)))
    D_RATE_ACK=$(rate $((total - acked_first)) $((settled - first)))
    if ((settled <= first)); then D_RATE_ACK="—"; fi
    D_REDIS_BUSY=$(redis_busy "$ticks0" "$ticks1" $((settled - t0)))
    say "$name: $total entries in $D_SECONDS s from process start: $D_RATE msg/s (from first ack: $D_RATE_ACK msg/s); VmHWM $D_HWM_KB KiB; redis-server busy $D_REDIS_BUSY %"
}

# --- the steps -------------------------------------------------------------------------------

# Steps run in subshells: (a) hands its figures to (b), (c) and (f) in $TMP/a.figures.

# median V...: the median of numbers (the lower middle one for an even count); "—" if any
# is not a number.
median() {
    local v
    for v in "$@"; do isnum "$v" || {
        printf '—'
        return
    }; done
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%s", v[int((NR + 1) / 2)] }'
}

# runs V...: "V1 / V2 / V3" for the table, or nothing for a single run.
runs() {
    (($# > 1)) || return 0
    local IFS=/
    local joined="$*"
    printf '%s' "${joined//\// / }"
}

step_a() {
    section "$TMP/sec-a.md" "a. Drain: one stream, redstream-consumer"
    local i rates=() acks=() secs=() busys=() hwm=0
    for ((i = 1; i <= REPEAT; i++)); do
        say "a. drain, run $i of $REPEAT: filling $N_DRAIN entries"
        flushall
        fill 1 "$N_DRAIN"
        say "a. drain, run $i of $REPEAT: redstream-consumer (discard handler, default settings)"
        drain_with_consumer drain 1 "$N_DRAIN"
        rates+=("$D_RATE") acks+=("$D_RATE_ACK") secs+=("$D_SECONDS") busys+=("$D_REDIS_BUSY")
        if ((${D_HWM_KB:-0} > hwm)); then hwm=$D_HWM_KB; fi
    done
    local rate ack busy
    rate=$(median "${rates[@]}") ack=$(median "${acks[@]}") busy=$(median "${busys[@]}")
    printf '%s %s %s %s %s\n' "$rate" "$ack" "$hwm" "$(median "${secs[@]}")" "$busy" \
        >"$TMP/a.figures"
    printf '%s\n' "${rates[*]}" >"$TMP/a.runs"
    para "$(fmt_int "$N_DRAIN") entries (fields message, type, timestamp; about 60 bytes) pre-filled" \
        "in one stream with redis-cli --pipe; then redstream-consumer with the discard handler and" \
        "otherwise default settings ($(settings "$TMP/drain.conf")), log level warn." \
        "Measured from outside by polling XINFO GROUPS every 20 ms (bench/limit watch)." \
        "$( ((REPEAT > 1)) && echo "Each figure is the median of $REPEAT runs (all runs in the last column); the peak RSS is the largest.")"
    table_head "figure" "value" "runs"
    row "messages/s, from the consumer's process start until lag = 0 and pending = 0" "$rate" \
        "$(runs "${rates[@]}")"
    row "messages/s, from the first poll that saw an entry acknowledged until settled" "$ack" \
        "$(runs "${acks[@]}")"
    row "seconds, process start to settled" "$(median "${secs[@]}")" "$(runs "${secs[@]}")"
    row "peak RSS (VmHWM) when settled" "$(mib "$hwm") MiB" ""
    row "redis-server CPU use, process start to settled (% of one core)" "$busy" \
        "$(runs "${busys[@]}")"
}

# limit_drain: one drain of bench-0 by bench/limit, timed like drain_with_consumer; sets
# L_RATE (process start to settled), L_SELF (its own clock) and L_BUSY (redis-server's CPU %).
limit_drain() {
    local t0 pid line settled self ticks0 ticks1
    ticks0=$(redis_ticks)
    t0=$(now_ns)
    "$LIMIT" drain --port "$PORT" --stream bench-0 --group workers \
        --timeout-ms $((300000 * T_SCALE)) >"$TMP/limit.out" 2>"$TMP/limit.err" &
    pid=$!
    track "$pid"
    line=$("$LIMIT" watch --port "$PORT" --group workers --stream bench-0 --count "$N_DRAIN" \
        --interval-ms 20 --timeout-ms $((300000 * T_SCALE)) 2>"$TMP/limit.watch.err") || true
    ticks1=$(redis_ticks)
    wait_until $((30 * T_SCALE)) exited "$pid" || true
    stop "$pid" 5
    self=$(grep '^result:' "$TMP/limit.out" || true)
    [[ -n $self ]] || fail "bench/limit drain failed: $(tail -n 2 "$TMP/limit.err" | tr '\n' ' ')"
    [[ $line == "result: settled=yes"* ]] ||
        fail "bench/limit did not drain the stream: $(tail -n 1 "$TMP/limit.watch.err")"
    L_SELF=$(kv "$self" rate)
    settled=$(kv "$line" settled_ns)
    L_RATE=$(rate "$N_DRAIN" $((settled - t0)))
    L_BUSY=$(redis_busy "$ticks0" "$ticks1" $((settled - t0)))
    say "b. bench/limit: $L_SELF msg/s by its own clock, $L_RATE msg/s from process start; redis-server busy $L_BUSY %"
}

step_b() {
    section "$TMP/sec-b.md" "b. Drain: bench/limit (plain hiredis), and the ratio a / b"
    local a_rate a_rate_ack a_busy i rates=() selfs=() busys=() a_runs=()
    read -r a_rate a_rate_ack _ _ a_busy <"$TMP/a.figures" 2>/dev/null || true
    read -r -a a_runs <"$TMP/a.runs" 2>/dev/null || true
    for ((i = 1; i <= REPEAT; i++)); do
        say "b. drain, run $i of $REPEAT: filling $N_DRAIN entries"
        flushall
        fill 1 "$N_DRAIN"
        say "b. drain, run $i of $REPEAT: bench/limit drain"
        limit_drain
        rates+=("$L_RATE") selfs+=("$L_SELF") busys+=("$L_BUSY")
    done
    local limit_rate self_rate busy r1 r2
    limit_rate=$(median "${rates[@]}") self_rate=$(median "${selfs[@]}") busy=$(median "${busys[@]}")
    r1=$(div "${a_rate:-}" "$limit_rate")
    r2=$(div "${a_rate_ack:-}" "$self_rate")
    para "The same $(fmt_int "$N_DRAIN") entries consumed by redstream-bench-limit drain: one" \
        "thread, XREADGROUP COUNT 1000 and one XACK with the batch's ids pipelined with the next" \
        "read. Measured two ways: from its process start by the same outside poller as (a), and" \
        "by its own clock (first XREADGROUP sent to last reply)." \
        "$( ((REPEAT > 1)) && echo "Medians of $REPEAT runs each.")" \
        "The last row is redis-server's" \
        "CPU time over the same interval: near 100 % of one core, Redis itself is the limit; well" \
        "below, the client leaves it waiting (bench/limit has one batch in flight at a time, so" \
        "Redis idles while it parses a reply)."
    table_head "figure" "redstream (a)" "bench/limit (b)" "ratio a / b" "target" "met?"
    row "messages/s, process start to settled (both polled every 20 ms)" "${a_rate:-—}" \
        "$limit_rate" "$r1" "≥ 0.90" "$(met "$r1" ge 0.90)"
    summary "(b) drain ≥ 0.90 of bench/limit" "$r1" "$(met "$r1" ge 0.90)"
    row "messages/s, a: first ack to settled; b: its own clock" "${a_rate_ack:-—}" "$self_rate" \
        "$r2" "(informative)" "—"
    row "redis-server CPU use, process start to settled (% of one core)" "${a_busy:-—}" "$busy" \
        "—" "—" "—"
    if ((REPEAT > 1)); then
        row "runs, messages/s from process start" "$(runs ${a_runs[@]+"${a_runs[@]}"})" "$(runs "${rates[@]}")" \
            "" "" ""
    fi
}

step_c() {
    section "$TMP/sec-c.md" "c. Several streams, one consumer"
    local k one=""
    read -r one _ <"$TMP/a.figures" 2>/dev/null || true
    para "$(fmt_int "$N_DRAIN") entries in total spread evenly over the streams; one consumer" \
        "(one reader thread per stream), discard handler, default settings; measured as in (a)."
    table_head "streams" "entries per stream" "messages/s (start to settled)" \
        "messages/s (first ack to settled)" "seconds" "peak RSS" "redis-server CPU %" \
        "vs one stream (a)"
    for k in 3 64; do
        say "c. $k streams: filling $N_DRAIN entries"
        flushall
        fill "$k" "$N_DRAIN"
        say "c. $k streams: redstream-consumer"
        drain_with_consumer "multi$k" "$k" "$N_DRAIN"
        row "$k" "~$(fmt_int $((N_DRAIN / k)))" "$D_RATE" "$D_RATE_ACK" "$D_SECONDS" \
            "$(mib "$D_HWM_KB") MiB" "$D_REDIS_BUSY" "$(div "$D_RATE" "${one:-}")"
    done
}

# blocked_reader: true once a client of the private server is blocked in XREADGROUP.
blocked_reader() {
    local clients
    clients=$(cli CLIENT LIST 2>/dev/null) || return 1
    grep -qE 'flags=[A-Za-z]*b[A-Za-z]* .*cmd=xreadgroup' <<<"$clients"
}

step_d() {
    section "$TMP/sec-d.md" "d. End-to-end latency"
    local have_producer=0 rate n bare conf pid pline eline sec_s notes=""
    if "$PRODUCER" --help 2>&1 | grep -q -- '--e2e'; then have_producer=1; fi
    sec_s=$(div "$E2E_MS" 1000 0)
    para "Each rate runs ${sec_s} s. redstream: redstream-producer --rate R --e2e (each entry" \
        "carries redstream.sent_ns, CLOCK_REALTIME) into a stream that redstream-consumer (discard" \
        "handler, default settings: $(settings "$(consumer_conf e2e-settings discard info e2e)")) reads; the consumer records now − sent per" \
        "entry in its handler and logs the histogram at shutdown. Bare pair:" \
        "redstream-bench-limit e2e, one thread XADDing at the same rate, another reading with" \
        "XREADGROUP COUNT 100 BLOCK 1000 on its own connection and recording now − sent on" \
        "receipt. Microseconds; both clocks on this machine."
    table_head "rate (msg/s)" "percentile" "redstream (µs)" "bare pair (µs)" "ratio" "target" "met?"
    for rate in $E2E_RATES; do
        n=$((rate * E2E_MS / 1000))
        say "d. $rate msg/s: bare pair (bench/limit e2e, $n entries)"
        flushall
        bare=$("$LIMIT" e2e --port "$PORT" --stream e2e-bare --group bench --rate "$rate" \
            --count "$n" --timeout-ms $((E2E_MS * 3 + 60000 * T_SCALE)) 2>"$TMP/e2e-bare-$rate.err" |
            grep '^result:') || bare=""
        [[ -n $bare ]] || say "d. bare pair failed: $(tail -n 2 "$TMP/e2e-bare-$rate.err" | tr '\n' ' ')"
        eline=""
        pline=""
        if ((have_producer)); then
            say "d. $rate msg/s: redstream-producer --e2e into redstream-consumer"
            flushall
            conf=$(consumer_conf "e2e-$rate" discard info e2e)
            "$CONSUMER" -c "$conf" >"$TMP/e2e-$rate.out" 2>"$TMP/e2e-$rate.err" &
            pid=$!
            track "$pid"
            wait_until $((30 * T_SCALE)) blocked_reader || fail "the consumer never blocked in XREADGROUP"
            pline=$(timeout $((E2E_MS * 3 / 1000 + 60 * T_SCALE)) "$PRODUCER" -c "$(producer_conf)" \
                --stream e2e --rate "$rate" --e2e --count "$n" 2>"$TMP/e2e-producer-$rate.err" |
                grep '^result:') || pline=""
            "$LIMIT" watch --port "$PORT" --group workers --stream e2e --count "$n" \
                --timeout-ms $((60000 * T_SCALE)) >/dev/null 2>"$TMP/e2e-watch-$rate.err" ||
                say "d. the consumer did not settle: $(tail -n 1 "$TMP/e2e-watch-$rate.err")"
            stop "$pid" $((15 * T_SCALE))
            eline=$(grep -m 1 'e2e latency' "$TMP/e2e-$rate.err" |
                grep -o 'n=[0-9]* p50_us=.*max_us=[0-9.]*' || true)
            [[ -n $pline ]] || say "d. the producer failed: $(tail -n 2 "$TMP/e2e-producer-$rate.err" | tr '\n' ' ')"
            [[ -n $eline ]] || say "d. the consumer logged no 'e2e latency' line at shutdown"
        fi
        local q key cv bv r target ok
        for q in p50 p90 p99 p999 max; do
            key=${q}_us
            bv=$(kv "$bare" "$key")
            if ((have_producer == 0)); then
                cv="not available (redstream-producer has no --e2e)"
            elif [[ -z $eline ]]; then
                cv="not available (no 'e2e latency' line from the consumer)"
            else
                cv=$(kv "$eline" "$key")
            fi
            r=$(div "$cv" "${bv:-}")
            target="—"
            ok="—"
            if [[ $q == p99 && $rate == 10000 ]]; then
                target="≤ 2.00"
                ok=$(met "$r" le 2.0)
                summary "(d) end-to-end p99 at 10,000/s ≤ 2 × the bare pair's" \
                    "$r ($cv µs vs ${bv:-?} µs)" "$ok"
            fi
            row "$(fmt_int "$rate")" "${q/p999/p99.9}" "$cv" "${bv:-failed}" "$r" "$target" "$ok"
        done
        row "$(fmt_int "$rate")" "entries measured" "$(kv "$eline" n)" "$(kv "$bare" n)" "" "" ""
        if [[ -n $pline ]]; then
            notes+="- at $(fmt_int "$rate")/s: \`${pline#result: }\`"$'\n'
        fi
    done
    if [[ -n $notes ]]; then
        printf '\n' >>"$SECTION"
        para "The producer's own report (XADD round trips, not end to end):"$'\n\n'"${notes%$'\n'}"
    fi
}

# redis-benchmark's message field; the producer's --payload-size makes its own as long.
RB_MESSAGE='Message #100000'

# producer_run P C N: one redstream-producer load run; prints its rate (whole) or "failed".
producer_run() {
    local pline prate
    flushall
    pline=$(timeout $((120 * T_SCALE)) "$PRODUCER" -c "$(producer_conf)" \
        --stream bench-prod --rate 0 --pipeline "$1" --connections "$2" \
        --payload-size "${#RB_MESSAGE}" --count "$3" 2>"$TMP/prod.err" | grep '^result:') || pline=""
    prate=$(kv "$pline" rate)
    prate=${prate%.*}
    if isnum "$prate"; then
        printf '%s' "$prate"
    else
        say "e. the producer failed: $(tail -n 2 "$TMP/prod.err" | tr '\n' ' ')"
        printf 'failed'
    fi
}

# benchmark_run P C N: one redis-benchmark XADD run; prints its rate (whole) or "failed".
benchmark_run() {
    local rbline rbrate
    flushall
    rbline=$(timeout $((120 * T_SCALE)) "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$PORT" \
        -a "$PASSWORD" -c "$2" -P "$1" -n "$3" --csv XADD bench-prod '*' \
        message "$RB_MESSAGE" type test timestamp 2026-11-27T14:04:30Z \
        2>"$TMP/rb.err" | sed -n 2p) || rbline=""
    rbrate=$(awk -F'","' '{ gsub(/"/, "", $2); printf "%.0f", $2 }' <<<"$rbline")
    isnum "$rbrate" || rbrate="failed"
    printf '%s' "$rbrate"
}

step_e() {
    section "$TMP/sec-e.md" "e. Producer throughput against redis-benchmark"
    local have_producer=0 have_rb=0 p c n i prate rbrate r
    if "$PRODUCER" --help 2>&1 | grep -q -- '--pipeline'; then have_producer=1; fi
    if command -v "$REDIS_BENCHMARK" >/dev/null; then have_rb=1; fi
    para "$(fmt_int "$N_PROD") XADDs per run at pipeline 1, $(fmt_int "$N_PROD_PIPELINED") at" \
        "pipeline 64 (so a run lasts more than a second); fields message (15 bytes), type (test)" \
        "and timestamp (RFC 3339, 20 bytes). redstream: redstream-producer --rate 0 --pipeline P" \
        "--connections C --payload-size 15 --count N. Baseline: redis-benchmark -c C -P P -n N" \
        "XADD key '*' message '$RB_MESSAGE' type test timestamp 2026-11-27T14:04:30Z." \
        "$( ((REPEAT > 1)) && echo "The two alternate, $REPEAT runs each; the figures are the medians.")"
    table_head "pipeline" "connections" "redstream-producer (msg/s)" "redis-benchmark (msg/s)" \
        "ratio" "target" "met?" "runs (producer; redis-benchmark)"
    for c in 1 4; do
        for p in 1 64; do
            n=$N_PROD
            ((p == 1)) || n=$N_PROD_PIPELINED
            local prates=() rbrates=()
            for ((i = 1; i <= REPEAT; i++)); do
                if ((have_rb)); then
                    say "e. run $i of $REPEAT: redis-benchmark -P $p -c $c -n $n"
                    rbrates+=("$(benchmark_run "$p" "$c" "$n")")
                fi
                if ((have_producer)); then
                    say "e. run $i of $REPEAT: redstream-producer --pipeline $p --connections $c --count $n"
                    prates+=("$(producer_run "$p" "$c" "$n")")
                fi
            done
            rbrate="not available (no redis-benchmark)"
            ((have_rb)) && rbrate=$(median "${rbrates[@]}")
            prate="not available (redstream-producer has no load mode)"
            ((have_producer)) && prate=$(median "${prates[@]}")
            r=$(div "$prate" "$rbrate")
            row "$p" "$c" "$prate" "$rbrate" "$r" "≥ 0.90" "$(met "$r" ge 0.90)" \
                "$(runs ${prates[@]+"${prates[@]}"}); $(runs ${rbrates[@]+"${rbrates[@]}"})"
            summary "(e) producer ≥ 0.90 of redis-benchmark, pipeline $p, $c connection(s)" "$r" \
                "$(met "$r" ge 0.90)"
            say "e. P=$p C=$c: producer $prate msg/s, redis-benchmark $rbrate msg/s"
        done
    done
}

# slow_run NAME BACKLOG: fills one stream with BACKLOG entries, runs the consumer with the log
# handler whose stdout goes through a FIFO into a reader that sleeps 2 ms per line (~500
# lines/s), for SLOW_MS; sets S_HWM_KB (the peak: VmHWM at the end, or the largest sample if
# higher), S_RSS_MAX_KB (largest VmRSS sampled every 0.5 s) and S_HANDLED (entries
# acknowledged during the run).
slow_run() {
    local name=$1 backlog=$2 conf fifo reader pid end rss line
    flushall
    fill 1 "$backlog"
    conf=$(consumer_conf "$name" log warn bench-0)
    fifo=$TMP/$name.fifo
    mkfifo "$fifo"
    "$PYTHON" -c '
import sys, time
for line in sys.stdin:
    time.sleep(0.002)
' <"$fifo" &
    reader=$!
    track "$reader"
    "$CONSUMER" -c "$conf" >"$fifo" 2>"$TMP/$name.err" &
    pid=$!
    track "$pid"
    S_RSS_MAX_KB=0
    end=$((SECONDS + (SLOW_MS + 999) / 1000))
    while ((SECONDS < end)); do
        sleep 0.5
        exited "$pid" && fail "the consumer exited early: $(tail -n 3 "$TMP/$name.err" | tr '\n' ' ')"
        rss=$(vmrss_kb "$pid")
        if ((${rss:-0} > S_RSS_MAX_KB)); then S_RSS_MAX_KB=$rss; fi
    done
    S_HWM_KB=$(vmhwm_kb "$pid")
    # The kernel's RSS counters are approximate (per-CPU), and VmHWM is only brought up to date
    # at some events, so a sample can exceed the VmHWM read later: the peak is the larger one.
    if ((S_RSS_MAX_KB > ${S_HWM_KB:-0})); then S_HWM_KB=$S_RSS_MAX_KB; fi
    line=$(cli XINFO GROUPS bench-0 | awk 'prev == "entries-read" { r = $0 } prev == "pending" { p = $0 } { prev = $0 } END { print r - p }')
    S_HANDLED=$line
    # The reader goes first, so the workers' blocked writes fail at once and the consumer can
    # stop without waiting out its shutdown timeout.
    stop "$reader" 2
    local t=$SECONDS
    stop "$pid" $((10 * T_SCALE))
    ((SECONDS - t < 10 * T_SCALE)) || say "f. $name: the consumer needed SIGKILL to stop"
    say "f. $name: backlog $backlog, VmHWM $S_HWM_KB KiB, largest VmRSS $S_RSS_MAX_KB KiB, $S_HANDLED entries handled in $((SLOW_MS / 1000)) s"
}

step_f() {
    section "$TMP/sec-f.md" "f. Memory: peak RSS"
    local a_hwm="" big_hwm big_rss big_n small_hwm small_rss small_n r
    read -r _ _ a_hwm _ _ <"$TMP/a.figures" 2>/dev/null || true
    say "f. slow handler over a $N_DRAIN-entry backlog"
    slow_run slow-big "$N_DRAIN"
    big_hwm=$S_HWM_KB big_rss=$S_RSS_MAX_KB big_n=$S_HANDLED
    say "f. slow handler over a $N_SMALL-entry backlog"
    slow_run slow-small "$N_SMALL"
    small_hwm=$S_HWM_KB small_rss=$S_RSS_MAX_KB small_n=$S_HANDLED
    r=$(div "$big_hwm" "$small_hwm")
    para "Peak RSS: VmHWM from /proc/PID/status (in the slow runs, or the largest VmRSS sampled" \
        "every 0.5 s when that is higher). Slow handler: the log handler with" \
        "its stdout piped into a reader that sleeps 2 ms per line (about 500 entries/s), default" \
        "settings ($(settings "$TMP/slow-big.conf")), $((SLOW_MS / 1000)) s per run; \"flat\" is read as" \
        "the big backlog's peak within 10 % of the small one's."
    table_head "figure" "value" "baseline" "ratio" "target" "met?"
    row "peak RSS in the drain (a)" "$(mib "$a_hwm") MiB" "16 MiB" "$(div "$a_hwm" 16384)" \
        "≤ 16 MiB" "$(met "$(mib "$a_hwm")" le 16)"
    row "peak RSS, slow handler, $(fmt_int "$N_DRAIN")-entry backlog ($(fmt_int "$big_n") handled)" \
        "$(mib "$big_hwm") MiB" \
        "$(mib "$small_hwm") MiB with a $(fmt_int "$N_SMALL")-entry backlog ($(fmt_int "$small_n") handled)" \
        "$r" "≤ 1.10 (flat)" "$(met "$r" le 1.10)"
    summary "(f) peak RSS in the drain ≤ 16 MiB" "$(mib "$a_hwm") MiB" "$(met "$(mib "$a_hwm")" le 16)"
    summary "(f) peak RSS flat under backlog (big / small ≤ 1.10)" "$r" "$(met "$r" le 1.10)"
    row "largest VmRSS sampled every 0.5 s, same runs" "$(mib "$big_rss") MiB" \
        "$(mib "$small_rss") MiB" "$(div "$big_rss" "$small_rss")" "—" "—"
}

# fill_keyed TOTAL NKEYS: XADDs TOTAL entries into bench-0 with a field "key" drawn at random
# (a fixed seed) from k0000 .. k<NKEYS-1>, then (a)'s fields, as RESP through redis-cli --pipe.
fill_keyed() {
    local n=$1 nkeys=$2 out
    out=$(awk -v n="$n" -v nk="$nkeys" 'BEGIN {
            srand(12)
            ts = "2026-11-27T14:04:30Z"
            for (i = 1; i <= n; i++) {
                k = sprintf("k%04d", int(rand() * nk)); m = "Message #" i
                printf "*11\r\n$4\r\nXADD\r\n$7\r\nbench-0\r\n$1\r\n*\r\n$3\r\nkey\r\n$%d\r\n%s\r\n" \
                       "$7\r\nmessage\r\n$%d\r\n%s\r\n$4\r\ntype\r\n$4\r\ntest\r\n" \
                       "$9\r\ntimestamp\r\n$20\r\n%s\r\n", length(k), k, length(m), m, ts
            }
        }' | timeout $((120 * T_SCALE)) "$REDIS_CLI" -h 127.0.0.1 -p "$PORT" -a "$PASSWORD" \
        --no-auth-warning --pipe 2>&1) || fail "filling $n keyed entries failed: $out"
    [[ $out == *"errors: 0, replies: $n"* ]] ||
        fail "filling $n keyed entries: redis-cli --pipe said: $out"
}

# ordering_conf NAME ORDERING URL: a consumer configuration with default settings except the
# Redis address, a free health port and log level warn, consuming bench-0 with the http
# handler posting to URL, with the given ordering (key_field "key" for "key"); prints its path.
ordering_conf() {
    local name=$1 mode=$2 url=$3 hport extra=""
    hport=$(free_port) || fail "no free port for the health server"
    [[ $mode == key ]] && extra=' key_field = "key";'
    cat >"$TMP/$name.conf" <<EOF
# Written by bench/run.sh: defaults except these.
redis = { host = "127.0.0.1"; port = $PORT; };
health = { address = "127.0.0.1"; port = $hport; };
streams = (
  { name = "bench-0"; handler = "http"; url = "$url"; ordering = "$mode";$extra }
);
log = { level = "warn"; };
EOF
    echo "$TMP/$name.conf"
}

step_g() {
    section "$TMP/sec-g.md" "g. Ordering: per key against per stream"
    local node rcv wport mode i r_key r_none
    local -A med=() all=()
    node=$(command -v node || command -v nodejs || true)
    [[ -n $node ]] || fail "node not found (Debian package nodejs): the webhook needs it"
    rcv=$SRC/tests/webhook-receiver/receiver.js
    [[ -f $rcv ]] || fail "$rcv is missing"
    "$node" "$rcv" --port-file "$TMP/webhook.port" --delay-ms 1-1 >"$TMP/webhook.out" \
        2>"$TMP/webhook.err" &
    track $!
    wait_until 10 test -s "$TMP/webhook.port" ||
        fail "the webhook did not start: $(tail -n 3 "$TMP/webhook.err" | tr '\n' ' ')"
    wport=$(cat "$TMP/webhook.port")
    for mode in stream key none; do
        local rates=()
        for ((i = 1; i <= REPEAT; i++)); do
            say "g. ordering $mode, run $i of $REPEAT: filling $N_ORDER entries over 1,000 keys"
            flushall
            fill_keyed "$N_ORDER" 1000
            say "g. ordering $mode, run $i of $REPEAT: redstream-consumer, http handler, 1 ms webhook"
            drain_conf "order-$mode" \
                "$(ordering_conf "order-$mode" "$mode" "http://127.0.0.1:$wport/hook")" \
                "$N_ORDER" bench-0
            rates+=("$D_RATE")
        done
        med[$mode]=$(median "${rates[@]}")
        all[$mode]=$(runs "${rates[@]}")
    done
    r_key=$(div "${med[key]}" "${med[stream]}")
    r_none=$(div "${med[none]}" "${med[stream]}")
    para "$(fmt_int "$N_ORDER") entries in one stream, each with a field \"key\" drawn at random" \
        "from 1,000 values (then (a)'s fields), pre-filled with redis-cli --pipe; then" \
        "redstream-consumer with the http handler posting every entry to a webhook that answers" \
        "200 after a fixed 1 ms (tests/webhook-receiver/receiver.js on Node.js, keep-alive;" \
        "its timer makes that 1 ms or a little more), otherwise default settings" \
        "($(settings "$TMP/order-key.conf")), log level warn. Three orderings of the same" \
        "stream: \"stream\" (one entry at a time, the baseline), \"key\" with key_field \"key\"" \
        "(one at a time per key, keys in parallel) and \"none\" (any order, for reference)." \
        "Messages/s from the consumer's process start until lag = 0 and pending = 0, measured" \
        "as in (a)." \
        "$( ((REPEAT > 1)) && echo "Medians of $REPEAT runs each (all runs in the last column).")" \
        "With 8 workers the ratio cannot exceed 8."
    table_head "ordering" "messages/s (start to settled)" "vs \"stream\"" "target" "met?" "runs"
    row '"stream" (baseline)' "${med[stream]}" "1.00" "—" "—" "${all[stream]}"
    row '"key", 1,000 keys' "${med[key]}" "$r_key" "≥ 5.00" "$(met "$r_key" ge 5)" "${all[key]}"
    row '"none" (for reference)' "${med[none]}" "$r_none" "—" "—" "${all[none]}"
    summary "(g) ordering \"key\" ≥ 5 × ordering \"stream\" (1,000 keys, 8 workers, 1 ms webhook)" \
        "$r_key" "$(met "$r_key" ge 5)"
    say "g. ordering: stream ${med[stream]} msg/s, key ${med[key]} msg/s ($r_key x), none ${med[none]} msg/s ($r_none x)"
}

# --- main --------------------------------------------------------------------------------------

machine_section() {
    local cpu mem
    cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
    [[ -n $cpu ]] || cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)
    mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    echo "## Machine and versions"
    echo
    echo "| what | value |"
    echo "| --- | --- |"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
    echo "| CPU | ${cpu:-unknown} |"
    echo "| cores | $(nproc) |"
    echo "| RAM | $mem |"
    echo "| kernel | $(uname -sr) |"
    echo "| redis-server | $("$REDIS_SERVER" --version | sed 's/^Redis server //') |"
    echo "| hiredis | $(pkg-config --modversion hiredis 2>/dev/null || echo unknown) |"
    echo "| gcc | $(gcc --version 2>/dev/null | head -n 1 || echo unknown) |"
    echo "| redstream | $("$CONSUMER" --version 2>&1 | head -n 1), git $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown) |"
    echo "| build | $BUILD: build type ${BUILD_TYPE:-?}${BUILD_CFLAGS:+, extra C flags $BUILD_CFLAGS}$( ((SLOW)) && echo ", sanitizers: figures not meaningful") |"
    local mode="counts divided by $DIV"
    ((QUICK)) && mode="--quick, $mode"
    echo "| mode | $mode |"
    echo "| load average at the start | $LOAD_START |"
    echo
}

run_step() {
    local name=$1 rc=0
    rm -f "$TMP/fail-reason"
    set +e
    (
        set -e
        trap kill_tracked EXIT
        "step_$name"
    )
    rc=$?
    set -e
    kill_tracked
    if ((rc != 0)); then
        local reason="exit status $rc"
        [[ -s $TMP/fail-reason ]] && reason=$(cat "$TMP/fail-reason")
        {
            echo
            echo "**This step failed:** ${reason//|/\\|}"
            echo
        } >>"$TMP/sec-$name.md"
        say "step $name failed: $reason"
    fi
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "starting redis-server"
start_redis
say "redis-server $PORT (pid $REDIS_PID), temp dir $TMP; counts divided by $DIV"
START=$SECONDS
for step in a b c d e f g; do
    [[ $STEPS == *$step* ]] && run_step "$step"
done

mkdir -p "$(dirname "$OUT")"
{
    echo "# redstream benchmark results"
    echo
    echo "Written by \`bash bench/run.sh$( ((QUICK)) && echo " --quick")\` in $((SECONDS - START)) s" \
        "against a private redis-server (127.0.0.1, no persistence) on the same machine;" \
        "targets from issues 9 and 12. Each step starts from an empty database (FLUSHALL)."
    echo
    if [[ -s $TMP/summary.md ]]; then
        echo "## Targets at a glance"
        echo
        echo "| target | figure | met? |"
        echo "| --- | --- | --- |"
        cat "$TMP/summary.md"
        echo
    fi
    machine_section
    for step in a b c d e f g; do
        cat "$TMP/sec-$step.md" 2>/dev/null || printf '## %s\n\n**This step did not run.**\n' "$step"
        echo
    done
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
say "results written to $OUT"
