#!/usr/bin/env bash
#
# The exec handler against a private redis-server: a test program (written below) records
# what it receives (stdin, environment, arguments, open descriptors) and exits as the entry's
# "action" field says. Checked: exit 0 acknowledges; 75 is retryable and 3 or a signal are
# permanent, and neither is acknowledged; the JSON on stdin and the environment are exact and
# the Redis password never reaches the child; a 1 MiB binary entry arrives intact, also to a
# program that never reads it; a hung program is killed at timeout_ms with its whole process
# group, also when it ignores SIGTERM; output is logged per line and capped; the child holds
# no descriptor of the service; and thousands of runs leave no zombie.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/handlers_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/handlers_lib.sh"

if ((RS_SLOW)); then BULK=200; else BULK=2000; fi

REC=$RS_TMP/rec
mkdir -p "$REC"
# Unique durations, so pgrep finds our sleeps and nothing else on the machine.
HANG_SECS=$((100000 + RANDOM))
HANGTERM_SECS=$((200000 + RANDOM))

HANDLER=$RS_TMP/handler.sh
cat >"$HANDLER" <<EOF
#!/bin/bash
# Written by $RS_TEST_NAME: records what it receives, then does what fields.action says.
rec=\$1
shift
tag=\${REDSTREAM_ID:-noid}.\${REDSTREAM_DELIVERY:-0}
cat >"\$rec/\$tag.stdin"
env >"\$rec/\$tag.env"
printf '%s\n' "\$@" >"\$rec/\$tag.args"
ls -l /proc/self/fd >"\$rec/\$tag.fds" 2>&1
action=\$(grep -o '"action":"[a-z0-9]*"' "\$rec/\$tag.stdin" | head -n 1)
action=\${action#'"action":"'}
action=\${action%'"'}
echo "handled \$REDSTREAM_ID action=\$action"
case \$action in
tempfail) echo "database busy" >&2; exit 75 ;;
fail3) echo "bad input" >&2; exit 3 ;;
signal) kill -KILL \$\$ ;;
flood) seq 1 200000; exit 0 ;;
*) exit 0 ;;
esac
EOF
chmod +x "$HANDLER"

# Programs that hang on an entry's first delivery (later ones fail at once with 75, so a
# retry neither hangs again nor gets acknowledged). They act before anything else, so that
# even on a loaded machine the hang, not a slow start, is what meets the timeout; the second
# one ignores SIGTERM, as its sleep does by inheritance.
cat >"$RS_TMP/hang.sh" <<EOF
#!/bin/bash
[[ \$REDSTREAM_DELIVERY != 1 ]] || sleep $HANG_SECS
exit 75
EOF
cat >"$RS_TMP/hangterm.sh" <<EOF
#!/bin/bash
trap '' TERM
[[ \$REDSTREAM_DELIVERY != 1 ]] || sleep $HANGTERM_SECS
exit 75
EOF
chmod +x "$RS_TMP/hang.sh" "$RS_TMP/hangterm.sh"

