#!/usr/bin/env bash
# Builds the .deb from a normal build directory, installs it on this machine with apt, checks
# what it installed, and purges it again.
#
#   bash tests/package/test_deb.sh [BUILD_DIR]      (default: build; as root)
#
# Not run by ctest: it installs into the system (/usr/bin, /etc/redstream, the systemd unit
# directory). .ci/run runs it after the test suite, against build/. It refuses to run when a
# redstream package is already installed, so it never removes one it did not install; the
# EXIT trap purges the package whatever way the script ends.
#
# Checked: the file name (redstream_<version>_<arch>.deb), Depends: naming Debian 12's runtime
# library packages (and no sanitizer runtime), the conffile and maintainer scripts, the
# installation with `apt-get install ./redstream_*.deb`, the programs on PATH, the unit where
# pkg-config systemd says (ExecStart= at /usr/bin, accepted by systemd-analyze verify, not
# enabled), the man pages, an edited configuration surviving a reinstall, and a clean purge.

# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"

if [[ -n ${1:-} ]]; then
    RS_BUILD_DIR=$(cd "$1" && pwd)
fi
export DEBIAN_FRONTEND=noninteractive
# needrestart's apt hook (where installed) would offer to restart unrelated services.
export NEEDRESTART_SUSPEND=1
APT_OPTS=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
CONF=/etc/redstream/redstream.conf
PKG_INSTALLED_BY_US=0

pkg_installed() {
    dpkg-query -W -f='${Status}' redstream 2>/dev/null | grep -q 'install ok installed'
}

# Purges the package (if this script installed it) before lib.sh's cleanup reports.
cleanup_package() {
    local rc=$?
    set +e
    if ((PKG_INSTALLED_BY_US)); then
        apt-get purge "${APT_OPTS[@]}" redstream >"$RS_TMP/purge.log" 2>&1 ||
            { echo "apt-get purge redstream failed:" >&2; tail -n 20 "$RS_TMP/purge.log" >&2; }
    fi
    (exit "$rc")
    _rs_cleanup
}
trap cleanup_package EXIT

rs_case "preconditions"
((EUID == 0)) || rs_fail "must run as root (it installs the package)"
[[ -f $RS_BUILD_DIR/CMakeCache.txt ]] || rs_fail "$RS_BUILD_DIR is not a CMake build directory"
if grep -qE '^REDSTREAM_(ASAN|TSAN):BOOL=(ON|1|TRUE)' "$RS_BUILD_DIR/CMakeCache.txt"; then
    rs_fail "$RS_BUILD_DIR is a sanitizer build; package a normal build (build/)"
fi
if pkg_installed; then
    rs_fail "a redstream package is already installed; remove it first (apt-get purge redstream)"
fi
for tool in cpack dpkg-deb apt-get pkg-config; do
    command -v "$tool" >/dev/null || rs_fail "$tool is not installed"
done
rs_pass

rs_case "cpack builds redstream_<version>_<arch>.deb"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$RS_BUILD_DIR/CMakeCache.txt")
rs_assert_match '^[0-9]+\.[0-9]+\.[0-9]+' "$version" "project version"
arch=$(dpkg --print-architecture)
DEB=$RS_BUILD_DIR/redstream_${version}_${arch}.deb
rm -f "$DEB"
RS_RC=0
(cd "$RS_BUILD_DIR" && cpack -G DEB) >"$RS_TMP/cpack.log" 2>&1 || RS_RC=$?
RS_ERR=$RS_TMP/cpack.log
rs_assert_exit 0
[[ -f $DEB ]] || rs_fail "cpack did not make $(basename "$DEB"): $(ls "$RS_BUILD_DIR"/*.deb 2>&1)"
echo "# $DEB"
rs_pass

rs_case "the package's control fields"
rs_assert_eq redstream "$(dpkg-deb -f "$DEB" Package)" "Package"
rs_assert_eq "$version" "$(dpkg-deb -f "$DEB" Version)" "Version"
rs_assert_eq "$arch" "$(dpkg-deb -f "$DEB" Architecture)" "Architecture"
[[ -n $(dpkg-deb -f "$DEB" Maintainer) ]] || rs_fail "no Maintainer field"
[[ -n $(dpkg-deb -f "$DEB" Description) ]] || rs_fail "no Description field"
[[ -n $(dpkg-deb -f "$DEB" Section) ]] || rs_fail "no Section field"
depends=$(dpkg-deb -f "$DEB" Depends)
echo "# Depends: $depends"
# dpkg-shlibdeps names the packages of the libraries the binaries link against.
for lib in libc6 libhiredis0.14 libconfig9 libmicrohttpd12 libcurl4 libjansson4; do
    grep -qE "(^|[ ,])${lib//./\\.}( |,|\$)" <<<"$depends" ||
        rs_fail "Depends: lacks $lib: $depends"
done
[[ ! $depends =~ lib(asan|tsan|ubsan) ]] || rs_fail "Depends: names a sanitizer runtime: $depends"
rs_pass

