#!/bin/sh
# The test node's Redis entrypoint, written for this project: what the official image that Medusa stores run does to
# its command. That image is built with protected mode off (otherwise a Redis without a password refuses every
# client but loopback, and the store's server and worker reach it through its Service), so `redis-server` gets
# `--protected-mode no` here; anything else runs as given.
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
