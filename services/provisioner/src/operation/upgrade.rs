//! Upgrade, as an operation: the store is backed up as it is, its writers stop behind a page, the new version's
//! migrations run as a Job in the new version's image, the writers start again on the new images, and the engine
//! checks that a customer can order. A failure undoes it on its own: after the migrations started, the writers stop
//! again, the backup taken first is restored, and the old version's writers and verification run; before, the old
//! writers simply start again. The store then is READY on its old version, and the operation says what failed.
//! Every Job's name is fixed by the operation's start, so a provisioner killed at any point goes on where it was.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use store_platform_runtime::record::{
    OperationKind, OperationStatus, Phase, StepState, StepStatus, StoreRecord, StoreStatus, Version,
};

use super::{Operation, ROLLBACK, writers};
use crate::{
    backup::{self, Kind, Source, job, maintenance::Why, restore::job_progress},
    engine::{Engine, Progress, Steps},
    error::Error,
    kube_ops::Kube,
    shared::diagnose::pod_trouble,
};

/// An upgrade's steps, in order.
pub const STEPS: &[&str] = &[
    "safety-backup",
    "stop-writers",
    "migrate",
    "start-writers",
    "verify",
];

/// The steps that undo an upgrade whose migrations started: the database and files come back from the backup.
const UNDO_MIGRATION: &[&str] = &[
    "rollback-stop-writers",
    "rollback-restore",
    "rollback-start-writers",
    "rollback-verify",
];

/// The component of the migration Job's pods.
pub const MIGRATION: &str = "upgrade";

/// A new upgrade of a store on `from` to `to`, every step pending.
pub fn operation(from: Option<Version>, to: Version, now: Timestamp) -> OperationStatus {
    OperationStatus {
        from_version: from,
        to_version: Some(to),
        ..OperationStatus::start(OperationKind::Upgrade, STEPS, now)
    }
}

