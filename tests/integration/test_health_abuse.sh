#!/usr/bin/env bash
#
# The HTTP server under abuse, all from 127.0.0.1 and bounded in count and time: a burst of 200
# concurrent connections, garbage bytes, requests with 64 KiB of headers, clients that send one
# byte per second, clients that connect and say nothing. Meanwhile entries are added: every
# one is handled, /healthz keeps answering within a deadline, and the server closes the slow
# and the silent clients itself (per-request time limit, idle timeout).

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/health_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/health_lib.sh"

ENTRIES=500           # added in batches while the abuse runs
BATCHES=5
ABUSE_S=18            # how long the slow clients keep sending; the whole abuse ends soon after
PROBE_S=$((5 * RS_SCALE)) # each /healthz probe must get a 200 within this
REQUEST_LIMIT_S=10    # health.c's REQUEST_TIME_LIMIT_MS
IDLE_S=5              # health.c's IDLE_TIMEOUT_S

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
hc_pick_port
conf=$(cl_config abuse streams="events:discard" threads=4 queue=64 health_port="$HC_PORT")
cl_spawn_consumer c1 "$conf"
pid=$RS_PID
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) hc_status_is GET /readyz 200 ||
    rs_fail "/readyz never 200: $HC_STATUS"

rs_case "abuse (200 concurrent, garbage, 64 KiB headers, 1 byte/s, silent) leaves /healthz answering and $ENTRIES entries handled"
summary=$RS_TMP/abuse.json
# A file, not stdin: a background command's stdin is /dev/null.
cat >"$RS_TMP/abuse.py" <<'PY'
import json, os, socket, sys, threading, time

port, out, abuse_s = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
results = {"burst": {}, "garbage": {}, "big": {}, "slow": [], "silent": []}
lock = threading.Lock()
t0 = time.monotonic()

def count(kind, what):
    with lock:
        results[kind][what] = results[kind].get(what, 0) + 1

def outcome(s, limit):
    """Reads until the server closes or `limit` seconds pass; returns the status or a word."""
    s.settimeout(limit)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return "timeout"
    except OSError:
        pass  # reset: judged by what arrived
    if data.startswith(b"HTTP/1.1 "):
        return data[9:12].decode()
    return "closed" if not data else "junk"

def burst(i, barrier):
    path = ["/healthz", "/readyz", "/metrics", "/streams"][i % 4]
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError as e:
        barrier.wait()
        count("burst", "connect:" + type(e).__name__)
        return
    try:
        barrier.wait()
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        count("burst", outcome(s, 15))
    except OSError:
        count("burst", "closed")
    finally:
        s.close()

def garbage(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(os.urandom(4096) + b"\r\n\r\n")
        count("garbage", outcome(s, 15))
        s.close()
    except OSError:
        count("garbage", "closed")

def big(i):
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (n, b"a" * 1000) for n in range(64))  # 64 KiB
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + pad + b"\r\n")
        count("big", outcome(s, 15))
        s.close()
    except OSError:
        count("big", "closed")  # the server stopped reading and reset us mid-send

def slow(i):
    """One byte per second until the server closes us or abuse_s passes."""
    start = time.monotonic()
    closed_after = None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setblocking(False)
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
            if time.monotonic() - start > abuse_s:
                break
            try:
                if s.recv(4096) == b"":
                    closed_after = time.monotonic() - start
                    break
            except BlockingIOError:
                pass
            s.send(bytes([b]))
            time.sleep(1)
    except OSError:
        closed_after = time.monotonic() - start
    with lock:
        results["slow"].append(closed_after)

def silent(i):
    start = time.monotonic()
    closed_after = None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.settimeout(abuse_s)
        if s.recv(4096) == b"":
            closed_after = time.monotonic() - start
    except socket.timeout:
        pass
    except OSError:
        closed_after = time.monotonic() - start
    with lock:
        results["silent"].append(closed_after)

threads = []
def start(fn, n, *args):
    for i in range(n):
        t = threading.Thread(target=fn, args=(i,) + args, daemon=True)
        t.start()
        threads.append(t)

start(slow, 8)
start(silent, 4)
time.sleep(1)
barrier = threading.Barrier(200, timeout=30)
start(burst, 200, barrier)
start(garbage, 20)
start(big, 3)
for t in threads:
    t.join(abuse_s + 20)  # every client is bounded; this is a last guard
results["seconds"] = round(time.monotonic() - t0, 1)
results["unfinished"] = sum(t.is_alive() for t in threads)
with open(out, "w") as f:
    json.dump(results, f)
