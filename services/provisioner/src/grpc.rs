//! The ProvisionerService gRPC API. Every call is authenticated by its ServiceAccount token and acts for the tenant
//! it names, if the caller policy lets it; another tenant's store does not exist as far as the caller can tell.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt as _,
    api::{DeleteParams, PostParams, PropagationPolicy},
    runtime::reflector::Store,
};
use store_platform_proto::v1::{
    BackupStoreRequest, BackupStoreResponse, CreateStoreRequest, CreateStoreResponse,
    DeleteStoreRequest, DeleteStoreResponse, DeletedStore, EngineVersions, GetFleetUpgradeRequest,
    GetFleetUpgradeResponse, GetStoreCredentialsRequest, GetStoreCredentialsResponse,
    GetStoreRequest, GetStoreResponse, ListBackupsRequest, ListBackupsResponse,
    ListDeletedStoresRequest, ListDeletedStoresResponse, ListFleetUpgradesRequest,
    ListFleetUpgradesResponse, ListStoresRequest, ListStoresResponse, ListVersionsRequest,
    ListVersionsResponse, RestoreStoreRequest, RestoreStoreResponse, ResumeStoreRequest,
    ResumeStoreResponse, RetryStoreRequest, RetryStoreResponse, StartFleetUpgradeRequest,
    StartFleetUpgradeResponse, StopFleetUpgradeRequest, StopFleetUpgradeResponse,
    SuspendStoreRequest, SuspendStoreResponse, UpgradeStoreRequest, UpgradeStoreResponse,
    provisioner_service_server::ProvisionerService,
};
use store_platform_runtime::record::{
    self, CloneSource, OperationKind, Phase, StepState, StepStatus, StoreRecord, StoreStatus,
};
use store_platform_runtime::{auth::Authenticator, tenant::Caller};
use tonic::{Request, Response, Status};

use crate::{
    backup,
    engine::{Engines, Provisioning},
    error::Error,
    fleet,
    kube_ops::{FIELD_MANAGER, Kube},
    operation,
    reconcile::{record_namespace, write_record},
    settings::Settings,
    tenant_lock::TenantLocks,
    validation::{self, NewStore},
};

const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;

/// The ProvisionerService implementation.
#[derive(Clone)]
pub struct Provisioner {
    client: Client,
    /// Every store namespace, kept current by a watch.
    stores: Store<Namespace>,
    engines: Engines,
    auth: Authenticator,
    max_stores_per_tenant: usize,
    locks: TenantLocks,
    settings: Arc<Settings>,
    /// One on-demand backup starts at a time, so two requests at once find the first one's Job.
    backup_start: Arc<tokio::sync::Mutex<()>>,
    /// Creates waiting for their tenant's batch, per tenant (see [`Provisioner::create`]).
    waiting: Arc<Mutex<HashMap<String, Waiting>>>,
    /// Fleet upgrades are recorded here and run by the leader.
    fleet: Arc<fleet::Fleet>,
}

/// A tenant's creates that wait for the next batch, and whether a batch is running.
#[derive(Debug, Default)]
struct Waiting {
    creates: VecDeque<(
        NewStore,
        tokio::sync::oneshot::Sender<Result<StoreRecord, Status>>,
    )>,
    running: bool,
}

/// Namespace creates of one batch sent at once, at most.
const BATCH_WAVE: usize = 50;

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("max_stores_per_tenant", &self.max_stores_per_tenant)
            .finish_non_exhaustive()
    }
}

