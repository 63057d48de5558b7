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

RSS_MAX_MIB=128 # resident memory allowed once the big entries are done
if ((RS_SLOW)); then RSS_MAX_MIB=512; fi # ASan keeps 256 MiB of freed memory in quarantine
GOOD=20
MANIFEST=$RS_TMP/manifest.jsonl
GATE=$RS_TMP/release
RECEIVED=$RS_TMP/received

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
bi_exec_handler "$RS_TMP/handler.sh" "$RECEIVED" 0 "$GATE"
# Eight workers: the five bad entries hold five while their children wait at the gate.
conf=$(rs_write_config exec <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
# claim_idle_ms: longer than an entry is held at the gate, or the consumer would claim it
# again while it is still being handled (see config/redstream.conf).
group = { name = "workers"; consumer = "c1"; block_ms = 200; claim_idle_ms = 600000; };
workers = { threads = 8; queue_capacity = 64; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $(rs_free_port); };
streams = (
  { name = "bad"; handler = "exec"; command = ["$RS_TMP/handler.sh"]; timeout_ms = 120000; },
  { name = "good"; handler = "log"; }
);
log = { level = "info"; };
EOF
)

rs_case "bad entries reach the child's stdin byte for byte; the good stream flows meanwhile"
cl_spawn_consumer exec "$conf"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists bad ||
    rs_fail "the consumer never created its groups"
# shellcheck disable=SC2086 # the list of cases
bi_write bad "$MANIFEST" $BI_CASES
nbad=$(wc -l <"$MANIFEST")
all_received() {
    (($(bi_count_files "$RECEIVED" 'bad.*.json') >= nbad))
}
cl_wait_for "$pid" $((30 * RS_SCALE)) all_received ||
    rs_fail "the children received $(bi_count_files "$RECEIVED" 'bad.*.json') of $nbad entries"
# Every bad entry's child now waits at the gate, holding its worker.
bi_xadd_good good 1 $GOOD
good_done() {
    cl_has_lines "$out" good "$GOOD" && cl_settled good
}
cl_wait_for "$pid" $((15 * RS_SCALE)) good_done ||
    rs_fail "good: $(cl_count_lines "$out" good)/$GOOD handled while the bad entries were held"
rs_assert_eq "$nbad" "$(cl_pending bad)" "bad entries pending while their children run"
touch "$GATE"
cl_wait_for "$pid" $((30 * RS_SCALE)) cl_settled bad ||
    rs_fail "bad: pending $(cl_pending bad), lag $(cl_group_field bad lag) after the gate opened"
bi_check_json "$MANIFEST" docs "$RECEIVED"/bad.*.json
# The file names carry REDSTREAM_ID and REDSTREAM_DELIVERY: each entry's own, delivery 1.
rs_assert_eq "$(bi_ids "$MANIFEST" | sed 's/^/bad./; s/$/.1.json/' | sort)" \
    "$(cd "$RECEIVED" && printf '%s\n' bad.*.json | sort)" "REDSTREAM_ID and REDSTREAM_DELIVERY"
rs_assert_eq "$(sort "$RS_TMP/good.ids")" \
    "$(cl_handled "$out" | awk '$1 == "good" { print $2 }' | sort)" "good entries handled"
rss=$(bi_rss_mib "$pid")
echo "  consumer memory: ${rss} MiB resident now, $(bi_hwm_mib "$pid") MiB at the peak"
rs_assert_le "$RSS_MAX_MIB" "$rss" "resident MiB after the big entries"
rs_assert_eq "" "$(ps --ppid "$pid" -o pid=,stat= | awk '$2 ~ /^Z/')" "zombie children"
cl_assert_clean_stderr "$err"
rs_pass

rs_case "SIGTERM: status 0, clean stderr"
RS_ERR=$err
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
cl_assert_clean_stderr "$err"
rs_pass
