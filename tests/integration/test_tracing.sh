#!/usr/bin/env bash
# Tracing: the producer's PRODUCER spans and the consumer's CONSUMER spans reach an OTLP/HTTP
# collector as valid OTLP JSON, linked through the entries' `traceparent` field; a collector
# that is down or answers 503 does not slow message handling, and /metrics accounts for every
# span (exported or dropped).
#
# The collector is tests/otlp-receiver/receiver.js (Node), which checks every body against the
# official OTLP protobuf schema and answers 400 (recording why) on any unknown or mistyped
# field. Its npm packages are installed with `npm ci` when node_modules is missing.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/health_lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/handlers_lib.sh"

RCV_DIR=$RS_SOURCE_DIR/tests/otlp-receiver
NODE=${NODE:-$(command -v node || true)}
[[ -n $NODE ]] || rs_fail "node is required (scripts/install-deps.sh installs nodejs and npm)"
if [[ ! -d $RCV_DIR/node_modules/protobufjs ]]; then
    (cd "$RCV_DIR" && timeout 120 npm ci --no-audit --no-fund >"$RS_TMP/npm.log" 2>&1) ||
        rs_fail "npm ci in $RCV_DIR failed: $(tail -n 5 "$RS_TMP/npm.log")"
fi

# start_receiver NAME STATUS: starts a receiver answering STATUS (after validating) and sets
# RCV_PORT, RCV_SPANS (accepted spans, one JSON line each) and RCV_ERRORS (schema errors).
start_receiver() {
    local name=$1 status=$2
    RCV_SPANS=$RS_TMP/$name.spans
    RCV_ERRORS=$RS_TMP/$name.errors
    : >"$RCV_SPANS"
    : >"$RCV_ERRORS"
    rs_spawn "$name" "$NODE" "$RCV_DIR/receiver.js" --port-file "$RS_TMP/$name.port" \
        --spans "$RCV_SPANS" --errors "$RCV_ERRORS" --status "$status"
    RS_WAIT_TIMEOUT=$((10 * RS_SCALE)) rs_wait_for test -s "$RS_TMP/$name.port" ||
        rs_fail "receiver $name did not start: $(cat "$RS_ERR")"
    RCV_PORT=$(cat "$RS_TMP/$name.port")
}

# tracing_config NAME ENDPOINT STREAM HANDLER [LEVEL]: a consumer (and producer) configuration
# with tracing on; sets CONF and HC_PORT (the consumer's health port).
tracing_config() {
    HC_PORT=$(rs_free_port)
    CONF=$(cl_config "$1" streams="$3:$4" health_port="$HC_PORT" level="${5:-info}")
    cat >>"$CONF" <<CONF
tracing = { enabled = true; endpoint = "$2"; service_name = "rs-test"; sample_ratio = 1.0; };
producer = { stream = "$3"; type = "test"; interval_ms = 0; };
CONF
}

no_schema_errors() {
    [[ ! -s $1 ]] || rs_fail "the receiver rejected a body: $(head -n 3 "$1")"
}

span_lines() {
    local n
    n=$(wc -l <"$1")
    ((n >= $2))
}

rs_start_redis

# --- end to end ------------------------------------------------------------------------------

rs_case "100 published entries give 100 traces of a producer span and its consumer child"
start_receiver rcv-e2e 200
E2E_SPANS=$RCV_SPANS
E2E_ERRORS=$RCV_ERRORS
tracing_config e2e "http://127.0.0.1:$RCV_PORT/v1/traces" events discard debug
cl_spawn_consumer e2e-consumer "$CONF"
CPID=$RS_PID
cl_wait_for "$CPID" $((10 * RS_SCALE)) cl_group_exists events || rs_fail "no group"
rs_run producer "$RS_PRODUCER" -c "$CONF" --count 100 --interval 0
rs_assert_exit 0
cl_assert_clean_stderr "$RS_ERR"
# Two more entries the consumer must trace as new roots: an invalid traceparent (ignored, with
# a debug line) and none at all.
rs_cli XADD events '*' message bad type test traceparent 00-zz-zz-01 >/dev/null
rs_cli XADD events '*' message none type test >/dev/null
cl_wait_for "$CPID" $((20 * RS_SCALE)) cl_settled events || rs_fail "entries not handled"
cl_wait_for "$CPID" $((20 * RS_SCALE)) span_lines "$E2E_SPANS" 202 ||
    rs_fail "the receiver got $(wc -l <"$E2E_SPANS") spans, expected 202"
cl_stop_consumer "$CPID"
rs_assert_exit 0
cl_assert_clean_stderr "$RS_TMP/e2e-consumer.err"
rs_assert_file_contains "$RS_TMP/e2e-consumer.err" "invalid traceparent field ignored"
no_schema_errors "$E2E_ERRORS"
# Every stored entry's traceparent names its producer span.
rs_cli --no-raw XRANGE events - + COUNT 100 >"$RS_TMP/entries.txt"
"$RS_PYTHON" - "$E2E_SPANS" "$RS_TMP/entries.txt" <<'PY' || rs_fail "span check failed"
import json, re, sys
spans = [json.loads(l) for l in open(sys.argv[1])]
def fail(msg):
    print(msg, file=sys.stderr); sys.exit(1)
