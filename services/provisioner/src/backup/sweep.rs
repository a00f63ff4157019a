//! A deleted store's backups are kept for the retention window (`--backup-deleted-retention`), then removed: every
//! snapshot of its repository forgotten and pruned with restic, then its key deleted, after which nothing of the
//! repository can be read by anyone. DeleteStore marks the key with the time of deletion; a store made again with
//! the same id by the same tenant takes its key and its backups back (the mark is removed when it is prepared).

use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use store_platform_runtime::{
    Shutdown,
    record::{STORE_ID_LABEL, StoreRecord, StoreSpec, TENANT_LABEL},
    tenant::Caller,
};

use super::{
    repository,
    secret::{DELETED_ANNOTATION, PASSWORD_KEY, key_secret_name},
};
use crate::{error::Error, settings::Backup, shared::meta::secret_value};

/// How often the sweep looks for expired keys.
const EVERY: Duration = Duration::from_secs(600);

/// The annotation of a deleted store's key Secret holding what the store was (its spec), for the list of deleted
/// stores.
pub const DELETED_SPEC_ANNOTATION: &str = "store-platform.io/deleted-store-spec";

/// Marks the key of store `store` as its deletion (at `now`), with what the store was; returns until when its
/// backups are kept, or None when the store has no key (it was never backed up).
pub async fn mark_deleted(
    client: &Client,
    backup: &Backup,
    store: &StoreRecord,
    now: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    let secrets = Api::<Secret>::namespaced(client.clone(), &backup.key_namespace);
    let name = key_secret_name(&store.tenant, &store.id);
    let spec = serde_json::to_string(&store.spec).unwrap_or_default();
    let patch = serde_json::json!({"metadata": {"annotations": {
        DELETED_ANNOTATION: now.to_string(),
        DELETED_SPEC_ANNOTATION: spec,
    }}});
    match secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Some(kept_until(backup, now))),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(source) => Err(Error::Kubernetes {
            action: "mark the store's backups for removal".into(),
            source,
        }),
    }
}

/// Removes the mark: the store exists again.
pub async fn unmark(client: &Client, backup: &Backup, tenant: &str, id: &str) -> Result<(), Error> {
    let secrets = Api::<Secret>::namespaced(client.clone(), &backup.key_namespace);
    let patch = serde_json::json!({"metadata": {"annotations": {
        DELETED_ANNOTATION: null,
        DELETED_SPEC_ANNOTATION: null,
    }}});
    match secrets
        .patch(
            &key_secret_name(tenant, id),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Kubernetes {
            action: "keep the store's backups".into(),
            source,
        }),
    }
}

/// A deleted store whose backups are kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Deleted {
    pub tenant: String,
    pub id: String,
    /// What the store was; None for a store deleted before this was recorded.
    pub spec: Option<StoreSpec>,
    pub deleted: Timestamp,
    pub kept_until: Timestamp,
}

/// The deleted stores whose backups are kept, of the tenants `caller` may see, most recently deleted first: those
/// with at least one backup to bring back (a store deleted before its first backup keeps a key and nothing else).
/// A repository that cannot be read now (the object store away) keeps its store listed: its backups may be there.
pub async fn deleted_stores(
    client: &Client,
    backup: &Backup,
    caller: &Caller,
) -> Result<Vec<Deleted>, Error> {
    let keys = Api::<Secret>::namespaced(client.clone(), &backup.key_namespace)
        .list(&ListParams::default().labels("app.kubernetes.io/name=backup-key"))
        .await
        .map_err(Error::kubernetes("list backup keys"))?;
    let candidates: Vec<(Deleted, String)> = keys
        .items
        .iter()
        .filter_map(|secret| {
            let labels = secret.metadata.labels.as_ref()?;
            let annotations = secret.metadata.annotations.as_ref()?;
            let tenant = labels.get(TENANT_LABEL)?;
            let when: Timestamp = annotations.get(DELETED_ANNOTATION)?.parse().ok()?;
            let key = secret_value(secret, PASSWORD_KEY)?;
            caller.may_see(tenant).then(|| {
                let deleted = Deleted {
                    tenant: tenant.clone(),
                    id: labels.get(STORE_ID_LABEL).cloned().unwrap_or_default(),
                    spec: annotations
                        .get(DELETED_SPEC_ANNOTATION)
                        .and_then(|spec| serde_json::from_str(spec).ok()),
                    deleted: when,
                    kept_until: kept_until(backup, when),
                };
                (deleted, key)
            })
        })
        .collect();
    // A few repositories at a time: each look is a restic process.
    let mut deleted: Vec<Deleted> = futures::stream::iter(candidates)
        .map(|(deleted, key)| async move {
            let backed_up = repository::snapshots(backup, &deleted.tenant, &deleted.id, &key)
                .await
                .map_or(true, |snapshots| !snapshots.is_empty());
            backed_up.then_some(deleted)
        })
        .buffer_unordered(4)
        .filter_map(std::future::ready)
        .collect()
        .await;
    deleted.sort_by(|a, b| b.deleted.cmp(&a.deleted).then_with(|| a.id.cmp(&b.id)));
    Ok(deleted)
}

/// Until when backups of a store deleted at `deleted` are kept.
pub fn kept_until(backup: &Backup, deleted: Timestamp) -> Timestamp {
    let window = jiff::SignedDuration::try_from(backup.deleted_retention)
        .unwrap_or(jiff::SignedDuration::MAX);
    deleted.checked_add(window).unwrap_or(Timestamp::MAX)
}

/// When `secret`'s store was deleted, if it was.
fn deleted_at(secret: &Secret) -> Option<Timestamp> {
    secret
        .metadata
        .annotations
        .as_ref()?
        .get(DELETED_ANNOTATION)?
        .parse()
        .ok()
}

/// One sweep at `now`: removes the backups of every store deleted longer ago than the window. Returns the stores
/// whose backups it removed, as `tenant/id`.
pub async fn once(client: &Client, backup: &Backup, now: Timestamp) -> Result<Vec<String>, Error> {
    let secrets = Api::<Secret>::namespaced(client.clone(), &backup.key_namespace);
    let keys = secrets
        .list(&ListParams::default().labels("app.kubernetes.io/name=backup-key"))
        .await
        .map_err(Error::kubernetes("list backup keys"))?;
    let mut removed = Vec::new();
    for secret in keys.items {
        let Some(deleted) = deleted_at(&secret) else {
            continue;
        };
        if kept_until(backup, deleted) > now {
            continue;
        }
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        let (Some(tenant), Some(id), Some(key)) = (
            labels.get(TENANT_LABEL),
            labels.get(STORE_ID_LABEL),
            secret_value(&secret, PASSWORD_KEY),
        ) else {
            continue;
        };
        repository::forget_everything(backup, tenant, id, &key).await?;
        let name = secret.metadata.name.clone().unwrap_or_default();
        match secrets.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(Error::Kubernetes {
                    action: "delete an expired backup key".into(),
                    source,
                });
            }
        }
        tracing::info!(%tenant, store = %id, "a deleted store's backups were removed after their retention window");
        removed.push(format!("{tenant}/{id}"));
    }
    Ok(removed)
}

/// Sweeps every [`EVERY`] until `shutdown`.
pub async fn run(client: Client, backup: Backup, shutdown: Shutdown) {
    loop {
        if let Err(error) = once(&client, &backup, Timestamp::now()).await {
            tracing::warn!(error = %error.chain(), "removing expired backups failed; trying again later");
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = shutdown.wait() => return,
        }
    }
}
