#!/usr/bin/env bash
#
# The browser dashboard (GET / and /api/...), in Debian's headless chromium driven by
# playwright-core (tests/dashboard/check.js; its npm package installed with `npm ci`).
#
# Three streams with traffic: "orders" (log handler; two of its entries were read by another
# consumer, "ghost", and stay pending), "payments" (exec handler; an entry with kind=poison
# fails permanently and is dead-lettered, and it carries a field holding </script>) and a
# stream named <img src=x onerror=alert(1)> (discard handler). It checks that:
#   - the page and its files come with Content-Security-Policy (script-src 'self'), nosniff
#     and no-store; /api/stats has a per-second series with a non-zero rate once traffic ran;
#   - once the groups settle, each stream's row shows exactly the length, lag and pending
#     XINFO reports, the graph has points, and the poison entry's dead letter (with its
#     </script> field, as text) appears under "payments", with the replay command;
#   - no dialog opens and no <img> is created (the names and values are shown as text);
#   - /api/problems lists the poison entry's error with its stream; /api/deadletters answers
#     404 for a stream that is not configured (its own dead-letter stream included);
#   - no body of the page or its JSON holds the Redis password;
#   - with Redis gone, /api/stats and /api/problems still answer (redis.ready false) while
#     /streams and /api/deadletters answer 503;
#   - with 64 streams, /streams and /api/stats answer within a second and the page shows
#     every stream's row with the values XINFO reports (the phone-width check included);
#   - with health.dashboard = false, / and /api/stats are 404 while /healthz still answers.
# A screenshot (laptop and phone widths) is kept in the test's temp directory.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/health_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/health_lib.sh"

CHROMIUM=${RS_CHROMIUM:-/usr/bin/chromium}
NODE=$(command -v node || true)
[[ -n $NODE ]] || rs_fail "node is required (scripts/install-deps.sh installs nodejs and npm)"
[[ -x $CHROMIUM ]] || rs_fail "$CHROMIUM is required (scripts/install-deps.sh installs chromium)"
DASH_DIR=$RS_SOURCE_DIR/tests/dashboard
if [[ ! -d $DASH_DIR/node_modules/playwright-core ]]; then
    (cd "$DASH_DIR" && timeout 120 npm ci --no-audit --no-fund >"$RS_TMP/npm.log" 2>&1) ||
        rs_fail "npm ci in $DASH_DIR failed: $(tail -n 5 "$RS_TMP/npm.log")"
fi

EVIL='<img src=x onerror=alert(1)>'
handler=$RS_TMP/handler.sh
cat >"$handler" <<'EOF'
#!/bin/bash
# Fails permanently (exit 3) on an entry whose kind is poison.
json=$(cat)
[[ $json == *'"kind":"poison"'* ]] && { echo "cannot digest this entry" >&2; exit 3; }
exit 0
EOF
chmod +x "$handler"

# write_conf NAME DASHBOARD: a configuration for the three streams.
write_conf() {
    rs_write_config "$1" <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; read_count = 16;
          claim_idle_ms = 600000; idle_consumer_timeout_ms = 0; };
workers = { threads = 2; queue_capacity = 64; shutdown_timeout_ms = 5000; };
streams = (
  { name = "orders"; handler = "log"; ordering = "key"; key_field = "n"; },
  { name = "payments"; handler = "exec"; command = ["$handler"]; timeout_ms = 5000; },
  { name = "$EVIL"; handler = "discard"; }
);
health = { address = "127.0.0.1"; port = $HC_PORT; dashboard = $2; };
log = { level = "info"; };
EOF
}

rs_start_redis
hc_pick_port

rs_case "setup: a group with two entries of orders pending for another consumer"
rs_cli XGROUP CREATE orders workers '$' MKSTREAM >/dev/null
rs_cli XADD orders '*' kind ghost n 1 >/dev/null
rs_cli XADD orders '*' kind ghost n 2 >/dev/null
rs_assert_eq 2 "$(rs_cli XREADGROUP GROUP workers ghost COUNT 2 STREAMS orders '>' |
    grep -c '^kind$')" "entries read by ghost"
