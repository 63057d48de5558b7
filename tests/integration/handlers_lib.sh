# shellcheck shell=bash disable=SC2034 # variables here are used by the sourcing scripts
#
# Helpers for the handler integration tests (test_handler_*.sh). Source it after lib.sh, whose
# temp directory, trap, private redis-server and assertions it builds on:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     source "$(dirname "${BASH_SOURCE[0]}")/handlers_lib.sh"
#
# It adds: a consumer configuration with hand-written stream entries, starting and stopping
# the consumer, adding entries, what became of one entry (acknowledged, pending, dead-
# lettered) and how the consumer classified its failure, a zombie check, and an HTTP receiver
# for webhooks.
#
# Failure classification is read from the consumer's log so the tests hold both before and
# after retries and dead letters exist: a retryable failure is logged by the worker as
# "handler K failed (retryable): ERROR; left pending" (or, with retries, "handler K failed:
# ERROR; retrying in N ms"); a permanent one as "handler K failed (permanent): ERROR" (or,
# with dead letters, "dead-lettered to S:dlq as ID after N deliveries: ERROR"). Either way a
# failed entry is never acknowledged away: it is pending, or it is in the dead-letter stream.
#
# Environment, beyond lib.sh's:
#   RS_SLOW     1 when built with ASan or TSan (guessed from RS_BUILD_DIR ending in -asan or
#               -tsan, or its CMakeCache.txt); deadlines are multiplied by RS_SCALE and the
#               scripts scale their work counts down.
#   RS_PYTHON   Python 3 for JSON and the HTTP receiver (stdlib only); default /usr/bin/python3.

RS_CONSUMER=$RS_BUILD_DIR/redstream-consumer
RS_PYTHON=${RS_PYTHON:-/usr/bin/python3}
[[ -x $RS_PYTHON ]] || RS_PYTHON=python3

# The logger switches to syslog prefixes under systemd; the checks expect plain lines.
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
if ((RS_SLOW)); then RS_SCALE=4; else RS_SCALE=1; fi

[[ -x $RS_CONSUMER ]] || rs_fail "$RS_CONSUMER not built"

# --- the consumer ----------------------------------------------------------------------------

# hl_config NAME THREADS STREAM_ENTRIES: writes a consumer configuration to $RS_TMP/NAME.conf
# and prints its path. STREAM_ENTRIES is the libconfig text inside `streams = ( ... );`.
# max_deliveries is high so that, once retries exist, an entry that keeps failing is still
# pending (retried) rather than dead-lettered while a test looks at it.
hl_config() {
    rs_write_config "$1" <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; max_deliveries = 1000; };
workers = { threads = $2; queue_capacity = 64; shutdown_timeout_ms = 5000; };
health = { port = $(rs_free_port); };
streams = (
$3
);
log = { level = "info"; };
EOF
}

# hl_spawn_consumer NAME CONF [ENV=VALUE...]: starts redstream-consumer -c CONF with the given
# extra environment; output in $RS_TMP/NAME.{out,err}. Sets RS_PID, RS_OUT, RS_ERR.
hl_spawn_consumer() {
    local name=$1 conf=$2
    shift 2
    rs_spawn "$name" env "$@" "$RS_CONSUMER" -c "$conf"
}

# hl_wait PID SECONDS CMD...: rs_wait_for CMD with a deadline of SECONDS (scaled for
# sanitizers), failing at once if PID exits first. Returns 1 at the deadline.
hl_wait() {
    local pid=$1 timeout=$(($2 * RS_SCALE))
    shift 2
    HL_WAIT_PID=$pid RS_WAIT_TIMEOUT=$timeout rs_wait_for _hl_done_or_exited "$@" || return 1
    if rs_exited "$pid" && ! "$@"; then
        rs_fail "the consumer (pid $pid) exited while waiting for: $*"
    fi
}
_hl_done_or_exited() {
    rs_exited "$HL_WAIT_PID" || "$@"
}

