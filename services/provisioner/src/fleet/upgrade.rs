//! Fleet upgrades: every store of an engine on one version moved to another, as UpgradeStore moves one. The run's
//! stores are those on the old version when it starts, in order of id; the first is the canary and upgrades alone;
//! then at most `max_parallel` upgrade at once; at the first failure (the store's upgrade rolled back, or failed) no
//! further upgrade starts, and the run is FAILED once those running ended. A store that is paused, failed, deleted
//! or no longer on the old version at its turn is skipped; one busy with another operation waits for it.
//!
//! A run's record is a ConfigMap in the Lease's namespace, written by the leader after each decision; a store's
//! upgrade is recorded in the store first, so a leader that dies between the two finds the store upgrading and
//! counts it as the run's.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, ResourceExt as _,
    api::{ListParams, ObjectMeta, PostParams},
};
use serde::{Deserialize, Serialize};
use store_platform_proto::v1 as proto;
use store_platform_runtime::record::{
    self, Engine, OperationKind, OperationState, Phase, StoreRecord, timestamp,
};

use super::{Fleet, Listed};
use crate::{error::Error, kube_ops::Kube, operation, reconcile::write_record};

/// The label of every fleet upgrade record, whose value is the Lease name of the provisioner that runs it.
pub const RUN_LABEL: &str = "store-platform.io/fleet-upgrade-of";
/// The key of a record's ConfigMap that holds the run, as JSON.
const KEY: &str = "run";
/// The most stores a run upgrades at once.
pub const MAX_PARALLEL: u32 = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    Stopped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreState {
    Pending,
    Upgrading,
    Upgraded,
    Failed,
    Skipped,
}

/// One store of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStore {
    pub id: String,
    pub tenant: String,
    pub state: StoreState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A fleet upgrade, as its record holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub id: String,
    pub engine: Engine,
    pub from_version: String,
    pub to_version: String,
    pub max_parallel: u32,
    pub state: RunState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub stores: Vec<RunStore>,
    pub start_time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Timestamp>,
    pub started_by: String,
    /// Who asked it to stop (StopFleetUpgrade): it starts no further upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
}

/// The name of run `id`'s ConfigMap.
fn config_map_name(id: &str) -> String {
    format!("fleet-upgrade-{id}")
}

impl Run {
    /// A new run of every store in `stores` of `engine` on `from`, to `to`.
    pub fn new(
        (engine, from, to): (Engine, &str, &str),
        max_parallel: u32,
        stores: &[StoreRecord],
        (started_by, now): (&str, Timestamp),
    ) -> Self {
        let suffix: u16 = rand::random();
        Self {
            id: format!(
                "{}-{}-{suffix:04x}",
                engine.as_str(),
                now.strftime("%Y%m%d-%H%M%S")
            ),
            engine,
            from_version: from.to_owned(),
            to_version: to.to_owned(),
            max_parallel,
            state: RunState::Running,
            message: String::new(),
            stores: stores
                .iter()
                .filter(|s| {
                    s.spec.engine == engine
                        && !s.terminating
                        && s.status.version.as_ref().is_some_and(|v| v.name == from)
                })
                .map(|s| RunStore {
                    id: s.id.clone(),
                    tenant: s.tenant.clone(),
                    state: StoreState::Pending,
                    message: String::new(),
                })
                .collect(),
            start_time: now,
            finish_time: None,
            started_by: started_by.to_owned(),
            stopped_by: None,
        }
    }

