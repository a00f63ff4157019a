#!/bin/sh
# The test node's WordPress entrypoint, written for this project, doing what the official image's entrypoint does
# before it runs Apache: copy the core into an empty /var/www/html (as the official one does, with tar as the
# current user), and write wp-config.php from wp-config-docker.php with fresh salts once WORDPRESS_DB_HOST is set.
set -eu
cd /var/www/html
if [ ! -e index.php ] && [ ! -e wp-includes/version.php ]; then
  echo "WordPress not found in $(pwd) - copying now..." >&2
  tar --create --file - --directory /usr/src/wordpress . | tar --extract --file -
  echo "Complete! WordPress has been successfully copied to $(pwd)" >&2
fi
if [ ! -s wp-config.php ] && [ -n "${WORDPRESS_DB_HOST:-}" ] && [ -s wp-config-docker.php ]; then
  echo "No 'wp-config.php' found in $(pwd), but 'WORDPRESS_...' variables supplied; copying 'wp-config-docker.php'" >&2
  umask 0027
  tmp=$(mktemp wp-config.XXXXXX)
  cp wp-config-docker.php "$tmp"
  # Each placeholder salt gets a value of its own.
  while grep -q 'put your unique phrase here' "$tmp"; do
    salt=$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')
    sed -i "0,/put your unique phrase here/s//$salt/" "$tmp"
  done
  mv "$tmp" wp-config.php
fi
exec "$@"
