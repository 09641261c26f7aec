#!/usr/bin/env bash
# start-router.sh ID: (re)starts router ID of the local cluster with the flags
# cluster-up used. CLUSTER_DIR, GRPC_BASE, HTTP_BASE, PROFILE select which one.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
start_router "$1"