    pub fn to_proto(&self) -> proto::FleetUpgrade {
        proto::FleetUpgrade {
            id: self.id.clone(),
            engine: self.engine.to_proto() as i32,
            from_version: self.from_version.clone(),
            to_version: self.to_version.clone(),
            max_parallel: self.max_parallel as i32,
            state: match self.state {
                RunState::Running => proto::FleetUpgradeState::Running,
                RunState::Succeeded => proto::FleetUpgradeState::Succeeded,
                RunState::Failed => proto::FleetUpgradeState::Failed,
                RunState::Stopped => proto::FleetUpgradeState::Stopped,
            } as i32,
            message: self.message.clone(),
            stores: self
                .stores
                .iter()
                .map(|s| proto::FleetUpgradeStore {
                    store_id: s.id.clone(),
                    tenant: s.tenant.clone(),
                    state: match s.state {
                        StoreState::Pending => proto::FleetStoreState::Pending,
                        StoreState::Upgrading => proto::FleetStoreState::Upgrading,
                        StoreState::Upgraded => proto::FleetStoreState::Upgraded,
                        StoreState::Failed => proto::FleetStoreState::Failed,
                        StoreState::Skipped => proto::FleetStoreState::Skipped,
                    } as i32,
                    message: s.message.clone(),
                })
                .collect(),
            start_time: Some(timestamp(self.start_time)),
            finish_time: self.finish_time.map(timestamp),
            started_by: self.started_by.clone(),
            stopped_by: self.stopped_by.clone().unwrap_or_default(),
        }
    }

    fn count(&self, state: StoreState) -> usize {
        self.stores.iter().filter(|s| s.state == state).count()
    }

    /// Where the run stands, in a line.
    fn summary(&self) -> String {
        format!(
            "{} of {} upgraded, {} upgrading, {} skipped",
            self.count(StoreState::Upgraded),
            self.stores.len(),
            self.count(StoreState::Upgrading),
            self.count(StoreState::Skipped),
        )
    }
}

/// What an upgrading store's record says of its upgrade to `to`: None while it runs.
fn upgrade_outcome(store: &StoreRecord, to: &str) -> Option<(StoreState, String)> {
    let op = store
        .status
        .operation
        .as_ref()
        .filter(|op| op.kind == OperationKind::Upgrade)
        .filter(|op| op.to_version.as_ref().is_some_and(|v| v.name == to));
    match op {
        Some(op) if op.state == OperationState::Running => None,
        Some(op) if op.state == OperationState::Succeeded => {
            Some((StoreState::Upgraded, String::new()))
        }
        Some(op) => Some((StoreState::Failed, op.message.clone())),
        None if store.status.version.as_ref().is_some_and(|v| v.name == to) => {
            Some((StoreState::Upgraded, String::new()))
        }
        None => Some((
            StoreState::Failed,
            "its upgrade is not in its record any more".to_owned(),
        )),
    }
}

/// What to do with a pending store at its turn.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    Start,
    /// Busy with another operation: its turn comes again.
    Wait,
    /// Already upgrading to the run's version (the leader that started it died before writing the run).
    Started,
    Done(StoreState, String),
}

/// Decides a pending store's turn in a run from `from` to `to`, from its record (None: deleted).
pub fn turn(store: Option<&StoreRecord>, (from, to): (&str, &str)) -> Turn {
    let Some(store) = store.filter(|s| !s.terminating) else {
        return Turn::Done(StoreState::Skipped, "deleted".to_owned());
    };
    let version = store.status.version.as_ref().map(|v| v.name.as_str());
    let upgrading_to_it = store.status.operation.as_ref().is_some_and(|op| {
        op.state == OperationState::Running
            && op.kind == OperationKind::Upgrade
            && op.to_version.as_ref().is_some_and(|v| v.name == to)
    });
    if upgrading_to_it {
        return Turn::Started;
    }
    if version == Some(to) {
        return Turn::Done(
            StoreState::Upgraded,
            "upgraded by another request".to_owned(),
        );
    }
    if version != Some(from) {
        return Turn::Done(
            StoreState::Skipped,
            format!("it moved to version {} meanwhile", version.unwrap_or("?")),
        );
    }
    if operation::running(store).is_some() {
        return Turn::Wait;
    }
    match store.phase() {
        Phase::Ready => Turn::Start,
        Phase::Suspended => Turn::Done(StoreState::Skipped, "it is paused".to_owned()),
        phase => Turn::Done(StoreState::Skipped, format!("it is {}", phase.as_str())),
    }
}

