//! Reconfigure: the platform's current settings applied to a READY store's objects, by the same steps that made
//! them (the engine's [`Engine::reconfigure_steps`]), each done once what it applied has rolled out. Server-side
//! apply changes only what differs, so a pod restarts only when its own template changed: a new mail relay rolls
//! WordPress, not MariaDB. The store serves throughout (a Deployment keeps its old pod until the new one is ready)
//! and stays READY; a step that fails ends the operation FAILED with the reason, the store still READY, and the
//! rollout that started it stops (see `fleet::settings`).

use std::time::Duration;

use jiff::Timestamp;
use store_platform_runtime::record::{
    OperationKind, OperationStatus, Phase, StepStatus, StoreRecord, StoreStatus,
};

use super::Operation;
use crate::{
    engine::{Engine, Progress, Steps},
    error::Error,
    kube_ops::Kube,
};

/// A new reconfigure of a store of `engine` to settings `generation`, every step pending.
pub fn operation(engine: &dyn Engine, generation: &str, now: Timestamp) -> OperationStatus {
    OperationStatus {
        settings_generation: generation.to_owned(),
        ..OperationStatus::start(OperationKind::Reconfigure, engine.reconfigure_steps(), now)
    }
}

/// A reconfigure of one store, for the reconciler.
pub struct Reconfigure<'a> {
    engine: &'a dyn Engine,
    operation: &'a OperationStatus,
}

impl std::fmt::Debug for Reconfigure<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconfigure")
            .field("generation", &self.operation.settings_generation)
            .finish_non_exhaustive()
    }
}

impl<'a> Reconfigure<'a> {
    pub fn new(engine: &'a dyn Engine, operation: &'a OperationStatus) -> Self {
        Self { engine, operation }
    }
}

#[tonic::async_trait]
impl Steps for Reconfigure<'_> {
    fn deadline(&self, step: &str) -> Duration {
        self.engine.deadline(step)
    }

    async fn apply(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        self.engine.apply(step, store, kube).await
    }

    async fn observe(
        &self,
        step: &str,
        store: &StoreRecord,
        kube: &Kube,
    ) -> Result<Progress, Error> {
        self.engine.observe(step, store, kube).await
    }

    async fn diagnose(&self, step: &str, store: &StoreRecord, kube: &Kube) -> String {
        self.engine.diagnose(step, store, kube).await
    }
}

#[tonic::async_trait]
impl Operation for Reconfigure<'_> {
    fn phase(&self) -> Phase {
        Phase::Ready
    }

    /// Nothing it applies stops the store: a failure leaves it READY, serving from what it ran.
    fn changed_the_store(&self, _: &[StepStatus]) -> bool {
        false
    }

    fn failure_reason(&self, reason: &str) -> String {
        reason.to_owned()
    }

    fn succeeded(&self, _store: &StoreRecord, status: &mut StoreStatus) {
        status.phase = Phase::Ready;
        status.settings_generation = self.operation.settings_generation.clone();
    }

    async fn reset(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        self.engine.reset(step, store, kube).await
    }
}
