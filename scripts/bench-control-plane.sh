#!/usr/bin/env bash
# The control plane's scale bench (issue #23): seeds synthetic data at three sizes on the
# embedded store (redb on a temp dir) and on DynamoDB (moto), serves the API router on a
# loopback port and prints one markdown table: req/s, p50 and p99 of the main API routes,
# one dispatch burst of due schedules, one retention sweep, and the item reads and writes
# of each operation (bench/control-plane, arca-bench-control-plane).
#
# Usage: scripts/bench-control-plane.sh [OPTIONS]   (the binary's options; --help lists them)
#   scripts/bench-control-plane.sh                                 everything, table in
#                                                                  $CARGO_TARGET_DIR/bench-control-plane.md
#   scripts/bench-control-plane.sh --stores embedded --out t.md    no moto
#   scripts/bench-control-plane.sh --sizes tiny --requests 200 --burst 200   a quick try
#
# Sizes (orgs; the measured org's clusters and recovery points; points in all):
#   embedded  small 1 org, 10 clusters, 10^3 points | medium 10 orgs, 1,000 clusters,
#             5x10^4 of 10^5 points | large 10,000 orgs, 1,000 clusters, 10^5 of 10^6 points
#   DynamoDB  small 1 org, 10 clusters, 10^3 points | medium 10 orgs, 100 clusters,
#   (moto)    1,500 of 3,000 points | large 100 orgs, 300 clusters, 3,000 of 6,000 points
#             (moto takes one DynamoDB call at a time and its queries and transactions cost
#             it time in proportion to the table: its latencies are moto's, its read and
#             write counts exact)
# Every size also has one org of dispatch-burst definitions (10 per cluster): 10,000 on the
# embedded store, 200 on moto. 1 in 100 points is expired (the retention sweep's work).
# Defaults: 2,000 requests per route (100 on moto), 8 in flight; nothing new is sent after
# 180 s per route or burst (60 s on moto), and the table says so.
#
# DynamoDB: with AWS_ENDPOINT_URL set (e.g. eval "$(ARCA_TESTENV_NODES=0 scripts/testenv.sh
# env)") that endpoint is used; otherwise this script starts a private moto_server
# (scripts/moto_server.py, from the test environment's virtualenv, made on first use) on a
# free port and stops it at exit, so nothing else competes for the 2 cores.
#
# Env: BENCH_CARGO_FLAGS  extra cargo flags; by default the release profile without fat LTO
#      (as scripts/bench-s3.sh), BENCH_CARGO_FLAGS="" builds the release profile as it is.
# Takes about 20-30 minutes on 2 cores once built (moto most of it); the first build
# takes about 20 minutes more.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/arca-target}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
read -r -a FLAGS <<<"${BENCH_CARGO_FLAGS---config profile.release.lto=false --config profile.release.codegen-units=16}"
cargo build --release -p arca-bench-control-plane "${FLAGS[@]}" >&2
BIN=$CARGO_TARGET_DIR/release/arca-bench-control-plane

args=("$@")
stores=embedded,dynamo
has_out=0
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    -h | --help | -V | --version) exec "$BIN" "${args[@]}" ;;
    --stores) stores=${args[i + 1]:-} ;;
    --stores=*) stores=${args[i]#--stores=} ;;
    --out | --out=*) has_out=1 ;;
  esac
done
if [ "$has_out" = 0 ]; then
  args+=(--out "$CARGO_TARGET_DIR/bench-control-plane.md")
fi

MOTO_PID=
WATCH_PID=
stop_moto() {
  if [ -n "$WATCH_PID" ]; then kill "$WATCH_PID" 2>/dev/null || true; fi
  if [ -n "$MOTO_PID" ]; then
    # moto_server does not always stop on SIGTERM while it serves: then KILL.
    kill "$MOTO_PID" 2>/dev/null || true
    for _ in $(seq 25); do kill -0 "$MOTO_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
}
trap stop_moto EXIT

if [[ ,$stores, == *,dynamo,* ]] && [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  venv=$(scripts/testenv.sh moto-venv | tail -1)
  port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log=$(mktemp -t arca-bench-moto.XXXXXX.log)
  MOTO_PORT=$port "$venv/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$port" >"$log" 2>&1 </dev/null &
  MOTO_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break
    kill -0 "$MOTO_PID" 2>/dev/null || { cat "$log" >&2; echo "moto did not start" >&2; exit 1; }
    sleep 0.2
  done
  echo "moto_server on :$port (pid $MOTO_PID, log $log)" >&2
  # moto keeps every table in its memory, and its transactions copy them: should it grow
  # past ARCA_BENCH_MOTO_MAX_MB (default 6144), it is stopped before it starves the machine,
  # and the sizes left are reported as failed.
  max_mb=${ARCA_BENCH_MOTO_MAX_MB:-6144}
  (
    while kill -0 "$MOTO_PID" 2>/dev/null; do
      rss=$(awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$MOTO_PID/status" 2>/dev/null || echo 0)
      if [ "${rss:-0}" -gt "$max_mb" ]; then
        echo "moto uses ${rss} MB, more than ${max_mb} MB: stopping it" >&2
        kill "$MOTO_PID" 2>/dev/null; sleep 2; kill -9 "$MOTO_PID" 2>/dev/null
        exit 0
      fi
      sleep 2
    done
  ) &
  WATCH_PID=$!
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
fi

started=$(date +%s)
"$BIN" "${args[@]}"
echo "bench-control-plane: done in $(($(date +%s) - started)) s" >&2
