#!/usr/bin/env bash
#
# redstream-producer's keyed publishing against a private redis-server: --key-field and --keys
# give every entry a key field following the documented sequence, --hot-key-share sends the
# given share to key-0, and --partitions N writes each entry to <stream>:<p> with p = FNV-1a-32
# of the key mod N, in load mode and in demo mode. An independent Python 3 implementation of
# the key sequence and of FNV-1a checks every entry. Also: an error reply on one partition is
# blamed on that partition's stream, and bad flag values are usage errors naming the flag.

# rs_start_redis takes optional redis-server arguments, none needed here (SC2119).
# shellcheck disable=SC2119
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The Python 3 used for the checks (stdlib only), as in consumer_lib.sh.
RS_PYTHON=${RS_PYTHON:-/usr/bin/python3}
[[ -x $RS_PYTHON ]] || RS_PYTHON=python3

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"
rs_start_redis

# The checker: reads the XRANGE dumps of the partitions and prints "ok" or the first problem.
#   check_keys.py DIR BASE PARTITIONS KEYS FIELD COUNT HOT_SHARE FIELDS
# DIR/<stream>.txt holds `redis-cli XRANGE <stream> - +` for each stream (BASE when PARTITIONS
# is 1, else BASE:0 .. BASE:<PARTITIONS-1>). HOT_SHARE is "none" or a percentage. FIELDS is the
# comma-separated list of field names every entry must have, in order, FIELD among them.
# Checked: every entry has exactly FIELDS; messages "Message #1" .. "Message #COUNT" each once
# over all streams; message n's key is the one the documented sequence gives n; each entry's
# stream is its key's FNV-1a partition; the number of distinct keys; per-key counts.
cat >"$RS_TMP/check_keys.py" <<'EOF'
import collections, os, re, sys

d, base, n_part, n_keys, field, count, hot, fields = sys.argv[1:9]
n_part, n_keys, count = int(n_part), int(n_keys), int(count)
fields = fields.split(",")

