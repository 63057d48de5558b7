#!/usr/bin/env bash
#
# The Redis password, from each of its four sources, never leaves the places it belongs
# (the configuration or password file it came from, the programs' memory, the AUTH command).
#
# For every source (redis.password, redis.password_file, REDSTREAM_REDIS_PASSWORD, the systemd
# credential $CREDENTIALS_DIRECTORY/redis-password) the private server is given a password of
# its own (a random suffix, so a match cannot be a coincidence) and:
#   - --check-config of both programs names the source and prints no password;
#   - the consumer runs at log.level debug with tracing on (every span) to a recording HTTP
#     collector, with a log stream and an exec stream whose program dumps its environment
#     (/proc/self/environ) and argv (/proc/self/cmdline); the producer (demo mode, debug,
#     tracing) publishes to both; /healthz, /readyz, /streams and /metrics are fetched;
#   - the server then refuses the password (AUTH failure): the consumer's log, the producer's
#     exit (77) and the HTTP answers must not echo it; then the server is down (connection
#     errors) and comes back; the consumer exits 0 on SIGTERM;
#   - the consumer's /proc/<pid>/cmdline never holds it;
#   - with the password file: a new password written to it and SIGHUP is reported as a change
#     of redis.password (a restart applies it), by name only.
# The collector's endpoint carries user:password@ as well: --check-config and the exporter's
# log show it as ***@, and the collector gets it as Basic authorization.
# At the end every file the test produced (stdout, stderr, HTTP bodies, exec dumps, OTLP
# requests with their headers) is searched for every password, and for the password file's
# second line, which is never a password and so must never be read out either. Only the files
# that are meant to hold a secret (a configuration with `password`, the password file, the
# credential) are left out of that search.
# Last, a password file readable by the group (0640) or by others (0604) is refused by both
# programs, with a message naming the file and the fix (chmod 600) but not its contents; and a
# malformed password setting (unquoted, unterminated, an array, a misspelled key) is reported
# by file and line without its value.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"
# shellcheck source=tests/integration/health_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/health_lib.sh"
# shellcheck source=tests/integration/handlers_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/handlers_lib.sh"

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"
unset CREDENTIALS_DIRECTORY

# One password per source, plus one the server is switched to (never given to our programs).
SUFFIX=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
PW_CONFIG=cfg-pw-$SUFFIX
PW_FILE=file-pw-$SUFFIX
PW_ENV=env-pw-$SUFFIX
PW_CRED=cred-pw-$SUFFIX
PW_OTHER=other-pw-$SUFFIX
FILE_CANARY=second-line-$SUFFIX # the password file's second line
# The collector's endpoint carries user:password@ too (libcurl sends it as Basic auth).
PW_TRACE=trace-pw-$SUFFIX
PW_FILE_NEXT=file-next-pw-$SUFFIX # written to the password file before a SIGHUP
ALL_SECRETS=("$PW_CONFIG" "$PW_FILE" "$PW_ENV" "$PW_CRED" "$FILE_CANARY" "$PW_TRACE"
    "$PW_FILE_NEXT")

# Files allowed to hold a secret, beyond the configurations ($RS_TMP/*.conf): they are where
# it is kept, not where it leaked to.
SECRET_HOLDERS=()

# The exec program: dumps what it was given, then succeeds.
DUMPS=$RS_TMP/dumps
mkdir -p "$DUMPS"
DUMPER=$RS_TMP/dump.sh
cat >"$DUMPER" <<EOF
#!/bin/bash
# Written by $RS_TEST_NAME: records the environment and argv it was started with.
tag=\$1.\${REDSTREAM_ID:-noid}.\${REDSTREAM_DELIVERY:-0}
cat >"$DUMPS/\$tag.stdin"
tr '\0' '\n' </proc/\$\$/environ >"$DUMPS/\$tag.env"
tr '\0' '\n' </proc/\$\$/cmdline >"$DUMPS/\$tag.argv"
echo "dumped \$tag"
EOF
chmod +x "$DUMPER"

# The OTLP collector: handlers_lib.sh's recording HTTP server keeps every request (headers and
# body as sent), which is what is searched here; test_tracing.sh checks the OTLP schema.
hl_start_receiver otlp
OTLP_PORT=$HL_RECEIVER_PORT
OTLP_RECORDS=$HL_RECORDS

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
# lib.sh's helpers (rs_cli, rs_restart_redis, cl_assert_clean_stderr) use RS_REDIS_PASSWORD:
# it follows the server's current password below.
set_server_password() {
    rs_cli CONFIG SET requirepass "$1" >/dev/null || rs_fail "CONFIG SET requirepass failed"
    RS_REDIS_PASSWORD=$1
}

