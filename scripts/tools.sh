#!/usr/bin/env bash
# Installs the tools the build and tests use, from package registries only:
#   tools/node_modules  npm packages from tools/package.json (buf);
#   tools/.venv         PyPI packages from tools/requirements.txt (shellcheck).
set -euo pipefail
cd "$(dirname "$0")/../tools"

if [[ ! -x node_modules/.bin/buf || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

if [[ ! -x .venv/bin/shellcheck || requirements.txt -nt .venv/installed ]]; then
  if ! python3 -m venv .venv >/dev/null 2>&1; then
    # Debian's system Python keeps venv in a package of its own.
    sudo_if_needed() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq python3-venv >&2
    rm -rf .venv
    python3 -m venv .venv
  fi
  .venv/bin/pip install --quiet --disable-pip-version-check --only-binary=:all: -r requirements.txt >&2
  touch .venv/installed
fi
