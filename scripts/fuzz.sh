#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ with clang and runs each for a bounded time from a
# temporary copy of its seed corpus (fuzz/corpus/<target>/ is never written).
#   scripts/fuzz.sh                 every target, FUZZ_SECONDS (default 60) seconds each
#   scripts/fuzz.sh 300             every target, 300 seconds each
#   scripts/fuzz.sh 300 fuzz_config only the targets named
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT
# (seconds one input may take, default 10), FUZZ_JOBS (build parallelism, default nproc).
# Prints each target's coverage and speed. Fails if any fuzzer finds a crash, a leak, a
# timeout or an out-of-memory: the input is kept in $FUZZ_BUILD_DIR/fuzz-artifacts/<target>/
# and the command that reproduces it is printed. fuzz/README.md says how to turn it into a
# regression case.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-${FUZZ_SECONDS:-60}}
shift || true
dir=${FUZZ_BUILD_DIR:-build-fuzz}
rss_mb=${FUZZ_RSS_MB:-2048}
timeout_s=${FUZZ_TIMEOUT:-10}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "scripts/fuzz.sh: seconds must be a positive number, got '$seconds'" >&2
  exit 64
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.c; do
    targets+=("$(basename "$f" .c)")
  done
fi
for t in "${targets[@]}"; do
  if [ ! -f "fuzz/$t.c" ] || [ ! -d "fuzz/corpus/$t" ]; then
    echo "scripts/fuzz.sh: unknown target '$t' (no fuzz/$t.c or fuzz/corpus/$t/)" >&2
    exit 64
  fi
done

echo "=== fuzz build ($dir, clang) ==="
CC=${FUZZ_CC:-clang} cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREDSTREAM_FUZZ=ON \
  -DREDSTREAM_TESTS=OFF -DREDSTREAM_BENCH=OFF >/dev/null
cmake --build "$dir" -j "$jobs" --target "${targets[@]}"

work=$(mktemp -d "${TMPDIR:-/tmp}/redstream-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=0
for t in "${targets[@]}"; do
  corpus="$work/corpus-$t"
  artifacts="$dir/fuzz-artifacts/$t"
  log="$work/$t.log"
  cp -r "fuzz/corpus/$t" "$corpus"
  mkdir -p "$artifacts"
  echo "=== $t: ${seconds}s ==="
  rc=0
  # stdin from /dev/null: nothing an input names (say /dev/stdin) can wait on the terminal.
  # The harnesses' temporary files go under $work, removed at the end. fuzz/lsan.supp holds
  # the third-party leaks LeakSanitizer is told to ignore.
  TMPDIR="$work" LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0" \
    "$dir/fuzz/$t" -max_total_time="$seconds" -rss_limit_mb="$rss_mb" \
    -timeout="$timeout_s" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus" </dev/null >"$log" 2>&1 || rc=$?
  # "#123 DONE cov: 456 ft: 789 corp: 12/3456b lim: 4096 exec/s: 1000 rss: 40Mb"
  summary=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|NEW|REDUCE|pulse)' "$log" | tail -n 1 || true)
  echo "$t: ${summary:-no progress line}"
  found=$(find "$artifacts" -type f -newer "$corpus" 2>/dev/null | sort)
  if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    failed=1
    echo "--- $t FAILED (exit $rc); the end of its log:" >&2
    tail -n 60 "$log" >&2
    for f in $found; do
      echo "--- input kept: $f" >&2
      echo "    reproduce: LSAN_OPTIONS=suppressions=$PWD/fuzz/lsan.supp $dir/fuzz/$t $f" >&2
      echo "    once fixed, keep it: cp $f fuzz/corpus/$t/regress-<what-it-tests>" >&2
    done
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "scripts/fuzz.sh: a fuzzer found a problem (see above)" >&2
  exit 1
fi
echo "scripts/fuzz.sh: no crash, leak or timeout in ${seconds}s per target"
