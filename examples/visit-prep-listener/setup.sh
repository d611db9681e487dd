#!/usr/bin/env bash
# Install the listener's dependencies exactly as locked (npm ci), unless node_modules already
# matches package-lock.json (a stamp of the lockfile's sha256). Idempotent; the lockfile pins
# the same jsforce/openai tree as zoo/node-jsforce, so a warm npm cache serves it offline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

command -v node >/dev/null || { echo "setup.sh: node not found (Node.js 20 needed)" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup.sh: npm not found" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "setup.sh: Node.js >= 20 needed, found $(node --version)" >&2
  exit 1
fi

want=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.visit-prep-lock-sha256
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup.sh: node_modules matches package-lock.json, nothing to do"
  exit 0
fi

npm ci --no-audit --no-fund --prefer-offline --loglevel=error
echo "$want" > "$stamp"
echo "setup.sh: dependencies installed ($(node --version), npm $(npm --version))"
