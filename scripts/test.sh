#!/usr/bin/env bash
# Builds redstream and runs its tests with ctest.
#   scripts/test.sh          normal build (build/)
#   scripts/test.sh asan     AddressSanitizer + UBSan (build-asan/)
#   scripts/test.sh tsan     ThreadSanitizer (build-tsan/)
#   scripts/test.sh all      the three in turn; fails if any fails
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc 2>/dev/null || echo 2)

run_mode() {
  local mode=$1 dir flags=()
  case "$mode" in
    normal) dir=build ;;
    asan) dir=build-asan; flags=(-DREDSTREAM_ASAN=ON) ;;
    tsan) dir=build-tsan; flags=(-DREDSTREAM_TSAN=ON) ;;
    *) echo "scripts/test.sh: unknown mode '$mode' (normal, asan, tsan, all)" >&2; exit 64 ;;
  esac
  echo "=== $mode build ($dir) ==="
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${flags[@]}" >/dev/null
  cmake --build "$dir" -j "$jobs"
  # halt_on_error keeps a sanitizer report from scrolling past as a mere warning.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir "$dir" --output-on-failure -j "$jobs"
}

case "${1:-normal}" in
  all) run_mode normal; run_mode asan; run_mode tsan ;;
  *) run_mode "${1:-normal}" ;;
esac
