#!/usr/bin/env bash
#
# Hot reload (SIGHUP) with messages flowing: nothing lost, nothing handled twice.
#
# Three producers publish numbered entries to streams a, b and c at a steady pace for the
# whole test. The consumer starts with a (log handler) and b (log handler); c is not listed
# yet, so its entries wait in Redis. Then, each a SIGHUP after rewriting the file:
#   1. add c and remove b: c's backlog and new entries get handled; b stops being read, and
#      everything it handled is acknowledged (what Redis delivered to its socket as it stopped
#      may stay pending, unread, until b comes back);
#   2. change a's handler from log to exec (a program writing each entry to a file named by
#      its id): every entry of a is handled by exactly one of the two handlers, and every
#      entry handled by the new one comes after every entry handled by the old one;
#   3. an invalid file (a syntax error, then a value out of range): rejected with a logged
#      error naming the problem, while a and c keep flowing; a change that needs a restart
#      (workers.threads) is named in a warning and not applied;
#   4. log.level = "debug" applies at once; b comes back and its backlog is consumed.
# At the end, for each stream: the ids handled (log output plus exec files) are exactly the
# ids in the stream, each once; nothing pending, no lag. Then a clean SIGTERM exit.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

PER_STREAM=2000 # entries per producer
EXTRA=20        # entries added by hand (to a after its change, to a and c after the
                # rejected reloads), which must flow even once the producers are done
INTERVAL=3ms    # between entries: about 6 s of publishing per stream
EXEC_DIR=$RS_TMP/a-exec
mkdir -p "$EXEC_DIR"
HEALTH_PORT=$(rs_free_port)
CONF=$RS_TMP/reload.conf

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis

# write_conf LEVEL THREADS STREAMS...: (re)writes the consumer's file; each STREAMS word is
# NAME:log or a:exec. Written to a temp file and renamed, so a reload never reads half a file.
write_conf() {
    local level=$1 threads=$2 list="" spec
    shift 2
    for spec in "$@"; do
        case $spec in
        *:log) list+="${list:+,}{ name = \"${spec%%:*}\"; handler = \"log\"; }" ;;
        a:exec)
            list+="${list:+,}{ name = \"a\"; handler = \"exec\"; timeout_ms = 10000;
                command = [ \"/bin/sh\", \"-c\", \"cat > \\\"\$0/\$REDSTREAM_ID\\\"\", \"$EXEC_DIR\" ]; }"
            ;;
        esac
    done
    cat >"$CONF.tmp" <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; read_count = 50; };
workers = { threads = $threads; queue_capacity = 256; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $HEALTH_PORT; };
streams = ( $list );
log = { level = "$level"; };
EOF
    mv "$CONF.tmp" "$CONF"
}

# reload: sends SIGHUP and waits until the consumer has logged one more reload outcome.
reload() {
    local before
    before=$(reload_count)
    kill -HUP "$CONSUMER"
    cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) reloaded_since "$before" ||
        rs_fail "no reload outcome logged after SIGHUP"
}
reload_count() {
    grep -cE 'reload: [0-9]+ streams|reload rejected' "$RS_TMP/consumer.err" || true
}
reloaded_since() {
    (($(reload_count) > $1))
}

