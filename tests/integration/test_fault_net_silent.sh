#!/usr/bin/env bash
#
# Network fault: a Redis that accepts connections and never answers (faultproxy.py in
# blackhole mode: it accepts, reads and throws away, never writes), and, last, one reader's
# connection going silent mid-run while the other stream's goes on.
#
#   - redstream-consumer at start: logs the handshake's timeout naming the address, keeps
#     retrying with backoff, is not ready (/readyz 503) and, once its liveness window has
#     passed, not live (/healthz 503); SIGTERM stops it with status 0;
#   - SIGTERM while a reader's handshake waits on the silent server (connect_timeout_ms
#     20000) stops it within about a second, not at the timeout, and logs no timeout;
#   - redstream-producer (demo mode, --replay-dlq, load mode) fails with exit 69 and the
#     timeout naming the address within its connect timeout; --check-config never connects;
#   - mid-run, the connection of stream events' reader goes silent: stream logs keeps being
#     handled meanwhile; after its reply timeout (block_ms + connect_timeout_ms) the events
#     reader says so, reconnects and handles everything; nothing pending, nothing twice.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/health_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/health_lib.sh"
# shellcheck source=tests/integration/netfault_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/netfault_lib.sh"

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
fp_start "$RS_REDIS_PORT" blackhole
echo "  proxy on 127.0.0.1:$FP_PORT in front of redis 127.0.0.1:$RS_REDIS_PORT"

# silent_config NAME CONNECT_TIMEOUT_MS [cl_config settings...]: cl_config against the proxy
# with that connect timeout; prints the path.
silent_config() {
    local name=$1 connect_ms=$2 path
    shift 2
    path=$(cl_config "$name" port="$FP_PORT" "$@")
    sed -i "s/connect_timeout_ms = 2000;/connect_timeout_ms = $connect_ms;/" "$path"
    grep -q "connect_timeout_ms = $connect_ms;" "$path" || rs_fail "cannot set connect_timeout_ms"
    echo "$path"
}

# --- the consumer at start ---------------------------------------------------------------------
rs_case "consumer at start: timeout named, retried with backoff, not ready, then not live"
hc_pick_port
conf=$(silent_config start 1000 streams="events:log" health_port="$HC_PORT" liveness_ms=2000)
cl_spawn_consumer start "$conf"
pid=$RS_PID
err=$RS_ERR
timeout_line="reader events: redis 127.0.0.1:$FP_PORT: AUTH: timed out after 1000 ms; retrying in"
cl_wait_for "$pid" $((5 * RS_SCALE)) grep -qF "$timeout_line" "$err" ||
    rs_fail "no timeout line naming the address"
# Retried: a second failed attempt is logged as a backoff step, and the proxy sees new
# connections.
cl_wait_for "$pid" $((5 * RS_SCALE)) grep -qE "redis 127\.0\.0\.1:$FP_PORT still unreachable, retrying in [0-9]+ ms \(attempt 2\)" "$err" ||
    rs_fail "no second attempt logged"
cl_wait_for "$pid" $((5 * RS_SCALE)) fp_field_ge accepted 3 ||
    rs_fail "the consumer does not keep retrying: $FP_REPLY"
hc_expect GET /readyz 503
rs_assert_file_contains "$HC_BODY" "stream events: not connected: connecting to Redis"
cl_wait_for "$pid" $((6 * RS_SCALE)) hc_status_is GET /healthz 503 \
    "stream events: the reader has not completed a read for" ||
    rs_fail "/healthz did not turn 503: $HC_STATUS $(cat "$HC_BODY")"
rs_assert_file_contains "$HC_BODY" "it is connecting to Redis"
echo "  $(grep -cF "still unreachable" "$err") backoff steps logged; $(fp_field accepted) connections accepted"
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
rs_assert_file_lacks "$err" "$RS_REDIS_PASSWORD"
rs_assert_file_lacks "$err" "Sanitizer"
rs_pass

# --- SIGTERM during a long handshake -----------------------------------------------------------
rs_case "SIGTERM while a handshake waits on the silent server (timeout 20 s): exit 0 at once"
conf=$(silent_config stop 20000 streams="events:log logs:log")
before=$(fp_field accepted)
cl_spawn_consumer stop "$conf"
pid=$RS_PID
err=$RS_ERR
# Both readers have a connection to the silent server: each is now waiting for AUTH's reply.
cl_wait_for "$pid" $((5 * RS_SCALE)) fp_field_ge accepted $((before + 2)) ||
    rs_fail "the readers never connected: $FP_REPLY"
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
echo "  stopped in $CL_STOP_MS ms"
rs_assert_le $((1500 * RS_SCALE)) "$CL_STOP_MS" "ms from SIGTERM to exit (the handshake's timeout is 20000)"
# The interrupted handshake is a shutdown, not an outage: no timeout or retry is logged.
rs_assert_file_lacks "$err" "AUTH:"
rs_assert_file_lacks "$err" "retrying in"
cl_assert_clean_stderr "$err"
rs_pass

# --- the producer ------------------------------------------------------------------------------
# producer_silent NAME ARGS...: runs the producer against the proxy with the password from the
# environment; sets RS_RC, RS_ERR and ELAPSED_MS.
producer_silent() {
    local name=$1 start
    shift
    start=$(cl_now_ms)
    rs_run "$name" env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" "$RS_PRODUCER" \
        --redis-addr "127.0.0.1:$FP_PORT" "$@"
    ELAPSED_MS=$(($(cl_now_ms) - start))
}

