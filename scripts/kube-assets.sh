#!/usr/bin/env bash
# Provides etcd, kube-apiserver, kube-controller-manager and kube-scheduler (the control plane) and kubelet and
# kube-proxy (the real node's) in one directory and prints that directory.
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS, when it already holds all of them (the envtest convention);
#   2. the per-machine cache ($XDG_CACHE_HOME or ~/.cache)/store-platform/kube-v1.20.2/bin;
#   3. on Debian: build Kubernetes 1.20.2 from Debian's source package (no download site for Kubernetes is needed),
#      with etcd from the etcd-server package;
#   4. elsewhere: the official release binaries.
# Progress goes to stderr; the only thing on stdout is the directory.
set -euo pipefail

KUBE_VERSION=v1.20.2
DEBIAN_SOURCE_VERSION=1.20.5+really1.20.2-1.1+deb12u1
ETCD_VERSION=v3.4.13
# Bump when the build recipe changes, so caches built by an older recipe are rebuilt.
RECIPE=3
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

log() { printf 'kube-assets: %s\n' "$*" >&2; }

has_all() {
  local dir=$1 b
  for b in "${BINARIES[@]}"; do [[ -x "$dir/$b" ]] || return 1; done
}

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && has_all "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/store-platform"
out="$cache_root/kube-$KUBE_VERSION-r$RECIPE/bin"
if has_all "$out"; then
  echo "$out"
  exit 0
fi

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

build_from_debian_source() {
  local work="$cache_root/build-$KUBE_VERSION"
  local sources=/etc/apt/sources.list.d/store-platform-deb-src.sources
  if [[ ! -f $sources ]]; then
    log "adding deb-src entries derived from the machine's debian.sources"
    sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | as_root tee "$sources" >/dev/null
  fi
  log "installing build dependencies (golang-1.19-go, rsync, etcd-server, dpkg-dev, patched json libraries)"
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    golang-1.19-go rsync etcd-server dpkg-dev make \
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev >&2

  rm -rf "$work"
  mkdir -p "$work"
  log "fetching the kubernetes source package $DEBIAN_SOURCE_VERSION"
  (cd "$work" && apt-get source -qq "kubernetes=$DEBIAN_SOURCE_VERSION" >&2)
  local src
  src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
  [[ -n $src ]] || { log "source tree not found under $work"; exit 1; }

  # Kubernetes 1.20 vendors reflect2 1.0.1 and json-iterator 1.1.10, which break under Go >= 1.18 (the API server
  # panics intermittently on JSON bodies). Debian ships fixed versions of both; build against those.
  log "replacing vendored reflect2 and json-iterator with Debian's fixed versions"
  local gocode=/usr/share/gocode/src
  rm -rf "$src/vendor/github.com/modern-go/reflect2" "$src/vendor/github.com/json-iterator/go"
  cp -rL "$gocode/github.com/modern-go/reflect2" "$src/vendor/github.com/modern-go/reflect2"
  cp -rL "$gocode/github.com/json-iterator/go" "$src/vendor/github.com/json-iterator/go"
  find "$src/vendor/github.com/modern-go/reflect2" "$src/vendor/github.com/json-iterator/go" \
    -name '*_test.go' -delete

  # Root on the machines this project is tested on lacks CAP_SYS_RESOURCE, so the kernel refuses a negative
  # oom_score_adj, and runc then fails every container that asks for one ("can't get final child's PID from pipe").
  # dockershim asks -998 for every pod sandbox and -997 for Guaranteed and critical pods; this kubelet asks 0.
  # Everything else about out-of-memory handling (limits, the kernel's OOM killer) is unchanged.
  log "patching kubelet: pod sandboxes and Guaranteed pods get oom_score_adj 0 instead of a negative one"
  sed -i 's/^\(\s*defaultSandboxOOMAdj int = \)-998$/\10/' "$src/pkg/kubelet/dockershim/docker_sandbox.go"
  sed -i 's/^\(\s*\)return guaranteedOOMScoreAdj$/\1return 0/' "$src/pkg/kubelet/qos/policy.go"
  grep -q 'defaultSandboxOOMAdj int = 0$' "$src/pkg/kubelet/dockershim/docker_sandbox.go" &&
    [[ $(grep -c 'return 0$' "$src/pkg/kubelet/qos/policy.go") -eq 2 ]] ||
    { log "the kubelet patch no longer applies"; exit 1; }

  export PATH="/usr/lib/go-1.19/bin:$PATH"
  export GOFLAGS='' GOCACHE="$cache_root/go-build-cache" CGO_ENABLED=0 GO111MODULE=off
  export KUBE_GIT_VERSION=$KUBE_VERSION KUBE_GIT_TREE_STATE=clean
  log "generating OpenAPI and deepcopy code (make generated_files)"
  (cd "$src" && make generated_files >&2)

  local gopath="$work/gopath"
  mkdir -p "$gopath/src/k8s.io"
  ln -sfn "$src" "$gopath/src/k8s.io/kubernetes"
  # The version lives twice: component-base (what `--version` prints) and client-go (what /version serves).
  local ldflags="-s -w" pkg build_date
  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for pkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
  done
  mkdir -p "$work/bin"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    log "building $cmd"
    (cd "$gopath/src/k8s.io/kubernetes" && GOPATH="$gopath" go build -ldflags "$ldflags" -o "$work/bin/$cmd" "./cmd/$cmd" >&2)
  done
  cp /usr/bin/etcd "$work/bin/etcd"
  mkdir -p "$(dirname "$out")"
  rm -rf "$out"
  mv "$work/bin" "$out"
  rm -rf "$work"
}

download_release() {
  local arch os tmp
  os=$(uname -s | tr '[:upper:]' '[:lower:]')
  case $(uname -m) in
    x86_64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) log "unsupported architecture $(uname -m)"; exit 1 ;;
  esac
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$tmp/bin"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    log "downloading $cmd $KUBE_VERSION"
    curl -fsSL -o "$tmp/bin/$cmd" "https://dl.k8s.io/release/$KUBE_VERSION/bin/$os/$arch/$cmd"
    chmod +x "$tmp/bin/$cmd"
  done
  log "downloading etcd $ETCD_VERSION"
  curl -fsSL "https://github.com/etcd-io/etcd/releases/download/$ETCD_VERSION/etcd-$ETCD_VERSION-$os-$arch.tar.gz" |
    tar -xz -C "$tmp" --strip-components=1 "etcd-$ETCD_VERSION-$os-$arch/etcd"
  mv "$tmp/etcd" "$tmp/bin/etcd"
  mkdir -p "$(dirname "$out")"
  rm -rf "$out"
  mv "$tmp/bin" "$out"
}

if [[ -f /etc/debian_version && -f /etc/apt/sources.list.d/debian.sources ]] && command -v apt-get >/dev/null; then
  build_from_debian_source
else
  download_release
fi
has_all "$out" || { log "binaries missing in $out"; exit 1; }
# Binaries of an older recipe are never used again.
find "$cache_root" -mindepth 1 -maxdepth 1 -type d -name 'kube-v*' ! -path "$(dirname "$out")" -exec rm -rf {} +
log "control plane binaries ready in $out"
echo "$out"
