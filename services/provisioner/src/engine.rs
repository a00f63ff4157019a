//! What an engine is to the reconciler: an ordered list of steps, each of which applies its objects and then
//! reports, from what Kubernetes holds, whether it is done.

use std::time::Duration;

use store_platform_runtime::record::StoreRecord;

use crate::{error::Error, kube_ops::Kube};

/// Where a step stands, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    Done,
    /// Not yet; the message says what it waits for.
    Waiting(String),
    /// It cannot succeed without someone acting; the reason says what failed.
    Failed(String),
}

#[tonic::async_trait]
pub trait Engine: Send + Sync + std::fmt::Debug + 'static {
    /// The steps, in order.
    fn steps(&self) -> &'static [&'static str];

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

    /// The storefront and admin URLs of store `id`.
    fn urls(&self, id: &str) -> (String, String);
}