# hl_stop_consumer PID: SIGTERM; it must exit 0 within shutdown_timeout_ms (5 s) plus margin.
hl_stop_consumer() {
    kill -TERM "$1"
    rs_wait_exit "$1" $((5 + 2 * RS_SCALE))
    rs_assert_exit 0
}

# hl_assert_clean_stderr FILE: no ERROR line, no sanitizer report, no Redis password.
hl_assert_clean_stderr() {
    local errors
    errors=$(grep -E '^[^ ]+ ERROR ' "$1" | head -n 3) || true
    [[ -z $errors ]] || rs_fail "$(basename "$1") has ERROR lines: $errors"
    rs_assert_file_lacks "$1" "Sanitizer"
    rs_assert_file_lacks "$1" "runtime error:"
    rs_assert_file_lacks "$1" "$RS_REDIS_PASSWORD"
}

# hl_children_zombies PID: prints the zombie children of PID (pid and command), if any.
hl_children_zombies() {
    ps --ppid "$1" -o pid=,stat=,comm= 2>/dev/null | awk '$2 ~ /^Z/' || true
}

# --- entries ---------------------------------------------------------------------------------

# hl_xadd STREAM FIELD VALUE [FIELD VALUE...]: adds an entry and prints its id.
hl_xadd() {
    local stream=$1 id
    shift
    id=$(rs_cli XADD "$stream" '*' "$@") || rs_fail "XADD $stream failed: $id"
    [[ $id =~ ^[0-9]+-[0-9]+$ ]] || rs_fail "XADD $stream returned '$id'"
    echo "$id"
}

# hl_pending STREAM ID: true while ID is pending in group "workers".
hl_pending() {
    [[ -n $(rs_cli XPENDING "$1" workers "$2" "$2" 1 2>/dev/null) ]]
}

# hl_dead_lettered STREAM ID: true when ID's dead letter is in STREAM:dlq.
hl_dead_lettered() {
    rs_cli XRANGE "$1:dlq" - + 2>/dev/null | grep -qxF -- "$2"
}

# hl_failed_kept STREAM ID: a failed entry was not acknowledged away: still pending, or
# dead-lettered.
hl_failed_kept() {
    hl_pending "$1" "$2" || hl_dead_lettered "$1" "$2"
}

