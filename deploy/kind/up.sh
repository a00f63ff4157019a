#!/usr/bin/env bash
# make up: the whole platform on kind on this machine. Needs Docker, kind, and kubectl and helm (taken from
# tools/bin, which scripts/tools.sh fills, when they are not on PATH). This part makes the kind cluster and its
# ingress controller; deploy/install.sh does the rest (images, chart, health, token). Running it again is harmless:
# it reuses the cluster, the images are rebuilt (cached), the chart is upgraded, and the login token is kept.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

cluster=store-platform
ingress_nginx=controller-v1.13.3
state="$root/.dev/kind"
mkdir -p "$state"

need() { command -v "$1" >/dev/null || { echo "make up needs $1 ($2)" >&2; exit 1; }; }
need docker "https://docs.docker.com/engine/install/"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
if ! command -v helm >/dev/null || ! command -v kubectl >/dev/null; then
  scripts/tools.sh
  PATH="$root/tools/bin:$PATH"
fi

echo "==> kind cluster $cluster" >&2
if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  kind create cluster --config deploy/kind/cluster.yaml --wait 120s
fi
kubectl config use-context "kind-$cluster" >/dev/null
(umask 077; kind get kubeconfig --name "$cluster" > "$state/kubeconfig")

echo "==> ingress-nginx ($ingress_nginx)" >&2
kubectl apply -f "https://raw.githubusercontent.com/kubernetes/ingress-nginx/$ingress_nginx/deploy/static/provider/kind/deploy.yaml" >/dev/null
kubectl -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout=300s

# Everything after "a cluster exists" is deploy/install.sh, which works against any kubeconfig.
deploy/install.sh --kubeconfig "$state/kubeconfig" --load "kind=$cluster" --state "$state" \
  --values deploy/helm/store-platform/values-local.yaml

cat <<MSG
  Stores:     http://<store>.localhost

store-platform runs on kind. make down removes the cluster.
MSG
