#!/usr/bin/env bash
#
# redstream-consumer in cluster mode through a failover: a private Redis Cluster of 3 masters
# with one replica each (password), a stream on each master (log handler) plus stream SLOW on
# master 1 (exec handler, 0.5 s per entry), one consumer whose only seed is the master that is
# killed.
#   a. the streams settle (the starting point);
#   b. entries flow to the stream on master 1 in batches of BATCH, each batch followed by
#      WAIT 1 1000 on the same connection: a batch is "confirmed" when WAIT counted the
#      replica. Entries flow to the other two streams as well. Four entries of SLOW are being
#      handled when master 1 is killed (SIGKILL) and its replica takes over while the consumer
#      runs; the writer follows the slot to the new master (rc_owner) and goes on;
#   c. every confirmed entry is on the new master and was handled, every entry on the new
#      master's stream was handled, and the group settles there (nothing pending, lag 0); the
#      SLOW entries whose master died under their handler settle on the new master too;
#   d. the other streams were unaffected: entries of both were handled while master 1 was
#      down (0.7-1.9 s after the kill, before any node may suspect it and the cluster may
#      answer CLUSTERDOWN), every entry written to them was handled, both settle;
#   e. the consumer followed the failover ("slot map changed" naming the new master, a
#      reconnect counted in /metrics), /healthz stayed 200 or came back to it, /readyz says
#      200, and it stops cleanly (no ERROR line: CLUSTERDOWN during a failover is a warning);
#   f. in the same window, entries of the other streams were acknowledged too (/metrics,
#      polled every 100 ms), though SLOW's acks for the dead master were due by then: the
#      acknowledger must not wait for master 1 before it acknowledges the others; and no
#      entry of theirs was handled twice (as one is when its ack waits past claim_idle_ms).

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/cluster_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"
# shellcheck source=tests/integration/cluster_consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster_consumer_lib.sh"

PER_STREAM=100      # entries on each stream before the flow starts
BATCH=10            # entries per batch of the writers
MAX_BATCHES=2000    # bound on each writer's loop
CONFIRMED_BEFORE=10 # confirmed batches on master 1 before it is killed
AFTER=5             # batches written to the new master before the writers stop
RC_TIMEOUT=$((30 * RS_SCALE))

rc_start_cluster 3 1

S0=$(rc_key_on_master 0 orders)
S1=$(rc_key_on_master 1 orders)
S2=$(rc_key_on_master 2 orders)
SLOW=$(rc_key_on_master 1 slow)
OLD=${RC_MASTERS[1]}

# The exec handler of stream SLOW (on master 1): half a second of work, then the entry's id
# appended to slow.ids.
cat >"$RS_TMP/slow.sh" <<EOF
#!/bin/sh
sleep 0.5
echo "\$REDSTREAM_ID" >>"$RS_TMP/slow.ids"
EOF
chmod +x "$RS_TMP/slow.sh"
slow_handled() { sort -u "$RS_TMP/slow.ids" 2>/dev/null | wc -l; }

# The consumer's stdout goes through a FIFO to this stamper, which copies each line to OUT and
# writes "<ms> <line>" to STAMPED as it arrives (wall clock, like cl_now_ms): an entry was
# handled no later than its stamp.
cat >"$RS_TMP/stamp.py" <<'PY'
import sys, time
src, out, stamped = open(sys.argv[1], "rb"), open(sys.argv[2], "wb"), open(sys.argv[3], "wb")
for line in src:
    out.write(line)
    out.flush()
    stamped.write(b"%d %s" % (int(time.time() * 1000), line))
    stamped.flush()
PY

# http_code PORT PATH: the status of GET PATH on the consumer's HTTP server (000: no answer).
http_code() {
    curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1$2" 2>/dev/null || true
}

rs_case "a. three streams on three masters settle"
CONF=$(cc_config a c1 "$OLD" threads=8 exec="$RS_TMP/slow.sh" "$S0:log" "$S1:log" "$S2:log" \
    "$SLOW:exec")
