#!/usr/bin/env bash
#
# Everything busy at once, for the ThreadSanitizer build above all (it runs in every build):
# readers, workers, the retry scheduler, the acker, the HTTP server and the trace exporter all
# work at the same time, while a reload changes a stream under load.
#
#   - four streams: ld_log (log handler), ld_discard (discard), ld_http (http handler posting
#     to a Python receiver that answers 503 to the first delivery of about one entry in
#     eight, so the retry path stays busy) and ld_exec (exec handler, a few entries: most
#     succeed, some fail once with 75 and succeed when retried, one poison entry fails with
#     75 every time and is dead-lettered after max_deliveries);
#   - three redstream-producer processes in load mode (--rate and --count bounded), one per
#     busy stream, for about LOAD_SECONDS;
#   - tracing on (sample ratio 0.9) to tests/otlp-receiver (the strict OTLP schema check);
#   - three curl clients hammering /healthz, /readyz, /streams and /metrics the whole time;
#   - a SIGHUP mid-run that changes ld_http (its old reader retires, a new one takes over)
#     and the log level (info to debug: every thread's logging sees it at once).
# Checked at the end: every id in each stream was handled at least once (ids compared: log
# output, receiver records, exec records; ld_discard by its counters), nothing is pending and
# there is no lag, the poison entry is in ld_exec:dlq, the collector got valid spans, every
# HTTP answer was 200 (503 only where the server says why and that is expected: /streams
# "busy", /readyz while ld_http's new reader takes over), and the consumer exits 0 on SIGTERM
# with no ERROR line and no sanitizer report; the producers' stderr is clean too.
#
# Under a sanitizer (RS_SLOW) the rates are halved: the run lasts as long, with fewer entries.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"
command -v curl >/dev/null || rs_fail "curl is required (Debian package curl)"

LOAD_SECONDS=12
# Messages per second per busy stream.
RATE_LOG=300
RATE_DISCARD=800
RATE_HTTP=80
if ((RS_SLOW)); then
    RATE_LOG=$((RATE_LOG / 2))
    RATE_DISCARD=$((RATE_DISCARD / 2))
    RATE_HTTP=$((RATE_HTTP / 2))
fi
N_LOG=$((RATE_LOG * LOAD_SECONDS))
N_DISCARD=$((RATE_DISCARD * LOAD_SECONDS))
N_HTTP=$((RATE_HTTP * LOAD_SECONDS))
EXEC_OK=12    # exec entries that succeed at once, per burst
EXEC_FLAKY=4  # exec entries that fail once (75), per burst
MAX_DELIVERIES=3
HTTP_CLIENTS=3
echo "# $LOAD_SECONDS s: ld_log $N_LOG, ld_discard $N_DISCARD, ld_http $N_HTTP entries," \
    "ld_exec $((3 * (EXEC_OK + EXEC_FLAKY)))+1"

# --- the OTLP collector ------------------------------------------------------------------------
RCV_DIR=$RS_SOURCE_DIR/tests/otlp-receiver
NODE=${NODE:-$(command -v node || true)}
[[ -n $NODE ]] || rs_fail "node is required (scripts/install-deps.sh installs nodejs and npm)"
if [[ ! -d $RCV_DIR/node_modules/protobufjs ]]; then
    (cd "$RCV_DIR" && timeout 120 npm ci --no-audit --no-fund >"$RS_TMP/npm.log" 2>&1) ||
        rs_fail "npm ci in $RCV_DIR failed: $(tail -n 5 "$RS_TMP/npm.log")"
fi
SPANS=$RS_TMP/otlp.spans
SPAN_ERRORS=$RS_TMP/otlp.errors
: >"$SPANS"
: >"$SPAN_ERRORS"
rs_spawn otlp "$NODE" "$RCV_DIR/receiver.js" --port-file "$RS_TMP/otlp.port" --spans "$SPANS" \
    --errors "$SPAN_ERRORS" --status 200
RS_WAIT_TIMEOUT=$((10 * RS_SCALE)) rs_wait_for test -s "$RS_TMP/otlp.port" ||
    rs_fail "the OTLP receiver did not start: $(cat "$RS_ERR")"
