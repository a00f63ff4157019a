#!/bin/sh
# The test node's PostgreSQL entrypoint, written for this project: the environment contract of the official image
# that Medusa stores run (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA; the server on 5432 for every
# address, scram-sha-256 over TCP). On an empty data directory it initialises the cluster with that superuser and
# password and creates the database; then it runs the command (`postgres`). The password goes to initdb in a file
# only it can read, removed at once, never on a command line.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}

if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  echo "initializing the database in $PGDATA" >&2
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  printf '%s\n' "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$database" != postgres ]; then
    postgres -D "$PGDATA" -c listen_addresses='' -k /var/run/postgresql &
    server=$!
    tries=0
    until pg_isready -h /var/run/postgresql -U "$user" -d postgres >/dev/null 2>&1; do
      tries=$((tries + 1))
      [ "$tries" -lt 300 ] || { echo "the server did not start" >&2; exit 1; }
      kill -0 "$server" 2>/dev/null || { echo "the server exited during initialization" >&2; exit 1; }
      sleep 0.1
    done
    psql -h /var/run/postgresql -U "$user" -d postgres -v ON_ERROR_STOP=1 -q \
      -c "CREATE DATABASE \"$database\"" >/dev/null
    kill -INT "$server"
    wait "$server" || true
  fi
  echo "database initialized" >&2
fi

if [ "${1:-}" = postgres ]; then
  shift
  exec postgres -D "$PGDATA" -c listen_addresses='*' -k /var/run/postgresql "$@"
fi
exec "$@"