# write_conf NAME SOURCE_LINE: a consumer and producer configuration whose redis section has
# SOURCE_LINE (a password or password_file setting, or nothing); prints its path.
write_conf() {
    rs_write_config "$1" <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; connect_timeout_ms = 1000; $2 };
group = { name = "workers"; consumer = "c1"; block_ms = 200; };
workers = { threads = 2; queue_capacity = 64; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $HC_PORT; };
streams = (
  { name = "events"; handler = "log"; },
  { name = "jobs"; handler = "exec"; command = [ "$DUMPER", "$1", "--flag" ]; }
);
tracing = { enabled = true; endpoint = "http://otlp:$PW_TRACE@127.0.0.1:$OTLP_PORT/v1/traces";
            service_name = "rs-secrets"; sample_ratio = 1.0; };
producer = { stream = "events"; type = "test"; interval_ms = 0; };
log = { level = "debug"; };
EOF
}

# cmdline_lacks PID SECRET: /proc/PID/cmdline does not hold SECRET.
cmdline_lacks() {
    local cmdline
    cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline")
    [[ $cmdline != *"$2"* ]] || rs_fail "the password is in /proc/$1/cmdline: $cmdline"
}

# fetch_all EXPECT: GETs the four endpoints; with EXPECT=200 each must answer 200, otherwise
# any answer is taken (the bodies are searched at the end).
fetch_all() {
    local path
    for path in /healthz /readyz /streams /metrics; do
        if [[ $1 == 200 ]]; then
            hc_expect GET "$path" 200
        else
            hc_request GET "$path"
        fi
    done
}

# ready_again: /readyz answers 200 (every reader connected again).
ready_again() {
    hc_status_is GET /readyz 200
}

# exercise NAME SECRET SOURCE_TEXT CONF: the whole round for one source (see the top). The
# caller sets the source up: the configuration CONF, and the environment of this call.
exercise() {
    local name=$1 secret=$2 source_text=$3 conf=$4 pid err prog

    rs_case "$name: --check-config of both programs names the source, not the password"
    for prog in "$RS_CONSUMER" "$RS_PRODUCER"; do
        rs_run "$name-check-$(basename "$prog")" "$prog" -c "$conf" --check-config
        rs_assert_exit 0
        rs_assert_file_contains "$RS_OUT" "password set ($source_text)"
        rs_assert_file_contains "$RS_OUT" "endpoint http://***@127.0.0.1:$OTLP_PORT/v1/traces,"
    done
    rs_pass

    rs_case "$name: consumer (debug, tracing, exec) and producer (demo, debug) run normally"
    set_server_password "$secret"
    cl_spawn_consumer "$name-consumer" "$conf"
    pid=$RS_PID
    err=$RS_ERR
    cl_wait_for "$pid" $((10 * RS_SCALE)) ready_again || rs_fail "the consumer never got ready"
    cmdline_lacks "$pid" "$secret"
    rs_run "$name-producer-events" "$RS_PRODUCER" -c "$conf" --count 5 --interval 0
    rs_assert_exit 0
    rs_run "$name-producer-jobs" "$RS_PRODUCER" -c "$conf" --stream jobs --count 2 --interval 0
    rs_assert_exit 0
    cl_wait_for "$pid" $((15 * RS_SCALE)) cl_settled events jobs ||
        rs_fail "entries not handled: pending events $(cl_pending events), jobs $(cl_pending jobs)"
    local dumped
    dumped=$(find "$DUMPS" -name "$name.*.env" | wc -l)
    rs_assert_ge 2 "$dumped" "exec dumps of $name"
    rs_assert_file_contains "$(find "$DUMPS" -name "$name.*.argv" | head -n 1)" "--flag"
    fetch_all 200
    rs_assert_file_contains "$err" "DEBUG"
    rs_assert_file_contains "$err" "exporting sampled spans to http://***@127.0.0.1:$OTLP_PORT/"
    rs_pass

    if [[ $name == file ]]; then
        rs_case "file: SIGHUP after the file got a new password names the setting, not a value"
        printf '%s\n%s\n' "$PW_FILE_NEXT" "$FILE_CANARY" >"$PWFILE"
        kill -HUP "$pid"
        cl_wait_for "$pid" $((10 * RS_SCALE)) grep -qE "reload: .*redis\.password.* changed" "$err" ||
            rs_fail "the reload did not name redis.password as changed"
        printf '%s\n%s\n' "$PW_FILE" "$FILE_CANARY" >"$PWFILE"
        rs_pass
    fi

    rs_case "$name: the server refuses the password: nobody echoes it"
    set_server_password "$PW_OTHER"
    rs_cli CLIENT KILL TYPE normal >/dev/null
    cl_wait_for "$pid" $((10 * RS_SCALE)) hc_status_is GET /readyz 503 \
        "Redis refused the credentials" || rs_fail "/readyz did not report the refusal"
    fetch_all any
    rs_run "$name-producer-refused" "$RS_PRODUCER" -c "$conf" --count 1 --interval 0
    rs_assert_exit 77
    set_server_password "$secret"
    cl_wait_for "$pid" $((15 * RS_SCALE)) ready_again || rs_fail "no recovery after the refusal"
    rs_pass

    rs_case "$name: the server is down, then back: the connection errors hold no password"
    rs_stop_redis
    cl_wait_for "$pid" $((10 * RS_SCALE)) hc_status_is GET /readyz 503 ||
        rs_fail "/readyz did not report the outage"
    fetch_all any
    rs_run "$name-producer-down" "$RS_PRODUCER" -c "$conf" --count 1 --interval 0
    rs_assert_exit 69
    rs_restart_redis
    cl_wait_for "$pid" $((20 * RS_SCALE)) ready_again || rs_fail "no recovery after the outage"
    fetch_all 200
    cmdline_lacks "$pid" "$secret"
    rs_pass

    rs_case "$name: SIGTERM: exit 0, no sanitizer report, and the log saw both failures"
    cl_stop_consumer "$pid"
    rs_assert_exit 0
    rs_assert_file_lacks "$err" "Sanitizer"
    rs_assert_file_lacks "$err" "runtime error:"
    rs_assert_file_contains "$err" "AUTH failed: WRONGPASS"
    rs_assert_file_contains "$err" "connect: Connection refused"
    rs_pass
}

