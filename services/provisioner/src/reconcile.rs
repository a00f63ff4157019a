//! The reconcile loop: a pass over each store namespace whenever it or one of its StatefulSets, Deployments and Jobs
//! changes, run by a fixed set of workers from a first-come-first-served [`WorkQueue`]. Each pass
//! reads the store from its namespace, advances its steps from what Kubernetes reports, and writes the observed
//! status back. It never sleeps to poll: a pass that waits returns, and the next watch event (or the step's deadline)
//! wakes it.

use std::{sync::Arc, time::Duration};

use futures::{FutureExt as _, StreamExt as _};
use jiff::Timestamp;
use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{Namespace, ObjectReference},
};
use kube::{
    Api, Client, Resource, ResourceExt as _,
    api::{Patch, PatchParams},
    core::{Selector, SelectorExt as _},
    runtime::{
        WatchStreamExt as _,
        events::{Event, EventType, Recorder, Reporter},
        reflector::{self, ObjectRef},
    },
};
use store_platform_runtime::{
    Shutdown,
    record::{self, OperationState, Phase, StepState, StepStatus, StoreRecord, StoreStatus},
    watch::{Watches, watch},
};

use crate::{
    engine::{Engine, Engines, Progress, Provisioning, Steps},
    error::Error,
    kube_ops::{Caches, FIELD_MANAGER, Kube, Observed, version_order},
    metrics::{Metrics, ReasonLabel, StepLabel},
    work_queue::WorkQueue,
};

/// Step events waiting to be published, at most: a burst of 1,000 new stores queues 12,000 in a couple of minutes
/// (the queue takes memory only for those waiting).
const EVENT_QUEUE: usize = 50_000;
/// Events published at once. Measured with `make bench` (100 stores at once, 2 cores): one publisher keeps
/// provisioning at the control plane's own pace (0.9x the baseline) while events trail the burst and catch up
/// after it; four keep events current but slow every store (1.3x), because their requests crowd the API server
/// that the controllers need. Stores first; events are diagnostics.
const EVENT_PUBLISHERS: usize = 1;
/// A pass that has not ended by then (a request on a connection that went silent) is abandoned and retried like a
/// failed one, so it cannot hold a worker for good. A pass only reads and writes the API server, and never waits
/// for anything else (`store_platform_reconcile_pass_duration_seconds` shows how long they take).
const PASS_DEADLINE: Duration = Duration::from_secs(60);

/// What every reconcile pass shares.
pub struct Context {
    pub client: Client,
    pub engines: Engines,
    pub metrics: Arc<Metrics>,
    /// Step events, published off the reconcile path, so they neither delay a store's next pass nor flood the API
    /// server. They carry their own time, so their order in `kubectl get events` is kept.
    events: tokio::sync::mpsc::Sender<(Event, ObjectReference)>,
    /// This process's last write of each store's record, as the API server answered it, until the watch delivers
    /// it. A pass handed an older version (the watch has not delivered the write yet) goes on from the write's
    /// answer rather than redo steps it already did.
    written: std::sync::Mutex<std::collections::HashMap<String, Written>>,
    /// Passes in a row that failed, per store: each waits twice as long as the one before (1 s to 5 minutes), so a
    /// store that keeps failing does not cost the API server several requests a second.
    failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// The backup Jobs whose end this process has counted and reported (by uid).
    reported_backups: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// A store record as this process last wrote it.
struct Written {
    namespace: Arc<Namespace>,
    /// A later write was refused because someone else changed the record: the next pass reads it afresh.
    read_again: bool,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("engines", &self.engines)
            .finish_non_exhaustive()
    }
}

/// How many event recorders share the stores (see [`Context::new`]).
const RECORDERS: usize = 64;

/// The recorder of the store in `namespace`.
fn recorder_of(namespace: Option<&str>) -> usize {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    namespace.hash(&mut hasher);
    usize::try_from(hasher.finish() % RECORDERS as u64).unwrap_or(0)
}

