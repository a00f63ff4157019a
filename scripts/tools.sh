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
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check --only-binary=:all: -r requirements.txt >&2
  touch .venv/installed
fi
