//! Turns requests into validated domain values. Every rejection names the field, so a client can show the message
//! next to the right input.

use store_platform_proto::v1 as proto;
use store_platform_runtime::record::{Engine, StoreSpec};

use crate::error::Error;

/// Subdomains a store may not take: they belong to the platform or invite confusion.
pub const RESERVED_IDS: &[&str] = &[
    "admin",
    "api",
    "app",
    "assets",
    "auth",
    "cdn",
    "dashboard",
    "default",
    "docs",
    "ftp",
    "gateway",
    "grpc",
    "help",
    "imap",
    "kube-system",
    "localhost",
    "login",
    "mail",
    "metrics",
    "ns1",
    "ns2",
    "pop",
    "provisioner",
    "root",
    "smtp",
    "static",
    "status",
    "store-platform",
    "support",
    "system",
    "www",
];

pub const STORE_ID_MIN: usize = 3;
pub const STORE_ID_MAX: usize = 40;
pub const DISPLAY_NAME_MAX: usize = 100;
pub const EMAIL_MAX: usize = 254;

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidField {
        field,
        reason: reason.into(),
    }
}

/// A store id: a DNS-1123 label of 3 to 40 characters that is not reserved. It becomes the subdomain and the
/// namespace `store-<id>`.
pub fn store_id(field: &'static str, id: &str) -> Result<String, Error> {
    let length = id.chars().count();
    if !(STORE_ID_MIN..=STORE_ID_MAX).contains(&length) {
        return Err(invalid(
            field,
            format!("must be {STORE_ID_MIN} to {STORE_ID_MAX} characters long (got {length})"),
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            field,
            "may contain only lowercase letters a-z, digits and '-'",
        ));
    }
    if id.starts_with('-') || id.ends_with('-') {
        return Err(invalid(field, "must start and end with a letter or digit"));
    }
    if id.starts_with("xn--") {
        return Err(invalid(
            field,
            "must not start with 'xn--' (reserved for internationalized names)",
        ));
    }
    if RESERVED_IDS.contains(&id) {
        return Err(invalid(field, format!("'{id}' is reserved")));
    }
    Ok(id.to_owned())
}

/// The store's name for people: 1 to 100 printable characters, surrounding whitespace removed.
pub fn display_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid("display_name", "must not be empty"));
    }
    let length = name.chars().count();
    if length > DISPLAY_NAME_MAX {
        return Err(invalid(
            "display_name",
            format!("must be at most {DISPLAY_NAME_MAX} characters (got {length})"),
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'))
    {
        return Err(invalid(
            "display_name",
            "must contain only printable characters",
        ));
    }
    Ok(name.to_owned())
}

pub fn engine(value: i32) -> Result<Engine, Error> {
    match proto::Engine::try_from(value) {
        Ok(proto::Engine::Woocommerce) => Ok(Engine::Woocommerce),
        Ok(proto::Engine::Medusa) => Ok(Engine::Medusa),
        Ok(proto::Engine::Unspecified) => Err(invalid(
            "engine",
            "must be set (ENGINE_WOOCOMMERCE or ENGINE_MEDUSA)",
        )),
        Err(_) => Err(invalid("engine", format!("unknown engine {value}"))),
    }
}

/// An e-mail address WordPress will accept: `local@domain.tld`, ASCII, at most 254 characters.
pub fn admin_email(email: &str) -> Result<String, Error> {
    let email = email.trim();
    let field = "admin_email";
    if email.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if email.len() > EMAIL_MAX {
        return Err(invalid(
            field,
            format!("must be at most {EMAIL_MAX} characters"),
        ));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid(field, "must look like name@example.com"));
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    if !local_ok || !domain_ok {
        return Err(invalid(field, "must look like name@example.com"));
    }
    Ok(email.to_owned())
}

/// A validated CreateStore request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewStore {
    pub id: String,
    pub spec: StoreSpec,
    /// For a clone, what the request named; resolved into `spec.source` (the backup's full id) before the store is
    /// made.
    pub clone: Option<CloneRequest>,
    /// For a clone: the version the backup's data is of, when the platform offers it (the clone runs it rather
    /// than the default, which may be older than its data); None: the default.
    pub version: Option<store_platform_runtime::record::Version>,
}

/// A clone's source as requested: a store id and the start of a backup's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloneRequest {
    pub store_id: String,
    pub backup_id: String,
}

/// A backup's id, or its first 8 or more characters, lower-cased.
pub fn backup_id(field: &'static str, id: &str) -> Result<String, Error> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() < 8 || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            field,
            "must be a backup's id as ListBackups gives it (8 to 64 hexadecimal characters)",
        ));
    }
    Ok(id)
}

impl TryFrom<proto::CreateStoreRequest> for NewStore {
    type Error = Error;

