#!/usr/bin/env bash
#
# Bad entries through the http handler (badinput_lib.sh has the catalogue): one field only,
# 10,000 fields, 16 MiB values, names and values that are not UTF-8. A Python receiver saves
# each request's body; each decodes to exactly the bytes written, carries the entry's
# Idempotency-Key, and the entry is acknowledged once the receiver answers 200. While the
# receiver holds every bad entry's request (a gate file), a second stream keeps being handled
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
bi_start_receiver receiver "$RECEIVED" "$GATE"
# Eight workers: the five bad entries hold five while the receiver holds their requests.
conf=$(rs_write_config http <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
# claim_idle_ms: longer than an entry is held at the gate, or the consumer would claim it
# again while it is still being handled (see config/redstream.conf).
group = { name = "workers"; consumer = "c1"; block_ms = 200; claim_idle_ms = 600000; };
workers = { threads = 8; queue_capacity = 64; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $(rs_free_port); };
streams = (
  { name = "bad"; handler = "http"; url = "http://127.0.0.1:$BI_RECEIVER_PORT/gate";
    timeout_ms = 120000; },
  { name = "good"; handler = "log"; }
);
log = { level = "info"; };
EOF
)

rs_case "bad entries reach the webhook byte for byte; the good stream flows meanwhile"
cl_spawn_consumer http "$conf"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists bad ||
    rs_fail "the consumer never created its groups"
# shellcheck disable=SC2086 # the list of cases
bi_write bad "$MANIFEST" $BI_CASES
nbad=$(wc -l <"$MANIFEST")
all_received() {
    (($(bi_count_files "$RECEIVED" '*.json') >= nbad))
}
cl_wait_for "$pid" $((30 * RS_SCALE)) all_received ||
    rs_fail "the receiver got $(bi_count_files "$RECEIVED" '*.json') of $nbad requests"
# The receiver now holds every bad entry's request, and with it a worker each.
bi_xadd_good good 1 $GOOD
good_done() {
    cl_has_lines "$out" good "$GOOD" && cl_settled good
}
cl_wait_for "$pid" $((15 * RS_SCALE)) good_done ||
    rs_fail "good: $(cl_count_lines "$out" good)/$GOOD handled while the bad requests were held"
rs_assert_eq "$nbad" "$(cl_pending bad)" "bad entries pending while their requests are held"
touch "$GATE"
cl_wait_for "$pid" $((30 * RS_SCALE)) cl_settled bad ||
    rs_fail "bad: pending $(cl_pending bad), lag $(cl_group_field bad lag) after the gate opened"
bi_check_json "$MANIFEST" docs "$RECEIVED"/*.json
# Each request's Idempotency-Key is the stream and id of the entry in its body.
"$RS_PYTHON" - "$RECEIVED" <<'PY' || rs_fail "a request's headers do not match its body"
import glob, json, sys
for path in sorted(glob.glob(sys.argv[1] + "/*.json")):
    body = json.load(open(path, "rb"))
    heads = dict(l.rstrip("\n").split(": ", 1) for l in open(path[:-5] + ".headers"))
    heads = {k.lower(): v for k, v in heads.items()}
    want = "%s/%s" % (body["stream"], body["id"])
    assert heads.get("idempotency-key") == want, (path, heads.get("idempotency-key"), want)
    assert heads.get("content-type") == "application/json", (path, heads.get("content-type"))
PY
rs_assert_eq "$(sort "$RS_TMP/good.ids")" \
    "$(cl_handled "$out" | awk '$1 == "good" { print $2 }' | sort)" "good entries handled"
rss=$(bi_rss_mib "$pid")
echo "  consumer memory: ${rss} MiB resident now, $(bi_hwm_mib "$pid") MiB at the peak"
rs_assert_le "$RSS_MAX_MIB" "$rss" "resident MiB after the big entries"
cl_assert_clean_stderr "$err"
rs_pass

rs_case "SIGTERM: status 0, clean stderr"
RS_ERR=$err
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
cl_assert_clean_stderr "$err"
rs_pass
