# shellcheck shell=bash disable=SC2034 # variables here are used by the sourcing scripts
#
# Helpers for the bad-input tests (test_fault_entries_*.sh). Source it after lib.sh and
# consumer_lib.sh:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
#     source "$(dirname "${BASH_SOURCE[0]}")/badinput_lib.sh"
#
# It adds the catalogue of bad entries and the checks that what a handler received, or what
# a dead-letter stream holds, is byte for byte what was written:
#
#   one-field      a single field, none of the demo's message/type/timestamp
#   10k-fields     10,000 fields: plain, empty and non-UTF-8 values
#   16mib-random   a 16 MiB value of random bytes (not UTF-8: base64 in the JSON)
#   16mib-text     a 16 MiB UTF-8 value full of what JSON must escape (quotes, backslashes,
#                  control characters, U+2028)
#   non-utf8       names and values that are not UTF-8 (invalid sequences, overlong forms,
#                  surrogates, Latin-1), a name with a NUL (base64 too), a 256 KiB non-UTF-8
#                  name, a UTF-8 name that spells another name's encoding ("base64:/w=="), a
#                  name given twice (an array in the JSON) and an empty name and value
#
# A Python client speaking raw RESP writes them (redis-cli is not binary-safe) and reads each
# back with XRANGE first, so a mismatch later is the consumer's. The manifest keeps, per
# entry, the length and SHA-256 of every name and value, in order.
#
# Environment: as consumer_lib.sh (RS_PYTHON, RS_SCALE).

BI_CASES="one-field 10k-fields 16mib-random 16mib-text non-utf8"

# Resident memory (MiB) the consumer may keep once the big entries are done (bi_assert_memory).
BI_RSS_MAX_MIB=128
if ((RS_SLOW)); then BI_RSS_MAX_MIB=512; fi # ASan keeps 256 MiB of freed memory in quarantine

# bi_write STREAM MANIFEST CASE...: XADDs the named cases to STREAM, in order, and appends
# one JSON line per entry to MANIFEST ({"case", "stream", "id", "fields"}). Prints a line per
# entry ("  CASE ID (N fields, B bytes)").
bi_write() {
    "$RS_PYTHON" -c "$BI_PY" write "$RS_REDIS_PORT" "$RS_REDIS_PASSWORD" "$@" ||
        rs_fail "could not write the bad entries to $1"
}

# bi_check_json MANIFEST FORMAT FILE...: every entry of MANIFEST appears in the JSON the
# handler received, its fields (decoded: base64 where the encoding chose it) equal to what
# was written, in order, and each name and value encoded as entry.h says (UTF-8 as text,
# anything else as base64; a name also when it holds a NUL or starts with "base64:"). FORMAT is "lines" (FILE holds JSON lines: the log handler's
# stdout) or "docs" (each FILE is one entry: what an exec child read, an HTTP body). Entries
# of streams not in MANIFEST are ignored; an entry of a manifest stream that is not in the
# manifest, or one that appears more than once, is an error. Fails the test on a mismatch.
bi_check_json() {
    "$RS_PYTHON" -c "$BI_PY" check "$@" || rs_fail "what the handler received differs from what was written"
}

# bi_check_dlq MANIFEST DLQ ERROR_TEXT DELIVERIES: the stream DLQ holds exactly one dead letter
# per manifest entry: the original fields byte for byte and in order, then the metadata
# (original stream and id, DELIVERIES as the delivery count, a last_error containing
# ERROR_TEXT, the time). Fails the test otherwise.
bi_check_dlq() {
    "$RS_PYTHON" -c "$BI_PY" dlq "$RS_REDIS_PORT" "$RS_REDIS_PASSWORD" "$@" ||
        rs_fail "the dead letters in $2 are not the entries written"
}

# bi_ids MANIFEST: the entry ids in MANIFEST, one per line.
bi_ids() {
    "$RS_PYTHON" -c 'import json, sys; [print(json.loads(l)["id"]) for l in open(sys.argv[1])]' "$1"
}

# bi_rss_mib PID / bi_hwm_mib PID: the process's resident set now / at its peak, in MiB.
bi_rss_mib() {
    echo $(($(cl_rss_kb "$1") / 1024))
}
bi_hwm_mib() {
    local v
    v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || true
    echo $((${v:-0} / 1024))
}

