# shellcheck shell=bash
#
# Helpers for the consumer's integration tests (test_consumer_*.sh). Source it after lib.sh,
# whose temp directory, trap, private redis-server and assertions it builds on:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
#
# It adds: a configuration writer for redstream-consumer, the consumer group's state as Redis
# reports it (pending count, lag, last delivered id), the consumer's JSON output turned into
# "stream id delivery" lines, bulk XADD files for redis-cli --pipe, a deliberately slow stdout
# reader, and a scale factor for sanitizer builds.
#
# Environment, beyond lib.sh's:
#   RS_SLOW     1 when the programs are built with ASan or TSan (3-10x slower): deadlines are
#               multiplied by RS_SCALE. Guessed from RS_BUILD_DIR (ending in -asan/-tsan) or its
#               CMakeCache.txt when not set.
#   RS_PYTHON   the Python 3 used for JSON and binary work (stdlib only); default Debian's
#               /usr/bin/python3.

RS_CONSUMER=$RS_BUILD_DIR/redstream-consumer
RS_PYTHON=${RS_PYTHON:-/usr/bin/python3}
[[ -x $RS_PYTHON ]] || RS_PYTHON=python3

# systemd's marker would switch the logger to syslog prefixes, which the stderr checks below do
# not expect; tests always want the plain "<time> <LEVEL> <module>: ..." lines.
unset JOURNAL_STREAM

if [[ -z ${RS_SLOW:-} ]]; then
    RS_SLOW=0
    case ${RS_BUILD_DIR%/} in
    *-asan | *-tsan) RS_SLOW=1 ;;
    esac
    if grep -qE '^REDSTREAM_(ASAN|TSAN):BOOL=ON' "$RS_BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
        RS_SLOW=1
    fi
fi
# Deadlines are multiplied by this. Work is not scaled: each script keeps its counts small
# enough for a sanitizer build (the slow parts are paced by Python or Redis, not the consumer).
if ((RS_SLOW)); then RS_SCALE=4; else RS_SCALE=1; fi

[[ -x $RS_CONSUMER ]] || rs_fail "$RS_CONSUMER not built"

# --- configuration ---------------------------------------------------------------------------

# cl_config NAME [KEY=VALUE...]: writes a consumer configuration to $RS_TMP/NAME.conf and
# prints its path. Keys (defaults): port ($RS_REDIS_PORT), consumer (c1), threads (4),
# queue (64), shutdown_ms (5000), block_ms (200), read_count (100), level (info),
# streams ("events:log logs:log", space-separated NAME:HANDLER), health_port (a free port, so
# that consumers of parallel tests never fight over the default 8083), liveness_ms (30000).
cl_config() {
    local name=$1
    shift
    local port=$RS_REDIS_PORT consumer=c1 threads=4 queue=64 shutdown_ms=5000 block_ms=200
    local read_count=100 level=info streams="events:log logs:log" health_port="" liveness_ms=30000
    local kv spec list=""
    for kv in "$@"; do
        case $kv in
        port=* | consumer=* | threads=* | queue=* | shutdown_ms=* | block_ms=* | read_count=* | \
            level=* | streams=* | health_port=* | liveness_ms=*)
            local "$kv"
            ;;
        *) rs_fail "cl_config: unknown setting '$kv'" ;;
        esac
    done
    [[ -n $health_port ]] || health_port=$(rs_free_port)
    for spec in $streams; do
        list+="${list:+,
  }{ name = \"${spec%%:*}\"; handler = \"${spec#*:}\"; }"
    done
    rs_write_config "$name" <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $port; password = "$RS_REDIS_PASSWORD"; connect_timeout_ms = 2000; };
group = { name = "workers"; consumer = "$consumer"; block_ms = $block_ms; read_count = $read_count; };
workers = { threads = $threads; queue_capacity = $queue; shutdown_timeout_ms = $shutdown_ms; };
health = { address = "127.0.0.1"; port = $health_port; liveness_timeout_ms = $liveness_ms; };
streams = (
  $list
);
log = { level = "$level"; };
EOF
}

# --- processes -------------------------------------------------------------------------------

# cl_spawn_consumer NAME CONF: starts redstream-consumer -c CONF with stdout in $RS_TMP/NAME.out
# and stderr in $RS_TMP/NAME.err; sets RS_PID, RS_OUT, RS_ERR like rs_spawn.
cl_spawn_consumer() {
    rs_spawn "$1" "$RS_CONSUMER" -c "$2"
}

# cl_spawn_io NAME STDIN STDOUT CMD...: like rs_spawn, but with stdin from STDIN and stdout
# to STDOUT (a FIFO, say; "" keeps rs_spawn's $RS_TMP/NAME.out). rs_spawn cannot take a
# redirection of stdin: a background command without job control gets /dev/null instead.
# Sets RS_PID, RS_OUT and RS_ERR.
cl_spawn_io() {
    local name=$1 in=$2
    RS_OUT=${3:-$RS_TMP/$name.out}
    RS_ERR=$RS_TMP/$name.err
    shift 3
    "$@" <"$in" >"$RS_OUT" 2>"$RS_ERR" &
    RS_PID=$!
    rs_track "$RS_PID"
}

