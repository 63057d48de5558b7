#!/usr/bin/env bash
#
# The scale-out benchmark runs end to end: `bench/scaling.sh` with small counts against the
# programs of this build directory prints its table, with a figure in every cell that is
# measured (standalone, 1-master and 3-master cluster; one and two consumer processes; the
# producer). Speed is never judged here: the figures are for docs/SCALING.md.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ! -x $RS_BUILD_DIR/bench/redstream-bench-limit ]]; then
    rs_case "bench programs built"
    echo "skip - redstream-bench-limit not built (REDSTREAM_BENCH=OFF)"
    exit 0
fi

rs_case "bench/scaling.sh prints a table with every measured cell filled"
RS_RC=0
TMPDIR=$RS_TMP RS_BUILD_DIR=$RS_BUILD_DIR timeout --kill-after=10 240 \
    bash "$RS_SOURCE_DIR/bench/scaling.sh" 6000 3 1 >"$RS_TMP/table.md" 2>"$RS_TMP/scaling.err" ||
    RS_RC=$?
rs_assert_exit 0
rows=$(grep -cE '^\| (drain|producer)' "$RS_TMP/table.md") || true
rs_assert_eq 3 "$rows" "table rows"
# Every entries/s cell is a number, but the two that are not measured (2 consumers on one
# master, and its ratio).
n='[0-9]+'
r='[0-9]+\.[0-9]+'
grep -qE "^\| drain, 1 consumer \| $n \| $n \| $n \| $r \| $r \|$" "$RS_TMP/table.md" ||
    rs_fail "drain row: $(grep '^| drain, 1' "$RS_TMP/table.md")"
grep -qE "^\| drain, 2 consumers \| $n \| - \| $n \| - \| $r \|$" "$RS_TMP/table.md" ||
    rs_fail "two-consumer row: $(grep '^| drain, 2' "$RS_TMP/table.md")"
grep -qE "^\| producer load mode \| $n \| $n \| $n \| $r \| $r \|$" "$RS_TMP/table.md" ||
    rs_fail "producer row: $(grep '^| producer' "$RS_TMP/table.md")"
rs_pass
