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

GOOD=20
MANIFEST=$RS_TMP/manifest.jsonl
GATE=$RS_TMP/release
RECEIVED=$RS_TMP/received

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
bi_start_receiver receiver "$RECEIVED" "$GATE"
conf=$(bi_gated_config http \
    "handler = \"http\"; url = \"http://127.0.0.1:$BI_RECEIVER_PORT/gate\"; timeout_ms = 120000;")

rs_case "bad entries reach the webhook byte for byte; the good stream flows meanwhile"
cl_spawn_consumer http "$conf"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists bad ||
    rs_fail "the consumer never created its groups"
# The receiver holds every bad entry's request, and with it a worker each, while good is
# handled.
bi_hold_at_gate "$pid" "$out" "$MANIFEST" "$RECEIVED" '*.json' "$GATE" $GOOD
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