rs_start_redis
conf=$(hl_config exec 4 "
  { name = \"jobs\"; handler = \"exec\"; timeout_ms = 10000;
    command = [ \"$HANDLER\", \"$REC\", \"--tag\", \"two words\" ]; },
  { name = \"hang\"; handler = \"exec\"; timeout_ms = 1000; command = [ \"$RS_TMP/hang.sh\" ]; },
  { name = \"hangterm\"; handler = \"exec\"; timeout_ms = 1000;
    command = [ \"$RS_TMP/hangterm.sh\" ]; },
  { name = \"early\"; handler = \"exec\"; command = [ \"/bin/true\" ]; },
  { name = \"bulk\"; handler = \"exec\"; command = [ \"/bin/sh\", \"-c\", \"exec cat >/dev/null\" ]; }")

rs_case "--check-config shows the commands and the timeouts"
rs_run check "$RS_CONSUMER" -c "$conf" --check-config
rs_assert_exit 0
rs_assert_file_contains "$RS_OUT" "command $HANDLER $REC --tag 'two words', timeout 10000 ms"
rs_assert_file_contains "$RS_OUT" "command /bin/true, timeout 30000 ms"
rs_pass

# The consumer gets the password through the environment too, and a canary variable: neither
# may reach a child.
hl_spawn_consumer exec "$conf" REDSTREAM_REDIS_PASSWORD="$RS_REDIS_PASSWORD" \
    HL_CANARY=must-not-leak
pid=$RS_PID
err=$RS_ERR

# --- success ----------------------------------------------------------------------------------
rs_case "exit 0: acknowledged; stdin is the entry's JSON, the environment is built from scratch"
id_ok=$(hl_xadd jobs action ok note "héllo wörld")
hl_wait "$pid" 10 hl_acked jobs "$id_ok" ||
    rs_fail "entry $id_ok not acknowledged: $(hl_log_lines "$err" "$id_ok")"
"$RS_PYTHON" - "$REC/$id_ok.1" "$id_ok" <<'PY' || rs_fail "what the program received is wrong"
import json, sys
base, id_ = sys.argv[1], sys.argv[2]
raw = open(base + ".stdin", "rb").read()
got = json.loads(raw)
want = {"stream": "jobs", "id": id_, "delivery": 1,
        "fields": {"action": "ok", "note": "h\u00e9llo w\u00f6rld"}}
assert got == want, "stdin: %r" % got
assert raw.endswith(b"\n") and raw.count(b"\n") == 1, "stdin is not exactly one line"
env = dict(l.rstrip("\n").split("=", 1) for l in open(base + ".env") if "=" in l)
assert env.get("REDSTREAM_STREAM") == "jobs", env
assert env.get("REDSTREAM_ID") == id_, env
assert env.get("REDSTREAM_DELIVERY") == "1", env
assert env.get("PATH") == "/usr/local/bin:/usr/bin:/bin", env
# bash itself adds PWD, SHLVL and _; nothing else may be there.
extra = set(env) - {"REDSTREAM_STREAM", "REDSTREAM_ID", "REDSTREAM_DELIVERY", "PATH",
                    "PWD", "OLDPWD", "SHLVL", "_"}
assert not extra, "inherited variables: %s" % sorted(extra)
args = open(base + ".args").read()
assert args == "--tag\ntwo words\n", "arguments: %r" % args
PY
rs_assert_file_lacks "$REC/$id_ok.1.env" "$RS_REDIS_PASSWORD"
rs_assert_file_lacks "$REC/$id_ok.1.env" "must-not-leak"
# stdout lines go to the log at info, tagged with the stream and the id.
hl_wait "$pid" 5 grep -qF "INFO  exec: stream=jobs id=$id_ok stdout: handled $id_ok action=ok" \
    "$err" || rs_fail "the program's stdout line is not in the log"
rs_pass

rs_case "the child holds no descriptor of the service (only 0, 1, 2 and ls's own)"
"$RS_PYTHON" - "$REC/$id_ok.1.fds" <<'PY' || rs_fail "the child inherited descriptors"
import re, sys
text = open(sys.argv[1]).read()
fds = dict(re.findall(r" (\d+) -> (.*)$", text, re.M))
assert set(fds) >= {"0", "1", "2"}, text
bad = {fd: t for fd, t in fds.items()
       if fd not in ("0", "1", "2") and not re.fullmatch(r"/proc/\d+/fd", t)}
assert not bad, "unexpected descriptors: %r" % bad
assert "socket:" not in text, text
PY
rs_pass

# --- failures ---------------------------------------------------------------------------------
rs_case "exit 75 (EX_TEMPFAIL): retryable, not acknowledged, stderr logged at warn"
id_temp=$(hl_xadd jobs action tempfail)
hl_wait "$pid" 10 hl_logged_retryable "$err" exec "$id_temp" \
    "exited with status 75 (EX_TEMPFAIL); last stderr line: database busy" ||
    rs_fail "no retryable failure logged for $id_temp: $(hl_log_lines "$err" "$id_temp")"
hl_pending jobs "$id_temp" || rs_fail "$id_temp is not pending"
hl_dead_lettered jobs "$id_temp" && rs_fail "$id_temp was dead-lettered"
rs_assert_file_contains "$err" "WARN  exec: stream=jobs id=$id_temp stderr: database busy"
rs_pass

rs_case "exit 3: permanent failure, not acknowledged"
id_fail=$(hl_xadd jobs action fail3)
hl_wait "$pid" 10 hl_logged_permanent "$err" exec "$id_fail" "exited with status 3" ||
    rs_fail "no permanent failure logged for $id_fail: $(hl_log_lines "$err" "$id_fail")"
hl_wait "$pid" 5 hl_failed_kept jobs "$id_fail" || rs_fail "$id_fail was acknowledged away"
rs_pass

rs_case "killed by a signal: permanent failure, not acknowledged"
id_sig=$(hl_xadd jobs action signal)
hl_wait "$pid" 10 hl_logged_permanent "$err" exec "$id_sig" "killed by signal 9 (SIGKILL)" ||
    rs_fail "no permanent failure logged for $id_sig: $(hl_log_lines "$err" "$id_sig")"
hl_wait "$pid" 5 hl_failed_kept jobs "$id_sig" || rs_fail "$id_sig was acknowledged away"
rs_pass

# --- timeouts ---------------------------------------------------------------------------------
no_sleep() {
    ! pgrep -f "^sleep $1\$" >/dev/null
}

rs_case "a hung program is ended at timeout_ms with its process group: retryable"
start=$(date +%s%N)
id_hang=$(hl_xadd hang action hang)
hl_wait "$pid" 10 hl_logged_retryable "$err" exec "$id_hang" \
    "timed out after 1000 ms (ended by SIGTERM)" ||
    rs_fail "no timeout logged for $id_hang: $(hl_log_lines "$err" "$id_hang")"
took_ms=$((($(date +%s%N) - start) / 1000000))
rs_assert_le $((6000 * RS_SCALE)) "$took_ms" "ms until the timeout was reported"
RS_WAIT_TIMEOUT=5 rs_wait_for no_sleep "$HANG_SECS" ||
    rs_fail "the program's 'sleep $HANG_SECS' is still running"
hl_pending hang "$id_hang" || rs_fail "$id_hang is not pending"
rs_pass

rs_case "a program ignoring SIGTERM is killed with SIGKILL after the grace period"
id_term=$(hl_xadd hangterm action hangterm)
hl_wait "$pid" 10 hl_logged_retryable "$err" exec "$id_term" \
    "timed out after 1000 ms (killed with SIGKILL after SIGTERM was ignored)" ||
    rs_fail "no timeout logged for $id_term: $(hl_log_lines "$err" "$id_term")"
RS_WAIT_TIMEOUT=5 rs_wait_for no_sleep "$HANGTERM_SECS" ||
    rs_fail "the program's 'sleep $HANGTERM_SECS' survived SIGKILL of its group"
rs_pass

# --- large entries and output -----------------------------------------------------------------
rs_case "a 1 MiB binary entry arrives intact (base64 in the JSON)"
"$RS_PYTHON" -c 'import os, sys; open(sys.argv[1], "wb").write(os.urandom(1 << 20))' \
    "$RS_TMP/blob.bin"
id_big=$(rs_cli -x XADD jobs '*' action ok blob <"$RS_TMP/blob.bin")
[[ $id_big =~ ^[0-9]+-[0-9]+$ ]] || rs_fail "XADD of the 1 MiB entry returned '$id_big'"
hl_wait "$pid" 20 hl_acked jobs "$id_big" ||
    rs_fail "the 1 MiB entry was not acknowledged: $(hl_log_lines "$err" "$id_big")"
"$RS_PYTHON" - "$REC/$id_big.1.stdin" "$RS_TMP/blob.bin" <<'PY' || rs_fail "the 1 MiB entry differs"
import base64, json, sys
got = json.load(open(sys.argv[1], "rb"))
want = open(sys.argv[2], "rb").read()
blob = got["fields"]["blob"]
assert isinstance(blob, dict) and set(blob) == {"base64"}, "not base64-wrapped"
assert base64.b64decode(blob["base64"]) == want, "bytes differ"
print("  %d bytes compared" % len(want))
PY
rs_pass

rs_case "a program that exits without reading stdin (EPIPE) still succeeds"
id_early=$(rs_cli -x XADD early '*' blob <"$RS_TMP/blob.bin")
hl_wait "$pid" 20 hl_acked early "$id_early" ||
    rs_fail "the entry to /bin/true was not acknowledged: $(hl_log_lines "$err" "$id_early")"
rs_pass

rs_case "output beyond 64 KiB is read but not logged; the program is not blocked"
id_flood=$(hl_xadd jobs action flood)
hl_wait "$pid" 20 hl_acked jobs "$id_flood" ||
    rs_fail "the flooding program's entry was not acknowledged: $(hl_log_lines "$err" "$id_flood")"
rs_assert_file_contains "$err" "stream=jobs id=$id_flood output beyond 65536 bytes is not logged"
# The cap counts the text logged (1.3 MB were written): at most 64 KiB, and nearly all of it.
logged=$(grep -F "exec: stream=jobs id=$id_flood stdout: " "$err" |
    awk -v tag="stdout: " '{ n += length($0) - index($0, tag) - length(tag) + 1 } END { print n + 0 }')
rs_assert_le 65536 "$logged" "bytes of stdout logged"
rs_assert_ge 60000 "$logged" "bytes of stdout logged"
rs_pass

# --- many runs ----------------------------------------------------------------------------------
rs_case "$BULK runs leave no zombie and the consumer keeps running"
for ((i = 1; i <= BULK; i++)); do
    echo "XADD bulk * n $i"
done >"$RS_TMP/bulk.txt"
rs_cli <"$RS_TMP/bulk.txt" >/dev/null
bulk_done() {
    [[ $(rs_cli XLEN bulk) == "$BULK" ]] || return 1
    [[ $(rs_cli XPENDING bulk workers | head -n 1) == 0 ]] || return 1
    rs_cli XINFO GROUPS bulk | awk 'prev == "lag" { exit !($0 == 0) } { prev = $0 }'
}
hl_wait "$pid" 60 bulk_done || rs_fail "the $BULK bulk entries were not all acknowledged"
zombies=$(hl_children_zombies "$pid")
[[ -z $zombies ]] || rs_fail "zombie children of the consumer: $zombies"
rs_exited "$pid" && rs_fail "the consumer exited"
rs_pass

rs_case "SIGTERM stops it cleanly; no ERROR, no password in the log"
hl_stop_consumer "$pid"
hl_assert_clean_stderr "$err"
rs_pass