impl Context {
    pub fn new(
        client: Client,
        engines: Engines,
        instance: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance,
        };
        // kube's Recorder keeps the events it published for six minutes (to count repeats as a series) and sweeps
        // that whole cache on every publish: one Recorder for every store made each event cost more the more stores
        // had events lately (at 1,000 stores, a growing part of the provisioner's CPU). A store's events always go
        // to the same one of these, so its repeats still count as a series.
        let recorders: Arc<Vec<Recorder>> = Arc::new(
            (0..RECORDERS)
                .map(|_| Recorder::new(client.clone(), reporter.clone()))
                .collect(),
        );
        let (events, queue) = tokio::sync::mpsc::channel::<(Event, ObjectReference)>(EVENT_QUEUE);
        let publisher_metrics = metrics.clone();
        let publish = move |(event, reference): (Event, ObjectReference)| {
            let recorder = recorders[recorder_of(reference.namespace.as_deref())].clone();
            let metrics = publisher_metrics.clone();
            async move {
                match recorder.publish(&event, &reference).await {
                    Ok(()) => metrics.write("event"),
                    Err(error) => tracing::warn!(%error, "failed to record an event"),
                }
            }
        };
        tokio::spawn(
            tokio_stream::wrappers::ReceiverStream::new(queue)
                .for_each_concurrent(EVENT_PUBLISHERS, publish),
        );
        Self {
            client,
            engines,
            metrics,
            events,
            written: Default::default(),
            failures: Default::default(),
            reported_backups: Default::default(),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u32>> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reported_backups(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.reported_backups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn written(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Written>> {
        self.written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The store record as of this process's last write at least: `handed` (the watch's copy) when it is that
    /// version or newer, else the write's answer, or a fresh read when versions cannot be compared or a write was
    /// refused since.
    async fn current(&self, handed: Arc<Namespace>) -> Result<Arc<Namespace>, Error> {
        let name = handed.name_any();
        let ours = self
            .written()
            .get(&name)
            .map(|written| (written.namespace.clone(), written.read_again));
        let Some((ours, read_again)) = ours else {
            return Ok(handed);
        };
        let version = |namespace: &Namespace| namespace.resource_version().unwrap_or_default();
        match source_of_record(&version(&handed), &version(&ours), read_again) {
            RecordSource::Handed => {
                self.written().remove(&name);
                Ok(handed)
            }
            RecordSource::Written => Ok(ours),
            RecordSource::Read => {
                let fresh = Api::<Namespace>::all(self.client.clone())
                    .get_opt(&name)
                    .await
                    .map_err(Error::kubernetes("read the store record"))?;
                let Some(fresh) = fresh.map(Arc::new) else {
                    self.written().remove(&name);
                    return Ok(handed);
                };
                self.written().insert(
                    name,
                    Written {
                        namespace: fresh.clone(),
                        read_again: false,
                    },
                );
                Ok(fresh)
            }
        }
    }
}

/// Which copy of a store's record a pass goes on from.
#[derive(Debug, PartialEq)]
enum RecordSource {
    /// The watch's: it has caught up with this process's last write.
    Handed,
    /// The answer to this process's last write: the watch has not delivered it yet.
    Written,
    /// A fresh read.
    Read,
}

/// Where a pass handed the record at version `handed` gets it from, after this process wrote version `written`
/// (`read_again`: and a later write was refused).
fn source_of_record(handed: &str, written: &str, read_again: bool) -> RecordSource {
    use std::cmp::Ordering;
    match version_order(handed, written) {
        _ if read_again => RecordSource::Read,
        Some(Ordering::Equal | Ordering::Greater) => RecordSource::Handed,
        Some(Ordering::Less) => RecordSource::Written,
        None => RecordSource::Read,
    }
}

/// Pod Security labels for store namespaces: every store pod satisfies `restricted`.
pub fn pod_security_labels() -> [(&'static str, &'static str); 3] {
    [
        ("pod-security.kubernetes.io/enforce", "restricted"),
        ("pod-security.kubernetes.io/audit", "restricted"),
        ("pod-security.kubernetes.io/warn", "restricted"),
    ]
}

/// The namespace object holding `store`, for server-side apply (labels and annotations only).
pub fn record_namespace(store: &StoreRecord) -> Result<Namespace, Error> {
    let mut namespace = store.to_namespace()?;
    if let Some(labels) = namespace.metadata.labels.as_mut() {
        labels.extend(pod_security_labels().map(|(k, v)| (k.to_owned(), v.to_owned())));
    }
    Ok(namespace)
}

/// Writes `store`'s labels and annotations. With `resource_version`, only if nobody changed the namespace since.
pub async fn write_record(
    client: &Client,
    store: &StoreRecord,
    resource_version: Option<String>,
) -> Result<Namespace, Error> {
    let mut namespace = record_namespace(store)?;
    namespace.metadata.resource_version = resource_version;
    Api::<Namespace>::all(client.clone())
        .patch(
            &record::namespace_name(&store.id),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&namespace),
        )
        .await
        .map_err(Error::kubernetes("write the store record"))
}

/// What one pass decided.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub status: StoreStatus,
    /// Steps that changed state, with their new state, for events.
    pub transitions: Vec<(String, StepState, String)>,
    /// When to look again if no watch event comes first: the running step's deadline.
    pub wake_after: Option<Duration>,
}

/// `delay`, plus up to a fifth more at random, so stores refused together do not retry together.
fn jittered(delay: Duration) -> Duration {
    use rand::Rng as _;
    delay.mul_f64(1.0 + rand::rng().random_range(0.0..0.2))
}

/// When a step that waits on something no watch reports looks again, after waiting `waited`: half as long again,
/// from 250 ms to 5 s, so a short wait is seen soon and a long one costs few reads.
fn recheck_after(waited: Duration) -> Duration {
    (waited / 2).clamp(Duration::from_millis(250), Duration::from_secs(5))
}

fn elapsed(since: Option<Timestamp>, now: Timestamp) -> Duration {
    since
        .and_then(|start| now.duration_since(start).try_into().ok())
        .unwrap_or_default()
}

/// What running a list of steps decided.
#[derive(Debug)]
pub struct StepsOutcome {
    pub transitions: Vec<(String, StepState, String)>,
    pub wake_after: Option<Duration>,
    /// The reason, when a step failed.
    pub failed: Option<String>,
}

/// Advances `steps` as far as Kubernetes allows right now: the one loop of provisioning and of every operation.
/// Succeeded steps are skipped; a pending step is applied and becomes running; a running step is observed; the first
/// step that waits or fails ends the pass.
pub async fn run_steps(
    steps: &mut [StepStatus],
    driver: &dyn Steps,
    store: &StoreRecord,
    kube: &Kube,
    now: Timestamp,
) -> Result<StepsOutcome, Error> {
    let mut transitions = Vec::new();
    let mut wake_after = None;
    let mut failed = None;
    for entry in steps.iter_mut() {
        let step = entry.clone();
        match step.state {
            StepState::Succeeded => continue,
            StepState::Failed => {
                failed = Some(step.message.clone());
                break;
            }
            StepState::Pending => {
                match driver.apply(&step.name, store, kube).await {
                    Ok(()) => {
                        entry.state = StepState::Running;
                        // A step whose objects were refused before keeps the time of its first attempt: its
                        // deadline counts from then.
                        entry.start_time = entry.start_time.or(Some(now));
                        entry.finish_time = None;
                        entry.message.clear();
                        transitions.push((step.name.clone(), StepState::Running, String::new()));
                    }
                    // The API server refuses one of the step's objects (invalid, forbidden, over quota): the step
                    // says so, stays pending (the next pass applies again), and fails at its deadline with the
                    // API server's own words.
                    Err(error) if error.is_refusal() => {
                        let first = entry.start_time.get_or_insert(now);
                        let waited = elapsed(Some(*first), now);
                        let deadline = driver.deadline(&entry.name);
                        let refused = error.chain();
                        if waited >= deadline {
                            let reason = format!(
                                "{} not done after {}s: {refused}",
                                entry.name,
                                deadline.as_secs()
                            );
                            entry.state = StepState::Failed;
                            entry.finish_time = Some(now);
                            entry.message = reason.clone();
                            transitions.push((
                                entry.name.clone(),
                                StepState::Failed,
                                reason.clone(),
                            ));
                            failed = Some(reason);
                        } else {
                            if entry.message != refused {
                                tracing::warn!(step = %entry.name, error = %refused, "the API server refuses a step's object");
                            }
                            entry.message = refused;
                            // Again after as long as it has been refused so far (1 s to a minute, a little
                            // jittered), never past the deadline.
                            let backoff = jittered(
                                waited.clamp(Duration::from_secs(1), Duration::from_secs(60)),
                            );
                            wake_after = Some(backoff.min(deadline - waited));
                        }
                        break;
                    }
                    Err(error) => return Err(error),
                }
            }
            StepState::Running => {}
        }
        let progress = driver.observe(&entry.name, store, kube).await?;
        let recheck = matches!(progress, Progress::Recheck(_));
        match progress {
            Progress::Done => {
                entry.state = StepState::Succeeded;
                entry.finish_time = Some(now);
                entry.message.clear();
                transitions.push((entry.name.clone(), StepState::Succeeded, String::new()));
            }
            Progress::Waiting(message) | Progress::Recheck(message) => {
                let deadline = driver.deadline(&entry.name);
                let waited = elapsed(entry.start_time, now);
                if waited >= deadline {
                    let why = driver.diagnose(&entry.name, store, kube).await;
                    let reason = format!(
                        "{} not done after {}s: {why}",
                        entry.name,
                        deadline.as_secs()
                    );
                    entry.state = StepState::Failed;
                    entry.finish_time = Some(now);
                    entry.message = reason.clone();
                    transitions.push((entry.name.clone(), StepState::Failed, reason.clone()));
                    failed = Some(reason);
                } else {
                    entry.message = message;
                    let until_deadline = deadline - waited;
                    wake_after = Some(if recheck {
                        recheck_after(waited).min(until_deadline)
                    } else {
                        until_deadline
                    });
                }
                break;
            }
            Progress::Failed(reason) => {
                entry.state = StepState::Failed;
                entry.finish_time = Some(now);
                entry.message = reason.clone();
                transitions.push((entry.name.clone(), StepState::Failed, reason.clone()));
                failed = Some(format!("{}: {reason}", entry.name));
                break;
            }
        }
    }
    Ok(StepsOutcome {
        transitions,
        wake_after,
        failed,
    })
}

/// Advances `store` as far as Kubernetes allows right now: its provisioning, or the operation it is in.
pub async fn advance(
    store: &StoreRecord,
    engine: &dyn Engine,
    kube: &Kube,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let operation_running = store
        .status
        .operation
        .as_ref()
        .is_some_and(|op| op.state == OperationState::Running);
    match store.status.phase {
        Phase::Restoring | Phase::Upgrading | Phase::Resuming => {
            return crate::operation::advance(store, engine, kube, now).await;
        }
        // A suspended store's restore, or a reconfigure of a READY one.
        Phase::Suspended | Phase::Ready if operation_running => {
            return crate::operation::advance(store, engine, kube, now).await;
        }
        Phase::Suspended => {
            crate::operation::suspend::hold(store, engine, kube).await?;
            return Ok(Outcome {
                status: store.status.clone(),
                transitions: Vec::new(),
                wake_after: None,
            });
        }
        _ => {}
    }
    let mut status = store.status.clone();
    if status.steps.is_empty() {
        status.steps = Provisioning(engine)
            .steps(&store.spec)
            .iter()
            .map(|name| StepStatus::pending(name))
            .collect();
    }
    let outcome = run_steps(&mut status.steps, &Provisioning(engine), store, kube, now).await?;
    if outcome
        .transitions
        .iter()
        .any(|(step, state, _)| step == "ingress" && *state == StepState::Succeeded)
    {
        (status.storefront_url, status.admin_url) = engine.urls(&store.id);
    }
    let newly_failed = outcome
        .transitions
        .iter()
        .any(|(_, state, _)| *state == StepState::Failed);
    if let Some(reason) = &outcome.failed
        && newly_failed
    {
        status.failure_reason = reason.clone();
    }
    status.phase = if outcome.failed.is_some() {
        Phase::Failed
    } else if status.steps.iter().all(|s| s.state == StepState::Succeeded) {
        Phase::Ready
    } else {
        Phase::Provisioning
    };
    if status != store.status {
        status.update_time = Some(now);
    }
    Ok(Outcome {
        status,
        transitions: outcome.transitions,
        wake_after: outcome.wake_after,
    })
}

/// The events of a pass's step transitions: one per transition, except that a step that started and ended in the
/// same pass has only the event of its end (its start says nothing more, and would double the events of every step
/// that is done as soon as its objects are applied).
fn step_events(transitions: &[(String, StepState, String)]) -> Vec<Event> {
    transitions
        .iter()
        .enumerate()
        .filter(|(at, (step, state, _))| {
            *state != StepState::Running
                || !transitions[at + 1..].iter().any(|(later, later_state, _)| {
                    later == step && matches!(later_state, StepState::Succeeded | StepState::Failed)
                })
        })
        .map(|(_, (step, state, message))| {
            let (type_, reason) = match state {
                StepState::Running => (EventType::Normal, "StepStarted"),
                StepState::Succeeded => (EventType::Normal, "StepSucceeded"),
                StepState::Failed => (EventType::Warning, "StepFailed"),
                StepState::Pending => (EventType::Normal, "StepReset"),
            };
            let note = if message.is_empty() {
                format!("step {step}")
            } else {
                format!("step {step}: {message}")
            };
            Event {
                type_,
                reason: reason.to_owned(),
                note: Some(note.chars().take(1000).collect()),
                // The step is the action: events of different steps must not fold into one series.
                action: step.clone(),
                secondary: None,
            }
        })
        .collect()
}

fn namespace_reference(namespace: &Namespace) -> ObjectReference {
    let mut reference = namespace.object_ref(&());
    // Events about a store belong in the store's namespace, where `kubectl get events` shows them.
    reference.namespace = namespace.metadata.name.clone();
    reference
}

/// One leadership term's view: the shared context and this term's watch caches.
struct Term {
    ctx: Arc<Context>,
    caches: Caches,
}

/// One pass over the store in `namespace`; when to look again if nothing changes before (`None`: not until then).
#[tracing::instrument(skip_all, fields(store = %namespace.name_any()))]
async fn reconcile(namespace: Arc<Namespace>, pass: Arc<Term>) -> Result<Option<Duration>, Error> {
    let ctx = &pass.ctx;
    if namespace.metadata.deletion_timestamp.is_some() {
        ctx.written().remove(&namespace.name_any());
        ctx.failures().remove(&namespace.name_any());
        return Ok(None);
    }
    let namespace = ctx.current(namespace).await?;
    let store = match StoreRecord::from_namespace(&namespace) {
        Ok(store) => store,
        Err(error) => {
            tracing::warn!(%error, "not a readable store record; leaving it alone");
            return Ok(None);
        }
    };
    if matches!(store.status.phase, Phase::Failed | Phase::Deleting) {
        return Ok(None);
    }
    let kube = Kube::new(ctx.client.clone(), namespace.name_any())
        .with_metrics(ctx.metrics.clone())
        .with_caches(pass.caches.clone());
    let outcome = advance(
        &store,
        ctx.engines.of_store(&store),
        &kube,
        Timestamp::now(),
    )
    .await?;
    ctx.failures().remove(&namespace.name_any());
    if outcome.status != store.status {
        let updated = StoreRecord {
            status: outcome.status.clone(),
            ..store.clone()
        };
        // Guarded by the resource version: a RetryStore or DeleteStore in between wins, and this pass reruns.
        let written = write_record(&ctx.client, &updated, namespace.resource_version()).await?;
        ctx.written().insert(
            namespace.name_any(),
            Written {
                namespace: Arc::new(written),
                read_again: false,
            },
        );
        ctx.metrics.write("status");
        observe_durations(&ctx.metrics, &store, &outcome.status);
        let reference = namespace_reference(&namespace);
        for (step, state, message) in &outcome.transitions {
            tracing::info!(step = %step, state = ?state, %message, "step transition");
        }
        let events = step_events(&outcome.transitions);
        // Queued for the publisher; if the process dies first they are lost (the status they describe is not). A
        // full queue drops the event rather than stall provisioning.
        for event in events {
            if ctx.events.try_send((event, reference.clone())).is_err() {
                tracing::warn!("event queue full; dropping a step event");
            }
        }
        if outcome.status.phase != store.status.phase {
            tracing::info!(phase = outcome.status.phase.as_str(), "store phase changed");
        }
    }
    if matches!(
        outcome.status.phase,
        Phase::Ready | Phase::Restoring | Phase::Upgrading | Phase::Suspended | Phase::Resuming
    ) {
        observe_backups(ctx, &kube, &store, &namespace).await;
    }
    Ok(outcome
        .wake_after
        .map(|after| after + Duration::from_millis(100)))
}

/// The store's backup Jobs, from the watch cache: the time of its newest successful backup, and, once per Job, its
/// duration or its failure, as metrics and as an event on the store's namespace.
async fn observe_backups(ctx: &Context, kube: &Kube, store: &StoreRecord, namespace: &Namespace) {
    let Some(jobs) = kube.cached::<Job>() else {
        return;
    };
    let label = crate::metrics::StoreLabel {
        store: store.id.clone(),
        tenant: store.tenant.clone(),
    };
    let backups: Vec<&Job> = jobs
        .iter()
        .map(AsRef::as_ref)
        .filter(|job| {
            let labels = job.metadata.labels.as_ref();
            labels
                .and_then(|l| l.get(crate::shared::meta::APP_LABEL))
                .map(String::as_str)
                == Some(crate::backup::BACKUP)
                && !labels.is_some_and(|l| l.contains_key(crate::backup::RESTORE_LABEL))
        })
        .collect();
    if let Some(newest) = backups
        .iter()
        .filter_map(|job| job.status.as_ref()?.completion_time.as_ref())
        .map(|time| time.0.as_second())
        .max()
    {
        ctx.metrics
            .backup_last_success
            .get_or_create(&label)
            .set(newest);
    }
    for job in backups {
        let status = job.status.clone().unwrap_or_default();
        let state = crate::backup::job_state(job);
        let Some(uid) = job.metadata.uid.clone() else {
            continue;
        };
        if state == crate::backup::JobState::Running || !ctx.reported_backups().insert(uid) {
            continue;
        }
        let succeeded = state == crate::backup::JobState::Succeeded;
        let name = job.metadata.name.clone().unwrap_or_default();
        let (type_, reason, note) = if succeeded {
            let took = match (&status.start_time, &status.completion_time) {
                (Some(start), Some(end)) => end.0.duration_since(start.0).as_secs_f64(),
                _ => 0.0,
            };
            ctx.metrics.backup_duration.observe(took);
            (
                EventType::Normal,
                "BackupSucceeded",
                format!("backup {name} succeeded in {took:.0}s"),
            )
        } else {
            ctx.metrics.backup_failures.get_or_create(&label).inc();
            let why = crate::backup::failure(kube, job).await;
            (
                EventType::Warning,
                "BackupFailed",
                format!("backup {name} failed: {why}"),
            )
        };
        tracing::info!(store = %store.id, job = %name, reason, "backup ended");
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note.chars().take(1000).collect()),
            action: "backup".to_owned(),
            secondary: None,
        };
        if ctx
            .events
            .try_send((event, namespace_reference(namespace)))
            .is_err()
        {
            tracing::warn!("event queue full; dropping a backup event");
        }
    }
}