PY
rs_spawn abuse "$RS_PYTHON" "$RS_TMP/abuse.py" "$HC_PORT" "$summary" "$ABUSE_S"
abuse=$RS_PID
# Entries arrive in batches while the abuse runs, and /healthz is probed between them (every
# batch is added even if the abuse is over by then).
max_probe_ms=0
probes=0
added=0
for ((b = 1; b <= BATCHES; b++)); do
    cl_resp_xadd "$RS_TMP/batch-$b.resp" events $((ENTRIES / BATCHES)) $((added + 1))
    cl_pipe "$RS_TMP/batch-$b.resp"
    added=$((added + ENTRIES / BATCHES))
    for ((p = 0; p < 4; p++)); do
        rs_exited "$abuse" && break
        start=$(cl_now_ms)
        cl_wait_for "$pid" "$PROBE_S" hc_status_is GET /healthz 200 ||
            rs_fail "/healthz not answered with 200 within ${PROBE_S}s during the abuse (last: $HC_STATUS)"
        took=$(($(cl_now_ms) - start))
        ((took > max_probe_ms)) && max_probe_ms=$took
        probes=$((probes + 1))
        sleep 0.5
    done
done
rs_assert_eq "$ENTRIES" "$added" "entries added"
echo "  $probes /healthz probes during the abuse, the slowest answered in $max_probe_ms ms"
rs_wait_exit "$abuse" $((ABUSE_S + 40))
rs_assert_exit 0
cl_wait_for "$pid" $((20 * RS_SCALE)) cl_settled events ||
    rs_fail "not settled after the abuse: pending $(cl_pending events), lag $(cl_group_field events lag)"
cl_wait_for "$pid" $((5 * RS_SCALE)) hc_metrics_are \
    "redstream_messages_received_total{stream=\"events\"}=$ENTRIES" \
    "redstream_messages_acked_total{stream=\"events\"}=$ENTRIES" ||
    rs_fail "counters after the abuse: $(grep -E '^redstream_messages_(received|acked)' "$HC_BODY" | tr '\n' ' ')"
rs_pass

rs_case "every abusive client got a bounded answer: slow ones cut at the request time limit, silent ones at the idle timeout"
"$RS_PYTHON" - "$summary" "$REQUEST_LIMIT_S" "$IDLE_S" "$RS_SCALE" <<'PY' || rs_fail "abuse outcomes: $(cat "$summary")"
import json, sys
r = json.load(open(sys.argv[1]))
limit, idle, scale = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print("  burst %s; garbage %s; 64 KiB headers %s" % (r["burst"], r["garbage"], r["big"]))
print("  slow clients closed after %s s; silent ones after %s s; abuse took %s s"
      % ([c and round(c, 1) for c in r["slow"]], [c and round(c, 1) for c in r["silent"]], r["seconds"]))
assert r["unfinished"] == 0, "clients still running"
# At most 32 connections from one address at once, 12 of them held by the slow and the
# silent clients: most of the burst is refused, and what gets in is answered.
assert sum(r["burst"].values()) == 200 and r["burst"].get("200", 0) >= 10, r["burst"]
assert "timeout" not in r["burst"] and "junk" not in r["burst"], r["burst"]
# Garbage gets 400 or a close, never a success or a hang.
assert set(r["garbage"]) <= {"400", "closed"} and sum(r["garbage"].values()) == 20, r["garbage"]
# 64 KiB of headers do not fit the connection's memory: 431 (or 400), or a reset.
assert set(r["big"]) <= {"431", "400", "closed"} and sum(r["big"].values()) == 3, r["big"]
# The reaper checks once a second; allow for that and a loaded machine.
assert len(r["slow"]) == 8 and all(c is not None and limit - 1 <= c <= limit + 2 + 2 * scale for c in r["slow"]), r["slow"]
assert len(r["silent"]) == 4 and all(c is not None and c <= idle + 2 + 2 * scale for c in r["silent"]), r["silent"]
PY
rs_assert_file_contains "$err" "whose request took longer than 10000 ms"
rs_pass

rs_case "after the abuse: /healthz and /readyz 200, the consumer alive and clean"
hc_expect GET /healthz 200
hc_expect GET /readyz 200
hc_expect GET /metrics 200
hc_promtool "$HC_BODY"
RS_ERR=$err
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
cl_assert_clean_stderr "$err"
hc_assert_no_password
rs_pass
