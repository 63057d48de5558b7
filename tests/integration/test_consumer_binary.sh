#!/usr/bin/env bash
#
# redstream-consumer is binary-safe: field names and values with NUL bytes, invalid UTF-8,
# empty strings and 1 MiB of random bytes or text reach the log handler intact. A Python
# client speaking raw RESP writes the entries (redis-cli's argument parsing is not
# binary-safe), and the consumer's JSON lines are decoded (base64 where the handler chose it)
# and compared byte for byte with what was written.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

MANIFEST=$RS_TMP/written.json

# write_entries: XADDs the cases below to stream "events" and records in $MANIFEST, for each
# id, the case name and its field list (base64 of every name and value). Each entry is read
# back with XRANGE first, so a mismatch later is the consumer's and not the writer's.
write_entries() {
    cl_resp_python "$RS_REDIS_PORT" "$RS_REDIS_PASSWORD" "$MANIFEST" <<'PY' ||
import base64, json, os, sys

port, password, manifest = sys.argv[1], sys.argv[2], sys.argv[3]
command = Redis(port, password, timeout=30).command

def text_mib():
    # 1 MiB of UTF-8 text with everything JSON must escape: quotes, backslashes, newlines,
    # tabs, control characters, multi-byte characters and U+2028.
    chunk = 'line %d: "quoted" back\\slash\ttab \x01\x1f é ✓ 😀 \u2028 end\n'
    out, i = [], 0
    while sum(len(c) for c in out) < (1 << 20) - 200:
        out.append((chunk % i).encode())
        i += 1
    data = b"".join(out)
    return data + b"x" * ((1 << 20) - len(data))

# Each case: a name and its fields in order. Every value and every name is bytes.
cases = [
    ("nul bytes", [(b"nul", b"a\x00b\x00\x00c"), (b"only-nul", b"\x00"),
                   (b"nul\x00name", b"name with a NUL")]),
    ("invalid utf-8", [(b"bad", b"\xff\xfe"), (b"overlong", b"\xc0\x80"),
                       (b"surrogate", b"\xed\xa0\x80"), (b"truncated", b"abc\xe2\x82"),
                       (b"latin1", "café".encode("latin-1"))]),
    ("empty strings", [(b"empty", b""), (b"", b"value of an empty name"), (b"after", b"x")]),
    ("non-utf-8 names", [(b"\xff\xfename", b"value"), (b"\x80", b"\xff"), (b"plain", b"text")]),
    ("valid utf-8 and escapes", [("unicode".encode(), "héllo ✓ 😀 \u2028".encode()),
                                 (b"looks-like-base64", b'{"base64":"QQ=="}'),
                                 (b"escapes", b'" \\ \n \t \r \x01 \x7f /')]),
    ("1 MiB random bytes", [(b"random", os.urandom(1 << 20))]),
    ("1 MiB text", [(b"text", text_mib())]),
]

written = []
for name, fields in cases:
    args = [b"XADD", b"events", b"*"]
    for k, v in fields:
        args += [k, v]
    entry_id = command(*args).decode()
    back = command(b"XRANGE", b"events", entry_id.encode(), entry_id.encode())
    stored = back[0][1]
    expect = [x for kv in fields for x in kv]
    assert stored == expect, "%s: Redis stored something else than was sent" % name
    written.append({"case": name, "id": entry_id,
                    "fields": [[base64.b64encode(k).decode(), base64.b64encode(v).decode()]
                               for k, v in fields]})
with open(manifest, "w") as f:
    json.dump(written, f)
print("  wrote %d entries" % len(written))
PY
        rs_fail "could not write the binary entries"
}

# compare_output OUT: every written entry appears exactly once in OUT and its fields, decoded,
# equal the bytes written; OUT holds nothing else.
compare_output() {
    "$RS_PYTHON" - "$MANIFEST" "$1" <<'PY' || rs_fail "the handler's output differs from what was written"
import base64, collections, json, sys

written = json.load(open(sys.argv[1]))
by_id = {w["id"]: w for w in written}
seen = collections.Counter()
problems = []

def decode_name(key):
    return base64.b64decode(key[len("base64:"):], validate=True) if key.startswith("base64:") \
        else key.encode("utf-8")

def decode_value(value):
    if isinstance(value, dict):
        assert list(value) == ["base64"], "value object %r" % list(value)
        return base64.b64decode(value["base64"], validate=True)
    assert isinstance(value, str), "value of type %s" % type(value).__name__
    return value.encode("utf-8")

def is_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False

for n, raw in enumerate(open(sys.argv[2], "rb"), 1):
    obj = json.loads(raw)
    w = by_id.get(obj["id"])
    seen[obj["id"]] += 1
    if obj["stream"] != "events" or w is None:
        problems.append("line %d: unexpected entry %s %s" % (n, obj["stream"], obj["id"]))
        continue
    want = sorted((base64.b64decode(k), base64.b64decode(v)) for k, v in w["fields"])
    try:
        got = sorted((decode_name(k), decode_value(v)) for k, v in obj["fields"].items())
    except Exception as e:
        problems.append("%s: undecodable field: %s" % (w["case"], e))
        continue
    # The representation is part of the format: valid UTF-8 stays text (a JSON string, a
    # plain key), anything else is base64 ({"base64": ...}, a "base64:" key); so is a name
    # holding a NUL, which JSON parsers that keep keys as C strings (jansson) refuse.
    for k, v in obj["fields"].items():
        try:
            name, value = decode_name(k), decode_value(v)
        except Exception:
            continue
        if is_utf8(value) != isinstance(v, str):
            problems.append("%s: field %r: value of %d bytes encoded as %s" %
                            (w["case"], k[:40], len(value), type(v).__name__))
        if (is_utf8(name) and b"\x00" not in name) == k.startswith("base64:"):
            problems.append("%s: name %r encoded wrongly" % (w["case"], k[:40]))
    if got != want:
        diff = [("%r" % k[:40], len(v)) for k, v in set(want) ^ set(got)]
        problems.append("%s: fields differ (name, value length) %s" % (w["case"], diff[:6]))
    else:
        print("  %-24s %s intact" % (w["case"], obj["id"]))
problems += ["%s: handled %d times" % (by_id[i]["case"], c) for i, c in seen.items()
             if c > 1 and i in by_id]
problems += ["%s: never handled" % w["case"] for w in written if w["id"] not in seen]
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
}

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
conf=$(cl_config binary streams="events:log")

rs_case "binary field names and values reach the handler byte for byte"
cl_spawn_consumer binary "$conf"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists events ||
    rs_fail "the consumer never created its group"
write_entries
count=$("$RS_PYTHON" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$MANIFEST")
all_done() {
    cl_has_lines "$out" events "$count" && cl_settled events
}
cl_wait_for "$pid" $((15 * RS_SCALE)) all_done ||
    cl_fail "handled $(cl_count_lines "$out" events) of $count entries," \
        "pending $(cl_pending events), lag $(cl_group_field events lag)"
compare_output "$out"
rs_pass

rs_case "SIGTERM after binary entries: status 0, clean stderr"
RS_ERR=$err
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
cl_assert_clean_stderr "$err"
rs_pass
