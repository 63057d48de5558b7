#!/usr/bin/env bash
#
# Claiming entries left pending by a consumer that is gone, and removing idle consumers.
#
# (a) A consumer "ghost" (redis-cli) reads 50 entries and never acknowledges them. Then
#     redstream-consumer runs as "alive" with claim_idle_ms 1500: none of the 50 is handled
#     before they have been pending 1.5 s (the log handler's lines are time-stamped as they
#     arrive), all are handled after that, with delivery 2, and nothing stays pending. An
#     entry whose delivery count ghost pushed past max_deliveries (XCLAIM ... 0 <id>, again
#     and again) is claimed too, but goes straight to events:dlq without being handled.
# (b) Once its entries are claimed, ghost (idle longer than idle_consumer_timeout_ms, nothing
#     pending) is removed from the group; alive itself stays.
# (c) A consumer "busy" that still has entries pending is never removed, however idle, while an
#     idle one with nothing pending ("lazy") is (claim_idle_ms is huge here, so busy's entries
#     stay where they are).

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

GHOSTED=50
CLAIM_IDLE_MS=1500
MAX_DELIVERIES=3
BUMPS=4 # XCLAIMs by ghost of the overdue entry: delivered 1 + 4 times, 6 once claimed

rs_start_redis

# write_conf NAME CLAIM_IDLE_MS IDLE_CONSUMER_TIMEOUT_MS: a configuration for consumer
# "alive", log handler on events; prints its path.
write_conf() {
    rs_write_config "$1" <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "alive"; block_ms = 200; read_count = 100;
          max_deliveries = $MAX_DELIVERIES; claim_idle_ms = $2; retry_base_ms = 100;
          retry_max_ms = 1000; idle_consumer_timeout_ms = $3; };
workers = { threads = 4; queue_capacity = 256; shutdown_timeout_ms = 5000; };
streams = ( { name = "events"; handler = "log"; } );
health = { port = $(rs_free_port); };
log = { level = "info"; };
EOF
}

# The consumer's stdout goes through a FIFO to this stamper, which writes "<ms> <line>" for
# each line as it arrives (wall clock, like cl_now_ms): a line is handled no later than that.
cat >"$RS_TMP/stamp.py" <<'PY'
import os, sys, time
src, dst = open(sys.argv[1], "rb"), open(sys.argv[2], "wb")
for line in src:
    dst.write(b"%d %s" % (int(time.time() * 1000), line))
    dst.flush()
PY

# spawn_stamped NAME CONF: starts redstream-consumer -c CONF with stdout stamped into
# $RS_TMP/NAME.out; sets PID, STAMPER, OUT and ERR.
spawn_stamped() {
    local fifo=$RS_TMP/$1.fifo
    mkfifo "$fifo"
    OUT=$RS_TMP/$1.out
    : >"$OUT"
    rs_spawn "$1-stamper" "$RS_PYTHON" "$RS_TMP/stamp.py" "$fifo" "$OUT"
    STAMPER=$RS_PID
    cl_spawn_io "$1" /dev/null "$fifo" "$RS_CONSUMER" -c "$2"
    PID=$RS_PID
    ERR=$RS_ERR
}

# consumers: the group's consumers on events as "name pending idle" lines.
consumers() {
    rs_cli XINFO CONSUMERS events workers | awk '
        prev == "name" { name = $0 }
        prev == "pending" { pending = $0 }
        prev == "idle" { print name, pending, $0 }
        { prev = $0 }'
}

# listed NAME: true while NAME is a consumer of the group.
listed() {
    consumers | grep -q "^$1 "
}

# xadd_n FIRST COUNT: XADDs entries n = FIRST.. with a payload; prints their ids.
xadd_n() {
    local i
    for ((i = $1; i < $1 + $2; i++)); do
        printf 'XADD events * n %d payload "entry %d"\n' "$i" "$i"
    done | rs_cli
}

