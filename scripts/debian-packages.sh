#!/usr/bin/env bash
# Installs the Debian packages the tests run for real: WordPress (core), PHP under Apache's mod_php, MariaDB,
# PostgreSQL and Redis (Medusa's database and queues), restic (the backup repository tool), curl, Go with grpc-go
# (one of the independent gRPC clients the tests hold the services to), and the real test node's runtime: Docker's engine, CNI plugins, iptables, conntrack,
# dnsmasq and debootstrap (for its images).
# Nothing is started or enabled: the tests run their own servers on loopback. Idempotent; needs root or sudo.
set -euo pipefail

PACKAGES=(
  apache2 libapache2-mod-php8.2 php8.2-cli php8.2-mysql
  mariadb-server mariadb-client
  postgresql redis-server restic
  wordpress curl
  golang-go golang-google-grpc-dev
  docker.io containerd runc containernetworking-plugins iptables conntrack dnsmasq-base debootstrap iproute2 procps
)

log() { printf 'debian-packages: %s\n' "$*" >&2; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  log "missing ${missing[*]} and this is not a Debian system: install them by hand"
  exit 1
fi

# Package scripts must not start the servers (there may be no init system, and the tests need none running).
policy=/usr/sbin/policy-rc.d
created_policy=false
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
  as_root chmod 0755 "$policy"
  created_policy=true
fi
cleanup() { if $created_policy; then as_root rm -f "$policy"; fi; }
trap cleanup EXIT

log "installing ${missing[*]}"
as_root apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
