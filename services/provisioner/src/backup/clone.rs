//! A clone: a new store made from a backup of another store of the same tenant (a living one, or a deleted one
//! within its backups' retention window). Its provisioning has one step more than a new store's: before the
//! engine's bootstrap, the backup's database and files are restored into the new store, from the source store's
//! repository, by the same restore Job a restore in place runs. The bootstrap then finds a shop that is already
//! there and makes it the new store's: its address moved to the new one (WordPress: WP-CLI's `search-replace`; Medusa:
//! the uploaded files' URLs) and its administrator's password set from the new store's Secret. The source store is
//! never touched: its repository is only read.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use store_platform_runtime::record::StoreRecord;

use super::{
    BACKUP, job, policy,
    repository::{self, Credentials},
    restore::job_progress,
    secret::{CLONE_SECRET, clone_secret},
};
use crate::{
    engine::{Engine, Progress},
    error::Error,
    kube_ops::Kube,
    shared::{
        diagnose::pod_trouble, meta::APP_LABEL, observe::remove_job, workload::on_the_node_of,
    },
};

/// The clone's step, and the engine step it comes before.
pub const STEP: &str = "restore-backup";
pub const BEFORE: &str = "bootstrap";
/// The Job restoring the backup: one per store, since a store is cloned once.
pub const JOB: &str = "restore-clone";
/// The Job has an hour of its own (activeDeadlineSeconds); the step waits a little longer for Kubernetes to say so.
pub const DEADLINE: Duration = Duration::from_secs(3600 + 120);

const BUSY: &str = "restoring the backup's database and files into the new store";

/// Makes the Secret naming the source's repository, the backup script, the backup pods' egress and the restore Job.
/// Nothing when the source's key is gone (its backups were swept meanwhile): observe says so.
pub async fn apply(engine: &dyn Engine, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
    let settings = engine.settings();
    let backup = settings.backup.as_ref().ok_or(Error::BackupsOff)?;
    let Some(clone) = store.spec.source.as_ref() else {
        return Ok(());
    };
    let Some(key) =
        repository::existing_key_of(&kube.client, backup, &store.tenant, &clone.store_id).await?
    else {
        return Ok(());
    };
    let source = engine.backup_source(store);
    kube.apply(&clone_secret(
        &store.id,
        &repository::location(backup, &store.tenant, &clone.store_id),
        &key,
        &Credentials::read(backup)?,
    ))
    .await?;
    kube.apply(&job::script_config_map(&store.id)).await?;
    kube.apply(&policy::network_policy(&store.id, &source, backup))
        .await?;
    // The writer that uses the files' volume may run already (WordPress does, to lay out its files); a
    // ReadWriteOnce volume attaches to one node, so the restore runs on that one.
    let writer_running = !kube
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("{APP_LABEL}={}", source.next_to)))
        .await
        .map_err(Error::kubernetes("list the store's pods"))?
        .items
        .is_empty();
    kube.create_once(&job::restore_job(
        store,
        &source,
        settings,
        backup,
        JOB,
        job::RestoreFrom {
            snapshot: &clone.backup_id,
            secret: CLONE_SECRET,
            affinity: writer_running.then(|| on_the_node_of(source.next_to)),
        },
    ))
    .await?;
    Ok(())
}

pub async fn observe(
    engine: &dyn Engine,
    store: &StoreRecord,
    kube: &Kube,
) -> Result<Progress, Error> {
    if let Some(progress) = job_progress(kube, JOB, BUSY).await? {
        return Ok(progress);
    }
    let settings = engine.settings();
    let backup = settings.backup.as_ref().ok_or(Error::BackupsOff)?;
    let Some(clone) = store.spec.source.as_ref() else {
        return Ok(Progress::Done);
    };
    if repository::existing_key_of(&kube.client, backup, &store.tenant, &clone.store_id)
        .await?
        .is_none()
    {
        return Ok(Progress::Failed(format!(
            "the backups of store {:?} are gone (its retention window ended): there is nothing to clone; delete \
             this store",
            clone.store_id
        )));
    }
    apply(engine, store, kube).await?;
    Ok(Progress::Waiting(BUSY.to_owned()))
}

pub async fn diagnose(kube: &Kube) -> String {
    pod_trouble(kube, BACKUP).await
}

/// A failed restore's Job is removed; the step then makes a fresh one.
pub async fn reset(kube: &Kube) -> Result<(), Error> {
    remove_job(kube, JOB).await
}
