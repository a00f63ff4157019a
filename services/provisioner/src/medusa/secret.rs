//! A Medusa store's generated secrets: the database password, the signing secrets of its tokens and cookies, and
//! the admin's sign-in.

use k8s_openapi::api::core::v1::Secret;

use crate::shared::{meta::SECRET_NAME, secret::opaque, secret::password};

pub const POSTGRES_PASSWORD: &str = "postgres-password";
pub const JWT_SECRET: &str = "jwt-secret";
pub const COOKIE_SECRET: &str = "cookie-secret";
pub const ADMIN_EMAIL: &str = "medusa-admin-email";
pub const ADMIN_PASSWORD: &str = "medusa-admin-password";
pub const DATABASE: &str = "medusa";
pub const DATABASE_USER: &str = "medusa";

/// The Secret with freshly generated secrets; the admin signs in as the store's administrator address.
pub fn credentials(id: &str, admin_email: &str) -> Secret {
    opaque(
        id,
        SECRET_NAME,
        vec![
            (POSTGRES_PASSWORD, password()),
            (JWT_SECRET, format!("{}{}", password(), password())),
            (COOKIE_SECRET, format!("{}{}", password(), password())),
            (ADMIN_EMAIL, admin_email.to_owned()),
            (ADMIN_PASSWORD, password()),
        ],
    )
}
