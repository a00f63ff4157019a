//! The two Secrets of a store's backups: its repository key, generated once and kept in the platform's namespace
//! (so it outlives the store, as its backups do), and the copy its backup Jobs read in the store's namespace.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use sha2::{Digest as _, Sha256};
use store_platform_runtime::record::{MANAGED_BY, MANAGED_BY_LABEL, STORE_ID_LABEL, TENANT_LABEL};

use super::{BACKUP, repository::Credentials};
use crate::shared::secret::opaque;

/// The Secret backup Jobs read, in the store's namespace.
pub const STORE_SECRET: &str = "store-backup";
/// The key of the repository's password in both Secrets.
pub const PASSWORD_KEY: &str = "RESTIC_PASSWORD";
/// Annotation on a key Secret: when its store was deleted (RFC 3339); its backups are kept for the retention window.
pub const DELETED_ANNOTATION: &str = "store-platform.io/store-deleted-at";

/// The key Secret's name: the store id and a digest of the tenant (a tenant may use characters a name may not),
/// so that two tenants' stores of the same id never share a repository.
pub fn key_secret_name(tenant: &str, id: &str) -> String {
    let digest = Sha256::digest(tenant.as_bytes());
    let short: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("backup-key-{id}-{short}")
}

/// The labels of a key Secret: whose store's repository it opens.
pub fn key_labels(tenant: &str, id: &str) -> BTreeMap<String, String> {
    [
        (MANAGED_BY_LABEL, MANAGED_BY),
        (STORE_ID_LABEL, id),
        (TENANT_LABEL, tenant),
        ("app.kubernetes.io/name", "backup-key"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A new key Secret with a freshly generated repository password, in `namespace`.
pub fn key_secret(namespace: &str, tenant: &str, id: &str) -> Secret {
    let password = format!(
        "{}{}",
        crate::shared::secret::password(),
        crate::shared::secret::password()
    );
    Secret {
        metadata: ObjectMeta {
            name: Some(key_secret_name(tenant, id)),
            namespace: Some(namespace.to_owned()),
            labels: Some(key_labels(tenant, id)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        string_data: Some([(PASSWORD_KEY.to_owned(), password)].into()),
        ..Secret::default()
    }
}

/// The key of the dump guard (pg_dump's `--restrict-key`) in the store's backup Secret.
pub const RESTRICT_KEY: &str = "DUMP_RESTRICT_KEY";

/// The store's dump guard: secret (derived from its repository key) and the same for every dump, so that an
/// unchanged database dumps to the same bytes.
pub fn restrict_key(repository_key: &str) -> String {
    let digest = Sha256::digest(format!("pg_dump restrict key of {repository_key}").as_bytes());
    digest.iter().take(24).map(|b| format!("{b:02x}")).collect()
}

/// The Secret a clone's restore Job reads, in the clone's namespace: the repository of the store it is made from.
pub const CLONE_SECRET: &str = "clone-source";

/// What the store's backup Jobs read: where the repository is, its key, and the object store's credentials.
pub fn store_secret(id: &str, location: &str, key: &str, credentials: &Credentials) -> Secret {
    repository_secret(id, STORE_SECRET, (location, key), credentials)
}

/// What a clone's restore Job reads: the repository of the store it is made from (of the same tenant), its key,
/// and the object store's credentials.
pub fn clone_secret(id: &str, location: &str, key: &str, credentials: &Credentials) -> Secret {
    repository_secret(id, CLONE_SECRET, (location, key), credentials)
}

fn repository_secret(
    id: &str,
    name: &str,
    (location, key): (&str, &str),
    credentials: &Credentials,
) -> Secret {
    let mut secret = opaque(
        id,
        name,
        vec![
            ("RESTIC_REPOSITORY", location.to_owned()),
            (PASSWORD_KEY, key.to_owned()),
            ("AWS_ACCESS_KEY_ID", credentials.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", credentials.secret_key.clone()),
            (RESTRICT_KEY, restrict_key(key)),
        ],
    );
    if let Some(labels) = secret.metadata.labels.as_mut() {
        labels.insert("app.kubernetes.io/name".to_owned(), BACKUP.to_owned());
    }
    secret
}