impl Provisioner {
    /// The API over `fleet`'s cluster, engines and settings.
    pub fn new(
        fleet: Arc<fleet::Fleet>,
        stores: Store<Namespace>,
        auth: Authenticator,
        max_stores_per_tenant: usize,
        locks: TenantLocks,
    ) -> Self {
        Self {
            client: fleet.client.clone(),
            stores,
            engines: fleet.engines.clone(),
            auth,
            max_stores_per_tenant,
            locks,
            settings: fleet.settings.clone(),
            backup_start: Arc::default(),
            waiting: Arc::default(),
            fleet,
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn namespaces(&self) -> Api<Namespace> {
        Api::all(self.client.clone())
    }

    /// Store `id` as Kubernetes holds it now, with its namespace, if `caller` may see it.
    async fn find(&self, caller: &Caller, id: &str) -> Result<(StoreRecord, Namespace), Error> {
        let namespace = self
            .namespaces()
            .get_opt(&record::namespace_name(id))
            .await
            .map_err(Error::kubernetes("read the store"))?
            .ok_or_else(|| Error::NotFound { id: id.to_owned() })?;
        match StoreRecord::from_namespace(&namespace) {
            Ok(store) if caller.may_see(&store.tenant) => Ok((store, namespace)),
            _ => Err(Error::NotFound { id: id.to_owned() }),
        }
    }

    /// The tenant's stores, read from the API server rather than the watch cache so that a burst of creates sees
    /// every store made just before it.
    async fn count_for(&self, tenant: &str) -> Result<usize, Error> {
        let selector = format!(
            "{},{}={tenant}",
            record::managed_selector(),
            record::TENANT_LABEL
        );
        let list = self
            .namespaces()
            .list_metadata(&kube::api::ListParams::default().labels(&selector))
            .await
            .map_err(Error::kubernetes("count the tenant's stores"))?;
        Ok(list
            .items
            .iter()
            .filter(|ns| ns.metadata.deletion_timestamp.is_none())
            .count())
    }

    /// Creates a store, counted against its tenant's limit.
    ///
    /// A tenant's creates go in batches: the first to arrive takes the tenant's lock (held across replicas, see
    /// `tenant_lock`) for every create that has queued behind it on this replica, counts the tenant's stores once,
    /// and creates up to the limit's worth of namespaces at once; creates that arrive meanwhile form the next
    /// batch. So a burst of one tenant costs one lock, one count and one create per store, not a lock and a count
    /// each, and the limit stays exact. The batch runs in a task of its own: a caller that goes away does not stop
    /// the creates of the others.
    async fn create(&self, tenant: String, new: NewStore) -> Result<StoreRecord, Status> {
        // An existing store is answered without waiting for a batch (a repeated create is idempotent).
        if let Some(existing) = self.find_any(&new.id).await? {
            return Ok(same_store_or_conflict(existing, &tenant, &new)?);
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let start = {
            let mut waiting = self.waiting();
            let queue = waiting.entry(tenant.clone()).or_default();
            queue.creates.push_back((new, reply));
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            let this = self.clone();
            tokio::spawn(async move { this.run_batches(tenant).await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(Status::internal(
                "the create's batch ended without an answer",
            ))
        })
    }

    /// The backup a clone is made from, checked: a backup of a store of `tenant` (living, or deleted within its
    /// window), of the new store's engine; its full id, and the version its data is of if the platform offers it.
    async fn clone_source(
        &self,
        tenant: &str,
        new: &NewStore,
        clone: validation::CloneRequest,
    ) -> Result<(CloneSource, Option<record::Version>), Error> {
        let settings = self.settings.backup.as_ref().ok_or(Error::BackupsOff)?;
        let key =
            backup::repository::existing_key_of(&self.client, settings, tenant, &clone.store_id)
                .await?;
        if key.is_none() {
            return Err(Error::CloneSourceNotFound { id: clone.store_id });
        }
        let snapshot = backup::repository::find_snapshot(
            &self.client,
            settings,
            (tenant, &clone.store_id),
            ("source.backup_id", &clone.backup_id),
        )
        .await?;
        snapshot.require_engine("engine", new.spec.engine)?;
        let version = self
            .settings
            .version_of_image(new.spec.engine, &snapshot.version)
            .cloned();
        Ok((
            CloneSource {
                store_id: clone.store_id,
                backup_id: snapshot.id,
            },
            version,
        ))
    }

    /// Runs `tenant`'s batches until none is waiting.
    async fn run_batches(&self, tenant: String) {
        loop {
            let batch: VecDeque<_> = {
                let mut waiting = self.waiting();
                let Some(queue) = waiting.get_mut(&tenant) else {
                    return;
                };
                if queue.creates.is_empty() {
                    waiting.remove(&tenant);
                    return;
                }
                std::mem::take(&mut queue.creates)
            };
            match self.locks.acquire(&tenant).await {
                Ok(lock) => {
                    self.create_batch(&tenant, batch).await;
                    lock.release().await;
                }
                Err(error) => {
                    tracing::warn!(%tenant, error = %error.chain(), "could not take the tenant's create lock");
                    let status = Status::from(error);
                    for (_, reply) in batch {
                        let _ = reply.send(Err(status.clone()));
                    }
                }
            }
        }
    }

    /// Counts the tenant's stores and creates the batch's in waves of what still fits; the caller holds the lock.
    async fn create_batch(
        &self,
        tenant: &str,
        mut batch: VecDeque<(
            NewStore,
            tokio::sync::oneshot::Sender<Result<StoreRecord, Status>>,
        )>,
    ) {
        let mut count = match self.count_for(tenant).await {
            Ok(count) => count,
            Err(error) => {
                let status = Status::from(error);
                for (_, reply) in batch {
                    let _ = reply.send(Err(status.clone()));
                }
                return;
            }
        };
        while !batch.is_empty() {
            let room = self.max_stores_per_tenant.saturating_sub(count);
            if room == 0 {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(Status::from(Error::TenantStoreLimit {
                        tenant: tenant.to_owned(),
                        max: self.max_stores_per_tenant,
                    })));
                }
                break;
            }
            let wave: Vec<_> = batch
                .drain(..room.min(BATCH_WAVE).min(batch.len()))
                .collect();
            let results = futures::future::join_all(
                wave.iter()
                    .map(|(new, _)| self.create_namespace(tenant, new.clone())),
            )
            .await;
            for ((_, reply), result) in wave.into_iter().zip(results) {
                let answer = result.map(|(store, created)| {
                    count += usize::from(created);
                    store
                });
                let _ = reply.send(answer.map_err(Status::from));
            }
        }
    }

    /// Creates store `new`'s namespace (the count was done); the store, and whether this call made it.
    async fn create_namespace(
        &self,
        tenant: &str,
        new: NewStore,
    ) -> Result<(StoreRecord, bool), Error> {
        let version = new.version.clone().unwrap_or_else(|| {
            self.settings
                .versions(new.spec.engine)
                .default_version()
                .clone()
        });
        let store = StoreRecord {
            id: new.id.clone(),
            tenant: tenant.to_owned(),
            spec: new.spec.clone(),
            status: StoreStatus {
                // A new store runs the platform's default version of its engine (a clone: its backup's, if offered),
                // and keeps it until upgraded; it is built with the settings of now.
                settings_generation: self.settings.generation(new.spec.engine, Some(&version)),
                version: Some(version),
                ..StoreStatus::pending(
                    &Provisioning(self.engines.of(new.spec.engine)).steps(&new.spec),
                    Timestamp::now(),
                )
            },
            create_time: None,
            terminating: false,
            damage: None,
        };
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match self
            .namespaces()
            .create(&params, &record_namespace(&store)?)
            .await
        {
            Ok(namespace) => {
                tracing::info!(store = %store.id, %tenant, "store created");
                Ok((StoreRecord::from_namespace(&namespace)?, true))
            }
            // Created meanwhile (by another tenant, or this one with the same or another spec): compare.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                match self.find_any(&new.id).await? {
                    Some(existing) => {
                        same_store_or_conflict(existing, tenant, &new).map(|store| (store, false))
                    }
                    None => Err(Error::AlreadyExists {
                        id: new.id,
                        reason: "(created and deleted concurrently); try again",
                    }),
                }
            }
            Err(source) => Err(Error::Kubernetes {
                action: "create the store namespace".into(),
                source,
            }),
        }
    }