HC_PORT=$(rs_free_port)

# --- 1. redis.password --------------------------------------------------------------------------
conf=$(write_conf config "password = \"$PW_CONFIG\";")
exercise config "$PW_CONFIG" "from the configuration file" "$conf"

# --- 2. redis.password_file ---------------------------------------------------------------------
PWFILE=$RS_TMP/redis-password.txt
printf '%s\n%s\n' "$PW_FILE" "$FILE_CANARY" >"$PWFILE"
chmod 600 "$PWFILE"
SECRET_HOLDERS+=("$PWFILE")
conf=$(write_conf file "password_file = \"$PWFILE\";")
exercise file "$PW_FILE" "from file $PWFILE" "$conf"

# --- 3. REDSTREAM_REDIS_PASSWORD -------------------------------------------------------------
# The configuration's own password is a wrong one: the variable must win over it.
conf=$(write_conf env "password = \"not-$PW_ENV-x\";")
REDSTREAM_REDIS_PASSWORD=$PW_ENV exercise env "$PW_ENV" \
    "from environment REDSTREAM_REDIS_PASSWORD" "$conf"

# --- 4. the systemd credential ----------------------------------------------------------------
# As systemd's LoadCredential= provides it: a directory of files readable by the service
# alone; it wins over the configuration's password file.
CREDS=$RS_TMP/credentials
mkdir -m 700 "$CREDS"
printf '%s\n' "$PW_CRED" >"$CREDS/redis-password"
chmod 400 "$CREDS/redis-password"
SECRET_HOLDERS+=("$CREDS/redis-password")
conf=$(write_conf cred "password_file = \"$PWFILE\";")
CREDENTIALS_DIRECTORY=$CREDS exercise cred "$PW_CRED" \
    "from systemd credential redis-password" "$conf"

