#!/usr/bin/env bash
# `make bench-compare BEFORE=DIR`: is this build's chat slower than an older
# one's? DIR holds the older build's release binaries (confab-router,
# confab-persist, confab-gateway, confab-chat, confabctl, confab-bench; e.g.
# a copy of target/release taken before a change). Runs the gateway part of
# scripts/bench.sh (1:1 chat, closed loop: the most the cluster delivers)
# ROUNDS times (default 3) in alternation, older build first, then this
# tree's; prints both series and the ratio of the best runs
# (scripts/bench-compare.py), also as JSON in target-bench/compare/;
# fails when this build's figure is under MIN_RATIO (default 0.95) of the
# older one's.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PROFILE=release
source "$ROOT/scripts/lib.sh"
BEFORE="${BEFORE:?BEFORE=DIR: a folder with the release binaries of the older build}"
BEFORE="$(cd "$BEFORE" && pwd)"
OUT="${BENCH_OUT:-$ROOT/target-bench}/compare"
ROUNDS="${ROUNDS:-3}"
export BENCH_ONLY=gateway BENCH_GROUP=0 BENCH_CONNECTIONS=0
export CHAT_RATES="${CHAT_RATES:-0}"
all="confab-router confab-persist confab-gateway confab-chat confabctl confab-bench"
for b in $all; do
  [ -x "$BEFORE/$b" ] || { echo "BEFORE=$BEFORE has no $b" >&2; exit 2; }
done
# The older build, seen as a target directory of its own.
older="$(mktemp -d)"
trap 'rm -rf "$older"' EXIT
ln -s "$BEFORE" "$older/release"
rm -rf "$OUT"
mkdir -p "$OUT"
skip="${SKIP_BUILD:-}"
for round in $(seq 1 "$ROUNDS"); do
  echo "==== round $round: before ($BEFORE)"
  CARGO_TARGET_DIR="$older" BENCH_OUT="$OUT/before-$round" SKIP_BUILD="$all" "$ROOT/scripts/bench.sh"
  echo "==== round $round: this tree"
  BENCH_OUT="$OUT/after-$round" SKIP_BUILD="$skip" "$ROOT/scripts/bench.sh"
  # The later rounds take the binaries the first one built.
  skip="$all"
done
python3 "$ROOT/scripts/bench-compare.py" "$OUT" "$ROUNDS" "${MIN_RATIO:-0.95}" | tee "$OUT/compare.txt"
