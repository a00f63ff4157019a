#!/usr/bin/env bash
# Installs and builds the Medusa backend of deploy/medusa exactly as its image does (`npm ci`, then `medusa build`,
# with the image's Node.js), once per machine and per version of its sources, and prints the directory that holds
# the result: node_modules, bin/ and .medusa/server as in the image, and .node/bin/node. The real-software tests run
# the pods' commands from there, with that Node first on PATH.
#   scripts/medusa.sh        build if needed, print the directory
# Node.js comes from the npm registry (scripts/node.sh), the version the images' Dockerfiles pin.
# Cache: ${XDG_CACHE_HOME:-~/.cache}/store-platform/node-<version> and medusa-<hash of the sources and Node>.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/deploy/medusa"

log() { printf 'medusa: %s\n' "$*" >&2; }

# The images' Node.js (deploy/docker/medusa/Dockerfile and deploy/docker/medusa-storefront/Dockerfile).
node_version=22.23.5
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/store-platform"

node_dir=$(dirname "$(dirname "$("$root/scripts/node.sh" "$node_version")")")
PATH="$node_dir/bin:$PATH"

sources=(package.json package-lock.json tsconfig.json medusa-config.js)
mapfile -t -O "${#sources[@]}" sources < <(cd "$src" && find src bin -type f | LC_ALL=C sort)
key=$({
  node --version
  (cd "$src" && sha256sum "${sources[@]}")
} | sha256sum | cut -c1-16)
cache="$cache_root/medusa-$key"

if [[ -f $cache/.medusa/server/medusa-config.js && -x $cache/.node/bin/node ]]; then
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
log "npm run build: medusa build and the migrations directories (about 1.5 minutes)"
npm run --silent build >&2
test -f .medusa/server/medusa-config.js
mkdir .node
ln -s "$node_dir/bin" .node/bin
rm -rf "$cache"
mv "$work" "$cache"
trap - EXIT
# Builds of earlier sources are 1 GB or more each.
find "$(dirname "$cache")" -mindepth 1 -maxdepth 1 -name 'medusa-*' ! -name "medusa-$key" ! -name '*.tmp.*' -exec rm -rf {} +
echo "$cache"