    /// The store `id`, whoever owns it.
    /// Starts a restore of `id` from backup `wanted`; the store then.
    async fn start_restore(
        &self,
        caller: &Caller,
        id: &str,
        wanted: &str,
    ) -> Result<StoreRecord, Error> {
        let Some(settings) = self.settings.backup.as_ref() else {
            return Err(Error::BackupsOff);
        };
        let (mut store, namespace) = self.find(caller, id).await?;
        if let Some(what) = operation::running(&store) {
            return Err(Error::OperationRunning {
                id: id.to_owned(),
                what,
            });
        }
        if store.terminating || !matches!(store.phase(), Phase::Ready | Phase::Suspended) {
            return Err(Error::NotReadyForRestore {
                id: id.to_owned(),
                phase: store.phase().as_str(),
            });
        }
        // Only a backup in this store's own repository (its tenant's, under its key) can be found.
        let snapshot = backup::repository::find_snapshot(
            &self.client,
            settings,
            (&store.tenant, id),
            ("backup_id", wanted),
        )
        .await?;
        snapshot.require_engine("backup_id", store.spec.engine)?;
        let now = Timestamp::now();
        let kube = Kube::new(self.client.clone(), namespace.name_any());
        let engine = self.engines.of(store.spec.engine);
        operation::record_version(&mut store, engine, &kube).await?;
        let suspended = store.phase() == Phase::Suspended;
        store.status.phase = Phase::Restoring;
        store.status.operation = Some(backup::restore::operation(&snapshot.id, suspended, now));
        store.status.update_time = Some(now);
        // Guarded by the resource version: of two operations requested at once, one is recorded; the other finds
        // it running when it reads the store again.
        write_record(&self.client, &store, namespace.resource_version()).await?;
        tracing::info!(store = %id, tenant = %store.tenant, by = %caller.tenant, backup = %snapshot.id, "restore started");
        Ok(store)
    }

