#!/usr/bin/env bash
# `make bench`: starts a private release cluster (3 routers, fsync on, 3
# replicas) under a temp dir on ports of its own, runs the router benchmarks
# against it, then persist's write benchmark, measures the peer in the same run (Redis MGET of 100 keys, when a Redis
# is listening on 127.0.0.1:6379), prints every figure and stops what it started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PROFILE=release
BIN="$TARGET_DIR/release"
DURATION="${DURATION:-10}"
# Writes need many in flight to fill the Raft pipelines; lookups saturate sooner.
WRITE_CONCURRENCY="${WRITE_CONCURRENCY:-512}"
CONCURRENCY="${CONCURRENCY:-128}"
KILLS="${KILLS:-5}"
OUT="${BENCH_OUT:-$ROOT/target-bench}"
build_bins
mkdir -p "$OUT"
export CLUSTER_DIR="$(mktemp -d)"
export GRPC_BASE="${BENCH_GRPC_BASE:-17100}" HTTP_BASE="${BENCH_HTTP_BASE:-17200}"
cleanup() { "$ROOT/scripts/cluster-down.sh" >/dev/null 2>&1 || true; rm -rf "$CLUSTER_DIR"; }
trap cleanup EXIT
for i in 1 2 3; do start_router "$i"; done
for i in 1 2 3; do wait_ready "http://$(router_http "$i")/readyz" 60; done
routers="$(router_grpc 1),$(router_grpc 2),$(router_grpc 3)"

echo "== router: replicated session writes (login + logout), fsync on, 3 replicas"
"$BIN/confab-bench" router --router "$routers" --mix writes --duration "$DURATION" \
  --concurrency "$WRITE_CONCURRENCY" --warmup 2 --json | tee "$OUT/router-writes.json"
echo "== router: linearizable batch lookups of 100 uids"
"$BIN/confab-bench" router --router "$routers" --mix lookups --batch 100 --duration "$DURATION" \
  --concurrency "$CONCURRENCY" --warmup 2 --json | tee "$OUT/router-lookups.json"
echo "== router: SIGKILL a shard leader, time until writes to that shard succeed ($KILLS kills)"
"$BIN/confab-bench" failover --router "$routers" --kills "$KILLS" --pid-dir "$CLUSTER_DIR" \
  --restart-cmd "$ROOT/scripts/start-router.sh {id}" --json | tee "$OUT/router-failover.json"
# The routers are done: stop them so they take no CPU from what follows.
cleanup
trap - EXIT

if command -v redis-benchmark >/dev/null && (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "== peer: one Redis, MGET of 100 keys (same machine, same run)"
  keys=$(for k in $(seq 1 100); do printf 'confab:bench:%d ' "$k"; done)
  for k in $keys; do redis-cli -h 127.0.0.1 SET "$k" x >/dev/null; done
  # shellcheck disable=SC2086
  redis-benchmark -h 127.0.0.1 -p 6379 -q -n 200000 -c 50 MGET $keys | tr '\r' '\n' | tail -n 1 \
    | sed 's/^.*: \([0-9.]* requests per second.*\)$/MGET of 100 keys: \1/' | tee "$OUT/redis-mget.txt"
  for k in $keys; do redis-cli -h 127.0.0.1 DEL "$k" >/dev/null; done
fi
echo "== persist: messages enqueued -> committed, and the plain batched INSERT ceiling"
echo "   (SQLite + embedded queue; PostgreSQL + RabbitMQ when they listen on 127.0.0.1)"
(cd "$ROOT" && cargo run --quiet --release -p confab-persist --example write_bench -- "${PERSIST_MESSAGES:-200000}") \
  | tee "$OUT/persist-write.txt"
echo "results in $OUT"
