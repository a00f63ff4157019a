//! Names of a WooCommerce store's objects.

pub use crate::shared::meta::*;

pub const MARIADB: &str = "mariadb";
pub const WORDPRESS: &str = "wordpress";
pub const WORDPRESS_DATA: &str = "wordpress-data";
pub const BOOTSTRAP: &str = "woocommerce-bootstrap";
/// The ConfigMap of files the platform puts into WordPress's volume (the init script, the mail plugin).
pub const WORDPRESS_FILES: &str = "wordpress-platform-files";
pub const CRON: &str = "wp-cron";
/// uid and gid of `www-data` in the WordPress image: WordPress and the bootstrap Job share its volume.
pub const WWW_DATA: i64 = 33;
/// uid and gid of `mysql` in the MariaDB image.
pub const MYSQL: i64 = 999;