/// Step durations for steps that just succeeded, and the whole provisioning time when the store became ready.
fn observe_durations(metrics: &Metrics, before: &StoreRecord, after: &StoreStatus) {
    for (old, new) in before.status.steps.iter().zip(&after.steps) {
        if old.state != StepState::Succeeded
            && new.state == StepState::Succeeded
            && let (Some(start), Some(finish)) = (new.start_time, new.finish_time)
        {
            metrics
                .step_duration
                .get_or_create(&StepLabel {
                    step: new.name.clone(),
                })
                .observe(finish.duration_since(start).as_secs_f64());
        }
    }
    if before.status.phase == Phase::Restoring
        && after.phase != Phase::Restoring
        && let Some(operation) = &after.operation
    {
        if let Some(finish) = operation.finish_time {
            metrics
                .restore_duration
                .observe(finish.duration_since(operation.start_time).as_secs_f64());
        }
        if operation.state == OperationState::Failed {
            metrics.restore_failures.inc();
        }
        return;
    }
    if before.status.phase == Phase::Upgrading
        && after.phase != Phase::Upgrading
        && let Some(operation) = &after.operation
    {
        if let Some(finish) = operation.finish_time {
            metrics
                .upgrade_duration
                .observe(finish.duration_since(operation.start_time).as_secs_f64());
        }
        let outcome = match operation.state {
            OperationState::Succeeded => "succeeded",
            OperationState::RolledBack => "rolled_back",
            _ => "failed",
        };
        metrics
            .upgrades
            .get_or_create(&crate::metrics::OutcomeLabel { outcome })
            .inc();
        return;
    }
    if before.status.phase != Phase::Ready
        && after.phase == Phase::Ready
        && let (Some(created), Some(ready)) = (before.create_time, after.update_time)
    {
        metrics
            .provisioning_duration
            .observe(ready.duration_since(created).as_secs_f64());
    }
}

