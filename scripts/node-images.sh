#!/usr/bin/env bash
# Builds, once per machine, the root filesystems of the images the real test node runs, from Debian's packages and no
# registry: pause (test-support/node/pause.c), memory-hog (test-support/node/memory-hog.c), and a MariaDB image and an
# Apache+PHP WordPress image with the contract of the images stores run (environment variables, ports, uids, data
# paths). Prints the directory holding <name>.tar (a root filesystem for `docker import`) and <name>.changes (its
# Dockerfile instructions, one per line).
# Packages are installed here on the host, so no container ever needs the network. Needs root and debootstrap.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
SUITE=bookworm
# The cache is keyed by everything that goes into the images: this script and the files it copies in.
recipe=$(cat "$0" "$root"/test-support/node/* | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/store-platform/node-images-$recipe"
log() { printf 'node-images: %s\n' "$*" >&2; }

if [[ -f $cache/complete ]]; then
  echo "$cache"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { log "needs root (debootstrap, chroot)"; exit 1; }
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
work="$cache.building"
rm -rf "$work"
mkdir -p "$work"

# A minimal Debian with `packages` installed, services never started.
rootfs() {
  local dir=$1
  shift
  log "debootstrap $SUITE into $dir with: $*"
  # In place before any package is configured, so no package script starts its server here.
  mkdir -p "$dir/usr/sbin"
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 0755 "$dir/usr/sbin/policy-rc.d"
  debootstrap --variant=minbase --include="$(IFS=,; echo "$*")" "$SUITE" "$dir" "$mirror" >"$dir.log" 2>&1 ||
    { tail -n 30 "$dir.log" >&2; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  rm -f "$dir/usr/sbin/policy-rc.d"
}

pack() {
  local name=$1 dir=$2
  tar --numeric-owner -C "$dir" -cf "$work/$name.tar" .
  rm -rf "$dir" "$dir.log"
}

# --- pause ---
mkdir -p "$work/pause"
gcc -static -O2 -o "$work/pause/pause" "$root/test-support/node/pause.c"
pack pause "$work/pause"
printf '%s\n' 'ENTRYPOINT ["/pause"]' >"$work/pause.changes"

# --- memory-hog: uses memory until its limit stops it ---
mkdir -p "$work/memory-hog"
gcc -static -O2 -o "$work/memory-hog/memory-hog" "$root/test-support/node/memory-hog.c"
pack memory-hog "$work/memory-hog"
printf '%s\n' 'ENTRYPOINT ["/memory-hog"]' >"$work/memory-hog.changes"

# --- MariaDB: the official image's contract (mysql is uid and gid 999; MARIADB_* variables; /var/lib/mysql; 3306) ---
dir="$work/mariadb"
rootfs "$dir" mariadb-server
chroot "$dir" sh -ec '
  groupmod -g 999 mysql && usermod -u 999 -g 999 mysql
  rm -rf /var/lib/mysql && mkdir -p /var/lib/mysql /run/mysqld
  chown 999:999 /var/lib/mysql /run/mysqld
'
install -m 0755 "$root/test-support/node/mariadb-entrypoint.sh" "$dir/usr/local/bin/docker-entrypoint.sh"
pack mariadb "$dir"
cat >"$work/mariadb.changes" <<'CHANGES'
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
VOLUME /var/lib/mysql
EXPOSE 3306
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["mariadbd"]
CHANGES

# --- WordPress: the official image's contract (core in /usr/src/wordpress, docroot /var/www/html, WORDPRESS_*
# variables, wp-config-docker.php), plus the platform image's: Apache on 8080 as www-data (uid 33) ---
dir="$work/wordpress"
rootfs "$dir" apache2 libapache2-mod-php8.2 php8.2-mysql wordpress curl ca-certificates
chroot "$dir" sh -ec '
  cp -rL /usr/share/wordpress /usr/src/wordpress
  rm -f /usr/src/wordpress/wp-config.php /usr/src/wordpress/.htaccess
  chown -R 33:33 /usr/src/wordpress
  rm -rf /var/www/html && mkdir -p /var/www/html && chown 33:33 /var/www/html
  a2enmod rewrite >/dev/null
  sed -ri "s/^Listen 80$/Listen 8080/" /etc/apache2/ports.conf
  sed -ri "s/<VirtualHost \*:80>/<VirtualHost *:8080>/" /etc/apache2/sites-available/000-default.conf
  printf "%s\n" "<Directory /var/www/html>" "  AllowOverride All" "</Directory>" >/etc/apache2/conf-enabled/docroot.conf
  ln -sfT /dev/stderr /var/log/apache2/error.log
  ln -sfT /dev/stdout /var/log/apache2/access.log
  ln -sfT /dev/stdout /var/log/apache2/other_vhosts_access.log
  mkdir -p /var/run/apache2 /var/lock/apache2 && chown -R 33:33 /var/run/apache2 /var/lock/apache2 /var/log/apache2
'
install -m 0644 "$root/test-support/node/wp-config-docker.php" "$dir/usr/src/wordpress/wp-config-docker.php"
chown 33:33 "$dir/usr/src/wordpress/wp-config-docker.php"
install -m 0755 "$root/test-support/node/wordpress-entrypoint.sh" "$dir/usr/local/bin/docker-entrypoint.sh"
install -m 0755 "$root/test-support/node/apache2-foreground" "$dir/usr/local/bin/apache2-foreground"
pack wordpress "$dir"
cat >"$work/wordpress.changes" <<'CHANGES'
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /var/www/html
USER 33:33
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["apache2-foreground"]
CHANGES

touch "$work/complete"
rm -rf "$cache"
mv "$work" "$cache"
find "$(dirname "$cache")" -mindepth 1 -maxdepth 1 -name 'node-images-*' ! -path "$cache" -exec rm -rf {} +
log "images ready in $cache"
echo "$cache"
