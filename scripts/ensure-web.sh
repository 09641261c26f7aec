#!/usr/bin/env bash
# Makes sure the web client (web/) can be built and tested: Node.js and npm,
# Debian's chromium for the browser tests, and web/node_modules (npm ci).
# Does nothing that is already done. With --build, also builds web/dist.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing for the web client: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Vite needs Node.js 20.19 or newer.
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' || {
  echo "Node.js $(node --version) is too old for web/: 20.19 or newer is needed" >&2
  exit 1
}

cd "$ROOT/web"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund
fi
if [ "${1:-}" = "--build" ]; then
  npm run build
fi
