#!/usr/bin/env bash
#
# redstream-producer's command line without Redis: --help, --version, and --check-config with
# good and bad files, flag overrides, and secrets that must stay out of the report.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -x $RS_PRODUCER ]] || rs_fail "$RS_PRODUCER not built"

rs_case "--help documents the flags, the password variable and the exit codes"
rs_run help "$RS_PRODUCER" --help
rs_assert_exit 0
for want in --config --check-config --redis-addr --redis-pass --stream --type --interval \
    --count --maxlen REDSTREAM_REDIS_PASSWORD "64" "69" "77" "78"; do
    rs_assert_file_contains "$RS_OUT" "$want"
done
rs_pass

rs_case "--version prints the project version"
rs_run version "$RS_PRODUCER" --version
rs_assert_exit 0
version=$(sed -n 's/^project(redstream VERSION \([0-9.]*\).*/\1/p' "$RS_SOURCE_DIR/CMakeLists.txt")
rs_assert_eq "redstream-producer $version" "$(cat "$RS_OUT")" "--version output"
rs_pass

# Nothing listens on this port: --check-config must not need Redis.
dead=$(rs_free_port)
conf=$(rs_write_config good <<EOF
redis = {
  host = "127.0.0.1";
  port = $dead;
  password = "file-secret-123";
};
producer = {
  stream = "from-file";
  type = "file-type";
  interval_ms = 250;
};
EOF
)

rs_case "--check-config accepts a valid file without contacting Redis"
rs_run check "$RS_PRODUCER" -c "$conf" --check-config
rs_assert_exit 0
rs_assert_file_contains "$RS_OUT" "$conf"
rs_assert_file_contains "$RS_OUT" "from-file"
rs_assert_file_lacks "$RS_OUT" "file-secret-123"
rs_assert_file_lacks "$RS_ERR" "file-secret-123"
rs_pass

rs_case "--check-config reports the flags' overrides and hides every password"
rs_run check-flags env REDSTREAM_REDIS_PASSWORD=env-secret-789 "$RS_PRODUCER" -c "$conf" \
    --check-config --stream from-flag --redis-addr "127.0.0.1:$dead" --redis-pass flag-secret-456
rs_assert_exit 0
rs_assert_file_contains "$RS_OUT" "from-flag"
for secret in file-secret-123 flag-secret-456 env-secret-789; do
    rs_assert_file_lacks "$RS_OUT" "$secret"
    rs_assert_file_lacks "$RS_ERR" "$secret"
done
rs_pass

rs_case "--check-config shows each stream's ordering, and key_field with \"key\""
ordered=$(rs_write_config ordered <<EOF
redis = { host = "127.0.0.1"; port = $dead; };
streams = (
  { name = "plain"; },
  { name = "explicit-none"; ordering = "none"; },
  { name = "audit"; handler = "discard"; ordering = "stream"; },
  { name = "orders"; ordering = "key"; key_field = "customer"; }
);
EOF
)
rs_run check-ordered "$RS_PRODUCER" -c "$ordered" --check-config
rs_assert_exit 0
for want in "plain  *handler log\$" "explicit-none  *handler log\$" \
    "audit  *handler discard, ordering stream\$" \
    "orders  *handler log, ordering key (key_field customer)\$"; do
    grep -q "^  $want" "$RS_OUT" || rs_fail "no line matching '$want' in: $(cat "$RS_OUT")"
done
rs_pass

rs_case "a flag error is reported before the configuration is read"
rs_run check-badflag "$RS_PRODUCER" -c "$RS_TMP/absent.conf" --check-config --count 0
rs_assert_exit 64
rs_assert_file_contains "$RS_ERR" "--count"
rs_pass

rs_case "a syntax error exits 78 naming the file and line"
bad=$(rs_write_config bad <<EOF
redis = {
  port = ;
};
EOF
)
rs_run check-bad "$RS_PRODUCER" -c "$bad" --check-config
rs_assert_exit 78
rs_assert_file_contains "$RS_ERR" "$bad:2"
rs_pass

rs_case "a missing file exits 78 naming it"
rs_run check-missing "$RS_PRODUCER" -c "$RS_TMP/absent.conf" --check-config
rs_assert_exit 78
rs_assert_file_contains "$RS_ERR" "$RS_TMP/absent.conf"
rs_pass

rs_case "the example configuration is valid"
example=$RS_SOURCE_DIR/config/redstream.conf
[[ -f $example ]] || rs_fail "$example is missing"
rs_run check-example "$RS_PRODUCER" -c "$example" --check-config
rs_assert_exit 0
rs_assert_file_lacks "$RS_OUT" "redis123"
rs_pass
