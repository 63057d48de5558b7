#!/usr/bin/env bash
#
# Several redstream-consumer processes in one group on a Redis Cluster: a private cluster of 3
# masters (password), three streams on the three masters, three consumers c1, c2 and c3 in
# group workers (each seeded with a different master, each with its own health port), the
# exec handler with a script that works 0.2 s per entry and appends "<consumer> <stream> <id>
# <delivery>" to one shared file. claim_idle_ms is 1500.
#   a. all three consumers hold pending entries at once (the group spreads the work);
#   b. c2 is killed for good (SIGKILL) while it holds pending entries;
#   c. c1 and c3 claim c2's pending entries (their logs say "claimed", /metrics counts them)
#      and handle every one of them; every entry of the three streams is handled; the group
#      settles on every stream (nothing pending, lag 0, nothing left at c2);
#   d. /streams of each survivor lists, on every stream, the consumers of the group that Redis
#      knows there (XINFO CONSUMERS), c1, c2 and c3 over the three streams, c2 on every stream
#      it left entries on, all with nothing pending; /metrics has the per-stream series, and
#      its per-consumer series (a "consumer" label), if any, list the same consumers;
#   e. the survivors stop cleanly.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/cluster_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"
# shellcheck source=tests/integration/cluster_consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster_consumer_lib.sh"

PER_STREAM=120
CLAIM_IDLE_MS=1500
RC_TIMEOUT=$((30 * RS_SCALE))

rc_start_cluster 3 0

STREAMS=("$(rc_key_on_master 0 jobs)" "$(rc_key_on_master 1 jobs)" "$(rc_key_on_master 2 jobs)")
HANDLED=$RS_TMP/handled.txt
: >"$HANDLED"

# pending_of CONSUMER STREAM: how many entries of STREAM are pending at CONSUMER.
pending_of() {
    local n
    # redis-cli prints an empty line for an empty list.
    n=$(rc_cli "$(rc_owner "$2")" XPENDING "$2" workers - + 100000 "$1" | grep -c .) || true
    echo $((n / 4))
}
# pending_total CONSUMER: over the three streams.
pending_total() {
    local s n=0
    for s in "${STREAMS[@]}"; do n=$((n + $(pending_of "$1" "$s"))); done
    echo "$n"
}
# handled_by WHO STREAM: the distinct ids of STREAM the consumers WHO (an awk regex of names)
# handled, sorted.
handled_by() {
    awk -v who="^($1)\$" -v s="$2" '$1 ~ who && $2 == s { print $3 }' "$HANDLED" | sort -u
}
http_code() {
    curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1$2" 2>/dev/null || true
}
ready() { [[ $(http_code "$1" /readyz) == 200 ]]; }

rs_case "a. three consumers in one group all hold pending entries"
for s in "${STREAMS[@]}"; do cc_xadd "$s" 1 "$PER_STREAM"; done
declare -A PID=() PORT=() ERRF=()
for i in 1 2 3; do
    c=c$i
    cat >"$RS_TMP/handler-$c.sh" <<EOF
#!/bin/sh
sleep 0.2
echo "$c \$REDSTREAM_STREAM \$REDSTREAM_ID \$REDSTREAM_DELIVERY" >>"$HANDLED"
EOF
    chmod +x "$RS_TMP/handler-$c.sh"
    # queue and read_count small: what an instance holds waits well under claim_idle_ms, so
    # the live instances do not claim each other's entries.
    CONF=$(cc_config "$c" "$c" "${RC_MASTERS[i - 1]}" claim_idle_ms=$CLAIM_IDLE_MS \
        retry_max_ms=100 threads=4 queue=8 read_count=4 exec="$RS_TMP/handler-$c.sh" \
        "${STREAMS[0]}:exec" "${STREAMS[1]}:exec" "${STREAMS[2]}:exec")
    PORT[$c]=$(cc_health_port "$CONF")
    cl_spawn_consumer "$c" "$CONF"
    PID[$c]=$RS_PID
    ERRF[$c]=$RS_ERR
    # Ready (its port bound) before the next one picks a free port.
    cl_wait_for "$RS_PID" $((15 * RS_SCALE)) ready "${PORT[$c]}" || rs_fail "$c not ready"
