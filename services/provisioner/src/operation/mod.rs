//! Operations on a living store (restore, upgrade, suspend, resume, reconfigure): each an ordered list of named steps, recorded in the store's
//! record and advanced by the reconcile loop like provisioning's. What an operation is, and what its end makes of
//! the store, is here once; each operation says only its own steps. The steps several operations share (stopping
//! the store's writers behind a page, starting them again, checking that a customer can order) are in [`writers`].

pub mod reconfigure;
pub mod suspend;
pub mod upgrade;
pub mod writers;

use std::time::Duration;

use jiff::Timestamp;
use store_platform_runtime::record::{
    OperationKind, OperationState, OperationStatus, Phase, StepState, StepStatus, StoreRecord,
};

use crate::{
    backup::restore::Restore,
    engine::{Engine, Steps},
    error::Error,
    kube_ops::Kube,
    reconcile::Outcome,
};

/// Steps that undo a failed operation carry this prefix; once they are added, only they run.
pub const ROLLBACK: &str = "rollback-";

/// An operation's own part: its steps (through [`Steps`]) and what its failure means.
#[tonic::async_trait]
pub trait Operation: Steps {
    /// The store's phase while the operation runs.
    fn phase(&self) -> Phase;

    /// Whether the operation got as far as changing the store.
    fn changed_the_store(&self, steps: &[StepStatus]) -> bool;

    /// The steps that undo the operation, given how far it got; none: it cannot be undone, and a failure after it
    /// changed the store leaves the store FAILED.
    fn rollback(&self, _steps: &[StepStatus]) -> Vec<String> {
        Vec::new()
    }

    /// The store's failure reason when the operation failed at `reason` after changing the store (and, if it had
    /// rollback steps, one of them failed too).
    fn failure_reason(&self, reason: &str) -> String;

    /// The store's phase when the operation failed before it changed the store: what it was before.
    fn unchanged_phase(&self) -> Phase {
        Phase::Ready
    }

    /// What the status of `store` becomes when every step succeeded.
    fn succeeded(
        &self,
        _store: &StoreRecord,
        status: &mut store_platform_runtime::record::StoreStatus,
    ) {
        status.phase = Phase::Ready;
    }

    /// Clears what failed `step` left behind so it runs again (RetryStore).
    async fn reset(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error>;
}

/// The driver of `operation` on a store of `engine`.
pub fn driver<'a>(
    engine: &'a dyn Engine,
    operation: &'a OperationStatus,
) -> Box<dyn Operation + 'a> {
    match operation.kind {
        OperationKind::Restore => Box::new(Restore::new(engine, operation)),
        OperationKind::Upgrade => Box::new(upgrade::Upgrade::new(engine, operation)),
        OperationKind::Suspend | OperationKind::Resume => {
            Box::new(suspend::Pause::new(engine, operation))
        }
        OperationKind::Reconfigure => Box::new(reconfigure::Reconfigure::new(engine, operation)),
    }
}

/// Advances the store's running operation. When a step fails: if the operation changed nothing yet, the store is
/// READY as it was; if it can be undone, its rollback steps are added and run (the store is READY on what it had
/// when they succeed); otherwise, or when a rollback step fails, the store is FAILED with a reason saying what to do.
pub async fn advance(
    store: &StoreRecord,
    engine: &dyn Engine,
    kube: &Kube,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let mut status = store.status.clone();
    let Some(mut operation) = status.operation.clone() else {
        // An operation's phase with no operation was written by hand: nothing to continue.
        status.phase = Phase::Failed;
        status.failure_reason = format!(
            "the store's record says it is {} but names no operation",
            store.status.phase.as_str()
        );
        status.update_time = Some(now);
        return Ok(Outcome {
            status,
            transitions: Vec::new(),
            wake_after: None,
        });
    };
    let before = operation.clone();
    let driver = driver(engine, &before);
    let rollback_from = operation
        .steps
        .iter()
        .position(|step| step.name.starts_with(ROLLBACK));
    let outcome = crate::reconcile::run_steps(
        &mut operation.steps[rollback_from.unwrap_or(0)..],
        driver.as_ref(),
        store,
        kube,
        now,
    )
    .await?;
    let mut wake_after = outcome.wake_after;
    if let Some(reason) = &outcome.failed {
        let undo = match rollback_from {
            None if driver.changed_the_store(&operation.steps) => driver.rollback(&operation.steps),
            _ => Vec::new(),
        };
        if !undo.is_empty() {
            operation.message =
                format!("{} failed at {reason}; rolling back", before.kind.as_str());
            operation
                .steps
                .extend(undo.iter().map(|name| StepStatus::pending(name)));
            // The rollback starts at the next pass, at once.
            wake_after = Some(Duration::ZERO);
        } else {
            operation.state = OperationState::Failed;
            operation.finish_time = Some(now);
            match rollback_from {
                Some(_) => {
                    operation.message =
                        format!("{}; the rollback failed at {reason}", operation.message);
                    status.phase = Phase::Failed;
                    status.failure_reason = driver.failure_reason(&operation.message);
                }
                None if driver.changed_the_store(&operation.steps) => {
                    operation.message = reason.clone();
                    status.phase = Phase::Failed;
                    status.failure_reason = driver.failure_reason(reason);
                }
                None => {
                    operation.message = reason.clone();
                    status.phase = driver.unchanged_phase();
                }
            }
        }
    } else if operation
        .steps
        .iter()
        .skip(rollback_from.unwrap_or(0))
        .all(|s| s.state == StepState::Succeeded)
    {
        operation.finish_time = Some(now);
        if rollback_from.is_some() {
            operation.state = OperationState::RolledBack;
            operation.message = operation.message.replace("; rolling back", "; rolled back");
            status.phase = Phase::Ready;
        } else {
            operation.state = OperationState::Succeeded;
            driver.succeeded(store, &mut status);
        }
    }
    status.operation = Some(operation);
    if status != store.status {
        status.update_time = Some(now);
    }
    Ok(Outcome {
        status,
        transitions: outcome.transitions,
        wake_after,
    })
}