/// When to try a failed pass again: soon after a conflict (someone else wrote the record), otherwise after a backoff
/// that grows with the store's failures in a row.
fn error_policy(namespace: &Namespace, error: &Error, pass: &Term) -> Duration {
    pass.ctx
        .metrics
        .reconcile_errors
        .get_or_create(&ReasonLabel {
            reason: error.metric_reason(),
        })
        .inc();
    let store = namespace.name_any();
    match error {
        Error::Kubernetes {
            source: kube::Error::Api(status),
            ..
        } if status.code == 409 => {
            if let Some(written) = pass.ctx.written().get_mut(&store) {
                written.read_again = true;
            }
            Duration::from_millis(200)
        }
        _ => {
            let failures = {
                let mut failures = pass.ctx.failures();
                let count = failures.entry(store.clone()).or_default();
                *count = count.saturating_add(1);
                *count
            };
            let delay = retry_delay(failures);
            tracing::warn!(
                %store,
                error = %error.chain(),
                failures,
                retry_in_ms = delay.as_millis() as u64,
                "reconcile failed; retrying"
            );
            delay
        }
    }
}

/// How long to wait after `failures` passes in a row failed: 1 s, doubling, at most 5 minutes, jittered.
fn retry_delay(failures: u32) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1u32 << failures.saturating_sub(1).min(9))
        .min(Duration::from_secs(300));
    jittered(base)
}