def fnv1a32(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h

def expected_key(n):
    # partition.h: round robin, or P% evenly spread to key 0 and the rest round robin over
    # keys 1..K-1.
    if hot == "none":
        return (n - 1) % n_keys
    p = int(hot)
    share = lambda m: m * p // 100
    if share(n) != share(n - 1):
        return 0
    return 1 + ((n - 1) - share(n - 1)) % (n_keys - 1)

def fail(msg):
    print(msg)
    sys.exit(0)

assert fnv1a32(b"") == 0x811C9DC5 and fnv1a32(b"a") == 0xE40C292C
assert fnv1a32(b"foobar") == 0xBF9CF968

seen = set()
per_key = collections.Counter()
streams = [base] if n_part == 1 else ["%s:%d" % (base, p) for p in range(n_part)]
group = 1 + 2 * len(fields)
for p, stream in enumerate(streams):
    with open(os.path.join(d, stream + ".txt"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        fail("stream %s is empty or missing" % stream)
    if len(lines) % group:
        fail("stream %s: %d lines, not a multiple of %d" % (stream, len(lines), group))
    for i in range(0, len(lines), group):
        entry = lines[i:i + group]
        if not re.fullmatch(r"[0-9]+-[0-9]+", entry[0]):
            fail("stream %s: bad id %r" % (stream, entry[0]))
        names, values = entry[1::2], entry[2::2]
        if names != fields:
            fail("stream %s entry %s: fields %s, not %s" % (stream, entry[0], names, fields))
        v = dict(zip(names, values))
        m = re.fullmatch(r"Message #([0-9]+)", v["message"])
        if not m or not 1 <= int(m.group(1)) <= count:
            fail("stream %s: bad message %r" % (stream, v["message"]))
        n = int(m.group(1))
        if n in seen:
            fail("message %d appears twice" % n)
        seen.add(n)
        key = v[field]
        if key != "key-%d" % expected_key(n):
            fail("message %d has key %r, not key-%d" % (n, key, expected_key(n)))
        if n_part > 1 and fnv1a32(key.encode()) % n_part != p:
            fail("key %r (message %d) is in %s, but hashes to partition %d"
                 % (key, n, stream, fnv1a32(key.encode()) % n_part))
        per_key[key] += 1
if len(seen) != count:
    fail("%d distinct messages, not %d" % (len(seen), count))
print("ok keys=%d min=%d max=%d key0=%d" % (len(per_key), min(per_key.values()),
      max(per_key.values()), per_key.get("key-0", 0)))
EOF

# check_keys NAME BASE PARTITIONS KEYS FIELD COUNT HOT_SHARE FIELDS: dumps the streams and runs
# the checker; sets KEYS_SEEN, MIN_PER_KEY, MAX_PER_KEY, KEY0 from its "ok" line.
check_keys() {
    local name=$1 base=$2 n=$3 dir=$RS_TMP/dump-$1 stream p result
    mkdir -p "$dir"
    if ((n == 1)); then
        rs_cli XRANGE "$base" - + >"$dir/$base.txt"
    else
        for ((p = 0; p < n; p++)); do
            stream=$base:$p
            rs_cli XRANGE "$stream" - + >"$dir/$stream.txt"
        done
    fi
    result=$("$RS_PYTHON" "$RS_TMP/check_keys.py" "$dir" "$base" "$n" "${@:4}")
    rs_assert_match '^ok keys=([0-9]+) min=([0-9]+) max=([0-9]+) key0=([0-9]+)$' "$result" \
        "checker's verdict on $base"
    KEYS_SEEN=${BASH_REMATCH[1]}
    MIN_PER_KEY=${BASH_REMATCH[2]}
    MAX_PER_KEY=${BASH_REMATCH[3]}
    KEY0=${BASH_REMATCH[4]}
}

# The summary's result line: sets SENT and ERRORS.
check_result() {
    local line
    line=$(grep '^result: ' "$RS_OUT" || true)
    rs_assert_match '^result: sent=([0-9]+) errors=([0-9]+) .*' "$line" "result line"
    SENT=${BASH_REMATCH[1]}
    ERRORS=${BASH_REMATCH[2]}
}

# --- (a) load mode over 4 partitions ---------------------------------------------------------------
rs_case "load mode: --key-field user --keys 50 --partitions 4 --count 3000 over events:0..3"
rs_produce a --stream events --rate 0 --connections 3 --pipeline 16 --count 3000 \
    --key-field user --keys 50 --partitions 4
rs_assert_exit 0
check_result
rs_assert_eq 3000 "$SENT" "sent"
rs_assert_eq 0 "$ERRORS" "errors"
# One total, naming the streams written.
rs_assert_eq 1 "$(grep -c '^result: ' "$RS_OUT")" "result lines"
rs_assert_file_contains "$RS_OUT" "3000 XADDs to streams events:0 .. events:3"
rs_assert_file_contains "$RS_ERR" "key_field=user keys=50 partitions=4 (streams events:0 .. events:3)"
# The stream itself is not written: only its partitions.
rs_assert_eq 0 "$(rs_cli EXISTS events)" "EXISTS events"
rs_assert_eq 0 "$(rs_cli EXISTS events:4)" "EXISTS events:4"
total=0
for p in 0 1 2 3; do
    rs_assert_eq stream "$(rs_cli TYPE "events:$p")" "TYPE events:$p"
    len=$(rs_cli XLEN "events:$p")
    rs_assert_ge 1 "$len" "XLEN events:$p"
    total=$((total + len))
done
rs_assert_eq 3000 "$total" "sum of XLEN events:0..3"
check_keys a events 4 50 user 3000 none message,type,timestamp,user
rs_assert_eq 50 "$KEYS_SEEN" "distinct keys"
# Round robin: 3000 messages over 50 keys is exactly 60 each.
rs_assert_eq 60 "$MIN_PER_KEY" "fewest entries of one key"
rs_assert_eq 60 "$MAX_PER_KEY" "most entries of one key"
rs_pass

# --- (b) a hot key ---------------------------------------------------------------------------------
rs_case "load mode: --hot-key-share 90 sends exactly 90% to key-0, the rest over the others"
rs_produce b --stream hot --rate 0 --pipeline 8 --count 1000 --key-field account --keys 10 \
    --hot-key-share 90
rs_assert_exit 0
check_result
rs_assert_eq 1000 "$SENT" "sent"
rs_assert_file_contains "$RS_ERR" "key_field=account keys=10 hot_key_share=90% partitions=1"
rs_assert_file_contains "$RS_OUT" "1000 XADDs to stream hot over"
check_keys b hot 1 10 account 1000 90 message,type,timestamp,account
rs_assert_eq 10 "$KEYS_SEEN" "distinct keys"
rs_assert_eq 900 "$KEY0" "entries of key-0"
# 100 cold messages over 9 keys: 11 or 12 each.
rs_assert_eq 11 "$MIN_PER_KEY" "fewest entries of one key"
rs_assert_eq 900 "$MAX_PER_KEY" "most entries of one key"
rs_pass

# --- (c) demo mode -----------------------------------------------------------------------------------
rs_case "demo mode: --key-field with --partitions 2, and the key before redstream.sent_ns"
rs_produce c --stream demo --count 6 --interval 0 --key-field user --keys 3 --partitions 2 --e2e
rs_assert_exit 0
rs_assert_eq 6 "$(($(rs_cli XLEN demo:0) + $(rs_cli XLEN demo:1)))" "XLEN demo:0 + demo:1"
rs_assert_eq 0 "$(rs_cli EXISTS demo)" "EXISTS demo"
check_keys c demo 2 3 user 6 none message,type,timestamp,user,redstream.sent_ns
rs_assert_eq 3 "$KEYS_SEEN" "distinct keys"
rs_assert_eq 2 "$MIN_PER_KEY" "fewest entries of one key"
# key-0 hashes to partition 1 of 2, key-1 to 0 (partition.h's vectors, checked above too).
rs_assert_file_contains "$RS_ERR" 'published stream=demo:1 id='
rs_assert_file_contains "$RS_ERR" 'message="Message #1" key=key-0'
rs_assert_file_contains "$RS_ERR" 'message="Message #2" key=key-1'
rs_assert_file_contains "$RS_ERR" "stopped after 6 messages"
rs_pass

rs_case "demo mode: --key-field with --partitions 1 (the default) writes the stream itself"
rs_produce c2 --stream plain --count 4 --interval 0 --key-field tenant --keys 2 --partitions 1
rs_assert_exit 0
rs_assert_eq 4 "$(rs_cli XLEN plain)" "XLEN plain"
rs_assert_eq 0 "$(rs_cli EXISTS plain:0)" "EXISTS plain:0"
check_keys c2 plain 1 2 tenant 4 none message,type,timestamp,tenant
rs_assert_eq 2 "$KEYS_SEEN" "distinct keys"
rs_assert_eq 2 "$MAX_PER_KEY" "most entries of one key"
rs_pass

# --- (d) an error reply on one partition -----------------------------------------------------------
# wt:2 is not a stream. The first reply on the connection is a success (key-0 -> partition 1),
# so the run goes on; every XADD routed to wt:2 fails, and the warning names wt:2, which only
# the per-command partition ring in the load generator can know with 8 commands in flight.
rs_case "load mode: an error reply names the partition stream it came from"
rs_cli SET wt:2 notastream >/dev/null
rs_produce d --stream wt --rate 0 --pipeline 8 --count 500 --key-field user --keys 50 \
    --partitions 4
rs_assert_exit 0
check_result
# 500 messages, 10 per key; the keys of partition 2 get all their XADDs refused.
bad_keys=$("$RS_PYTHON" -c '
def h(b):
    x = 2166136261
    for c in b:
        x = ((x ^ c) * 16777619) & 0xFFFFFFFF
    return x
print(sum(1 for k in range(50) if h(b"key-%d" % k) % 4 == 2))')
rs_assert_ge 1 "$bad_keys" "keys in partition 2"
rs_assert_eq $((bad_keys * 10)) "$ERRORS" "errors"
rs_assert_eq $((500 - bad_keys * 10)) "$SENT" "sent"
rs_assert_file_contains "$RS_ERR" "XADD to stream wt:2 failed"
rs_assert_file_contains "$RS_ERR" "WRONGTYPE"
rs_assert_file_lacks "$RS_ERR" "XADD to stream wt:0 failed"
rs_assert_eq "$SENT" "$(($(rs_cli XLEN wt:0) + $(rs_cli XLEN wt:1) + $(rs_cli XLEN wt:3)))" \
    "XLEN wt:0 + wt:1 + wt:3"
rs_pass

# --- (e) usage errors ----------------------------------------------------------------------------------
# Each: the arguments, then the text stderr must contain (the flag, and the accepted range or
# what is missing).
bad_flags=(
    "--partitions 4|--partitions: needs --key-field"          # partitions need a key
    "--rate 0 --partitions 4|--partitions: needs --key-field" # ... in load mode too
    "--keys 10|--keys: needs --key-field"
    "--hot-key-share 50|--hot-key-share: needs --key-field"
    "--key-field user --partitions 0|--partitions: must be a whole number from 1 to 1024"
    "--key-field user --partitions 1025|--partitions: must be a whole number from 1 to 1024"
    "--key-field user --partitions four|--partitions: must be a whole number from 1 to 1024"
    "--key-field user --keys 0|--keys: must be a whole number from 1 to 10000000"
    "--key-field user --keys 10000001|--keys: must be a whole number from 1 to 10000000"
    "--key-field user --keys -5|--keys: must be a whole number from 1 to 10000000"
    "--key-field user --hot-key-share 101|--hot-key-share: must be a whole number from 0 to 100"
    "--key-field user --hot-key-share 9.5|--hot-key-share: must be a whole number from 0 to 100"
    "--key-field user --keys 1 --hot-key-share 50|--hot-key-share: needs --keys of at least 2"
    "--key-field=|--key-field: must not be empty"
    "--key-field message|--key-field: 'message' is a field the producer already writes"
    "--key-field traceparent|--key-field: 'traceparent' is a field the producer already writes"
    "--key-field redstream.sent_ns|--key-field: names starting with 'redstream.' are reserved"
    "--replay-dlq events --key-field user|--key-field: cannot be combined with --replay-dlq"
)
for spec in "${bad_flags[@]}"; do
    args=${spec%%|*}
    want=${spec#*|}
    rs_case "bad usage '$args' exits 64 naming the flag"
    # shellcheck disable=SC2086 # word splitting of the argument list is intended
    rs_produce e --stream never $args --count 1
    rs_assert_exit 64
    rs_assert_file_contains "$RS_ERR" "$want"
    rs_pass
done
rs_case "a usage error writes nothing"
rs_assert_eq 0 "$(rs_cli EXISTS never never:0 never:1)" "EXISTS never never:0 never:1"
rs_pass