# bi_xadd_good STREAM FIRST COUNT: XADDs COUNT small demo entries (n = FIRST...) through
# redis-cli and appends their ids to $RS_TMP/STREAM.ids.
bi_xadd_good() {
    local i out=$RS_TMP/$1.ids.new
    for ((i = $2; i < $2 + $3; i++)); do
        printf 'XADD %s * message "Message #%d" type test timestamp 2024-01-01T00:00:00Z\n' "$1" "$i"
    done | rs_cli >"$out"
    rs_assert_eq "$3" "$(grep -cE '^[0-9]+-[0-9]+$' "$out")" "ids returned by XADD to $1"
    cat "$out" >>"$RS_TMP/$1.ids"
}

# bi_exec_handler PATH OUTDIR STATUS [GATE]: writes an exec handler script to PATH. It saves
# what it reads on stdin to OUTDIR/<stream>.<id>.<delivery>.json (complete files only: written
# under another name, then renamed), then, with GATE, waits until the file GATE exists (at
# most 240 s: longer than any test waits under a sanitizer), and exits with STATUS.
bi_exec_handler() {
    local path=$1 dir=$2 status=$3 gate=${4:-}
    mkdir -p "$dir"
    cat >"$path" <<SH
#!/bin/bash
# An exec handler of $RS_TEST_NAME (badinput_lib.sh, bi_exec_handler).
out="$dir/\$REDSTREAM_STREAM.\$REDSTREAM_ID.\$REDSTREAM_DELIVERY.json"
cat >"\$out.part" || exit 2
mv "\$out.part" "\$out"
if [[ -n "$gate" ]]; then
    for ((i = 0; i < 24000; i++)); do
        [[ -e "$gate" ]] && break
        sleep 0.01
    done
fi
exit $status
SH
    chmod +x "$path"
}

# bi_start_receiver NAME DIR GATE: starts an HTTP/1.1 server on 127.0.0.1 (a port the kernel
# picks; keep-alive) that saves each request's body to DIR/<n>.json (n counting requests,
# complete files only) and its headers to DIR/<n>.headers (one "Name: value" per line), then,
# for a path starting with /gate, waits until the file GATE exists (at most 240 s), and answers
# 200. Sets BI_RECEIVER_PID and BI_RECEIVER_PORT.
bi_start_receiver() {
    local portfile=$RS_TMP/$1.port
    mkdir -p "$2"
    rs_spawn "$1" "$RS_PYTHON" -c "$BI_RECEIVER_PY" "$portfile" "$2" "$3"
    BI_RECEIVER_PID=$RS_PID
    RS_WAIT_TIMEOUT=10 rs_wait_for test -s "$portfile" || rs_fail "the HTTP receiver did not start"
    BI_RECEIVER_PORT=$(cat "$portfile")
}

# bi_count_files DIR GLOB: how many files in DIR match GLOB.
bi_count_files() {
    local f n=0
    for f in "$1"/$2; do
        [[ -e $f ]] && n=$((n + 1))
    done
    echo "$n"
}

# bi_has_files DIR GLOB N: true once DIR holds at least N files matching GLOB (for
# cl_wait_for).
bi_has_files() {
    (($(bi_count_files "$1" "$2") >= $3))
}

# bi_good_handled OUT N: true once OUT (the log handler's output) holds N lines of stream good
# and that stream is settled (for cl_wait_for).
bi_good_handled() {
    cl_has_lines "$1" good "$2" && cl_settled good
}

# bi_check_good OUT: the ids of stream good handled in OUT are exactly those bi_xadd_good
# recorded in $RS_TMP/good.ids, each as often (none lost, none handled twice, none unknown).
bi_check_good() {
    rs_assert_eq "$(sort "$RS_TMP/good.ids")" \
        "$(cl_handled "$1" | awk '$1 == "good" { print $2 }' | sort)" "good entries handled"
}

# bi_assert_memory PID [WHAT]: prints the consumer's resident memory now and at its peak, and
# fails the test unless it is back down to BI_RSS_MAX_MIB. WHAT ends the assertion's label
# (default "the big entries").
bi_assert_memory() {
    local rss
    rss=$(bi_rss_mib "$1")
    echo "  consumer memory: ${rss} MiB resident now, $(bi_hwm_mib "$1") MiB at the peak"
    rs_assert_le "$BI_RSS_MAX_MIB" "$rss" "resident MiB after ${2:-the big entries}"
}

