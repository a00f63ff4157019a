#!/usr/bin/env bash
# Makes a fresh WordPress a WooCommerce shop a customer can buy from, then proves it.
#
# Runs as the store's bootstrap Job (uid 33, sharing WordPress's document root) and is idempotent: every step
# reads before it writes, so a retried Job, or a second run, converges on the same shop and changes nothing.
#
# Environment: WORDPRESS_DB_HOST (host:port), STORE_URL, STORE_HOST, STORE_TITLE, WP_ADMIN_USER,
# WP_ADMIN_PASSWORD, WP_ADMIN_EMAIL, WORDPRESS_SERVICE_URL; the WORDPRESS_DB_* variables for wp-config.php;
# CLONED_FROM (the store a clone was made from) while a clone is provisioned.
#
# What WP-CLI prints is taken as it really is (tests/fixtures/wp-cli-2.12.0 holds recordings): a yes/no field prints
# PHP's echo of a boolean ("1" or an empty line) unless asked for JSON, so every yes/no read here uses
# --format=json and compares with "true".
set -euo pipefail

: "${WORDPRESS_DB_HOST:?}" "${STORE_URL:?}" "${STORE_HOST:?}" "${STORE_TITLE:?}"
: "${WP_ADMIN_USER:?}" "${WP_ADMIN_PASSWORD:?}" "${WORDPRESS_SERVICE_URL:?}"
# Empty only for a store whose record was rebuilt without it; a WordPress installed before needs none.
: "${WP_ADMIN_EMAIL?}"

WP_PATH=${WP_PATH:-/var/www/html}
SAMPLE_SKU=${SAMPLE_SKU:-STORE-PLATFORM-SAMPLE}
DB_WAIT_SECONDS=${DB_WAIT_SECONDS:-300}
FILES_WAIT_SECONDS=${FILES_WAIT_SECONDS:-120}
# The storefront check: each request may take this long, and transient failures are retried this often.
HTTP_TIMEOUT_SECONDS=${HTTP_TIMEOUT_SECONDS:-30}
HTTP_RETRIES=${HTTP_RETRIES:-5}
# WooCommerce's install lock older than this is taken to be left by an install that was killed (a whole install
# takes seconds); a younger one is waited for.
WC_INSTALL_LOCK_STALE_SECONDS=${WC_INSTALL_LOCK_STALE_SECONDS:-120}

log() { printf 'bootstrap: %s\n' "$*"; }
fail() { printf 'bootstrap: FAILED: %s\n' "$*" >&2; exit 1; }
wpcli() { wp --path="$WP_PATH" --url="$STORE_URL" "$@"; }
# A WooCommerce command, as the store's administrator.
wcli() { wpcli wc "$@" --user="$WP_ADMIN_USER"; }
# The value of option $1, or nothing if it does not exist.
option_value() { wpcli option get "$1" 2>/dev/null || true; }

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
  # WordPress's init container copies the core into the shared volume; its entrypoint then writes wp-config.php.
  local waited=0
  until [[ -f $WP_PATH/wp-includes/version.php && -f $WP_PATH/wp-config.php ]]; do
    ((waited >= FILES_WAIT_SECONDS)) && fail "WordPress files missing in $WP_PATH after ${FILES_WAIT_SECONDS}s"
    sleep 2
    waited=$((waited + 2))
  done
}

install_wordpress() {
  if wpcli core is-installed; then
    log "WordPress already installed"
    return
  fi
  [[ -n $WP_ADMIN_EMAIL ]] ||
    fail "the store's admin email is unknown (its record was rebuilt without it): delete the store and create it again"
  # The password reaches WP-CLI through a config file only this user can read: a command-line argument is visible
  # to every process on the node, and --prompt echoes the command with its answers into the log.
  local config
  config=$(mktemp)
  printf "core install:\n  admin_password: '%s'\n" "${WP_ADMIN_PASSWORD//\'/\'\'}" >"$config"
  if ! WP_CLI_CONFIG_PATH=$config wpcli core install --url="$STORE_URL" --title="$STORE_TITLE" \
    --admin_user="$WP_ADMIN_USER" --admin_email="$WP_ADMIN_EMAIL" --skip-email; then
    rm -f "$config"
    fail "wp core install failed"
  fi
  rm -f "$config"
  log "WordPress installed"
}

