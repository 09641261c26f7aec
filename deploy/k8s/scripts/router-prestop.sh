#!/bin/sh
# preStop hook of a router pod: before Kubernetes sends SIGTERM, hand every
# Raft leadership this node holds (its shards' and the meta group's) to
# another voter with `confabctl leader transfer`, so that writes to those
# shards do not wait for an election while the pod goes away. The router
# does the same again on SIGTERM (`handoff_ms`) for anything left; this hook
# never fails the termination: any error is logged and it exits 0.
#
# confabctl finds the router and the admin certificate through CONFAB_ROUTER
# (this pod's address) and CONFAB_TLS_DIR (/etc/confab/tls: ca.pem,
# admin.pem, admin.key; without them it calls in plain gRPC).
set -u

marker=/var/lib/confab/router/confab-node-id
[ -f "$marker" ] || exit 0
me="$(cat "$marker")"
timeout="${PRESTOP_TIMEOUT:-10}"

if ! status="$(confabctl --timeout "$timeout" status 2>&1)"; then
  echo "preStop: confabctl status failed, leaving the hand-off to SIGTERM: $status" >&2
  exit 0
fi

# `confabctl status` prints three tables, each under its title line:
#   GROUPS: GROUP KIND LEADER TERM COMMIT APPLIED LAST_LOG ENTRIES LAG
#           (LAG lists the replicas: 1=0,2=3,4(learner)=-)
#   SHARDS: SHARD SLOTS COUNT REPLICAS LEADER EPOCH
# For every group this node leads, print the `leader transfer` arguments
# naming another voter.
moves="$(printf '%s\n' "$status" | awk -v me="$me" '
  /^(NODES|GROUPS|SHARDS)$/ { section = $1; next }
  section == "GROUPS" && $1 == "0" && $2 == "meta" && $3 == me {
    n = split($9, replicas, ",")
    for (i = 1; i <= n; i++) {
      split(replicas[i], kv, "=")
      if (kv[1] != me && kv[1] !~ /learner/) { print "--meta --to " kv[1]; break }
    }
  }
  section == "SHARDS" && $1 ~ /^[0-9]+$/ && $5 == me {
    n = split($4, replicas, ",")
    for (i = 1; i <= n; i++) {
      if (replicas[i] != me) { print "--shard " $1 " --to " replicas[i]; break }
    }
  }
')"

[ -n "$moves" ] || exit 0
printf '%s\n' "$moves" | while read -r args; do
  # shellcheck disable=SC2086 # args is a list of words
  if ! out="$(confabctl --timeout "$timeout" leader transfer $args 2>&1)"; then
    echo "preStop: leader transfer $args: $out" >&2
  fi
done
exit 0
