#!/usr/bin/env bash
# Builds, once per machine, stand-ins for the public base images the Dockerfiles of deploy/docker build FROM (Docker
# Hub and gcr.io are out of reach here), into the Docker engine DOCKER_HOST names, and prints the `--build-arg`
# options that point the Dockerfiles at them, one per line. Each stand-in is made from what is reachable: Debian's
# packages, this machine's Rust toolchain, Node.js and npm from the npm registry. Its tag is the public image's, under
# store-platform-base/, read from the Dockerfiles' ARG defaults, so the two never drift apart. How each differs from
# the image it stands in for: docs/images.md. Needs root and debootstrap.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
SUITE=bookworm
cache="${XDG_CACHE_HOME:-$HOME/.cache}/store-platform"
log() { printf 'image-bases: %s\n' "$*" >&2; }
[[ $(id -u) -eq 0 ]] || { log "needs root (debootstrap, chroot)"; exit 1; }

# The default of build argument $1 in the Dockerfiles (the same in each that has it).
default_of() {
  local values
  values=$(grep -h "^ARG $1=" "$root"/deploy/docker/Dockerfile "$root"/deploy/docker/*/Dockerfile | cut -d= -f2- | sort -u)
  [[ $(wc -l <<<"$values") -eq 1 && -n $values ]] || { log "ARG $1 differs between Dockerfiles: $values"; exit 1; }
  printf %s "$values"
}
node_image=$(default_of NODE_IMAGE)
rust_image=$(default_of RUST_IMAGE)
runtime_image=$(default_of RUNTIME_IMAGE)
restic_image=$(default_of RESTIC_IMAGE)
stand_in() { printf 'store-platform-base/%s' "${1//\//-}"; }

mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
debs="$cache/image-bases-debs"
mkdir -p "$debs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The machine's own certificate authorities, so that builds reach the registries through whatever this machine trusts.
ca_bundle=/etc/ssl/certs/ca-certificates.crt

# A minimal Debian with `packages`, services never started.
rootfs() {
  local dir=$1
  shift
  mkdir -p "$dir/usr/sbin"
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 0755 "$dir/usr/sbin/policy-rc.d"
  debootstrap --variant=minbase --cache-dir="$debs" --include="$(IFS=,; echo "$*")" "$SUITE" "$dir" "$mirror" \
    >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  rm -f "$dir/usr/sbin/policy-rc.d"
  install -m 0644 "$ca_bundle" "$dir/etc/ssl/certs/ca-certificates.crt"
}

# Imports root filesystem `dir` as `image` with Dockerfile instructions `changes` (one per line), labelled with
# `recipe`; does nothing when the engine has the image with that recipe already.
import() {
  local image=$1 dir=$2 recipe=$3 changes=$4 args=()
  while IFS= read -r line; do
    [[ -n $line ]] && args+=(--change "$line")
  done <<<"$changes"
  tar --numeric-owner -C "$dir" -c . | docker import "${args[@]}" --change "LABEL store-platform.recipe=$recipe" - "$image" >/dev/null
  log "$image ready"
}
have() { # have IMAGE RECIPE: the engine has IMAGE, made by RECIPE
  [[ $(docker image inspect --format '{{ index .Config.Labels "store-platform.recipe" }}' "$1" 2>/dev/null) == "$2" ]]
}
# What goes into a stand-in: the function that makes it, the helpers it uses, the machine's certificate authorities,
# and `inputs` (the public image it stands in for, versions).
recipe_of() { { declare -f "$1" rootfs import; cat "$ca_bundle"; printf '%s\n' "${@:2}"; } | sha256sum | cut -c1-16; }

# --- Node.js: node:<version>-bookworm-slim. Debian's root filesystem, Node.js from the npm registry (the same build
# scripts/medusa.sh tests with), npm from the npm registry, the user node (1000:1000) ---
node_base() {
  local dir=$work/node version=$1
  rootfs "$dir" ca-certificates
  install -m 0755 "$("$root/scripts/node.sh" "$version")" "$dir/usr/local/bin/node"
  (cd "$work" && npm pack --silent "npm@10" >/dev/null)
  mkdir -p "$dir/usr/local/lib/node_modules/npm"
  tar -xzf "$work"/npm-*.tgz --strip-components=1 -C "$dir/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dir/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dir/usr/local/bin/npx"
  chroot "$dir" sh -ec 'groupadd -g 1000 node && useradd -u 1000 -g 1000 -d /home/node -m -s /bin/sh node'
  import "$(stand_in "$node_image")" "$dir" "$recipe" "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV NODE_VERSION=$version
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD [\"node\"]"
  rm -rf "$dir" "$dir.log"
}
node_version=${node_image#node:}
node_version=${node_version%%-*}
recipe=$(recipe_of node_base "$node_image")
have "$(stand_in "$node_image")" "$recipe" || node_base "$node_version"

# --- Rust: rust:<version>-bookworm. Debian's root filesystem with the compilers and headers the official image's
# buildpack-deps base has for our build, and this machine's Rust toolchain where the official image keeps its own ---
rust_base() {
  local dir=$work/rust toolchain
  toolchain=$(rustc --print sysroot)
  rootfs "$dir" ca-certificates build-essential pkg-config libssl-dev git curl
  mkdir -p "$dir/usr/local/rustup/toolchains" "$dir/usr/local/cargo/bin"
  cp -a "$toolchain" "$dir/usr/local/rustup/toolchains/$(basename "$toolchain")"
  rm -rf "$dir/usr/local/rustup/toolchains/$(basename "$toolchain")/share/doc"
  for tool in cargo rustc rustdoc; do
    ln -s "../../rustup/toolchains/$(basename "$toolchain")/bin/$tool" "$dir/usr/local/cargo/bin/$tool"
  done
  import "$(stand_in "$rust_image")" "$dir" "$recipe" "ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV RUSTUP_HOME=/usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo
ENV RUST_VERSION=$(rustc --version | cut -d' ' -f2)"
  rm -rf "$dir" "$dir.log"
}
rust_version=${rust_image#rust:}
rust_version=${rust_version%%-*}
[[ $(rustc --version | cut -d' ' -f2) == "$rust_version".* ]] ||
  { log "this machine's Rust is $(rustc --version), the Dockerfile's $rust_version"; exit 1; }
recipe=$(recipe_of rust_base "$rust_image" "$(rustc --version)")
have "$(stand_in "$rust_image")" "$recipe" || rust_base

# --- the services' runtime: gcr.io/distroless/cc-debian12:nonroot. Debian's C and C++ runtime, OpenSSL, time zones
# and certificate authorities unpacked with no package manager and no shell; nonroot is 65532 ---
runtime_base() {
  local dir=$work/runtime deb
  mkdir -p "$dir" "$work/runtime-debs"
  (cd "$work/runtime-debs" && apt-get download -qq -o APT::Sandbox::User=root libc6 libgcc-s1 libgomp1 libstdc++6 libssl3 tzdata \
    ca-certificates netbase >/dev/null)
  for deb in "$work"/runtime-debs/*.deb; do
    dpkg-deb -x "$deb" "$dir"
  done
  rm -rf "${dir:?}/usr/share/doc" "${dir:?}/usr/share/man" "${dir:?}/usr/share/lintian" "${dir:?}/usr/sbin" "${dir:?}/usr/bin"
  mkdir -p "$dir/etc/ssl/certs" "$dir/home/nonroot" "$dir/tmp"
  install -m 0644 "$ca_bundle" "$dir/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$dir/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$dir/etc/group"
  chown 65532:65532 "$dir/home/nonroot"
  chmod 1777 "$dir/tmp"
  import "$(stand_in "$runtime_image")" "$dir" "$recipe" "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532
WORKDIR /home/nonroot"
  rm -rf "$dir"
}
recipe=$(recipe_of runtime_base "$runtime_image")
have "$(stand_in "$runtime_image")" "$recipe" || runtime_base

# --- restic: restic/restic:<version>. Debian's restic (0.14) at /usr/bin/restic, on Debian's root filesystem ---
restic_base() {
  local dir=$work/restic
  rootfs "$dir" ca-certificates restic
  import "$(stand_in "$restic_image")" "$dir" "$recipe" "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENTRYPOINT [\"/usr/bin/restic\"]"
  rm -rf "$dir" "$dir.log"
}
recipe=$(recipe_of restic_base "$restic_image")
have "$(stand_in "$restic_image")" "$recipe" || restic_base

for arg in NODE_IMAGE RUST_IMAGE RUNTIME_IMAGE RESTIC_IMAGE; do
  image=$(default_of "$arg")
  printf -- '--build-arg=%s=%s\n' "$arg" "$(stand_in "$image")"
done
