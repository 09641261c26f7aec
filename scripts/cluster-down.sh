#!/usr/bin/env bash
# Stops what cluster-up started, by the pids it recorded (TERM, then KILL).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
shopt -s nullglob
for pidfile in "$CLUSTER_DIR"/*.pid; do
  pid="$(cat "$pidfile")"
  name="$(basename "$pidfile" .pid)"
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    echo "stopped $name ($pid)"
  fi
  rm -f "$pidfile"
done
