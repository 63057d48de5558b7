#!/usr/bin/env bash
#
# Bad configuration files, for every way in: redstream-consumer's start, its --check-config,
# redstream-producer --config, and a SIGHUP reload of a running consumer. The files: one that
# cannot be read (permissions), a directory, an empty one, white space only, 10 MB of random
# bytes (NULs included), 10 MB of valid-looking text on one line, 256 KiB of random bytes
# (with NULs, and without), @include of a directory, of a missing file and of the file itself,
# a stream list that is empty, and a stream's ordering gone wrong (an unknown word, "key"
# without key_field, key_field with another ordering). Each must give one line on stderr
# naming the file and the problem and exit 78 (EX_CONFIG), within seconds and a few MiB,
# without touching Redis; a running consumer must log the reason and keep its old
# configuration (and keep consuming). Edge cases that are valid: a file of comments only (a
# warning says it sets nothing) and a 900 KiB comment line (parsed in bounded time). At the
# end, reloads that change the streams' ordering restart exactly the streams changed.
#
# Unreadable needs a real permission failure: as root (CI) a mode-000 file is still readable,
# so every program here runs as "nobody" (setpriv) when the test runs as root, with the files
# in a directory nobody may enter.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"

TIME_MAX_MS=$((5000 * RS_SCALE)) # per run of a program that refuses its file
RSS_MAX_KIB=$((64 * 1024))       # its peak resident memory
if ((RS_SLOW)); then RSS_MAX_KIB=$((1024 * 1024)); fi # sanitizer shadow memory

# --- running as an unprivileged user ---------------------------------------------------------
AS_USER=()
if ((EUID == 0)); then
    command -v setpriv >/dev/null || rs_fail "running as root needs setpriv (util-linux)"
    AS_USER=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
    chmod 0711 "$RS_TMP" # nobody may pass through to $CFG, not list $RS_TMP
fi
CFG=$RS_TMP/cfg
mkdir -m 0755 "$CFG"

# run_measured NAME CMD...: runs CMD (as nobody when root) with stdout and stderr in
# $RS_TMP/NAME.{out,err}, killed after 60 s; sets RS_RC (128+N for signal N), RUN_MS (wall
# time) and RUN_KIB (peak resident memory), and RS_OUT/RS_ERR.
run_measured() {
    local name=$1
    shift
    RS_OUT=$RS_TMP/$name.out
    RS_ERR=$RS_TMP/$name.err
    read -r RS_RC RUN_MS RUN_KIB < <("$RS_PYTHON" -c '
import resource, subprocess, sys, time
out, err, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
t = time.monotonic()
with open(out, "wb") as o, open(err, "wb") as e:
    try:
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=60).returncode
    except subprocess.TimeoutExpired:
        rc = 124
print(rc if rc >= 0 else 128 - rc, int((time.monotonic() - t) * 1000),
      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
' "$RS_OUT" "$RS_ERR" ${AS_USER[@]+"${AS_USER[@]}"} "$@")
}

# assert_refused PROG FILE PHRASE: the last run exited 78, quickly, in little memory, with
# exactly one line on stderr: "PROG: FILE..." containing PHRASE.
assert_refused() {
    rs_assert_exit 78
    rs_assert_le "$TIME_MAX_MS" "$RUN_MS" "milliseconds to refuse the file"
    rs_assert_le "$RSS_MAX_KIB" "$RUN_KIB" "peak KiB resident while refusing the file"
    rs_assert_eq 1 "$(wc -l <"$RS_ERR")" "lines on stderr ($(head -c 300 "$RS_ERR"))"
    local line
    line=$(cat "$RS_ERR")
    [[ $line == "$1: $2"* ]] || rs_fail "stderr does not start with '$1: $2': $line"
    [[ $line == *"$3"* ]] || rs_fail "stderr does not say '$3': $line"
    rs_assert_file_lacks "$RS_ERR" "$RS_REDIS_PASSWORD"
}

# --- the bad files ---------------------------------------------------------------------------
# make_bad CASE PATH: turns PATH (which holds a good configuration) into the CASE; prints the
# phrase the refusal must contain.
make_bad() {
    local path=$1 what=$2
    case $what in
    unreadable)
        chmod 000 "$path" # as root, the programs run as nobody (see above)
        echo "cannot read: Permission denied"
        ;;
    directory)
        rm -f "$path" && mkdir "$path"
        echo "is a directory"
        ;;
    empty)
        : >"$path"
        echo ": is empty"
        ;;
    blank)
        printf '\n  \t\n\n' >"$path"
        echo ": is empty"
        ;;
    garbage-10mb)
        head -c 10000000 /dev/urandom >"$path"
        echo ": too large: more than 1048576 bytes"
        ;;
    one-line-10mb)
        "$RS_PYTHON" -c 'import sys; sys.stdout.write("redis = { host = \"" + "a" * 10000000 + "\"; };\n")' >"$path"
        echo ": too large: more than 1048576 bytes"
        ;;
    garbage-nul)
        # Text first, so the NUL is found on a later line than the first.
        { printf '# random bytes follow\n\n'; head -c 262144 /dev/urandom; } >"$path"
        echo ": contains a NUL byte (a configuration is text)"
        ;;
    garbage-no-nul)
        { printf 'log = { level = "info"; };\n'; head -c 262144 /dev/urandom | tr -d '\0'; } >"$path"
        echo ": syntax error"
        ;;
    include-dir)
        mkdir -p "$CFG/adir"
        printf '# pulls in a directory\n@include "adir"\n' >"$path"
        echo ':2: @include "adir": '"$CFG/adir is a directory"
        ;;
    include-missing)
        printf '@include "absent.inc"\n' >"$path"
        echo ':1: @include "absent.inc": '"cannot read $CFG/absent.inc: No such file or directory"
        ;;
    include-self)
        printf '@include "%s"\n' "$(basename "$path")" >"$path"
        echo "(an include loop)"
        ;;
    no-streams)
        printf 'streams = ( );\n' >"$path"
        echo ":1: streams: must list at least one stream"
        ;;
    ordering-unknown)
        printf 'streams = (\n  { name = "events"; ordering = "keyed"; }\n);\n' >"$path"
        echo ":2: streams[0].ordering: unknown ordering 'keyed' (known: none, stream, key)"
        ;;
    ordering-key-no-field)
        printf 'streams = (\n  { name = "events";\n    ordering = "key"; }\n);\n' >"$path"
        echo ':3: streams[0].ordering: key_field is required when ordering = "key"'
        ;;
    key-field-without-key)
        printf 'streams = ( { name = "events"; ordering = "stream";\n  key_field = "n"; } );\n' \
            >"$path"
        echo ':2: streams[0].key_field: applies only when ordering = "key", and ordering is "stream"'
        ;;
    esac
}
CASES="unreadable directory empty blank garbage-10mb one-line-10mb garbage-nul garbage-no-nul
    include-dir include-missing include-self no-streams ordering-unknown ordering-key-no-field
    key-field-without-key"

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
dead_port=$(rs_free_port)

