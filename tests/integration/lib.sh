# shellcheck shell=bash disable=SC2034 # variables here are used by the sourcing scripts
#
# Helpers for the integration tests: a private, throwaway redis-server and assertions.
#
# Each tests/integration/test_*.sh sources this file, which:
#   - makes a temp directory ($RS_TMP) and installs an EXIT trap that kills every process the
#     test started (rs_track) and removes the directory, whatever way the script ends;
#   - starts redis-server only on request (rs_start_redis), on a random free loopback port,
#     with a password, no persistence and its files in $RS_TMP; the system's Redis is never
#     touched;
#   - waits on conditions with deadlines (rs_wait_for), never on fixed sleeps;
#   - prints "<test>: N passed, M failed" at the end (from the trap, so a failure reports too).
# The first failed assertion ends the script with status 1 after printing what was expected and
# what was seen. hiredis's test.sh is the model.
#
# Environment (set by tests/CMakeLists.txt, defaults for running a script by hand;
# RS_KEEP_TMP=1 keeps $RS_TMP after the test, for a post-mortem):
#   RS_BUILD_DIR   the CMake build directory holding redstream-producer/-consumer
#   RS_SOURCE_DIR  the source tree (for config/redstream.conf)
#   REDIS_SERVER   redis-server binary      REDIS_CLI  redis-cli binary

set -euo pipefail

RS_TEST_NAME=$(basename "$0" .sh)
RS_SOURCE_DIR=${RS_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
RS_BUILD_DIR=${RS_BUILD_DIR:-$RS_SOURCE_DIR/build}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
RS_PRODUCER=$RS_BUILD_DIR/redstream-producer

# The password of the private server (the demo's); tests check it never reaches output.
RS_REDIS_PASSWORD=redis123

# A variable from the caller's environment would silently change which password is used.
unset REDSTREAM_REDIS_PASSWORD

RS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/redstream-${RS_TEST_NAME}.XXXXXX")
RS_PIDS=()
RS_PASSED=0
RS_FAILED=0
RS_CASE=""
RS_REDIS_PORT=""
RS_REDIS_PID=""
RS_REDIS_ARGS=()

_rs_cleanup() {
    local rc=$?
    local pid
    set +e
    for pid in ${RS_PIDS[@]+"${RS_PIDS[@]}"}; do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if ((rc != 0 && RS_FAILED == 0)); then
        # Something other than an assertion stopped the script (set -e, a missing binary).
        echo "FAIL ${RS_CASE:-setup}: unexpected error (exit status $rc)" >&2
        RS_FAILED=1
    fi
    if ((rc != 0)) && [[ -f $RS_TMP/redis.log ]]; then
        echo "--- last lines of redis.log ---" >&2
        tail -n 20 "$RS_TMP/redis.log" >&2
    fi
    if [[ -n ${RS_KEEP_TMP:-} ]]; then
        echo "kept $RS_TMP" >&2 # RS_KEEP_TMP=1: leave the files for a post-mortem
    else
        rm -rf "$RS_TMP"
    fi
    echo "$RS_TEST_NAME: $RS_PASSED passed, $RS_FAILED failed"
    if ((RS_FAILED != 0)); then
        exit 1
    fi
    exit "$rc"
}
trap _rs_cleanup EXIT

# --- processes -------------------------------------------------------------------------------

# rs_track PID: the EXIT trap kills PID if it is still running.
rs_track() {
    RS_PIDS+=("$1")
}

# rs_untrack PID: PID has been reaped; forget it so the trap cannot hit a reused pid.
rs_untrack() {
    local kept=() pid
    for pid in ${RS_PIDS[@]+"${RS_PIDS[@]}"}; do
        [[ $pid == "$1" ]] || kept+=("$pid")
    done
    RS_PIDS=(${kept[@]+"${kept[@]}"})
}

# rs_exited PID: true once PID has exited (gone, or a zombie waiting to be reaped; kill -0
# succeeds on zombies, so the state is read from /proc).
rs_exited() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat:0:1} == Z ]]
}