rs_pass

rs_case "the consumer serves the page with its security headers"
conf=$(write_conf on true)
cl_spawn_consumer consumer "$conf"
pid=$RS_PID
RS_WAIT_TIMEOUT=$((10 * RS_SCALE)) cl_wait_for "$pid" $((10 * RS_SCALE)) \
    hc_status_is GET /readyz 200 || rs_fail "/readyz never answered 200"
for path in / /app.js /style.css; do
    hc_expect GET "$path" 200
    rs_assert_match "default-src 'none'; script-src 'self'.*" "$(hc_header content-security-policy)" \
        "Content-Security-Policy of $path"
    rs_assert_eq nosniff "$(hc_header x-content-type-options)" "X-Content-Type-Options of $path"
    rs_assert_eq no-store "$(hc_header cache-control)" "Cache-Control of $path"
done
hc_expect GET / 200
rs_assert_file_contains "$HC_BODY" '<script src="app.js" defer></script>'
rs_assert_file_lacks "$HC_BODY" 'http://'
rs_assert_file_lacks "$HC_BODY" 'https://'
rs_pass

rs_case "traffic on three streams: the stats series shows it"
{
    for ((i = 1; i <= 40; i++)); do echo "XADD orders * kind ok n $i"; done
    for ((i = 1; i <= 20; i++)); do echo "XADD payments * kind ok n $i"; done
    echo 'XADD payments * kind poison note </script> n 21'
    for ((i = 1; i <= 15; i++)); do printf 'XADD "%s" * kind ok n %d\n' "$EVIL" "$i"; done
} | rs_cli >/dev/null
settled() { cl_settled payments "$EVIL" && [[ $(cl_group_field orders lag) == 0 ]] &&
    [[ $(cl_pending orders) == 2 ]]; }
cl_wait_for "$pid" $((20 * RS_SCALE)) settled || rs_fail "the streams never settled"
# The reaper samples once a second: the rate shows one or two seconds after the traffic.
series_nonzero() {
    hc_request GET /api/stats
    [[ $HC_STATUS == 200 ]] && "$RS_PYTHON" -c '
import json, sys
s = json.load(open(sys.argv[1]))["series"]
assert len(s["handled"]) == 600 and len(s["failed"]) == 600
sys.exit(0 if any(v for v in s["handled"] if v) and any(v for v in s["failed"] if v) else 1)
' "$HC_BODY"
}
cl_wait_for "$pid" $((10 * RS_SCALE)) series_nonzero || rs_fail "no non-zero rate in /api/stats: $(head -c 600 "$HC_BODY")"
"$RS_PYTHON" - "$HC_BODY" <<'PY' || rs_fail "/api/stats: unexpected totals: $(head -c 600 "$HC_BODY")"
import json, sys
s = json.load(open(sys.argv[1]))
t = s["totals"]
assert t["handled"] == 40 + 20 + 15, t
assert t["failed"] == 1 and t["dead_lettered"] == 1, t
assert [x["name"] for x in s["streams"]] == ["orders", "payments", "<img src=x onerror=alert(1)>"]
assert [(x["ordering"], x.get("key_field")) for x in s["streams"]] == \
    [("key", "n"), ("none", None), ("none", None)], s["streams"]
assert s["redis"]["ready"] is True and s["consumer"] == "c1" and s["group"] == "workers"
PY
rs_pass

rs_case "the page shows what XINFO reports, the graph, and the dead letter, all as text"
expect=$RS_TMP/expect.json
"$RS_PYTHON" - "$expect" "$CHROMIUM" $((30000 * RS_SCALE)) \
    "$EVIL" "$(rs_cli XLEN orders)" "$(cl_group_field orders lag)" "$(cl_pending orders)" \
    "$(rs_cli XLEN payments)" "$(cl_group_field payments lag)" "$(cl_pending payments)" \
    "$(rs_cli XLEN "$EVIL")" "$(cl_group_field "$EVIL" lag)" "$(cl_pending "$EVIL")" <<'PY'