/// The store a store's object belongs to: its namespace's name.
fn store_of<K: Resource>(object: K) -> Option<String> {
    object.meta().namespace.clone()
}

/// A watch cache of the store objects of kind `K` matching `labels`, kept slim (see [`Observed::slim`]), and the
/// stream of the objects it touches, which wakes their stores.
fn cache<K: Observed + Send + Sync>(
    name: &'static str,
    client: &Client,
    labels: &str,
    watches: &Arc<Watches>,
) -> (
    reflector::Store<K>,
    impl futures::Stream<Item = Result<K, kube::runtime::watcher::Error>> + Send + 'static,
) {
    let (store, writer) = reflector::store();
    let events = watch(Api::<K>::all(client.clone()), name, labels, watches.clone())
        .modify(Observed::slim)
        .reflect(writer)
        .touched_objects();
    (store, events)
}

/// The store namespaces as this process's one watch of them holds them (every store, for the API as well), and what
/// the watch changed, as it changes: a store's name, or None when a listing reached the cache (every store).
#[derive(Clone, Debug)]
pub struct Records {
    pub cache: reflector::Store<Namespace>,
    pub changed: tokio::sync::broadcast::Sender<Option<String>>,
}

/// What wakes the reconciler.
enum Trigger {
    /// This store's record or one of its objects changed.
    Store(String),
    /// Look at every store: at the start of a term, after a listing of the records, and after missing some of their
    /// changes.
    Every,
}

/// Reconciles until `shutdown`, with `workers` passes at most at once, the stores in `records` whose namespace also
/// matches `only` (the `--reconcile-selector`).
pub async fn run(
    ctx: Arc<Context>,
    records: Records,
    only: Selector,
    workers: usize,
    shutdown: Shutdown,
) {
    let client = ctx.client.clone();
    // While leading, the leader also removes deleted stores' backups at the end of their window.
    if let Some(backup) = ctx
        .engines
        .of(record::Engine::Woocommerce)
        .settings()
        .backup
        .clone()
    {
        tokio::spawn(crate::backup::sweep::run(
            client.clone(),
            backup,
            shutdown.clone(),
        ));
    }
    let managed = record::managed_selector();
    let watches = ctx.metrics.watches.clone();
    // The store's objects wake the controller and fill the caches steps read from. Objects of stores outside the
    // selector still wake it; it skips them.
    let (stateful_sets, stateful_set_events) = cache("stateful-sets", &client, &managed, &watches);
    let (deployments, deployment_events) = cache("deployments", &client, &managed, &watches);
    let (jobs, job_events) = cache("jobs", &client, &managed, &watches);
    let term = Arc::new(Term {
        ctx,
        caches: Caches {
            stateful_sets,
            deployments,
            jobs,
        },
    });
    // The records come from the process's own watch of the store namespaces (the API reads it too), not from one of
    // this term's: one watch, so each write of a record reaches this process once. Subscribed before the first
    // `Every`, so no change falls between the two; changes missed later (a lagging subscriber) are an `Every` too.
    let changes = futures::stream::unfold(records.changed.subscribe(), |mut changes| async move {
        use tokio::sync::broadcast::error::RecvError;
        match changes.recv().await {
            Ok(Some(store)) => Some((Trigger::Store(store), changes)),
            Ok(None) | Err(RecvError::Lagged(_)) => Some((Trigger::Every, changes)),
            Err(RecvError::Closed) => None,
        }
    });
    let triggers = futures::stream::select_all([
        futures::stream::once(async { Trigger::Every })
            .chain(changes)
            .boxed(),
        woken(stateful_set_events).boxed(),
        woken(deployment_events).boxed(),
        woken(job_events).boxed(),
    ]);
    let queue = Arc::new(WorkQueue::new(term.ctx.metrics.reconcile_queue.clone()));
    let ours = Arc::new(only);
    let workers = tokio::spawn({
        let (queue, count, records, ours) =
            (queue.clone(), workers, records.cache.clone(), ours.clone());
        async move {
            // Passes read the records' cache, which before its first listing would say every store is gone. One task
            // waits for it: kube's `wait_until_ready` wakes only the last of several waiters.
            if records.wait_until_ready().await.is_err() {
                return;
            }
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..count {
                workers.spawn(work(
                    queue.clone(),
                    records.clone(),
                    ours.clone(),
                    term.clone(),
                ));
            }
            workers.join_all().await;
        }
    });
    let timers = tokio::spawn({
        let queue = queue.clone();
        async move { queue.run_timers().await }
    });
    // The watches feed the queue (and fill the caches) until shutdown; then the workers end the passes they are in.
    // Dropping the watches at shutdown ends a worker's wait for the records' first listing, if it is still waiting.
    let mut triggers = Box::pin(triggers.take_until(shutdown.wait()));
    while let Some(trigger) = triggers.next().await {
        match trigger {
            Trigger::Store(store) => queue.trigger(&store),
            // Before the first listing the cache is empty; its end is an `Every` again.
            Trigger::Every => {
                for namespace in records.cache.state() {
                    if ours.matches(namespace.labels()) {
                        queue.trigger(&namespace.name_any());
                    }
                }
            }
        }
    }
    drop(triggers);
    queue.close();
    let _ = workers.await;
    let _ = timers.await;
}