# rs_wait_exit PID [SECONDS]: waits up to SECONDS (default 10) for our child PID to exit and
# sets RS_RC to its exit status. Fails the test if it is still running at the deadline.
rs_wait_exit() {
    local pid=$1 timeout=${2:-10}
    if ! RS_WAIT_TIMEOUT=$timeout rs_wait_for rs_exited "$pid"; then
        rs_fail "process $pid still running after ${timeout}s"
    fi
    RS_RC=0
    wait "$pid" || RS_RC=$?
    rs_untrack "$pid"
}

# --- waiting ---------------------------------------------------------------------------------

# rs_wait_for CMD...: runs CMD until it succeeds or RS_WAIT_TIMEOUT seconds (default 10) pass.
# Returns 0 when it succeeded, 1 at the deadline. The poll count is bounded too, so a clock
# jump cannot make it spin forever.
rs_wait_for() {
    local timeout=${RS_WAIT_TIMEOUT:-10}
    local deadline=$((SECONDS + timeout + 1))
    local tries=$((timeout * 50 + 50))
    while ((tries-- > 0 && SECONDS < deadline)); do
        if "$@"; then
            return 0
        fi
        sleep 0.02
    done
    "$@"
}

# --- redis -----------------------------------------------------------------------------------

# rs_cli ARGS...: redis-cli against the private server.
rs_cli() {
    "$REDIS_CLI" -h 127.0.0.1 -p "$RS_REDIS_PORT" -a "$RS_REDIS_PASSWORD" --no-auth-warning "$@"
}

# True when the server answering on the port is the one with pid $1 (a random port may be
# taken by someone else's redis, which must never be mistaken for ours).
_rs_redis_is_ours() {
    local info
    info=$(rs_cli INFO server 2>/dev/null) || return 1
    [[ $info == *"process_id:$1"* ]]
}

# _rs_spawn_redis PORT: starts redis-server on PORT and waits for it. Returns 0 with
# RS_REDIS_PID set, 1 if it died (port taken) or never answered.
_rs_spawn_redis() {
    local port=$1 pid
    "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --requirepass "$RS_REDIS_PASSWORD" \
        --save '' --appendonly no --dir "$RS_TMP" --daemonize no \
        --logfile "$RS_TMP/redis.log" ${RS_REDIS_ARGS[@]+"${RS_REDIS_ARGS[@]}"} &
    pid=$!
    rs_track "$pid"
    RS_REDIS_PORT=$port
    if RS_WAIT_TIMEOUT=10 rs_wait_for _rs_redis_up "$pid" && ! rs_exited "$pid"; then
        RS_REDIS_PID=$pid
        return 0
    fi
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rs_untrack "$pid"
    return 1
}

# Stops rs_wait_for early when the server died, so a taken port costs no time.
_rs_redis_up() {
    rs_exited "$1" && return 0
    _rs_redis_is_ours "$1"
}

# rs_start_redis [EXTRA REDIS ARGS...]: starts the private server on a random port in
# 20000-60000, retrying other ports when one is taken; exports RS_REDIS_PORT.
rs_start_redis() {
    RS_REDIS_ARGS=("$@")
    local attempt port
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
        if _rs_spawn_redis "$port"; then
            export RS_REDIS_PORT
            return 0
        fi
    done
    rs_fail "could not start redis-server on a free port after $attempt attempts"
}

# rs_stop_redis: kills the private server the hard way (SIGKILL, like a crash) and reaps it.
rs_stop_redis() {
    kill -KILL "$RS_REDIS_PID"
    wait "$RS_REDIS_PID" 2>/dev/null || true
    rs_untrack "$RS_REDIS_PID"
    RS_REDIS_PID=""
}

# rs_restart_redis: starts the server again on the same port, with the same arguments. The
# data is gone (no persistence), like a restarted cache.
rs_restart_redis() {
    local attempt
    for attempt in 1 2 3 4 5; do
        if _rs_spawn_redis "$RS_REDIS_PORT"; then
            return 0
        fi
    done
    rs_fail "could not restart redis-server on port $RS_REDIS_PORT"
}

# rs_free_port: prints a loopback port nothing listens on (for "unreachable" cases, and for a
# server to bind). It is taken below the kernel's ephemeral range when that leaves room, since
# an outgoing connection may hold any ephemeral port (which a bind would then fail on) without
# listening on it.
rs_free_port() {
    local port attempt low=0 high=60000
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    ((low > 21000)) && high=$((low - 1))
    for attempt in $(seq 1 50); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % (high - 20000 + 1)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    rs_fail "no free port found"
}