    /// Starts an upgrade of `id` to version `wanted` (empty: the default); the store then.
    async fn start_upgrade(
        &self,
        caller: &Caller,
        id: &str,
        wanted: &str,
    ) -> Result<StoreRecord, Error> {
        let (mut store, namespace) = self.find(caller, id).await?;
        let target =
            operation::upgrade::target(&self.settings, store.spec.engine, ("version", wanted))?;
        if let Some(what) = operation::running(&store) {
            return Err(Error::OperationRunning {
                id: id.to_owned(),
                what,
            });
        }
        let kube = Kube::new(self.client.clone(), namespace.name_any());
        let engine = self.engines.of(store.spec.engine);
        operation::record_version(&mut store, engine, &kube).await?;
        operation::upgrade::begin(
            &mut store,
            ("version", target),
            self.settings.backup.is_some(),
            Timestamp::now(),
        )?;
        write_record(&self.client, &store, namespace.resource_version()).await?;
        tracing::info!(store = %id, tenant = %store.tenant, by = %caller.tenant, version = %target.name, "upgrade started");
        Ok(store)
    }

    /// Starts a suspend or a resume of `id` (`kind`); the store then. Asking for what the store already is, or is
    /// becoming, returns it as it is.
    async fn start_pause(
        &self,
        caller: &Caller,
        id: &str,
        kind: OperationKind,
    ) -> Result<StoreRecord, Error> {
        let (mut store, namespace) = self.find(caller, id).await?;
        let suspend = kind == OperationKind::Suspend;
        let already = if suspend {
            store.phase() == Phase::Suspended
        } else {
            matches!(store.phase(), Phase::Ready | Phase::Resuming)
        };
        if !store.terminating && already {
            return Ok(store);
        }
        let phase = store.phase().as_str();
        if suspend {
            if let Some(what) = operation::running(&store) {
                return Err(Error::OperationRunning {
                    id: id.to_owned(),
                    what,
                });
            }
            if store.terminating || store.phase() != Phase::Ready {
                return Err(Error::NotReadyForSuspend {
                    id: id.to_owned(),
                    phase,
                });
            }
        } else if store.terminating || store.phase() != Phase::Suspended {
            // Resuming a store that is still pausing cuts the pause short: the resume starts what it stopped.
            return Err(Error::NotSuspended {
                id: id.to_owned(),
                phase,
            });
        }
        let kube = Kube::new(self.client.clone(), namespace.name_any());
        let engine = self.engines.of(store.spec.engine);
        operation::record_version(&mut store, engine, &kube).await?;
        let now = Timestamp::now();
        store.status.phase = if suspend {
            Phase::Suspended
        } else {
            Phase::Resuming
        };
        store.status.operation = Some(operation::suspend::operation(kind, now));
        store.status.update_time = Some(now);
        write_record(&self.client, &store, namespace.resource_version()).await?;
        tracing::info!(store = %id, tenant = %store.tenant, by = %caller.tenant, operation = kind.as_str(), "operation started");
        Ok(store)
    }

    async fn find_any(&self, id: &str) -> Result<Option<StoreRecord>, Error> {
        let namespace = self
            .namespaces()
            .get_opt(&record::namespace_name(id))
            .await
            .map_err(Error::kubernetes("read the store"))?;
        match namespace {
            None => Ok(None),
            Some(namespace) => match StoreRecord::from_namespace(&namespace) {
                Ok(store) => Ok(Some(store)),
                // A namespace of that name exists but is not a store (made by hand): the id is taken.
                Err(_) => Err(Error::AlreadyExists {
                    id: id.to_owned(),
                    reason: "as a namespace the platform does not manage",
                }),
            },
        }
    }
}

/// Runs `start` (which reads a store and writes its record guarded by the version it read) again when its write
/// lost to another: the reconciler writes a running store's progress often, and a request arriving just then should
/// be decided on the store as it is now, not refused. At most five times.
async fn again_on_conflict<T, F>(start: impl Fn() -> F) -> Result<T, Error>
where
    F: std::future::Future<Output = Result<T, Error>>,
{
    let mut attempt = 0;
    loop {
        match start().await {
            Err(error) if error.is_conflict() && attempt < 4 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
            }
            other => return other,
        }
    }
}

fn same_store_or_conflict(
    existing: StoreRecord,
    tenant: &str,
    new: &NewStore,
) -> Result<StoreRecord, Error> {
    if existing.tenant != tenant {
        return Err(Error::AlreadyExists {
            id: new.id.clone(),
            reason: "(the id is taken)",
        });
    }
    if existing.terminating || existing.status.phase == Phase::Deleting {
        return Err(Error::AlreadyExists {
            id: new.id.clone(),
            reason: "and is being deleted; create it again once it is gone",
        });
    }
    if existing.spec != new.spec {
        return Err(Error::AlreadyExists {
            id: new.id.clone(),
            reason: "with a different spec",
        });
    }
    Ok(existing)
}

