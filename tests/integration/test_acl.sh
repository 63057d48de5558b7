#!/usr/bin/env bash
#
# Least privilege in Redis: the consumer and the producer run as the ACL users README.md
# gives (section "Least privilege in Redis"), with exactly those rules, and everything still
# works: the producer publishes, the consumer creates its groups, handles, retries (XCLAIM),
# dead-letters (WATCH/TYPE/MULTI/XADD/XACK/EXEC), answers /streams (XLEN, XINFO) and removes
# idle consumers (EVAL of XPENDING + XGROUP DELCONSUMER). Then commands outside the rules, and
# keys outside the patterns, are refused by Redis (NOPERM) for both users.
#
# The rules are read from README.md itself, so the documentation cannot drift from what is
# tested.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

# shellcheck disable=SC2119 # no extra redis-server arguments
rs_start_redis
README=$RS_SOURCE_DIR/README.md

# acl_rule USER: the ACL SETUSER arguments README.md gives for USER (the line of the fenced
# block that starts with "ACL SETUSER USER"), with the placeholders of this test filled in.
acl_rule() {
    local line
    line=$(grep -E "^    ACL SETUSER $1 " "$README" | head -n 1) ||
        rs_fail "README.md has no 'ACL SETUSER $1' rule"
    line=${line#    ACL SETUSER "$1" }
    line=${line//<password>/$2}
    echo "$line"
}

rs_case "the README's ACL rules are accepted by Redis"
# The streams of this test: events (exec handler: retries and dead letters), logs (log).
CONSUMER_RULE=$(acl_rule redstream-consumer consumer-secret)
PRODUCER_RULE=$(acl_rule redstream-producer producer-secret)
# The README writes the key patterns for the example streams; the test's are the same names.
# shellcheck disable=SC2086 # the rule is a list of words
rs_cli ACL SETUSER redstream-consumer reset $CONSUMER_RULE >"$RS_TMP/acl.out" 2>&1 ||
    rs_fail "ACL SETUSER redstream-consumer: $(cat "$RS_TMP/acl.out")"
rs_assert_eq OK "$(cat "$RS_TMP/acl.out")" "ACL SETUSER redstream-consumer"
# shellcheck disable=SC2086
rs_cli ACL SETUSER redstream-producer reset $PRODUCER_RULE >"$RS_TMP/acl.out" 2>&1 ||
    rs_fail "ACL SETUSER redstream-producer: $(cat "$RS_TMP/acl.out")"
rs_assert_eq OK "$(cat "$RS_TMP/acl.out")" "ACL SETUSER redstream-producer"
rs_pass

# as USER PASSWORD ARGS...: redis-cli as an ACL user.
as() {
    local user=$1 pass=$2
    shift 2
    "$REDIS_CLI" -h 127.0.0.1 -p "$RS_REDIS_PORT" --user "$user" --pass "$pass" --no-auth-warning "$@"
}

# The handler: fails permanently for type "poison", asks for a retry once for type "flaky"
# (a marker file remembers the first try), succeeds otherwise.
job=$RS_TMP/job.sh
cat >"$job" <<EOF
#!/bin/bash
input=\$(cat)
case \$input in
*'"type":"poison"'*) echo "poison on purpose" >&2; exit 1 ;;
*'"type":"flaky"'*) if [[ ! -e $RS_TMP/flaky-seen ]]; then touch $RS_TMP/flaky-seen; exit 75; fi ;;
esac
exit 0
EOF
chmod +x "$job"

HEALTH_PORT=$(rs_free_port)
CONF=$(rs_write_config acl <<EOF
# Written by $RS_TEST_NAME.
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; username = "redstream-consumer";
          password = "consumer-secret"; };
group = { name = "workers"; consumer = "c1"; block_ms = 200; retry_base_ms = 100;
          retry_max_ms = 200; claim_idle_ms = 1000; idle_consumer_timeout_ms = 1; };
workers = { threads = 2; queue_capacity = 64; shutdown_timeout_ms = 5000; };
health = { address = "127.0.0.1"; port = $HEALTH_PORT; };
streams = (
  { name = "events"; handler = "exec"; command = [ "$job" ]; timeout_ms = 10000; },
  { name = "logs"; handler = "log"; }
);
producer = { stream = "events"; };
EOF
)
PCONF=$(rs_write_config producer <<EOF
redis = { host = "127.0.0.1"; port = $RS_REDIS_PORT; username = "redstream-producer";
          password = "producer-secret"; };
EOF
)

