#!/usr/bin/env bash
# Starts a cluster with a real node in the background: the control plane, Docker's engine, kubelet, kube-proxy, CNI,
# DNS and a volume provisioner, all in a network namespace of their own (test-support/src/node.rs), running the images
# of scripts/node-images.sh. Waits until the node is Ready and prints the cluster's directory (kubeconfig at
# <dir>/kubeconfig). Needs root. Stop it with: kill "$(cat DIR.pid)" (it removes what it made).
# Usage: scripts/real-node.sh DIR
set -euo pipefail
dir=${1:?usage: scripts/real-node.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) -eq 0 ]] || { echo "the real node needs root (network namespace, Docker's engine, kubelet)" >&2; exit 1; }
"$root/scripts/debian-packages.sh"
TEST_CLUSTER_IMAGES=$("$root/scripts/node-images.sh")
export TEST_CLUSTER_IMAGES TEST_CLUSTER_REAL_NODE=true
exec "$root/scripts/cluster.sh" "$dir"
