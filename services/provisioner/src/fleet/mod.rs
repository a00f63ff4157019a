//! Work across many stores, run by the replica that leads: settings rollouts ([`settings`]) and fleet upgrades
//! ([`upgrade`]). Each is a loop of small decisions over the stores as the API server holds them now: which stores
//! to start an operation on, at most so many at once, the first alone (a canary), none once one failed. An
//! operation, once started, is the reconciler's like any other; what a rollout or a run decided is in the stores'
//! records and, for a fleet upgrade, in its own record (a ConfigMap beside the Lease), so a provisioner that
//! restarts picks up where the last one was.

pub mod settings;
pub mod upgrade;

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client, api::ListParams};
use store_platform_runtime::{Shutdown, record::StoreRecord};

use crate::{engine::Engines, error::Error, settings::Settings};

/// How often the leader looks at the fleet.
const TICK: Duration = Duration::from_secs(2);

/// What the fleet loops need: the cluster, the engines and settings, and which stores and runs are this
/// provisioner's.
#[derive(Clone)]
pub struct Fleet {
    pub client: Client,
    pub engines: Engines,
    pub settings: Arc<Settings>,
    /// Where fleet upgrade records live: the Lease's namespace.
    pub namespace: String,
    /// The Lease's name: a fleet upgrade is run by the provisioner deployment that accepted it.
    pub owner: String,
    /// The label selector of the stores this provisioner reconciles (managed, and its `--reconcile-selector`).
    pub selector: String,
    /// At most this many stores change at once in a rollout, and in a fleet upgrade that names no limit.
    pub max_parallel: usize,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("owner", &self.owner)
            .field("selector", &self.selector)
            .field("max_parallel", &self.max_parallel)
            .finish_non_exhaustive()
    }
}

/// A store as the API server holds it now, with the resource version its record was read at.
#[derive(Clone, Debug)]
pub struct Listed {
    pub store: StoreRecord,
    pub resource_version: Option<String>,
}

impl Fleet {
    /// The stores this provisioner reconciles, read from the API server (not a cache: a decision to start an
    /// operation must see the operations started a moment ago), sorted by id.
    pub async fn stores(&self) -> Result<Vec<Listed>, Error> {
        let list = Api::<Namespace>::all(self.client.clone())
            .list(&ListParams::default().labels(&self.selector))
            .await
            .map_err(Error::kubernetes("list the stores"))?;
        let mut stores: Vec<Listed> = list
            .items
            .into_iter()
            .filter_map(|namespace| {
                let store = StoreRecord::from_namespace(&namespace).ok()?;
                Some(Listed {
                    store,
                    resource_version: namespace.metadata.resource_version,
                })
            })
            .collect();
        stores.sort_by(|a, b| a.store.id.cmp(&b.store.id));
        Ok(stores)
    }
}

/// Runs the fleet loops until `shutdown` (the end of this replica's term as leader).
pub async fn run(fleet: Arc<Fleet>, shutdown: Shutdown) {
    loop {
        if let Err(error) = tick(&fleet).await {
            tracing::warn!(error = %error.chain(), "fleet pass failed; trying again");
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = shutdown.wait() => return,
        }
    }
}

async fn tick(fleet: &Fleet) -> Result<(), Error> {
    let mut stores = fleet.stores().await?;
    if upgrade::advance_all(fleet, &stores).await? {
        // Read again: the upgrades just started are operations a rollout must not start beside.
        stores = fleet.stores().await?;
    }
    settings::roll(fleet, &stores).await
}
