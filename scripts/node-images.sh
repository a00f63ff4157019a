#!/usr/bin/env bash
# Builds, once per machine, the root filesystems of the images the real test node runs, from Debian's packages and no
# registry: pause (test-support/node/pause.c), memory-hog (test-support/node/memory-hog.c), a MariaDB image and an
# Apache+PHP WordPress image with the contract of the images stores run (environment variables, ports, uids, data
# paths), and for Medusa stores PostgreSQL and Redis images with the official images' contract, and the Medusa
# backend and storefront images as their Dockerfiles lay them out (the application scripts/medusa.sh built, the
# storefront scripts/storefront.sh built, the images' Node.js), and a restic image for backup and restore Jobs.
# Prints the directory holding <name>.tar (a root filesystem for `docker import`) and <name>.changes (its Dockerfile
# instructions, one per line).
# Packages are installed here on the host, so no container ever needs the network. Needs root and debootstrap.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
SUITE=bookworm
# The Medusa backend (a directory named by the hash of its sources) and the storefront.
medusa=$("$root/scripts/medusa.sh")
"$root/scripts/storefront.sh"
storefront="$root/deploy/medusa-storefront"
# The cache is keyed by everything that goes into the images: this script and the files it copies in.
recipe=$({
  cat "$0" "$root"/test-support/node/*
  basename "$medusa"
  (cd "$storefront" && find server.mjs dist -type f | LC_ALL=C sort | xargs sha256sum)
} | sha256sum | cut -c1-16)
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

# --- Medusa stores: one Debian with PostgreSQL, Redis and what Node.js needs, as four images; and restic (Debian's),
# as the backup Jobs' fifth ---
# postgres and redis are uid and gid 999 in the official images (the store's pods run them as 999), node is 1000.
dir="$work/medusa-base"
rootfs "$dir" postgresql redis-server libstdc++6 ca-certificates restic
chroot "$dir" sh -ec '
  groupmod -g 999 postgres && usermod -u 999 -g 999 postgres
  mkdir -p /var/run/postgresql /var/lib/postgresql/data /data
  chown 999:999 /var/run/postgresql /var/lib/postgresql /var/lib/postgresql/data /data
  groupadd -g 1000 node && useradd -u 1000 -g 1000 -d /home/node -m -s /bin/sh node
'
pg_bin=$(find "$dir/usr/lib/postgresql" -mindepth 2 -maxdepth 2 -name bin | sort | tail -n 1)
pg_bin=${pg_bin#"$dir"}
install -m 0755 "$root/test-support/node/postgres-entrypoint.sh" "$dir/usr/local/bin/postgres-entrypoint.sh"
install -m 0755 "$root/test-support/node/redis-entrypoint.sh" "$dir/usr/local/bin/redis-entrypoint.sh"
tar --numeric-owner -C "$dir" -cf "$work/medusa-base.tar" .
rm -rf "$dir" "$dir.log"
for name in postgres redis medusa medusa-storefront restic; do
  cp "$work/medusa-base.tar" "$work/$name.tar"
done
rm "$work/medusa-base.tar"
cat >"$work/postgres.changes" <<CHANGES
ENV PATH=$pg_bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
CHANGES
cat >"$work/restic.changes" <<'CHANGES'
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENTRYPOINT ["/usr/bin/restic"]
CHANGES
cat >"$work/redis.changes" <<'CHANGES'
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
VOLUME /data
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/redis-entrypoint.sh"]
CMD ["redis-server"]
CHANGES
# The backend as deploy/docker/medusa/Dockerfile lays it out, and the storefront as its Dockerfile does (appended
# below /opt and /usr/local/bin, which the base already has: a second entry for a path is refused by docker import).
stage="$work/medusa-stage"
mkdir -p "$stage/opt/medusa/.medusa" "$stage/usr/local/bin"
cp -a "$medusa/node_modules" "$medusa/bin" "$stage/opt/medusa/"
cp -a "$medusa/.medusa/server" "$stage/opt/medusa/.medusa/"
install -m 0755 "$(readlink -f "$medusa/.node/bin/node")" "$stage/usr/local/bin/node"
tar --numeric-owner --owner=0 --group=0 -C "$stage" -rf "$work/medusa.tar" ./opt/medusa ./usr/local/bin/node
rm -rf "$stage/opt"
mkdir -p "$stage/opt/storefront"
cp -a "$storefront/server.mjs" "$storefront/dist" "$stage/opt/storefront/"
tar --numeric-owner --owner=0 --group=0 -C "$stage" -rf "$work/medusa-storefront.tar" ./opt/storefront ./usr/local/bin/node
rm -rf "$stage"
cat >"$work/medusa.changes" <<'CHANGES'
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV NODE_ENV=production
ENV MEDUSA_DISABLE_TELEMETRY=true
WORKDIR /opt/medusa/.medusa/server
USER 1000:1000
EXPOSE 9000
ENTRYPOINT ["/opt/medusa/bin/entrypoint.sh"]
CMD ["start"]
CHANGES
cat >"$work/medusa-storefront.changes" <<'CHANGES'
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV NODE_ENV=production
WORKDIR /opt/storefront
USER 1000:1000
EXPOSE 8080
CMD ["node", "server.mjs"]
CHANGES

touch "$work/complete"
rm -rf "$cache"
mv "$work" "$cache"
find "$(dirname "$cache")" -mindepth 1 -maxdepth 1 -name 'node-images-*' ! -path "$cache" -exec rm -rf {} +
log "images ready in $cache"
echo "$cache"
