#!/usr/bin/env python3
"""The Python side of the ordering tests (tests/integration/test_ordering_*.sh).

Subcommands (stdlib only; everything on 127.0.0.1):

  keys uniform N NKEYS NOKEY SEED
      Prints N + NOKEY keys, one a line: N drawn at random (seeded) from k0000..k<NKEYS-1>,
      and NOKEY in bursts of 10 spread evenly among them, alternately "-" (an entry without
      the key field) and "=" (the field with an empty value), which share one lane.
  keys hot NHOT NCOLD COLDKEYS
      Prints NHOT lines "hot" and NCOLD cold keys c00..c<COLDKEYS-1>, interleaved evenly:
      one cold key after every NHOT/NCOLD hot ones, the cold keys taken in turn.
  publish PORT PASSWORD STREAM OUT
      Reads keys from stdin (as printed by "keys") and XADDs one entry per line to STREAM,
      pipelined 1,000 at a time: fields "key" <key> (left out for "-", empty for "=") and
      "n" <line number>.
      Writes "<id> <key>" per entry to OUT, in id order.
  check RECORD PUBLISHED STREAM --lanes key|stream|none [--strict] [--rejected ID...]
        [--key KEY]
      Checks the receiver's record (tests/webhook-receiver/receiver.js) of STREAM against the
      published entries; see check() below. --key: only the entries of KEY ("-": those
      without the key field). Prints a summary line; exits 1 with the first problem found.
  window RECORD STREAM ID
      For an entry that was answered 503 before it succeeded: prints "others=N", the number
      of other keys' requests answered 200 that arrived after its first failed answer and were
      answered before its successful request arrived (work the rest of the stream did while
      the entry's key waited for its retry), "waited_ms=T", that wait, and "answers=S,S,..",
      the entry's answers in order.
  hot RECORD STREAM HOTKEY
      Prints "hot_total=H cold_total=C hot_done=D pct=P": when the last entry of the other keys
      was answered 200, D of the H entries of HOTKEY had been answered 200 (P percent).
"""

import json
import random
import socket
import sys


def id_key(entry_id):
    """A stream id as a tuple that compares like Redis does: milliseconds, then sequence."""
    ms, seq = entry_id.split("-")
    return (int(ms), int(seq))


def fail(msg):
    sys.stderr.write("ordering_tool: %s\n" % msg)
    sys.exit(1)


# --- keys and publishing -------------------------------------------------------------------


def keys(kind, *args):
    out = []
    if kind == "uniform":
        n, nkeys, nokey, seed = (int(a) for a in args)
        rng = random.Random(seed)
        keyed = ["k%04d" % rng.randrange(nkeys) for _ in range(n)]
        # In bursts of up to 10, so that they would be handled at once without their lane.
        bursts = (nokey + 9) // 10
        every = (n // bursts) if bursts else 0
        added = 0
        for i, k in enumerate(keyed):
            out.append(k)
            if bursts and i % every == every - 1:
                for _ in range(min(10, nokey - added)):
                    out.append("-="[added % 2])
                    added += 1
        out.extend("-="[j % 2] for j in range(added, nokey))
    elif kind == "hot":
        nhot, ncold, coldkeys = (int(a) for a in args)
        step = nhot // ncold
        c = 0
        for i in range(nhot):
            out.append("hot")
            if i % step == step - 1 and c < ncold:
                out.append("c%02d" % (c % coldkeys))
                c += 1
        out.extend("c%02d" % (j % coldkeys) for j in range(c, ncold))
    else:
        fail("keys: unknown kind %r" % kind)
    sys.stdout.write("\n".join(out) + "\n")


class Redis:
    """A minimal RESP client: enough for AUTH and pipelined XADDs."""

    def __init__(self, port, password):
        self.sock = socket.create_connection(("127.0.0.1", int(port)), timeout=60)
        self.rfile = self.sock.makefile("rb")
        self.send([[b"AUTH", password.encode()]])
        if self.reply() != b"OK":
            fail("AUTH failed")

    def send(self, commands):
        buf = []
        for args in commands:
            buf.append(b"*%d\r\n" % len(args))
            for a in args:
                buf.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(buf))

    def reply(self):
        line = self.rfile.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b"$"):
            return rest if kind == b"+" else self.rfile.read(int(rest) + 2)[:-2]
        if kind == b"-":
            fail("Redis error: %s" % rest.decode(errors="replace"))
        fail("unexpected reply %r" % line[:60])