import json, sys
out, chromium, deadline, evil = sys.argv[1:5]
v = [int(x) for x in sys.argv[5:]]
json.dump({"streams": {"orders": dict(zip(("length", "lag", "pending"), v[0:3])),
                       "payments": dict(zip(("length", "lag", "pending"), v[3:6])),
                       evil: dict(zip(("length", "lag", "pending"), v[6:9]))},
           "select": "payments", "dead_letter_field": "note=</script>",
           "deadline_ms": int(deadline), "chromium": chromium}, open(out, "w"))
PY
rs_assert_eq 42 "$(rs_cli XLEN orders)" "XLEN orders"
rs_assert_eq 2 "$(cl_pending orders)" "pending of orders"
seen=$RS_TMP/seen.json
shot=$RS_TMP/dashboard.png
if ! timeout $((90 * RS_SCALE)) "$NODE" "$DASH_DIR/check.js" "http://127.0.0.1:$HC_PORT/" \
    "$expect" "$shot" >"$seen" 2>"$RS_TMP/check.err"; then
    cl_fail "the page did not show the expected values: $(cat "$seen" "$RS_TMP/check.err")" \
        "(expected $(cat "$expect"))"
fi
[[ -s $shot ]] || rs_fail "no screenshot saved"
"$RS_PYTHON" - "$seen" <<'PY' || rs_fail "the page: $(cat "$seen")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["chart_points"] > 0, s
assert s["imgs"] == 0 and s["problems_seen"] == [], s
assert s["replay"].endswith("--replay-dlq payments"), s["replay"]
assert s["rows"]["payments"]["handler"] == "exec" and s["rows"]["orders"]["ordering"] == "key (n)"
assert s["rows"]["payments"]["ordering"] == "none"
assert s["problems"] >= 1 and s["redis"] == "connected", s
PY
# Kept beside the build too, since $RS_TMP goes away with the test.
mkdir -p "$RS_BUILD_DIR/test-output"
cp "$shot" "$RS_BUILD_DIR/test-output/dashboard.png"
echo "  screenshot: $RS_BUILD_DIR/test-output/dashboard.png"
rs_pass

rs_case "the JSON endpoints: problems, dead letters, unknown streams, no password"
hc_expect GET /api/problems 200
"$RS_PYTHON" - "$HC_BODY" <<'PY' || rs_fail "/api/problems: $(head -c 800 "$HC_BODY")"
import json, sys
p = json.load(open(sys.argv[1]))["problems"]
assert any(e["stream"] == "payments" and e["level"] == "warn" and
           "dead-lettered to payments:dlq" in e["message"] for e in p), p
PY
hc_expect GET '/api/deadletters?stream=payments' 200
"$RS_PYTHON" - "$HC_BODY" <<'PY' || rs_fail "/api/deadletters: $(head -c 800 "$HC_BODY")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["dead_letter_stream"] == "payments:dlq" and d["error"] is None, d
[e] = d["dead_letters"]
assert e["delivery_count"] == "1" and e["original_id"] and e["time"], e
assert {"name": "note", "value": "</script>", "cut": False} in e["fields"], e
PY
hc_expect GET '/api/deadletters?stream=nosuch' 404
rs_assert_file_contains "$HC_BODY" '"error"'
hc_expect GET '/api/deadletters?stream=payments:dlq' 404
hc_expect GET '/api/deadletters' 400
hc_expect GET /streams 200
hc_expect GET /app.js 200
hc_expect GET /style.css 200
hc_assert_no_password
rs_pass

rs_case "Redis away: /api/stats and /api/problems still answer, saying so; /streams is 503"
rs_stop_redis
not_ready() {
    hc_request GET /api/stats
    [[ $HC_STATUS == 200 ]] && "$RS_PYTHON" -c '
import json, sys
sys.exit(1 if json.load(open(sys.argv[1]))["redis"]["ready"] else 0)' "$HC_BODY"
}
cl_wait_for "$pid" $((15 * RS_SCALE)) not_ready || rs_fail "/api/stats never said Redis is away: $(head -c 600 "$HC_BODY")"
hc_expect GET /api/problems 200
hc_expect GET /streams 503
hc_expect GET '/api/deadletters?stream=payments' 503
rs_assert_file_contains "$HC_BODY" '"error"'
hc_assert_no_password
rs_restart_redis
rs_pass

