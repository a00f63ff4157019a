//! The store's generated credentials. Created once and never rewritten: regenerating would lock the owner out of a
//! database that already holds the first passwords.

use k8s_openapi::api::core::v1::Secret;
use rand::{Rng as _, TryRngCore as _, distr::Alphanumeric};

use super::meta::{SECRET_NAME, object_meta};

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

/// A password of 32 letters and digits (190 bits) from the operating system's CSPRNG.
pub fn password() -> String {
    rand::rngs::OsRng
        .unwrap_err()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The Secret with freshly generated passwords.
pub fn credentials(id: &str) -> Secret {
    Secret {
        metadata: object_meta(id, SECRET_NAME, "store"),
        type_: Some("Opaque".to_owned()),
        string_data: Some(
            [
                (MARIADB_ROOT_PASSWORD, password()),
                (MARIADB_USER, DATABASE.to_owned()),
                (MARIADB_PASSWORD, password()),
                (WORDPRESS_ADMIN_USER, ADMIN_USER.to_owned()),
                (WORDPRESS_ADMIN_PASSWORD, password()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        ),
        ..Secret::default()
    }
}

/// The Secret carrying the platform's SMTP relay password to the store's pods.
pub fn mail(id: &str, password: &str) -> Secret {
    Secret {
        metadata: object_meta(id, MAIL_SECRET, "store"),
        type_: Some("Opaque".to_owned()),
        string_data: Some([(SMTP_PASSWORD.to_owned(), password.to_owned())].into()),
        ..Secret::default()
    }
}