OTLP_PORT=$(cat "$RS_TMP/otlp.port")

# --- the webhook -------------------------------------------------------------------------------
# Answers 503 (no Retry-After) to the first delivery of entries whose id's sequence number and
# milliseconds add up to a multiple of 8; 200 otherwise. Every 200 is recorded as "id delivery".
HOOK_RECORDS=$RS_TMP/hook.records
: >"$HOOK_RECORDS"
# shellcheck disable=SC2016 # Python code, not shell
HOOK_PY='
import http.server, json, os, sys, threading
portfile, records = sys.argv[1], sys.argv[2]
lock = threading.Lock()
out = open(records, "a")

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = 400
        try:
            e = json.loads(body)
            ms, seq = e["id"].split("-")
            flaky = (int(ms) + int(seq)) % 8 == 0
            status = 503 if flaky and e["delivery"] == 1 else 200
        except Exception:
            pass
        if status == 200:
            with lock:
                out.write("%s %d\n" % (e["id"], e["delivery"]))
                out.flush()
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

srv = Server(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.replace(portfile + ".tmp", portfile)
srv.serve_forever()
'
rs_spawn hook "$RS_PYTHON" -c "$HOOK_PY" "$RS_TMP/hook.port" "$HOOK_RECORDS"
RS_WAIT_TIMEOUT=10 rs_wait_for test -s "$RS_TMP/hook.port" || rs_fail "the webhook did not start"
HOOK_PORT=$(cat "$RS_TMP/hook.port")

# --- the exec program --------------------------------------------------------------------------
EXEC_RECORDS=$RS_TMP/exec.records
: >"$EXEC_RECORDS"
JOB=$RS_TMP/job.sh
cat >"$JOB" <<EOF
#!/bin/bash
# The exec handler of $RS_TEST_NAME: fields.kind says what to do.
json=\$(cat)
case \$json in
*'"kind":"poison"'*) exit 75 ;;
*'"kind":"flaky"'*) ((REDSTREAM_DELIVERY >= 2)) || exit 75 ;;
esac
echo "\$REDSTREAM_ID \$REDSTREAM_DELIVERY" >>"$EXEC_RECORDS"
EOF
chmod +x "$JOB"

# exec_burst N: adds EXEC_OK ok and EXEC_FLAKY flaky entries to ld_exec (one redis-cli).
exec_burst() {
    local i out
    out=$(for ((i = 0; i < EXEC_OK + EXEC_FLAKY; i++)); do
        echo "XADD ld_exec * kind $( ((i < EXEC_OK)) && echo ok || echo flaky) burst $1"
    done | rs_cli) || rs_fail "XADD ld_exec failed: $out"
    rs_assert_eq $((EXEC_OK + EXEC_FLAKY)) "$(grep -cE '^[0-9]+-[0-9]+$' <<<"$out")" \
        "ids of exec burst $1"
}

# --- the consumer ------------------------------------------------------------------------------
# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
HC_PORT=$(rs_free_port)
CONF=$RS_TMP/load.conf

# write_conf HTTP_TIMEOUT_MS LEVEL: (re)writes the consumer's file, atomically.
write_conf() {
    cat >"$CONF.tmp" <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; read_count = 100;
          max_deliveries = $MAX_DELIVERIES; retry_base_ms = 50; retry_max_ms = 200;
          claim_idle_ms = 10000; };
workers = { threads = 4; queue_capacity = 256; shutdown_timeout_ms = 10000; };
health = { address = "127.0.0.1"; port = $HC_PORT; };
streams = (
  { name = "ld_log"; handler = "log"; },
  { name = "ld_discard"; handler = "discard"; },
  { name = "ld_http"; handler = "http"; url = "http://127.0.0.1:$HOOK_PORT/hook";
    timeout_ms = $1; },
  { name = "ld_exec"; handler = "exec"; command = [ "$JOB" ]; timeout_ms = 10000; }
);
tracing = { enabled = true; endpoint = "http://127.0.0.1:$OTLP_PORT/v1/traces";
            service_name = "rs-load"; sample_ratio = 0.9; };
log = { level = "$2"; };
EOF
    mv "$CONF.tmp" "$CONF"
}
write_conf 5000 info