rs_cli XGROUP CREATE events workers 0 MKSTREAM >/dev/null
xadd_n 1 "$GHOSTED" >"$RS_TMP/ghosted.ids"
overdue=$(xadd_n 0 1)
rs_assert_eq "$GHOSTED" "$(grep -cE '^[0-9]+-[0-9]+$' "$RS_TMP/ghosted.ids")" "ids added"
read_ms=$(cl_now_ms)
rs_cli XREADGROUP GROUP workers ghost COUNT $((GHOSTED + 1)) STREAMS events '>' >/dev/null
for ((i = 0; i < BUMPS; i++)); do
    rs_cli XCLAIM events workers ghost 0 "$overdue" >/dev/null
done
rs_assert_eq "ghost $((GHOSTED + 1))" "$(consumers | awk '{ print $1, $2 }')" \
    "consumers and their pending counts before the start"
rs_assert_eq $((1 + BUMPS)) \
    "$(rs_cli XPENDING events workers "$overdue" "$overdue" 1 | sed -n 4p)" \
    "delivery count of the overdue entry"

# --- (a) claimed after claim_idle_ms -------------------------------------------------------------
rs_case "$GHOSTED entries left pending by a gone consumer are claimed after ${CLAIM_IDLE_MS} ms"
spawn_stamped alive "$(write_conf alive "$CLAIM_IDLE_MS" 1000)"
RS_ERR=$ERR
all_claimed() {
    (($(wc -l <"$OUT") >= GHOSTED)) && (($(rs_cli XLEN events:dlq) >= 1)) && cl_settled events
}
cl_wait_for "$PID" $((10 * RS_SCALE)) all_claimed ||
    cl_fail "not all claimed: $(wc -l <"$OUT") lines, $(rs_cli XLEN events:dlq) dead letters," \
        "pending $(cl_pending events)"
"$RS_PYTHON" - "$RS_TMP/ghosted.ids" "$OUT" "$read_ms" "$CLAIM_IDLE_MS" "$overdue" <<'PY' ||
import json, sys
ids_path, out_path, read_ms, idle, overdue = sys.argv[1:6]
read_ms, idle = int(read_ms), int(idle)
want = [l.strip() for l in open(ids_path) if l.strip()]
seen, problems = {}, []
for line in open(out_path, "rb"):
    ms, raw = line.split(b" ", 1)
    o = json.loads(raw)
    if o["id"] in seen:
        problems.append("%s handled twice" % o["id"])
    seen[o["id"]] = int(ms)
    if o["id"] == overdue:
        problems.append("the overdue entry %s was handled: %r" % (overdue, raw))
    elif o["delivery"] != 2:
        problems.append("%s handled with delivery %d, expected 2" % (o["id"], o["delivery"]))
missing = [i for i in want if i not in seen]
if missing:
    problems.append("never handled: %s" % missing[:5])
if seen:
    first, last = min(seen.values()) - read_ms, max(seen.values()) - read_ms
    print("  handled from %d ms to %d ms after ghost read them" % (first, last))
    # The stamp is when the line reached the stamper, after the handler ran: never early.
    if first < idle - 20:
        problems.append("handled %d ms after the read, before claim_idle_ms (%d)" % (first, idle))
for p in problems[:10]:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
    rs_fail "the claimed entries were not handled as expected (see above)"
rs_assert_eq 0 "$(cl_pending events)" "XPENDING count"
rs_assert_eq 0 "$(cl_group_field events lag)" "group lag"
rs_assert_file_contains "$ERR" "stream=events claimed "
rs_pass

rs_case "an entry claimed after more than max_deliveries deliveries is dead-lettered unhandled"
rs_assert_eq 1 "$(rs_cli XLEN events:dlq)" "entries in events:dlq"
rs_cli --json -2 XRANGE events:dlq - + >"$RS_TMP/dlq.json"
"$RS_PYTHON" - "$RS_TMP/dlq.json" "$overdue" $((2 + BUMPS)) <<'PY' ||
import json, sys
path, overdue, count = sys.argv[1:4]
(dlq_id, flat), = json.load(open(path))
f = dict(zip(flat[::2], flat[1::2]))
problems = []
if flat[:4] != ["n", "0", "payload", "entry 0"]:
    problems.append("original fields %r" % flat[:4])
