#!/usr/bin/env bash
# Installs the Debian 12 packages redstream needs to build, test and run locally.
# Used by .ci/run and scripts/run-local.sh; safe to run again. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libhiredis-dev libconfig-dev libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev
  libcmocka-dev libsystemd-dev
  redis-server redis-tools
  procps python3
  # promtool, which the tests use to validate /metrics (the package also brings a Prometheus
  # server that nothing here starts).
  prometheus
  # systemd-analyze (verify and security checks of the unit), dpkg-shlibdeps (CPack computes
  # the .deb's dependencies with it), and Debian's docker-compose (validates
  # docker-compose.yaml; no Docker engine is needed or started).
  systemd dpkg-dev docker-compose
  # man (with groff) renders the man pages in tests/integration/test_man_pages.sh.
  man-db
  # valgrind: tests/integration/test_valgrind.sh (leak check of a whole consumer life).
  valgrind
  # clang and libFuzzer's runtime: scripts/fuzz.sh (the harnesses of fuzz/).
  clang libclang-rt-14-dev
  # Debian's Chromium, driven headless by tests/integration/test_dashboard.sh (through
  # playwright-core from npm, tests/dashboard/).
  chromium
)

# Node and npm run the OTLP receiver of tests/integration/test_tracing.sh (it checks span
# exports against the OTLP protobuf schema; its npm packages come from the npm registry).
# Debian's nodejs and npm packages only when there is no node yet: a machine with Node from
# elsewhere (NodeSource's nodejs bundles npm and conflicts with Debian's npm) keeps it.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
