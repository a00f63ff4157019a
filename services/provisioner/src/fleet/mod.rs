//! Work across many stores, run by the replica that leads: settings rollouts ([`settings`]) and fleet upgrades
//! ([`upgrade`]). Each is a loop of small decisions over the stores as the API server holds them now: which stores
//! to start an operation on, at most so many at once, the first alone (a canary), none once one failed. An
//! operation, once started, is the reconciler's like any other; what a rollout or a run decided is in the stores'
//! records and, for a fleet upgrade, in its own record (a ConfigMap beside the Lease), so a provisioner that
//! restarts picks up where the last one was.

pub mod settings;
pub mod upgrade;

use std::{collections::HashMap, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client, ResourceExt as _, api::ListParams, runtime::reflector::Store};
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
    /// The store namespaces as this process's watch holds them: a pass reads the API server (every store, fresh)
    /// only when they show something to do. None: every pass reads it.
    pub cached: Option<Store<Namespace>>,
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

/// Which cached stores want a settings rollout, by namespace, with the resource version that was read at: a record
/// is read again only when it changed, so a pass over a fleet at rest costs a lookup per store, not a parse.
#[derive(Debug, Default)]
struct Seen(HashMap<String, (Option<String>, bool)>);

impl Seen {
    /// Whether the watch cache shows any reason for a pass: a store that wants a settings rollout. Without a cache,
    /// always.
    fn anything_to_do(&mut self, fleet: &Fleet) -> bool {
        let Some(cached) = &fleet.cached else {
            return true;
        };
        let namespaces = cached.state();
        let mut any = false;
        let mut current = HashMap::with_capacity(namespaces.len());
        for namespace in namespaces {
            let name = namespace.name_any();
            let version = namespace.metadata.resource_version.clone();
            let wants = match self.0.remove(&name) {
                Some((seen, wants)) if seen == version => wants,
                _ => StoreRecord::from_namespace(&namespace)
                    .ok()
                    .is_some_and(|store| settings::wanted(&fleet.settings, &store).is_some()),
            };
            any |= wants;
            current.insert(name, (version, wants));
        }
        self.0 = current;
        any
    }
}

/// Runs the fleet loops until `shutdown` (the end of this replica's term as leader).
pub async fn run(fleet: Arc<Fleet>, shutdown: Shutdown) {
    let mut seen = Seen::default();
    loop {
        if let Err(error) = tick(&fleet, &mut seen).await {
            tracing::warn!(error = %error.chain(), "fleet pass failed; trying again");
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = shutdown.wait() => return,
        }
    }
}

async fn tick(fleet: &Fleet, seen: &mut Seen) -> Result<(), Error> {
    // Reading every store from the API server every TICK cost the provisioner and the API server a whole list of
    // the fleet each time (at 1,000 stores, most of the provisioner's CPU growth per store). A fleet at rest (no
    // upgrade running, no store wanting a rollout as the watch shows them) needs no read.
    if !seen.anything_to_do(fleet) && !upgrade::any_running(fleet).await? {
        return Ok(());
    }
    let mut stores = fleet.stores().await?;
    if upgrade::advance_all(fleet, &stores).await? {
        // Read again: the upgrades just started are operations a rollout must not start beside.
        stores = fleet.stores().await?;
    }
    settings::roll(fleet, &stores).await
}
