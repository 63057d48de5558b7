#!/usr/bin/env bash
#
# Bad entries on the dead-letter path (badinput_lib.sh has the catalogue): one field only,
# 10,000 fields, 16 MiB values, names and values that are not UTF-8, handled by an exec
# handler that always asks for a retry (exit 75). With max_deliveries 2 each is delivered
# twice (the retry claims the whole entry again), then dead-lettered: the dead-letter stream
# holds every original field byte for byte and in order, then the metadata; the log names the
# stream, the id and the reason; nothing stays pending; a second stream keeps being handled;
# the consumer's memory comes back down afterwards.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/badinput_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/badinput_lib.sh"

GOOD=20
MANIFEST=$RS_TMP/manifest.jsonl
RECEIVED=$RS_TMP/received
REASON="exited with status 75 (EX_TEMPFAIL)"

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
bi_exec_handler "$RS_TMP/handler.sh" "$RECEIVED" 75
conf=$(rs_write_config dlq <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; max_deliveries = 2;
          retry_base_ms = 100; retry_max_ms = 200; };
workers = { threads = 4; queue_capacity = 64; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $(rs_free_port); };
streams = (
  { name = "bad"; handler = "exec"; command = ["$RS_TMP/handler.sh"]; timeout_ms = 60000; },
  { name = "good"; handler = "log"; }
);
log = { level = "info"; };
EOF
)

rs_case "bad entries are retried, then dead-lettered intact with a clear reason"
cl_spawn_consumer dlq "$conf"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists bad ||
    rs_fail "the consumer never created its groups"
bi_xadd_good good 1 $GOOD
# shellcheck disable=SC2086 # the list of cases
bi_write bad "$MANIFEST" $BI_CASES
bi_xadd_good good $((GOOD + 1)) $GOOD
nbad=$(wc -l <"$MANIFEST")
all_done() {
    (($(rs_cli XLEN bad:dlq) >= nbad)) && cl_settled bad && bi_good_handled "$out" $((2 * GOOD))
}
cl_wait_for "$pid" $((40 * RS_SCALE)) all_done ||
    cl_fail "bad: $(rs_cli XLEN bad:dlq)/$nbad dead-lettered, pending $(cl_pending bad);" \
        "good: $(cl_count_lines "$out" good)/$((2 * GOOD)) handled"
bi_check_dlq "$MANIFEST" bad:dlq "$REASON (gave up after 2 deliveries)" 2
while read -r id; do
    line=$(grep -F "WARN  acker: stream=bad id=$id dead-lettered to bad:dlq as " "$err") ||
        rs_fail "no 'dead-lettered' line naming stream bad and id $id"
    [[ $line == *" after 2 deliveries: $REASON (gave up after 2 deliveries)" ]] ||
        rs_fail "the dead-letter line does not give the reason: $line"
    for d in 1 2; do
        [[ -s $RECEIVED/bad.$id.$d.json ]] || rs_fail "delivery $d of $id did not reach the handler"
    done
done < <(bi_ids "$MANIFEST")
# The second delivery (a retry, claimed again from Redis) carried the whole entry too.
bi_check_json "$MANIFEST" docs "$RECEIVED"/bad.*.2.json
bi_check_good "$out"
bi_assert_memory "$pid"
cl_assert_clean_stderr "$err"
rs_pass

rs_case "SIGTERM: status 0, clean stderr"
RS_ERR=$err
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
cl_assert_clean_stderr "$err"
rs_pass
