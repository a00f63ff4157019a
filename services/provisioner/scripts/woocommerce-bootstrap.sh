#!/usr/bin/env bash
# Makes a fresh WordPress a WooCommerce shop a customer can buy from, then proves it.
#
# Runs as the store's bootstrap Job (uid 33, sharing WordPress's document root) and is idempotent: every step
# checks before it changes anything, so a retried Job, or a second run, converges on the same shop.
#
# Environment: WORDPRESS_DB_HOST (host:port), STORE_URL, STORE_HOST, STORE_TITLE, WP_ADMIN_USER,
# WP_ADMIN_PASSWORD, WP_ADMIN_EMAIL, WORDPRESS_SERVICE_URL; the WORDPRESS_DB_* variables for wp-config.php.
set -euo pipefail

: "${WORDPRESS_DB_HOST:?}" "${STORE_URL:?}" "${STORE_HOST:?}" "${STORE_TITLE:?}"
: "${WP_ADMIN_USER:?}" "${WP_ADMIN_PASSWORD:?}" "${WP_ADMIN_EMAIL:?}" "${WORDPRESS_SERVICE_URL:?}"

WP_PATH=${WP_PATH:-/var/www/html}
SAMPLE_SKU=${SAMPLE_SKU:-STORE-PLATFORM-SAMPLE}
DB_WAIT_SECONDS=${DB_WAIT_SECONDS:-300}

log() { printf 'bootstrap: %s\n' "$*"; }
fail() { printf 'bootstrap: FAILED: %s\n' "$*" >&2; exit 1; }
wpcli() { wp --path="$WP_PATH" --url="$STORE_URL" --skip-plugins=wordfence "$@"; }

wait_for_database() {
  local host=${WORDPRESS_DB_HOST%:*} port=${WORDPRESS_DB_HOST##*:} waited=0
  [[ $port == "$WORDPRESS_DB_HOST" ]] && port=3306
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    ((waited >= DB_WAIT_SECONDS)) && fail "database $host:$port unreachable after ${DB_WAIT_SECONDS}s"
    sleep 2
    waited=$((waited + 2))
  done
  log "database $host:$port reachable"
}

wait_for_wordpress_files() {
  # The WordPress container copies the core files into the shared volume on its first start.
  local waited=0
  until [[ -f $WP_PATH/wp-includes/version.php && -f $WP_PATH/wp-config.php ]]; do
    ((waited >= 120)) && fail "WordPress files missing in $WP_PATH"
    sleep 2
    waited=$((waited + 2))
  done
}

install_wordpress() {
  if wpcli core is-installed; then
    log "WordPress already installed"
  else
    wpcli core install --url="$STORE_URL" --title="$STORE_TITLE" --admin_user="$WP_ADMIN_USER" \
      --admin_password="$WP_ADMIN_PASSWORD" --admin_email="$WP_ADMIN_EMAIL" --skip-email
    log "WordPress installed"
  fi
}

activate_woocommerce() {
  if wpcli plugin is-active woocommerce; then
    log "WooCommerce already active"
  else
    wpcli plugin activate woocommerce
    log "WooCommerce activated"
  fi
}

set_option() {
  local name=$1 value=$2 current
  current=$(wpcli option get "$name" 2>/dev/null || true)
  if [[ $current != "$value" ]]; then
    wpcli option update "$name" "$value"
  fi
}

configure_shop() {
  wpcli wc tool run install_pages --user="$WP_ADMIN_USER" >/dev/null
  set_option woocommerce_coming_soon no
  set_option woocommerce_store_pages_only no
  set_option woocommerce_enable_guest_checkout yes
  set_option woocommerce_enable_checkout_login_reminder yes
  set_option woocommerce_onboarding_profile_completed yes
  set_option blogname "$STORE_TITLE"
  if [[ $(wpcli option get permalink_structure) != "/%postname%/" ]]; then
    wpcli rewrite structure '/%postname%/'
  fi
  wpcli rewrite flush
  log "shop pages, guest checkout, permalinks and coming-soon configured"
}

enable_gateway() {
  local gateway=$1
  if [[ $(wpcli wc payment_gateway get "$gateway" --field=enabled --user="$WP_ADMIN_USER") != "true" ]]; then
    wpcli wc payment_gateway update "$gateway" --enabled=true --user="$WP_ADMIN_USER" >/dev/null
    log "payment gateway $gateway enabled"
  fi
}

sample_product_id() {
  wpcli wc product list --sku="$SAMPLE_SKU" --field=id --user="$WP_ADMIN_USER" | head -n1
}

create_sample_product() {
  if [[ -n $(sample_product_id) ]]; then
    log "sample product exists"
    return
  fi
  wpcli wc product create --name="Sample product" --sku="$SAMPLE_SKU" --regular_price=19.99 --status=publish \
    --catalog_visibility=visible --description="A sample product: add it to the cart and check out." \
    --user="$WP_ADMIN_USER" >/dev/null
  log "sample product created"
}

verify() {
  wpcli plugin is-active woocommerce || fail "WooCommerce is not active"
  local id
  id=$(sample_product_id)
  [[ -n $id ]] || fail "the sample product does not exist"
  [[ $(wpcli wc product get "$id" --field=status --user="$WP_ADMIN_USER") == publish ]] ||
    fail "the sample product is not published"
  [[ $(wpcli wc product get "$id" --field=purchasable --user="$WP_ADMIN_USER") == true ]] ||
    fail "the sample product is not purchasable"
  [[ $(wpcli wc payment_gateway get cod --field=enabled --user="$WP_ADMIN_USER") == true ]] ||
    fail "cash on delivery is not enabled"
  local code
  code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Host: $STORE_HOST" "$WORDPRESS_SERVICE_URL/?post_type=product") ||
    fail "the storefront at $WORDPRESS_SERVICE_URL does not answer"
  [[ $code == 200 ]] || fail "the storefront answered HTTP $code"
  log "verified: WooCommerce active, sample product $id purchasable, cash on delivery on, storefront answers"
}

wait_for_database
wait_for_wordpress_files
install_wordpress
activate_woocommerce
configure_shop
enable_gateway cod
enable_gateway cheque
create_sample_product
verify
log "done"