    fn try_from(request: proto::CreateStoreRequest) -> Result<Self, Error> {
        Ok(Self {
            id: store_id("store_id", &request.store_id)?,
            spec: StoreSpec {
                display_name: display_name(&request.display_name)?,
                engine: engine(request.engine)?,
                admin_email: admin_email(&request.admin_email)?,
                source: None,
            },
            clone: request
                .source
                .map(|source| -> Result<CloneRequest, Error> {
                    Ok(CloneRequest {
                        store_id: store_id("source.store_id", &source.store_id)?,
                        backup_id: backup_id("source.backup_id", &source.backup_id)?,
                    })
                })
                .transpose()?,
            version: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, name: &str, engine: i32, email: &str) -> proto::CreateStoreRequest {
        proto::CreateStoreRequest {
            store_id: id.into(),
            display_name: name.into(),
            engine,
            admin_email: email.into(),
            source: None,
        }
    }

    const WOO: i32 = proto::Engine::Woocommerce as i32;

    #[test]
    fn a_good_request_becomes_a_new_store() {
        let store = NewStore::try_from(request(
            "shoes-2",
            "  Shoes & Socks ✓ ",
            WOO,
            "owner@example.com",
        ))
        .expect("valid");
        assert_eq!(store.id, "shoes-2");
        assert_eq!(store.spec.display_name, "Shoes & Socks ✓");
        assert_eq!(store.spec.engine, Engine::Woocommerce);
    }

    #[test]
    fn every_bad_input_is_rejected_naming_its_field() {
        let long_id = "a".repeat(41);
        let long_name = "n".repeat(101);
        let long_email = format!("{}@example.com", "a".repeat(250));
        let long_local = format!("{}@example.com", "a".repeat(65));
        let cases: Vec<(proto::CreateStoreRequest, &str)> = vec![
            (request("", "Shop", WOO, "a@example.com"), "store_id"),
            (request("ab", "Shop", WOO, "a@example.com"), "store_id"),
            (request(&long_id, "Shop", WOO, "a@example.com"), "store_id"),
            (request("Shoes", "Shop", WOO, "a@example.com"), "store_id"),
            (request("shoes_1", "Shop", WOO, "a@example.com"), "store_id"),
            (
                request("shoes.shop", "Shop", WOO, "a@example.com"),
                "store_id",
            ),
            (request("-shoes", "Shop", WOO, "a@example.com"), "store_id"),
            (request("shoes-", "Shop", WOO, "a@example.com"), "store_id"),
            (request("sh oes", "Shop", WOO, "a@example.com"), "store_id"),
            (request("schuhé", "Shop", WOO, "a@example.com"), "store_id"),
            (
                request("xn--bcher-kva", "Shop", WOO, "a@example.com"),
                "store_id",
            ),
            (
                request("dashboard", "Shop", WOO, "a@example.com"),
                "store_id",
            ),
            (request("api", "Shop", WOO, "a@example.com"), "store_id"),
            (request("www", "Shop", WOO, "a@example.com"), "store_id"),
            (request("admin", "Shop", WOO, "a@example.com"), "store_id"),
            (request("shoes", "", WOO, "a@example.com"), "display_name"),
            (
                request("shoes", "   ", WOO, "a@example.com"),
                "display_name",
            ),
            (
                request("shoes", &long_name, WOO, "a@example.com"),
                "display_name",
            ),
            (
                request("shoes", "Shoes\nand more", WOO, "a@example.com"),
                "display_name",
            ),
            (
                request("shoes", "Shoes\u{0}", WOO, "a@example.com"),
                "display_name",
            ),
            (
                request("shoes", "Shoes\u{202e}", WOO, "a@example.com"),
                "display_name",
            ),
            (request("shoes", "Shop", 0, "a@example.com"), "engine"),
            (request("shoes", "Shop", 7, "a@example.com"), "engine"),
            (request("shoes", "Shop", -1, "a@example.com"), "engine"),
            (request("shoes", "Shop", WOO, ""), "admin_email"),
            (request("shoes", "Shop", WOO, "owner"), "admin_email"),
            (request("shoes", "Shop", WOO, "owner@"), "admin_email"),
            (request("shoes", "Shop", WOO, "@example.com"), "admin_email"),
            (
                request("shoes", "Shop", WOO, "owner@localhost"),
                "admin_email",
            ),
            (
                request("shoes", "Shop", WOO, "owner@@example.com"),
                "admin_email",
            ),
            (
                request("shoes", "Shop", WOO, "own er@example.com"),
                "admin_email",
            ),
            (
                request("shoes", "Shop", WOO, "owner@exa_mple.com"),
                "admin_email",
            ),
            (
                request("shoes", "Shop", WOO, "owner@-example.com"),
                "admin_email",
            ),
            (
                request("shoes", "Shop", WOO, "owner@example.c"),
                "admin_email",
            ),
            (
                request("shoes", "Shop", WOO, "owner@example..com"),
                "admin_email",
            ),
            (
                request("shoes", "Shop", WOO, ".owner@example.com"),
                "admin_email",
            ),
            (
                request("shoes", "Shop", WOO, "own..er@example.com"),
                "admin_email",
            ),
            (
                request("shoes", "Shop", WOO, "<script>@example.com"),
                "admin_email",
            ),
            (request("shoes", "Shop", WOO, &long_email), "admin_email"),
            (request("shoes", "Shop", WOO, &long_local), "admin_email"),
        ];
        assert!(cases.len() >= 30);
        for (request, expected_field) in cases {
            let shown = format!("{request:?}");
            match NewStore::try_from(request) {
                Err(Error::InvalidField { field, .. }) => {
                    assert_eq!(field, expected_field, "{shown}")
                }
                other => {
                    panic!("{shown}: expected InvalidArgument on {expected_field}, got {other:?}")
                }
            }
        }
    }

    #[test]
    fn both_engines_are_accepted() {
        for (engine, expected) in [
            (proto::Engine::Woocommerce, Engine::Woocommerce),
            (proto::Engine::Medusa, Engine::Medusa),
        ] {
            let store =
                NewStore::try_from(request("shoes", "Shop", engine as i32, "a@example.com"))
                    .expect("valid");
            assert_eq!(store.spec.engine, expected);
        }
    }
}
