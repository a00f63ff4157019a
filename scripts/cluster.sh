#!/usr/bin/env bash
# Starts the local control plane (etcd, kube-apiserver, kube-controller-manager) and the simulated kubelet (or, with
# TEST_CLUSTER_REAL_NODE=true, a real node: see scripts/real-node.sh) in the background, waits until it is ready, and
# prints its directory (kubeconfig at <dir>/kubeconfig).
# Usage: scripts/cluster.sh DIR   (stop it with: kill "$(cat DIR.pid)")
set -euo pipefail
dir=${1:?usage: scripts/cluster.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${STORE_PLATFORM_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/debug}
KUBEBUILDER_ASSETS=$("$root/scripts/kube-assets.sh")
export KUBEBUILDER_ASSETS

rm -rf "$dir" "$dir.ready"
mkdir -p "$(dirname "$dir")"
"$bin/test-cluster" --dir "$dir" --clean --namespace store-platform --ready-file "$dir.ready" >/dev/null 2>"$dir.log" &
echo $! >"$dir.pid"
for _ in $(seq 1 3000); do
  if [[ -f "$dir.ready" ]]; then
    echo "$dir"
    exit 0
  fi
  if ! kill -0 "$(cat "$dir.pid")" 2>/dev/null; then
    echo "the local control plane failed to start:" >&2
    tail -n 40 "$dir.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "the local control plane did not become ready in 300s; see $dir.log" >&2
kill "$(cat "$dir.pid")" 2>/dev/null || true
exit 1
