#!/usr/bin/env bash
# Builds the dashboard into web/dist: npm packages from web/package-lock.json, TypeScript generated from proto/ by
# buf and protoc-gen-es (both local npm packages), type-checked, bundled by Vite.
#   scripts/web.sh            build
#   scripts/web.sh --browser  also install Debian's Chromium for the browser tests, if it is missing
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if [[ ${1:-} == --browser ]] && ! command -v "${CHROMIUM:-chromium}" >/dev/null; then
  as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >&2
fi

cd "$root/web"
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
npm run --silent build >&2