for k, v in (("redstream.original_stream", "events"), ("redstream.original_id", overdue),
             ("redstream.delivery_count", count)):
    if f.get(k) != v:
        problems.append("%s is %r, expected %r" % (k, f.get(k), v))
if "max_deliveries" not in f.get("redstream.last_error", ""):
    problems.append("last_error %r does not mention max_deliveries" % f.get("redstream.last_error"))
print("  %s: %s" % (dlq_id, f.get("redstream.last_error")))
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
    rs_fail "the dead letter is not what it should be (see above)"
rs_assert_file_lacks "$OUT" "\"id\":\"$overdue\""
grep -qE "id=$overdue dead-lettered to events:dlq as [0-9-]+ after $((2 + BUMPS)) deliveries" \
    "$ERR" ||
    rs_fail "no 'dead-lettered ... after $((2 + BUMPS)) deliveries' line for $overdue"
rs_pass

# --- (b) the gone consumer is removed ------------------------------------------------------------
rs_case "ghost, idle with nothing pending, is removed from the group; alive is not"
ghost_gone() {
    ! listed ghost
}
cl_wait_for "$PID" $((10 * RS_SCALE)) ghost_gone ||
    rs_fail "ghost is still in the group: $(consumers | tr '\n' ';')"
rs_assert_file_contains "$ERR" "removed consumer ghost from group workers"
# Not before its entries had been claimed away.
claimed_line=$(grep -n "stream=events claimed " "$ERR" | head -n 1 | cut -d: -f1)
removed_line=$(grep -n "removed consumer ghost" "$ERR" | head -n 1 | cut -d: -f1)
rs_assert_le "$removed_line" "$claimed_line" "line of the first claim (before the removal)"
listed alive || rs_fail "alive was removed from its own group: $(consumers | tr '\n' ';')"
cl_stop_consumer "$PID" 5000
rs_assert_exit 0
rs_wait_exit "$STAMPER" $((5 * RS_SCALE))
cl_assert_clean_stderr "$ERR"
rs_pass

# --- (c) a consumer with pending entries stays ---------------------------------------------------
rs_case "busy, idle but with entries pending, stays in the group; lazy, with none, is removed"
xadd_n 100 5 >"$RS_TMP/busy.ids"
# busy first, so that it is always at least as idle as lazy.
rs_cli XREADGROUP GROUP workers busy COUNT 5 STREAMS events '>' >/dev/null
rs_cli XGROUP CREATECONSUMER events workers lazy >/dev/null
# Both idle longer than idle_consumer_timeout_ms (500) before the consumer's first claim pass.
lazy_idle() {
    consumers | awk '$1 == "lazy" && $3 > 700 { found = 1 } END { exit !found }'
}
RS_WAIT_TIMEOUT=10 rs_wait_for lazy_idle || rs_fail "lazy never became idle: $(consumers)"
spawn_stamped second "$(write_conf second 600000 500)"
RS_ERR=$ERR
cl_wait_for "$PID" $((10 * RS_SCALE)) grep -qs "removed consumer lazy from group workers" "$ERR" ||
    rs_fail "lazy was not removed: $(consumers | tr '\n' ';')"
rs_assert_file_lacks "$ERR" "removed consumer busy"
rs_assert_eq "busy 5" "$(consumers | awk '$1 == "busy" { print $1, $2 }')" \
    "busy and its pending count"
rs_assert_eq 5 "$(cl_pending events)" "XPENDING count"
while read -r id; do
    rs_assert_file_lacks "$OUT" "\"id\":\"$id\""
done <"$RS_TMP/busy.ids"
cl_stop_consumer "$PID" 5000
rs_assert_exit 0
rs_wait_exit "$STAMPER" $((5 * RS_SCALE))
cl_assert_clean_stderr "$ERR"
rs_pass
