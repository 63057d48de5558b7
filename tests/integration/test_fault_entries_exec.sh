#!/usr/bin/env bash
#
# Bad entries through the exec handler (badinput_lib.sh has the catalogue): one field only,
# 10,000 fields, 16 MiB values, names and values that are not UTF-8. Each child reads the
# entry's JSON on stdin; what it read decodes to exactly the bytes written, REDSTREAM_ID
# names the entry, and the entry is acknowledged once the child exits 0. While every bad
# entry's child is still running (held by a gate file), a second stream keeps being handled
# by the other workers. The consumer's memory comes back down afterwards.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/badinput_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/badinput_lib.sh"

GOOD=20
MANIFEST=$RS_TMP/manifest.jsonl
GATE=$RS_TMP/release
RECEIVED=$RS_TMP/received

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
bi_exec_handler "$RS_TMP/handler.sh" "$RECEIVED" 0 "$GATE"
conf=$(bi_gated_config exec \
    "handler = \"exec\"; command = [\"$RS_TMP/handler.sh\"]; timeout_ms = 120000;")

rs_case "bad entries reach the child's stdin byte for byte; the good stream flows meanwhile"
cl_spawn_consumer exec "$conf"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists bad ||
    rs_fail "the consumer never created its groups"
# Every bad entry's child waits at the gate, holding its worker, while good is handled.
bi_hold_at_gate "$pid" "$out" "$MANIFEST" "$RECEIVED" 'bad.*.json' "$GATE" $GOOD
bi_check_json "$MANIFEST" docs "$RECEIVED"/bad.*.json
# The file names carry REDSTREAM_ID and REDSTREAM_DELIVERY: each entry's own, delivery 1.
rs_assert_eq "$(bi_ids "$MANIFEST" | sed 's/^/bad./; s/$/.1.json/' | sort)" \
    "$(cd "$RECEIVED" && printf '%s\n' bad.*.json | sort)" "REDSTREAM_ID and REDSTREAM_DELIVERY"
bi_check_good "$out"
bi_assert_memory "$pid"
rs_assert_eq "" "$(ps --ppid "$pid" -o pid=,stat= | awk '$2 ~ /^Z/')" "zombie children"
cl_assert_clean_stderr "$err"
rs_pass

rs_case "SIGTERM: status 0, clean stderr"
RS_ERR=$err
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
cl_assert_clean_stderr "$err"
rs_pass
