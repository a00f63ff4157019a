//! Settings rollouts: when the platform's settings change, every READY store whose recorded settings generation is
//! not the one its engine and version have now is reconfigured (`operation::reconfigure`). For each new
//! generation, one store goes first; the others follow once it succeeded, at most `max_parallel` at once; when one
//! fails, no further store is started on that generation (the failed store says why, and keeps serving). A store
//! that is paused, failed or busy with another operation is left for later: it is taken once it is READY again.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use kube::ResourceExt as _;
use store_platform_runtime::record::{OperationKind, OperationState, Phase, StoreRecord};

use super::{Fleet, Listed};
use crate::{error::Error, kube_ops::Kube, operation, reconcile::write_record};

/// What a rollout pass decided from the stores as they are.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Stores to reconfigure now.
    pub start: Vec<String>,
    /// Generations whose rollout stopped, with the store that failed.
    pub stopped: BTreeMap<String, String>,
}

/// The reconfigure of `store`, if it is one, with its generation and state.
fn reconfigure(store: &StoreRecord) -> Option<(&str, OperationState)> {
    store
        .status
        .operation
        .as_ref()
        .filter(|op| op.kind == OperationKind::Reconfigure)
        .map(|op| (op.settings_generation.as_str(), op.state))
}

/// Which stores to reconfigure now. `wanted` gives each store's generation as the settings are now (None: it runs
/// the generation it should, or is not READY and idle, so it waits); stores are taken in the order given.
pub fn plan(
    stores: &[StoreRecord],
    wanted: impl Fn(&StoreRecord) -> Option<String>,
    max_parallel: usize,
) -> Plan {
    let mut plan = Plan::default();
    let mut running = 0;
    let mut canary_passed = BTreeSet::new();
    let mut in_flight = BTreeSet::new();
    for store in stores {
        match reconfigure(store) {
            Some((generation, OperationState::Running)) => {
                running += 1;
                in_flight.insert(generation.to_owned());
            }
            Some((generation, OperationState::Succeeded)) => {
                canary_passed.insert(generation.to_owned());
            }
            Some((generation, OperationState::Failed | OperationState::RolledBack)) => {
                plan.stopped
                    .entry(generation.to_owned())
                    .or_insert_with(|| store.id.clone());
            }
            None => {}
        }
    }
    for store in stores {
        if running >= max_parallel {
            break;
        }
        let Some(generation) = wanted(store) else {
            continue;
        };
        if plan.stopped.contains_key(&generation) {
            continue;
        }
        // Until one store of a generation succeeded, that one runs alone.
        if !canary_passed.contains(&generation) && in_flight.contains(&generation) {
            continue;
        }
        in_flight.insert(generation);
        running += 1;
        plan.start.push(store.id.clone());
    }
    plan
}

/// Whether `store` is idle and READY: the only state a reconfigure starts from.
fn idle_and_ready(store: &StoreRecord) -> bool {
    !store.terminating && store.phase() == Phase::Ready && operation::running(store).is_none()
}

/// The settings generation `store` is to be reconfigured to, if it is idle and READY and runs another one.
pub fn wanted(settings: &crate::settings::Settings, store: &StoreRecord) -> Option<String> {
    if !idle_and_ready(store) {
        return None;
    }
    // A store that recorded no version yet is taken: its version is read from what it runs when it starts.
    let Some(version) = settings.current_version(store) else {
        return Some(String::new());
    };
    let generation = settings.generation(store.spec.engine, Some(&version));
    (generation != store.status.settings_generation).then_some(generation)
}

/// One rollout pass: starts the reconfigures [`plan`] picks.
pub async fn roll(fleet: &Fleet, stores: &[Listed]) -> Result<(), Error> {
    let settings = fleet.settings.as_ref();
    let records: Vec<StoreRecord> = stores.iter().map(|l| l.store.clone()).collect();
    let plan = plan(
        &records,
        |store| wanted(settings, store),
        fleet.max_parallel,
    );
    for id in plan.start {
        let Some(listed) = stores.iter().find(|l| l.store.id == id) else {
            continue;
        };
        start(fleet, listed).await?;
    }
    Ok(())
}

/// Starts a reconfigure of `listed`'s store, guarded by the resource version it was read at: a request that changed
/// the store meanwhile wins, and the next pass decides again.
async fn start(fleet: &Fleet, listed: &Listed) -> Result<(), Error> {
    let mut store = listed.store.clone();
    let engine = fleet.engines.of(store.spec.engine);
    let kube = Kube::new(
        fleet.client.clone(),
        store_platform_runtime::record::namespace_name(&store.id),
    );
    operation::record_version(&mut store, engine, &kube).await?;
    let version = fleet.settings.current_version(&store);
    let generation = fleet
        .settings
        .generation(store.spec.engine, version.as_ref());
    if generation == store.status.settings_generation {
        return Ok(());
    }
    let now = Timestamp::now();
    // The version's images as the platform offers them now (an operator may have rebuilt them).
    store.status.version = version;
    store.status.operation = Some(operation::reconfigure::operation(engine, &generation, now));
    store.status.update_time = Some(now);
    match write_record(&fleet.client, &store, listed.resource_version.clone()).await {
        Ok(namespace) => {
            tracing::info!(store = %store.id, namespace = %namespace.name_any(), generation = %generation, "reconfigure started: the platform's settings changed");
            Ok(())
        }
        Err(error) if error.is_conflict() => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use store_platform_runtime::record::{Engine, OperationStatus};

    use super::*;

    fn store(id: &str, generation: &str, op: Option<(&str, OperationState)>) -> StoreRecord {
        let mut store = crate::backup::example::store(id, Engine::Woocommerce);
        store.status.phase = Phase::Ready;
        store.status.settings_generation = generation.to_owned();
        store.status.operation = op.map(|(generation, state)| OperationStatus {
            settings_generation: generation.to_owned(),
            state,
            ..OperationStatus::start(
                OperationKind::Reconfigure,
                &["policies"],
                Timestamp::UNIX_EPOCH,
            )
        });
        store
    }

    fn behind(store: &StoreRecord) -> Option<String> {
        (store.status.settings_generation != "new" && operation::running(store).is_none())
            .then(|| "new".to_owned())
    }

    #[test]
    fn one_store_goes_first_then_at_most_the_limit_at_once() {
        let stores: Vec<StoreRecord> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| store(id, "old", None))
            .collect();
        assert_eq!(plan(&stores, behind, 2).start, ["a"], "the canary alone");

        let mut stores = stores;
        stores[0] = store("a", "old", Some(("new", OperationState::Running)));
        assert!(plan(&stores, behind, 2).start.is_empty(), "the canary runs");

        stores[0] = store("a", "new", Some(("new", OperationState::Succeeded)));
        assert_eq!(plan(&stores, behind, 2).start, ["b", "c"]);

        stores[1] = store("b", "old", Some(("new", OperationState::Running)));
        assert_eq!(plan(&stores, behind, 2).start, ["c"], "one slot left");
    }

    #[test]
    fn a_failure_stops_the_rollout_of_its_generation() {
        let stores = vec![
            store("a", "old", Some(("new", OperationState::Failed))),
            store("b", "old", None),
        ];
        let plan = plan(&stores, behind, 3);
        assert!(plan.start.is_empty());
        assert_eq!(plan.stopped["new"], "a");
    }

    #[test]
    fn stores_that_run_the_wanted_generation_are_left_alone() {
        let stores = vec![store("a", "new", None), store("b", "new", None)];
        assert_eq!(plan(&stores, behind, 3), Plan::default());
    }
}
