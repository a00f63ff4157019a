//! Generated secrets. A store's Secret is created once and never rewritten: regenerating would lock the owner out
//! of a database that already holds the first passwords.

use k8s_openapi::api::core::v1::Secret;
use rand::{Rng as _, TryRngCore as _, distr::Alphanumeric};

use super::meta::object_meta;

/// A password of 32 letters and digits (190 bits) from the operating system's CSPRNG.
pub fn password() -> String {
    rand::rngs::OsRng
        .unwrap_err()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// An Opaque Secret `name` of store `id` holding `pairs`.
pub fn opaque(id: &str, name: &str, pairs: Vec<(&str, String)>) -> Secret {
    Secret {
        metadata: object_meta(id, name, "store"),
        type_: Some("Opaque".to_owned()),
        string_data: Some(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        ..Secret::default()
    }
}