# good_config PATH [STREAMS [SETTINGS]]: a valid consumer configuration (log handler) at PATH;
# SETTINGS (e.g. an ordering) are added to each stream's entry.
good_config() {
    local list="" s
    for s in ${2:-events}; do
        list+="${list:+, }{ name = \"$s\"; handler = \"log\"; ${3:-}}"
    done
    cat >"$1.tmp" <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; password = "$RS_REDIS_PASSWORD"; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; };
workers = { threads = 2; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $HEALTH_PORT; };
streams = ( $list );
EOF
    chmod 0644 "$1.tmp"
    rm -rf "$1"
    mv "$1.tmp" "$1"
}
HEALTH_PORT=$(rs_free_port)

# --- the programs refuse each file at start --------------------------------------------------
for what in $CASES; do
    rs_case "$what: consumer start, --check-config and producer --config refuse it with one line"
    file=$CFG/$what.conf
    good_config "$file"
    phrase=$(make_bad "$file" "$what")
    run_measured "$what-start" "$RS_CONSUMER" -c "$file"
    assert_refused redstream-consumer "$file" "$phrase"
    run_measured "$what-check" "$RS_CONSUMER" -c "$file" --check-config
    assert_refused redstream-consumer "$file" "$phrase"
    rs_assert_eq "" "$(cat "$RS_OUT")" "stdout of --check-config"
    run_measured "$what-producer" env REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" \
        "$RS_PRODUCER" --config "$file" --redis-addr "127.0.0.1:$dead_port" --count 1
    assert_refused redstream-producer "$file" "$phrase"
    echo "  $(cat "$RS_ERR")"
    rs_pass
done

rs_case "a file of comments only is valid, with a warning that it sets nothing"
file=$CFG/comments.conf
printf '# Every setting is left at its default, on purpose.\n/* really */\n' >"$file"
for prog in "$RS_CONSUMER" "$RS_PRODUCER"; do
    run_measured comments "$prog" -c "$file" --check-config
    rs_assert_exit 0
    rs_assert_eq 1 "$(wc -l <"$RS_ERR")" "lines on stderr"
    rs_assert_file_contains "$RS_ERR" "$file sets nothing (comments only): every setting is its built-in default"
    rs_assert_file_contains "$RS_OUT" "configuration $file is valid"
done
rs_pass

rs_case "a 900 KiB comment line is parsed in bounded time"
file=$CFG/long-line.conf
good_config "$file"
"$RS_PYTHON" -c 'import sys; sys.stdout.write("# " + "x" * 900 * 1024 + "\n")' >>"$file"
run_measured long-line "$RS_CONSUMER" -c "$file" --check-config
rs_assert_exit 0
rs_assert_le "$TIME_MAX_MS" "$RUN_MS" "milliseconds to parse the file"
echo "  parsed in $RUN_MS ms, $((RUN_KIB / 1024)) MiB"
rs_pass