# Sets the administrator's password from this store's Secret (creating the administrator if the database has none
# of that name). Like `core install`, the password travels in a config file only this user can read.
set_admin_password() {
  local config
  config=$(mktemp)
  if wpcli user get "$WP_ADMIN_USER" --field=ID >/dev/null 2>&1; then
    printf "user update:\n  user_pass: '%s'\n" "${WP_ADMIN_PASSWORD//\'/\'\'}" >"$config"
    WP_CLI_CONFIG_PATH=$config wpcli user update "$WP_ADMIN_USER" --skip-email >/dev/null ||
      { rm -f "$config"; fail "setting the password of $WP_ADMIN_USER failed"; }
  else
    printf "user create:\n  user_pass: '%s'\n" "${WP_ADMIN_PASSWORD//\'/\'\'}" >"$config"
    WP_CLI_CONFIG_PATH=$config wpcli user create "$WP_ADMIN_USER" "$WP_ADMIN_EMAIL" --role=administrator >/dev/null ||
      { rm -f "$config"; fail "creating the administrator $WP_ADMIN_USER failed"; }
  fi
  rm -f "$config"
}

# A clone's database is another store's: it names that store's address everywhere, and its administrator has that
# store's password. The address WordPress keeps is read from the options table itself (`option get home` answers
# wp-config.php's WP_HOME, which is already this store's). When it is another, the password is set from this store's
# Secret, and WP-CLI's search-replace, which keeps PHP-serialized values whole (never a text substitution on the
# dump), moves every table to this store's address: plain and JSON-escaped, guids left alone (they are ids, not
# links), the options table last, so that a run killed half-way is finished by the next.
adopt_clone() {
  local recorded moved escaped
  recorded=$(wpcli option list --search=home --field=option_value)
  if [[ -z $recorded || $recorded == "$STORE_URL" ]]; then
    log "the database's address is this store's"
    return
  fi
  log "this database is a copy of store ${CLONED_FROM}'s, at $recorded: moving it to $STORE_URL"
  set_admin_password
  moved=$(wpcli search-replace "$recorded" "$STORE_URL" --all-tables-with-prefix --skip-tables='*options' \
    --skip-columns=guid --format=count) || fail "moving the store's address failed"
  escaped=$(wpcli search-replace "${recorded//\//\\/}" "${STORE_URL//\//\\/}" --all-tables-with-prefix \
    --skip-tables='*options' --skip-columns=guid --format=count) || fail "moving the store's address failed"
  moved=$((moved + escaped))
  escaped=$(wpcli search-replace "$recorded" "$STORE_URL" '*options' --all-tables-with-prefix --format=count) ||
    fail "moving the store's address failed"
  log "moved to $STORE_URL ($((moved + escaped)) values), the administrator's password set from this store's Secret"
}

activate_woocommerce() {
  if wpcli plugin is-active woocommerce; then
    log "WooCommerce already active"
  else
    wpcli plugin activate woocommerce
    log "WooCommerce activated"
  fi
}

# WooCommerce installs itself (tables, options, roles, the store's id) when it is activated, and again whenever
# WordPress loads with an older woocommerce_version than the code's, under a lock: the transient wc_installing, for
# ten minutes. An install that was killed half-way (an OOM kill of the first bootstrap, say) leaves the lock, and
# every install until it expires returns at once, the retried activation's included: WooCommerce is then active
# but not installed. Any WP-CLI call runs that version check as WordPress loads, so reading the version installs
# WooCommerce when no lock is held; a lock that has outlived any real install is removed, and the next read
# installs.
finish_woocommerce_install() {
  local want version expires age started
  want=$(wpcli plugin get woocommerce --field=version)
  started=$(date +%s)
  while :; do
    version=$(option_value woocommerce_version)
    [[ $version == "$want" ]] && break
    expires=$(option_value _transient_timeout_wc_installing)
    [[ $expires =~ ^[0-9]+$ ]] ||
      fail "WooCommerce $want did not install (woocommerce_version is ${version:-missing}, and no install is running)"
    # The lock was taken ten minutes before it expires.
    age=$(($(date +%s) - (expires - 600)))
    if ((age >= WC_INSTALL_LOCK_STALE_SECONDS)); then
      (($(date +%s) - started < 2 * WC_INSTALL_LOCK_STALE_SECONDS)) ||
        fail "WooCommerce $want did not install: its install lock came back after it was removed"
      log "WooCommerce's install lock is ${age}s old and its install never finished (it was killed): installing again"
      wpcli transient delete wc_installing >/dev/null
    else
      log "WooCommerce is being installed (its lock is ${age}s old); waiting"
      sleep 5
    fi
  done
  log "WooCommerce $want installed"
}

# WooCommerce runs its routine for new shops on the first visit to wp-admin: it turns the new order tables (HPOS) on
# only if no order exists yet, and switches on the new e-mail designs. A store whose first customer came before its
# owner would keep the old order storage for good; running the routine here makes every store the same.
settle_new_shop() {
  if [[ $(option_value woocommerce_newly_installed) == yes ]]; then
    wpcli eval 'WC_Install::newly_installed();'
    log "WooCommerce's new-shop routine done"
  fi
}

