#!/usr/bin/env bash
# Starts, in the background, a Docker engine (Debian's) that builds the platform's images on this machine: in the
# host's network (its builds reach the package registries; it runs no containers of its own, so no bridge), with its
# layers and BuildKit's caches under ~/.cache/store-platform/build-engine, so a build is done once per machine and
# then again only for what changed. Prints its DOCKER_HOST. Stop it with: kill "$(cat DIR.pid)". Needs root.
# Usage: scripts/build-engine.sh DIR
set -euo pipefail
dir=${1:?usage: scripts/build-engine.sh DIR}
data="${XDG_CACHE_HOME:-$HOME/.cache}/store-platform/build-engine"
socket="$dir/docker.sock"
mkdir -p "$dir" "$data"
command -v dockerd >/dev/null || { echo "build-engine: needs dockerd (apt-get install docker.io)" >&2; exit 1; }

if [[ -S $socket ]] && docker --host "unix://$socket" info >/dev/null 2>&1; then
  echo "unix://$socket"
  exit 0
fi
# One engine per data directory: another one's leftovers (a killed run) would hold its lock.
if [[ -f $data/engine.pid ]] && kill -0 "$(cat "$data/engine.pid")" 2>/dev/null; then
  echo "build-engine: an engine already runs on $data (pid $(cat "$data/engine.pid"))" >&2
  exit 1
fi
dockerd --host "unix://$socket" --data-root "$data/docker" --exec-root "$dir/exec" --pidfile "$data/engine.pid" \
  --bridge=none --iptables=false --ip-masq=false --ip-forward=false --storage-driver=overlay2 \
  --log-level=warn >"$dir.log" 2>&1 &
echo $! >"$dir.pid"
for _ in $(seq 120); do
  if docker --host "unix://$socket" info >/dev/null 2>&1; then
    echo "unix://$socket"
    exit 0
  fi
  kill -0 "$(cat "$dir.pid")" 2>/dev/null || break
  sleep 0.5
done
echo "build-engine: dockerd did not start; its log ($dir.log):" >&2
tail -n 20 "$dir.log" >&2
exit 1
