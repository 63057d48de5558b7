#!/usr/bin/env bash
#
# /healthz stays 200 through reloads that change and remove streams.
#
# A reload retires a changed or removed stream: its reader is stopped and joined, and once its
# entries have settled the slot takes up the new settings or goes away. The reader's thread
# ends on purpose there, so liveness must not count it as a dead thread (a probe failing on
# every reload would make a supervisor restart a healthy service; it did, before the liveness
# check passed over retiring streams).
#
# A client polls /healthz and /readyz over one keep-alive connection, as fast as the server
# answers, while RELOADS reloads cycle through: change b's handler, remove c, add c back.
# Checked: every /healthz answer is 200; a /readyz 503 names only b or c (a new reader
# connecting); entries keep flowing to a; and the consumer exits 0 on SIGTERM.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

RELOADS=12
HC_PORT=$(rs_free_port)

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis

# write_conf STREAMS: (re)writes the configuration with cl_config's streams list.
write_conf() {
    CONF=$(cl_config reload health_port="$HC_PORT" streams="$1")
}
write_conf "a:log b:discard c:discard"
cl_spawn_consumer consumer "$CONF"
CPID=$RS_PID
CERR=$RS_ERR
COUT=$RS_OUT
cl_wait_for "$CPID" $((10 * RS_SCALE)) grep -qF "ready: every stream's reader is connected" \
    "$CERR" || rs_fail "the consumer did not get ready"

# The poller: "path status body" per answer that is not 200, and the counts at the end.
STOP=$RS_TMP/stop-poller
# shellcheck disable=SC2016 # Python code, not shell
POLLER_PY='
import http.client, os, sys
port, stop = int(sys.argv[1]), sys.argv[2]
n, c = 0, None
while not os.path.exists(stop) and n < 1000000:
    for path in ("/healthz", "/readyz"):
        try:
            if c is None:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path)
            r = c.getresponse()
            body = r.read().decode("utf-8", "replace").replace("\n", " ")
            status = r.status
        except Exception as e:
            status, body, c = "000", repr(e), None
        n += 1
        if status != 200:
            print(path, status, body, flush=True)
print("requests", n, flush=True)
'
rs_spawn poller "$RS_PYTHON" -c "$POLLER_PY" "$HC_PORT" "$STOP"
PPID_POLLER=$RS_PID
POUT=$RS_OUT

reloads_done() {
    (($(grep -cE 'reload: [0-9]+ streams;' "$CERR") >= $1))
}
# shellcheck disable=SC2016 # Python code, not shell
READY_PY='
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
c.request("GET", "/readyz")
print(c.getresponse().status)
'
ready() {
    [[ $("$RS_PYTHON" -c "$READY_PY" "$HC_PORT" 2>/dev/null) == 200 ]]
}

rs_case "$RELOADS reloads changing and removing streams while /healthz is polled"
handler=discard
for ((i = 1; i <= RELOADS; i++)); do
    case $((i % 3)) in
    1)
        if [[ $handler == discard ]]; then handler=log; else handler=discard; fi
        write_conf "a:log b:$handler c:discard"
        ;;
    2) write_conf "a:log b:$handler" ;;
    0) write_conf "a:log b:$handler c:discard" ;;
    esac
    rs_cli XADD a '*' message "reload $i" type test >/dev/null
    kill -HUP "$CPID"
    cl_wait_for "$CPID" $((10 * RS_SCALE)) reloads_done "$i" || rs_fail "reload $i not applied"
    # The next reload only once this one has finished retiring (its new readers connected).
    cl_wait_for "$CPID" $((10 * RS_SCALE)) ready || rs_fail "not ready again after reload $i"
done
cl_wait_for "$CPID" $((10 * RS_SCALE)) cl_has_lines "$COUT" a "$RELOADS" ||
    rs_fail "a got $(cl_count_lines "$COUT" a) of $RELOADS entries"
touch "$STOP"
rs_wait_exit "$PPID_POLLER" $((10 * RS_SCALE))
rs_assert_exit 0
requests=$(sed -n 's/^requests //p' "$POUT")
rs_assert_ge $((RELOADS * 10)) "${requests:-0}" "requests made by the poller"
bad=$(grep -vE '^requests |^/readyz 503 stream [bc]: ' "$POUT" | head -n 3) || true
[[ -z $bad ]] || rs_fail "unexpected answers during reloads: $bad"
echo "# $requests requests; $(grep -c '^/readyz 503' "$POUT") readiness 503s while b or c" \
    "took over"
rs_assert_eq 0 "$(grep -c 'reload rejected' "$CERR")" "rejected reloads"
rs_pass

rs_case "SIGTERM: exit 0, clean log"
cl_stop_consumer "$CPID"
rs_assert_exit 0
cl_assert_clean_stderr "$CERR"
rs_pass
