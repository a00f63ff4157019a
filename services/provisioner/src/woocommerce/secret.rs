//! A WooCommerce store's generated credentials, and the relay password its pods read.

use k8s_openapi::api::core::v1::Secret;

use super::meta::SECRET_NAME;
use crate::shared::secret::opaque;
pub use crate::shared::secret::password;

pub const MARIADB_ROOT_PASSWORD: &str = "mariadb-root-password";
pub const MARIADB_USER: &str = "mariadb-user";
pub const MARIADB_PASSWORD: &str = "mariadb-password";
pub const WORDPRESS_ADMIN_USER: &str = "wordpress-admin-user";
pub const WORDPRESS_ADMIN_PASSWORD: &str = "wordpress-admin-password";
pub const ADMIN_USER: &str = "admin";
pub const DATABASE: &str = "wordpress";
/// The SMTP relay's password, copied into the store's namespace where its pods can read it.
pub const MAIL_SECRET: &str = "store-mail";
pub const SMTP_PASSWORD: &str = "smtp-password";

/// The Secret with freshly generated passwords.
pub fn credentials(id: &str) -> Secret {
    opaque(
        id,
        SECRET_NAME,
        vec![
            (MARIADB_ROOT_PASSWORD, password()),
            (MARIADB_USER, DATABASE.to_owned()),
            (MARIADB_PASSWORD, password()),
            (WORDPRESS_ADMIN_USER, ADMIN_USER.to_owned()),
            (WORDPRESS_ADMIN_PASSWORD, password()),
        ],
    )
}

/// The Secret carrying the platform's SMTP relay password to the store's pods.
pub fn mail(id: &str, password: &str) -> Secret {
    opaque(id, MAIL_SECRET, vec![(SMTP_PASSWORD, password.to_owned())])
}