# --- running the programs --------------------------------------------------------------------

# rs_run NAME CMD...: runs CMD (bounded by 60 s) with stdout in $RS_TMP/NAME.out and stderr in
# $RS_TMP/NAME.err; sets RS_RC, RS_OUT and RS_ERR (the file names). Never trips set -e.
rs_run() {
    local name=$1
    shift
    RS_OUT=$RS_TMP/$name.out
    RS_ERR=$RS_TMP/$name.err
    RS_RC=0
    timeout --kill-after=5 60 "$@" >"$RS_OUT" 2>"$RS_ERR" || RS_RC=$?
}

# rs_produce NAME ARGS...: rs_run of redstream-producer against the private server, the
# password from the environment (the way its help text recommends); ARGS follow.
rs_produce() {
    local name=$1
    shift
    rs_run "$name" env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" \
        "$RS_PRODUCER" --redis-addr "127.0.0.1:$RS_REDIS_PORT" "$@"
}

# rs_spawn NAME CMD...: starts CMD in the background with output in $RS_TMP/NAME.{out,err};
# sets RS_PID, RS_OUT, RS_ERR. The trap kills it if the test ends first.
rs_spawn() {
    local name=$1
    shift
    RS_OUT=$RS_TMP/$name.out
    RS_ERR=$RS_TMP/$name.err
    "$@" >"$RS_OUT" 2>"$RS_ERR" &
    RS_PID=$!
    rs_track "$RS_PID"
}

# --- cases and assertions --------------------------------------------------------------------

# rs_case DESCRIPTION: names the case the following assertions belong to.
rs_case() {
    RS_CASE=$1
}

# rs_pass: the current case succeeded.
rs_pass() {
    RS_PASSED=$((RS_PASSED + 1))
    echo "ok - $RS_CASE"
}

# rs_fail MESSAGE: reports the failure of the current case and ends the script.
rs_fail() {
    RS_FAILED=$((RS_FAILED + 1))
    {
        echo "FAIL ${RS_CASE:-setup}: $1"
        if [[ -n ${RS_ERR:-} && -s ${RS_ERR:-} ]]; then
            echo "--- stderr of the last program run ($RS_ERR) ---"
            tail -n 30 "$RS_ERR"
        fi
    } >&2
    exit 1
}

# rs_assert_eq EXPECTED GOT WHAT
rs_assert_eq() {
    [[ $2 == "$1" ]] || rs_fail "$3: expected '$1', got '$2'"
}

# rs_assert_match REGEX GOT WHAT (extended regex, whole value)
rs_assert_match() {
    [[ $2 =~ $1 ]] || rs_fail "$3: expected to match /$1/, got '$2'"
}

# rs_assert_le MAX GOT WHAT / rs_assert_ge MIN GOT WHAT (integers)
rs_assert_le() {
    (($2 <= $1)) || rs_fail "$3: expected <= $1, got $2"
}
rs_assert_ge() {
    (($2 >= $1)) || rs_fail "$3: expected >= $1, got $2"
}

# rs_assert_exit EXPECTED: checks RS_RC from the last rs_run/rs_wait_exit.
rs_assert_exit() {
    [[ $RS_RC == "$1" ]] || rs_fail "exit status: expected $1, got $RS_RC"
}

# rs_assert_file_contains FILE NEEDLE (fixed string)
rs_assert_file_contains() {
    grep -qF -- "$2" "$1" || rs_fail "$(basename "$1") should contain '$2' but does not"
}

# rs_assert_file_lacks FILE NEEDLE (fixed string)
rs_assert_file_lacks() {
    if grep -qF -- "$2" "$1"; then
        rs_fail "$(basename "$1") must not contain '$2': $(grep -F -- "$2" "$1" | head -n 1)"
    fi
}

# rs_write_config NAME <<EOF ... EOF: writes stdin to $RS_TMP/NAME.conf and prints the path.
rs_write_config() {
    local path=$RS_TMP/$1.conf
    cat >"$path"
    echo "$path"
}