# cl_wait_for PID SECONDS CMD...: rs_wait_for CMD with a deadline of SECONDS, but fails the
# test at once when PID (the consumer) exits first, instead of polling a dead process until the
# deadline. Returns 1 at the deadline so the caller can say what was missing.
cl_wait_for() {
    local pid=$1 timeout=$2
    shift 2
    CL_WAIT_PID=$pid RS_WAIT_TIMEOUT=$timeout rs_wait_for _cl_done_or_exited "$@" || return 1
    if rs_exited "$pid" && ! "$@"; then
        rs_fail "process $pid exited while waiting for: $*"
    fi
}
_cl_done_or_exited() {
    rs_exited "$CL_WAIT_PID" || "$@"
}

# cl_fail WORDS...: rs_fail with its arguments joined, for messages too long for one line
# (rs_fail reports only its first argument).
cl_fail() {
    rs_fail "$*"
}

# cl_now_ms: wall-clock milliseconds, for measuring how long something took.
cl_now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((10#$t / 1000))
}

# cl_rss_kb PID: the process's resident set size in KiB (VmRSS), or 0 when it is gone.
cl_rss_kb() {
    local v
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || true
    echo "${v:-0}"
}

# cl_stop_consumer PID [SHUTDOWN_MS [SIGNAL]]: sends SIGNAL (default TERM), then waits for
# the exit; fails unless it exits within SHUTDOWN_MS (default 5000) plus a margin (scaled for
# sanitizers). Sets RS_RC and CL_STOP_MS (how long the exit took).
cl_stop_consumer() {
    local pid=$1 shutdown_ms=${2:-5000} signal=${3:-TERM}
    local start limit_s
    # A second of margin for process teardown; four with a sanitizer (leak check, reports).
    limit_s=$(((shutdown_ms + 999) / 1000 + RS_SCALE))
    start=$(cl_now_ms)
    kill -"$signal" "$pid"
    rs_wait_exit "$pid" "$limit_s"
    # shellcheck disable=SC2034 # read by the test scripts
    CL_STOP_MS=$(($(cl_now_ms) - start))
}

# cl_assert_clean_stderr FILE: no ERROR log line, no sanitizer report, no password.
cl_assert_clean_stderr() {
    local errors
    errors=$(grep -E '^[^ ]+ ERROR ' "$1" | head -n 3) || true
    [[ -z $errors ]] || rs_fail "$(basename "$1") has ERROR lines: $errors"
    rs_assert_file_lacks "$1" "Sanitizer"
    rs_assert_file_lacks "$1" "runtime error:"
    rs_assert_file_lacks "$1" "$RS_REDIS_PASSWORD"
}

# --- the consumer group as Redis sees it -----------------------------------------------------

# cl_pending STREAM: the group's pending count (XPENDING summary), or "?" when there is no
# group yet.
cl_pending() {
    local n
    n=$(rs_cli XPENDING "$1" workers 2>/dev/null | head -n 1) || true
    [[ $n =~ ^[0-9]+$ ]] && echo "$n" || echo "?"
}

# cl_group_field STREAM FIELD: a field of group "workers" in XINFO GROUPS STREAM (lag,
# last-delivered-id, entries-read, pending, consumers); empty when absent or nil.
cl_group_field() {
    rs_cli XINFO GROUPS "$1" 2>/dev/null | awk -v want="$2" '
        prev == "name" { ours = ($0 == "workers") }
        ours && prev == want { print; exit }
        { prev = $0 }'
}

# cl_settled STREAM...: true when every STREAM has nothing pending and a lag of 0 (every entry
# delivered and acknowledged).
cl_settled() {
    local s
    for s in "$@"; do
        [[ $(cl_pending "$s") == 0 && $(cl_group_field "$s" lag) == 0 ]] || return 1
    done
}

# cl_pending_ids STREAM: the ids pending in the group, one per line (any consumer).
cl_pending_ids() {
    rs_cli XPENDING "$1" workers - + 1000000 | awk 'NR % 4 == 1'
}

# cl_group_exists STREAM: true once the consumer group exists on STREAM.
cl_group_exists() {
    [[ -n $(cl_group_field "$1" last-delivered-id) ]]
}

# --- the consumer's output -------------------------------------------------------------------

# cl_count_lines FILE STREAM: JSON lines the log handler wrote for STREAM so far.
cl_count_lines() {
    local n
    n=$(grep -c "^{\"stream\":\"$2\"," "$1" 2>/dev/null) || true
    echo "${n:-0}"
}

# cl_has_lines FILE STREAM N: true once FILE holds at least N lines for STREAM.
cl_has_lines() {
    (($(cl_count_lines "$1" "$2") >= $3))
}

# cl_handled FILE...: decodes the log handler's output and prints "stream id delivery" per
# entry, in output order. Fails the test when a line is not a JSON object of the documented
# shape.
cl_handled() {
    "$RS_PYTHON" -c "$CL_PY" handled "$@" || rs_fail "malformed consumer output in $*"
}

# cl_resp_xadd FILE STREAM COUNT [FIRST]: writes COUNT "XADD STREAM * message 'Message #N'
# type test timestamp <RFC 3339>" commands (N from FIRST, default 1) as RESP, for
# redis-cli --pipe.
cl_resp_xadd() {
    "$RS_PYTHON" -c "$CL_PY" resp-xadd "$@"
}

# cl_pipe FILE: sends a RESP file to the private server; fails on any error reply.
cl_pipe() {
    local out
    out=$(rs_cli --pipe <"$1" 2>&1) || rs_fail "redis-cli --pipe failed: $out"
    [[ $out == *"errors: 0,"* ]] || rs_fail "redis-cli --pipe reported errors: $out"
}

# cl_slow_reader COUNTFILE DELAY_MS [INPUT [COPY]]: reads lines from INPUT (a FIFO, say;
# default "-", stdin), sleeping DELAY_MS (fractions allowed) after each, and keeps the number
# read in COUNTFILE (replaced atomically every 50 lines and at EOF). With COPY, every line is
# also appended to that file as it is read.
cl_slow_reader() {
    "$RS_PYTHON" -c "$CL_PY" slow-reader "$@"
}

# cl_resp_python ARG...: runs the Python program read on stdin, with ARGs as sys.argv[1:],
# after CL_RESP_PY, so that the program can use its binary-safe Redis client.
cl_resp_python() {
    "$RS_PYTHON" -c "$CL_RESP_PY"$'\n'"$(cat)" "$@"
}

# A binary-safe Redis client for the Python sides of the tests (redis-cli's argument parsing
# is not binary-safe): Redis(port, password[, timeout]) connects to 127.0.0.1:port and
# authenticates (asserting "OK"); .command(*args) sends bytes arguments as RESP and returns
# the reply as bytes, int, None or a list of those; an error reply raises RuntimeError.
# Prepend it to a program (cl_resp_python does).
CL_RESP_PY='
import socket

class Redis:
    def __init__(self, port, password, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", int(port)), timeout=timeout)
        self.rfile = self.sock.makefile("rb")
        assert self.command(b"AUTH", password.encode()) == b"OK"

    def reply(self):
        line = self.rfile.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RuntimeError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.rfile.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line[:50])

    def command(self, *args):
        self.sock.sendall(b"*%d\r\n" % len(args) +
                          b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        return self.reply()
'

# The Python side of the helpers above: one program, a subcommand per helper.
# shellcheck disable=SC2016 # Python code, not shell
CL_PY='
import base64, datetime, json, os, sys, time

def handled(paths):
    for path in paths:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                try:
                    obj = json.loads(raw)
                    assert isinstance(obj, dict) and set(obj) == {"stream", "id", "delivery", "fields"}, "keys"
                    assert isinstance(obj["stream"], str) and isinstance(obj["id"], str), "types"
                    assert isinstance(obj["delivery"], int) and obj["delivery"] >= 1, "delivery"
                    assert isinstance(obj["fields"], dict), "fields"
                except Exception as e:
                    sys.stderr.write("%s:%d: not a valid entry line (%s): %r\n" % (path, n, e, raw[:200]))
                    sys.exit(1)
                sys.stdout.write("%s %s %d\n" % (obj["stream"], obj["id"], obj["delivery"]))

def resp(out, *args):
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))

def resp_xadd(path, stream, count, first="1"):
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(path, "wb") as out:
        for n in range(int(first), int(first) + int(count)):
            resp(out, "XADD", stream, "*", "message", "Message #%d" % n, "type", "test", "timestamp", ts)

def slow_reader(countfile, delay_ms, path="-", copy=None):
    delay, n = float(delay_ms) / 1000.0, 0
    src = sys.stdin.buffer if path == "-" else open(path, "rb")
    dst = open(copy, "wb") if copy else None
    def save():
        with open(countfile + ".tmp", "w") as f:
            f.write("%d\n" % n)
        os.replace(countfile + ".tmp", countfile)
    save()
    for line in src:
        n += 1
        if dst:
            dst.write(line)
            dst.flush()
        if n % 50 == 0:
            save()
        time.sleep(delay)
    save()

cmd, args = sys.argv[1], sys.argv[2:]
{"handled": lambda: handled(args), "resp-xadd": lambda: resp_xadd(*args),
 "slow-reader": lambda: slow_reader(*args)}[cmd]()
'
