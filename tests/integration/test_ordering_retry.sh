#!/usr/bin/env bash
#
# Key order holds across retries and dead letters (issue 12). One stream, ordering = "key",
# key_field = "key": 2,000 entries over 20 keys and 50 without a key (25 without the field,
# 25 with it empty), 8 workers, an http handler whose webhook
# (tests/webhook-receiver/receiver.js) answers after a random 0..2 ms and records every
# request. Quick retries (retry_base_ms 50, retry_max_ms 200). Before the
# consumer starts, the webhook is told to answer:
#
#   - 503 (retryable) to the first two deliveries of one entry in each of four keys and of one
#     entry without the key field: each succeeds on its third delivery;
#   - 400 (permanent) to one entry of a fifth key: it is dead-lettered after one delivery.
#
# Checked from the webhook's record (ordering_tool.py check): per key (and among the entries
# without a key), requests never overlap, ids never go back, an entry is requested again
# only after a 503, and the key moves on to its next entry only after the entry's final
# answer: so no later entry of a key was handled while an earlier one waited for its retry,
# and the first successes are in id order. Each retried entry was answered 503, 503, 200 and,
# while its key waited, other keys' entries were handled (the wait blocks one key only). The
# rejected entry was requested once, is in ord_retry:dlq, and every later entry of its key was
# handled (the key moved on). At the end nothing is pending, the consumer exits 0 on SIGTERM
# with a clean stderr.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/ordering_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ordering_lib.sh"

N_KEYED=2000
N_KEYS=20
N_NOKEY=50
TOTAL=$((N_KEYED + N_NOKEY))
S=ord_retry

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
ol_start_receiver 2

rs_case "the entries are published; the webhook is told which to fail"
ol_publish "$S" uniform "$N_KEYED" "$N_KEYS" "$N_NOKEY" 21
# Early entries of their keys, so that the rest of the stream is still busy while they wait.
RETRIED=()
for spec in k0001:3 k0002:5 k0003:2 k0004:8 -:3; do
    id=$(ol_nth_of_key "$S" "${spec%:*}" "${spec#*:}")
    rs_assert_match '^[0-9]+-[0-9]+$' "$id" "entry ${spec#*:} of key ${spec%:*}"
    RETRIED+=("$id")
done
REJECTED=$(ol_nth_of_key "$S" k0005 4)
rs_assert_match '^[0-9]+-[0-9]+$' "$REJECTED" "entry 4 of key k0005"
retry_json=$(printf '"%s": 2, ' "${RETRIED[@]}")
ol_control "{\"retry\": {${retry_json%, }}, \"reject\": [\"$REJECTED\"]}"
# The later entries of the rejected entry's key, which must all be handled.
AFTER_REJECTED=$(awk -v k=k0005 -v id="$REJECTED" '$2 == k && found { n++ } $1 == id { found = 1 }
    END { print n + 0 }' "$RS_TMP/$S.published")
rs_assert_ge 10 "$AFTER_REJECTED" "entries of k0005 after the rejected one"
rs_pass

rs_case "8 workers handle the stream with retries and a dead letter"
CONF=$(ol_config consumer 8 1024 1000 \
    "max_deliveries = 10; retry_base_ms = 50; retry_max_ms = 200;" \
    "$(ol_http_stream "$S" key key)")
cl_spawn_consumer consumer "$CONF"
CPID=$RS_PID
CERR=$RS_ERR
dead_lettered() {
    rs_cli XRANGE "$S:dlq" - + 2>/dev/null | grep -qxF -- "$REJECTED"
}
done_all() {
    ol_final_at_least "$TOTAL" && cl_settled "$S" && dead_lettered
}
cl_wait_for "$CPID" $((60 * RS_SCALE)) done_all ||
    cl_fail "not done: $(ol_stat distinct_final) of $TOTAL entries with a final answer," \
        "pending $(cl_pending "$S"), dead letters $(rs_cli XLEN "$S:dlq")"
ol_dump
rs_pass

rs_case "nothing pending; exactly the rejected entry dead-lettered"
rs_assert_eq 0 "$(cl_pending "$S")" "XPENDING count of $S"
rs_assert_eq 1 "$(rs_cli XLEN "$S:dlq")" "dead letters"
rs_cli XRANGE "$S:dlq" - + >"$RS_TMP/dlq.txt"
rs_assert_eq "$REJECTED" "$(awk 'prev == "redstream.original_id" { print } { prev = $0 }' \
    "$RS_TMP/dlq.txt")" "the dead letter's redstream.original_id"
rs_pass

rs_case "per key, one at a time in id order across retries; the key moved on after the 400"
ol_check "$S" --lanes key --rejected "$REJECTED"
# The rejected entry was requested once (a 400 is final) and its key's later entries were
# all handled once each, after it.
ol_check "$S" --lanes key --strict --rejected "$REJECTED" --key k0005
rs_pass

rs_case "each retried entry: 503, 503, 200, while other keys kept being handled"
for id in "${RETRIED[@]}"; do
    out=$(ol_tool window "$S" "$id")
    echo "# $id: $out"
    rs_assert_match '^others=[0-9]+ waited_ms=[0-9]+ answers=503,503,200$' "$out" "$id"
    others=${out#others=}
    others=${others%% *}
    # Two retry waits of about 50 and 100 ms while 8 workers serve 19 other keys.
    rs_assert_ge 10 "$others" "other keys' entries handled while $id waited"
done
rs_pass

rs_case "SIGTERM: exit 0, no ERROR line, no sanitizer report"
cl_stop_consumer "$CPID" 10000
rs_assert_exit 0
cl_assert_clean_stderr "$CERR"
rs_assert_file_contains "$CERR" "dead-lettered to $S:dlq"
rs_pass
