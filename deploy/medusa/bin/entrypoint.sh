#!/bin/sh
# The Medusa image's entrypoint, and the one command the provisioner's pods give it:
#   entrypoint.sh start       the server or the worker, as MEDUSA_WORKER_MODE says, from .medusa/server
#   entrypoint.sh bootstrap   the store's bootstrap Job (bin/bootstrap.mjs)
#   entrypoint.sh ready       the worker's readiness probe: PostgreSQL and Redis answer (bin/ready.mjs)
# The application is the directory above this script: node_modules, bin/ and .medusa/server (`medusa build`).
set -eu
app=$(cd "$(dirname "$0")/.." && pwd)
export MEDUSA_DISABLE_TELEMETRY=true
case "${1:-}" in
  start)
    cd "$app/.medusa/server"
    exec node "$app/node_modules/@medusajs/cli/cli.js" start
    ;;
  bootstrap)
    exec node "$app/bin/bootstrap.mjs"
    ;;
  ready)
    exec node "$app/bin/ready.mjs"
    ;;
  *)
    echo "usage: entrypoint.sh start|bootstrap|ready (not \"${1:-}\")" >&2
    exit 64
    ;;
esac
