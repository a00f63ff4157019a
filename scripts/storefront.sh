#!/usr/bin/env bash
# Builds the Medusa storefront into deploy/medusa-storefront/dist as its image does: npm packages from its lockfile,
# type-checked, bundled by Vite. Its browser test (e2e/order.mjs) uses the playwright-core installed here.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/deploy/medusa-storefront"
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
npm run --silent build >&2
