#!/usr/bin/env bash
#
# The benchmark harness runs end to end: `bench/run.sh --quick` against the programs of this
# build directory (RS_BUILD_DIR, so nothing is rebuilt) writes a results file with every
# section, each holding a table with figures. Speed is never judged here: a slow or loaded
# machine, or a sanitizer build, must not fail the suite; the targets are for bench/RESULTS.md.
#
# Sanitizer builds run with counts divided by 200 instead of --quick's 20, so the whole run
# stays around a minute there.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/consumer_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_lib.sh"

RS_LIMIT=$RS_BUILD_DIR/bench/redstream-bench-limit
if [[ ! -x $RS_LIMIT ]]; then
    # Configured with -DREDSTREAM_BENCH=OFF: there is nothing to run.
    rs_case "bench programs built"
    echo "skip - $RS_LIMIT not built (REDSTREAM_BENCH=OFF)"
    exit 0
fi

scale=()
if ((RS_SLOW)); then scale=(--scale 200); fi

rs_case "bench/run.sh --quick writes the results file"
results=$RS_TMP/results.md
RS_ERR=$RS_TMP/bench.err
RS_RC=0
# TMPDIR: run.sh's own temp directory goes inside ours, where the last case looks for it.
TMPDIR=$RS_TMP RS_BUILD_DIR=$RS_BUILD_DIR timeout --kill-after=10 240 \
    bash "$RS_SOURCE_DIR/bench/run.sh" --quick ${scale[@]+"${scale[@]}"} --out "$results" \
    >"$RS_TMP/bench.out" 2>"$RS_ERR" || RS_RC=$?
rs_assert_exit 0
[[ -s $results ]] || rs_fail "no results file at $results"
rs_assert_file_lacks "$results" "This step failed"
rs_assert_file_lacks "$results" "did not run"
rs_pass

# section_rows LETTER: the table rows of the section "## LETTER. ...".
section_rows() {
    awk -v want="## $1." 'index($0, "## ") == 1 { ours = (index($0, want) == 1) }
                          ours && /^\| / && !/^\| ---/' "$results"
}

# A number with an optional fraction, as a whole table cell or the start of one ("12.3 MiB").
number_cell='\| [0-9]+(\.[0-9]+)?( MiB)? \|'

rs_case "the machine section names the CPU, cores, versions and the date"
for what in "date" "CPU" "cores" "RAM" "kernel" "redis-server" "hiredis" "gcc" "redstream"; do
    grep -qE "^\| $what \| [^|]*[^ |]" "$results" || rs_fail "machine section lacks '$what'"
done
rs_pass

for letter in a b c d e f g; do
    rs_case "section $letter is there with figures"
    grep -q "^## $letter\. " "$results" || rs_fail "no section '## $letter.' in the results"
    rows=$(section_rows "$letter")
    [[ -n $rows ]] || rs_fail "section $letter has no table rows"
    # Header rows ("| figure | value |") hold no number; at least one data row must.
    grep -qE "$number_cell" <<<"$rows" || rs_fail "section $letter has no figures: $rows"
    rs_pass
done

rs_case "the drain was measured for redstream and for bench/limit, with a ratio"
row=$(section_rows b | grep 'process start to settled') || rs_fail "no ratio row in section b"
rs_assert_match '^\| [^|]+ \| [0-9]+ \| [0-9]+ \| [0-9]+\.[0-9]+ \|' "$row" "section b's ratio row"
rs_pass

rs_case "the bare pair's end-to-end latency has percentiles at both rates"
for rate in 1,000 10,000; do
    row=$(section_rows d | grep -F "| $rate | p99 |") || rs_fail "no p99 row at $rate/s"
    rs_assert_match '^\| [0-9,]+ \| p99 \| [^|]+ \| [0-9]+(\.[0-9]+)? \|' "$row" "p99 at $rate/s"
done
rs_pass

rs_case "the ordering step measured key against stream ordering, with a ratio"
row=$(section_rows g | grep -F '| "key"') || rs_fail "no \"key\" row in section g"
rs_assert_match '^\| "key"[^|]* \| [0-9]+ \| [0-9]+\.[0-9]+ \|' "$row" "section g's key row"
rs_pass

rs_case "the run left no process or temp directory behind"
leftover=$(find "$RS_TMP" -maxdepth 1 -name 'redstream-bench.*' | head -n 1)
[[ -z $leftover ]] || rs_fail "temp directory left behind: $leftover"
# Every process run.sh started had its files (redis-server's --dir, configurations) there.
procs=$(pgrep -af -- "$RS_TMP/redstream-bench" || true)
[[ -z $procs ]] || rs_fail "processes left running: $procs"
rs_pass
