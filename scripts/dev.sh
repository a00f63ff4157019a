#!/usr/bin/env bash
# Runs the platform on this machine: the local control plane with the simulated kubelet, then the provisioner,
# the status service and the gateway on localhost. Ctrl-C stops everything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/tools.sh
scripts/web.sh
cargo build --workspace --bins --locked
cluster_dir="$root/.dev/cluster"
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  kill "$(cat "$cluster_dir.pid" 2>/dev/null)" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
echo "==> starting the local control plane (the first run builds Kubernetes: about 10 minutes)"
scripts/cluster.sh "$cluster_dir" >/dev/null
export KUBECONFIG="$cluster_dir/kubeconfig" LOG_FORMAT=${LOG_FORMAT:-pretty}

GRPC_ADDR=127.0.0.1:50051 METRICS_ADDR=127.0.0.1:9090 target/debug/provisioner & pids+=($!)
GRPC_ADDR=127.0.0.1:50052 METRICS_ADDR=127.0.0.1:9091 target/debug/status & pids+=($!)
# A development API token: a fresh random one per run, printed below; the gateway is given only its SHA-256.
mkdir -p "$root/.dev"
token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf 'developer dev %s admin\n' "$(printf %s "$token" | sha256sum | cut -d' ' -f1)" > "$root/.dev/tokens"
HTTP_ADDR=127.0.0.1:8080 METRICS_ADDR=127.0.0.1:9092 WEB_ROOT="$root/web/dist" TOKENS_FILE="$root/.dev/tokens" \
  PROVISIONER_URL=http://127.0.0.1:50051 STATUS_URL=http://127.0.0.1:50052 target/debug/gateway & pids+=($!)

buf="$root/tools/node_modules/.bin/buf"
cat <<MSG

store-platform is running:
  provisioner  127.0.0.1:50051  (gRPC)
  status       127.0.0.1:50052  (gRPC)
  gateway      http://127.0.0.1:8080  (dashboard, gRPC-web, gRPC)
  kubeconfig   $KUBECONFIG

  API token (development, an administrator of tenant "dev"; new each run):
    $token

Try:
  $buf curl --protocol grpc --http2-prior-knowledge --list-methods http://127.0.0.1:50051
  $buf curl --protocol grpc --http2-prior-knowledge -H 'x-store-platform-tenant: acme' \\
      -d '{"store_id":"shoes","display_name":"Shoes","engine":"ENGINE_WOOCOMMERCE","admin_email":"owner@example.com"}' \\
      http://127.0.0.1:50051/store_platform.v1.ProvisionerService/CreateStore
  $buf curl --protocol grpcweb -H "authorization: Bearer $token" -d '{}' \\
      http://127.0.0.1:8080/store_platform.v1.ProvisionerService/ListStores
  grpcurl -plaintext 127.0.0.1:50052 list
  KUBECONFIG=$KUBECONFIG kubectl get ns -l app.kubernetes.io/managed-by=store-platform -L store-platform.io/phase
  curl -s http://127.0.0.1:9090/metrics

Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