prod = [s for s in spans if s["kind"] == 4]
cons = [s for s in spans if s["kind"] == 5]
if len(prod) != 100 or len(cons) != 102 or len(spans) != 202:
    fail(f"{len(prod)} producer, {len(cons)} consumer spans")
by_span = {s["spanId"]: s for s in prod}
if len({s["traceId"] for s in prod}) != 100:
    fail("producer spans do not have 100 distinct traces")
roots = 0
for s in spans:
    r = s["resource"]
    if r.get("service.name") != "rs-test" or not r.get("service.version") or not r.get("host.name"):
        fail(f"resource {r}")
    a = s["attributes"]
    if a.get("messaging.system") != "redis" or a.get("messaging.destination.name") != "events":
        fail(f"attributes {a}")
    if not re.fullmatch(r"\d+-\d+", a.get("messaging.message.id", "")):
        fail(f"message id {a}")
    if int(s["end"]) < int(s["start"]) or int(s["start"]) < 1600000000 * 10**9:
        fail(f"times {s['start']} {s['end']}")
for s in prod:
    if s["name"] != "events publish" or s["parentSpanId"] or s["attributes"]["messaging.operation.type"] != "send":
        fail(f"producer span {s}")
for s in cons:
    a = s["attributes"]
    if s["name"] != "events process" or a["messaging.operation.type"] != "process" \
            or a.get("messaging.consumer.group.name") != "workers" \
            or a.get("messaging.redis.delivery_count") != 1:
        fail(f"consumer span {s}")
    if not s["parentSpanId"]:
        roots += 1
        continue
    p = by_span.get(s["parentSpanId"])
    if p is None or p["traceId"] != s["traceId"]:
        fail(f"consumer span {s['spanId']} has no producer parent")
    if p["attributes"]["messaging.message.id"] != a["messaging.message.id"]:
        fail("parent and child name different entries")
if roots != 2:
    fail(f"{roots} consumer roots, expected 2")
if len({s["parentSpanId"] for s in cons if s["parentSpanId"]}) != 100:
    fail("not one consumer child per producer span")
# The entries carry version-00 sampled traceparents of their producer spans.
text = open(sys.argv[2]).read()
tps = re.findall(r'"traceparent"\s*\n\s*\d+\) "([^"]+)"', text)
if len(tps) != 100:
    fail(f"{len(tps)} traceparent fields in the first 100 entries")
for tp in tps:
    v, t, p, f = tp.split("-")
    if v != "00" or f != "01" or p not in by_span or by_span[p]["traceId"] != t:
        fail(f"traceparent {tp} names no producer span")
PY
rs_pass

# --- the webhook gets the consumer span's context ---------------------------------------------

rs_case "the http handler sends the consumer span's traceparent to the webhook"
hl_start_receiver webhook
WH_CONF=$(rs_write_config webhook <<CONF
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; };
health = { address = "127.0.0.1"; port = $(rs_free_port); };
streams = ( { name = "hooks"; handler = "http"; url = "http://127.0.0.1:$HL_RECEIVER_PORT/h"; } );
tracing = { enabled = true; endpoint = "http://127.0.0.1:$(cat "$RS_TMP/rcv-e2e.port")/v1/traces"; };
CONF
)
cl_spawn_consumer webhook-consumer "$WH_CONF"
CPID=$RS_PID
PARENT=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01
WH_ID=$(rs_cli XADD hooks '*' action ok traceparent "$PARENT")
cl_wait_for "$CPID" $((10 * RS_SCALE)) hl_has_request hooks "$WH_ID" || rs_fail "no webhook call"
cl_stop_consumer "$CPID"
rs_assert_exit 0
cl_assert_clean_stderr "$RS_TMP/webhook-consumer.err"
hl_records_for hooks "$WH_ID" >"$RS_TMP/wh-request.jsonl"
"$RS_PYTHON" - "$RS_TMP/wh-request.jsonl" "$E2E_SPANS" <<'PY' || rs_fail "webhook traceparent wrong"
import json, sys
r = json.loads(open(sys.argv[1]).readline())
tp = [v for k, v in r["headers"] if k.lower() == "traceparent"]
assert len(tp) == 1, r["headers"]
v, t, s, f = tp[0].split("-")
assert (v, t, f) == ("00", "0af7651916cd43dd8448eb211c80319c", "01"), tp
assert s != "b7ad6b7169203331", "the webhook must get the consumer span, not the producer's"
spans = [json.loads(l) for l in open(sys.argv[2])]
mine = [x for x in spans if x["spanId"] == s]
assert len(mine) == 1 and mine[0]["parentSpanId"] == "b7ad6b7169203331", mine
assert mine[0]["name"] == "hooks process" and mine[0]["traceId"] == t, mine
PY
no_schema_errors "$E2E_ERRORS"
rs_pass