HPORT=$(cc_health_port "$CONF")
for s in "$S0" "$S1" "$S2"; do cc_xadd "$s" 1 "$PER_STREAM"; done
cc_xadd "$SLOW" 1 4
mkfifo "$RS_TMP/a.fifo"
OUT=$RS_TMP/a.out
STAMPED=$RS_TMP/a.stamped
rs_spawn stamper "$RS_PYTHON" "$RS_TMP/stamp.py" "$RS_TMP/a.fifo" "$OUT" "$STAMPED"
cl_spawn_io a /dev/null "$RS_TMP/a.fifo" "$RS_CONSUMER" -c "$CONF"
CPID=$RS_PID
ERR=$RS_ERR
for s in "$S0" "$S1" "$S2"; do
    cl_wait_for "$CPID" $((30 * RS_SCALE)) cc_settled "$s" ||
        rs_fail "$s not settled: $(tail -n 5 "$ERR")"
    rs_assert_eq "$PER_STREAM" "$(cc_unique_handled "$OUT" "$s")" "entries of $s handled"
done
cl_wait_for "$CPID" $((30 * RS_SCALE)) cc_settled "$SLOW" || rs_fail "$SLOW not settled"
rs_assert_eq 4 "$(slow_handled)" "entries of $SLOW handled"
rs_assert_file_contains "$ERR" "slot map fetched"
rs_assert_eq 200 "$(http_code "$HPORT" /readyz)" "/readyz before the failover"
rs_pass

rs_case "b. master 1 killed while entries flow; its replica takes over"
STOP=$RS_TMP/stop
mkdir -p "$RS_TMP/w"

# write_batches STREAM TAG FIRST: until $STOP exists (at most MAX_BATCHES), writes batches of
# BATCH entries "Message #N" (N from FIRST) to STREAM's master as rc_owner sees it now, each
# followed by WAIT 1 1000 on the same connection. Batch b's replies go to w/TAG.b and a line
# "b port wait ids" to w/TAG.log: the master asked, WAIT's reply (or "-") and how many ids
# came back. Runs in the background; rc_owner fails while no node answers, and that batch is
# then not written. The pause between batches only paces the flow.
write_batches() {
    local stream=$1 tag=$2 n=$3 b owner out wait ids i
    for ((b = 1; b <= MAX_BATCHES; b++)); do
        [[ ! -e $STOP ]] || break
        out=$RS_TMP/w/$tag.$b
        owner=$(rc_owner "$stream" 2>/dev/null) || owner=""
        if [[ -n $owner ]]; then
            {
                for ((i = n; i < n + BATCH; i++)); do
                    printf 'XADD %s * message "Message #%d" type test timestamp 2026-01-01T00:00:00Z\n' \
                        "$stream" "$i"
                done
                printf 'WAIT 1 1000\n'
            } | _rc_cli_t 5 "$owner" >"$out" 2>&1 || true
        else
            : >"$out"
        fi
        wait=$(tail -n 1 "$out")
        [[ $wait =~ ^[0-9]+$ ]] || wait=-
        ids=$(grep -cE '^[0-9]+-[0-9]+$' "$out") || true
        echo "$b ${owner:--} $wait $ids" >>"$RS_TMP/w/$tag.log"
        n=$((n + BATCH))
        sleep 0.05
    done
}

# batches TAG [PORT]: how many of TAG's batches were written whole (BATCH ids), to PORT only
# when given. confirmed TAG: how many of them WAIT confirmed as replicated.
batches() {
    awk -v b="$BATCH" -v p="${2:-}" '$4 == b && (p == "" || $2 == p)' "$RS_TMP/w/$1.log" \
        2>/dev/null | wc -l
}
confirmed() {
    awk -v b="$BATCH" '$4 == b && $3 != "-" && $3 >= 1' "$RS_TMP/w/$1.log" 2>/dev/null | wc -l
}
enough_confirmed() { (($(confirmed s1) >= CONFIRMED_BEFORE)); }

# ids_of TAG FILTER: the ids of TAG's batches that the awk FILTER over "b port wait ids" keeps.
ids_of() {
    local b
    awk -v b="$BATCH" "\$4 == b && ($2) { print \$1 }" "$RS_TMP/w/$1.log" | while read -r b; do
        grep -E '^[0-9]+-[0-9]+$' "$RS_TMP/w/$1.$b"
    done
}

