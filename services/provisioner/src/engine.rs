//! What an engine is to the reconciler: an ordered list of steps, each of which applies its objects and then
//! reports, from what Kubernetes holds, whether it is done.

use std::{sync::Arc, time::Duration};

use store_platform_runtime::record::{Engine as Kind, StoreRecord, StoreSpec};

use crate::{backup::clone, error::Error, kube_ops::Kube};

/// Where and as whom a store's owner signs in to its administration.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub admin_url: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("admin_url", &self.admin_url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Where a step stands, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    Done,
    /// Not yet; the message says what it waits for. A watch event wakes the store when it changes.
    Waiting(String),
    /// Not yet, and no watch reports when: the step looks again after a while (see `reconcile::recheck_after`).
    Recheck(String),
    /// It cannot succeed without someone acting; the reason says what failed.
    Failed(String),
}

#[tonic::async_trait]
pub trait Engine: Send + Sync + std::fmt::Debug + 'static {
    /// The steps, in order.
    fn steps(&self) -> &'static [&'static str];

    /// The steps of a clone, in order, before the restore of its backup is put in front of `bootstrap`. What runs on
    /// its own schedule (cron, backups) starts only after the bootstrap made the copied store the clone's own.
    fn clone_steps(&self) -> &'static [&'static str] {
        self.steps()
    }

    /// The steps that apply the store's objects from the platform's settings, in order: those a reconfigure runs
    /// again on a READY store. Not the ones that run once (the bootstrap Job).
    fn reconfigure_steps(&self) -> &'static [&'static str];

    /// How long `step` may take.
    fn deadline(&self, step: &str) -> Duration;

    /// Applies `step`'s objects. Idempotent: applying again changes nothing.
    async fn apply(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error>;

    /// Reports whether `step` is done.
    async fn observe(
        &self,
        step: &str,
        store: &StoreRecord,
        kube: &Kube,
    ) -> Result<Progress, Error>;

    /// Says why `step` is not done, for the failure reason when its deadline passes.
    async fn diagnose(&self, step: &str, store: &StoreRecord, kube: &Kube) -> String;

    /// Clears what a failed `step` left behind so it can run again (RetryStore).
    async fn reset(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error>;

    /// What a backup of `store` holds and how it is made and restored: the engine's part of every backup.
    fn backup_source(&self, store: &StoreRecord) -> crate::backup::Source;

    /// What every store of this engine is built with.
    fn settings(&self) -> &crate::settings::Settings;

    /// Starts the Job `name` that migrates `store`'s database to its version (the images `store` records), with
    /// the store's writers stopped. Idempotent: an existing Job of that name stands.
    async fn migrate(&self, store: &StoreRecord, name: &str, kube: &Kube) -> Result<(), Error>;

    /// The component label of the migration Job's pods.
    fn migration_app(&self) -> &'static str;

    /// Where a version's images run: each component of a version (`wordpress`; `medusa`, `storefront`) and the
    /// Deployment whose first container runs its image.
    fn version_components(&self) -> &'static [(&'static str, &'static str)];

    /// The storefront and admin URLs of store `id`.
    fn urls(&self, id: &str) -> (String, String);

    /// The owner's sign-in, read from the store's Secret; None until the Secret holds it.
    async fn credentials(
        &self,
        store: &StoreRecord,
        kube: &Kube,
    ) -> Result<Option<Credentials>, Error>;
}

/// What a list of steps is to the reconciler: provisioning's (the engine's) and each operation's.
#[tonic::async_trait]
pub trait Steps: Send + Sync {
    /// How long `step` may take.
    fn deadline(&self, step: &str) -> Duration;

    /// Applies `step`'s objects. Idempotent.
    async fn apply(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error>;

    /// Reports whether `step` is done.
    async fn observe(
        &self,
        step: &str,
        store: &StoreRecord,
        kube: &Kube,
    ) -> Result<Progress, Error>;

    /// Says why `step` is not done, when its deadline passes.
    async fn diagnose(&self, step: &str, store: &StoreRecord, kube: &Kube) -> String;
}

/// A store's provisioning steps: its engine's and, for a clone, the restore of the backup it is made from (before
/// the engine's bootstrap, which then finds the backup's data and makes it the new store's).
#[derive(Debug)]
pub struct Provisioning<'a>(pub &'a dyn Engine);

impl Provisioning<'_> {
    /// The steps of a store of `spec`, in order.
    pub fn steps(&self, spec: &StoreSpec) -> Vec<&'static str> {
        if spec.source.is_none() {
            return self.0.steps().to_vec();
        }
        let mut steps = self.0.clone_steps().to_vec();
        let at = steps
            .iter()
            .position(|step| *step == clone::BEFORE)
            .unwrap_or(steps.len());
        steps.insert(at, clone::STEP);
        steps
    }

    /// Clears what a failed `step` left behind so it can run again (RetryStore).
    pub async fn reset(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        if step == clone::STEP {
            return clone::reset(kube).await;
        }
        self.0.reset(step, store, kube).await
    }
}

#[tonic::async_trait]
impl Steps for Provisioning<'_> {
    fn deadline(&self, step: &str) -> Duration {
        if step == clone::STEP {
            return clone::DEADLINE;
        }
        self.0.deadline(step)
    }

    async fn apply(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        if step == clone::STEP {
            return clone::apply(self.0, store, kube).await;
        }
        self.0.apply(step, store, kube).await
    }

    async fn observe(
        &self,
        step: &str,
        store: &StoreRecord,
        kube: &Kube,
    ) -> Result<Progress, Error> {
        if step == clone::STEP {
            return clone::observe(self.0, store, kube).await;
        }
        self.0.observe(step, store, kube).await
    }

    async fn diagnose(&self, step: &str, store: &StoreRecord, kube: &Kube) -> String {
        if step == clone::STEP {
            return clone::diagnose(kube).await;
        }
        self.0.diagnose(step, store, kube).await
    }
}

/// The engines a provisioner runs. Each store's engine is the one its record names.
#[derive(Clone, Debug)]
pub struct Engines {
    woocommerce: Arc<dyn Engine>,
    medusa: Arc<dyn Engine>,
}

impl Engines {
    pub fn new(woocommerce: Arc<dyn Engine>, medusa: Arc<dyn Engine>) -> Self {
        Self {
            woocommerce,
            medusa,
        }
    }

    /// One engine for every kind (tests of the reconciler).
    pub fn only(engine: Arc<dyn Engine>) -> Self {
        Self::new(engine.clone(), engine)
    }

    pub fn of(&self, kind: Kind) -> &dyn Engine {
        match kind {
            Kind::Woocommerce => self.woocommerce.as_ref(),
            Kind::Medusa => self.medusa.as_ref(),
        }
    }

    /// The engine of `store`.
    pub fn of_store(&self, store: &StoreRecord) -> &dyn Engine {
        self.of(store.spec.engine)
    }
}
