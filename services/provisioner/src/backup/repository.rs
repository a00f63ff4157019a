//! A store's repository: where it is, its key, and reading its snapshots with restic itself (the provisioner's
//! image carries the same tool the Jobs run). Secrets reach restic only through its environment.

use std::{process::Stdio, time::Duration};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use serde::Deserialize;

use store_platform_runtime::{
    record::{Engine, STORE_ID_LABEL, TENANT_LABEL},
    tenant::Caller,
};

use super::{
    Kind,
    secret::{PASSWORD_KEY, key_secret, key_secret_name},
};
use crate::{error::Error, kube_ops::FIELD_MANAGER, settings::Backup, shared::meta::secret_value};

/// How long a listing of a repository may take before the object store counts as unreachable.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);

/// The restic repository of store `id` of `tenant`: `s3:<endpoint>/<bucket>/<prefix>/<tenant>/<id>`.
pub fn location(backup: &Backup, tenant: &str, id: &str) -> String {
    let mut path = vec![backup.bucket.as_str()];
    if !backup.prefix.is_empty() {
        path.push(&backup.prefix);
    }
    path.extend([tenant, id]);
    format!("s3:{}/{}", backup.endpoint, path.join("/"))
}

/// The object store's access key pair, read from the mounted Secret's files at each use (so a rotation reaches the
/// next backup without a restart).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn read(backup: &Backup) -> Result<Self, Error> {
        let read = |what: &'static str, path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|source| Error::ReadBackupCredentials {
                    what,
                    path: path.to_owned(),
                    source,
                })
        };
        Ok(Self {
            access_key: read("access key id", &backup.access_key_file)?,
            secret_key: read("secret access key", &backup.secret_key_file)?,
        })
    }
}

/// The repository key of store `id` of `tenant`: made once, kept in the platform's namespace, never rewritten.
pub async fn key(
    client: &Client,
    backup: &Backup,
    tenant: &str,
    id: &str,
) -> Result<String, Error> {
    let secrets = Api::<Secret>::namespaced(client.clone(), &backup.key_namespace);
    let name = key_secret_name(tenant, id);
    if let Some(password) = existing_key(&secrets, &name).await? {
        return Ok(password);
    }
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    match secrets
        .create(&params, &key_secret(&backup.key_namespace, tenant, id))
        .await
    {
        Ok(_) => {}
        // Another replica or pass made it first: theirs is the key.
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(source) => {
            return Err(Error::Kubernetes {
                action: "create the store's backup key".into(),
                source,
            });
        }
    }
    existing_key(&secrets, &name)
        .await?
        .ok_or_else(|| Error::Repository {
            id: id.to_owned(),
            reason: format!("its key Secret {name} vanished as it was made"),
        })
}

/// The key of store `id` of `tenant` if it has one (a deleted store's too, while its backups are kept).
pub async fn existing_key_of(
    client: &Client,
    backup: &Backup,
    tenant: &str,
    id: &str,
) -> Result<Option<String>, Error> {
    let secrets = Api::<Secret>::namespaced(client.clone(), &backup.key_namespace);
    existing_key(&secrets, &key_secret_name(tenant, id)).await
}

async fn existing_key(secrets: &Api<Secret>, name: &str) -> Result<Option<String>, Error> {
    Ok(secrets
        .get_opt(name)
        .await
        .map_err(Error::kubernetes("read the store's backup key"))?
        .and_then(|secret| secret_value(&secret, PASSWORD_KEY)))
}

/// The tenant of deleted store `id` whose backups `caller` may see: the one whose key Secret is there, the caller's
/// own first (an administrator may see any tenant's).
pub async fn tenant_of_deleted(
    client: &Client,
    backup: &Backup,
    caller: &Caller,
    id: &str,
) -> Result<Option<String>, Error> {
    let selector = format!("app.kubernetes.io/name=backup-key,{STORE_ID_LABEL}={id}");
    let keys = Api::<Secret>::namespaced(client.clone(), &backup.key_namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kubernetes("list backup keys"))?;
    let mut tenants: Vec<String> = keys
        .items
        .iter()
        .filter_map(|secret| secret.metadata.labels.as_ref()?.get(TENANT_LABEL).cloned())
        .filter(|tenant| caller.may_see(tenant))
        .collect();
    tenants.sort_by_key(|tenant| tenant != &caller.tenant);
    Ok(tenants.into_iter().next())
}

/// One snapshot as restic lists it (`restic snapshots --json`).
#[derive(Clone, Debug, Deserialize)]
struct ResticSnapshot {
    time: Timestamp,
    id: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// A backup in the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    pub time: Timestamp,
    pub kind: Option<Kind>,
    pub engine: String,
    pub version: String,
    pub bytes: u64,
}

impl Snapshot {
    /// INVALID_ARGUMENT naming `field` unless this is a backup of an `engine` store.
    pub fn require_engine(&self, field: &'static str, engine: Engine) -> Result<(), Error> {
        if self.engine == engine.as_str() {
            return Ok(());
        }
        Err(Error::InvalidField {
            field,
            reason: format!(
                "backup {} is of a {} store, not a {} one",
                super::restore::short(&self.id),
                if self.engine.is_empty() {
                    "different"
                } else {
                    &self.engine
                },
                engine.as_str()
            ),
        })
    }
}