write_batches "$S1" s1 100001 &
W1=$!
rs_track "$W1"
write_batches "$S0" s0 100001 &
W0=$!
rs_track "$W0"
write_batches "$S2" s2 100001 &
W2=$!
rs_track "$W2"

# /healthz, every 100 ms until $STOP, one status a line.
(
    for ((k = 0; k < 100000; k++)); do
        [[ ! -e $STOP ]] || break
        http_code "$HPORT" /healthz >>"$RS_TMP/healthz.log"
        echo >>"$RS_TMP/healthz.log"
        sleep 0.1
    done
) &
HZ=$!
rs_track "$HZ"
# The acknowledged totals of the other two streams from /metrics, every 100 ms until $STOP:
# "<ms> <acked on S0> <acked on S2>" lines.
(
    for ((k = 0; k < 100000; k++)); do
        [[ ! -e $STOP ]] || break
        curl -s -m 3 "http://127.0.0.1:$HPORT/metrics" 2>/dev/null | awk -v t="$(cl_now_ms)" \
            -v a="redstream_messages_acked_total{stream=\"$S0\"}" \
            -v b="redstream_messages_acked_total{stream=\"$S2\"}" '
            $1 == a { x = $2 } $1 == b { y = $2 }
            END { if (x != "" && y != "") print t, x, y }' >>"$RS_TMP/acked.log"
        sleep 0.1
    done
) &
MP=$!
rs_track "$MP"

cl_wait_for "$CPID" $((20 * RS_SCALE)) enough_confirmed ||
    rs_fail "only $(confirmed s1) confirmed batches on $S1: $(tail -n 3 "$RS_TMP/w/s1.log")"
s1_flowing() { (($(cc_unique_handled "$OUT" "$S1") > PER_STREAM + BATCH)); }
cl_wait_for "$CPID" $((20 * RS_SCALE)) s1_flowing || rs_fail "the consumer does not follow $S1"

# Four entries of SLOW being handled when master 1 dies: their acks are due half a second
# later, when their master is gone.
cc_xadd "$SLOW" 5 4
slow_delivered() { [[ $(rc_cli "$OLD" XPENDING "$SLOW" workers | head -n 1) == 4 ]]; }
cl_wait_for "$CPID" $((10 * RS_SCALE)) slow_delivered || rs_fail "$SLOW's entries not delivered"
KILL_MS=$(cl_now_ms)
rc_kill_master 1
FO_MS=$(cl_now_ms)
NEW=$RC_NEW_MASTER
echo "  master $OLD killed, replica $NEW promoted after $((FO_MS - KILL_MS)) ms"
rs_assert_eq "$NEW" "$(rc_owner "$S1")" "owner of $S1 after the failover"

after_failover() { (($(batches s1 "$NEW") >= AFTER)); }
cl_wait_for "$CPID" $((30 * RS_SCALE)) after_failover ||
    rs_fail "the writer did not reach $NEW: $(tail -n 3 "$RS_TMP/w/s1.log")"
touch "$STOP"
for pid in "$W1" "$W0" "$W2" "$HZ" "$MP"; do
    rs_wait_exit "$pid" 30
done
echo "  $S1: $(batches s1) batches written ($(confirmed s1) confirmed as replicated, $(batches s1 "$NEW") to the new master)"
rs_pass

rs_case "c. every confirmed entry handled; the group settles on the new master"
ids_of s1 "\$2 == \"$OLD\" && \$3 != \"-\" && \$3 >= 1" | sort -u >"$RS_TMP/confirmed.ids"
ids_of s1 "\$2 == \"$NEW\"" | sort -u >"$RS_TMP/new.ids"
rs_assert_ge "$CONFIRMED_BEFORE" "$(($(wc -l <"$RS_TMP/confirmed.ids") / BATCH))" \
    "confirmed batches"
