#!/usr/bin/env bash
# The systemd unit (systemd/redstream-consumer.service): systemd-analyze accepts it, rates its
# sandboxing 2.0 or lower ("OK"), and it keeps the directives the consumer and the README rely
# on. Needs no Redis and no running systemd: `systemd-analyze verify` and
# `security --offline=true` only read unit files.
#
# verify wants ExecStart='s binary to exist and every man: page of Documentation= to be
# known to man(1), so it checks a copy whose ExecStart points at the built consumer, with
# MANPATH set to a directory holding the project's man pages.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

UNIT=$RS_SOURCE_DIR/systemd/redstream-consumer.service
MAX_EXPOSURE=2.0

if ! command -v systemd-analyze >/dev/null; then
    echo "$RS_TEST_NAME: systemd-analyze not installed; skipped"
    exit 0
fi

# The value of the first "Key=" line of the [Service] or [Unit] section (comments skipped).
unit_value() {
    sed -n "s/^$1=//p" "$UNIT" | head -n 1
}

rs_case "the unit file exists and has the key directives"
[[ -f $UNIT ]] || rs_fail "$UNIT is missing"
rs_assert_eq notify "$(unit_value Type)" "Type="
rs_assert_eq main "$(unit_value NotifyAccess)" "NotifyAccess="
rs_assert_eq 30 "$(unit_value WatchdogSec)" "WatchdogSec="
rs_assert_eq on-failure "$(unit_value Restart)" "Restart="
# shellcheck disable=SC2016 # $MAINPID is systemd's, written literally in the unit
rs_assert_eq '/bin/kill -HUP $MAINPID' "$(unit_value ExecReload)" "ExecReload="
rs_assert_eq '/usr/bin/redstream-consumer -c /etc/redstream/redstream.conf' \
    "$(unit_value ExecStart)" "ExecStart="
rs_assert_eq yes "$(unit_value DynamicUser)" "DynamicUser="
rs_assert_eq multi-user.target "$(unit_value WantedBy)" "WantedBy="
# The credential is opt-in: on systemd 252 a missing source file fails the start.
rs_assert_file_contains "$UNIT" "#LoadCredential=redis-password:/etc/redstream/redis-password"
if grep -q '^LoadCredential' "$UNIT"; then
    rs_fail "LoadCredential= must stay commented out (a missing file would fail the start)"
fi
rs_pass

rs_case "TimeoutStopSec exceeds the default workers.shutdown_timeout_ms (10 s)"
stop=$(unit_value TimeoutStopSec)
stop=${stop%s}
rs_assert_match '^[0-9]+$' "$stop" "TimeoutStopSec= in seconds"
rs_assert_ge 11 "$stop" "TimeoutStopSec"
rs_pass

rs_case "what the consumer needs is not sandboxed away"
# The health server and the http handler need IPv4/IPv6, sd_notify needs AF_UNIX; an IP
# allow list would cut off Redis and webhooks at the user's own addresses.
rs_assert_eq "AF_INET AF_INET6 AF_UNIX" "$(unit_value RestrictAddressFamilies)" \
    "RestrictAddressFamilies="
if grep -q '^IPAddressDeny' "$UNIT"; then
    rs_fail "IPAddressDeny= would cut off Redis and the webhooks"
fi
# JIT-using exec handler programs (node, java) die under MemoryDenyWriteExecute.
rs_assert_eq no "$(unit_value MemoryDenyWriteExecute)" "MemoryDenyWriteExecute="
rs_pass

rs_case "systemd-analyze verify accepts the unit"
mkdir -p "$RS_TMP/units" "$RS_TMP/man/man1"
cp "$RS_SOURCE_DIR"/man/*.1 "$RS_TMP/man/man1/"
sed "s#^ExecStart=/usr/bin/redstream-consumer #ExecStart=$RS_BUILD_DIR/redstream-consumer #" \
    "$UNIT" >"$RS_TMP/units/redstream-consumer.service"
rs_assert_file_contains "$RS_TMP/units/redstream-consumer.service" \
    "ExecStart=$RS_BUILD_DIR/redstream-consumer -c"
# Without man(1) verify cannot look the pages up (test_man_pages.sh reports that instead).
man_check=yes
command -v man >/dev/null || man_check=no
RS_RC=0
(cd "$RS_TMP/units" && MANPATH=$RS_TMP/man: SYSTEMD_LOG_LEVEL=notice \
    systemd-analyze verify --man="$man_check" ./redstream-consumer.service) \
    >"$RS_TMP/verify.out" 2>&1 || RS_RC=$?
RS_ERR=$RS_TMP/verify.out
rs_assert_exit 0
# verify reports some problems (unknown directives, bad values) without failing.
if [[ -s $RS_TMP/verify.out ]]; then
    rs_fail "systemd-analyze verify printed: $(head -n 5 "$RS_TMP/verify.out")"
fi
rs_pass

rs_case "systemd-analyze security rates the unit $MAX_EXPOSURE or lower"
RS_RC=0
(cd "$RS_TMP" && systemd-analyze security --offline=true --threshold=20 --no-pager \
    "$UNIT") >"$RS_TMP/security.out" 2>&1 || RS_RC=$?
RS_ERR=$RS_TMP/security.out
rs_assert_exit 0
line=$(grep 'Overall exposure level' "$RS_TMP/security.out" || true)
[[ -n $line ]] || rs_fail "no 'Overall exposure level' line in the output"
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9]*\.[0-9]\).*/\1/p' \
    <<<"$line")
rs_assert_match '^[0-9]+\.[0-9]$' "$score" "exposure level"
echo "# $line"
# Compare in tenths (1.1 -> 11; base 10, so 0.9 -> 09 is not read as octal). --threshold
# is in tenths too, so the exit status above already said the same.
rs_assert_le "$((10#${MAX_EXPOSURE/./}))" "$((10#${score/./}))" "exposure level in tenths"
rs_pass
