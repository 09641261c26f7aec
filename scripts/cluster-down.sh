#!/usr/bin/env bash
# Stops what cluster-up started, by the pids it recorded (TERM, then KILL).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
shopt -s nullglob
for pidfile in "$CLUSTER_DIR"/*.pid; do
  pid="$(cat "$pidfile")"
  name="$(basename "$pidfile" .pid)"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    echo "stopped $name ($pid)"
  fi
  rm -f "$pidfile"
done
