#!/usr/bin/env bash
# The install rules (CMakeLists.txt, "Installation and packaging"), exercised with
# `DESTDIR=... cmake --install` into a temp directory, so nothing on the machine changes:
# the binaries, the configuration in /etc/redstream (and not replaced when it exists), the
# unit in systemd's unit directory with ExecStart= at the install prefix, the man pages.
# tests/package/test_deb.sh checks the same files in the .deb, installed for real.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

ROOT=$RS_TMP/root
PREFIX=/opt/redstream-test
unit_dir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
# Without systemd's .pc file the unit goes to lib/systemd/system under the prefix, unless the
# build directory was configured with its own REDSTREAM_SYSTEMD_UNIT_DIR.
configured=$(sed -n 's/^REDSTREAM_SYSTEMD_UNIT_DIR:PATH=//p' "$RS_BUILD_DIR/CMakeCache.txt")
unit_dir=${configured:-${unit_dir:-$PREFIX/lib/systemd/system}}
[[ $unit_dir == /* ]] || unit_dir=$PREFIX/$unit_dir
unit=$ROOT$unit_dir/redstream-consumer.service
conf=$ROOT/etc/redstream/redstream.conf

install_into_root() {
    RS_RC=0
    DESTDIR=$ROOT cmake --install "$RS_BUILD_DIR" --prefix "$PREFIX" >"$RS_TMP/install.out" \
        2>"$RS_TMP/install.err" || RS_RC=$?
    RS_OUT=$RS_TMP/install.out
    RS_ERR=$RS_TMP/install.err
}

rs_case "cmake --install puts every file in place"
install_into_root
rs_assert_exit 0
for f in "$PREFIX/bin/redstream-consumer" "$PREFIX/bin/redstream-producer"; do
    [[ -x $ROOT$f ]] || rs_fail "$f is not installed (or not executable)"
done
for f in "$PREFIX/share/man/man1/redstream-consumer.1.gz" \
    "$PREFIX/share/man/man1/redstream-producer.1.gz" \
    "$PREFIX/share/doc/redstream/examples/redstream.conf"; do
    [[ -f $ROOT$f ]] || rs_fail "$f is not installed"
done
[[ -f $conf ]] || rs_fail "/etc/redstream/redstream.conf is not installed"
cmp -s "$conf" "$RS_SOURCE_DIR/config/redstream.conf" ||
    rs_fail "the installed configuration differs from config/redstream.conf"
rs_pass

rs_case "the installed unit runs the installed binary"
[[ -f $unit ]] || rs_fail "the unit is not in $unit_dir"
rs_assert_file_contains "$unit" "ExecStart=$PREFIX/bin/redstream-consumer -c /etc/redstream/redstream.conf"
# Nothing else changed: the installed unit is the committed one with ExecStart= rewritten.
diff <(grep -v '^ExecStart=' "$RS_SOURCE_DIR/systemd/redstream-consumer.service") \
    <(grep -v '^ExecStart=' "$unit") >"$RS_TMP/unit.diff" ||
    rs_fail "the installed unit differs from the committed one: $(head -n 5 "$RS_TMP/unit.diff")"
rs_pass

rs_case "the installed man pages are the committed ones"
for prog in redstream-consumer redstream-producer; do
    gzip -dc "$ROOT$PREFIX/share/man/man1/$prog.1.gz" | cmp -s - "$RS_SOURCE_DIR/man/$prog.1" ||
        rs_fail "$prog.1.gz is not man/$prog.1 (rebuild: cmake --build)"
done
rs_pass

rs_case "a second install keeps an edited configuration"
echo "# edited by test_install.sh" >>"$conf"
before=$(sha256sum <"$conf")
install_into_root
rs_assert_exit 0
rs_assert_eq "$before" "$(sha256sum <"$conf")" "the configuration after a second install"
rs_assert_file_contains "$RS_OUT" "Keeping the existing $conf"
rs_pass