# bi_gated_config NAME BAD: writes a config with rs_write_config NAME and prints its path: the
# config of the gated tests (exec, http), stream "bad" with the handler settings BAD (the
# libconfig after 'name = "bad"; ') and stream "good" with the log handler. Eight workers: the
# five bad entries hold five while their handler waits at the gate; the others serve good.
bi_gated_config() {
    rs_write_config "$1" <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
# claim_idle_ms: longer than an entry is held at the gate, or the consumer would claim it
# again while it is still being handled (see config/redstream.conf).
group = { name = "workers"; consumer = "c1"; block_ms = 200; claim_idle_ms = 600000; };
workers = { threads = 8; queue_capacity = 64; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $(rs_free_port); };
streams = (
  { name = "bad"; $2 },
  { name = "good"; handler = "log"; }
);
log = { level = "info"; };
EOF
}

# bi_hold_at_gate PID OUT MANIFEST DIR GLOB GATE GOOD: the gated run of the exec and http
# tests, against consumer PID (log handler output OUT) configured by bi_gated_config, whose
# bad handler saves what it receives to DIR and then waits for the file GATE. Writes the
# catalogue (BI_CASES) to stream bad, recorded in MANIFEST; waits until DIR holds a file
# matching GLOB for every bad entry (each now holds a worker at the gate); publishes GOOD
# entries to stream good (bi_xadd_good, from 1) and waits until all are handled and good is
# settled; checks that every bad entry is still pending; creates GATE and waits until bad is
# settled. Fails the test at the first step that does not happen in time.
bi_hold_at_gate() {
    local pid=$1 out=$2 manifest=$3 dir=$4 glob=$5 gate=$6 good=$7 nbad
    # shellcheck disable=SC2086 # the list of cases
    bi_write bad "$manifest" $BI_CASES
    nbad=$(wc -l <"$manifest")
    cl_wait_for "$pid" $((30 * RS_SCALE)) bi_has_files "$dir" "$glob" "$nbad" ||
        rs_fail "the handler received $(bi_count_files "$dir" "$glob") of $nbad bad entries"
    bi_xadd_good good 1 "$good"
    cl_wait_for "$pid" $((15 * RS_SCALE)) bi_good_handled "$out" "$good" ||
        rs_fail "good: $(cl_count_lines "$out" good)/$good handled while the bad entries were held"
    rs_assert_eq "$nbad" "$(cl_pending bad)" "bad entries pending while held at the gate"
    touch "$gate"
    cl_wait_for "$pid" $((30 * RS_SCALE)) cl_settled bad ||
        rs_fail "bad: pending $(cl_pending bad), lag $(cl_group_field bad lag) after the gate opened"
}

# shellcheck disable=SC2016 # Python code, not shell
BI_RECEIVER_PY='
import http.server, itertools, os, sys, threading, time

portfile, outdir, gate = sys.argv[1:4]
counter, lock = itertools.count(1), threading.Lock()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with lock:
            n = next(counter)
        base = os.path.join(outdir, "%d" % n)
        with open(base + ".headers", "w") as f:
            f.write("".join("%s: %s\n" % kv for kv in self.headers.items()))
        with open(base + ".part", "wb") as f:
            f.write(body)
        os.replace(base + ".part", base + ".json")
        if self.path.startswith("/gate"):
            deadline = time.monotonic() + 240
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.01)
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