# hl_delivered STREAM ID: true once the group has read past ID (last-delivered-id >= ID).
hl_delivered() {
    local last
    last=$(rs_cli XINFO GROUPS "$1" 2>/dev/null | awk '
        prev == "name" { ours = ($0 == "workers") }
        ours && prev == "last-delivered-id" { print; exit }
        { prev = $0 }')
    [[ -n $last ]] || return 1
    local lm=${last%-*} ls=${last#*-} im=${2%-*} is=${2#*-}
    ((lm > im || (lm == im && ls >= is)))
}

# hl_acked STREAM ID: delivered, not pending and not dead-lettered.
hl_acked() {
    hl_delivered "$1" "$2" && ! hl_pending "$1" "$2" && ! hl_dead_lettered "$1" "$2"
}

# hl_logged_retryable ERRFILE KIND ID TEXT: the worker logged ID's failure as retryable, with
# TEXT (a fixed string) in the error.
hl_logged_retryable() {
    grep -F -- "id=$3 " "$1" 2>/dev/null | grep -F -- "handler $2 failed" | grep -F -- "$4" |
        grep -qE 'failed \(retryable\): |; retrying in [0-9]+ ms|too many retries waiting'
}

# hl_logged_permanent ERRFILE KIND ID TEXT: ID's failure was logged as permanent (by the
# worker, or by the acker dead-lettering it at once), with TEXT in the error.
hl_logged_permanent() {
    grep -F -- "id=$3 " "$1" 2>/dev/null | grep -F -- "$4" |
        grep -qE "handler $2 failed \(permanent\): | dead-lettered to [^ ]+ as [^ ]+ after 1 deliveries: "
}

# hl_log_lines ERRFILE ID: the log lines about ID (for failure messages).
hl_log_lines() {
    grep -F -- "id=$2 " "$1" 2>/dev/null | tail -n 5 || true
}

# --- HTTP receiver ---------------------------------------------------------------------------

# hl_start_receiver NAME: starts an HTTP/1.1 server on 127.0.0.1 (a free port, chosen by the
# kernel) that keeps connections alive and answers each request as the JSON body's
# fields.action says:
#     ok (or none)  200
#     unavailable   503 with Retry-After: 1
#     ratelimit     429 with Retry-After as an HTTP-date 2 s ahead
#     missing       404
#     moved         301 with a Location (not followed: permanent)
#     stall         sleeps 5 s before answering 200 (past any test's timeout_ms)
# Each request is recorded, before the answer, as one JSON line in $RS_TMP/NAME.jsonl:
# {"conn": N, "method", "path", "headers": [[name, value]...], "body": text}, N numbering
# the TCP connections in accept order. Sets HL_RECEIVER_PID, HL_RECEIVER_PORT and
# HL_RECORDS.
hl_start_receiver() {
    local portfile=$RS_TMP/$1.port
    HL_RECORDS=$RS_TMP/$1.jsonl
    : >"$HL_RECORDS"
    rs_spawn "$1" "$RS_PYTHON" -c "$HL_RECEIVER_PY" "$portfile" "$HL_RECORDS"
    HL_RECEIVER_PID=$RS_PID
    RS_WAIT_TIMEOUT=10 rs_wait_for test -s "$portfile" || rs_fail "the HTTP receiver did not start"
    HL_RECEIVER_PORT=$(cat "$portfile")
}

# hl_records_for STREAM ID: the receiver's records of requests carrying ID of STREAM.
hl_records_for() {
    "$RS_PYTHON" - "$HL_RECORDS" "$1" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    try:
        b = json.loads(r["body"])
    except ValueError:
        continue
    if b.get("stream") == sys.argv[2] and b.get("id") == sys.argv[3]:
        print(line, end="")
PY
}

# hl_has_request STREAM ID: true once the receiver recorded a request for ID.
hl_has_request() {
    [[ -n $(hl_records_for "$1" "$2") ]]
}

# shellcheck disable=SC2016 # Python code, not shell
HL_RECEIVER_PY='
import http.server, json, socketserver, sys, threading, time
from email.utils import formatdate

portfile, records = sys.argv[1], sys.argv[2]
lock = threading.Lock()
conns = [0]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client closes

    def setup(self):
        super().setup()
        with lock:
            conns[0] += 1
            self.conn = conns[0]

    def log_message(self, *args):
        pass

    def answer(self, status, headers=(), body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        text = body.decode("utf-8", "replace")
        rec = {"conn": self.conn, "method": self.command, "path": self.path,
               "headers": [[k, v] for k, v in self.headers.items()], "body": text}
        with lock:
            with open(records, "a") as f:
                f.write(json.dumps(rec) + "\n")
        try:
            action = json.loads(text)["fields"].get("action", "ok")
        except Exception:
            action = "ok"
        try:
            if action == "unavailable":
                self.answer(503, [("Retry-After", "1")], b"try later\n")
            elif action == "ratelimit":
                self.answer(429, [("Retry-After", formatdate(time.time() + 2, usegmt=True))])
            elif action == "missing":
                self.answer(404, body=b"no such hook\n")
            elif action == "moved":
                self.answer(301, [("Location", "http://127.0.0.1:1/elsewhere")])
            elif action == "stall":
                time.sleep(5)
                self.answer(200, body=b"late\n")
            else:
                self.answer(200, body=b"ok\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_PUT = do_POST
    do_PATCH = do_POST

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

srv = Server(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
import os
os.replace(portfile + ".tmp", portfile)
srv.serve_forever()
'
