#!/usr/bin/env bash
# Installs the npm-packaged tools (buf) into tools/node_modules, from the lockfile when there is one.
set -euo pipefail
cd "$(dirname "$0")/../tools"
if [[ -x node_modules/.bin/buf && node_modules/.package-lock.json -nt package-lock.json ]]; then
  exit 0
fi
if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
else
  npm install --no-audit --no-fund --loglevel=error >&2
fi