# --- what was sent and written ------------------------------------------------------------------
rs_case "the collector got spans from both programs, and the exec program a clean environment"
# Per source 7 entries: 7 producer spans and 7 consumer spans (sampled at 1.0). More are
# possible: a producer whose XADD got no answer may have sent a span before it failed.
spans=$("$RS_PYTHON" - "$OTLP_RECORDS" <<'PY'
import json, sys
n = {"publish": 0, "process": 0}
for line in open(sys.argv[1]):
    body = json.loads(json.loads(line)["body"])
    for rs in body["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                n[s["name"].split()[-1]] += 1
print(n["publish"], n["process"])
PY
) || rs_fail "the collector's records are not OTLP JSON"
rs_assert_ge 28 "${spans% *}" "producer spans received"
rs_assert_ge 28 "${spans#* }" "consumer spans received"
# The collector's credentials went where they belong: the Authorization header.
basic=$(printf 'otlp:%s' "$PW_TRACE" | base64 -w0)
rs_assert_file_contains "$OTLP_RECORDS" "[\"Authorization\", \"Basic $basic\"]"
for f in "$DUMPS"/*.env; do
    grep -q '^REDSTREAM_ID=' "$f" || rs_fail "$(basename "$f") is not an environment dump"
    if grep -v -E '^(PATH|REDSTREAM_STREAM|REDSTREAM_ID|REDSTREAM_DELIVERY)=' "$f" | grep -q .; then
        rs_fail "$(basename "$f") holds more than the documented variables: $(cat "$f")"
    fi
done
rs_pass

rs_case "no password (nor the password file's other line) in any output, dump or request"
PATTERNS=$RS_TMP/secrets.patterns
printf '%s\n' "${ALL_SECRETS[@]}" >"$PATTERNS"
SECRET_HOLDERS+=("$PATTERNS")
# Every file but the holders and the configurations, in one pass of grep over them all.
find "$RS_TMP" -type f ! -name '*.conf' | grep -vxF -f <(printf '%s\n' "${SECRET_HOLDERS[@]}") \
    >"$RS_TMP/searched.list" || true
checked=$(wc -l <"$RS_TMP/searched.list")
# grep exits 1 when nothing matched (which xargs reports as 123); an error says so on stderr.
tr '\n' '\0' <"$RS_TMP/searched.list" |
    xargs -0 grep -lF -f "$PATTERNS" -- >"$RS_TMP/hits.list" 2>"$RS_TMP/grep.errors" || true
[[ ! -s $RS_TMP/grep.errors ]] || rs_fail "searching failed: $(head -n 3 "$RS_TMP/grep.errors")"
if [[ -s $RS_TMP/hits.list ]]; then
    hit=$(head -n 1 "$RS_TMP/hits.list")
    rs_fail "${hit#"$RS_TMP"/} holds a secret: $(grep -F -f "$PATTERNS" "$hit" | head -n 1)"
fi
# stdout and stderr of every run, four exec dumps per source, the HTTP bodies, the collector.
rs_assert_ge 60 "$checked" "files searched"
rs_pass

# --- a password file others may read is refused -------------------------------------------------
for mode in 0640 0604; do
    rs_case "a password file with mode $mode is refused by both programs, naming the fix"
    chmod "$mode" "$PWFILE"
    conf=$(write_conf "mode$mode" "password_file = \"$PWFILE\";")
    for prog in "$RS_CONSUMER" "$RS_PRODUCER"; do
        for check in --check-config ""; do
            rs_run "mode$mode-$(basename "$prog")${check:+-check}" "$prog" -c "$conf" \
                ${check:+"$check"}
            rs_assert_exit 78
            rs_assert_file_contains "$RS_ERR" \
                "$conf:2: redis.password_file: $PWFILE is readable by group or others (mode ${mode#0})"
            rs_assert_file_contains "$RS_ERR" "chmod 600 $PWFILE"
            for secret in "$PW_FILE" "$FILE_CANARY"; do
                rs_assert_file_lacks "$RS_ERR" "$secret"
                rs_assert_file_lacks "$RS_OUT" "$secret"
            done
        done
    done
    rs_pass
done

# --- a malformed password setting ---------------------------------------------------------------
rs_case "a malformed password setting is reported by line, never with its value"
n=0
for setting in "password = $PW_CONFIG;" "password = \"$PW_CONFIG;" "password = 0x$PW_CONFIG;" \
    "password = [ \"$PW_CONFIG\" ];" "pasword = \"$PW_CONFIG\";"; do
    n=$((n + 1))
    # Nothing after the setting: a quote further down would close the unterminated string,
    # and libconfig 1.5 leaks its string buffer when a syntax error follows a string token
    # (fuzz/lsan.supp), which an ASan build reports at exit.
    conf=$(rs_write_config "malformed$n" <<<"redis = { port = $RS_REDIS_PORT; $setting };")
    for prog in "$RS_CONSUMER" "$RS_PRODUCER"; do
        rs_run "malformed$n-$(basename "$prog")" "$prog" -c "$conf" --check-config
        rs_assert_exit 78
        rs_assert_file_contains "$RS_ERR" "$conf:"
        rs_assert_file_lacks "$RS_ERR" "$PW_CONFIG"
        rs_assert_file_lacks "$RS_OUT" "$PW_CONFIG"
    done
done
rs_pass