/// Advances `run` from the stores as they are now: settles the upgrades that ended, then says which pending stores
/// to start (the canary alone until it is upgraded, then up to the limit; none once one failed). Ends the run when
/// nothing is left to wait for.
pub fn step(run: &mut Run, stores: &BTreeMap<&str, &StoreRecord>, now: Timestamp) -> Vec<String> {
    for entry in &mut run.stores {
        if entry.state != StoreState::Upgrading {
            continue;
        }
        match stores.get(entry.id.as_str()) {
            None => {
                entry.state = StoreState::Skipped;
                entry.message = "deleted while upgrading".to_owned();
            }
            Some(store) => {
                if let Some((state, message)) = upgrade_outcome(store, &run.to_version) {
                    entry.state = state;
                    entry.message = message;
                }
            }
        }
    }
    let failed = run
        .stores
        .iter()
        .find(|s| s.state == StoreState::Failed)
        .cloned();
    let mut start = Vec::new();
    if failed.is_none() && run.stopped_by.is_none() {
        let canary_done = run
            .stores
            .iter()
            .find(|s| s.state != StoreState::Skipped)
            .is_none_or(|s| s.state == StoreState::Upgraded);
        let limit = if canary_done {
            run.max_parallel.max(1) as usize
        } else {
            1
        };
        let mut upgrading = run.count(StoreState::Upgrading);
        let versions = (run.from_version.clone(), run.to_version.clone());
        for entry in &mut run.stores {
            if entry.state != StoreState::Pending {
                continue;
            }
            if upgrading >= limit {
                break;
            }
            match turn(
                stores.get(entry.id.as_str()).copied(),
                (&versions.0, &versions.1),
            ) {
                Turn::Start => {
                    start.push(entry.id.clone());
                    entry.state = StoreState::Upgrading;
                    upgrading += 1;
                }
                Turn::Started => {
                    entry.state = StoreState::Upgrading;
                    upgrading += 1;
                }
                Turn::Wait => {
                    // The canary waits for its turn; no other store goes before it.
                    if !canary_done {
                        break;
                    }
                }
                Turn::Done(state, message) => {
                    entry.state = state;
                    entry.message = message;
                }
            }
        }
    }
    let upgrading = run.count(StoreState::Upgrading);
    match failed {
        Some(store) if upgrading == 0 => {
            run.state = RunState::Failed;
            run.finish_time = Some(now);
            run.message = format!(
                "stopped: the upgrade of store {} failed ({}); {}",
                store.id,
                store.message,
                run.summary()
            );
        }
        Some(store) => {
            run.message = format!(
                "stopping: the upgrade of store {} failed; waiting for {upgrading} running",
                store.id
            );
        }
        None if upgrading == 0 && run.stopped_by.is_some() => {
            run.state = RunState::Stopped;
            run.finish_time = Some(now);
            run.message = format!(
                "stopped by {}; {}",
                run.stopped_by.as_deref().unwrap_or("?"),
                run.summary()
            );
        }
        None if run.stopped_by.is_some() => {
            run.message = format!("stopping: waiting for {upgrading} running");
        }
        None if run.count(StoreState::Pending) == 0 && upgrading == 0 => {
            run.state = RunState::Succeeded;
            run.finish_time = Some(now);
            run.message = run.summary();
        }
        None => run.message = run.summary(),
    }
    start
}

fn runs_api(fleet: &Fleet) -> Api<ConfigMap> {
    Api::namespaced(fleet.client.clone(), &fleet.namespace)
}

fn decode(config_map: &ConfigMap) -> Option<Run> {
    let text = config_map.data.as_ref()?.get(KEY)?;
    match serde_json::from_str(text) {
        Ok(run) => Some(run),
        Err(error) => {
            tracing::warn!(name = %config_map.name_any(), %error, "not a readable fleet upgrade record; leaving it alone");
            None
        }
    }
}

fn encode(run: &Run, owner: &str, resource_version: Option<String>) -> Result<ConfigMap, Error> {
    let text = serde_json::to_string(run)
        .map_err(|error| Error::Record(record::RecordError::Encode(error)))?;
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(&run.id)),
            labels: Some(BTreeMap::from([(RUN_LABEL.to_owned(), owner.to_owned())])),
            resource_version,
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(KEY.to_owned(), text)])),
        ..ConfigMap::default()
    })
}

