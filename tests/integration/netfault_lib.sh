# shellcheck shell=bash disable=SC2034 # variables here are used by the sourcing scripts
#
# Helpers for the network fault tests (test_fault_net_*.sh): a fault-injecting TCP proxy
# (faultproxy.py) between a program and the private redis-server. Source it after lib.sh and
# consumer_lib.sh:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/netfault_lib.sh"
#
# fp_start starts the proxy; point a program at 127.0.0.1:$FP_PORT instead of $RS_REDIS_PORT.
# fp_ctl sends it a command (pass, blackhole [PATTERN], reset N [PATTERN], status: see the
# top of faultproxy.py) and fp_field reads a counter from its status.

FP_PY=$(dirname "${BASH_SOURCE[0]}")/faultproxy.py
FP_PORT=""
FP_CTL=""
FP_PID=""
FP_REPLY=""

# fp_start UPSTREAM_PORT [pass|blackhole]: starts a proxy to 127.0.0.1:UPSTREAM_PORT in that
# mode (default pass); sets FP_PORT (where programs connect), FP_CTL (its control port) and
# FP_PID. The trap kills it.
fp_start() {
    local ports=$RS_TMP/faultproxy-$RANDOM.ports
    "$RS_PYTHON" "$FP_PY" "$1" "$ports" --mode "${2:-pass}" 2>>"$RS_TMP/faultproxy.err" &
    FP_PID=$!
    rs_track "$FP_PID"
    RS_WAIT_TIMEOUT=10 rs_wait_for test -s "$ports" || rs_fail "faultproxy.py did not start"
    read -r FP_PORT FP_CTL <"$ports"
}

# fp_ctl COMMAND...: sends one command line to the proxy; sets FP_REPLY to its answer. Fails
# the test when the proxy does not answer "ok".
fp_ctl() {
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$FP_CTL" || rs_fail "faultproxy control port $FP_CTL refused"
    printf '%s\n' "$*" >&"$fd"
    FP_REPLY=""
    IFS= read -r -t 5 FP_REPLY <&"$fd" || true
    exec {fd}>&-
    [[ $FP_REPLY == ok* ]] || rs_fail "faultproxy '$*': ${FP_REPLY:-no answer}"
}

# fp_field NAME: a counter of the proxy's status (accepted, open, resets, blackholed) or its
# mode/armed state, fetched now.
fp_field() {
    fp_ctl status
    local word
    for word in $FP_REPLY; do
        if [[ $word == "$1="* ]]; then
            echo "${word#*=}"
            return 0
        fi
    done
    rs_fail "faultproxy status has no $1: $FP_REPLY"
}

# fp_field_ge NAME MIN: true when counter NAME is at least MIN (for rs_wait_for).
fp_field_ge() {
    (($(fp_field "$1") >= $2))
}