# handled_ids STREAM: the ids of STREAM handled so far, one per line (log output + exec files).
handled_ids() {
    cl_handled "$RS_TMP/consumer.out" | awk -v s="$1" '$1 == s { print $2 }'
    if [[ $1 == a ]]; then
        ls "$EXEC_DIR"
    fi
}
count_handled() {
    handled_ids "$1" | wc -l
}
has_handled() {
    (($(count_handled "$1") >= $2))
}
exec_count() {
    find "$EXEC_DIR" -type f | wc -l
}
exec_has() {
    (($(exec_count) >= $1))
}
# Compares two ids "ms-seq" numerically: true when $1 < $2.
id_lt() {
    local a_ms=${1%-*} a_seq=${1#*-} b_ms=${2%-*} b_seq=${2#*-}
    ((a_ms < b_ms || (a_ms == b_ms && a_seq < b_seq)))
}

rs_case "start with streams a and b while three producers publish"
write_conf info 4 a:log b:log
cl_spawn_consumer consumer "$CONF"
CONSUMER=$RS_PID
for s in a b c; do
    rs_spawn "producer-$s" "$RS_PRODUCER" -c "$CONF" --stream "$s" --interval "$INTERVAL" \
        --count "$PER_STREAM"
    declare "PRODUCER_$s=$RS_PID"
done
RS_ERR=$RS_TMP/consumer.err # what a failure shows
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) has_handled a 100 || rs_fail "a is not being handled"
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) has_handled b 100 || rs_fail "b is not being handled"
rs_assert_eq 0 "$(count_handled c)" "entries of c handled before c was configured"
rs_pass

rs_case "reload adds c and removes b: c flows, b's entries read are all acknowledged"
write_conf info 4 a:log c:log
reload
rs_assert_file_contains "$RS_TMP/consumer.err" "added: c; removed: b; changed: none"
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) grep -q "stream=b removed" "$RS_TMP/consumer.err" ||
    rs_fail "b's retirement did not complete"
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) has_handled c 100 || rs_fail "c is not being handled"
B_AT_REMOVAL=$(count_handled b)
# Every entry of b that was handled is acknowledged. (Entries Redis delivered to the reader's
# socket just as it was stopped may stay pending for c1, unread: they are handled when b
# comes back, which the last case checks.)
handled_ids b | sort >"$RS_TMP/b.handled"
cl_pending_ids b | sort >"$RS_TMP/b.pending"
both=$(comm -12 "$RS_TMP/b.handled" "$RS_TMP/b.pending" | head -n 3 | tr '\n' ' ')
[[ -z $both ]] || rs_fail "entries of b handled but still pending after its removal: $both"
rs_assert_le 50 "$(wc -l <"$RS_TMP/b.pending")" "entries of b left pending (at most one read's worth)"
# b's producer keeps publishing; none of that may be handled while b is not configured.
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) has_handled a "$(($(count_handled a) + 100))" ||
    rs_fail "a stopped flowing after the reload"
rs_assert_eq "$B_AT_REMOVAL" "$(count_handled b)" "entries of b handled after its removal"
rs_pass

rs_case "reload changes a's handler: later entries go to the new one, none to both"
write_conf info 4 a:exec c:log
reload
rs_assert_file_contains "$RS_TMP/consumer.err" "added: none; removed: none; changed: a"
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) grep -q "stream=a now handled with its new settings" \
    "$RS_TMP/consumer.err" || rs_fail "a did not restart with its new handler"
# Whether or not a's producer is still running, these must reach the new handler.
for i in $(seq 1 $EXTRA); do
    rs_cli XADD a '*' message "after the change #$i" type test >/dev/null
done
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) exec_has "$EXTRA" ||
    rs_fail "the exec handler got no entries of a"
LAST_LOG=$(cl_handled "$RS_TMP/consumer.out" | awk '$1 == "a" { print $2 }' | sort -t- -k1,1n -k2,2n | tail -n 1)
FIRST_EXEC=$(find "$EXEC_DIR" -type f -printf "%f\n" | sort -t- -k1,1n -k2,2n | sed -n 1p) # sed reads to the end: no SIGPIPE under pipefail
id_lt "$LAST_LOG" "$FIRST_EXEC" ||
    rs_fail "entry $FIRST_EXEC went to the new handler before $LAST_LOG went to the old one"
rs_pass

