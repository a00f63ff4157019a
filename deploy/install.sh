#!/usr/bin/env bash
# Installs store-platform on the cluster of the current kubeconfig, whatever made it: builds the platform's images
# from deploy/docker, puts them where the cluster's nodes find them, installs (or upgrades) the chart, waits until
# every Deployment is available, and prints the dashboard's address and a login token. `make up` runs it after making
# a kind cluster; the real-node test runs it against its own cluster. Running it again changes nothing that is already
# so: images are rebuilt from cache, the chart is upgraded in place, the token is kept.
#
# Usage: deploy/install.sh [options]
#   --kubeconfig FILE     the cluster (default: $KUBECONFIG, then ~/.kube/config)
#   --values FILE         chart values, repeatable (default: deploy/helm/store-platform/values-local.yaml)
#   --set KEY=VALUE       a chart value, repeatable
#   --load HOW            how the cluster gets the images built here:
#                           kind=NAME      kind load docker-image into kind cluster NAME (make up)
#                           docker=HOST    docker save here | docker load on the node's engine at HOST (unix://…)
#                           none           a registry the chart's images.registry names has them already
#   --build-arg NAME=VALUE  passed to every image build, repeatable (e.g. stand-ins for the Dockerfiles' bases:
#                         scripts/image-bases.sh, docs/images.md)
#   --build-network MODE  the network of the builds' RUN steps (e.g. host, for an engine with no bridge)
#   --third-party pull|skip  pull the database images the chart names and load them too (default: pull)
#   --tag TAG             the tag of the platform's own images (default: the chart's version); a new tag rolls them
#   --state DIR           where the login token is kept (default: .dev/install)
#   --images-only         build the images and stop (e.g. to build ahead of time; the next install finds them cached)
#   --dashboard URL       the dashboard's address to print (default: http://dashboard.localhost)
# DOCKER_HOST chooses the engine images are built on (default: the local one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

namespace=store-platform
version=0.1.0
chart=deploy/helm/store-platform
values=()
sets=()
build_args=()
load=""
third_party=pull
state="$root/.dev/install"
dashboard=http://dashboard.localhost
images_only=false
while (($#)); do
  case $1 in
    --kubeconfig) export KUBECONFIG=$2; shift 2 ;;
    --values) values+=(-f "$2"); shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    --load) load=$2; shift 2 ;;
    --build-arg) build_args+=(--build-arg "$2"); shift 2 ;;
    --build-network) build_args+=(--network "$2"); shift 2 ;;
    --third-party) third_party=$2; shift 2 ;;
    --tag) version=$2; shift 2 ;;
    --images-only) images_only=true; shift ;;
    --state) state=$2; shift 2 ;;
    --dashboard) dashboard=$2; shift 2 ;;
    *) echo "install.sh: unknown option $1 (see the comment at its top)" >&2; exit 2 ;;
  esac
done
((${#values[@]})) || values=(-f "$chart/values-local.yaml")
case $images_only:$load in
  true:* | false:kind=?* | false:docker=?* | false:none) ;;
  *) echo "install.sh: --load kind=NAME, docker=HOST or none" >&2; exit 2 ;;
esac
tools=(docker)
$images_only || tools+=(helm kubectl)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "install.sh needs $tool" >&2; exit 1; }
done

echo "==> images" >&2
# BuildKit builds them (the Dockerfiles' cache mounts need it); Docker 23 and later use it by default.
export DOCKER_BUILDKIT=1
built=()
build() { # build TAG DOCKERFILE [TARGET]
  local tag=$1 file=$2 target=${3:-}
  docker build "${build_args[@]}" ${target:+--target "$target"} -f "$file" -t "$tag" .
  built+=("$tag")
}
build "store-platform/provisioner:$version" deploy/docker/Dockerfile provisioner
build "store-platform/status:$version" deploy/docker/Dockerfile status
build "store-platform/gateway:$version" deploy/docker/Dockerfile gateway
build store-platform/medusa:2.21.2 deploy/docker/medusa/Dockerfile
build store-platform/medusa-storefront:2.21.2 deploy/docker/medusa-storefront/Dockerfile
# The WordPress image downloads WordPress, WooCommerce and WP-CLI, and the database images come from Docker Hub; a
# cluster whose nodes have images of their own for them names those (--set images.wordpress=…, images.mariadb=…,
# images.postgres=…, images.redis=…) with --third-party skip.
if [[ $third_party == pull ]]; then
  build store-platform/wordpress:6.8-wc9.9 deploy/docker/wordpress/Dockerfile
  for image in mariadb:11.4 postgres:17.6-bookworm redis:7.4-bookworm; do
    docker pull "$image"
    built+=("$image")
  done
fi

$images_only && exit 0

echo "==> images into the cluster ($load)" >&2
case $load in
  kind=*)
    for image in "${built[@]}"; do
      kind load docker-image --name "${load#kind=}" "$image"
    done
    ;;
  docker=*)
    # Only what the node's engine lacks, or has in another build.
    host=${load#docker=}
    missing=()
    for image in "${built[@]}"; do
      [[ $(docker --host "$host" image inspect --format '{{.Id}}' "$image" 2>/dev/null) == \
         "$(docker image inspect --format '{{.Id}}' "$image")" ]] || missing+=("$image")
    done
    if ((${#missing[@]})); then
      docker save "${missing[@]}" | docker --host "$host" load
    fi
    ;;
esac

echo "==> login token" >&2
mkdir -p "$state"
token_file="$state/token"
if [[ ! -s $token_file ]]; then
  (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$token_file")
fi
token=$(cat "$token_file")
hash=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
kubectl get namespace "$namespace" >/dev/null 2>&1 || kubectl create namespace "$namespace" >/dev/null
tokens="admin local $hash admin"
before=$(kubectl -n "$namespace" get secret store-platform-tokens -o jsonpath='{.data.tokens}' 2>/dev/null || true)
token_changed=false
if [[ $before != "$(printf %s "$tokens" | base64 -w0)" ]]; then
  kubectl -n "$namespace" create secret generic store-platform-tokens --from-literal=tokens="$tokens" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  [[ -n $before ]] && token_changed=true
fi

echo "==> chart" >&2
helm upgrade --install store-platform "$chart" --namespace "$namespace" "${values[@]}" --set "images.tag=$version" \
  "${sets[@]}" \
  --wait --timeout 300s
# A running gateway sees a changed token only when the kubelet next refreshes its mounted Secret (a minute or more):
# it is restarted instead, so the token printed below works as soon as this ends.
if $token_changed; then
  kubectl -n "$namespace" rollout restart deployment/gateway >/dev/null
fi
for deployment in provisioner status gateway; do
  kubectl -n "$namespace" rollout status "deployment/$deployment" --timeout=300s
done

cat <<MSG

store-platform is installed and healthy.

  Dashboard:  $dashboard
  Token:      $token   (an administrator of tenant "local"; kept in $token_file)
MSG
