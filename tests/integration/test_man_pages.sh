#!/usr/bin/env bash
# The man pages (man/redstream-consumer.1, man/redstream-producer.1): they render without a
# single groff warning, and they stay in sync with the programs: every long option the
# program's --help lists appears in its page, and the page's version is the program's.
# Needs no Redis.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

rs_case "groff and man are installed"
if ! command -v groff >/dev/null || ! command -v man >/dev/null; then
    rs_fail "groff and man(1) are needed: apt-get install man-db (it brings groff-base)"
fi
rs_pass

for prog in redstream-consumer redstream-producer; do
    page=$RS_SOURCE_DIR/man/$prog.1
    bin=$RS_BUILD_DIR/$prog

    rs_case "$prog.1 renders without warnings"
    [[ -f $page ]] || rs_fail "$page is missing"
    RS_RC=0
    groff -man -Tutf8 -ww -z "$page" >"$RS_TMP/groff.err" 2>&1 || RS_RC=$?
    RS_ERR=$RS_TMP/groff.err
    rs_assert_exit 0
    [[ ! -s $RS_TMP/groff.err ]] || rs_fail "groff warned: $(head -n 5 "$RS_TMP/groff.err")"
    # man(1) as a reader would run it, warnings on; wide, so no option is split across lines.
    RS_RC=0
    MANWIDTH=200 man --warnings -l "$page" >"$RS_TMP/$prog.man" 2>"$RS_TMP/man.err" || RS_RC=$?
    RS_ERR=$RS_TMP/man.err
    rs_assert_exit 0
    [[ ! -s $RS_TMP/man.err ]] || rs_fail "man -l warned: $(head -n 5 "$RS_TMP/man.err")"
    # Plain text: drop overstrike bold/underline (X backspace X), and read any Unicode hyphen
    # or minus sign as '-'.
    sed 's/.\x08//g; s/\xe2\x80\x90/-/g; s/\xe2\x88\x92/-/g' "$RS_TMP/$prog.man" >"$RS_TMP/$prog.txt"
    rs_assert_file_contains "$RS_TMP/$prog.txt" "NAME"
    rs_assert_file_contains "$RS_TMP/$prog.txt" "EXIT STATUS"
    rs_pass

    rs_case "every long option of $prog --help is in its man page"
    rs_run help "$bin" --help
    rs_assert_exit 0
    mapfile -t options < <(grep -oE -- '--[a-z][a-z0-9-]*' "$RS_OUT" | sort -u)
    rs_assert_ge 4 "${#options[@]}" "long options found in --help"
    for opt in "${options[@]}"; do
        # A whole option: not followed by another letter or hyphen (--count vs --counter).
        if ! grep -qE -- "${opt}([^a-z0-9-]|\$)" "$RS_TMP/$prog.txt"; then
            rs_fail "$opt is in '$prog --help' but not in man/$prog.1"
        fi
    done
    rs_pass

    rs_case "$prog.1 names the program's version"
    rs_run version "$bin" --version
    rs_assert_exit 0
    version=$(awk '{print $2}' "$RS_OUT")
    rs_assert_match '^[0-9]+\.[0-9]+' "$version" "$prog --version"
    rs_assert_file_contains "$page" "\"redstream $version\""
    rs_pass
done

rs_case "the consumer's page documents reload, the notify protocol and the credential"
for needle in SIGHUP SIGTERM READY=1 WATCHDOG=1 RELOADING=1 STOPPING=1 STATUS= \
    CREDENTIALS_DIRECTORY redis-password REDSTREAM_REDIS_PASSWORD /etc/redstream/redstream.conf \
    "systemctl reload redstream-consumer"; do
    rs_assert_file_contains "$RS_TMP/redstream-consumer.txt" "$needle"
done
rs_pass