done
all_hold() {
    (($(pending_total c1) > 0 && $(pending_total c2) > 0 && $(pending_total c3) > 0))
}
RS_WAIT_TIMEOUT=$((20 * RS_SCALE)) rs_wait_for all_hold ||
    rs_fail "pending: c1 $(pending_total c1), c2 $(pending_total c2), c3 $(pending_total c3)"
rs_pass

rs_case "b. c2 killed for good while it holds pending entries"
BEFORE=$(pending_total c2)
rs_assert_ge 1 "$BEFORE" "entries pending at c2 just before the kill"
kill -KILL "${PID[c2]}"
rs_wait_exit "${PID[c2]}" 10
KILL_MS=$(cl_now_ms)
# What c2 left behind: nothing of it moves until it has been idle for claim_idle_ms.
for s in "${STREAMS[@]}"; do
    rc_cli "$(rc_owner "$s")" XPENDING "$s" workers - + 100000 c2 |
        awk -v s="$s" 'NR % 4 == 1 && $0 != "" { print s, $0 }'
done >"$RS_TMP/c2.left"
LEFT=$(wc -l <"$RS_TMP/c2.left")
rs_assert_ge 1 "$LEFT" "entries c2 left pending"
echo "  c2 held $BEFORE entries just before the kill, $LEFT right after it"
rs_pass

rs_case "c. the others claim and finish c2's entries; every entry handled; the group settles"
c2_claimed() { (($(pending_total c2) == 0)); }
cl_wait_for "${PID[c1]}" $((30 * RS_SCALE)) c2_claimed || rs_fail "still pending at c2: $(pending_total c2)"
CLAIM_MS=$(($(cl_now_ms) - KILL_MS))
all_handled() {
    local s
    for s in "${STREAMS[@]}"; do
        [[ $(handled_by 'c[123]' "$s" | wc -l) == "$PER_STREAM" ]] || return 1
    done
}
settled_all() {
    local s
    for s in "${STREAMS[@]}"; do cc_settled "$s" || return 1; done
}
cl_wait_for "${PID[c1]}" $((60 * RS_SCALE)) all_handled ||
    rs_fail "handled: $(for s in "${STREAMS[@]}"; do echo -n "$s $(handled_by 'c[123]' "$s" | wc -l) "; done)of $PER_STREAM each"
cl_wait_for "${PID[c3]}" $((30 * RS_SCALE)) settled_all || rs_fail "the group did not settle"
rs_exited "${PID[c1]}" && rs_fail "c1 exited"
rs_exited "${PID[c3]}" && rs_fail "c3 exited"
# Each entry c2 left was handled again by a survivor (c2's last handler processes, in their
# own process groups, may have finished their entry after it died; that does not count).
while read -r s id; do
    grep -qE "^c[13] $s $id [0-9]+\$" "$HANDLED" || rs_fail "$s $id, left by c2, not handled by c1 or c3"
done <"$RS_TMP/c2.left"
for s in "${STREAMS[@]}"; do
    rs_assert_eq "$PER_STREAM" "$(handled_by 'c[123]' "$s" | wc -l)" "entries of $s handled"
done
# The survivors say so: one "claimed N entries" line per claiming pass, whose N add up to at
# least what c2 left (they may also have claimed an entry of a live instance that waited
# long, which is allowed: at-least-once).
CLAIMED=$(cat "${ERRF[c1]}" "${ERRF[c3]}" |
    awk '/ INFO  reader: stream=.* claimed [0-9]+ entries pending longer than/ {
        for (i = 1; i < NF; i++) if ($i == "claimed") n += $(i + 1) } END { print n + 0 }')
rs_assert_ge "$LEFT" "$CLAIMED" "entries the survivors' logs say they claimed"
METRIC=0
for c in c1 c3; do
    curl -sf -m 5 "http://127.0.0.1:${PORT[$c]}/metrics" >"$RS_TMP/$c.metrics" ||
        rs_fail "GET /metrics of $c failed"
    n=$(awk '$1 ~ /^redstream_messages_claimed_total\{/ { n += $2 } END { print n + 0 }' "$RS_TMP/$c.metrics")
    METRIC=$((METRIC + n))
done
rs_assert_eq "$CLAIMED" "$METRIC" "redstream_messages_claimed_total of c1 and c3"
DUPS=$(awk '$1 != "c2" { print $2, $3 }' "$HANDLED" | sort | uniq -d | wc -l)
echo "  c2's $LEFT entries claimed within $CLAIM_MS ms of the kill ($CLAIMED claimed in all);" \
    "$DUPS entries handled twice by the survivors"