/// Takes a store whose operation failed back into it, from the steps that failed, their leftovers cleared
/// (RetryStore). False when the store has no failed operation.
pub async fn retry(
    store: &mut StoreRecord,
    engine: &dyn Engine,
    kube: &Kube,
) -> Result<bool, Error> {
    let Some(mut operation) = store
        .status
        .operation
        .clone()
        .filter(|op| op.state == OperationState::Failed)
    else {
        return Ok(false);
    };
    // Once rolling back, only the rollback runs again: the step that made it roll back stays failed.
    let from = operation
        .steps
        .iter()
        .position(|s| s.name.starts_with(ROLLBACK))
        .unwrap_or(0);
    let phase = {
        let driver = driver(engine, &operation);
        for step in operation.steps[from..]
            .iter()
            .filter(|s| s.state == StepState::Failed)
        {
            driver.reset(&step.name, store, kube).await?;
        }
        driver.phase()
    };
    for step in operation.steps[from..]
        .iter_mut()
        .filter(|s| s.state == StepState::Failed)
    {
        *step = StepStatus::pending(&step.name);
    }
    operation.state = OperationState::Running;
    operation.finish_time = None;
    if from == 0 {
        operation.message.clear();
    } else if let Some((what, _)) = operation.message.split_once("; the rollback failed at ") {
        operation.message = format!("{what}; rolling back");
    }
    store.status.operation = Some(operation);
    store.status.phase = phase;
    store.status.failure_reason.clear();
    store.status.update_time = Some(Timestamp::now());
    Ok(true)
}

/// The operation running on `store`, if one is, for the FAILED_PRECONDITION of a request that conflicts with it.
pub fn running(store: &StoreRecord) -> Option<String> {
    let operation = store
        .status
        .operation
        .as_ref()
        .filter(|op| op.state == OperationState::Running)?;
    Some(match operation.kind {
        OperationKind::Restore => format!(
            "a restore of backup {}",
            crate::backup::restore::short(&operation.backup)
        ),
        OperationKind::Upgrade => format!(
            "an upgrade to version {}",
            operation
                .to_version
                .as_ref()
                .map_or("?", |v| v.name.as_str())
        ),
        OperationKind::Suspend => "pausing".to_owned(),
        OperationKind::Resume => "resuming".to_owned(),
        OperationKind::Reconfigure => "applying the platform's new settings".to_owned(),
    })
}

/// The version `store` runs, for a store made before versions were recorded: read from its Deployments' images,
/// named as the platform's offered version with those images, or unnamed (an empty name) when none has them. An
/// operation records it before it starts, so what it starts again runs the images that ran, whatever the
/// platform's default is now.
pub async fn running_version(
    store: &StoreRecord,
    engine: &dyn Engine,
    kube: &Kube,
) -> Result<Option<store_platform_runtime::record::Version>, Error> {
    let mut images = std::collections::BTreeMap::new();
    for (component, deployment) in engine.version_components() {
        let image = kube
            .get::<k8s_openapi::api::apps::v1::Deployment>(deployment)
            .await?
            .and_then(|d| d.spec?.template.spec?.containers.into_iter().next()?.image);
        match image {
            Some(image) => images.insert((*component).to_owned(), image),
            // Not made yet: nothing runs that could be started on the wrong images.
            None => return Ok(None),
        };
    }
    let offered = engine.settings().versions(store.spec.engine).offered();
    Ok(Some(
        offered
            .iter()
            .find(|version| version.images == images)
            .cloned()
            .unwrap_or(store_platform_runtime::record::Version {
                name: String::new(),
                images,
            }),
    ))
}

/// Records in `store` the version it runs, if it recorded none (see [`running_version`]).
pub async fn record_version(
    store: &mut StoreRecord,
    engine: &dyn Engine,
    kube: &Kube,
) -> Result<(), Error> {
    if store.status.version.is_none() {
        store.status.version = running_version(store, engine, kube).await?;
    }
    Ok(())
}
