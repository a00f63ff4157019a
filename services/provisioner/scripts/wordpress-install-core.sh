#!/usr/bin/env bash
# WordPress's init container: puts the image's WordPress core into the store's volume, completely, before Apache
# starts, and installs the platform's must-use plugin. Runs as uid 33 on every start of the store.
#
# The image's entrypoint would copy the core itself, with `tar --extract` into "." of the volume: as uid 33 on a
# volume root it does not own (root:33 with fsGroup, or the root-owned 0777 directory of a local-path provisioner)
# tar cannot change the mode of ".", exits 2, and the entrypoint stops before it writes wp-config.php, so every
# store's first start failed. This copies the top-level entries instead, never ".", checks that every file arrived
# intact, and only then writes a marker; a copy cut short is done again, in full, at the next start. Once the core
# is in place the entrypoint sees it, copies nothing, and writes wp-config.php.
#
# Environment (defaults are the image's paths): WORDPRESS_SOURCE, WORDPRESS_TARGET, PLATFORM_FILES (the mounted
# ConfigMap holding store-platform-mail.php).
set -euo pipefail

SOURCE=${WORDPRESS_SOURCE:-/usr/src/wordpress}
TARGET=${WORDPRESS_TARGET:-/var/www/html}
PLATFORM_FILES=${PLATFORM_FILES:-/opt/store-platform}
# Apache never serves files whose names start with ".ht".
MARKER=$TARGET/.ht-store-platform-core

log() { printf 'install-core: %s\n' "$*"; }
fail() { printf 'install-core: FAILED: %s\n' "$*" >&2; exit 1; }

[[ -f $SOURCE/wp-includes/version.php ]] || fail "no WordPress core in $SOURCE"
[[ -d $TARGET && -w $TARGET ]] || fail "$TARGET is not a writable directory for uid $(id -u)"

copy_core() {
  (cd "$SOURCE" && find . -mindepth 1 -maxdepth 1 -printf '%P\0') |
    tar --create --file - --directory "$SOURCE" --null --files-from - |
    tar --extract --file - --directory "$TARGET" --no-overwrite-dir
}

# Fails unless every file of the core is in the volume with the same content. Files only the volume has (the
# store's own: wp-config.php, uploads) are fine.
verify_core() {
  local report status=0 line missing=0 damaged=0
  report=$(diff -rq "$SOURCE" "$TARGET" 2>&1) || status=$?
  ((status <= 1)) || fail "could not compare $SOURCE with $TARGET: $report"
  while IFS= read -r line; do
    case $line in
      "") ;;
      "Only in $TARGET:"* | "Only in $TARGET/"*) ;;
      "Only in $SOURCE:"* | "Only in $SOURCE/"*) missing=$((missing + 1)) ;;
      *) damaged=$((damaged + 1)) ;;
    esac
  done <<<"$report"
  ((missing == 0 && damaged == 0)) ||
    fail "the copy is incomplete: $missing missing, $damaged different; it is redone at the next start"
}

version() {
  sed -n "s/^\$wp_version = '\(.*\)';/\1/p" "$1/wp-includes/version.php"
}

# The version of the WooCommerce bundled in $1, if any.
woocommerce_version() {
  sed -n 's/^[ *]*Version: *\([^ ]*\).*/\1/p' "$1/wp-content/plugins/woocommerce/woocommerce.php" 2>/dev/null | head -n 1 || true
}

# What the marker records: the WordPress and bundled WooCommerce versions of the core that was copied.
build() { printf '%s wc %s\n' "$(version "$1")" "$(woocommerce_version "$1")"; }

copy() {
  copy_core
  verify_core
  build "$SOURCE" >"$MARKER.tmp"
  mv -f "$MARKER.tmp" "$MARKER"
  log "WordPress $(version "$SOURCE") copied and verified: $(find "$SOURCE" -type f | wc -l) files"
}

image=$(build "$SOURCE")
if [[ -f $MARKER && $(<"$MARKER") == "$image" ]]; then
  log "WordPress $(version "$TARGET") already in place"
elif [[ -f $MARKER && $(<"$MARKER") == "$(version "$SOURCE")" ]]; then
  # A marker from before it recorded WooCommerce's version, of this image's WordPress: the core in place is this
  # image's. Recorded in the current form, nothing copied.
  printf '%s\n' "$image" >"$MARKER"
  log "WordPress $(version "$TARGET") already in place"
elif [[ -f $MARKER ]]; then
  # The store moves to another version (an upgrade, or its rollback): the image's core replaces the one in place.
  # The store's own files (wp-config.php, uploads, the plugins and themes it added) are left as they are.
  log "replacing WordPress $(<"$MARKER") with $image"
  copy
elif [[ -f $TARGET/wp-config.php ]]; then
  # A store whose core the image's entrypoint copied (before this init step existed): it is complete, and its
  # owner may have changed or removed bundled plugins and themes since, so nothing is copied over it. It is this
  # image's core if its WordPress is this image's; if not, the marker names only its WordPress, and the next start
  # puts the image's core in place as for any store moving to another version.
  if [[ $(version "$TARGET") == "$(version "$SOURCE")" ]]; then
    printf '%s\n' "$image" >"$MARKER"
  else
    version "$TARGET" >"$MARKER"
  fi
  log "WordPress $(version "$TARGET") was installed by an earlier start; left as it is"
else
  log "copying WordPress $(version "$SOURCE") into $TARGET"
  copy
fi

# The platform's must-use plugin is the platform's: replaced on every start, atomically (PHP never reads half).
plugins=$TARGET/wp-content/mu-plugins
mkdir -p "$plugins"
cp "$PLATFORM_FILES/store-platform-mail.php" "$plugins/.store-platform-mail.php.tmp"
mv -f "$plugins/.store-platform-mail.php.tmp" "$plugins/store-platform-mail.php"
log "mail plugin installed"
