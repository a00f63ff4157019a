//! Restore in place, as an operation: the store is backed up as it is, its writers stop, its database and files
//! are replaced with the backup's (and its cache emptied), its writers start again, and the engine's own
//! verification (its bootstrap, which ends by checking that a customer can order) runs once more. Each step is a
//! step like provisioning's, advanced by the same loop and shown by the same stream; a provisioner killed at any
//! point goes on from what Kubernetes holds (every Job has a name fixed by the operation's start).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use store_platform_runtime::record::{
    OperationKind, OperationStatus, Phase, StepState, StepStatus, StoreRecord,
};

use super::{JobState, Kind, Source, job, maintenance::Why};
use crate::{
    engine::{Engine, Progress, Steps},
    error::Error,
    kube_ops::Kube,
    operation::{Operation, writers},
    shared::diagnose::pod_trouble,
};

/// A restore's steps, in order.
pub const STEPS: &[&str] = &[
    "safety-backup",
    "stop-writers",
    "restore-data",
    "start-writers",
    "verify",
];

/// The first step that changes the store: a restore failing before it leaves the store as it was, READY.
const FIRST_CHANGE: &str = "stop-writers";

/// The restore of one store, for the reconciler.
pub struct Restore<'a> {
    engine: &'a dyn Engine,
    operation: &'a OperationStatus,
}

impl std::fmt::Debug for Restore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restore")
            .field("backup", &self.operation.backup)
            .finish_non_exhaustive()
    }
}

/// The Jobs of a restore that started at `start`: the backup taken first, and the restore itself.
pub fn job_names(start: Timestamp) -> (String, String) {
    let stamp = start.strftime("%Y%m%d-%H%M%S");
    (
        format!("backup-{stamp}-pre-restore"),
        format!("restore-{stamp}"),
    )
}

/// The step a restore of a suspended store begins with: the backup and the restore need its databases.
const START_DATABASES: &str = "start-databases";

/// A new restore of backup `snapshot`, every step pending; of a suspended store, its databases start first (and it
/// is READY, running again, when the restore succeeds).
pub fn operation(snapshot: &str, suspended: bool, now: Timestamp) -> OperationStatus {
    let mut steps = STEPS.to_vec();
    if suspended {
        steps.insert(0, START_DATABASES);
    }
    OperationStatus {
        backup: snapshot.to_owned(),
        ..OperationStatus::start(OperationKind::Restore, &steps, now)
    }
}

/// Where Job `name` stands: done, failed (why, in the failing container's words), or running; None when it does
/// not exist (a retry removed the failed one), so the step makes it afresh.
pub async fn job_progress(kube: &Kube, name: &str, busy: &str) -> Result<Option<Progress>, Error> {
    let Some(job) = kube.get::<Job>(name).await? else {
        return Ok(None);
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Some(Progress::Waiting(format!(
            "removing the failed Job {name}"
        ))));
    }
    Ok(Some(match super::job_state(&job) {
        JobState::Succeeded => Progress::Done,
        JobState::Failed => Progress::Failed(super::failure(kube, &job).await),
        JobState::Running => Progress::Waiting(busy.to_owned()),
    }))
}

impl<'a> Restore<'a> {
    pub fn new(engine: &'a dyn Engine, operation: &'a OperationStatus) -> Self {
        Self { engine, operation }
    }

    fn source(&self, store: &StoreRecord) -> Source {
        self.engine.backup_source(store)
    }

    /// Whether the store was suspended when the restore began.
    fn suspended(&self) -> bool {
        self.operation
            .steps
            .iter()
            .any(|s| s.name == START_DATABASES)
    }
}

/// The first characters of a snapshot id, as restic shows it.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