/// The version named `wanted` among those `settings` offer for `engine` (empty: the default), or an
/// INVALID_ARGUMENT naming `field`.
pub fn target<'a>(
    settings: &'a crate::settings::Settings,
    engine: store_platform_runtime::record::Engine,
    (field, wanted): (&'static str, &str),
) -> Result<&'a Version, Error> {
    let versions = settings.versions(engine);
    if wanted.is_empty() {
        return Ok(versions.default_version());
    }
    versions.find(wanted).ok_or_else(|| Error::InvalidField {
        field,
        reason: format!(
            "the platform offers no {} version {wanted:?} (it offers {})",
            engine.as_str(),
            versions
                .offered()
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// Records in `store` (its version recorded, see `operation::record_version`) an upgrade to `target`, for the
/// caller to write; or says why it cannot start: another operation runs, the store is not READY, it already runs
/// `target`, `target` is older (INVALID_ARGUMENT naming `field`), or backups are off.
pub fn begin(
    store: &mut StoreRecord,
    (field, target): (&'static str, &Version),
    backups_on: bool,
    now: Timestamp,
) -> Result<(), Error> {
    let id = &store.id;
    if let Some(what) = super::running(store) {
        return Err(Error::OperationRunning {
            id: id.clone(),
            what,
        });
    }
    if store.terminating || store.phase() != Phase::Ready {
        return Err(Error::NotReadyForUpgrade {
            id: id.clone(),
            phase: store.phase().as_str(),
        });
    }
    // A version the platform no longer offers (or never named) has no place in the order: any offered one is a
    // way forward.
    if let Some(current) = store.status.version.as_ref().filter(|v| !v.name.is_empty()) {
        if current.name == target.name {
            return Err(Error::AlreadyOnVersion {
                id: id.clone(),
                version: current.name.clone(),
            });
        }
        if crate::settings::compare_versions(&target.name, &current.name).is_lt() {
            return Err(Error::InvalidField {
                field,
                reason: format!(
                    "{} is older than version {} the store runs; migrations cannot be undone, so a store goes back \
                     only by restoring a backup from before its upgrade",
                    target.name, current.name
                ),
            });
        }
    }
    if !backups_on {
        return Err(Error::BackupsOff);
    }
    store.status.phase = Phase::Upgrading;
    store.status.operation = Some(operation(store.status.version.clone(), target.clone(), now));
    store.status.update_time = Some(now);
    Ok(())
}

/// The Jobs of an upgrade that started at `start`: the backup taken first, the migrations, and the restore of a
/// rollback.
pub fn job_names(start: Timestamp) -> (String, String, String) {
    let stamp = start.strftime("%Y%m%d-%H%M%S");
    (
        format!("backup-{stamp}-pre-upgrade"),
        format!("upgrade-{stamp}"),
        format!("rollback-{stamp}"),
    )
}

/// The upgrade of one store, for the reconciler.
pub struct Upgrade<'a> {
    engine: &'a dyn Engine,
    operation: &'a OperationStatus,
}

impl std::fmt::Debug for Upgrade<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrade")
            .field("to", &self.to())
            .finish_non_exhaustive()
    }
}

impl<'a> Upgrade<'a> {
    pub fn new(engine: &'a dyn Engine, operation: &'a OperationStatus) -> Self {
        Self { engine, operation }
    }

    fn to(&self) -> &str {
        self.operation
            .to_version
            .as_ref()
            .map_or("?", |v| v.name.as_str())
    }

    /// `store` as its new version: what the forward steps build.
    fn upgraded(&self, store: &StoreRecord) -> StoreRecord {
        let mut upgraded = store.clone();
        if let Some(version) = &self.operation.to_version {
            upgraded.status.version = Some(version.clone());
        }
        upgraded
    }

    /// When the rollback started (its first step's start), or now if it has not yet.
    fn rollback_start(&self) -> Timestamp {
        self.operation
            .steps
            .iter()
            .find(|s| s.name.starts_with(ROLLBACK))
            .and_then(|s| s.start_time)
            .unwrap_or_else(Timestamp::now)
    }

    /// The old version's store, or the new one's, for `step`.
    fn store_for(&self, step: &str, store: &StoreRecord) -> (StoreRecord, Source) {
        let store = if step.starts_with(ROLLBACK) {
            store.clone()
        } else {
            self.upgraded(store)
        };
        let source = self.engine.backup_source(&store);
        (store, source)
    }
}

/// The id of the snapshot backup Job `name` made, from its pod's termination message (`snapshot=<id> ...`).
async fn snapshot_of(kube: &Kube, name: &str) -> Result<Option<String>, Error> {
    let pods = kube
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("job-name={name}")))
        .await
        .map_err(Error::kubernetes("list the backup's pods"))?;
    Ok(pods
        .items
        .iter()
        .filter_map(|pod| pod.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter_map(|status| status.state.as_ref()?.terminated.as_ref())
        .filter(|terminated| terminated.exit_code == 0)
        .filter_map(|terminated| terminated.message.as_deref())
        .flat_map(str::split_whitespace)
        .find_map(|word| word.strip_prefix("snapshot="))
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned))
}

