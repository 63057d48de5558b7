#!/usr/bin/env bash
#
# valgrind --leak-check=full over a whole life of the consumer: start, handle entries on two
# streams (log and exec handlers, a retry, a dead letter), a reload that adds a stream,
# removes one and changes a handler, /metrics and /streams requests, and a graceful
# shutdown. It must exit 0 with no definite or indirect leak and no invalid access.
#
# Only in the normal build: the sanitizer builds cannot run under valgrind (they check the
# same things their own way).

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

if ((RS_SLOW)); then
    echo "  sanitizer build: valgrind does not apply (the sanitizers check leaks themselves)"
    exit 0
fi
command -v valgrind >/dev/null || rs_fail "valgrind is not installed (scripts/install-deps.sh installs it)"

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
HEALTH_PORT=$(rs_free_port)
job=$RS_TMP/job.sh
cat >"$job" <<EOF
#!/bin/bash
input=\$(cat)
case \$input in
*'"type":"poison"'*) exit 1 ;;
*'"type":"flaky"'*) if [[ ! -e $RS_TMP/flaky-seen ]]; then touch $RS_TMP/flaky-seen; exit 75; fi ;;
esac
exit 0
EOF
chmod +x "$job"

# write_conf STREAMS: the configuration with the given stream entries.
write_conf() {
    cat >"$RS_TMP/vg.conf.tmp" <<EOF
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; retry_base_ms = 100; retry_max_ms = 200; };
workers = { threads = 2; queue_capacity = 32; shutdown_timeout_ms = 20000; };
health = { address = "127.0.0.1"; port = $HEALTH_PORT; liveness_timeout_ms = 60000; };
streams = ( $1 );
EOF
    mv "$RS_TMP/vg.conf.tmp" "$RS_TMP/vg.conf"
}
EXEC_STREAM="{ name = \"jobs\"; handler = \"exec\"; command = [ \"$job\" ]; timeout_ms = 20000; }"
write_conf "$EXEC_STREAM, { name = \"events\"; handler = \"log\"; }"

rs_case "a start, handling, reload and shutdown cycle under valgrind"
for i in $(seq 1 20); do rs_cli XADD events '*' message "m$i" type test >/dev/null; done
rs_cli XADD jobs '*' message flaky type flaky >/dev/null
rs_cli XADD jobs '*' message poison type poison >/dev/null
rs_cli XADD jobs '*' message fine type test >/dev/null
rs_spawn consumer valgrind --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no \
    --log-file="$RS_TMP/valgrind.log" "$RS_CONSUMER" -c "$RS_TMP/vg.conf"
CONSUMER=$RS_PID
RS_WAIT_TIMEOUT=120 rs_wait_for cl_settled events jobs ||
    rs_fail "not settled under valgrind: events=$(cl_pending events) jobs=$(cl_pending jobs)"
curl -fsS "http://127.0.0.1:$HEALTH_PORT/metrics" >/dev/null || rs_fail "/metrics failed"
curl -fsS "http://127.0.0.1:$HEALTH_PORT/streams" >/dev/null || rs_fail "/streams failed"
# Reload: jobs changes handler (exec -> log), events is removed, more is added.
write_conf "{ name = \"jobs\"; handler = \"log\"; }, { name = \"more\"; handler = \"discard\"; }"
kill -HUP "$CONSUMER"
RS_WAIT_TIMEOUT=60 rs_wait_for grep -q "added: more; removed: events; changed: jobs" "$RS_TMP/consumer.err" ||
    rs_fail "the reload was not applied"
for i in $(seq 1 5); do rs_cli XADD more '*' message "m$i" type test >/dev/null; done
RS_WAIT_TIMEOUT=60 rs_wait_for cl_settled more jobs || rs_fail "not settled after the reload"
kill -TERM "$CONSUMER"
rs_wait_exit "$CONSUMER" 90
if [[ $RS_RC != 0 ]]; then
    sed -n '/HEAP SUMMARY/,$p' "$RS_TMP/valgrind.log" | head -n 60 >&2
    grep -E "Invalid|uninitialised|definitely lost in|indirectly lost in" -A12 "$RS_TMP/valgrind.log" | head -n 80 >&2
    rs_fail "valgrind or the consumer reported an error (exit status $RS_RC)"
fi
rs_assert_file_contains "$RS_TMP/valgrind.log" "ERROR SUMMARY: 0 errors"
grep -qE "definitely lost: 0 bytes|All heap blocks were freed" "$RS_TMP/valgrind.log" ||
    rs_fail "a definite leak: $(grep 'definitely lost' "$RS_TMP/valgrind.log")"
echo "  $(grep -E 'in use at exit|definitely lost|indirectly lost' "$RS_TMP/valgrind.log" | sed 's/^==[0-9]*== *//' | tr '\n' ';')"
rs_pass