#[tonic::async_trait]
impl Steps for Restore<'_> {
    fn deadline(&self, step: &str) -> Duration {
        let settings = self.engine.settings();
        match step {
            // The Jobs have an hour of their own (activeDeadlineSeconds); the step waits a little longer for
            // Kubernetes to say so.
            "safety-backup" | "restore-data" => Duration::from_secs(3600 + 120),
            "verify" => settings.bootstrap_deadline,
            _ => settings.step_deadline,
        }
    }

    async fn apply(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        let settings = self.engine.settings();
        let backup = settings.backup.as_ref().ok_or(Error::BackupsOff)?;
        let source = self.source(store);
        let (safety, restore) = job_names(self.operation.start_time);
        match step {
            "safety-backup" => {
                writers::back_up_first(store, &source, settings, kube, (Kind::PreRestore, &safety))
                    .await?;
            }
            "stop-writers" => {
                writers::stop(store, &source, settings, kube, Why::Restoring).await?;
            }
            "restore-data" => {
                kube.create_once(&job::restore_job(
                    store,
                    &source,
                    settings,
                    backup,
                    &restore,
                    job::RestoreFrom {
                        snapshot: &self.operation.backup,
                        secret: super::secret::STORE_SECRET,
                        affinity: None,
                    },
                ))
                .await?;
            }
            "start-writers" => {
                // A suspended store's other workloads start too.
                let steps = if self.suspended() {
                    source.image_steps
                } else {
                    source.writer_steps
                };
                writers::start(self.engine, store, steps, &source, kube).await?;
            }
            START_DATABASES => {
                writers::start_databases(self.engine, store, &source, kube).await?;
            }
            // The verification's Job runs afresh: observe removes the one from before and makes a new one.
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
        let source = self.source(store);
        let (safety, restore) = job_names(self.operation.start_time);
        Ok(match step {
            "safety-backup" | "restore-data" => {
                let (name, busy) = if step == "safety-backup" {
                    (safety, "backing the store up as it is")
                } else {
                    (
                        restore,
                        "replacing the database and the files with the backup's",
                    )
                };
                match job_progress(kube, &name, busy).await? {
                    Some(progress) => progress,
                    None => {
                        self.apply(step, store, kube).await?;
                        Progress::Waiting(busy.to_owned())
                    }
                }
            }
            "stop-writers" => writers::stopped(&source, kube).await?,
            "start-writers" => {
                let steps = if self.suspended() {
                    source.image_steps
                } else {
                    source.writer_steps
                };
                writers::started(self.engine, store, steps, &source, kube).await?
            }
            START_DATABASES => {
                writers::databases_started(self.engine, store, &source, kube).await?
            }
            "verify" => {
                writers::verify(self.engine, store, &source, kube, self.operation.start_time)
                    .await?
            }
            _ => Progress::Done,
        })
    }

    async fn diagnose(&self, step: &str, store: &StoreRecord, kube: &Kube) -> String {
        let source = self.source(store);
        match step {
            "stop-writers" => writers::diagnose_stopped(&source, kube).await,
            "start-writers" => {
                writers::diagnose_started(self.engine, store, source.writer_steps, kube).await
            }
            "verify" => self.engine.diagnose(source.verify_step, store, kube).await,
            _ => pod_trouble(kube, super::BACKUP).await,
        }
    }
}

#[tonic::async_trait]
impl Operation for Restore<'_> {
    fn phase(&self) -> Phase {
        Phase::Restoring
    }

    fn unchanged_phase(&self) -> Phase {
        if self.suspended() {
            Phase::Suspended
        } else {
            Phase::Ready
        }
    }

    /// Whether the restore got as far as changing the store (its writers stopped, or more).
    fn changed_the_store(&self, steps: &[StepStatus]) -> bool {
        steps
            .iter()
            .skip_while(|s| s.name != FIRST_CHANGE)
            .any(|s| s.state != StepState::Pending)
    }

    /// The store's failure reason when the restore failed after changing it.
    fn failure_reason(&self, reason: &str) -> String {
        let (safety, _) = job_names(self.operation.start_time);
        format!(
            "the restore of backup {} failed at {reason}. The store as it was before the restore is in the backup \
             its Job {safety} took; RetryStore goes on from the step that failed",
            short(&self.operation.backup)
        )
    }

    /// Clears what failed `step` left behind so it runs again (RetryStore): its Job.
    async fn reset(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        let (safety, restore) = job_names(self.operation.start_time);
        match step {
            "safety-backup" => crate::shared::observe::remove_job(kube, &safety).await,
            "restore-data" => crate::shared::observe::remove_job(kube, &restore).await,
            "verify" => {
                let source = self.source(store);
                self.engine.reset(source.verify_step, store, kube).await
            }
            _ => Ok(()),
        }
    }
}