rs_case "the producer publishes as redstream-producer"
rs_run producer "$RS_PRODUCER" -c "$PCONF" --stream events --interval 0 --count 20
rs_assert_exit 0
rs_run producer2 "$RS_PRODUCER" -c "$PCONF" --stream logs --interval 0 --count 5
rs_assert_exit 0
rs_run producer3 "$RS_PRODUCER" -c "$PCONF" --stream events --rate 0 --pipeline 8 --count 30
rs_assert_exit 0
rs_assert_eq 50 "$(rs_cli XLEN events)" "entries in events"
rs_pass

rs_case "the consumer works as redstream-consumer: groups, handling, retry, dead letter"
# A consumer that went away long ago, with nothing pending: the claim pass removes it (EVAL).
rs_cli XGROUP CREATE events workers 0 MKSTREAM >/dev/null
rs_cli XGROUP CREATECONSUMER events workers ghost >/dev/null
rs_cli XADD events '*' message flaky type flaky >/dev/null
rs_cli XADD events '*' message poison type poison >/dev/null
cl_spawn_consumer consumer "$CONF"
CONSUMER=$RS_PID
RS_WAIT_TIMEOUT=$((20 * RS_SCALE)) rs_wait_for cl_settled events logs ||
    rs_fail "not settled: pending events=$(cl_pending events) lag=$(cl_group_field events lag)"
rs_assert_eq 1 "$(rs_cli XLEN events:dlq)" "dead letters"
rs_assert_file_contains "$RS_TMP/consumer.err" "retrying in"
rs_assert_file_contains "$RS_TMP/consumer.err" "dead-lettered to events:dlq"
cl_wait_for "$CONSUMER" $((10 * RS_SCALE)) grep -q "removed consumer ghost" "$RS_TMP/consumer.err" ||
    rs_fail "the idle consumer was not removed"
curl -fsS "http://127.0.0.1:$HEALTH_PORT/streams" >"$RS_TMP/streams.json" ||
    rs_fail "/streams failed as the ACL user"
"$RS_PYTHON" - "$RS_TMP/streams.json" <<'PY' || rs_fail "/streams as the ACL user: $(head -c 400 "$RS_TMP/streams.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
names = [s["name"] for s in doc["streams"]]
assert names == ["events", "logs"], names
assert "NOPERM" not in json.dumps(doc), "a NOPERM in /streams"
PY
rs_assert_file_lacks "$RS_TMP/consumer.err" "NOPERM"
rs_assert_file_lacks "$RS_TMP/consumer.err" "consumer-secret"
rs_pass

rs_case "the consumer's user is refused everything else"
set -f # the commands hold '*', for Redis, not the shell
for cmd in "FLUSHALL" "GET events" "SET x 1" "KEYS x*" "CONFIG GET maxmemory" "XADD other * a b" \
    "XRANGE other - +" "DEL events" "XTRIM events MAXLEN 0" "SHUTDOWN NOSAVE" "ACL LIST"; do
    # shellcheck disable=SC2086 # the command is a list of words
    out=$(as redstream-consumer consumer-secret $cmd 2>&1) || true
    rs_assert_match '^(NOPERM|\(error\) NOPERM)' "$out" "'$cmd' as redstream-consumer"
done
rs_pass

rs_case "the producer's user may only XADD to its streams"
for cmd in "FLUSHALL" "XREADGROUP GROUP workers c1 STREAMS events >" "XACK events workers 1-1" \
    "XADD other * a b" "XGROUP DESTROY events workers" "XINFO GROUPS events" "DEL events"; do
    # shellcheck disable=SC2086
    out=$(as redstream-producer producer-secret $cmd 2>&1) || true
    rs_assert_match '^(NOPERM|\(error\) NOPERM)' "$out" "'$cmd' as redstream-producer"
done
set +f
rs_pass

rs_case "the consumer stops cleanly"
cl_stop_consumer "$CONSUMER" 5000
rs_assert_exit 0
rs_pass