/// This provisioner's runs, with their records' resource versions, newest first.
async fn runs(fleet: &Fleet) -> Result<Vec<(Run, Option<String>)>, Error> {
    let list = runs_api(fleet)
        .list(&ListParams::default().labels(&format!("{RUN_LABEL}={}", fleet.owner)))
        .await
        .map_err(Error::kubernetes("list the fleet upgrades"))?;
    let mut runs: Vec<(Run, Option<String>)> = list
        .items
        .iter()
        .filter_map(|cm| Some((decode(cm)?, cm.metadata.resource_version.clone())))
        .collect();
    runs.sort_by_key(|run| std::cmp::Reverse(run.0.start_time));
    Ok(runs)
}

/// Whether a run of this provisioner is running.
pub async fn any_running(fleet: &Fleet) -> Result<bool, Error> {
    Ok(runs(fleet)
        .await?
        .iter()
        .any(|(run, _)| run.state == RunState::Running))
}

/// Every run of this provisioner, newest first.
pub async fn list(fleet: &Fleet) -> Result<Vec<Run>, Error> {
    Ok(runs(fleet).await?.into_iter().map(|(run, _)| run).collect())
}

/// Run `id`.
pub async fn get(fleet: &Fleet, id: &str) -> Result<Run, Error> {
    let not_found = || Error::FleetUpgradeNotFound { id: id.to_owned() };
    if id.is_empty() || id.len() > 200 {
        return Err(Error::InvalidField {
            field: "fleet_upgrade_id",
            reason:
                "must name a fleet upgrade (StartFleetUpgrade or ListFleetUpgrades gives its id)"
                    .to_owned(),
        });
    }
    let config_map = runs_api(fleet)
        .get_opt(&config_map_name(id))
        .await
        .map_err(Error::kubernetes("read the fleet upgrade"))?
        .ok_or_else(not_found)?;
    let owned = config_map
        .labels()
        .get(RUN_LABEL)
        .is_some_and(|owner| *owner == fleet.owner);
    match decode(&config_map) {
        Some(run) if owned => Ok(run),
        _ => Err(not_found()),
    }
}

/// Asks run `id` to stop (`by`: the caller's tenant): the leader starts no further upgrade of it. The run then; one
/// that has ended, as it is.
pub async fn stop(fleet: &Fleet, id: &str, by: &str) -> Result<Run, Error> {
    let mut attempt = 0;
    loop {
        let mut run = get(fleet, id).await?;
        if run.state != RunState::Running || run.stopped_by.is_some() {
            return Ok(run);
        }
        let config_map = runs_api(fleet)
            .get(&config_map_name(id))
            .await
            .map_err(Error::kubernetes("read the fleet upgrade"))?;
        run.stopped_by = Some(by.to_owned());
        run.message = "stopping".to_owned();
        let written = runs_api(fleet)
            .replace(
                &config_map_name(id),
                &PostParams::default(),
                &encode(&run, &fleet.owner, config_map.metadata.resource_version)?,
            )
            .await;
        match written {
            Ok(_) => {
                tracing::info!(run = %id, by = %by, "fleet upgrade stopping");
                return Ok(run);
            }
            // The leader wrote it meanwhile: decide on the run as it is now.
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < 4 => attempt += 1,
            Err(source) => {
                return Err(Error::Kubernetes {
                    action: "stop the fleet upgrade".into(),
                    source,
                });
            }
        }
    }
}

/// What StartFleetUpgrade asks for.
#[derive(Debug)]
pub struct Request<'a> {
    pub engine: Engine,
    pub from: &'a str,
    pub to: &'a str,
    pub max_parallel: u32,
    pub started_by: &'a str,
}

