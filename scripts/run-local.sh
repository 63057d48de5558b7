#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, build, start a local Redis on
# 127.0.0.1:6380 with password redis123 (as the Go demo's docker-compose did), then run the
# consumer and the producer with the example configuration. Ctrl-C stops everything.
#
#   scripts/run-local.sh                  build, start Redis, consumer and producer
#   RS_SKIP_INSTALL=1 scripts/run-local.sh  skip the apt-get step
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${RS_SKIP_INSTALL:-}" ]; then
  bash scripts/install-deps.sh
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)"

conf=config/redstream.conf
work=$(mktemp -d /tmp/redstream-local.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

if redis-cli -h 127.0.0.1 -p 6380 -a redis123 --no-auth-warning ping >/dev/null 2>&1; then
  echo "run-local: using the Redis already listening on 127.0.0.1:6380"
else
  echo "run-local: starting redis-server on 127.0.0.1:6380 (data in $work)"
  redis-server --bind 127.0.0.1 --port 6380 --requirepass redis123 --save '' \
    --appendonly no --dir "$work" --logfile "$work/redis.log" &
  pids+=($!)
  for _ in $(seq 1 100); do
    redis-cli -p 6380 -a redis123 --no-auth-warning ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi

build/redstream-consumer -c "$conf" --check-config
build/redstream-consumer -c "$conf" &
pids+=($!)
build/redstream-producer -c "$conf" &
pids+=($!)
wait "${pids[-1]}"
