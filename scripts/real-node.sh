#!/usr/bin/env bash
# Starts a cluster with a real node in the background: the control plane, Docker's engine, kubelet, kube-proxy, CNI,
# DNS and a volume provisioner, all in a network namespace of their own (test-support/src/node.rs), running the images
# of scripts/node-images.sh. Waits until the node is Ready and prints the cluster's directory (kubeconfig at
# <dir>/kubeconfig). Needs root. Stop it with: kill "$(cat DIR.pid)" (it removes what it made).
# Usage: scripts/real-node.sh DIR
set -euo pipefail
dir=${1:?usage: scripts/real-node.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${STORE_PLATFORM_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/debug}
[[ $(id -u) -eq 0 ]] || { echo "the real node needs root (network namespace, Docker's engine, kubelet)" >&2; exit 1; }
KUBEBUILDER_ASSETS=$("$root/scripts/kube-assets.sh")
export KUBEBUILDER_ASSETS
"$root/scripts/debian-packages.sh"
images=$("$root/scripts/node-images.sh")

rm -rf "$dir" "$dir.ready"
mkdir -p "$(dirname "$dir")"
"$bin/test-cluster" --dir "$dir" --clean --real-node --images "$images" --namespace store-platform \
  --ready-file "$dir.ready" >/dev/null 2>"$dir.log" &
echo $! >"$dir.pid"
for _ in $(seq 1 3000); do
  if [[ -f "$dir.ready" ]]; then
    echo "$dir"
    exit 0
  fi
  if ! kill -0 "$(cat "$dir.pid")" 2>/dev/null; then
    echo "the real node failed to start:" >&2
    tail -n 40 "$dir.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "the real node did not become ready in 300s; see $dir.log" >&2
kill "$(cat "$dir.pid")" 2>/dev/null || true
exit 1
