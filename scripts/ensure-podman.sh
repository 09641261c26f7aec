#!/usr/bin/env bash
# Installs and configures what `make image` and `make stack-up` need on a
# Debian machine: podman (with buildah, runc and podman-compose) and
# debootstrap for the base image. Does nothing when it is all in place.
#
# The settings (in /etc/containers/containers.conf, which Debian does not
# ship) are what runs containers on a host like the CI machine: the runc
# runtime and the cgroupfs manager (crun refuses a hybrid cgroup layout,
# and there is no systemd to manage cgroups), no default rlimits (raising
# one is not permitted there), and container networks inside 198.18.0.0/15,
# the range reserved for benchmarking, instead of podman's 10.88.0.0/16:
# the default network on 198.18.15.0/24 and new ones from 198.18.16.0/20,
# clear of deploy/compose.yml's subnets (198.18.0.0/24-198.18.3.0/24), which
# `make stack-up` creates as they are (podman refuses a subnet in use).
set -euo pipefail
missing=()
for cmd in podman buildah runc podman-compose debootstrap; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
conf=/etc/containers/containers.conf
marker="# Confab: runc, cgroupfs, no default ulimits, 198.18.0.0/15 (default network 198.18.15.0/24)"
if ! grep -qF "$marker" "$conf" 2>/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # A copy of the file as it was, unless it is an earlier one of these.
  if [ -f "$conf" ] && ! head -n 1 "$conf" | grep -q '^# Confab:'; then $SUDO cp "$conf" "$conf.before-confab"; fi
  $SUDO tee "$conf" >/dev/null <<CONF
$marker
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
default_subnet = "198.18.15.0/24"
default_subnet_pools = [{"base" = "198.18.16.0/20", "size" = 24}]
CONF
  echo "wrote $conf" >&2
fi
