#!/usr/bin/env bash
# The whole test suite: installs what it needs (control-plane binaries, npm tools, Chromium, the Debian packages the
# real-software tests run), builds the services and the dashboard, starts one local control plane for the run, and
# runs every test against it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

echo "==> control-plane binaries" >&2
KUBEBUILDER_ASSETS=$(scripts/kube-assets.sh)
export KUBEBUILDER_ASSETS
echo "==> npm tools" >&2
scripts/tools.sh
echo "==> dashboard and Chromium" >&2
scripts/web.sh --browser
echo "==> Debian packages run for real (WordPress, PHP, Apache, MariaDB)" >&2
scripts/debian-packages.sh

echo "==> build" >&2
cargo build --workspace --bins --tests --locked

echo "==> local control plane" >&2
cluster_dir="${TMPDIR:-/tmp}/store-platform-test-cluster-$$"
trap 'kill "$(cat "$cluster_dir.pid" 2>/dev/null)" 2>/dev/null || true; wait 2>/dev/null || true; rm -f "$cluster_dir".{pid,ready,log}' EXIT
STORE_PLATFORM_TEST_CLUSTER=$(scripts/cluster.sh "$cluster_dir")
export STORE_PLATFORM_TEST_CLUSTER
export STORE_PLATFORM_BUF="$root/tools/node_modules/.bin/buf"

echo "==> tests" >&2
log="$cluster_dir.test.log"
set +e
cargo test --workspace --lib --bins --tests --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one summary per test binary).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "total: %d passed, %d failed\n", passed, failed }' "$log"
rm -f "$log"
exit "$status"