# --- a running consumer keeps its configuration ----------------------------------------------
LIVE=$CFG/live.conf
good_config "$LIVE"
rs_spawn consumer ${AS_USER[@]+"${AS_USER[@]}"} "$RS_CONSUMER" -c "$LIVE"
pid=$RS_PID
out=$RS_OUT
err=$RS_ERR
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_group_exists events ||
    rs_fail "the consumer never created its group"

# reload_outcomes: reload results logged so far.
reload_outcomes() {
    grep -cE 'reload: [0-9]+ streams|reload rejected' "$err" || true
}
reloaded_since() {
    (($(reload_outcomes) > $1))
}
# published N: XADDs entry N to events and waits until the consumer has handled it.
handled=0
publish_and_handle() {
    rs_cli XADD events '*' n "$1" >/dev/null
    handled=$((handled + 1))
    cl_wait_for "$pid" $((10 * RS_SCALE)) cl_has_lines "$out" events "$handled" ||
        rs_fail "entry $1 was not handled: the consumer stopped consuming"
}
publish_and_handle 0

n=0
for what in $CASES; do
    rs_case "$what: SIGHUP is rejected with the reason; the consumer keeps its configuration"
    good_config "$LIVE"
    phrase=$(make_bad "$LIVE" "$what")
    before=$(reload_outcomes)
    kill -HUP "$pid"
    cl_wait_for "$pid" $((15 * RS_SCALE)) reloaded_since "$before" ||
        rs_fail "no reload outcome logged after SIGHUP"
    last=$(grep -E 'reload: [0-9]+ streams|reload rejected' "$err" | tail -n 1)
    [[ $last == *"ERROR main: reload rejected, the running configuration stays: $LIVE"*"$phrase"* ]] ||
        rs_fail "unexpected reload outcome: $last"
    n=$((n + 1))
    publish_and_handle "$n"
    echo "  ${last#* ERROR main: }"
    rs_pass
done

rs_case "after all that, a good reload still applies"
good_config "$LIVE" "events more"
before=$(reload_outcomes)
kill -HUP "$pid"
cl_wait_for "$pid" $((15 * RS_SCALE)) reloaded_since "$before" || rs_fail "no reload outcome"
rs_assert_file_contains "$err" "added: more"
rs_cli XADD more '*' n 1 >/dev/null
cl_wait_for "$pid" $((10 * RS_SCALE)) cl_has_lines "$out" more 1 ||
    rs_fail "the stream added by the reload was not consumed"
rs_pass

# reload_to STREAMS SETTINGS: writes the live file with SETTINGS in each stream's entry, sends
# SIGHUP, and sets LAST to the reload's outcome line.
reload_to() {
    local before
    good_config "$LIVE" "$1" "$2"
    before=$(reload_outcomes)
    kill -HUP "$pid"
    cl_wait_for "$pid" $((15 * RS_SCALE)) reloaded_since "$before" || rs_fail "no reload outcome"
    LAST=$(grep -E 'reload: [0-9]+ streams|reload rejected' "$err" | tail -n 1)
}
# consumed STREAM N: XADDs entry N (field n, the ordering key below) to STREAM and waits until
# the consumer's output holds N lines of it.
consumed() {
    rs_cli XADD "$1" '*' n "$2" >/dev/null
    cl_wait_for "$pid" $((10 * RS_SCALE)) cl_has_lines "$out" "$1" "$2" ||
        rs_fail "entry $2 of $1 was not handled after the reload"
}

rs_case "a reload that changes the streams' ordering restarts them; the same file again does not"
reload_to "events more" 'ordering = "key"; key_field = "n"; '
[[ $LAST == *"reload: 2 streams; added: none; removed: none; changed: events, more"* ]] ||
    rs_fail "ordering none -> key did not change both streams: $LAST"
publish_and_handle $((n + 1))
consumed more 2
reload_to "events more" 'ordering = "key"; key_field = "n"; '
[[ $LAST == *"reload: 2 streams; added: none; removed: none; changed: none"* ]] ||
    rs_fail "the same ordering again restarted a stream: $LAST"
reload_to "events more" 'ordering = "key"; key_field = "m"; '
[[ $LAST == *"changed: events, more"* ]] || rs_fail "a new key_field changed nothing: $LAST"
reload_to "events more" 'ordering = "stream"; '
[[ $LAST == *"changed: events, more"* ]] || rs_fail "ordering key -> stream changed nothing: $LAST"
publish_and_handle $((n + 2))
consumed more 3
rs_pass

rs_case "the consumer stops cleanly after all those reloads"
RS_ERR=$err
cl_stop_consumer "$pid" 5000
rs_assert_exit 0
rs_assert_eq "$(wc -w <<<"$CASES")" "$(grep -c 'reload rejected' "$err")" "rejected reloads"
rs_assert_file_lacks "$err" "Sanitizer"
rs_assert_file_lacks "$err" "$RS_REDIS_PASSWORD"
rs_pass