srv = Server(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.replace(portfile + ".tmp", portfile)
srv.serve_forever()
'

# The Python side: one program, a subcommand per helper, after consumer_lib.sh's Redis client.
# shellcheck disable=SC2016 # Python code, not shell
BI_PY=$CL_RESP_PY'
import base64, hashlib, json, random, sys

MIB = 1 << 20

def digest(b):
    return [len(b), hashlib.sha256(b).hexdigest()]

def case_fields(name):
    rng = random.Random(name)  # the same bytes on every run
    if name == "one-field":
        return [(b"only", b"this entry has one field and no message, type or timestamp")]
    if name == "10k-fields":
        out = []
        for i in range(10000):
            if i % 5 == 0:
                v = b""
            elif i % 7 == 0:
                v = bytes([0xff, i & 0xff, 0xfe])
            else:
                v = b"value %d" % i
            out.append((b"f%05d" % i, v))
        return out
    if name == "16mib-random":
        return [(b"blob", rng.randbytes(16 * MIB)), (b"after", b"a small field after the blob")]
    if name == "16mib-text":
        chunk = "\"quoted\" back\\\\slash\ttab\r\n \x01\x1f\x7f é ✓ 😀 \u2028 ".encode()
        data = (chunk * (16 * MIB // len(chunk) + 1))[:16 * MIB - 4] + "😀".encode()
        return [(b"text", data)]
    if name == "non-utf8":
        return [(b"\xff\xfe", b"name is not UTF-8"),
                (b"caf\xe9", "latin-1 name".encode()),
                (b"nul\x00name", b"\x00"),
                (b"overlong", b"\xc0\xaf\xe0\x80\xaf"),
                (b"surrogate", b"\xed\xa0\x80\xed\xbf\xbf"),
                (b"truncated", b"abc\xe2\x82"),
                (b"\xff", b"encodes as base64:/w=="),
                (b"base64:/w==", b"a UTF-8 name that spells the encoding of another"),
                (b"twice", b"first value"),
                (b"\x80" * (256 * 1024), rng.randbytes(64 * 1024)),
                (b"twice", b"\xff second value, not UTF-8"),
                (b"", b"")]
    raise SystemExit("unknown case %s" % name)

def write(port, password, stream, manifest, *cases):
    r = Redis(port, password)
    with open(manifest, "a") as out:
        for name in cases:
            fields = case_fields(name)
            args = [b"XADD", stream.encode(), b"*"]
            for k, v in fields:
                args += [k, v]
            id_ = r.command(*args).decode()
            back = r.command(b"XRANGE", stream.encode(), id_.encode(), id_.encode())
            assert back[0][1] == [x for kv in fields for x in kv], \
                "%s: Redis stored something else than was sent" % name
            out.write(json.dumps({"case": name, "stream": stream, "id": id_,
                                  "fields": [digest(k) + digest(v) for k, v in fields]}) + "\n")
            print("  %-13s %s (%d fields, %d bytes)"
                  % (name, id_, len(fields), sum(len(k) + len(v) for k, v in fields)))

def load_manifest(path):
    return [json.loads(l) for l in open(path)]

def utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False

def decode_name(key):
    if key.startswith("base64:"):
        return base64.b64decode(key[7:], validate=True), False
    return key.encode("utf-8"), True

def decode_value(v):
    if isinstance(v, dict):
        assert list(v) == ["base64"], "value object with keys %r" % list(v)[:5]
        return base64.b64decode(v["base64"], validate=True), False
    assert isinstance(v, str), "value of type %s" % type(v).__name__
    return v.encode("utf-8"), True

def grouped(pairs):
    """(name, value) pairs grouped by name in first-occurrence order: the JSON shape."""
    order, by = [], {}
    for k, v in pairs:
        if k not in by:
            order.append(k)
            by[k] = []
        by[k].append(v)
    return [(k, by[k]) for k in order]

def json_pairs(fields, problems, what):
    """The JSON object of one entry as [(name digest, [value digest...])], checking that each
    name and value is text exactly when it is UTF-8."""
    out = []
    for key, val in fields.items():
        name, as_text = decode_name(key)
        # A name is text when it is UTF-8 without a NUL and does not start with "base64:".
        if as_text != (utf8(name) and b"\0" not in name and not name.startswith(b"base64:")):
            problems.append("%s: name %r encoded %s" % (what, key[:40], "as text" if as_text else "in base64"))
        values = val if isinstance(val, list) else [val]
        if isinstance(val, list) and len(val) < 2:
            problems.append("%s: name %r maps to an array of %d" % (what, key[:40], len(val)))
        digests = []
        for v in values:
            b, text = decode_value(v)
            if text != utf8(b):
                problems.append("%s: a value of %r (%d bytes) encoded %s"
                                % (what, key[:40], len(b), "as text" if text else "in base64"))
            digests.append(tuple(digest(b)))
        out.append((tuple(digest(name)), digests))
    return out

def check(manifest, fmt, *paths):
    entries = load_manifest(manifest)
    want = {(e["stream"], e["id"]): e for e in entries}
    streams = {e["stream"] for e in entries}
    seen, problems = {}, []
    def docs():
        for path in paths:
            if fmt == "lines":
                with open(path, "rb") as f:
                    for n, raw in enumerate(f, 1):
                        yield "%s:%d" % (path, n), raw
            else:
                with open(path, "rb") as f:
                    yield path, f.read()
    for where, raw in docs():
        try:
            obj = json.loads(raw)
        except ValueError as e:
            problems.append("%s: not JSON (%s): %r" % (where, e, raw[:80]))
            continue
        if obj.get("stream") not in streams:
            continue
        key = (obj["stream"], obj["id"])
        e = want.get(key)
        if e is None:
            problems.append("%s: unexpected entry %s %s" % ((where,) + key))
            continue
        if key in seen:
            problems.append("%s: %s %s received again (first in %s)" % ((where,) + key + (seen[key],)))
            continue
        seen[key] = where
        what = "%s (%s)" % (e["case"], e["id"])
        try:
            got = json_pairs(obj["fields"], problems, what)
        except Exception as ex:
            problems.append("%s: undecodable fields: %s" % (what, ex))
            continue
        exp = grouped([(tuple(f[0:2]), tuple(f[2:4])) for f in e["fields"]])
        if got != exp:
            bad = next((i for i, (a, b) in enumerate(zip(got, exp)) if a != b), min(len(got), len(exp)))
            problems.append("%s: fields differ: %d names received, %d written; first difference "
                            "at name #%d" % (what, len(got), len(exp), bad))
        else:
            print("  %-13s %s intact (%d names)" % (e["case"], e["id"], len(got)))
    problems += ["%s (%s): never received" % (e["case"], e["id"]) for e in entries
                 if (e["stream"], e["id"]) not in seen]
    for p in problems[:20]:
        print("  " + p)
    sys.exit(1 if problems else 0)

META = [b"redstream.original_stream", b"redstream.original_id", b"redstream.delivery_count",
        b"redstream.last_error", b"redstream.dead_lettered_at"]

def dlq(port, password, manifest, dlq_stream, error_text, deliveries):
    entries = load_manifest(manifest)
    r = Redis(port, password)
    letters = r.command(b"XRANGE", dlq_stream.encode(), b"-", b"+")
    problems, seen = [], set()
    for dlq_id, flat in letters:
        pairs = list(zip(flat[::2], flat[1::2]))
        meta = dict(p for p in pairs if p[0].startswith(b"redstream."))
        orig = meta.get(b"redstream.original_id", b"?").decode(errors="replace")
        e = next((x for x in entries if x["id"] == orig), None)
        if e is None:
            problems.append("dead letter %s of unknown entry %s" % (dlq_id.decode(), orig))
            continue
        seen.add(orig)
        what = "%s (%s)" % (e["case"], orig)
        n = len(e["fields"])
        got = [digest(k) + digest(v) for k, v in pairs[:n]]
        if got != e["fields"]:
            problems.append("%s: the dead letter'"'"'s fields differ from the entry'"'"'s" % what)
        if [k for k, _ in pairs[n:]] != META:
            problems.append("%s: metadata fields %r" % (what, [k for k, _ in pairs[n:]]))
            continue
        if meta[META[0]].decode() != e["stream"] or meta[META[2]] != deliveries.encode():
            problems.append("%s: metadata %r" % (what, {k: v[:80] for k, v in meta.items()}))
        if error_text.encode() not in meta[META[3]]:
            problems.append("%s: last_error %r lacks %r" % (what, meta[META[3]][:200], error_text))
        print("  %-13s %s dead-lettered as %s (%d fields + metadata)"
              % (e["case"], orig, dlq_id.decode(), n))
    problems += ["%s (%s): not dead-lettered" % (e["case"], e["id"]) for e in entries
                 if e["id"] not in seen]
    if len(letters) != len(entries):
        problems.append("%d dead letters for %d entries" % (len(letters), len(entries)))
    for p in problems[:20]:
        print("  " + p)
    sys.exit(1 if problems else 0)

cmd, args = sys.argv[1], sys.argv[2:]
{"write": write, "check": check, "dlq": dlq}[cmd](*args)
'
