//! Restore in place, as an operation: the store is backed up as it is, its writers stop, its database and files
//! are replaced with the backup's (and its cache emptied), its writers start again, and the engine's own
//! verification (its bootstrap, which ends by checking that a customer can order) runs once more. Each step is a
//! step like provisioning's, advanced by the same loop and shown by the same stream; a provisioner killed at any
//! point goes on from what Kubernetes holds (every Job has a name fixed by the operation's start).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::{apps::v1::Deployment, batch::v1::Job, core::v1::Pod};
use kube::api::{ListParams, Patch, PatchParams};
use store_platform_runtime::record::{OperationStatus, StepState, StepStatus, StoreRecord};

use super::{JobState, Kind, SCHEDULE, Source, job};
use crate::{
    engine::{Engine, Progress, Steps},
    error::Error,
    kube_ops::Kube,
    shared::{diagnose::pod_trouble, meta::APP_LABEL},
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

/// A new restore of backup `snapshot`, every step pending.
pub fn operation(snapshot: &str, now: Timestamp) -> OperationStatus {
    OperationStatus {
        kind: store_platform_runtime::record::OperationKind::Restore,
        backup: snapshot.to_owned(),
        steps: STEPS.iter().map(|name| StepStatus::pending(name)).collect(),
        state: store_platform_runtime::record::OperationState::Running,
        message: String::new(),
        start_time: now,
        finish_time: None,
    }
}

/// Where Job `name` stands: done, failed (why, in the failing container's words), or running; None when it does
/// not exist (a retry removed the failed one), so the step makes it afresh.
pub(super) async fn job_progress(
    kube: &Kube,
    name: &str,
    busy: &str,
) -> Result<Option<Progress>, Error> {
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
        self.engine.backup_source(&store.id)
    }

    /// Whether the restore got as far as changing the store (its writers stopped, or more).
    pub fn changed_the_store(&self, steps: &[StepStatus]) -> bool {
        steps
            .iter()
            .skip_while(|s| s.name != FIRST_CHANGE)
            .any(|s| s.state != StepState::Pending)
    }

    /// The store's failure reason when the restore failed after changing it.
    pub fn failure_reason(&self, reason: &str) -> String {
        let (safety, _) = job_names(self.operation.start_time);
        format!(
            "the restore of backup {} failed at {reason}. The store as it was before the restore is in the backup \
             its Job {safety} took; RetryStore goes on from the step that failed",
            short(&self.operation.backup)
        )
    }

    /// Suspends (or resumes) the store's CronJobs: the engine's and the backup schedule.
    async fn suspend_cron_jobs(
        &self,
        source: &Source,
        kube: &Kube,
        suspend: bool,
    ) -> Result<(), Error> {
        let batch_v1 = kube.serves_batch_v1_cron_jobs().await?;
        for name in source.cron_jobs.iter().chain([&SCHEDULE]) {
            kube.suspend_cron_job(name, suspend, batch_v1).await?;
        }
        Ok(())
    }

    /// Clears what failed `step` left behind so it runs again (RetryStore): its Job.
    pub async fn reset(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
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

    /// The pods still running of the store's writers.
    async fn writer_pods(&self, source: &Source, kube: &Kube) -> Result<Vec<String>, Error> {
        let selector = format!("{APP_LABEL} in ({})", source.writers.join(","));
        let pods = kube
            .api::<Pod>()
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(Error::kubernetes("list the store's writers"))?;
        Ok(pods
            .items
            .into_iter()
            .filter_map(|pod| pod.metadata.name)
            .collect())
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
                super::prepare(store, &source, settings, kube).await?;
                kube.create_once(&job::job(
                    store,
                    &source,
                    settings,
                    backup,
                    Kind::PreRestore,
                    &safety,
                ))
                .await?;
            }
            "stop-writers" => {
                // Customers see that the shop is being restored rather than an error.
                super::maintenance::show(store, &source, settings, kube).await?;
                self.suspend_cron_jobs(&source, kube, true).await?;
                for name in source.writers {
                    kube.api::<Deployment>()
                        .patch(
                            name,
                            &PatchParams::default(),
                            &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
                        )
                        .await
                        .map_err(Error::kubernetes(format!("stop Deployment {name}")))?;
                }
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
                for writer_step in source.writer_steps {
                    self.engine.apply(writer_step, store, kube).await?;
                }
                self.suspend_cron_jobs(&source, kube, false).await?;
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
            "stop-writers" => {
                let pods = self.writer_pods(&source, kube).await?;
                let backups = super::running(kube).await?;
                if !pods.is_empty() {
                    Progress::Waiting(format!("waiting for {} to stop", pods.join(", ")))
                } else if let Some(job) = backups {
                    Progress::Waiting(format!(
                        "waiting for backup {} to finish",
                        job.metadata.name.unwrap_or_default()
                    ))
                } else {
                    Progress::Done
                }
            }
            "start-writers" => {
                for writer_step in source.writer_steps {
                    match self.engine.observe(writer_step, store, kube).await? {
                        Progress::Done => {}
                        other => return Ok(other),
                    }
                }
                // The writers serve again: the Services point back at them, and the page goes.
                match super::maintenance::hide(&source, kube).await? {
                    Some(waiting) => Progress::Waiting(waiting),
                    None => Progress::Done,
                }
            }
            "verify" => {
                let started = self.operation.start_time;
                match kube.get::<Job>(source.verify_job).await? {
                    Some(job) if job.metadata.deletion_timestamp.is_some() => Progress::Waiting(
                        format!("removing the {} Job from before", source.verify_job),
                    ),
                    // The Job of the store's provisioning (or of an earlier restore): removed, so a fresh one runs.
                    Some(job)
                        if job
                            .metadata
                            .creation_timestamp
                            .as_ref()
                            .is_none_or(|created| created.0 < started) =>
                    {
                        self.engine.reset(source.verify_step, store, kube).await?;
                        Progress::Waiting(format!(
                            "removing the {} Job from before",
                            source.verify_job
                        ))
                    }
                    Some(_) => self.engine.observe(source.verify_step, store, kube).await?,
                    None => {
                        self.engine.apply(source.verify_step, store, kube).await?;
                        Progress::Waiting("checking that a customer can order".to_owned())
                    }
                }
            }
            _ => Progress::Done,
        })
    }

    async fn diagnose(&self, step: &str, store: &StoreRecord, kube: &Kube) -> String {
        let source = self.source(store);
        match step {
            "stop-writers" => match self.writer_pods(&source, kube).await {
                Ok(pods) if !pods.is_empty() => format!("{} did not stop", pods.join(", ")),
                _ => "a backup was still running".to_owned(),
            },
            "start-writers" => {
                let mut why = Vec::new();
                for writer_step in source.writer_steps {
                    why.push(self.engine.diagnose(writer_step, store, kube).await);
                }
                why.join("; ")
            }
            "verify" => self.engine.diagnose(source.verify_step, store, kube).await,
            _ => pod_trouble(kube, super::BACKUP).await,
        }
    }
}