def publish(port, password, stream, out_path):
    key_list = [line.strip() for line in sys.stdin if line.strip()]
    r = Redis(port, password)
    s = stream.encode()
    with open(out_path, "w") as out:
        for start in range(0, len(key_list), 1000):
            chunk = key_list[start : start + 1000]
            cmds = []
            for i, k in enumerate(chunk, start + 1):
                args = [b"XADD", s, b"*"]
                if k == "=":
                    args += [b"key", b""]
                elif k != "-":
                    args += [b"key", k.encode()]
                args += [b"n", str(i).encode()]
                cmds.append(args)
            r.send(cmds)
            for k in chunk:
                entry_id = r.reply().decode()
                out.write("%s %s\n" % (entry_id, k))


# --- the receiver's record -----------------------------------------------------------------


def load(record_path, stream):
    """The record's requests of STREAM, in arrival order; fails on a bad or unfinished one."""
    reqs = []
    with open(record_path) as f:
        for n, line in enumerate(f, 1):
            r = json.loads(line)
            if r.get("bad"):
                fail("%s:%d: the receiver got a body that is not a delivery" % (record_path, n))
            if r["d"] is None:
                fail("%s:%d: request for %s still unanswered when the record was written"
                     % (record_path, n, r["id"]))
            if r["stream"] == stream:
                reqs.append(r)
    reqs.sort(key=lambda r: r["a"])
    return reqs


def show_key(k):
    return "(no key field)" if k is None else repr(k)


def lane_of(k):
    """The lane of a key value: entries without the field and those with an empty value
    share one (the documented rule)."""
    return k if k else None


def check(record_path, published_path, stream, opts):
    """Checks, for STREAM:
      - every request is for a published id, and carries the key published with it;
      - every published id got a final answer: 200, or 400 for the ids given as --rejected
        (whose every request is answered 400);
      - lanes "key" (one lane per key value; entries without the field or with an empty
        value share one lane) or
        "stream" (one lane): within a lane, in arrival order, each request arrives only after
        the previous one was answered (one at a time), ids never go back, the same id comes
        again only after a 503 (a retry), and the lane moves on to a later id only after the
        previous id's final answer (200 or 400); so the ids first handled successfully are
        strictly increasing per lane. --strict: no id is requested twice at all.
      - lanes "none": coverage only."""
    lanes_mode = opts["lanes"]
    published = {}
    with open(published_path) as f:
        for line in f:
            entry_id, k = line.split()
            published[entry_id] = {"-": None, "=": ""}.get(k, k)
    if opts["key"] is not None:
        only = None if opts["key"] == "-" else opts["key"]
        published = {i: k for i, k in published.items() if lane_of(k) == only}
        if not published:
            fail("no entry of key %s was published" % show_key(only))
    rejected = set(opts["rejected"])
    reqs = load(record_path, stream)
    if opts["key"] is not None:
        reqs = [r for r in reqs if r["id"] in published or lane_of(r["key"]) == only]
    final = {}
    for r in reqs:
        if r["id"] not in published:
            fail("request for %s, which was never published to %s" % (r["id"], stream))
        if r["key"] != published[r["id"]]:
            fail("request for %s carries key %s, published with %s"
                 % (r["id"], show_key(r["key"]), show_key(published[r["id"]])))
        if r["id"] in rejected and r["status"] != 400:
            fail("rejected entry %s was answered %d" % (r["id"], r["status"]))
        if r["status"] in (200, 400):
            final[r["id"]] = r["status"]
    missing = [i for i in published if i not in final]
    if missing:
        fail("%d of %d published entries of %s never handled, e.g. %s"
             % (len(missing), len(published), stream, " ".join(sorted(missing, key=id_key)[:5])))
    wrong = [i for i in published if final[i] != (400 if i in rejected else 200)]
    if wrong:
        fail("entries with an unexpected final answer: %s"
             % " ".join("%s=%d" % (i, final[i]) for i in wrong[:5]))

    if opts["strict"]:
        seen = set()
        for r in reqs:
            if r["id"] in seen:
                fail("%s: entry %s handled more than once" % (stream, r["id"]))
            seen.add(r["id"])
    lanes = {}
    if lanes_mode != "none":
        for r in reqs:
            lanes.setdefault(lane_of(r["key"]) if lanes_mode == "key" else "", []).append(r)
    retried = 0
    for lane, rs in lanes.items():
        name = show_key(lane) if lanes_mode == "key" else "the stream"
        for prev, r in zip(rs, rs[1:]):
            where = "%s %s: %s (delivery %d) after %s (delivery %d, answered %d)" % (
                stream, name, r["id"], r["delivery"], prev["id"], prev["delivery"],
                prev["status"])
            if r["a"] < prev["d"]:
                fail("%s: not one at a time: it arrived (event %d) before %s was answered "
                     "(event %d)" % (where, r["a"], prev["id"], prev["d"]))
            a, b = id_key(prev["id"]), id_key(r["id"])
            if b < a:
                fail("%s: out of order" % where)
            if b == a:
                if opts["strict"]:
                    fail("%s: the same entry handled twice" % where)
                if prev["status"] != 503:
                    fail("%s: handled again after a final answer" % where)
                retried += 1
            elif prev["status"] == 503:
                fail("%s: the lane moved on while %s waited for its retry" % (where, prev["id"]))
    print("%s: %d requests, %d entries, %d lanes, %d retries, longest lane %d; order holds"
          % (stream, len(reqs), len(published), len(lanes), retried,
             max((len(v) for v in lanes.values()), default=0)))