/// One page of `stores` (sorted by id) after `page_token`.
fn page(
    mut stores: Vec<StoreRecord>,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<StoreRecord>, String), Error> {
    let size = match usize::try_from(page_size) {
        Ok(0) => DEFAULT_PAGE_SIZE,
        Ok(size) if size <= MAX_PAGE_SIZE => size,
        _ => {
            return Err(Error::InvalidField {
                field: "page_size",
                reason: format!("must be between 0 and {MAX_PAGE_SIZE}"),
            });
        }
    };
    if !page_token.is_empty() {
        validation::store_id("page_token", page_token).map_err(|_| Error::InvalidField {
            field: "page_token",
            reason: "is not a token this server handed out".to_owned(),
        })?;
    }
    stores.sort_by(|a, b| a.id.cmp(&b.id));
    let rest: Vec<StoreRecord> = stores
        .into_iter()
        .filter(|s| s.id.as_str() > page_token)
        .collect();
    let next = if rest.len() > size {
        rest[size - 1].id.clone()
    } else {
        String::new()
    };
    Ok((rest.into_iter().take(size).collect(), next))
}

#[tonic::async_trait]
impl ProvisionerService for Provisioner {
    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn create_store(
        &self,
        request: Request<CreateStoreRequest>,
    ) -> Result<Response<CreateStoreResponse>, Status> {
        let caller = self.auth.caller(request.metadata(), "CreateStore").await?;
        let mut new = NewStore::try_from(request.into_inner())?;
        if let Some(clone) = new.clone.take() {
            let (source, version) = self.clone_source(&caller.tenant, &new, clone).await?;
            new.spec.source = Some(source);
            new.version = version;
        }
        let store = self.create(caller.tenant, new).await?;
        Ok(Response::new(CreateStoreResponse {
            store: Some(store.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn get_store(
        &self,
        request: Request<GetStoreRequest>,
    ) -> Result<Response<GetStoreResponse>, Status> {
        let caller = self.auth.caller(request.metadata(), "GetStore").await?;
        let id = validation::store_id("store_id", &request.get_ref().store_id)?;
        let (store, _) = self.find(&caller, &id).await?;
        Ok(Response::new(GetStoreResponse {
            store: Some(store.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_stores(
        &self,
        request: Request<ListStoresRequest>,
    ) -> Result<Response<ListStoresResponse>, Status> {
        let caller = self.auth.caller(request.metadata(), "ListStores").await?;
        let request = request.into_inner();
        let phase = match store_platform_proto::v1::Phase::try_from(request.phase) {
            Ok(phase) => Phase::from_proto(phase),
            Err(_) => {
                return Err(Error::InvalidField {
                    field: "phase",
                    reason: format!("unknown phase {}", request.phase),
                }
                .into());
            }
        };
        let stores: Vec<StoreRecord> = self
            .stores
            .state()
            .iter()
            .filter_map(|ns| StoreRecord::from_namespace(ns).ok())
            .filter(|store| {
                caller.may_see(&store.tenant) && phase.is_none_or(|p| store.phase() == p)
            })
            .collect();
        let (stores, next_page_token) = page(stores, request.page_size, &request.page_token)?;
        Ok(Response::new(ListStoresResponse {
            stores: stores.iter().map(StoreRecord::to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn delete_store(
        &self,
        request: Request<DeleteStoreRequest>,
    ) -> Result<Response<DeleteStoreResponse>, Status> {
        let caller = self.auth.caller(request.metadata(), "DeleteStore").await?;
        let id = validation::store_id("store_id", &request.get_ref().store_id)?;
        let (mut store, namespace) = self.find(&caller, &id).await?;
        if !store.terminating {
            store.status.phase = Phase::Deleting;
            store.status.update_time = Some(Timestamp::now());
            write_record(&self.client, &store, None).await?;
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            match self
                .namespaces()
                .delete(&namespace.name_any(), &params)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(Error::Kubernetes {
                        action: "delete the store namespace".into(),
                        source,
                    }
                    .into());
                }
            }
            tracing::info!(store = %id, tenant = %store.tenant, by = %caller.tenant, "store deleting");
        }
        store.terminating = true;
        // Its backups outlive it for the retention window.
        let backups_kept_until = match self.settings.backup.as_ref() {
            Some(settings) => {
                backup::sweep::mark_deleted(&self.client, settings, &store, Timestamp::now())
                    .await?
                    .map(record::timestamp)
            }
            None => None,
        };
        Ok(Response::new(DeleteStoreResponse {
            store: Some(store.to_proto()),
            backups_kept_until,
        }))
    }

    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn retry_store(
        &self,
        request: Request<RetryStoreRequest>,
    ) -> Result<Response<RetryStoreResponse>, Status> {
        let caller = self.auth.caller(request.metadata(), "RetryStore").await?;
        let id = validation::store_id("store_id", &request.get_ref().store_id)?;
        let (mut store, namespace) = self.find(&caller, &id).await?;
        if store.phase() == Phase::Failed && store.damage.is_none() {
            // An operation that failed after it changed the store goes on from the step that failed, its Job
            // removed.
            let kube = Kube::new(self.client.clone(), namespace.name_any());
            let engine = self.engines.of(store.spec.engine);
            if operation::retry(&mut store, engine, &kube).await? {
                write_record(&self.client, &store, namespace.resource_version()).await?;
                tracing::info!(store = %id, tenant = %store.tenant, by = %caller.tenant, phase = store.status.phase.as_str(), "operation retried");
                return Ok(Response::new(RetryStoreResponse {
                    store: Some(store.to_proto()),
                }));
            }
        }
        if store.phase() != Phase::Failed {
            return Err(Error::NotRetryable {
                id,
                phase: store.phase().as_str(),
            }
            .into());
        }
        if let Some(damage) = store.damage.take() {
            // A hand-edited record: its status (and, if the spec was lost, the spec rebuilt from the labels) is
            // written afresh, and every step runs again; each finds what it made before and goes on from there.
            store.status = StoreStatus::pending(
                &Provisioning(self.engines.of_store(&store)).steps(&store.spec),
                Timestamp::now(),
            );
            store.status.phase = Phase::Provisioning;
            write_record(&self.client, &store, namespace.resource_version()).await?;
            tracing::warn!(
                store = %id,
                tenant = %store.tenant,
                by = %caller.tenant,
                spec_lost = damage.spec.is_some(),
                "an unreadable store record was rebuilt"
            );
            return Ok(Response::new(RetryStoreResponse {
                store: Some(store.to_proto()),
            }));
        }
        let kube = Kube::new(self.client.clone(), namespace.name_any());
        let failed: Vec<String> = store
            .status
            .steps
            .iter()
            .filter(|s| s.state == StepState::Failed)
            .map(|s| s.name.clone())
            .collect();
        for step in &failed {
            Provisioning(self.engines.of_store(&store))
                .reset(step, &store, &kube)
                .await?;
        }
        for step in store
            .status
            .steps
            .iter_mut()
            .filter(|s| s.state == StepState::Failed)
        {
            *step = StepStatus::pending(&step.name);
        }
        store.status.phase = Phase::Provisioning;
        store.status.failure_reason.clear();
        store.status.update_time = Some(Timestamp::now());
        // Guarded by the resource version, so a retry never overwrites a change it did not see.
        write_record(&self.client, &store, namespace.resource_version()).await?;
        tracing::info!(store = %id, tenant = %store.tenant, by = %caller.tenant, "store retried");
        Ok(Response::new(RetryStoreResponse {
            store: Some(store.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn get_store_credentials(
        &self,
        request: Request<GetStoreCredentialsRequest>,
    ) -> Result<Response<GetStoreCredentialsResponse>, Status> {
        let caller = self
            .auth
            .caller(request.metadata(), "GetStoreCredentials")
            .await?;
        let id = validation::store_id("store_id", &request.get_ref().store_id)?;
        let (store, namespace) = self.find(&caller, &id).await?;
        if store.terminating {
            return Err(Error::Deleting { id }.into());
        }
        let kube = Kube::new(self.client.clone(), namespace.name_any());
        let credentials = self
            .engines
            .of_store(&store)
            .credentials(&store, &kube)
            .await?
            .ok_or_else(|| Error::CredentialsNotReady { id: id.clone() })?;
        tracing::info!(store = %id, tenant = %store.tenant, by = %caller.tenant, "administrator credentials revealed");
        Ok(Response::new(GetStoreCredentialsResponse {
            admin_url: credentials.admin_url,
            username: credentials.username,
            password: credentials.password,
        }))
    }

    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn backup_store(
        &self,
        request: Request<BackupStoreRequest>,
    ) -> Result<Response<BackupStoreResponse>, Status> {
        let caller = self.auth.caller(request.metadata(), "BackupStore").await?;
        let id = validation::store_id("store_id", &request.get_ref().store_id)?;
        if self.settings.backup.is_none() {
            return Err(Error::BackupsOff.into());
        }
        let (store, namespace) = self.find(&caller, &id).await?;
        if let Some(what) = operation::running(&store) {
            return Err(Error::OperationRunning { id, what }.into());
        }
        // A suspended store is backed up too: its databases run for the backup (see operation::suspend::hold).
        if store.terminating || !matches!(store.phase(), Phase::Ready | Phase::Suspended) {
            return Err(Error::NotReadyForBackup {
                id,
                phase: store.phase().as_str(),
            }
            .into());
        }
        let kube = Kube::new(self.client.clone(), namespace.name_any());
        let engine = self.engines.of_store(&store);
        let source = engine.backup_source(&store);
        let job = {
            let _one_at_a_time = self.backup_start.lock().await;
            backup::start(&store, &source, &self.settings, &kube).await?
        };
        tracing::info!(store = %id, tenant = %store.tenant, by = %caller.tenant, job = %job.name_any(), "backup started");
        let backup = backup::job_to_proto(
            &kube,
            &job,
            &store.id,
            store.spec.engine.to_proto(),
            &source,
        )
        .await;
        Ok(Response::new(BackupStoreResponse {
            backup: Some(backup),
        }))
    }

    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn list_backups(
        &self,
        request: Request<ListBackupsRequest>,
    ) -> Result<Response<ListBackupsResponse>, Status> {
        let caller = self.auth.caller(request.metadata(), "ListBackups").await?;
        let id = validation::store_id("store_id", &request.get_ref().store_id)?;
        let Some(settings) = self.settings.backup.as_ref() else {
            return Err(Error::BackupsOff.into());
        };
        let backups = match self.find(&caller, &id).await {
            Ok((store, namespace)) => {
                let kube = Kube::new(self.client.clone(), namespace.name_any());
                let source = self.engines.of_store(&store).backup_source(&store);
                let engine = store.spec.engine.to_proto();
                backup::list(
                    &self.client,
                    settings,
                    &store.tenant,
                    &id,
                    Some((&kube, engine, &source)),
                )
                .await?
            }
            // A deleted store: its backups are there while its key is, and only its own tenant finds them.
            Err(Error::NotFound { .. }) => {
                let tenant =
                    backup::repository::tenant_of_deleted(&self.client, settings, &caller, &id)
                        .await?
                        .ok_or_else(|| Error::NotFound { id: id.clone() })?;
                backup::list(&self.client, settings, &tenant, &id, None).await?
            }
            Err(error) => return Err(error.into()),
        };
        Ok(Response::new(ListBackupsResponse { backups }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_deleted_stores(
        &self,
        request: Request<ListDeletedStoresRequest>,
    ) -> Result<Response<ListDeletedStoresResponse>, Status> {
        let caller = self
            .auth
            .caller(request.metadata(), "ListDeletedStores")
            .await?;
        let settings = self.settings.backup.as_ref().ok_or(Error::BackupsOff)?;
        let stores = backup::sweep::deleted_stores(&self.client, settings, &caller)
            .await?
            .into_iter()
            .map(|deleted| DeletedStore {
                store_id: deleted.id,
                display_name: deleted
                    .spec
                    .as_ref()
                    .map(|spec| spec.display_name.clone())
                    .unwrap_or_default(),
                engine: deleted
                    .spec
                    .as_ref()
                    .map_or(store_platform_proto::v1::Engine::Unspecified, |spec| {
                        spec.engine.to_proto()
                    }) as i32,
                admin_email: deleted
                    .spec
                    .as_ref()
                    .map(|spec| spec.admin_email.clone())
                    .unwrap_or_default(),
                delete_time: Some(record::timestamp(deleted.deleted)),
                backups_kept_until: Some(record::timestamp(deleted.kept_until)),
            })
            .collect();
        Ok(Response::new(ListDeletedStoresResponse { stores }))
    }

    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn restore_store(
        &self,
        request: Request<RestoreStoreRequest>,
    ) -> Result<Response<RestoreStoreResponse>, Status> {
        let caller = self.auth.caller(request.metadata(), "RestoreStore").await?;
        let id = validation::store_id("store_id", &request.get_ref().store_id)?;
        let wanted = validation::backup_id("backup_id", &request.get_ref().backup_id)?;
        let store = again_on_conflict(|| self.start_restore(&caller, &id, &wanted)).await?;
        Ok(Response::new(RestoreStoreResponse {
            store: Some(store.to_proto()),
        }))
    }

    async fn list_versions(
        &self,
        request: Request<ListVersionsRequest>,
    ) -> Result<Response<ListVersionsResponse>, Status> {
        self.auth.caller(request.metadata(), "ListVersions").await?;
        let engines = [record::Engine::Woocommerce, record::Engine::Medusa]
            .into_iter()
            .map(|engine| {
                let versions = self.settings.versions(engine);
                EngineVersions {
                    engine: engine.to_proto() as i32,
                    versions: versions.offered().iter().map(|v| v.name.clone()).collect(),
                    default_version: versions.default_version().name.clone(),
                }
            })
            .collect();
        Ok(Response::new(ListVersionsResponse { engines }))
    }

    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn upgrade_store(
        &self,
        request: Request<UpgradeStoreRequest>,
    ) -> Result<Response<UpgradeStoreResponse>, Status> {
        let caller = self.auth.caller(request.metadata(), "UpgradeStore").await?;
        let id = validation::store_id("store_id", &request.get_ref().store_id)?;
        let wanted = request.get_ref().version.trim().to_owned();
        let store = again_on_conflict(|| self.start_upgrade(&caller, &id, &wanted)).await?;
        Ok(Response::new(UpgradeStoreResponse {
            store: Some(store.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn suspend_store(
        &self,
        request: Request<SuspendStoreRequest>,
    ) -> Result<Response<SuspendStoreResponse>, Status> {
        let caller = self.auth.caller(request.metadata(), "SuspendStore").await?;
        let id = validation::store_id("store_id", &request.get_ref().store_id)?;
        let store =
            again_on_conflict(|| self.start_pause(&caller, &id, OperationKind::Suspend)).await?;
        Ok(Response::new(SuspendStoreResponse {
            store: Some(store.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn resume_store(
        &self,
        request: Request<ResumeStoreRequest>,
    ) -> Result<Response<ResumeStoreResponse>, Status> {
        let caller = self.auth.caller(request.metadata(), "ResumeStore").await?;
        let id = validation::store_id("store_id", &request.get_ref().store_id)?;
        let store =
            again_on_conflict(|| self.start_pause(&caller, &id, OperationKind::Resume)).await?;
        Ok(Response::new(ResumeStoreResponse {
            store: Some(store.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn start_fleet_upgrade(
        &self,
        request: Request<StartFleetUpgradeRequest>,
    ) -> Result<Response<StartFleetUpgradeResponse>, Status> {
        let caller = self
            .auth
            .caller(request.metadata(), "StartFleetUpgrade")
            .await?;
        administrator(&caller, "StartFleetUpgrade")?;
        let request = request.into_inner();
        let engine = validation::engine(request.engine)?;
        let max_parallel =
            u32::try_from(request.max_parallel).map_err(|_| Error::InvalidField {
                field: "max_parallel",
                reason: format!("must be between 0 and {}", fleet::upgrade::MAX_PARALLEL),
            })?;
        let run = fleet::upgrade::start(
            &self.fleet,
            fleet::upgrade::Request {
                engine,
                from: request.from_version.trim(),
                to: request.to_version.trim(),
                max_parallel,
                started_by: &caller.tenant,
            },
        )
        .await?;
        Ok(Response::new(StartFleetUpgradeResponse {
            fleet_upgrade: Some(run.to_proto()),
        }))
    }

    async fn get_fleet_upgrade(
        &self,
        request: Request<GetFleetUpgradeRequest>,
    ) -> Result<Response<GetFleetUpgradeResponse>, Status> {
        let caller = self
            .auth
            .caller(request.metadata(), "GetFleetUpgrade")
            .await?;
        administrator(&caller, "GetFleetUpgrade")?;
        let run =
            fleet::upgrade::get(&self.fleet, request.get_ref().fleet_upgrade_id.trim()).await?;
        Ok(Response::new(GetFleetUpgradeResponse {
            fleet_upgrade: Some(run.to_proto()),
        }))
    }

    async fn stop_fleet_upgrade(
        &self,
        request: Request<StopFleetUpgradeRequest>,
    ) -> Result<Response<StopFleetUpgradeResponse>, Status> {
        let caller = self
            .auth
            .caller(request.metadata(), "StopFleetUpgrade")
            .await?;
        administrator(&caller, "StopFleetUpgrade")?;
        let run = fleet::upgrade::stop(
            &self.fleet,
            request.get_ref().fleet_upgrade_id.trim(),
            &caller.tenant,
        )
        .await?;
        Ok(Response::new(StopFleetUpgradeResponse {
            fleet_upgrade: Some(run.to_proto()),
        }))
    }

    async fn list_fleet_upgrades(
        &self,
        request: Request<ListFleetUpgradesRequest>,
    ) -> Result<Response<ListFleetUpgradesResponse>, Status> {
        let caller = self
            .auth
            .caller(request.metadata(), "ListFleetUpgrades")
            .await?;
        administrator(&caller, "ListFleetUpgrades")?;
        let runs = fleet::upgrade::list(&self.fleet).await?;
        Ok(Response::new(ListFleetUpgradesResponse {
            fleet_upgrades: runs.iter().map(fleet::upgrade::Run::to_proto).collect(),
        }))
    }
}

/// PERMISSION_DENIED unless `caller` acts for every tenant.
fn administrator(caller: &Caller, call: &'static str) -> Result<(), Error> {
    if caller.all_tenants {
        Ok(())
    } else {
        Err(Error::AdministratorsOnly { call })
    }
}
