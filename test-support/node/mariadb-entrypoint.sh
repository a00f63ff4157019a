#!/bin/sh
# The test node's MariaDB entrypoint, written for this project: the environment contract of the official image that
# stores run (MARIADB_ROOT_PASSWORD, MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD; data in /var/lib/mysql; the
# server on 3306 for every address). On an empty data directory it creates the system tables, sets the root
# password, and creates the database and its user; then it runs the command (`mariadbd`). Passwords go to the server
# on stdin, never on a command line.
set -eu
datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock

# A value inside single quotes in SQL.
quote() {
  printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"
}

if [ "${1:-}" = mariadbd ] && [ ! -d "$datadir/mysql" ]; then
  : "${MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD must be set}"
  echo "initializing the database in $datadir" >&2
  mariadb-install-db --datadir="$datadir" --skip-test-db --auth-root-authentication-method=normal >/dev/null
  mariadbd --datadir="$datadir" --skip-networking --socket="$socket" &
  server=$!
  tries=0
  until mariadb-admin --socket="$socket" -uroot ping >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || { echo "the server did not start" >&2; exit 1; }
    kill -0 "$server" 2>/dev/null || { echo "the server exited during initialization" >&2; exit 1; }
    sleep 0.1
  done
  {
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(quote "$MARIADB_ROOT_PASSWORD");"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY $(quote "$MARIADB_ROOT_PASSWORD");"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [ -n "${MARIADB_DATABASE:-}" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
    fi
    if [ -n "${MARIADB_USER:-}" ] && [ -n "${MARIADB_PASSWORD:-}" ]; then
      echo "CREATE USER $(quote "$MARIADB_USER")@'%' IDENTIFIED BY $(quote "$MARIADB_PASSWORD");"
      if [ -n "${MARIADB_DATABASE:-}" ]; then
        echo "GRANT ALL ON \`$MARIADB_DATABASE\`.* TO $(quote "$MARIADB_USER")@'%';"
      fi
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket="$socket" -uroot
  MYSQL_PWD=$MARIADB_ROOT_PASSWORD mariadb-admin --socket="$socket" -uroot shutdown
  wait "$server" || true
  echo "database initialized" >&2
fi

if [ "${1:-}" = mariadbd ]; then
  shift
  exec mariadbd --datadir="$datadir" --socket="$socket" --bind-address=0.0.0.0 --port=3306 --skip-name-resolve "$@"
fi
exec "$@"