/// Records a new run (the leader starts its canary at its next pass), or says why it cannot run.
pub async fn start(fleet: &Fleet, request: Request<'_>) -> Result<Run, Error> {
    if request.from.is_empty() {
        return Err(Error::InvalidField {
            field: "from_version",
            reason: "must name the version whose stores are upgraded".to_owned(),
        });
    }
    if request.max_parallel > MAX_PARALLEL {
        return Err(Error::InvalidField {
            field: "max_parallel",
            reason: format!("must be between 0 and {MAX_PARALLEL}"),
        });
    }
    let target =
        operation::upgrade::target(&fleet.settings, request.engine, ("to_version", request.to))?;
    if crate::settings::compare_versions(&target.name, request.from).is_le() {
        return Err(Error::InvalidField {
            field: "to_version",
            reason: format!(
                "{} is not newer than {}; migrations cannot be undone, so stores go back only by restoring a backup \
                 from before their upgrade",
                target.name, request.from
            ),
        });
    }
    if fleet.settings.backup.is_none() {
        return Err(Error::BackupsOff);
    }
    if let Some((running, _)) = runs(fleet)
        .await?
        .into_iter()
        .find(|(run, _)| run.engine == request.engine && run.state == RunState::Running)
    {
        return Err(Error::FleetUpgradeRunning {
            id: running.id,
            engine: request.engine.as_str(),
        });
    }
    let stores: Vec<StoreRecord> = fleet
        .stores()
        .await?
        .into_iter()
        .map(|listed| listed.store)
        .collect();
    let max_parallel = match request.max_parallel {
        0 => fleet.max_parallel as u32,
        n => n,
    };
    let mut run = Run::new(
        (request.engine, request.from, &target.name),
        max_parallel,
        &stores,
        (request.started_by, Timestamp::now()),
    );
    if run.stores.is_empty() {
        run.state = RunState::Succeeded;
        run.finish_time = Some(run.start_time);
        run.message = format!(
            "no {} store runs version {}",
            request.engine.as_str(),
            request.from
        );
    } else {
        run.message = run.summary();
    }
    runs_api(fleet)
        .create(&PostParams::default(), &encode(&run, &fleet.owner, None)?)
        .await
        .map_err(Error::kubernetes("record the fleet upgrade"))?;
    tracing::info!(run = %run.id, engine = run.engine.as_str(), from = %run.from_version, to = %run.to_version, stores = run.stores.len(), by = %run.started_by, "fleet upgrade started");
    Ok(run)
}

/// One pass over this provisioner's running runs; true if it started an upgrade.
pub async fn advance_all(fleet: &Fleet, stores: &[Listed]) -> Result<bool, Error> {
    let mut started_any = false;
    for (mut run, resource_version) in runs(fleet).await? {
        if run.state != RunState::Running {
            continue;
        }
        let before = run.clone();
        let by_id: BTreeMap<&str, &StoreRecord> = stores
            .iter()
            .map(|l| (l.store.id.as_str(), &l.store))
            .collect();
        let start = step(&mut run, &by_id, Timestamp::now());
        for id in start {
            let Some(listed) = stores.iter().find(|l| l.store.id == id) else {
                continue;
            };
            let outcome = start_one(fleet, listed, &run.to_version).await;
            let entry = run
                .stores
                .iter_mut()
                .find(|s| s.id == id)
                .expect("a store of the run");
            match outcome {
                Ok(()) => started_any = true,
                // Changed meanwhile: its turn is decided again at the next pass.
                Err(error) if error.is_conflict() => entry.state = StoreState::Pending,
                Err(error @ Error::Kubernetes { .. }) => {
                    entry.state = StoreState::Pending;
                    tracing::warn!(run = %run.id, store = %id, error = %error.chain(), "could not start a store's upgrade; trying again");
                }
                Err(error) => {
                    entry.state = StoreState::Skipped;
                    entry.message = error.to_string();
                }
            }
        }
        if run != before {
            let written = runs_api(fleet)
                .replace(
                    &config_map_name(&run.id),
                    &PostParams::default(),
                    &encode(&run, &fleet.owner, resource_version)?,
                )
                .await;
            match written {
                Ok(_) => {
                    if run.state != RunState::Running {
                        tracing::info!(run = %run.id, message = %run.message, "fleet upgrade ended");
                    }
                }
                // Another leader wrote it: the next pass reads it again (an upgrade started here is found as the
                // run's then).
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(source) => {
                    return Err(Error::Kubernetes {
                        action: "write the fleet upgrade".into(),
                        source,
                    });
                }
            }
        }
    }
    Ok(started_any)
}

