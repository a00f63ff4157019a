//! Pause and resume. Suspending stops a store's writers behind a page saying it is paused, then its other workloads
//! and its databases: its pods, and the CPU and memory they requested, are gone; its volumes stay. Its scheduled
//! backups go on: while a backup Job of a suspended store runs, its databases run too ([`hold`]). Resuming starts
//! the databases and the workloads again, on the store's own version, takes the page down, and has the engine check
//! once more that a customer can order.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use store_platform_runtime::record::{
    OperationKind, OperationStatus, Phase, StepState, StepStatus, StoreRecord, StoreStatus,
};

use super::{Operation, writers};
use crate::{
    backup::{self, maintenance::Why},
    engine::{Engine, Progress, Steps},
    error::Error,
    kube_ops::Kube,
};

pub const SUSPEND_STEPS: &[&str] = &["stop-writers", "stop-workloads"];
pub const RESUME_STEPS: &[&str] = &["start-databases", "start-writers", "verify"];

/// A new suspend or resume, every step pending.
pub fn operation(kind: OperationKind, now: Timestamp) -> OperationStatus {
    let steps = if kind == OperationKind::Suspend {
        SUSPEND_STEPS
    } else {
        RESUME_STEPS
    };
    OperationStatus::start(kind, steps, now)
}

/// A suspend or a resume of one store, for the reconciler.
pub struct Pause<'a> {
    engine: &'a dyn Engine,
    operation: &'a OperationStatus,
}

impl std::fmt::Debug for Pause<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pause")
            .field("kind", &self.operation.kind)
            .finish_non_exhaustive()
    }
}

impl<'a> Pause<'a> {
    pub fn new(engine: &'a dyn Engine, operation: &'a OperationStatus) -> Self {
        Self { engine, operation }
    }

    fn resuming(&self) -> bool {
        self.operation.kind == OperationKind::Resume
    }
}

/// The other workloads' and the databases' pods still running.
async fn workload_pods(source: &backup::Source, kube: &Kube) -> Result<Vec<String>, Error> {
    let apps: Vec<&str> = source
        .idle
        .iter()
        .chain(source.databases)
        .copied()
        .collect();
    writers::pods_of(&apps, kube).await
}

#[tonic::async_trait]
impl Steps for Pause<'_> {
    fn deadline(&self, step: &str) -> Duration {
        let settings = self.engine.settings();
        match step {
            "verify" => settings.bootstrap_deadline,
            _ => settings.step_deadline,
        }
    }

    async fn apply(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        let source = self.engine.backup_source(store);
        let settings = self.engine.settings().for_store(store);
        match step {
            "stop-writers" => writers::stop(store, &source, &settings, kube, Why::Paused).await?,
            "stop-workloads" => {
                writers::scale::<Deployment>(kube, source.idle, 0).await?;
                writers::scale::<StatefulSet>(kube, source.databases, 0).await?;
            }
            "start-databases" => {
                writers::start_databases(self.engine, store, &source, kube).await?;
            }
            "start-writers" => {
                writers::start(self.engine, store, source.image_steps, &source, kube).await?;
            }
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
        let source = self.engine.backup_source(store);
        Ok(match step {
            "stop-writers" => writers::stopped(&source, kube).await?,
            "stop-workloads" => {
                let pods = workload_pods(&source, kube).await?;
                if pods.is_empty() {
                    Progress::Done
                } else {
                    // Pods are not watched: looked at again until they are gone.
                    Progress::Recheck(format!("waiting for {} to stop", pods.join(", ")))
                }
            }
            "start-databases" => {
                writers::databases_started(self.engine, store, &source, kube).await?
            }
            "start-writers" => {
                writers::started(self.engine, store, source.image_steps, &source, kube).await?
            }
            "verify" => {
                writers::verify(self.engine, store, &source, kube, self.operation.start_time)
                    .await?
            }
            _ => Progress::Done,
        })
    }

    async fn diagnose(&self, step: &str, store: &StoreRecord, kube: &Kube) -> String {
        let source = self.engine.backup_source(store);
        match step {
            "stop-writers" => writers::diagnose_stopped(&source, kube).await,
            "stop-workloads" => match workload_pods(&source, kube).await {
                Ok(pods) => format!("{} did not stop", pods.join(", ")),
                Err(error) => error.chain(),
            },
            "start-databases" => {
                writers::diagnose_started(self.engine, store, source.database_steps, kube).await
            }
            "start-writers" => {
                writers::diagnose_started(self.engine, store, source.image_steps, kube).await
            }
            "verify" => self.engine.diagnose(source.verify_step, store, kube).await,
            _ => String::new(),
        }
    }
}

#[tonic::async_trait]
impl Operation for Pause<'_> {
    fn phase(&self) -> Phase {
        if self.resuming() {
            Phase::Resuming
        } else {
            Phase::Suspended
        }
    }

    fn changed_the_store(&self, steps: &[StepStatus]) -> bool {
        steps.iter().any(|s| s.state != StepState::Pending)
    }

    fn failure_reason(&self, reason: &str) -> String {
        if self.resuming() {
            format!(
                "the store did not resume: {reason}. Its data is as it was; RetryStore goes on from the step that \
                 failed"
            )
        } else {
            format!(
                "the store did not finish pausing: {reason}. Its data is as it was; RetryStore goes on from the step \
                 that failed, and ResumeStore brings it back"
            )
        }
    }

    fn succeeded(&self, _store: &StoreRecord, status: &mut StoreStatus) {
        status.phase = if self.resuming() {
            Phase::Ready
        } else {
            Phase::Suspended
        };
    }

    async fn reset(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        if step == "verify" {
            let source = self.engine.backup_source(store);
            self.engine.reset(source.verify_step, store, kube).await?;
        }
        Ok(())
    }
}

/// Keeps a suspended store's databases stopped, except while one of its backups runs: then they run, so the
/// backup can dump them. Called on every pass over a suspended store; it writes only what differs.
pub async fn hold(store: &StoreRecord, engine: &dyn Engine, kube: &Kube) -> Result<(), Error> {
    let source = engine.backup_source(store);
    let backing_up = backup::running(kube).await?.is_some();
    let wanted = i32::from(backing_up);
    let mut differ = Vec::new();
    for name in source.databases {
        // From the API server: the watch cache keeps no spec.
        let replicas = kube
            .get::<StatefulSet>(name)
            .await?
            .and_then(|set| set.spec)
            .and_then(|spec| spec.replicas)
            .unwrap_or(1);
        if replicas != wanted {
            differ.push(*name);
        }
    }
    if !differ.is_empty() {
        tracing::info!(store = %store.id, databases = ?differ, running = backing_up, "a suspended store's databases follow its backups");
        writers::scale::<StatefulSet>(kube, &differ, wanted).await?;
    }
    Ok(())
}
