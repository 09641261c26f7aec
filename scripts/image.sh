#!/usr/bin/env bash
# `make image`: confab:latest from the Dockerfile at the repository root,
# with podman. The build stage runs cargo on the build base with the host's
# toolchain, crate cache and target directory mounted at their own paths,
# so the dependencies are cached and binaries the host built already are
# reused (see the Dockerfile). Makes the base images first when missing
# (scripts/image-base.sh). IMAGE names the result (default confab:latest).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${IMAGE:-confab:latest}"
"$ROOT/scripts/image-base.sh"
CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}"
mkdir -p "$TARGET_DIR"
# The web client's built files are committed (web/dist); nothing else needs
# a tool the build base lacks. No layer cache: the source is mounted, not
# copied, so a cached build step would hand back the binaries of an older
# tree; cargo's own cache makes the step cheap (seconds when nothing
# changed).
podman build --no-cache --format docker -f "$ROOT/Dockerfile" -t "$IMAGE" \
  -v "$ROOT:$ROOT:ro" -v "$CARGO_HOME:$CARGO_HOME" -v "$RUSTUP_HOME:$RUSTUP_HOME:ro" \
  -v "$TARGET_DIR:$TARGET_DIR" \
  --build-arg SRC="$ROOT" --build-arg TARGET_DIR="$TARGET_DIR" \
  --build-arg CARGO_HOME="$CARGO_HOME" --build-arg RUSTUP_HOME="$RUSTUP_HOME" \
  "$ROOT"
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$IMAGE"