/// The stores whose objects a cache's watch touched.
fn woken<K: Resource>(
    events: impl futures::Stream<Item = Result<K, kube::runtime::watcher::Error>>,
) -> impl futures::Stream<Item = Trigger> {
    events.filter_map(|event| {
        futures::future::ready(match event {
            Ok(object) => store_of(object).map(Trigger::Store),
            Err(error) => {
                tracing::debug!(%error, "watch error");
                None
            }
        })
    })
}

/// A worker: takes the next store from `queue` and runs its pass, until the queue closes. Stores the records' watch
/// has not seen (not a store, or deleted) or outside `ours` are skipped.
async fn work(
    queue: Arc<WorkQueue>,
    records: reflector::Store<Namespace>,
    ours: Arc<Selector>,
    term: Arc<Term>,
) {
    while let Some(store) = queue.next().await {
        let wake_after = match records.get(&ObjectRef::new(&store)) {
            // Boxed: an idle worker holds only its own small state, not room for a whole pass.
            Some(namespace) if ours.matches(namespace.labels()) => {
                Box::pin(pass(namespace, &term)).await
            }
            _ => None,
        };
        queue.done(&store, wake_after);
    }
}

/// Runs one pass, guarded, and says when to look at the store again.
async fn pass(namespace: Arc<Namespace>, term: &Arc<Term>) -> Option<Duration> {
    let started = std::time::Instant::now();
    let result = guarded(PASS_DEADLINE, reconcile(namespace.clone(), term.clone())).await;
    term.ctx
        .metrics
        .reconcile_pass_duration
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(wake_after) => wake_after,
        Err(error) => {
            tracing::debug!(error = %error.chain(), "reconcile error");
            Some(error_policy(&namespace, &error, term))
        }
    }
}

