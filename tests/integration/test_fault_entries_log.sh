#!/usr/bin/env bash
#
# Bad entries through the log handler (badinput_lib.sh has the catalogue): one field only,
# 10,000 fields, 16 MiB values (random bytes, and text that JSON must escape), names and
# values that are not UTF-8. Each is handled and acknowledged, its JSON line on stdout
# decodes to exactly the bytes written, the consumer's memory comes back down afterwards, and
# a second stream keeps being handled before, while and after. Then the producer's load mode
# publishes 16 MiB payloads (--payload-size), which arrive whole.
# test_consumer_binary.sh covers smaller binary content (NULs, invalid UTF-8, 1 MiB values)
# with the log handler; the exec, http and dead-letter paths are test_fault_entries_exec.sh,
# _http.sh and _dlq.sh.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/badinput_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/badinput_lib.sh"

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"

GOOD=20 # good entries published before, while and after the bad ones

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
conf=$(cl_config log streams="bad:log good:log payload:log")
MANIFEST=$RS_TMP/manifest.jsonl

rs_case "bad entries: handled byte for byte and acknowledged; the good stream keeps flowing"
cl_spawn_consumer log "$conf"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists good ||
    rs_fail "the consumer never created its groups"
bi_xadd_good good 1 $GOOD
# More good entries go in while the bad ones are written and handled.
(
    for ((i = GOOD + 1; i <= 2 * GOOD; i++)); do
        bi_xadd_good good "$i" 1
        sleep 0.1
    done
) &
writer=$!
rs_track "$writer"
# shellcheck disable=SC2086 # the list of cases
bi_write bad "$MANIFEST" $BI_CASES
wait "$writer" || rs_fail "publishing good entries failed"
rs_untrack "$writer"
bi_xadd_good good $((2 * GOOD + 1)) $GOOD
nbad=$(wc -l <"$MANIFEST")
all_done() {
    cl_has_lines "$out" bad "$nbad" && cl_settled bad && bi_good_handled "$out" $((3 * GOOD))
}
cl_wait_for "$pid" $((30 * RS_SCALE)) all_done ||
    cl_fail "bad: $(cl_count_lines "$out" bad)/$nbad handled, pending $(cl_pending bad);" \
        "good: $(cl_count_lines "$out" good)/$((3 * GOOD)), pending $(cl_pending good)"
bi_check_json "$MANIFEST" lines "$out"
bi_check_good "$out"
rs_assert_eq $((3 * GOOD)) "$(wc -l <"$RS_TMP/good.ids")" "good entries published"
bi_assert_memory "$pid"
cl_assert_clean_stderr "$err"
rs_pass

rs_case "redstream-producer --payload-size 16 MiB: published whole and handled whole"
: >"$RS_TMP/good.ids"
rs_produce payload --stream payload --rate 0 --count 2 --payload-size $((16 << 20))
rs_assert_exit 0
rs_assert_file_contains "$RS_OUT" "result: sent=2 errors=0"
payload_done() {
    cl_has_lines "$out" payload 2 && cl_settled payload
}
cl_wait_for "$pid" $((20 * RS_SCALE)) payload_done ||
    rs_fail "payload: $(cl_count_lines "$out" payload)/2 handled, pending $(cl_pending payload)"
"$RS_PYTHON" - "$out" <<'PY' || rs_fail "the 16 MiB messages were not handled whole"
import json, sys
got = []
for raw in open(sys.argv[1], "rb"):
    if raw.startswith(b'{"stream":"payload",'):
        o = json.loads(raw)
        m = o["fields"]["message"]
        n = m.split(" ", 2)[1]
        want = ("Message %s " % n).ljust(16 << 20, "x")
        assert m == want, "message of %d bytes: %r...%r" % (len(m), m[:20], m[-20:])
        assert o["fields"]["type"] == "test", o["fields"]
        got.append(n)
assert sorted(got) == ["#1", "#2"], got
print("  2 messages of exactly 16 MiB handled")
PY
bi_assert_memory "$pid" "the 16 MiB messages"
rs_pass

rs_case "SIGTERM after the bad entries: status 0, clean stderr"
RS_ERR=$err
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
cl_assert_clean_stderr "$err"
rs_pass