unit_dir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
unit_dir=${unit_dir:-/usr/lib/systemd/system}
mandir=/usr/share/man/man1

rs_case "the package's files, conffile and maintainer scripts"
dpkg-deb -c "$DEB" | awk '{print $NF}' | sed 's#^\./#/#' >"$RS_TMP/contents"
for path in /usr/bin/redstream-consumer /usr/bin/redstream-producer "$CONF" \
    "$unit_dir/redstream-consumer.service" "$mandir/redstream-consumer.1.gz" \
    "$mandir/redstream-producer.1.gz" /usr/share/doc/redstream/examples/redstream.conf; do
    grep -qxF -- "$path" "$RS_TMP/contents" || rs_fail "the package lacks $path"
done
mkdir -p "$RS_TMP/control"
dpkg-deb -e "$DEB" "$RS_TMP/control"
rs_assert_eq "$CONF" "$(cat "$RS_TMP/control/conffiles")" "conffiles"
for script in postinst prerm postrm; do
    [[ -x $RS_TMP/control/$script ]] || rs_fail "the package has no executable $script"
    # Commands only (comment lines dropped): no enable, start or restart of the unit.
    if grep -v '^[[:space:]]*#' "$RS_TMP/control/$script" |
        grep -qE '(systemctl|deb-systemd-invoke|deb-systemd-helper).*[[:space:]](enable|start|restart|reload-or-restart|try-restart)([[:space:]]|$)'
    then
        rs_fail "$script must neither enable nor start the unit"
    fi
done
rs_pass

rs_case "apt-get installs the .deb"
PKG_INSTALLED_BY_US=1
RS_RC=0
apt-get install "${APT_OPTS[@]}" "$DEB" >"$RS_TMP/install.log" 2>&1 || RS_RC=$?
RS_ERR=$RS_TMP/install.log
rs_assert_exit 0
pkg_installed || rs_fail "dpkg does not list redstream as installed"
rs_pass

rs_case "the installed programs run"
rs_assert_eq /usr/bin/redstream-consumer "$(command -v redstream-consumer)" "redstream-consumer on PATH"
rs_run check redstream-consumer --check-config -c "$CONF"
rs_assert_exit 0
rs_assert_file_contains "$RS_OUT" "configuration $CONF is valid"
rs_run version redstream-producer --version
rs_assert_exit 0
rs_assert_eq "redstream-producer $version" "$(cat "$RS_OUT")" "redstream-producer --version"
rs_run version redstream-consumer --version
rs_assert_exit 0
rs_assert_eq "redstream-consumer $version" "$(cat "$RS_OUT")" "redstream-consumer --version"
rs_pass

rs_case "the unit is installed where pkg-config systemd says, and not enabled"
unit=$unit_dir/redstream-consumer.service
[[ -f $unit ]] || rs_fail "$unit is missing"
rs_assert_file_contains "$unit" "ExecStart=/usr/bin/redstream-consumer -c $CONF"
if command -v systemd-analyze >/dev/null; then
    RS_RC=0
    (cd "$RS_TMP" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "$unit") \
        >"$RS_TMP/verify.log" 2>&1 || RS_RC=$?
    RS_ERR=$RS_TMP/verify.log
    rs_assert_exit 0
    [[ ! -s $RS_TMP/verify.log ]] || rs_fail "systemd-analyze verify: $(head -n 3 "$RS_TMP/verify.log")"
fi
if compgen -G "/etc/systemd/system/*.wants/redstream-consumer.service" >/dev/null; then
    rs_fail "installing the package enabled the unit"
fi
rs_pass

rs_case "the man pages are installed"
for prog in redstream-consumer redstream-producer; do
    page=$(man -w "$prog" 2>/dev/null || true)
    rs_assert_eq "$mandir/$prog.1.gz" "$page" "man -w $prog"
done
rs_pass

rs_case "an edited configuration survives a reinstall"
echo "# edited by test_deb.sh" >>"$CONF"
before=$(sha256sum <"$CONF")
RS_RC=0
apt-get install --reinstall "${APT_OPTS[@]}" "$DEB" >"$RS_TMP/reinstall.log" 2>&1 || RS_RC=$?
RS_ERR=$RS_TMP/reinstall.log
rs_assert_exit 0
rs_assert_eq "$before" "$(sha256sum <"$CONF")" "$CONF after the reinstall"
rs_assert_file_contains "$CONF" "# edited by test_deb.sh"
rs_pass

rs_case "apt-get purge leaves the machine clean"
RS_RC=0
apt-get purge "${APT_OPTS[@]}" redstream >"$RS_TMP/purge.log" 2>&1 || RS_RC=$?
RS_ERR=$RS_TMP/purge.log
rs_assert_exit 0
PKG_INSTALLED_BY_US=0
! pkg_installed || rs_fail "redstream is still installed"
for path in /usr/bin/redstream-consumer /usr/bin/redstream-producer "$unit" /etc/redstream \
    "$mandir/redstream-consumer.1.gz" /usr/share/doc/redstream; do
    [[ ! -e $path ]] || rs_fail "$path is still there after the purge"
done
rs_pass