rs_case "the consumer starts with four streams and tracing"
cl_spawn_consumer consumer "$CONF"
CPID=$RS_PID
COUT=$RS_OUT
CERR=$RS_ERR
ready() {
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$HC_PORT/readyz") \
        == 200 ]]
}
cl_wait_for "$CPID" $((10 * RS_SCALE)) ready || rs_fail "the consumer did not get ready"
rs_pass

# --- the HTTP clients --------------------------------------------------------------------------
# Each client asks for the four paths over one connection per round, until STOP exists (at
# most 100000 rounds), and writes "path status first-120-bytes-of-body" per request.
STOP=$RS_TMP/stop-clients
HAMMER=$RS_TMP/hammer.sh
cat >"$HAMMER" <<'EOF'
#!/bin/bash
port=$1 out=$2 stop=$3 dir=$4
mkdir -p "$dir"
paths=(/healthz /readyz /streams /metrics)
for ((round = 0; round < 100000; round++)); do
    [[ -e $stop ]] && break
    args=()
    for p in "${paths[@]}"; do
        args+=(-o "$dir/${p#/}" "http://127.0.0.1:$port$p")
    done
    codes=$(curl -s --max-time 5 -w '%{http_code}\n' "${args[@]}") || true
    i=0
    while read -r code; do
        p=${paths[i]}
        printf '%s %s %s\n' "$p" "$code" "$(head -c 120 "$dir/${p#/}" 2>/dev/null | tr '\n' ' ')"
        rm -f "$dir/${p#/}"
        i=$((i + 1))
    done <<<"$codes" >>"$out"
    sleep 0.01
done
EOF
chmod +x "$HAMMER"
CLIENT_PIDS=()
for ((c = 1; c <= HTTP_CLIENTS; c++)); do
    rs_spawn "client$c" bash "$HAMMER" "$HC_PORT" "$RS_TMP/client$c.log" "$STOP" "$RS_TMP/client$c"
    CLIENT_PIDS+=("$RS_PID")
done

# --- the load ----------------------------------------------------------------------------------
rs_case "three load producers, exec bursts, and a reload changing ld_http mid-run"
START_MS=$(cl_now_ms)
PRODUCER_PIDS=()
produce() {
    local name=$1 stream=$2 rate=$3 count=$4 conns=$5
    rs_spawn "$name" env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" "$RS_PRODUCER" \
        --redis-addr "127.0.0.1:$RS_REDIS_PORT" --stream "$stream" --rate "$rate" \
        --count "$count" --connections "$conns" --pipeline 4
    PRODUCER_PIDS+=("$RS_PID")
}
produce prod-log ld_log "$RATE_LOG" "$N_LOG" 1
produce prod-discard ld_discard "$RATE_DISCARD" "$N_DISCARD" 2
produce prod-http ld_http "$RATE_HTTP" "$N_HTTP" 1

exec_burst 1
rs_cli XADD ld_exec '*' kind poison >"$RS_TMP/poison.id"
POISON_ID=$(cat "$RS_TMP/poison.id")
rs_assert_match '^[0-9]+-[0-9]+$' "$POISON_ID" "poison id"

# The reload, once a third of ld_log's entries went through.
cl_wait_for "$CPID" $((LOAD_SECONDS * RS_SCALE)) cl_has_lines "$COUT" ld_log $((N_LOG / 3)) ||
    rs_fail "ld_log got only $(cl_count_lines "$COUT" ld_log) of $((N_LOG / 3)) entries"
exec_burst 2
write_conf 4000 debug
kill -HUP "$CPID"
cl_wait_for "$CPID" $((10 * RS_SCALE)) grep -qF \
    "stream=ld_http now handled with its new settings (handler http)" "$CERR" ||
    rs_fail "ld_http was not taken over by its new settings"
RELOADED_MS=$(cl_now_ms)
exec_burst 3

# The producers end by themselves (--count at --rate).
for pid in "${PRODUCER_PIDS[@]}"; do
    rs_wait_exit "$pid" $((LOAD_SECONDS * 3 * RS_SCALE))
    rs_assert_exit 0
done
echo "# producers done after $(($(cl_now_ms) - START_MS)) ms (reload took effect at" \
    "$((RELOADED_MS - START_MS)) ms)"
for name in prod-log prod-discard prod-http; do
    rs_assert_file_contains "$RS_TMP/$name.out" "result: sent="
    rs_assert_file_contains "$RS_TMP/$name.out" " errors=0 "
    rs_assert_file_lacks "$RS_TMP/$name.err" "Sanitizer"
    rs_assert_file_lacks "$RS_TMP/$name.err" "runtime error"
done
rs_assert_eq "$N_LOG" "$(rs_cli XLEN ld_log)" "XLEN ld_log"
rs_assert_eq "$N_DISCARD" "$(rs_cli XLEN ld_discard)" "XLEN ld_discard"
rs_assert_eq "$N_HTTP" "$(rs_cli XLEN ld_http)" "XLEN ld_http"
rs_pass

rs_case "everything is settled: nothing pending, no lag, the poison entry dead-lettered"
dead_lettered() {
    rs_cli XRANGE ld_exec:dlq - + 2>/dev/null | grep -qxF -- "$POISON_ID"
}
all_settled() {
    cl_settled ld_log ld_discard ld_http ld_exec && dead_lettered
}
cl_wait_for "$CPID" $((30 * RS_SCALE)) all_settled ||
    cl_fail "not settled: pending log $(cl_pending ld_log) discard $(cl_pending ld_discard)" \
        "http $(cl_pending ld_http) exec $(cl_pending ld_exec); lag log" \
        "$(cl_group_field ld_log lag) discard $(cl_group_field ld_discard lag) http" \
        "$(cl_group_field ld_http lag) exec $(cl_group_field ld_exec lag);" \
        "dead letters: $(rs_cli XLEN ld_exec:dlq)"
rs_assert_eq 1 "$(rs_cli XLEN ld_exec:dlq)" "dead letters"
rs_cli --no-raw XRANGE ld_exec:dlq - + >"$RS_TMP/dlq.txt"
grep -A1 -F '"redstream.delivery_count"' "$RS_TMP/dlq.txt" | grep -qF "\"$MAX_DELIVERIES\"" ||
    rs_fail "the dead letter does not say $MAX_DELIVERIES deliveries: $(cat "$RS_TMP/dlq.txt")"
rs_pass

# --- the HTTP clients' view --------------------------------------------------------------------
rs_case "the HTTP server answered throughout: 200, or 503 only where it says why"
touch "$STOP"
for pid in "${CLIENT_PIDS[@]}"; do
    rs_wait_exit "$pid" $((10 * RS_SCALE))
done
cat "$RS_TMP"/client*.log >"$RS_TMP/http.log"
for p in /healthz /readyz /streams /metrics; do
    n=$(grep -c "^$p 200 " "$RS_TMP/http.log") || true
    rs_assert_ge $((HTTP_CLIENTS * 5)) "$n" "200 answers to $p"
done
# Justified 503s: /streams when two requests already ask Redis, /readyz while a reload's new
# reader for ld_http is starting. Anything else (000 = no answer, 500, a 503 on /healthz or
# /metrics) fails.
bad=$(awk '$2 != 200 &&
    !($1 == "/streams" && $2 == 503 && /busy: other requests are asking Redis/) &&
    !($1 == "/readyz" && $2 == 503 && /ld_http/)' "$RS_TMP/http.log" | head -n 3)
[[ -z $bad ]] || rs_fail "unexpected HTTP answers: $bad"
echo "# HTTP: $(wc -l <"$RS_TMP/http.log") requests;" \
    "$(awk '$2 != 200' "$RS_TMP/http.log" | wc -l) justified 503s"
rs_pass

rs_case "every published id was handled at least once"
rs_cli XRANGE ld_log - + | grep -E '^[0-9]+-[0-9]+$' | sort -u >"$RS_TMP/ids.log"
rs_cli XRANGE ld_http - + | grep -E '^[0-9]+-[0-9]+$' | sort -u >"$RS_TMP/ids.http"
rs_cli XRANGE ld_exec - + | grep -E '^[0-9]+-[0-9]+$' | grep -vxF -- "$POISON_ID" |
    sort -u >"$RS_TMP/ids.exec"
cl_handled "$COUT" | awk '$1 == "ld_log" { print $2 }' | sort -u >"$RS_TMP/handled.log"
awk '{ print $1 }' "$HOOK_RECORDS" | sort -u >"$RS_TMP/handled.http"
awk '{ print $1 }' "$EXEC_RECORDS" | sort -u >"$RS_TMP/handled.exec"
for s in log http exec; do
    missing=$(comm -23 "$RS_TMP/ids.$s" "$RS_TMP/handled.$s" | head -n 3)
    [[ -z $missing ]] ||
        rs_fail "ld_$s: published but never handled: $missing ($(comm -23 "$RS_TMP/ids.$s" \
            "$RS_TMP/handled.$s" | wc -l) in all)"
    extra=$(comm -13 "$RS_TMP/ids.$s" "$RS_TMP/handled.$s" | head -n 3)
    [[ -z $extra ]] || rs_fail "ld_$s: handled ids that were never published: $extra"
done
rs_assert_eq "$N_LOG" "$(wc -l <"$RS_TMP/handled.log")" "distinct ld_log ids handled"
rs_assert_eq "$N_HTTP" "$(wc -l <"$RS_TMP/handled.http")" "distinct ld_http ids handled"
rs_assert_eq $((3 * (EXEC_OK + EXEC_FLAKY))) "$(wc -l <"$RS_TMP/handled.exec")" \
    "distinct ld_exec ids handled"
# The flaky exec entries succeeded on their second delivery; some webhook calls were retried.
rs_assert_eq $((3 * EXEC_FLAKY)) "$(awk '$2 == 2' "$EXEC_RECORDS" | wc -l)" \
    "exec entries that succeeded when retried"
retried_http=$(awk '$2 >= 2' "$HOOK_RECORDS" | wc -l)
rs_assert_ge 1 "$retried_http" "webhook calls that succeeded when retried"
# ld_discard leaves no trace but its counters: every entry succeeded and was acknowledged.
curl -s --max-time 5 -o "$RS_TMP/metrics.txt" "http://127.0.0.1:$HC_PORT/metrics" ||
    rs_fail "GET /metrics failed"
for series in succeeded acked; do
    got=$(awk -v k="redstream_messages_${series}_total{stream=\"ld_discard\"}" \
        '$1 == k { print $2 }' "$RS_TMP/metrics.txt")
    rs_assert_ge "$N_DISCARD" "${got:-0}" "ld_discard $series"
done
echo "# $retried_http webhook calls succeeded on a retry"
rs_pass

rs_case "the collector got valid spans of every stream"
exported() {
    curl -s --max-time 5 "http://127.0.0.1:$HC_PORT/metrics" |
        awk '$1 == "redstream_trace_spans_exported_total" { print $2 }'
}
spans_in() {
    local n e
    n=$(wc -l <"$SPANS")
    e=$(exported)
    [[ $e =~ ^[0-9]+$ ]] && ((n > 0 && n >= e))
}
cl_wait_for "$CPID" $((10 * RS_SCALE)) spans_in || rs_fail "spans exported but not received"
[[ ! -s $SPAN_ERRORS ]] || rs_fail "the receiver rejected a body: $(head -n 3 "$SPAN_ERRORS")"
for s in ld_log ld_discard ld_http ld_exec; do
    grep -qF "\"name\":\"$s process\"" "$SPANS" || rs_fail "no span of $s"
done
# At ratio 0.9, a sixth of the entries handled is a very safe floor.
total=$((N_LOG + N_DISCARD + N_HTTP))
rs_assert_ge $((total / 6)) "$(wc -l <"$SPANS")" "spans received"
echo "# $(wc -l <"$SPANS") spans received for $total entries"
rs_pass

rs_case "SIGTERM: exit 0, no ERROR line, no sanitizer report"
cl_stop_consumer "$CPID" 10000
rs_assert_exit 0
cl_assert_clean_stderr "$CERR"
rs_assert_file_lacks "$CERR" "WARNING: ThreadSanitizer"
rs_assert_file_lacks "$CERR" "runtime error"
rs_assert_file_contains "$CERR" "stopped in"
rs_pass
