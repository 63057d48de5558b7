#!/usr/bin/env bash
#
# Backpressure: with a handler slower than the backlog, redstream-consumer keeps memory bounded
# by leaving the backlog in Redis. The log handler's stdout is a FIFO read by a deliberately
# slow reader (one line every 2 ms), so every worker waits on its write; meanwhile the stream
# grows to 100,000 entries. While that backlog exists, the entries the consumer holds (its
# pending count in Redis) must stay within queue_capacity + threads + one ack batch, and its
# resident memory must stay flat. Then SIGTERM still stops it in time, and nothing it
# acknowledged went unwritten.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

BACKLOG=100000
QUEUE=256
THREADS=4
ACK_BATCH=512 # ACK_BATCH in service/acker.c: acks the acknowledger may hold unsent
MAX_PENDING=$((QUEUE + THREADS + ACK_BATCH))
SHUTDOWN_MS=5000
READ_DELAY_MS=2
WARMUP_LINES=1000                       # handled before the baseline RSS is taken
SAMPLE_SECONDS=${RS_SAMPLE_SECONDS:-10} # how long memory and pending are watched
RSS_SLACK_KB=$((8 * 1024))

# ASan keeps freed memory in a quarantine (256 MiB by default) before reusing it, so RSS
# grows with the bytes allocated in total, not with the bytes live: every handled entry would
# look like a leak. A small quarantine keeps use-after-free detection and makes RSS track
# live memory again. (The last setting in ASAN_OPTIONS wins.)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1"

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
conf=$(cl_config backpressure streams="events:log" threads=$THREADS queue=$QUEUE \
    shutdown_ms=$SHUTDOWN_MS)
# The whole backlog as one RESP file, written before the consumer starts so the clock only
# runs for the part under test.
cl_resp_xadd "$RS_TMP/backlog.resp" events "$BACKLOG"

fifo=$RS_TMP/stdout.fifo
mkfifo "$fifo"
countfile=$RS_TMP/read.count
rs_spawn slow-reader "$RS_PYTHON" -c "$CL_PY" slow-reader "$countfile" "$READ_DELAY_MS" "$fifo"
reader=$RS_PID
cl_spawn_io consumer /dev/null "$fifo" "$RS_CONSUMER" -c "$conf"
pid=$RS_PID
err=$RS_ERR

lines_read() {
    local n
    n=$(cat "$countfile" 2>/dev/null) || true
    echo "${n:-0}"
}
xlen() {
    rs_cli XLEN events
}

rs_case "a backlog of $BACKLOG entries stays in Redis: pending <= $MAX_PENDING, RSS flat"
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists events ||
    rs_fail "the consumer never created its group"
cl_spawn_io pipe "$RS_TMP/backlog.resp" "" "$REDIS_CLI" -h 127.0.0.1 -p "$RS_REDIS_PORT" \
    -a "$RS_REDIS_PASSWORD" --no-auth-warning --pipe
pipe=$RS_PID
RS_ERR=$err

# check_pending: one sample of the consumer's pending count, failing at once past the bound.
max_pending=0
check_pending() {
    local p
    p=$(cl_pending events)
    [[ $p =~ ^[0-9]+$ ]] || rs_fail "XPENDING events workers answered '$p'"
    ((p > max_pending)) && max_pending=$p
    rs_assert_le "$MAX_PENDING" "$p" "entries pending for the consumer"
}
# warmed_up: the backlog is complete and the consumer has been through its queue a few times.
warmed_up() {
    check_pending
    (($(lines_read) >= WARMUP_LINES)) && rs_exited "$pipe"
}
cl_wait_for "$pid" $((20 * RS_SCALE)) warmed_up ||
    rs_fail "no warm-up: $(lines_read) lines read, XLEN $(xlen)"
rs_wait_exit "$pipe" 1
rs_assert_exit 0
rs_assert_eq "$BACKLOG" "$(xlen)" "XLEN events"

base_rss=$(cl_rss_kb "$pid")
max_rss=$base_rss
samples=0
start_lines=$(lines_read)
end=$((SECONDS + SAMPLE_SECONDS))
while ((SECONDS < end)); do
    rs_exited "$pid" && rs_fail "the consumer exited during the run"
    check_pending
    rss=$(cl_rss_kb "$pid")
    ((rss > max_rss)) && max_rss=$rss
    samples=$((samples + 1))
    sleep 0.2 # the sampling interval, not a synchronization
done
lag=$(cl_group_field events lag)
handled=$(($(lines_read) - start_lines))
echo "  $samples samples over ${SAMPLE_SECONDS}s: max pending $max_pending (bound $MAX_PENDING)," \
    "RSS $base_rss KiB -> max $max_rss KiB, $handled lines handled, lag at the end $lag"
# The backlog really existed throughout: most of it is still waiting in Redis.
rs_assert_ge $((BACKLOG / 2)) "${lag:-0}" "lag at the end of sampling"
rs_assert_ge 1 "$handled" "lines handled while sampling"
rs_assert_le $((base_rss + RSS_SLACK_KB)) "$max_rss" "max RSS (KiB) vs baseline $base_rss KiB + 8 MiB"
rs_pass

rs_case "SIGTERM with the handler blocked on its output: status 0 within the shutdown timeout"
cl_stop_consumer "$pid" "$SHUTDOWN_MS"
rs_assert_exit 0
echo "  stopped in ${CL_STOP_MS} ms"
rs_assert_le $((SHUTDOWN_MS + 1000 * RS_SCALE)) "$CL_STOP_MS" "shutdown time (ms)"
cl_assert_clean_stderr "$err"
# The reader sees EOF once the consumer has gone, writes its final count and exits.
rs_wait_exit "$reader" $((10 * RS_SCALE))
rs_assert_exit 0
# Whatever was acknowledged was written first: acked = delivered - still pending.
delivered=$(cl_group_field events entries-read)
pending=$(cl_pending events)
acked=$((delivered - pending))
echo "  delivered $delivered, acked $acked, left pending $pending, lines written $(lines_read)"
rs_assert_le "$MAX_PENDING" "$pending" "entries left pending"
rs_assert_ge "$acked" "$(lines_read)" "lines written vs entries acknowledged"
rs_pass