def window(record_path, stream, entry_id):
    reqs = load(record_path, stream)
    mine = [r for r in reqs if r["id"] == entry_id]
    fails = [r for r in mine if r["status"] == 503]
    oks = [r for r in mine if r["status"] == 200]
    if not fails or not oks:
        fail("%s: expected a 503 and then a 200, got %s"
             % (entry_id, [r["status"] for r in mine]))
    start, end = fails[0]["d"], oks[-1]["a"]
    lane = lane_of(mine[0]["key"])
    others = sum(1 for r in reqs if lane_of(r["key"]) != lane and r["status"] == 200
                 and r["a"] > start and r["d"] < end)
    waited = (oks[-1]["ta"] - fails[0]["td"]) / 1000.0
    print("others=%d waited_ms=%.0f answers=%s" % (others, waited,
                                                 ",".join(str(r["status"]) for r in mine)))


def hot(record_path, stream, hot_key):
    reqs = [r for r in load(record_path, stream) if r["status"] == 200]
    cold = [r for r in reqs if r["key"] != hot_key]
    hot_reqs = [r for r in reqs if r["key"] == hot_key]
    if not cold or not hot_reqs:
        fail("no cold or no hot entries handled")
    cold_end = max(r["d"] for r in cold)
    done = sum(1 for r in hot_reqs if r["d"] < cold_end)
    print("hot_total=%d cold_total=%d hot_done=%d pct=%d"
          % (len(hot_reqs), len(cold), done, done * 100 // len(hot_reqs)))


def main(argv):
    if len(argv) < 2:
        fail("usage: see the docstring")
    cmd, args = argv[1], argv[2:]
    if cmd == "keys":
        keys(*args)
    elif cmd == "publish":
        publish(*args)
    elif cmd == "check":
        opts = {"lanes": None, "strict": False, "rejected": [], "key": None}
        pos = []
        i = 0
        while i < len(args):
            if args[i] == "--lanes":
                opts["lanes"] = args[i + 1]
                i += 1
            elif args[i] == "--strict":
                opts["strict"] = True
            elif args[i] == "--key":
                opts["key"] = args[i + 1]
                i += 1
            elif args[i] == "--rejected":
                opts["rejected"].append(args[i + 1])
                i += 1
            else:
                pos.append(args[i])
            i += 1
        if opts["lanes"] not in ("key", "stream", "none") or len(pos) != 3:
            fail("check RECORD PUBLISHED STREAM --lanes key|stream|none [--strict] "
                 "[--rejected ID]... [--key KEY]")
        check(*pos, opts)
    elif cmd == "window":
        window(*args)
    elif cmd == "hot":
        hot(*args)
    else:
        fail("unknown subcommand %r" % cmd)


if __name__ == "__main__":
    main(sys.argv)
