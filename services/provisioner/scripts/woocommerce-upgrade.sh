#!/usr/bin/env bash
# A WooCommerce store's migrations to a new version, run by the upgrade's Job in the new version's image once its
# init container has put that version's WordPress core (and bundled WooCommerce) into the store's volume:
# WordPress's database update, then WooCommerce's. Both do nothing when nothing is pending, so a retried Job is
# harmless. The store's writers are stopped meanwhile; the bootstrap Job then checks that a customer can order.
#
# Environment: WORDPRESS_DB_HOST (host:port), STORE_URL and the WORDPRESS_DB_* variables of wp-config.php.
set -euo pipefail

: "${WORDPRESS_DB_HOST:?}" "${STORE_URL:?}"

WP_PATH=${WP_PATH:-/var/www/html}
DB_WAIT_SECONDS=${DB_WAIT_SECONDS:-300}

log() { printf 'upgrade: %s\n' "$*"; }
fail() { printf 'upgrade: FAILED: %s\n' "$*" >&2; exit 1; }
wpcli() { wp --path="$WP_PATH" --url="$STORE_URL" "$@"; }

host=${WORDPRESS_DB_HOST%:*} port=${WORDPRESS_DB_HOST##*:} waited=0
[[ $port == "$WORDPRESS_DB_HOST" ]] && port=3306
until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
  ((waited >= DB_WAIT_SECONDS)) && fail "database $host:$port unreachable after ${DB_WAIT_SECONDS}s"
  sleep 2
  waited=$((waited + 2))
done

[[ -f $WP_PATH/wp-config.php ]] || fail "no wp-config.php in $WP_PATH: the store was never started"
log "WordPress $(wpcli core version): updating its database"
wpcli core update-db || fail "wp core update-db failed"
if wpcli plugin is-active woocommerce; then
  log "WooCommerce $(wpcli plugin get woocommerce --field=version): updating its database"
  wpcli wc update || fail "wp wc update failed"
fi
log "done"
