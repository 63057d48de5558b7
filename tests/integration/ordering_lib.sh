# shellcheck shell=bash disable=SC2034 # variables here are used by the sourcing scripts
#
# Helpers for the ordering tests (test_ordering_*.sh). Source it after lib.sh and
# consumer_lib.sh:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
#     source "$(dirname "${BASH_SOURCE[0]}")/ordering_lib.sh"
#
# It adds: the recording webhook (tests/webhook-receiver/receiver.js, Node.js) started and
# controlled from the script, a consumer configuration with hand-written stream entries (which
# carry ordering and key_field), publishing keyed entries fast (pipelined XADDs from
# ordering_tool.py, which records every id with its key), and the checks of the receiver's
# record against what was published (ordering_tool.py check/window/hot).
#
# Environment, beyond lib.sh's and consumer_lib.sh's:
#   NODE   the Node.js binary (default: node from PATH; Debian's nodejs)

NODE=${NODE:-$(command -v node || command -v nodejs || true)}
[[ -n $NODE ]] || rs_fail "node is required (scripts/install-deps.sh installs nodejs)"
command -v curl >/dev/null || rs_fail "curl is required (Debian package curl)"
OL_RECEIVER=$RS_SOURCE_DIR/tests/webhook-receiver/receiver.js
OL_TOOL=$RS_SOURCE_DIR/tests/integration/ordering_tool.py

# --- the webhook -----------------------------------------------------------------------------

# ol_start_receiver DELAY: starts the recording webhook, each answer delayed a random
# DELAY ms ("2" = 0..2, "1-3" = 1..3); waits until it listens. Sets OL_PORT (its port),
# OL_URL (the URL to configure as the stream's url), OL_RCV_PID and OL_RECORD (the file
# ol_dump writes).
ol_start_receiver() {
    OL_RECORD=$RS_TMP/receiver.record
    rs_spawn receiver "$NODE" "$OL_RECEIVER" --port-file "$RS_TMP/receiver.port" \
        --record "$OL_RECORD" --delay-ms "$1"
    OL_RCV_PID=$RS_PID
    RS_WAIT_TIMEOUT=$((10 * RS_SCALE)) rs_wait_for test -s "$RS_TMP/receiver.port" ||
        rs_fail "the webhook did not start: $(cat "$RS_TMP/receiver.err")"
    OL_PORT=$(cat "$RS_TMP/receiver.port")
    OL_URL=http://127.0.0.1:$OL_PORT/hook
}

# ol_stat NAME: one count from the webhook's GET /stats (requests, ok, retry, reject, bad,
# inflight, max_inflight, distinct_ok, distinct_final); empty when it does not answer.
ol_stat() {
    curl -s --max-time 5 "http://127.0.0.1:$OL_PORT/stats" 2>/dev/null |
        sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}

# ol_control JSON: POSTs a control body (see receiver.js: retry, reject, delay_ms).
ol_control() {
    local out
    out=$(curl -s --max-time 5 -w ' %{http_code}' -H 'Content-Type: application/json' \
        --data-binary "$1" "http://127.0.0.1:$OL_PORT/control") ||
        rs_fail "POST /control failed"
    [[ $out == *" 200" ]] || rs_fail "POST /control $1: $out"
}

# ol_dump: has the webhook write its record to $OL_RECORD.
ol_dump() {
    local out
    out=$(curl -s --max-time 30 -X POST "http://127.0.0.1:$OL_PORT/dump") ||
        rs_fail "POST /dump failed"
    [[ $out == '{"written":'* && -f $OL_RECORD ]] || rs_fail "POST /dump: $out"
}

# ol_final_at_least N: true once N distinct entries got a final answer (200 or 400). Polls at
# most five times a second: a curl per 20 ms would take CPU from what is measured.
ol_final_at_least() {
    sleep 0.2
    local n
    n=$(ol_stat distinct_final)
    [[ -n $n ]] && ((n >= $1))
}

# --- the consumer ----------------------------------------------------------------------------

# ol_config NAME THREADS QUEUE READ_COUNT GROUP_EXTRA STREAM_ENTRIES: writes a consumer
# configuration to $RS_TMP/NAME.conf and prints its path. GROUP_EXTRA is added to the group
# (e.g. "retry_base_ms = 50; retry_max_ms = 200;"); STREAM_ENTRIES is the libconfig text
# inside `streams = ( ... );` (see ol_http_stream).
ol_config() {
    rs_write_config "$1" <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; block_ms = 1000; read_count = $4; $5 };
workers = { threads = $2; queue_capacity = $3; shutdown_timeout_ms = 10000; };
health = { address = "127.0.0.1"; port = $(rs_free_port); };
streams = (
$6
);
log = { level = "info"; };
EOF
}

# ol_http_stream NAME ORDERING [KEY_FIELD]: a stream entry for ol_config: the http handler
# posting to the webhook, with the given ordering ("" leaves the setting out: the default).
ol_http_stream() {
    local extra=""
    [[ -n $2 ]] && extra+=" ordering = \"$2\";"
    [[ -n ${3:-} ]] && extra+=" key_field = \"$3\";"
    echo "  { name = \"$1\"; handler = \"http\"; url = \"$OL_URL\"; timeout_ms = 10000;$extra }"
}

# --- entries ---------------------------------------------------------------------------------

# ol_publish STREAM KIND ARGS...: XADDs the keys "ordering_tool.py keys KIND ARGS" prints,
# one entry each ("key" field, or none for "-"; "n" its number), and writes "<id> <key>" per
# entry to $RS_TMP/STREAM.published. Checks XLEN.
ol_publish() {
    local stream=$1 out=$RS_TMP/$1.published
    shift
    "$RS_PYTHON" "$OL_TOOL" keys "$@" >"$RS_TMP/$stream.keys" || rs_fail "ordering_tool keys $*"
    "$RS_PYTHON" "$OL_TOOL" publish "$RS_REDIS_PORT" "$RS_REDIS_PASSWORD" "$stream" "$out" \
        <"$RS_TMP/$stream.keys" || rs_fail "publishing to $stream failed"
    rs_assert_eq "$(wc -l <"$RS_TMP/$stream.keys")" "$(rs_cli XLEN "$stream")" "XLEN $stream"
}

# ol_nth_of_key STREAM KEY N: the id of the N-th (from 1) entry of KEY in STREAM.
ol_nth_of_key() {
    awk -v k="$2" -v n="$3" '$2 == k && ++seen == n { print $1; exit }' "$RS_TMP/$1.published"
}

# --- checks ----------------------------------------------------------------------------------

# ol_check STREAM ARGS...: ordering_tool.py check of the record against STREAM's published
# entries (ARGS: --lanes key|stream|none, --strict, --rejected ID); fails the test with the
# tool's message. Prints the tool's summary line as a comment.
ol_check() {
    local stream=$1 out
    shift
    out=$("$RS_PYTHON" "$OL_TOOL" check "$OL_RECORD" "$RS_TMP/$stream.published" "$stream" \
        "$@" 2>&1) || rs_fail "$out"
    echo "# $out"
}

# ol_tool SUBCOMMAND ARGS...: another ordering_tool.py subcommand on the record (window, hot);
# prints its output, fails the test when it fails.
ol_tool() {
    local cmd=$1 out
    shift
    out=$("$RS_PYTHON" "$OL_TOOL" "$cmd" "$OL_RECORD" "$@" 2>&1) || rs_fail "$out"
    echo "$out"
}
