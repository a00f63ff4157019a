#!/usr/bin/env bash
# Installs and builds the Medusa backend of deploy/medusa exactly as its image does (`npm ci`, then `medusa build`),
# once per machine and per version of its sources, and prints the directory that holds the result (its
# node_modules, bin/ and .medusa/server). The real-software tests run the pods' commands from there.
#   scripts/medusa.sh        build if needed, print the directory
# Cache: ${XDG_CACHE_HOME:-~/.cache}/store-platform/medusa-<hash of the sources and the Node version>.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/deploy/medusa"

log() { printf 'medusa: %s\n' "$*" >&2; }

command -v node >/dev/null && command -v npm >/dev/null || {
  log "Node.js and npm are needed (Node ^20.19 or >=22.12)"
  exit 1
}

sources=(package.json package-lock.json tsconfig.json medusa-config.js)
mapfile -t -O "${#sources[@]}" sources < <(cd "$src" && find src bin -type f | LC_ALL=C sort)
key=$({
  node --version
  (cd "$src" && sha256sum "${sources[@]}")
} | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/store-platform/medusa-$key"

if [[ -f $cache/.medusa/server/medusa-config.js && -d $cache/node_modules ]]; then
  echo "$cache"
  exit 0
fi

work="$cache.tmp.$$"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
(cd "$src" && cp --parents "${sources[@]}" "$work/")
cd "$work"
export MEDUSA_DISABLE_TELEMETRY=true NEXT_TELEMETRY_DISABLED=1
log "npm ci (about 2 minutes)"
npm ci --no-audit --no-fund --loglevel=error >&2
log "medusa build (about 1.5 minutes)"
npx --no-install medusa build >&2
test -f .medusa/server/medusa-config.js
rm -rf "$cache"
mv "$work" "$cache"
trap - EXIT
# Builds of earlier sources are 1 GB or more each.
find "$(dirname "$cache")" -mindepth 1 -maxdepth 1 -name 'medusa-*' ! -name "medusa-$key" ! -name '*.tmp.*' -exec rm -rf {} +
echo "$cache"