rs_assert_ge $((AFTER * BATCH)) "$(wc -l <"$RS_TMP/new.ids")" "entries written to the new master"
# What the new master holds: the replica had every confirmed entry (Redis's promise for a
# WAIT that counted it), so nothing confirmed may be missing there.
rc_cli "$NEW" XRANGE "$S1" - + | grep -E '^[0-9]+-[0-9]+$' | sort -u >"$RS_TMP/stream.ids"
MISSING=$(comm -23 "$RS_TMP/confirmed.ids" "$RS_TMP/stream.ids" | wc -l)
rs_assert_eq 0 "$MISSING" "confirmed entries missing from $S1 on $NEW"
rs_assert_eq 0 "$(comm -23 "$RS_TMP/new.ids" "$RS_TMP/stream.ids" | wc -l)" \
    "entries written to $NEW missing from it"
STREAM_IDS=$(wc -l <"$RS_TMP/stream.ids")
# handled_ids STREAM: the distinct ids of STREAM in the log handler's output, sorted.
handled_ids() {
    cl_handled "$OUT" | awk -v s="$1" '$1 == s { print $2 }' | sort -u
}
all_on_new_handled() {
    [[ $(comm -23 "$RS_TMP/stream.ids" <(handled_ids "$S1") | wc -l) == 0 ]]
}
cl_wait_for "$CPID" $((40 * RS_SCALE)) all_on_new_handled ||
    rs_fail "$S1: $(comm -23 "$RS_TMP/stream.ids" <(handled_ids "$S1") | wc -l) of $STREAM_IDS entries not handled"
cl_wait_for "$CPID" $((30 * RS_SCALE)) cc_settled "$S1" ||
    rs_fail "$S1 not settled on $NEW: $(rc_cli "$NEW" XPENDING "$S1" workers | head -n 1) pending"
rs_assert_eq 0 "$(comm -23 "$RS_TMP/confirmed.ids" <(handled_ids "$S1") | wc -l)" \
    "confirmed entries not handled"
LOST=$(comm -23 <(ids_of s1 "\$2 == \"$OLD\"" | sort -u) "$RS_TMP/stream.ids" | wc -l)
echo "  $STREAM_IDS entries on $S1, all handled; $LOST unconfirmed ones lost with the old master"
# The entries of SLOW handled while their master died: acknowledged on the new one.
cl_wait_for "$CPID" $((30 * RS_SCALE)) cc_settled "$SLOW" || rs_fail "$SLOW not settled on $NEW"
rs_assert_eq 8 "$(slow_handled)" "entries of $SLOW handled"
rs_pass

rs_case "d. the other streams were unaffected"
for s in "$S0" "$S2"; do
    cl_wait_for "$CPID" $((30 * RS_SCALE)) cc_settled "$s" || rs_fail "$s not settled"
done
# While master 1 is unreachable and not yet marked failing (no node can suspect it before
# the 2 s node timeout has passed; after that the cluster may answer CLUSTERDOWN everywhere
# until the replica takes over), the other masters serve as before. The window starts once
# SLOW's acks are due (its handlers end about 0.5 s after the kill).
WIN_A=$((KILL_MS + 700))
WIN_B=$((KILL_MS + 1900))
for tag in s0 s2; do
    s=$S0
    [[ $tag == s0 ]] || s=$S2
    # Every id a writer got back is on the stream (its master never went away), whole batch
    # or not (a batch may meet CLUSTERDOWN part of the way).
    WRITTEN=$(cat "$RS_TMP/w/$tag".[0-9]* | grep -cE '^[0-9]+-[0-9]+$') || true
    rs_assert_ge $((AFTER * BATCH)) "$WRITTEN" "entries written to $s"
    rs_assert_eq "$((PER_STREAM + WRITTEN))" "$(cc_unique_handled "$OUT" "$s")" "entries of $s handled"
    DURING=$(awk -v a="$WIN_A" -v b="$WIN_B" -v s="\"stream\":\"$s\"" \
        '$1 > a && $1 < b && index($0, s) { n++ } END { print n + 0 }' "$STAMPED")
    echo "  $s: $((PER_STREAM + WRITTEN)) entries handled, $DURING of them 0.7-1.9 s after the kill"
    rs_assert_ge 1 "$DURING" "entries of $s handled 0.7-1.9 s after master 1 was killed"
