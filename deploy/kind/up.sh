#!/usr/bin/env bash
# make up: the whole platform on kind on this machine. Needs Docker, kind, and kubectl and helm (taken from
# tools/bin, which scripts/tools.sh fills, when they are not on PATH). Running it again is harmless: it reuses the
# cluster, the images are rebuilt (cached), the chart is upgraded, and the login token is kept.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

cluster=store-platform
namespace=store-platform
version=0.1.0
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

echo "==> ingress-nginx ($ingress_nginx)" >&2
kubectl apply -f "https://raw.githubusercontent.com/kubernetes/ingress-nginx/$ingress_nginx/deploy/static/provider/kind/deploy.yaml" >/dev/null
kubectl -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout=300s

echo "==> images" >&2
for service in provisioner status gateway; do
  docker build -f deploy/docker/Dockerfile --target "$service" -t "store-platform/$service:$version" .
done
docker build -f deploy/docker/wordpress/Dockerfile -t store-platform/wordpress:6.8-wc9.9 .
docker build -f deploy/docker/medusa/Dockerfile -t store-platform/medusa:2.21.2 .
docker build -f deploy/docker/medusa-storefront/Dockerfile -t store-platform/medusa-storefront:2.21.2 .
for image in mariadb:11.4 postgres:17.6-bookworm redis:7.4-bookworm; do
  docker pull "$image"
done
for image in store-platform/provisioner:$version store-platform/status:$version store-platform/gateway:$version \
  store-platform/wordpress:6.8-wc9.9 mariadb:11.4 store-platform/medusa:2.21.2 \
  store-platform/medusa-storefront:2.21.2 postgres:17.6-bookworm redis:7.4-bookworm; do
  kind load docker-image --name "$cluster" "$image"
done

echo "==> login token" >&2
token_file="$state/token"
if [[ ! -s $token_file ]]; then
  (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$token_file")
fi
token=$(cat "$token_file")
hash=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$namespace" create secret generic store-platform-tokens \
  --from-literal=tokens="admin local $hash admin" --dry-run=client -o yaml | kubectl apply -f - >/dev/null

echo "==> chart" >&2
helm upgrade --install store-platform deploy/helm/store-platform --namespace "$namespace" \
  -f deploy/helm/store-platform/values-local.yaml --wait --timeout 300s
for deployment in provisioner status gateway; do
  kubectl -n "$namespace" rollout status "deployment/$deployment" --timeout=300s
done

cat <<MSG

store-platform is running on kind.

  Dashboard:  http://dashboard.localhost
  Token:      $token   (an administrator of tenant "local"; kept in $token_file)
  Stores:     http://<store>.localhost

make down removes the cluster.
MSG