rs_case "invalid configurations are rejected; a and c keep flowing"
cp "$CONF" "$RS_TMP/good.conf"
echo 'workers = { threads = ; };' >>"$CONF"
reload
rs_assert_file_contains "$RS_TMP/consumer.err" "reload rejected, the running configuration stays"
rs_assert_file_contains "$RS_TMP/consumer.err" "syntax error"
write_conf info 0 a:exec c:log
reload
rs_assert_file_contains "$RS_TMP/consumer.err" "workers.threads: must be between 1 and 1024, got 0"
# The producers may have finished by now: publish a few more, which must be handled.
for s in a c; do
    before=$(count_handled "$s")
    for i in $(seq 1 $EXTRA); do
        rs_cli XADD "$s" '*' message "extra #$i" type test >/dev/null
    done
    cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) has_handled "$s" "$((before + EXTRA))" ||
        rs_fail "$s stopped flowing after a rejected reload"
done
rs_pass

rs_case "a setting that needs a restart is named and not applied"
write_conf info 2 a:exec c:log
reload
rs_assert_file_contains "$RS_TMP/consumer.err" "reload: workers.threads changed, which takes a restart"
curl -fsS "http://127.0.0.1:$HEALTH_PORT/metrics" >"$RS_TMP/metrics.txt"
rs_assert_file_contains "$RS_TMP/metrics.txt" "redstream_workers 4"
rs_pass

rs_case "log level applies at once; b comes back and its backlog is consumed"
write_conf debug 4 a:exec b:log c:log
reload
rs_assert_file_contains "$RS_TMP/consumer.err" "reload: log level now debug"
rs_assert_file_contains "$RS_TMP/consumer.err" "added: b; removed: none; changed: none"
for s in a b c; do
    rs_wait_exit "$(eval echo "\$PRODUCER_$s")" $((30 * RS_SCALE))
    rs_assert_exit 0
done
RS_WAIT_TIMEOUT=$((30 * RS_SCALE)) rs_wait_for cl_settled a b c || cl_fail "not settled:" \
    "pending a=$(cl_pending a) b=$(cl_pending b) c=$(cl_pending c)," \
    "lag a=$(cl_group_field a lag) b=$(cl_group_field b lag) c=$(cl_group_field c lag)"
rs_pass

rs_case "every entry of every stream was handled exactly once"
for s in a b c; do
    rs_cli XRANGE "$s" - + | grep -E '^[0-9]+-[0-9]+$' | sort >"$RS_TMP/$s.want"
    handled_ids "$s" | sort >"$RS_TMP/$s.got"
    case $s in
    a) want=$((PER_STREAM + 2 * EXTRA)) ;;
    b) want=$PER_STREAM ;;
    c) want=$((PER_STREAM + EXTRA)) ;;
    esac
    rs_assert_eq "$want" "$(wc -l <"$RS_TMP/$s.want")" "entries in stream $s"
    dups=$(uniq -d "$RS_TMP/$s.got" | head -n 3 | tr '\n' ' ')
    [[ -z $dups ]] || rs_fail "stream $s: handled twice: $dups"
    missing=$(comm -23 "$RS_TMP/$s.want" "$RS_TMP/$s.got" | head -n 3 | tr '\n' ' ')
    [[ -z $missing ]] || rs_fail "stream $s: never handled: $missing"
    extra=$(comm -13 "$RS_TMP/$s.want" "$RS_TMP/$s.got" | head -n 3 | tr '\n' ' ')
    [[ -z $extra ]] || rs_fail "stream $s: handled but not in the stream: $extra"
done
echo "  handled: a=$(count_handled a) (exec $(exec_count)) b=$(count_handled b) c=$(count_handled c)"
rs_pass

rs_case "SIGTERM after the reloads: clean exit"
cl_stop_consumer "$CONSUMER" 5000
rs_assert_exit 0
rs_assert_file_lacks "$RS_TMP/consumer.err" "Sanitizer"
rs_assert_file_lacks "$RS_TMP/consumer.err" "runtime error:"
rs_assert_file_lacks "$RS_TMP/consumer.err" "$RS_REDIS_PASSWORD"
rs_pass