/// `pass`, abandoned after `deadline`, and with a panic in it turned into an error, so that neither loses the
/// worker or the store's place in the queue.
async fn guarded<T>(
    deadline: Duration,
    pass: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(deadline, std::panic::AssertUnwindSafe(pass).catch_unwind()).await {
        Ok(Ok(result)) => result,
        Ok(Err(_panic)) => Err(Error::PassAbandoned { why: "panicked" }),
        Err(_elapsed) => Err(Error::PassAbandoned {
            why: "took longer than its deadline",
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Mutex};

    use store_platform_runtime::record::{Engine as EngineKind, StoreSpec};

    use super::*;

    /// An engine whose steps report what the test scripted, recording what it was asked to apply.
    #[derive(Debug, Default)]
    struct Scripted {
        progress: Mutex<HashMap<&'static str, Progress>>,
        applied: Mutex<Vec<String>>,
        /// Steps whose objects the API server refuses, with its message.
        refused: Mutex<HashMap<&'static str, String>>,
    }

    impl Scripted {
        fn set(&self, step: &'static str, progress: Progress) {
            self.progress.lock().expect("lock").insert(step, progress);
        }

        fn applied(&self) -> Vec<String> {
            self.applied.lock().expect("lock").clone()
        }
    }

    #[tonic::async_trait]
    impl Engine for Scripted {
        fn steps(&self) -> &'static [&'static str] {
            &["namespace", "database", "ingress"]
        }

        fn reconfigure_steps(&self) -> &'static [&'static str] {
            &["database", "ingress"]
        }

        fn deadline(&self, _: &str) -> Duration {
            Duration::from_secs(10)
        }

        async fn apply(&self, step: &str, _: &StoreRecord, _: &Kube) -> Result<(), Error> {
            self.applied.lock().expect("lock").push(step.to_owned());
            match self.refused.lock().expect("lock").get(step) {
                Some(message) => Err(Error::Kubernetes {
                    action: "apply Service database".into(),
                    source: kube::Error::Api(Box::new(
                        kube::core::Status::failure(message, "Invalid").with_code(422),
                    )),
                }),
                None => Ok(()),
            }
        }

        async fn observe(&self, step: &str, _: &StoreRecord, _: &Kube) -> Result<Progress, Error> {
            Ok(self
                .progress
                .lock()
                .expect("lock")
                .get(step)
                .cloned()
                .unwrap_or(Progress::Done))
        }

        async fn diagnose(&self, step: &str, _: &StoreRecord, _: &Kube) -> String {
            format!("{step}-0: ImagePullBackOff")
        }

        async fn reset(&self, _: &str, _: &StoreRecord, _: &Kube) -> Result<(), Error> {
            Ok(())
        }

        fn settings(&self) -> &crate::settings::Settings {
            static LOCAL: std::sync::OnceLock<crate::settings::Settings> =
                std::sync::OnceLock::new();
            LOCAL.get_or_init(crate::settings::Settings::local)
        }

        async fn migrate(&self, _: &StoreRecord, _: &str, _: &Kube) -> Result<(), Error> {
            Ok(())
        }

        fn migration_app(&self) -> &'static str {
            "migrate"
        }

        fn version_components(&self) -> &'static [(&'static str, &'static str)] {
            &[]
        }

        fn backup_source(&self, _: &StoreRecord) -> crate::backup::Source {
            crate::backup::Source {
                database_image: "db".into(),
                dump: "true",
                dump_env: Vec::new(),
                database_app: "database",
                database_port: 1,
                files_claim: "files",
                files_sub_path: None,
                uid: 1000,
                next_to: "database",
                version: "scripted".into(),
                load: "true",
                cache: None,
                writers: &[],
                cron_jobs: &[],
                writer_steps: &[],
                image_steps: &[],
                idle: &[],
                databases: &[],
                database_steps: &[],
                verify_step: "ingress",
                verify_job: "verify",
                maintenance: None,
            }
        }

        fn urls(&self, id: &str) -> (String, String) {
            (
                format!("http://{id}.localhost/"),
                format!("http://{id}.localhost/wp-admin/"),
            )
        }

        async fn credentials(
            &self,
            _: &StoreRecord,
            _: &Kube,
        ) -> Result<Option<crate::engine::Credentials>, Error> {
            Ok(None)
        }
    }

    fn store(engine: &Scripted) -> StoreRecord {
        StoreRecord {
            id: "shoes".into(),
            tenant: "acme".into(),
            spec: StoreSpec {
                display_name: "Shoes".into(),
                engine: EngineKind::Woocommerce,
                admin_email: "owner@example.com".into(),
                source: None,
            },
            status: StoreStatus::pending(engine.steps(), Timestamp::UNIX_EPOCH),
            create_time: None,
            terminating: false,
            damage: None,
        }
    }

    #[test]
    fn a_step_started_and_ended_in_one_pass_has_one_event() {
        let transition = |step: &str, state| (step.to_owned(), state, String::new());
        let events = step_events(&[
            transition("database", StepState::Succeeded),
            transition("ingress", StepState::Running),
            transition("ingress", StepState::Succeeded),
            transition("cron", StepState::Running),
            transition("cron", StepState::Failed),
            transition("backups", StepState::Running),
        ]);
        let seen: Vec<(&str, &str)> = events
            .iter()
            .map(|event| (event.action.as_str(), event.reason.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("database", "StepSucceeded"),
                ("ingress", "StepSucceeded"),
                ("cron", "StepFailed"),
                ("backups", "StepStarted"),
            ]
        );
        assert_eq!(events[2].type_, EventType::Warning);
    }

    #[test]
    fn a_pass_goes_on_from_the_newer_of_the_watched_and_the_written_record() {
        // The watch has not delivered the write: the write's answer, without a read.
        assert_eq!(source_of_record("41", "57", false), RecordSource::Written);
        // It has (or someone wrote after it): the watch's.
        assert_eq!(source_of_record("57", "57", false), RecordSource::Handed);
        assert_eq!(source_of_record("102", "57", false), RecordSource::Handed);
        // A later write was refused (someone else changed the record), or the versions do not compare: read it.
        assert_eq!(source_of_record("41", "57", true), RecordSource::Read);
        assert_eq!(source_of_record("102", "57", true), RecordSource::Read);
        assert_eq!(source_of_record("", "57", false), RecordSource::Read);
        assert_eq!(source_of_record("a1", "57", false), RecordSource::Read);
    }

    /// Never contacted: the scripted engine ignores it.
    fn unused_kube() -> Kube {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
        Kube::new(
            Client::try_from(config).expect("client"),
            "store-shoes".into(),
        )
    }

    #[test]
    fn durations_are_observed_for_steps_that_just_succeeded() {
        let engine = Scripted::default();
        let (metrics, registry) = Metrics::new();
        let mut before = store(&engine);
        before.create_time = Some(at(0));
        let mut after = before.status.clone();
        for step in after.steps.iter_mut() {
            step.state = StepState::Succeeded;
            step.start_time = Some(at(1));
            step.finish_time = Some(at(3));
        }
        after.phase = Phase::Ready;
        after.update_time = Some(at(4));
        observe_durations(&metrics, &before, &after);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains("store_platform_step_duration_seconds_sum{step=\"database\"} 2.0"),
            "{text}"
        );
        assert!(
            text.contains("store_platform_provisioning_duration_seconds_sum 4.0"),
            "{text}"
        );
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("time")
    }

    #[tokio::test]
    async fn steps_run_in_order_and_stop_at_the_first_that_waits() {
        let engine = Scripted::default();
        engine.set(
            "database",
            Progress::Waiting("waiting for database-0".into()),
        );
        let outcome = advance(&store(&engine), &engine, &unused_kube(), at(0))
            .await
            .expect("advance");
        assert_eq!(engine.applied(), ["namespace", "database"]);
        assert_eq!(outcome.status.phase, Phase::Provisioning);
        let states: Vec<StepState> = outcome.status.steps.iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            [StepState::Succeeded, StepState::Running, StepState::Pending]
        );
        assert_eq!(outcome.status.steps[1].message, "waiting for database-0");
        assert_eq!(outcome.wake_after, Some(Duration::from_secs(10)));
        let transitions: Vec<(&str, StepState)> = outcome
            .transitions
            .iter()
            .map(|(s, state, _)| (s.as_str(), *state))
            .collect();
        assert_eq!(
            transitions,
            [
                ("namespace", StepState::Running),
                ("namespace", StepState::Succeeded),
                ("database", StepState::Running)
            ]
        );
    }

    #[tokio::test]
    async fn a_running_step_is_observed_not_applied_again() {
        let engine = Scripted::default();
        engine.set("database", Progress::Waiting("waiting".into()));
        let mut store = store(&engine);
        store.status = advance(&store, &engine, &unused_kube(), at(0))
            .await
            .expect("first")
            .status;
        let again = advance(&store, &engine, &unused_kube(), at(3))
            .await
            .expect("second");
        assert_eq!(
            engine.applied(),
            ["namespace", "database"],
            "nothing applied twice"
        );
        assert_eq!(
            again.status, store.status,
            "nothing changed, nothing to write"
        );
        assert!(again.transitions.is_empty());
        assert_eq!(again.wake_after, Some(Duration::from_secs(7)));
    }

    #[tokio::test]
    async fn a_step_that_no_watch_reports_looks_again_sooner_the_sooner_it_began() {
        let engine = Scripted::default();
        engine.set(
            "database",
            Progress::Recheck("waiting for the quota controller".into()),
        );
        let mut store = store(&engine);
        let first = advance(&store, &engine, &unused_kube(), at(0))
            .await
            .expect("first");
        assert_eq!(first.wake_after, Some(Duration::from_millis(250)));
        assert_eq!(
            first.status.steps[1].message,
            "waiting for the quota controller"
        );
        store.status = first.status;
        let later = advance(&store, &engine, &unused_kube(), at(4))
            .await
            .expect("later");
        assert_eq!(later.wake_after, Some(Duration::from_secs(2)));
        // Never past the deadline (10 s here), where it fails like any step.
        let last = advance(&store, &engine, &unused_kube(), at(9))
            .await
            .expect("last");
        assert_eq!(last.wake_after, Some(Duration::from_secs(1)));
        assert_eq!(
            recheck_after(Duration::from_secs(60)),
            Duration::from_secs(5)
        );
    }

    #[tokio::test]
    async fn a_step_past_its_deadline_fails_the_store_with_the_diagnosis() {
        let engine = Scripted::default();
        engine.set("database", Progress::Waiting("waiting".into()));
        let mut store = store(&engine);
        store.status = advance(&store, &engine, &unused_kube(), at(0))
            .await
            .expect("first")
            .status;
        let late = advance(&store, &engine, &unused_kube(), at(11))
            .await
            .expect("late");
        assert_eq!(late.status.phase, Phase::Failed);
        assert_eq!(
            late.status.failure_reason,
            "database not done after 10s: database-0: ImagePullBackOff"
        );
        assert_eq!(late.status.steps[1].state, StepState::Failed);
        assert_eq!(late.wake_after, None);
    }

    #[tokio::test]
    async fn a_step_that_fails_fails_the_store_and_later_steps_never_start() {
        let engine = Scripted::default();
        engine.set(
            "database",
            Progress::Failed("Job failed: exit code 1".into()),
        );
        let outcome = advance(&store(&engine), &engine, &unused_kube(), at(0))
            .await
            .expect("advance");
        assert_eq!(outcome.status.phase, Phase::Failed);
        assert_eq!(
            outcome.status.failure_reason,
            "database: Job failed: exit code 1"
        );
        assert_eq!(outcome.status.steps[2].state, StepState::Pending);
        assert!(!engine.applied().contains(&"ingress".to_owned()));
    }

    #[tokio::test]
    async fn a_store_whose_steps_all_succeed_is_ready_with_its_urls() {
        let engine = Scripted::default();
        let outcome = advance(&store(&engine), &engine, &unused_kube(), at(0))
            .await
            .expect("advance");
        assert_eq!(outcome.status.phase, Phase::Ready);
        assert_eq!(outcome.status.storefront_url, "http://shoes.localhost/");
        assert_eq!(outcome.status.update_time, Some(at(0)));
        assert_eq!(outcome.wake_after, None);
    }

    #[tokio::test]
    async fn a_refused_object_shows_in_its_step_is_applied_again_and_fails_the_store_at_the_deadline()
     {
        let engine = Scripted::default();
        engine.refused.lock().expect("lock").insert(
            "database",
            "failed to allocate a serviceIP: range is full".into(),
        );
        let mut store = store(&engine);
        let first = advance(&store, &engine, &unused_kube(), at(0))
            .await
            .expect("a refusal is not an error of the pass");
        let step = &first.status.steps[1];
        assert_eq!(step.state, StepState::Pending, "applied again next time");
        assert_eq!(step.start_time, Some(at(0)));
        assert!(
            step.message.contains("failed to apply Service database")
                && step.message.contains("range is full"),
            "{}",
            step.message
        );
        assert_eq!(first.status.phase, Phase::Provisioning);
        let wait = first.wake_after.expect("a retry is scheduled");
        assert!(
            wait >= Duration::from_secs(1) && wait <= Duration::from_millis(1200),
            "{wait:?}"
        );

        store.status = first.status;
        let later = advance(&store, &engine, &unused_kube(), at(6))
            .await
            .expect("again");
        assert_eq!(
            engine.applied(),
            ["namespace", "database", "database"],
            "the refused step is applied on every pass"
        );
        let wait = later.wake_after.expect("retry");
        assert!(wait >= Duration::from_secs(4), "backs off: {wait:?}");

        store.status = later.status;
        let late = advance(&store, &engine, &unused_kube(), at(11))
            .await
            .expect("late");
        assert_eq!(late.status.phase, Phase::Failed);
        assert!(
            late.status
                .failure_reason
                .starts_with("database not done after 10s: failed to apply Service database")
                && late.status.failure_reason.contains("range is full"),
            "{}",
            late.status.failure_reason
        );
    }

    #[test]
    fn failing_passes_back_off_from_a_second_to_five_minutes() {
        let within = |failures: u32, low: u64, high: u64| {
            let delay = retry_delay(failures);
            assert!(
                delay >= Duration::from_secs(low) && delay <= Duration::from_millis(high * 1200),
                "{failures}: {delay:?}"
            );
        };
        within(1, 1, 1);
        within(2, 2, 2);
        within(5, 16, 16);
        within(20, 300, 300);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_that_hangs_is_abandoned_at_its_deadline_and_one_that_panics_is_an_error() {
        let started = tokio::time::Instant::now();
        let hung = guarded::<()>(PASS_DEADLINE, std::future::pending()).await;
        assert!(
            matches!(hung, Err(Error::PassAbandoned { why }) if why.contains("deadline")),
            "{hung:?}"
        );
        assert_eq!(started.elapsed(), PASS_DEADLINE);
        let panicked = guarded::<()>(PASS_DEADLINE, async { panic!("a bug in a step") }).await;
        assert!(
            matches!(panicked, Err(Error::PassAbandoned { why: "panicked" })),
            "{panicked:?}"
        );
        let fine = guarded(PASS_DEADLINE, async { Ok(Some(Duration::from_secs(1))) }).await;
        assert_eq!(fine.ok().flatten(), Some(Duration::from_secs(1)));
    }
}