rs_case "64 streams: every row shows, /streams and /api/stats stay quick"
cl_stop_consumer "$pid"
rs_assert_exit 0
# Its ERROR lines are Redis going away, on purpose; nothing else may be wrong.
rs_assert_file_lacks "$RS_TMP/consumer.err" "Sanitizer"
rs_assert_file_lacks "$RS_TMP/consumer.err" "runtime error:"
rs_assert_file_lacks "$RS_TMP/consumer.err" "$RS_REDIS_PASSWORD"
many=$RS_TMP/many.conf
{
    sed -n '/^redis = /,/^workers = /p' "$conf"
    echo "streams = ("
    for ((i = 1; i <= 64; i++)); do
        printf '  { name = "s%02d"; handler = "discard"; }%s\n' "$i" "$( ((i < 64)) && echo ,)"
    done
    echo ");"
    echo "health = { address = \"127.0.0.1\"; port = $HC_PORT; };"
} >"$many"
for ((i = 1; i <= 64; i++)); do printf 'XADD s%02d * n %d\n' "$i" "$i"; done | rs_cli >/dev/null
cl_spawn_consumer consumer-many "$many"
pid=$RS_PID
cl_wait_for "$pid" $((20 * RS_SCALE)) hc_status_is GET /readyz 200 || rs_fail "/readyz never answered 200"
many_settled() {
    local i
    for ((i = 1; i <= 64; i++)); do cl_settled "$(printf 's%02d' "$i")" || return 1; done
}
cl_wait_for "$pid" $((20 * RS_SCALE)) many_settled || rs_fail "the 64 streams never settled"
for path in /streams /api/stats; do
    hc_expect GET "$path" 200
    rs_assert_le $((1000 * RS_SCALE)) "$HC_MS" "milliseconds for GET $path with 64 streams"
done
"$RS_PYTHON" - "$expect" "$CHROMIUM" $((30000 * RS_SCALE)) <<'PY'
import json, sys
out, chromium, deadline = sys.argv[1:4]
json.dump({"streams": {"s%02d" % i: {"length": 1, "lag": 0, "pending": 0} for i in range(1, 65)},
           "deadline_ms": int(deadline), "chromium": chromium}, open(out, "w"))
PY
if ! timeout $((90 * RS_SCALE)) "$NODE" "$DASH_DIR/check.js" "http://127.0.0.1:$HC_PORT/" \
    "$expect" "$RS_TMP/dashboard-64.png" >"$seen" 2>"$RS_TMP/check.err"; then
    cl_fail "the page did not show the 64 streams: $(head -c 2000 "$seen") $(cat "$RS_TMP/check.err")"
fi
"$RS_PYTHON" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["row_count"] != 64)' \
    "$seen" || rs_fail "not 64 rows: $(head -c 600 "$seen")"
rs_pass

rs_case "health.dashboard = false: / and /api/* are 404"
cl_stop_consumer "$pid"
rs_assert_exit 0
cl_assert_clean_stderr "$RS_TMP/consumer-many.err"
conf=$(write_conf off false)
cl_spawn_consumer consumer-off "$conf"
pid=$RS_PID
cl_wait_for "$pid" $((10 * RS_SCALE)) hc_status_is GET /readyz 200 || rs_fail "/readyz never answered 200"
for path in / /app.js /api/stats /api/problems '/api/deadletters?stream=payments'; do
    hc_expect GET "$path" 404
done
hc_expect GET /healthz 200
cl_stop_consumer "$pid"
rs_assert_exit 0
cl_assert_clean_stderr "$RS_TMP/consumer-off.err"
rs_pass