rs_pass

rs_case "d. /streams of a survivor lists every consumer of the group"
# What Redis knows: the consumers of the group on each stream (XINFO CONSUMERS on its master),
# as "stream:name,name,..." arguments. An instance becomes a consumer of a stream's group
# when it first reads it (c2 may die before it read all three); c2 read at least the streams
# it left entries on.
KNOWN=()
for s in "${STREAMS[@]}"; do
    KNOWN+=("$s:$(rc_cli "$(rc_owner "$s")" XINFO CONSUMERS "$s" workers |
        awk 'prev == "name" { print } { prev = $0 }' | sort | paste -sd, -)")
done
echo "  consumers of the group per stream (XINFO CONSUMERS): ${KNOWN[*]}"
for c in c1 c3; do
    curl -sf -m 5 "http://127.0.0.1:${PORT[$c]}/streams" >"$RS_TMP/$c.streams.json" ||
        rs_fail "GET /streams of $c failed"
    "$RS_PYTHON" - "$RS_TMP/$c.streams.json" "$c" "$PER_STREAM" "$RS_TMP/c2.left" "${KNOWN[@]}" <<'PY' ||
import json, sys
path, me, per, left, known = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
known = {k.rsplit(":", 1)[0]: sorted(filter(None, k.rsplit(":", 1)[1].split(","))) for k in known}
doc = json.load(open(path))
assert doc["group"] == "workers" and doc["consumer"] == me, (doc["group"], doc["consumer"])
streams = {s["name"]: s for s in doc["streams"]}
assert sorted(streams) == sorted(known), sorted(streams)
everyone, listed = set(), {}
for name in known:
    s = streams[name]
    assert s["exists"] is True and s["length"] == per, (name, s.get("exists"), s.get("length"))
    groups = [g for g in s["groups"] if g["name"] == "workers"]
    assert len(groups) == 1, (name, s["groups"])
    g = groups[0]
    assert g["pending"] == 0 and g["lag"] == 0, (name, g["pending"], g["lag"])
    consumers = {c["name"]: c for c in g["consumers"]}
    assert sorted(consumers) == known[name], (name, sorted(consumers), "Redis says", known[name])
    for c in consumers.values():
        assert c["pending"] == 0, (name, c)
        assert isinstance(c["idle_ms"], int) and c["idle_ms"] >= 0, (name, c)
    assert s["process"]["handler"] == "exec", s["process"]
    everyone |= set(consumers)
    listed[name] = set(consumers)
assert sorted(everyone) == ["c1", "c2", "c3"], sorted(everyone)
for line in open(left):
    assert "c2" in listed[line.split()[0]], (line, "c2 not listed")
PY
        rs_fail "/streams of $c: $(head -c 800 "$RS_TMP/$c.streams.json")"
done
# /metrics: the per-stream series of every stream; per-consumer series (a "consumer" label),
# when there are any, must name on each stream the consumers Redis knows there.
for s in "${STREAMS[@]}"; do
    grep -qF "redstream_messages_acked_total{stream=\"$s\"}" "$RS_TMP/c1.metrics" ||
        rs_fail "/metrics of c1 has no series for $s"
done
"$RS_PYTHON" - "$RS_TMP/c1.metrics" "${KNOWN[@]}" <<'PY' || rs_fail "/metrics of c1: per-consumer series"
import re, sys
known = {k.rsplit(":", 1)[0]: sorted(filter(None, k.rsplit(":", 1)[1].split(","))) for k in sys.argv[2:]}
families = {}
for line in open(sys.argv[1]):
    m = re.match(r'^(redstream_[a-z_]+)\{([^}]*)\} ', line)
    if not m or 'consumer="' not in m.group(2):
        continue
    labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
    families.setdefault(m.group(1), {}).setdefault(labels.get("stream"), set()).add(labels["consumer"])
if not families:
    print("  /metrics has no per-consumer series")
for fam, per_stream in families.items():
    for name, consumers in known.items():
        got = sorted(per_stream.get(name, ()))
        assert got == consumers, (fam, name, got, "Redis says", consumers)
    print("  /metrics: %s lists every consumer of the group" % fam)
PY
rs_pass

rs_case "e. the survivors stop cleanly"
for c in c1 c3; do
    cl_stop_consumer "${PID[$c]}"
    rs_assert_exit 0
    cl_assert_clean_stderr "${ERRF[$c]}"
done
rs_pass