# --- a collector that is away does not slow handling -----------------------------------------

N=6000
# run_load NAME STREAM ENDPOINT: handles N untraced-by-producer entries with tracing to
# ENDPOINT, sets LOAD_MS (start to all settled), LOAD_EXPORTED and LOAD_DROPPED (from /metrics
# once settled), LOAD_CPID and LOAD_ERR; leaves the consumer running.
run_load() {
    local name=$1 stream=$2 endpoint=$3
    cl_resp_xadd "$RS_TMP/$stream.resp" "$stream" "$N"
    cl_pipe "$RS_TMP/$stream.resp"
    tracing_config "$name" "$endpoint" "$stream" discard
    local start
    start=$(cl_now_ms)
    cl_spawn_consumer "$name" "$CONF"
    LOAD_CPID=$RS_PID
    LOAD_ERR=$RS_ERR
    cl_wait_for "$LOAD_CPID" $((30 * RS_SCALE)) cl_settled "$stream" ||
        rs_fail "$name: $N entries not handled"
    LOAD_MS=$(($(cl_now_ms) - start))
}

# metrics_now: reads the two span counters from /metrics into LOAD_EXPORTED and LOAD_DROPPED.
metrics_now() {
    hc_expect GET /metrics 200
    LOAD_EXPORTED=$(hc_sample "$HC_BODY" redstream_trace_spans_exported_total)
    LOAD_DROPPED=$(hc_sample "$HC_BODY" redstream_trace_spans_dropped_total)
}

spans_accounted_are() {
    metrics_now
    ((LOAD_EXPORTED + LOAD_DROPPED == $1))
}

# A burst of N entries (all waiting before the consumer starts) is handled faster than spans
# can be sent, so the bounded buffer may overflow even towards a healthy collector: what was
# not exported must then show up as dropped, and what was exported must have arrived.
rs_case "a healthy collector: $N handled entries' spans are exported or counted as dropped"
start_receiver rcv-ok 200
OK_SPANS=$RCV_SPANS
run_load load-ok s_ok "http://127.0.0.1:$RCV_PORT/v1/traces"
OK_MS=$LOAD_MS
cl_wait_for "$LOAD_CPID" $((20 * RS_SCALE)) spans_accounted_are "$N" ||
    rs_fail "exported $LOAD_EXPORTED + dropped $LOAD_DROPPED is not $N"
rs_assert_ge 4096 "$LOAD_EXPORTED" "spans exported"
cl_stop_consumer "$LOAD_CPID"
rs_assert_exit 0
cl_assert_clean_stderr "$LOAD_ERR"
rs_assert_eq "$LOAD_EXPORTED" "$(grep -c '"s_ok process"' "$OK_SPANS")" "spans the receiver got"
no_schema_errors "$RCV_ERRORS"
echo "# healthy: $N entries in $OK_MS ms, $LOAD_EXPORTED spans exported, $LOAD_DROPPED dropped"
rs_pass

# check_lossy NAME STREAM ENDPOINT: the collector never accepts: handling keeps its pace, the
# buffer overflows into dropped spans, and at shutdown every span is accounted as dropped.
check_lossy() {
    run_load "$1" "$2" "$3"
    metrics_now
    rs_assert_eq 0 "$LOAD_EXPORTED" "spans exported"
    # The buffer holds RS_TRACE_BUFFER_SPANS (4096) plus one batch (512) being retried.
    rs_assert_ge $((N - 4096 - 512)) "$LOAD_DROPPED" "spans dropped while running"
    # Handling rate against the healthy run: at least half of it (startup noise aside).
    if ((LOAD_MS > 2 * OK_MS && LOAD_MS - OK_MS > 1000 * RS_SCALE)); then
        rs_fail "$1: $N entries took $LOAD_MS ms, against $OK_MS ms with a healthy collector"
    fi
    cl_stop_consumer "$LOAD_CPID"
    rs_assert_exit 0
    cl_assert_clean_stderr "$LOAD_ERR"
    # The exporter's last word: nothing exported, every span dropped.
    rs_assert_file_contains "$LOAD_ERR" "stopped: 0 spans exported, $N dropped"
    echo "# $1: $N entries in $LOAD_MS ms (healthy collector: $OK_MS ms)"
}

rs_case "a collector that is down: same pace, every span counted as dropped"
check_lossy load-down s_down "http://127.0.0.1:$(rs_free_port)/v1/traces"
rs_pass

rs_case "a collector answering 503: same pace, retried, every span counted as dropped"
start_receiver rcv-503 503
check_lossy load-503 s_503 "http://127.0.0.1:$RCV_PORT/v1/traces"
no_schema_errors "$RCV_ERRORS"
rs_pass
