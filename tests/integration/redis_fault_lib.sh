# shellcheck shell=bash
#
# Helpers for the integration tests of Redis-side faults (test_fault_redis_*.sh). Source it
# after lib.sh and consumer_lib.sh. It adds: publishing entries with their ids recorded,
# checking that every recorded id was handled, slicing a log from a mark, and the CPU time
# a process has used (to tell a retry loop with backoff from a spin), the bound on the lines a
# refused reader may log, and the checks on a consumer's stderr when it is stopped.

# rf_publish LIST STREAM KIND COUNT: XADDs COUNT entries "kind KIND n <i> pad <RF_PAD bytes>"
# to STREAM and appends "STREAM <id>" for each to the file LIST. Fails the test unless Redis
# returned an id for every one. The padding (default 1500 bytes) makes each line the log
# handler writes big, so a pipe read slowly fills after a few dozen entries, not hundreds.
rf_publish() {
    local list=$1 stream=$2 kind=$3 count=$4 i ids=$RS_TMP/rf-ids.txt pad
    pad=$(printf "%${RF_PAD:-1500}s" "" | tr ' ' x)
    for ((i = 1; i <= count; i++)); do
        printf 'XADD %s * kind %s n %d pad %s\n' "$stream" "$kind" "$i" "$pad"
    done | rs_cli >"$ids"
    rs_assert_eq "$count" "$(grep -cE '^[0-9]+-[0-9]+$' "$ids")" "ids returned by XADD to $stream"
    sed "s/^/$stream /" "$ids" >>"$list"
}

# rf_publish_after LIST STREAM KIND COUNT CMD...: rf_publish, with Redis command CMD (a fault:
# DEL, XGROUP DESTROY) run first in the same MULTI/EXEC, so that no reader can act between
# the fault and the entries: they are all there when it first sees the fault.
rf_publish_after() {
    local list=$1 stream=$2 kind=$3 count=$4 i ids=$RS_TMP/rf-ids.txt pad
    shift 4
    pad=$(printf "%${RF_PAD:-1500}s" "" | tr ' ' x)
    {
        echo MULTI
        echo "$*"
        for ((i = 1; i <= count; i++)); do
            printf 'XADD %s * kind %s n %d pad %s\n' "$stream" "$kind" "$i" "$pad"
        done
        echo EXEC
    } | rs_cli >"$ids"
    rs_assert_eq "$count" "$(grep -cE '^[0-9]+-[0-9]+$' "$ids")" "ids returned by XADD to $stream"
    grep -E '^[0-9]+-[0-9]+$' "$ids" | sed "s/^/$stream /" >>"$list"
}

# rf_missing LIST HANDLED: prints how many "stream id" lines of LIST are not among the
# handled entries (HANDLED: "stream id delivery" lines, as cl_handled prints them).
rf_missing() {
    # FILENAME, not NR == FNR: the first file may be empty.
    awk 'FILENAME == ARGV[1] { seen[$1 " " $2] = 1; next } !(($1 " " $2) in seen) { n++ }
         END { print n + 0 }' "$2" "$1"
}

# rf_all_handled LIST OUT...: true when every id in LIST is among the log handler's output
# lines in the files OUT.
rf_all_handled() {
    local list=$1
    shift
    cl_handled "$@" >"$RS_TMP/rf-handled.txt"
    (($(rf_missing "$list" "$RS_TMP/rf-handled.txt") == 0))
}

# rf_times LIST OUT...: prints, for the ids in LIST, "handled once, more than once, never".
rf_times() {
    local list=$1
    shift
    cl_handled "$@" >"$RS_TMP/rf-handled.txt"
    awk 'FILENAME == ARGV[1] { n[$1 " " $2]++; next }
         { k = $1 " " $2; if (!(k in n)) never++; else if (n[k] == 1) once++; else more++ }
         END { printf "%d %d %d\n", once, more, never }' "$RS_TMP/rf-handled.txt" "$list"
}

# rf_mark FILE: the number of lines FILE has now, for rf_since.
rf_mark() {
    wc -l <"$1"
}

# rf_since FILE MARK: the lines of FILE after the first MARK.
rf_since() {
    tail -n +$(($2 + 1)) "$1"
}

# rf_count_since FILE MARK REGEX: how many lines after MARK match the extended REGEX.
rf_count_since() {
    local n
    n=$(rf_since "$1" "$2" | grep -cE -- "$3") || true
    echo "${n:-0}"
}

# rf_logged_since FILE MARK REGEX: true once a line after MARK matches REGEX (rs_wait_for).
rf_logged_since() {
    rf_since "$1" "$2" | grep -qE -- "$3"
}

# rf_cpu_ms PID: user plus system CPU time PID has used, in milliseconds.
rf_cpu_ms() {
    local stat ticks
    stat=$(cat "/proc/$1/stat")
    stat=${stat##*) }
    # shellcheck disable=SC2086 # split the fields
    set -- $stat
    ticks=$(getconf CLK_TCK)
    echo $((((${12} + ${13}) * 1000) / ticks))
}

# rf_max_refusal_lines MS: the most refusal lines a reader may log in MS milliseconds. Refusals
# are retried after 100 ms doubling up to 5 s, each wait jittered into [d/2, d]: at most 7
# lines for the steps below the cap, then one per 2.5 s at least, and the first.
rf_max_refusal_lines() {
    echo $((7 + $1 / 2500 + 1))
}

# rf_assert_no_report ERR [SECRET...]: the stderr file ERR holds no sanitizer report (ASan,
# TSan, UBSan's "runtime error:"), not the Redis password and no SECRET. (Not
# cl_assert_clean_stderr: these tests expect ERROR lines.)
rf_assert_no_report() {
    local err=$1 secret
    shift
    rs_assert_file_lacks "$err" "Sanitizer"
    rs_assert_file_lacks "$err" "runtime error:"
    for secret in "$RS_REDIS_PASSWORD" "$@"; do
        rs_assert_file_lacks "$err" "$secret"
    done
}

# rf_stop_and_check PID ERR [SECRET...]: stops consumer PID with SIGTERM; it must exit with
# status 0 within its 5000 ms shutdown timeout, and its stderr ERR pass rf_assert_no_report.
rf_stop_and_check() {
    local pid=$1
    shift
    cl_stop_consumer "$pid" 5000
    rs_assert_exit 0
    rf_assert_no_report "$@"
}