# Sets a plain option unless it already holds that value (an option that does not exist yet reads as empty).
set_option() {
  local name=$1 value=$2
  if [[ $(option_value "$name") != "$value" ]]; then
    wpcli option update "$name" "$value"
  fi
}

configure_shop() {
  wcli tool run install_pages >/dev/null
  set_option woocommerce_coming_soon no
  set_option woocommerce_store_pages_only no
  set_option woocommerce_enable_guest_checkout yes
  set_option woocommerce_enable_checkout_login_reminder yes
  # WooCommerce shows its setup wizard until the onboarding profile says it is done; an owner's own profile is kept.
  if ! wpcli option get woocommerce_onboarding_profile --format=json >/dev/null 2>&1; then
    wpcli option update woocommerce_onboarding_profile '{"completed":true,"skipped":true}' --format=json
  fi
  # `rewrite structure` flushes the rewrite rules itself.
  if [[ $(wpcli option get permalink_structure) != "/%postname%/" ]]; then
    wpcli rewrite structure '/%postname%/'
  fi
  log "shop pages, guest checkout, onboarding, permalinks and coming-soon configured"
}

gateway_enabled() {
  [[ $(wcli payment_gateway get "$1" --field=enabled --format=json) == true ]]
}

enable_gateway() {
  local gateway=$1
  if ! gateway_enabled "$gateway"; then
    wcli payment_gateway update "$gateway" --enabled=true >/dev/null
    log "payment gateway $gateway enabled"
  fi
}

sample_product_id() {
  wcli product list --sku="$SAMPLE_SKU" --field=id | head -n1
}

create_sample_product() {
  if [[ -n $(sample_product_id) ]]; then
    log "sample product exists"
    return
  fi
  wcli product create --name="Sample product" --sku="$SAMPLE_SKU" --regular_price=19.99 --status=publish \
    --catalog_visibility=visible --description="A sample product: add it to the cart and check out." >/dev/null
  log "sample product created"
}

verify() {
  wpcli plugin is-active woocommerce || fail "WooCommerce is not active"
  local want
  want=$(wpcli plugin get woocommerce --field=version)
  [[ $(option_value woocommerce_version) == "$want" ]] || fail "WooCommerce $want is not installed"
  [[ -n $(option_value woocommerce_db_version) && -n $(option_value woocommerce_store_id) ]] ||
    fail "WooCommerce's installation did not complete (no database version or store id)"
  [[ $(option_value woocommerce_newly_installed) == no ]] || fail "WooCommerce's new-shop routine has not run"
  [[ $(option_value woocommerce_custom_orders_table_enabled) == yes ]] ||
    fail "orders are not kept in WooCommerce's order tables (HPOS)"
  local id
  id=$(sample_product_id)
  [[ -n $id ]] || fail "the sample product does not exist"
  [[ $(wcli product get "$id" --field=status) == publish ]] || fail "the sample product is not published"
  [[ $(wcli product get "$id" --field=purchasable --format=json) == true ]] ||
    fail "the sample product is not purchasable"
  gateway_enabled cod || fail "cash on delivery is not enabled"
  local page code
  page=$(mktemp)
  # Retries cover a WordPress pod that is still warming up: refused connections, timeouts and 5xx answers.
  code=$(curl -sS --max-time "$HTTP_TIMEOUT_SECONDS" --retry "$HTTP_RETRIES" --retry-delay 2 --retry-connrefused \
    -o "$page" -w '%{http_code}' -H "Host: $STORE_HOST" "$WORDPRESS_SERVICE_URL/?post_type=product") || {
    rm -f "$page"
    fail "the storefront at $WORDPRESS_SERVICE_URL does not answer"
  }
  if [[ $code != 200 ]]; then
    rm -f "$page"
    fail "the storefront answered HTTP $code"
  fi
  if ! grep -q "Sample product" "$page"; then
    rm -f "$page"
    fail "the storefront does not list the sample product"
  fi
  rm -f "$page"
  log "verified: WooCommerce $want installed and active, orders in its order tables, sample product $id purchasable, cash on delivery on, storefront lists it"
}

wait_for_database
wait_for_wordpress_files
install_wordpress
if [[ -n ${CLONED_FROM:-} ]]; then
  adopt_clone
fi
activate_woocommerce
finish_woocommerce_install
settle_new_shop
configure_shop
enable_gateway cod
enable_gateway cheque
create_sample_product
verify
log "done"
