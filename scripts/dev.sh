#!/usr/bin/env bash
# Runs the platform on this machine: the local control plane with the simulated kubelet, then the provisioner,
# the status service and the gateway on localhost. Ctrl-C stops everything.
#
# Ports (environment variables, with their defaults):
#   DEV_GATEWAY_PORT=8080 DEV_PROVISIONER_PORT=50051 DEV_STATUS_PORT=50052
#   DEV_PROVISIONER_METRICS_PORT=9090 DEV_STATUS_METRICS_PORT=9091 DEV_GATEWAY_METRICS_PORT=9092
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

host=127.0.0.1
gateway_port=${DEV_GATEWAY_PORT:-8080}
provisioner_port=${DEV_PROVISIONER_PORT:-50051}
status_port=${DEV_STATUS_PORT:-50052}
provisioner_metrics=${DEV_PROVISIONER_METRICS_PORT:-9090}
status_metrics=${DEV_STATUS_METRICS_PORT:-9091}
gateway_metrics=${DEV_GATEWAY_METRICS_PORT:-9092}

# Every port must be free before anything starts: say which one is not, and how to choose another.
taken=()
for entry in "DEV_GATEWAY_PORT=$gateway_port" "DEV_PROVISIONER_PORT=$provisioner_port" \
  "DEV_STATUS_PORT=$status_port" "DEV_PROVISIONER_METRICS_PORT=$provisioner_metrics" \
  "DEV_STATUS_METRICS_PORT=$status_metrics" "DEV_GATEWAY_METRICS_PORT=$gateway_metrics"; do
  port=${entry#*=}
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    taken+=("$entry")
  fi
done
if ((${#taken[@]} > 0)); then
  for entry in "${taken[@]}"; do
    echo "make dev: port ${entry#*=} on $host is taken by another program; choose another with ${entry%=*}=<port>" >&2
  done
  exit 1
fi

scripts/tools.sh
scripts/web.sh
cargo build --workspace --bins --locked
cluster_dir="$root/.dev/cluster"
pids=()
stop() {
  trap - INT TERM EXIT
  # The token renewal loop's sleep is a child of its subshell: stop both.
  for pid in "${pids[@]}"; do pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  kill "$(cat "$cluster_dir.pid" 2>/dev/null)" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
echo "==> starting the local control plane (the first run builds Kubernetes: about 10 minutes)"
scripts/cluster.sh "$cluster_dir" >/dev/null
export KUBECONFIG="$cluster_dir/kubeconfig" LOG_FORMAT=${LOG_FORMAT:-pretty}
dev="$root/.dev"
mkdir -p "$dev"

# Callers of the provisioner and the status service, as in the chart: the gateway, and an operator for grpcurl and
# buf curl. Each is a ServiceAccount with a token for the platform's audience (TokenRequest: kubectl create token),
# renewed every hour while this runs; the caller policy says what each may claim.
kubectl="$root/tools/bin/kubectl"
"$kubectl" create namespace store-platform --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
for account in gateway operator; do
  "$kubectl" -n store-platform create serviceaccount "$account" --dry-run=client -o yaml |
    "$kubectl" apply -f - >/dev/null
done
cat >"$dev/callers.json" <<'JSON'
{"callers": [
  {"serviceAccount": "store-platform/gateway", "anyTenant": true, "allTenantsScope": true},
  {"serviceAccount": "store-platform/operator", "anyTenant": true, "allTenantsScope": true}
]}
JSON
issue_tokens() {
  local account
  for account in gateway operator; do
    (umask 077 && "$kubectl" -n store-platform create token "$account" --audience store-platform \
      --duration 2h >"$dev/$account.token.new") && mv "$dev/$account.token.new" "$dev/$account.token"
  done
}
issue_tokens
(while sleep 3600; do issue_tokens; done) & pids+=($!)
export CALLER_POLICY="$dev/callers.json"

GRPC_ADDR=$host:$provisioner_port METRICS_ADDR=$host:$provisioner_metrics target/debug/provisioner & pids+=($!)
GRPC_ADDR=$host:$status_port METRICS_ADDR=$host:$status_metrics target/debug/status & pids+=($!)
# A development API token: a fresh random one per run, printed below; the gateway is given only its SHA-256.
token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf 'developer dev %s admin\n' "$(printf %s "$token" | sha256sum | cut -d' ' -f1)" > "$dev/tokens"
HTTP_ADDR=$host:$gateway_port METRICS_ADDR=$host:$gateway_metrics WEB_ROOT="$root/web/dist" \
  TOKENS_FILE="$dev/tokens" BACKEND_TOKEN_FILE="$dev/gateway.token" PROVISIONER_URL=http://$host:$provisioner_port \
  STATUS_URL=http://$host:$status_port target/debug/gateway & pids+=($!)

# The banner only once every service answers: its health check for the gRPC servers, the dashboard for the gateway.
ready() {
  target/debug/grpc-health-check "$host:$provisioner_port" store_platform.v1.ProvisionerService >/dev/null 2>&1 &&
    target/debug/grpc-health-check "$host:$status_port" store_platform.v1.StatusService >/dev/null 2>&1 &&
    curl -sf -o /dev/null "http://$host:$gateway_port/"
}
for _ in $(seq 1 600); do
  ready && break
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "make dev: a service exited during start-up (its log is above)" >&2
      exit 1
    fi
  done
  sleep 0.1
done
ready || { echo "make dev: the services did not answer within 60 s (their logs are above)" >&2; exit 1; }

buf="$root/tools/node_modules/.bin/buf"
cat <<MSG

store-platform is running:
  provisioner  $host:$provisioner_port  (gRPC)
  status       $host:$status_port  (gRPC)
  gateway      http://$host:$gateway_port  (dashboard, gRPC-web, gRPC)
  kubeconfig   $KUBECONFIG

  API token for the dashboard and the gateway (development, an administrator of tenant "dev"; new each run):
    $token

  ServiceAccount token for calling the provisioner and the status service directly (store-platform/operator,
  may act for any tenant; renewed every hour in $dev/operator.token):
    $(cat "$dev/operator.token")

Try:
  $buf curl --protocol grpc --http2-prior-knowledge --list-methods http://$host:$provisioner_port
  $buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer \$(cat $dev/operator.token)" \\
      -H 'x-store-platform-tenant: acme' \\
      -d '{"store_id":"shoes","display_name":"Shoes","engine":"ENGINE_WOOCOMMERCE","admin_email":"owner@example.com"}' \\
      http://$host:$provisioner_port/store_platform.v1.ProvisionerService/CreateStore
  $buf curl --protocol grpcweb -H "authorization: Bearer $token" -d '{}' \\
      http://$host:$gateway_port/store_platform.v1.ProvisionerService/ListStores
  grpcurl -plaintext $host:$status_port list
  KUBECONFIG=$KUBECONFIG kubectl get ns -l app.kubernetes.io/managed-by=store-platform -L store-platform.io/phase
  curl -s http://$host:$provisioner_metrics/metrics

Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
