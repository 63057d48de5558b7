#!/usr/bin/env bash
#
# The http handler against a private redis-server and an HTTP/1.1 receiver on 127.0.0.1
# (handlers_lib.sh) that answers as each entry's "action" field says and records every
# request with the TCP connection it came on. Checked: 2xx acknowledges; 503 (with
# Retry-After), 429, a stalled response past timeout_ms and a refused connection are
# retryable; 404 and a redirect are permanent; failures are never acknowledged; each request
# carries the entry's JSON, Content-Type, Idempotency-Key: <stream>/<id> and the configured
# headers with the configured method; header values stay out of the log; and with 4 workers a
# few hundred entries travel over at most 4 kept-alive connections.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/handlers_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/handlers_lib.sh"

if ((RS_SLOW)); then BULK=100; else BULK=200; fi
TOKEN=tok-$RANDOM$RANDOM # a header value that must never be logged

rs_start_redis
hl_start_receiver receiver
url=http://127.0.0.1:$HL_RECEIVER_PORT
dead_port=$(rs_free_port)
conf=$(hl_config http 4 "
  { name = \"hooks\"; handler = \"http\"; url = \"$url/hooks?x=1\";
    headers = [ \"Authorization: Bearer $TOKEN\", \"X-Tenant: blue\" ]; },
  { name = \"slow\"; handler = \"http\"; url = \"$url/slow\"; method = \"PUT\"; timeout_ms = 1000; },
  { name = \"down\"; handler = \"http\"; url = \"http://127.0.0.1:$dead_port/\"; timeout_ms = 2000; },
  { name = \"bulk\"; handler = \"http\"; url = \"$url/bulk\"; }")

rs_case "--check-config shows the URL and the header names, never a header value"
rs_run check "$RS_CONSUMER" -c "$conf" --check-config
rs_assert_exit 0
rs_assert_file_contains "$RS_OUT" "POST $url/hooks?x=1, timeout 10000 ms, headers Authorization, X-Tenant"
rs_assert_file_contains "$RS_OUT" "PUT $url/slow, timeout 1000 ms"
rs_assert_file_lacks "$RS_OUT" "$TOKEN"
rs_assert_file_lacks "$RS_OUT" "blue"
rs_pass

hl_spawn_consumer http "$conf"
pid=$RS_PID
err=$RS_ERR

# --- success and the request's shape ------------------------------------------------------------
rs_case "2xx: acknowledged; the request carries the JSON, the method and every header"
id_ok=$(hl_xadd hooks action ok note "héllo" bin $'\xff\xfe')
hl_wait "$pid" 10 hl_acked hooks "$id_ok" ||
    rs_fail "entry $id_ok not acknowledged: $(hl_log_lines "$err" "$id_ok")"
hl_records_for hooks "$id_ok" >"$RS_TMP/ok.jsonl"
"$RS_PYTHON" - "$RS_TMP/ok.jsonl" "$id_ok" "$TOKEN" <<'PY' || rs_fail "the request is wrong"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
id_, token = sys.argv[2], sys.argv[3]
assert len(recs) == 1, "%d requests for one entry" % len(recs)
r = recs[0]
assert r["method"] == "POST", r["method"]
assert r["path"] == "/hooks?x=1", r["path"]
h = {}
for k, v in r["headers"]:
    h.setdefault(k.lower(), []).append(v)
assert h.get("content-type") == ["application/json"], h
assert h.get("idempotency-key") == ["hooks/" + id_], h
assert h.get("authorization") == ["Bearer " + token], h
assert h.get("x-tenant") == ["blue"], h
assert "expect" not in h, h
body = json.loads(r["body"])
want = {"stream": "hooks", "id": id_, "delivery": 1,
        "fields": {"action": "ok", "note": "h\u00e9llo", "bin": {"base64": "//4="}}}
assert body == want, body
PY
rs_pass

rs_case "the configured method (PUT) is used"
id_put=$(hl_xadd slow action ok)
hl_wait "$pid" 10 hl_acked slow "$id_put" ||
    rs_fail "entry $id_put not acknowledged: $(hl_log_lines "$err" "$id_put")"
method=$(hl_records_for slow "$id_put" | "$RS_PYTHON" -c 'import json, sys; print(json.loads(sys.stdin.readline())["method"])')
rs_assert_eq PUT "$method" "method"
rs_pass

# --- retryable ----------------------------------------------------------------------------------
rs_case "503 with Retry-After: 1 is retryable, the wait is reported, the entry stays pending"
id_503=$(hl_xadd hooks action unavailable)
hl_wait "$pid" 10 hl_logged_retryable "$err" http "$id_503" "HTTP 503, retry after 1000 ms" ||
    rs_fail "no retryable 503 logged for $id_503: $(hl_log_lines "$err" "$id_503")"
hl_pending hooks "$id_503" || rs_fail "$id_503 is not pending"
hl_dead_lettered hooks "$id_503" && rs_fail "$id_503 was dead-lettered"
rs_pass

rs_case "429 with an HTTP-date Retry-After is retryable"
id_429=$(hl_xadd hooks action ratelimit)
hl_wait "$pid" 10 hl_logged_retryable "$err" http "$id_429" "HTTP 429, retry after " ||
    rs_fail "no retryable 429 logged for $id_429: $(hl_log_lines "$err" "$id_429")"
hl_pending hooks "$id_429" || rs_fail "$id_429 is not pending"
rs_pass

rs_case "a response slower than timeout_ms is a retryable timeout"
start=$(date +%s%N)
id_stall=$(hl_xadd slow action stall)
hl_wait "$pid" 10 hl_logged_retryable "$err" http "$id_stall" "timed out" ||
    rs_fail "no retryable timeout logged for $id_stall: $(hl_log_lines "$err" "$id_stall")"
took_ms=$((($(date +%s%N) - start) / 1000000))
# The receiver stalls 5 s; the handler gave up at 1000 ms.
rs_assert_le $((4000 * RS_SCALE)) "$took_ms" "ms until the timeout was reported"
hl_pending slow "$id_stall" || rs_fail "$id_stall is not pending"
rs_pass

rs_case "a refused connection is retryable"
id_down=$(hl_xadd down action ok)
hl_wait "$pid" 10 hl_logged_retryable "$err" http "$id_down" "request failed: " ||
    rs_fail "no retryable connection failure logged for $id_down: $(hl_log_lines "$err" "$id_down")"
hl_pending down "$id_down" || rs_fail "$id_down is not pending"
rs_pass

# --- permanent ----------------------------------------------------------------------------------
rs_case "404 is a permanent failure, not acknowledged away"
id_404=$(hl_xadd hooks action missing)
hl_wait "$pid" 10 hl_logged_permanent "$err" http "$id_404" "HTTP 404; response: no such hook" ||
    rs_fail "no permanent 404 logged for $id_404: $(hl_log_lines "$err" "$id_404")"
hl_wait "$pid" 5 hl_failed_kept hooks "$id_404" || rs_fail "$id_404 was acknowledged away"
rs_pass

rs_case "a redirect is not followed: permanent failure"
id_301=$(hl_xadd hooks action moved)
hl_wait "$pid" 10 hl_logged_permanent "$err" http "$id_301" \
    "HTTP 301: redirects are not followed (to http://127.0.0.1:1/elsewhere)" ||
    rs_fail "no permanent 301 logged for $id_301: $(hl_log_lines "$err" "$id_301")"
hl_wait "$pid" 5 hl_failed_kept hooks "$id_301" || rs_fail "$id_301 was acknowledged away"
[[ $(hl_records_for hooks "$id_301" | wc -l) -ge 1 ]] || rs_fail "no request for $id_301"
rs_pass

# --- keep-alive ---------------------------------------------------------------------------------
rs_case "$BULK entries with 4 workers use at most 4 connections (keep-alive)"
for ((i = 1; i <= BULK; i++)); do
    echo "XADD bulk * action ok n $i"
done >"$RS_TMP/bulk.txt"
rs_cli <"$RS_TMP/bulk.txt" >/dev/null
bulk_done() {
    [[ $(rs_cli XPENDING bulk workers | head -n 1) == 0 ]] || return 1
    rs_cli XINFO GROUPS bulk | awk 'prev == "lag" { exit !($0 == 0) } { prev = $0 }'
}
hl_wait "$pid" 60 bulk_done || rs_fail "the $BULK bulk entries were not all acknowledged"
"$RS_PYTHON" - "$HL_RECORDS" "$BULK" <<'PY' || rs_fail "connections were not reused"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
bulk = [r for r in recs if r["path"] == "/bulk"]
conns = {r["conn"] for r in bulk}
ids = {json.loads(r["body"])["id"] for r in bulk}
print("  %d requests, %d distinct entries, %d connections" % (len(bulk), len(ids), len(conns)))
assert len(ids) == int(sys.argv[2]), "entries received: %d" % len(ids)
assert len(conns) <= 4, "connections: %d" % len(conns)
PY
rs_pass

rs_case "SIGTERM stops it cleanly; no ERROR, no header value or password in the log"
hl_stop_consumer "$pid"
hl_assert_clean_stderr "$err"
rs_assert_file_lacks "$err" "$TOKEN"
rs_pass