for mode in "demo:--count 3" "replay:--replay-dlq events" \
    "load:--rate 100 --count 50 --connections 2"; do
    rs_case "producer ${mode%%:*} mode: exit 69 with the timeout naming the address, within its timeout"
    # shellcheck disable=SC2086 # the flags are split on purpose
    producer_silent "producer-${mode%%:*}" ${mode#*:}
    rs_assert_exit 69
    rs_assert_file_contains "$RS_ERR" "redis 127.0.0.1:$FP_PORT: AUTH: timed out after 2000 ms"
    echo "  exit $RS_RC after $ELAPSED_MS ms"
    # One attempt per connection, each bounded by the default connect_timeout_ms (2000).
    rs_assert_le $((6000 * RS_SCALE)) "$ELAPSED_MS" "ms until the producer gave up"
    rs_assert_file_lacks "$RS_ERR" "$RS_REDIS_PASSWORD"
    rs_assert_file_lacks "$RS_ERR" "Sanitizer"
    rs_pass
done

rs_case "producer --check-config: exit 0 without connecting"
before=$(fp_field accepted)
producer_silent check --check-config
rs_assert_exit 0
rs_assert_file_contains "$RS_OUT" "127.0.0.1:$FP_PORT"
rs_assert_eq "$before" "$(fp_field accepted)" "connections the proxy accepted"
rs_assert_le $((3000 * RS_SCALE)) "$ELAPSED_MS" "ms for --check-config"
rs_pass

# --- one connection silent mid-run -------------------------------------------------------------
rs_case "mid-run, events' reader connection goes silent: logs flows, events times out, recovers"
fp_ctl pass
# Reply timeout of a reader: block_ms (200) + connect_timeout_ms (4000) = 4200 ms.
conf=$(silent_config midrun 4000 streams="events:log logs:log")
cl_spawn_consumer midrun "$conf"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists logs ||
    rs_fail "the consumer never created its groups"
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists events || rs_fail "no group on events"
cl_resp_xadd "$RS_TMP/first-events.resp" events 50 1
cl_resp_xadd "$RS_TMP/first-logs.resp" logs 50 1
cl_pipe "$RS_TMP/first-events.resp"
cl_pipe "$RS_TMP/first-logs.resp"
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_settled events logs || rs_fail "first entries not handled"
# The next XREADGROUP of stream events (and everything after it on that connection) is
# swallowed; the reader of logs is left alone.
silenced=$(fp_field blackholed)
# shellcheck disable=SC2016 # RESP text for the proxy, not a shell expansion
fp_ctl blackhole 'STREAMS\r\n$6\r\nevents'
cl_wait_for "$pid" $((5 * RS_SCALE)) fp_field_ge blackholed $((silenced + 1)) ||
    rs_fail "the events reader's connection was not silenced: $FP_REPLY"
silenced_at=$(cl_now_ms)
cl_resp_xadd "$RS_TMP/more-events.resp" events 100 51
cl_resp_xadd "$RS_TMP/more-logs.resp" logs 100 51
cl_pipe "$RS_TMP/more-events.resp"
cl_pipe "$RS_TMP/more-logs.resp"
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_has_lines "$out" logs 150 ||
    rs_fail "stream logs stopped while events was silent: $(cl_count_lines "$out" logs) of 150"
logs_done_ms=$(($(cl_now_ms) - silenced_at))
events_then=$(cl_count_lines "$out" events)
echo "  logs: all 150 handled $logs_done_ms ms into the silence; events: $events_then handled then"
# Stream logs was served during events' outage, not after it (unless the machine is so slow
# that logs took longer than the events reader's whole reply timeout).
if ((logs_done_ms < 4000)); then
    rs_assert_eq 50 "$events_then" "events entries handled while its connection was silent"
fi
lost="stream=events lost the connection: redis 127.0.0.1:$FP_PORT: XREADGROUP: timed out after 4200 ms; reconnecting"
cl_wait_for "$pid" $((15 * RS_SCALE)) grep -qF "$lost" "$err" ||
    rs_fail "no timeout logged for the silent events connection"
cl_wait_for "$pid" $((15 * RS_SCALE)) cl_settled events logs ||
    cl_fail "not settled after the silence: events pending $(cl_pending events)" \
        "lag $(cl_group_field events lag), logs pending $(cl_pending logs)"
cl_wait_for "$pid" $((5 * RS_SCALE)) cl_has_lines "$out" events 150 ||
    rs_fail "events: $(cl_count_lines "$out" events) of 150 handled"
rs_assert_eq 0 "$(grep -c 'stream=logs lost the connection' "$err" || true)" "logs reader reconnects"
cl_handled "$out" >"$RS_TMP/handled.txt"
rs_assert_eq 300 "$(wc -l <"$RS_TMP/handled.txt")" "lines handled in all"
rs_assert_eq 300 "$(awk '{ print $1, $2 }' "$RS_TMP/handled.txt" | sort -u | wc -l)" "distinct entries handled"
rs_pass

rs_case "after the silence, SIGTERM stops it with status 0; no ERROR line, no sanitizer report"
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
cl_assert_clean_stderr "$err"
rs_pass