#[tonic::async_trait]
impl Steps for Upgrade<'_> {
    fn deadline(&self, step: &str) -> Duration {
        let settings = self.engine.settings();
        match step {
            // The Jobs have an hour of their own (activeDeadlineSeconds); the step waits a little longer for
            // Kubernetes to say so.
            "safety-backup" | "rollback-restore" => Duration::from_secs(3600 + 120),
            "migrate" | "verify" | "rollback-verify" => settings.bootstrap_deadline,
            _ => settings.step_deadline,
        }
    }

    async fn apply(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        let settings = self.engine.settings();
        let backup = settings.backup.as_ref().ok_or(Error::BackupsOff)?;
        let (safety, migration, rollback) = job_names(self.operation.start_time);
        let (subject, source) = self.store_for(step, store);
        let settings = settings.for_store(&subject);
        let settings = settings.as_ref();
        match step {
            "safety-backup" => {
                writers::back_up_first(store, &source, settings, kube, (Kind::PreUpgrade, &safety))
                    .await?;
            }
            "stop-writers" | "rollback-stop-writers" => {
                writers::stop(&subject, &source, settings, kube, Why::Upgrading).await?;
            }
            "migrate" => self.engine.migrate(&subject, &migration, kube).await?,
            "start-writers" | "rollback-start-writers" => {
                writers::start(self.engine, &subject, source.image_steps, &source, kube).await?;
            }
            "rollback-restore" => {
                // The backup's id is in its Job's pod; a rollback without it cannot restore and says so.
                if let Some(snapshot) = snapshot_of(kube, &safety).await? {
                    kube.create_once(&job::restore_job(
                        store,
                        &source,
                        settings,
                        backup,
                        &rollback,
                        job::RestoreFrom {
                            snapshot: &snapshot,
                            secret: backup::secret::STORE_SECRET,
                            affinity: None,
                        },
                    ))
                    .await?;
                }
            }
            // The verifications' Jobs run afresh: observe removes the one from before and makes a new one.
            _ => {}
        }
        Ok(())
    }

    async fn observe(
        &self,
        step: &str,
        store: &StoreRecord,
        kube: &Kube,
    ) -> Result<Progress, Error> {
        let (safety, migration, rollback) = job_names(self.operation.start_time);
        let (subject, source) = self.store_for(step, store);
        let job = |name: String, busy: &'static str| async move {
            match job_progress(kube, &name, busy).await? {
                Some(progress) => Ok::<_, Error>(progress),
                None => {
                    self.apply(step, store, kube).await?;
                    Ok(Progress::Waiting(busy.to_owned()))
                }
            }
        };
        Ok(match step {
            "safety-backup" => job(safety, "backing the store up as it is").await?,
            "migrate" => job(migration, "migrating the database to the new version").await?,
            "rollback-restore" => {
                if snapshot_of(kube, &safety).await?.is_none() {
                    return Ok(Progress::Failed(format!(
                        "the id of the backup taken before the upgrade cannot be read: the pod of Job {safety} is \
                         gone. Restore that backup with RestoreStore (ListBackups lists it as pre-upgrade)"
                    )));
                }
                job(rollback, "restoring the backup taken before the upgrade").await?
            }
            "stop-writers" | "rollback-stop-writers" => writers::stopped(&source, kube).await?,
            "start-writers" | "rollback-start-writers" => {
                writers::started(self.engine, &subject, source.image_steps, &source, kube).await?
            }
            "verify" => {
                writers::verify(
                    self.engine,
                    &subject,
                    &source,
                    kube,
                    self.operation.start_time,
                )
                .await?
            }
            "rollback-verify" => {
                writers::verify(self.engine, &subject, &source, kube, self.rollback_start()).await?
            }
            _ => Progress::Done,
        })
    }

    async fn diagnose(&self, step: &str, store: &StoreRecord, kube: &Kube) -> String {
        let (subject, source) = self.store_for(step, store);
        match step {
            "stop-writers" | "rollback-stop-writers" => {
                writers::diagnose_stopped(&source, kube).await
            }
            "start-writers" | "rollback-start-writers" => {
                writers::diagnose_started(self.engine, &subject, source.image_steps, kube).await
            }
            "migrate" => pod_trouble(kube, self.engine.migration_app()).await,
            "verify" | "rollback-verify" => {
                self.engine
                    .diagnose(source.verify_step, &subject, kube)
                    .await
            }
            _ => pod_trouble(kube, backup::BACKUP).await,
        }
    }
}

