#!/usr/bin/env bash
# Starts the local services the tests use when one has stopped (PostgreSQL,
# RabbitMQ). Only starts; never stops anything.
set -euo pipefail
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_up() {
  for _ in $(seq 1 60); do up "$1" && return 0; sleep 1; done
  echo "service on port $1 did not come up" >&2
  return 1
}
if ! up 5432 && command -v pg_ctlcluster >/dev/null; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_up 5432 || true
fi
if ! up 5672 && command -v rabbitmq-server >/dev/null; then
  echo "starting RabbitMQ" >&2
  rabbitmq-server -detached || true
  wait_up 5672 || true
fi
