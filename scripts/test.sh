#!/usr/bin/env bash
# The whole test suite: installs what it needs (control-plane and node binaries, npm tools, Chromium, the Debian packages
# the real-software tests run, the real node's images, the Medusa backend), builds the services and the dashboard,
# starts one local control plane with a simulated kubelet and one cluster with a real node for the run, and runs every
# test against them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# The run needs tens of GB (builds, images, the real node's Docker data); what was free tells a failure from a full disk.
disk() { echo "==> disk $1:" >&2; df -h "${TMPDIR:-/tmp}" "$root" "$HOME" >&2 || true; }
disk "before the run"

echo "==> Debian packages run for real (WordPress, PHP, Apache, MariaDB, PostgreSQL, Redis, Docker's engine)" >&2
scripts/debian-packages.sh

# The platform's own images, as users build them (deploy/install.sh, from deploy/docker), in a Docker engine of this
# machine's that keeps its layers between runs, from stand-ins for their Docker Hub bases (docs/images.md). They build
# in the background while the rest is prepared; the platform test installs them on the real node.
echo "==> the platform's images, in the background (scripts/build-engine.sh, image-bases.sh, deploy/install.sh)" >&2
engine_dir="${TMPDIR:-/tmp}/store-platform-build-engine-$$"
# shellcheck disable=SC2329 # invoked by the EXIT trap
stop_engine() {
  local pid
  pid=$(cat "$engine_dir.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  rm -rf "$engine_dir" "$engine_dir".{pid,log,bases,images.log}
}
trap stop_engine EXIT
STORE_PLATFORM_BUILD_ENGINE=$(scripts/build-engine.sh "$engine_dir")
STORE_PLATFORM_IMAGE_BASES="$engine_dir.bases"
export STORE_PLATFORM_BUILD_ENGINE STORE_PLATFORM_IMAGE_BASES
(
  # Debian's Docker CLI (scripts/debian-packages.sh): BuildKit is built into it.
  export DOCKER_HOST=$STORE_PLATFORM_BUILD_ENGINE PATH="/usr/bin:$PATH"
  scripts/image-bases.sh >"$STORE_PLATFORM_IMAGE_BASES"
  build_args=()
  while IFS= read -r line; do build_args+=(--build-arg "${line#--build-arg=}"); done <"$STORE_PLATFORM_IMAGE_BASES"
  # Not the WordPress image nor the databases' (out of reach here: the node has its own, docs/testing.md).
  deploy/install.sh --images-only --third-party skip --build-network host "${build_args[@]}"
) >"$engine_dir.images.log" 2>&1 &
images=$!

echo "==> control-plane binaries" >&2
KUBEBUILDER_ASSETS=$(scripts/kube-assets.sh)
export KUBEBUILDER_ASSETS
echo "==> npm tools" >&2
scripts/tools.sh
echo "==> dashboard and Chromium" >&2
scripts/web.sh --browser

echo "==> the Medusa backend (deploy/medusa: npm ci, medusa build)" >&2
STORE_PLATFORM_MEDUSA=$(scripts/medusa.sh)
export STORE_PLATFORM_MEDUSA
echo "==> the Medusa storefront (deploy/medusa-storefront)" >&2
scripts/storefront.sh

echo "==> build" >&2
cargo build --workspace --bins --tests --locked

echo "==> local control plane" >&2
cluster_dir="${TMPDIR:-/tmp}/store-platform-test-cluster-$$"
node_dir="${TMPDIR:-/tmp}/store-platform-test-node-$$"
# shellcheck disable=SC2329 # invoked by the EXIT trap
stop_clusters() {
  local status=$? dir pid node_pid="" left=()
  for dir in "$cluster_dir" "$node_dir"; do
    pid=$(cat "$dir.pid" 2>/dev/null) || continue
    [[ $dir == "$node_dir" ]] && node_pid=$pid
    kill "$pid" 2>/dev/null || true
    # The real node removes its containers, mounts, cgroups and network namespace before it exits.
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  done
  if [[ -n $node_pid ]]; then
    ip netns list 2>/dev/null | grep -q "^sp-node-$node_pid\b" && left+=("network namespace sp-node-$node_pid")
    grep -q " $node_dir/" /proc/self/mountinfo && left+=("mounts under $node_dir")
    compgen -G "/sys/fs/cgroup/*/sp-node-$node_pid" >/dev/null && left+=("cgroups sp-node-$node_pid")
    [[ -e $node_dir ]] && left+=("$node_dir")
    if ((${#left[@]})); then
      echo "the real node left behind: ${left[*]}" >&2
      status=1
    fi
  fi
  rm -f "$cluster_dir".{pid,ready,log} "$node_dir".{pid,ready,log}
  stop_engine
  exit "$status"
}
trap stop_clusters EXIT
STORE_PLATFORM_TEST_CLUSTER=$(scripts/cluster.sh "$cluster_dir")
export STORE_PLATFORM_TEST_CLUSTER
echo "==> real node (Docker's engine, kubelet, kube-proxy, CNI, DNS in a network namespace)" >&2
STORE_PLATFORM_TEST_REAL_NODE=$(scripts/real-node.sh "$node_dir")
export STORE_PLATFORM_TEST_REAL_NODE
export STORE_PLATFORM_BUF="$root/tools/node_modules/.bin/buf"

echo "==> the platform's images (waiting for the background build)" >&2
if ! wait "$images"; then
  tail -n 60 "$engine_dir.images.log" >&2
  echo "building the platform's images failed (above)" >&2
  exit 1
fi

# Two lanes side by side: the test binaries that use the real node (one at a time: they share it), and every other
# binary (the local control plane, real software on loopback). The real node's lane is mostly waiting for pods, so the
# two together take about as long as the longer one.
node_tests=(real_pods platform)
other_tests=()
for file in services/*/tests/*.rs test-support/tests/*.rs; do
  name=$(basename "$file" .rs)
  [[ " ${node_tests[*]} " == *" $name "* ]] || other_tests+=(--test "$name")
done
log="$cluster_dir.test.log"
node_log="$cluster_dir.node-tests.log"
echo "==> tests on the real node, in the background (${node_tests[*]})" >&2
set +e
cargo test --workspace --locked --no-fail-fast "${node_tests[@]/#/--test=}" "$@" >"$node_log" 2>&1 &
node_lane=$!
echo "==> the other tests" >&2
cargo test --workspace --lib --bins "${other_tests[@]}" --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo "==> tests on the real node (waiting for them)" >&2
wait "$node_lane"
node_status=$?
cat "$node_log" | tee -a "$log"
set -e
disk "after the tests"
# One closing line for the whole run (cargo prints one summary per test binary).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "total: %d passed, %d failed\n", passed, failed }' "$log"
rm -f "$log" "$node_log"
((status == 0 && node_status == 0))