done
rs_pass

rs_case "e. the consumer followed; health and readiness"
rs_assert_file_contains "$ERR" "slot map changed"
grep -F "slot map changed" "$ERR" | grep -qF "127.0.0.1:$NEW (" ||
    rs_fail "no \"slot map changed\" line names $NEW: $(grep -F "slot map" "$ERR" | tail -n 2)"
BAD=$(grep -cvE '^200$' "$RS_TMP/healthz.log") || true
echo "  /healthz: $(wc -l <"$RS_TMP/healthz.log") polls, $BAD not 200"
healthz_ok() { [[ $(http_code "$HPORT" /healthz) == 200 ]]; }
readyz_ok() { [[ $(http_code "$HPORT" /readyz) == 200 ]]; }
cl_wait_for "$CPID" $((30 * RS_SCALE)) healthz_ok || rs_fail "/healthz: $(http_code "$HPORT" /healthz)"
cl_wait_for "$CPID" $((30 * RS_SCALE)) readyz_ok ||
    rs_fail "/readyz: $(curl -s -m 2 "http://127.0.0.1:$HPORT/readyz")"
curl -sf -m 5 "http://127.0.0.1:$HPORT/metrics" >"$RS_TMP/metrics.txt" || rs_fail "GET /metrics failed"
RECONNECTS=$(awk '$1 == "redstream_redis_reconnects_total" { print $2 }' "$RS_TMP/metrics.txt")
rs_assert_ge 1 "${RECONNECTS:-0}" "redstream_redis_reconnects_total"
cl_stop_consumer "$CPID"
rs_assert_exit 0
# Between the failure report and the promotion Redis answers CLUSTERDOWN on every master; the
# readers log that refusal as a warning and follow it: no ERROR line at all.
cl_assert_clean_stderr "$ERR"
rs_pass

rs_case "f. the other streams' entries were acknowledged while master 1 was down, once"
# /metrics's acknowledged totals over the same window: the acknowledger (one thread for all
# streams) has SLOW's acks for the dead master 1 by then, and must not wait for master 1
# before it acknowledges entries of the other masters.
read -r ACK0 ACK2 < <(awk -v a="$WIN_A" -v b="$WIN_B" '
    $1 > a && $1 < b { if (n++ == 0) { x0 = $2; y0 = $3 } x1 = $2; y1 = $3 }
    END { print x1 - x0 + 0, y1 - y0 + 0 }' "$RS_TMP/acked.log")
# When the acknowledgements came back, for the report.
RESUMED=$(awk -v a="$WIN_A" '$1 > a && $2 > base && base != "" { print $1; exit }
    $1 <= a { base = $2 }' "$RS_TMP/acked.log")
echo "  acknowledged 0.7-1.9 s after the kill: $ACK0 on $S0, $ACK2 on $S2;" \
    "the first new ack of $S0 after 0.7 s seen $((${RESUMED:-0} - KILL_MS)) ms after the kill (failover done after $((FO_MS - KILL_MS)) ms)"
# Entries handled and not acknowledged for claim_idle_ms are claimed again (by this very
# consumer) and handled twice; a master that stayed up gives no reason for that.
DUP0=$(($(cl_handled "$OUT" | awk -v s="$S0" '$1 == s' | wc -l) - $(cc_unique_handled "$OUT" "$S0")))
DUP2=$(($(cl_handled "$OUT" | awk -v s="$S2" '$1 == s' | wc -l) - $(cc_unique_handled "$OUT" "$S2")))
echo "  handled twice: $DUP0 entries of $S0, $DUP2 of $S2"
rs_assert_ge 1 "$ACK0" "entries of $S0 acknowledged 0.7-1.9 s after master 1 was killed"
rs_assert_ge 1 "$ACK2" "entries of $S2 acknowledged 0.7-1.9 s after master 1 was killed"
rs_assert_eq 0 "$DUP0" "entries of $S0 handled twice"
rs_assert_eq 0 "$DUP2" "entries of $S2 handled twice"
rs_pass
