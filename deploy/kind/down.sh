#!/usr/bin/env bash
# make down: removes the kind cluster of make up, and its login token.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if kind get clusters 2>/dev/null | grep -qx store-platform; then
  kind delete cluster --name store-platform
fi
rm -rf "$root/.dev/kind"