impl From<ResticSnapshot> for Snapshot {
    fn from(snapshot: ResticSnapshot) -> Self {
        let tag = |name: &str| {
            snapshot
                .tags
                .iter()
                .find_map(|t| t.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            id: snapshot.id.clone(),
            time: snapshot.time,
            kind: Kind::parse(&tag("kind")),
            engine: tag("engine"),
            version: tag("version"),
            bytes: tag("bytes").parse().unwrap_or(0),
        }
    }
}

/// Parses `restic snapshots --json`, newest first.
pub fn parse_snapshots(json: &[u8]) -> Result<Vec<Snapshot>, serde_json::Error> {
    let listed: Vec<ResticSnapshot> = serde_json::from_slice(json)?;
    let mut snapshots: Vec<Snapshot> = listed.into_iter().map(Snapshot::from).collect();
    snapshots.sort_by_key(|snapshot| std::cmp::Reverse(snapshot.time));
    Ok(snapshots)
}

/// restic against store `id`'s repository, secrets in its environment only; `region` false leaves the region to the
/// object store's own answer (restic then asks for the bucket's location, which tells a missing bucket apart).
fn restic(
    backup: &Backup,
    tenant: &str,
    id: &str,
    key: &str,
    credentials: &Credentials,
    region: bool,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("restic");
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RESTIC_REPOSITORY", location(backup, tenant, id))
        .env("RESTIC_PASSWORD", key)
        .env("AWS_ACCESS_KEY_ID", &credentials.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &credentials.secret_key)
        .args([
            "-o",
            &format!(
                "s3.bucket-lookup={}",
                if backup.path_style { "path" } else { "dns" }
            ),
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if region {
        command.args(["-o", &format!("s3.region={}", backup.region)]);
    }
    command.arg("--no-cache");
    command
}

/// restic's first words on standard error, without its "Fatal: ".
fn first_words(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("restic failed")
        .trim_start_matches("Fatal: ")
        .to_owned()
}

/// The one backup of store `id` (of `tenant`) whose id starts with `wanted` (a valid id's start, lower-cased):
/// NOT_FOUND naming `field` when the store has no backups, or none such (which is how another tenant's backup
/// looks); INVALID_ARGUMENT when several ids start so.
pub async fn find_snapshot(
    client: &Client,
    backup: &Backup,
    (tenant, id): (&str, &str),
    (field, wanted): (&'static str, &str),
) -> Result<Snapshot, Error> {
    let snapshots = match existing_key_of(client, backup, tenant, id).await? {
        Some(key) => snapshots(backup, tenant, id, &key).await?,
        None => Vec::new(),
    };
    let mut matching = snapshots.into_iter().filter(|s| s.id.starts_with(wanted));
    match (matching.next(), matching.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(Error::BackupNotFound {
            field,
            id: id.to_owned(),
            backup: wanted.to_owned(),
        }),
        (Some(_), Some(_)) => Err(Error::InvalidField {
            field,
            reason: format!("{wanted:?} is the start of several backups' ids; give more of it"),
        }),
    }
}

/// The snapshots of store `id`'s repository, newest first; none when it has no repository yet.
pub async fn snapshots(
    backup: &Backup,
    tenant: &str,
    id: &str,
    key: &str,
) -> Result<Vec<Snapshot>, Error> {
    let credentials = Credentials::read(backup)?;
    let fail = |reason: String| Error::Repository {
        id: id.to_owned(),
        reason,
    };
    let run = |region: bool, args: &'static [&'static str]| {
        let mut command = restic(backup, tenant, id, key, &credentials, region);
        command.args(args);
        async move {
            tokio::time::timeout(LIST_TIMEOUT, command.output())
                .await
                .map_err(|_| {
                    format!(
                        "the object store did not answer within {}s",
                        LIST_TIMEOUT.as_secs()
                    )
                })?
                .map_err(|error| format!("cannot run restic: {error}"))
        }
    };
    let output = run(
        true,
        &["--no-lock", "snapshots", "--json", "--host", "store"],
    )
    .await
    .map_err(fail)?;
    if !output.status.success() {
        let words = String::from_utf8_lossy(&output.stderr);
        if words.contains("The specified key does not exist")
            || words.contains("repository does not exist")
        {
            // No repository yet, or no bucket: asked without a region, the object store tells which.
            let again = run(false, &["--no-lock", "cat", "config"])
                .await
                .map_err(fail)?;
            let words = String::from_utf8_lossy(&again.stderr);
            if !words.contains("bucket does not exist") {
                return Ok(Vec::new());
            }
            return Err(fail(first_words(&again.stderr)));
        }
        return Err(fail(first_words(&output.stderr)));
    }
    parse_snapshots(&output.stdout).map_err(|error| {
        fail(format!(
            "restic's listing is not what it should be: {error}"
        ))
    })
}

/// Forgets every snapshot of store `id`'s repository and prunes their data: what a deleted store's backups come to
/// at the end of their window.
pub async fn forget_everything(
    backup: &Backup,
    tenant: &str,
    id: &str,
    key: &str,
) -> Result<(), Error> {
    let snapshots = snapshots(backup, tenant, id, key).await?;
    if snapshots.is_empty() {
        return Ok(());
    }
    let credentials = Credentials::read(backup)?;
    let mut command = restic(backup, tenant, id, key, &credentials, true);
    command
        .args(["forget", "--prune"])
        .args(snapshots.iter().map(|s| s.id.as_str()));
    let output = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .map_err(|_| Error::Repository {
            id: id.to_owned(),
            reason: "forgetting its snapshots took longer than 10 minutes".to_owned(),
        })?
        .map_err(|error| Error::Repository {
            id: id.to_owned(),
            reason: format!("cannot run restic: {error}"),
        })?;
    if !output.status.success() {
        return Err(Error::Repository {
            id: id.to_owned(),
            reason: first_words(&output.stderr),
        });
    }
    Ok(())
}
