#!/bin/sh
# Writes /etc/rabbitmq/rabbitmq.conf from RABBITMQ_DEFAULT_USER and
# RABBITMQ_DEFAULT_PASS (the broker makes that user when its database is
# new), then runs the command; rabbitmq-server runs the broker itself, not
# Debian's wrapper (which would send its output to /var/log).
set -eu
{
  echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
  echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
  echo "listeners.tcp.default = 5672"
} >/etc/rabbitmq/rabbitmq.conf
if [ "${1:-}" = rabbitmq-server ]; then
  shift
  exec /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi
exec "$@"