/// Starts the upgrade of `listed`'s store to `to`, as UpgradeStore does, guarded by the version it was read at.
async fn start_one(fleet: &Fleet, listed: &Listed, to: &str) -> Result<(), Error> {
    let mut store = listed.store.clone();
    let target =
        operation::upgrade::target(&fleet.settings, store.spec.engine, ("to_version", to))?;
    let kube = Kube::new(fleet.client.clone(), record::namespace_name(&store.id));
    let engine = fleet.engines.of(store.spec.engine);
    operation::record_version(&mut store, engine, &kube).await?;
    operation::upgrade::begin(
        &mut store,
        ("to_version", target),
        fleet.settings.backup.is_some(),
        Timestamp::now(),
    )?;
    write_record(&fleet.client, &store, listed.resource_version.clone()).await?;
    tracing::info!(store = %store.id, tenant = %store.tenant, version = %target.name, "upgrade started by a fleet upgrade");
    Ok(())
}

#[cfg(test)]
mod tests {
    use store_platform_runtime::record::{OperationStatus, Version};

    use super::*;

    fn version(name: &str) -> Version {
        crate::settings::version(name, &[])
    }

    fn store(id: &str, on: &str) -> StoreRecord {
        let mut store = crate::backup::example::store(id, Engine::Woocommerce);
        store.status.phase = Phase::Ready;
        store.status.version = Some(version(on));
        store
    }

    /// `store` upgrading to `to`, or having ended in `state`.
    fn upgrading(mut store: StoreRecord, to: &str, state: OperationState) -> StoreRecord {
        store.status.phase = if state == OperationState::Running {
            Phase::Upgrading
        } else {
            Phase::Ready
        };
        if state == OperationState::Succeeded {
            store.status.version = Some(version(to));
        }
        store.status.operation = Some(OperationStatus {
            state,
            message: "migrate: exit 1".to_owned(),
            ..operation::upgrade::operation(None, version(to), Timestamp::UNIX_EPOCH)
        });
        store
    }

    fn run(stores: &[StoreRecord], max_parallel: u32) -> Run {
        Run::new(
            (Engine::Woocommerce, "1", "2"),
            max_parallel,
            stores,
            ("ops", Timestamp::UNIX_EPOCH),
        )
    }

    fn by_id(stores: &[StoreRecord]) -> BTreeMap<&str, &StoreRecord> {
        stores.iter().map(|s| (s.id.as_str(), s)).collect()
    }