#[tonic::async_trait]
impl Operation for Upgrade<'_> {
    fn phase(&self) -> Phase {
        Phase::Upgrading
    }

    fn changed_the_store(&self, steps: &[StepStatus]) -> bool {
        steps
            .iter()
            .skip_while(|s| s.name != "stop-writers")
            .any(|s| s.state != StepState::Pending)
    }

    fn rollback(&self, steps: &[StepStatus]) -> Vec<String> {
        let started = |name: &str| {
            steps
                .iter()
                .any(|s| s.name == name && s.state != StepState::Pending)
        };
        let undo: &[&str] = if started("migrate") {
            UNDO_MIGRATION
        } else {
            &["rollback-start-writers"]
        };
        undo.iter().map(|name| (*name).to_owned()).collect()
    }

    fn failure_reason(&self, reason: &str) -> String {
        let (safety, _, _) = job_names(self.operation.start_time);
        format!(
            "the upgrade to version {} failed: {reason}. The store as it was before the upgrade is in the backup \
             its Job {safety} took; RetryStore goes on from the step that failed",
            self.to()
        )
    }

    fn succeeded(&self, store: &StoreRecord, status: &mut StoreStatus) {
        status.phase = Phase::Ready;
        let Some(version) = &self.operation.to_version else {
            return;
        };
        // The new images' objects were applied with the settings of now: a store that had the settings of now
        // before has them on its new version too, and needs no reconfigure after its upgrade.
        let settings = self.engine.settings();
        let engine = store.spec.engine;
        if status.settings_generation
            == settings.generation(engine, self.operation.from_version.as_ref())
        {
            status.settings_generation = settings.generation(engine, Some(version));
        }
        status.version = Some(version.clone());
    }

    async fn reset(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        let (safety, migration, rollback) = job_names(self.operation.start_time);
        let (subject, source) = self.store_for(step, store);
        match step {
            "safety-backup" => crate::shared::observe::remove_job(kube, &safety).await,
            "migrate" => crate::shared::observe::remove_job(kube, &migration).await,
            "rollback-restore" => crate::shared::observe::remove_job(kube, &rollback).await,
            "verify" | "rollback-verify" => {
                self.engine.reset(source.verify_step, &subject, kube).await
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(states: &[(&str, StepState)]) -> Vec<StepStatus> {
        states
            .iter()
            .map(|(name, state)| StepStatus {
                state: *state,
                ..StepStatus::pending(name)
            })
            .collect()
    }

    #[test]
    fn job_names_are_fixed_by_the_start() {
        let start: Timestamp = "2026-12-06T03:04:05Z".parse().expect("time");
        assert_eq!(
            job_names(start),
            (
                "backup-20261206-030405-pre-upgrade".to_owned(),
                "upgrade-20261206-030405".to_owned(),
                "rollback-20261206-030405".to_owned()
            )
        );
    }

    #[test]
    fn a_failed_migration_rolls_back_through_the_backup_an_earlier_failure_only_restarts_the_writers()
     {
        use StepState::*;
        let settings = std::sync::Arc::new(crate::settings::Settings::local());
        let engine = crate::medusa::Medusa::new(settings);
        let operation = operation(
            None,
            crate::settings::version("2", &[]),
            Timestamp::UNIX_EPOCH,
        );
        let upgrade = Upgrade::new(&engine, &operation);
        let failed_migration = steps(&[
            ("safety-backup", Succeeded),
            ("stop-writers", Succeeded),
            ("migrate", Failed),
            ("start-writers", Pending),
            ("verify", Pending),
        ]);
        assert!(upgrade.changed_the_store(&failed_migration));
        assert_eq!(upgrade.rollback(&failed_migration), UNDO_MIGRATION);
        let failed_stop = steps(&[
            ("safety-backup", Succeeded),
            ("stop-writers", Failed),
            ("migrate", Pending),
        ]);
        assert_eq!(upgrade.rollback(&failed_stop), ["rollback-start-writers"]);
        let failed_backup = steps(&[("safety-backup", Failed), ("stop-writers", Pending)]);
        assert!(!upgrade.changed_the_store(&failed_backup));
    }
}
