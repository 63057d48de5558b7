# shellcheck shell=bash disable=SC2034 # variables here are used by the sourcing scripts
#
# Helpers for the HTTP server's integration tests (test_health*.sh). Source it after lib.sh
# and consumer_lib.sh:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
#     source "$(dirname "${BASH_SOURCE[0]}")/health_lib.sh"
#
# It adds: a free port for health.port, HTTP requests made with Python's http.client (no curl
# needed), reading samples out of a /metrics body, and promtool. Every body received is kept
# in $RS_TMP/http-N.body, so a test can check that none of them holds the password.

HC_PORT=""
HC_N=0
HC_STATUS=""
HC_BODY=""
HC_HEADERS=""
HC_MS=0
HC_PROMTOOL=${HC_PROMTOOL:-$(command -v promtool || true)}

# hc_pick_port: sets HC_PORT to a loopback port nothing listens on.
hc_pick_port() {
    HC_PORT=$(rs_free_port)
}

# hc_request METHOD PATH: one request to 127.0.0.1:$HC_PORT (5 s timeout, a new connection).
# Sets HC_STATUS (000 when there was no answer), HC_BODY and HC_HEADERS (files; header names
# in lower case, "name: value" per line) and HC_MS (how long it took). Never fails.
hc_request() {
    HC_N=$((HC_N + 1))
    HC_BODY=$RS_TMP/http-$HC_N.body
    HC_HEADERS=$RS_TMP/http-$HC_N.headers
    local start
    start=$(cl_now_ms)
    HC_STATUS=$("$RS_PYTHON" -c "$HC_PY" "$HC_PORT" "$1" "$2" "$HC_BODY" "$HC_HEADERS" \
        2>>"$RS_TMP/http-errors.txt") || HC_STATUS=000
    HC_MS=$(($(cl_now_ms) - start))
}

# hc_status_is METHOD PATH STATUS [NEEDLE]: true when the request answers STATUS (and the
# body contains the fixed string NEEDLE). For rs_wait_for.
hc_status_is() {
    hc_request "$1" "$2"
    [[ $HC_STATUS == "$3" ]] || return 1
    [[ -z ${4:-} ]] || grep -qF -- "$4" "$HC_BODY"
}

# hc_expect METHOD PATH STATUS: one request that must answer STATUS.
hc_expect() {
    hc_request "$1" "$2"
    [[ $HC_STATUS == "$3" ]] ||
        rs_fail "$1 $2: expected status $3, got $HC_STATUS: $(head -c 300 "$HC_BODY" 2>/dev/null)"
}

# hc_header NAME: the value of header NAME (lower case) of the last response.
hc_header() {
    awk -v k="$1" 'index($0, k ": ") == 1 { print substr($0, length(k) + 3); exit }' "$HC_HEADERS"
}

# hc_sample FILE SERIES: the value of SERIES (name plus labels, exactly as written, e.g.
# 'redstream_messages_received_total{stream="events"}') in a /metrics body; empty if absent.
hc_sample() {
    awk -v k="$2" '$1 == k { print $2; exit }' "$1"
}

# hc_samples_are FILE SERIES=VALUE...: true when every SERIES has VALUE in FILE.
hc_samples_are() {
    local file=$1 kv
    shift
    for kv in "$@"; do
        [[ $(hc_sample "$file" "${kv%=*}") == "${kv##*=}" ]] || return 1
    done
}

# hc_metrics_are SERIES=VALUE...: fetches /metrics; true when every SERIES has VALUE.
hc_metrics_are() {
    hc_request GET /metrics
    [[ $HC_STATUS == 200 ]] && hc_samples_are "$HC_BODY" "$@"
}

# hc_promtool FILE: `promtool check metrics` must accept FILE.
hc_promtool() {
    [[ -n $HC_PROMTOOL ]] || rs_fail "promtool not found (Debian package prometheus)"
    local out
    out=$("$HC_PROMTOOL" check metrics <"$1" 2>&1) ||
        rs_fail "promtool check metrics rejects $(basename "$1"): $out"
}

# hc_assert_no_password: no body received so far holds the Redis password.
hc_assert_no_password() {
    local hit
    hit=$(grep -lF -- "$RS_REDIS_PASSWORD" "$RS_TMP"/http-*.body 2>/dev/null | head -n 1) || true
    [[ -z $hit ]] || rs_fail "$(basename "$hit") holds the Redis password"
}

# shellcheck disable=SC2016 # Python code, not shell
HC_PY='
import http.client, sys
port, method, path, body_path, headers_path = sys.argv[1:6]
try:
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
    c.request(method, path, body=b"x=1" if method in ("POST", "PUT", "PATCH") else None)
    r = c.getresponse()
    data = r.read()
    c.close()
except Exception as e:
    sys.stderr.write("%s %s: %r\n" % (method, path, e))
    print("000")
    sys.exit(0)
with open(body_path, "wb") as f:
    f.write(data)
with open(headers_path, "w") as f:
    for k, v in r.getheaders():
        f.write("%s: %s\n" % (k.lower(), v))
print(r.status)
'