    #[test]
    fn a_run_takes_the_stores_on_its_version_and_upgrades_the_canary_alone_then_up_to_its_limit() {
        let mut stores = vec![
            store("a", "1"),
            store("b", "1"),
            store("c", "0"),
            store("d", "1"),
            store("e", "1"),
        ];
        let mut run = run(&stores, 2);
        let ids: Vec<&str> = run.stores.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "d", "e"], "only stores on version 1");

        assert_eq!(
            step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH),
            ["a"]
        );
        stores[0] = upgrading(stores[0].clone(), "2", OperationState::Running);
        assert!(step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH).is_empty());

        stores[0] = upgrading(stores[0].clone(), "2", OperationState::Succeeded);
        assert_eq!(
            step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH),
            ["b", "d"]
        );
        assert_eq!(run.stores[0].state, StoreState::Upgraded);
        stores[1] = upgrading(stores[1].clone(), "2", OperationState::Succeeded);
        stores[3] = upgrading(stores[3].clone(), "2", OperationState::Running);
        assert_eq!(
            step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH),
            ["e"]
        );
        stores[3] = upgrading(stores[3].clone(), "2", OperationState::Succeeded);
        stores[4] = upgrading(stores[4].clone(), "2", OperationState::Succeeded);
        assert!(step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH).is_empty());
        assert_eq!(run.state, RunState::Succeeded, "{run:?}");
        assert_eq!(run.message, "4 of 4 upgraded, 0 upgrading, 0 skipped");
    }

    #[test]
    fn a_failure_stops_the_run_once_the_upgrades_running_ended() {
        let mut stores = vec![
            store("a", "1"),
            store("b", "1"),
            store("c", "1"),
            store("d", "1"),
        ];
        let mut run = run(&stores, 2);
        step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH);
        stores[0] = upgrading(stores[0].clone(), "2", OperationState::Succeeded);
        assert_eq!(
            step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH),
            ["b", "c"]
        );
        stores[1] = upgrading(stores[1].clone(), "2", OperationState::RolledBack);
        stores[2] = upgrading(stores[2].clone(), "2", OperationState::Running);
        assert!(step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH).is_empty());
        assert_eq!(run.state, RunState::Running, "c still runs");
        assert!(run.message.starts_with("stopping"), "{}", run.message);

        stores[2] = upgrading(stores[2].clone(), "2", OperationState::Succeeded);
        assert!(step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH).is_empty());
        assert_eq!(run.state, RunState::Failed);
        assert_eq!(run.stores[1].state, StoreState::Failed);
        assert_eq!(run.stores[1].message, "migrate: exit 1");
        assert_eq!(run.stores[3].state, StoreState::Pending, "d never started");
        assert!(run.message.contains("store b failed"), "{}", run.message);
    }

    #[test]
    fn stores_that_cannot_upgrade_at_their_turn_are_skipped_and_busy_ones_wait() {
        let mut paused = store("a", "1");
        paused.status.phase = Phase::Suspended;
        let mut busy = store("b", "1");
        busy.status.operation = Some(OperationStatus::start(
            OperationKind::Restore,
            &["safety-backup"],
            Timestamp::UNIX_EPOCH,
        ));
        busy.status.phase = Phase::Restoring;
        let stores = vec![paused, busy, store("c", "1")];
        let mut run = run(&stores, 3);
        let gone: Vec<StoreRecord> = stores[1..].to_vec();
        assert!(
            step(&mut run, &by_id(&gone), Timestamp::UNIX_EPOCH).is_empty(),
            "the canary (b, a was deleted) is busy: nothing goes before it"
        );
        assert_eq!(run.stores[0].state, StoreState::Skipped);
        assert_eq!(run.stores[0].message, "deleted");
        let mut run = super::tests::run(&stores, 3);
        assert!(step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH).is_empty());
        assert_eq!(run.stores[0].message, "it is paused");
        assert_eq!(run.stores[1].state, StoreState::Pending);
    }

    #[test]
    fn a_stopped_run_starts_nothing_more_and_ends_once_its_upgrades_ended() {
        let mut stores = vec![store("a", "1"), store("b", "1"), store("c", "1")];
        let mut run = run(&stores, 2);
        step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH);
        stores[0] = upgrading(stores[0].clone(), "2", OperationState::Running);
        run.stopped_by = Some("ops".to_owned());
        assert!(step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH).is_empty());
        assert_eq!(run.state, RunState::Running, "the canary still runs");
        stores[0] = upgrading(stores[0].clone(), "2", OperationState::Succeeded);
        assert!(step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH).is_empty());
        assert_eq!(run.state, RunState::Stopped);
        assert_eq!(
            run.message,
            "stopped by ops; 1 of 3 upgraded, 0 upgrading, 0 skipped"
        );
        assert_eq!(run.stores[1].state, StoreState::Pending);
        assert_eq!(run.to_proto().stopped_by, "ops");
    }

    #[test]
    fn a_store_upgrading_to_the_runs_version_counts_as_started_by_it() {
        let stores = vec![upgrading(store("a", "1"), "2", OperationState::Running)];
        let mut run = run(&stores, 1);
        assert!(step(&mut run, &by_id(&stores), Timestamp::UNIX_EPOCH).is_empty());
        assert_eq!(run.stores[0].state, StoreState::Upgrading);
    }

    #[test]
    fn a_run_round_trips_through_its_record() {
        let stores = vec![store("a", "1")];
        let run = run(&stores, 2);
        let config_map = encode(&run, "provisioner", None).expect("encode");
        assert_eq!(decode(&config_map), Some(run.clone()));
        assert_eq!(config_map.labels()[RUN_LABEL], "provisioner");
        let proto = run.to_proto();
        assert_eq!(
            proto.stores[0].state,
            proto::FleetStoreState::Pending as i32
        );
        assert_eq!(proto.state, proto::FleetUpgradeState::Running as i32);
    }
}
