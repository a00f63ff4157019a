//! The provisioner's Kubernetes writes: server-side apply with one field manager, into a store's namespace.

use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::{Deployment, StatefulSet},
        batch::v1::{CronJob, Job},
        core::v1::ResourceQuota,
    },
};
use kube::{
    Api, Client, Resource,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
    runtime::reflector::{ObjectRef, Store},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{error::Error, metrics::Metrics};

/// The field manager of every write the platform makes.
pub const FIELD_MANAGER: &str = "store-platform-provisioner";

/// How resource versions `a` and `b` of two objects of one resource are ordered, when both are what the API server
/// makes them: a positive integer without leading zeros, larger for a later write (comparable by clients since
/// Kubernetes 1.35, KEP-5504, and made so by every release that stores in etcd). None when either is not.
pub fn version_order(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let valid = |version: &str| {
        !version.is_empty()
            && !version.starts_with('0')
            && version.bytes().all(|byte| byte.is_ascii_digit())
    };
    (valid(a) && valid(b)).then(|| a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

/// The controller's watch caches of the kinds whose status steps wait on.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // Stores hold whole objects; printing them helps nobody.
pub struct Caches {
    pub stateful_sets: Store<StatefulSet>,
    pub deployments: Store<Deployment>,
    pub jobs: Store<Job>,
}

/// A kind whose status steps wait on: watched and held in [`Caches`], or (the ResourceQuota) read when a step looks.
pub trait Observed: StoreObject {
    /// Its watch cache; None for a kind not watched.
    fn store(caches: &Caches) -> Option<&Store<Self>>;

    /// Drops what steps never read before the object is cached: its spec (steps read only metadata and status),
    /// managed fields and annotations. A Deployment's or StatefulSet's pod template is most of its size, so the caches
    /// of 1,000 stores take a fraction of the memory whole objects would.
    fn slim(&mut self);
}

fn slim_meta(meta: &mut kube::api::ObjectMeta) {
    meta.managed_fields = None;
    meta.annotations = None;
}

impl Observed for StatefulSet {
    fn store(caches: &Caches) -> Option<&Store<Self>> {
        Some(&caches.stateful_sets)
    }

    fn slim(&mut self) {
        self.spec = None;
        slim_meta(&mut self.metadata);
    }
}

impl Observed for Deployment {
    fn store(caches: &Caches) -> Option<&Store<Self>> {
        Some(&caches.deployments)
    }

    fn slim(&mut self) {
        self.spec = None;
        slim_meta(&mut self.metadata);
    }
}

impl Observed for Job {
    fn store(caches: &Caches) -> Option<&Store<Self>> {
        Some(&caches.jobs)
    }

    fn slim(&mut self) {
        self.spec = None;
        slim_meta(&mut self.metadata);
    }
}

impl Observed for ResourceQuota {
    /// Not watched: it changes with every pod of the store (the quota controller counts them), and steps wait on it
    /// only once, for the moment the quota controller first counts it.
    fn store(_: &Caches) -> Option<&Store<Self>> {
        None
    }

    fn slim(&mut self) {
        self.spec = None;
        slim_meta(&mut self.metadata);
    }
}

/// An object the provisioner writes into a store's namespace.
pub trait StoreObject:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Serialize
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> StoreObject for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// How an error names a write of `object`: `<verb> <Kind> <name>`.
fn action<K: StoreObject>(verb: &str, object: &K) -> String {
    format!(
        "{verb} {} {}",
        K::kind(&()),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

/// What a [`Kube`]'s applies of cached kinds were answered, by kind and name.
type Applied = std::collections::HashMap<
    (std::any::TypeId, String),
    std::sync::Arc<dyn std::any::Any + Send + Sync>,
>;

/// A client scoped to one store namespace.
#[derive(Clone)]
pub struct Kube {
    pub client: Client,
    pub namespace: String,
    metrics: Option<std::sync::Arc<Metrics>>,
    caches: Option<Caches>,
    /// The objects of cached kinds this client applied, as the API server answered: a pass that applies an object
    /// and then looks at it reads the answer rather than the API server again (the watch has not delivered it yet).
    applied: std::sync::Arc<std::sync::Mutex<Applied>>,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Kube {
    pub fn new(client: Client, namespace: String) -> Self {
        Self {
            client,
            namespace,
            metrics: None,
            caches: None,
            applied: Default::default(),
        }
    }

    /// Reads observed objects from `caches` rather than the API server.
    pub fn with_caches(mut self, caches: Caches) -> Self {
        self.caches = Some(caches);
        self
    }

    /// Object `name` as last observed. For a watched kind, the newer of the watch cache's copy (the cache is updated
    /// before the watch event that woke the controller is delivered, so it is never older than what triggered this
    /// pass) and what this client's own apply of it was answered; read from the API server when neither has it, when
    /// the kind is not watched, or when this client has no watch caches at all (nothing would ever replace the
    /// answer to its apply: a caller that looks until a rollout ends would wait forever).
    pub async fn observe<K: Observed>(&self, name: &str) -> Result<Option<K>, Error> {
        let Some(store) = self.caches.as_ref().and_then(K::store) else {
            // Not watched: the API server's copy, newer than the answer to the pass's apply when something changed
            // it since (the quota controller counts a new quota within moments).
            return self.get(name).await;
        };
        let cached = store.get(&ObjectRef::new(name).within(&self.namespace));
        let applied = self
            .applied()
            .get(&(std::any::TypeId::of::<K>(), name.to_owned()))
            .and_then(|object| object.clone().downcast::<K>().ok());
        let newer = match (cached, applied) {
            (Some(cached), Some(applied)) => {
                let version =
                    |object: &K| object.meta().resource_version.clone().unwrap_or_default();
                match version_order(&version(&cached), &version(&applied)) {
                    Some(std::cmp::Ordering::Greater) => Some(cached),
                    // Not comparable: the answer to this pass's own write is at least as new as what the pass began
                    // with.
                    _ => Some(applied),
                }
            }
            (cached, applied) => cached.or(applied),
        };
        match newer {
            Some(object) => Ok(Some(object.as_ref().clone())),
            None => self.get(name).await,
        }
    }

    fn applied(&self) -> std::sync::MutexGuard<'_, Applied> {
        self.applied
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps `object`, the answer to an apply, for [`Kube::observe`] when it is of a cached kind.
    fn remember<K: Resource + Clone + Send + Sync + 'static>(&self, object: &K) {
        use std::any::TypeId;
        if self.caches.is_none() {
            return;
        }
        let kind = TypeId::of::<K>();
        let cached_kinds = [
            TypeId::of::<StatefulSet>(),
            TypeId::of::<Deployment>(),
            TypeId::of::<Job>(),
        ];
        if let (true, Some(name)) = (cached_kinds.contains(&kind), object.meta().name.clone()) {
            self.applied()
                .insert((kind, name), std::sync::Arc::new(object.clone()));
        }
    }

    /// Every cached object of kind `K` in the namespace; None without caches. Only the namespace's objects are
    /// copied out: a pass of one store does not clone the handles of every store's objects.
    pub fn cached<K: Observed>(&self) -> Option<Vec<std::sync::Arc<K>>> {
        let caches = self.caches.as_ref()?;
        Some(K::store(caches)?.state_filter(|object| {
            object.meta().namespace.as_deref() == Some(self.namespace.as_str())
        }))
    }

    /// Counts every write into `metrics`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count_write(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.write("apply");
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Server-side applies `object` (its name decides which), taking ownership of its fields.
    pub async fn apply<K: StoreObject>(&self, object: &K) -> Result<K, Error> {
        let name = object.meta().name.clone().unwrap_or_default();
        self.count_write();
        let applied = self
            .api::<K>()
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await
            .map_err(Error::kubernetes(action("apply", object)))?;
        self.remember(&applied);
        Ok(applied)
    }

    /// Creates `object` unless it exists; an existing one is left exactly as it is. It looks first: a create the
    /// API server answers "already exists" has still been charged to the namespace's quota until the quota
    /// controller's next full count, so repeated creates would exhaust it.
    pub async fn create_once<K: StoreObject>(&self, object: &K) -> Result<(), Error> {
        let name = object.meta().name.clone().unwrap_or_default();
        let exists = self
            .api::<K>()
            .get_metadata_opt(&name)
            .await
            .map_err(Error::kubernetes(action("create", object)))?
            .is_some();
        if exists {
            return Ok(());
        }
        self.create_if_absent(object).await
    }

    /// Creates `object` unless one of its name exists, which is left exactly as it is, without looking first: for
    /// kinds the store's quota does not count, where a create refused as "already exists" costs nothing (see
    /// [`Kube::create_once`]). One request where looking first takes two.
    pub async fn create_if_absent<K: StoreObject>(&self, object: &K) -> Result<(), Error> {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        self.count_write();
        match self.api::<K>().create(&params, object).await {
            Ok(created) => {
                self.remember(&created);
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(source) => Err(Error::Kubernetes {
                action: action("create", object).into(),
                source,
            }),
        }
    }

    /// Whether the API server serves CronJobs as batch/v1 (Kubernetes 1.21 and later).
    pub async fn serves_batch_v1_cron_jobs(&self) -> Result<bool, Error> {
        let resources = self
            .client
            .list_api_group_resources("batch/v1")
            .await
            .map_err(Error::kubernetes("discover the batch/v1 API"))?;
        Ok(resources.resources.iter().any(|r| r.name == "cronjobs"))
    }

    /// Server-side applies `cron_job`: as batch/v1, or with `batch_v1` false as batch/v1beta1, the only version
    /// Kubernetes 1.20 serves, whose CronJob has every field the platform sets.
    pub async fn apply_cron_job(&self, cron_job: &CronJob, batch_v1: bool) -> Result<(), Error> {
        if batch_v1 {
            return self.apply(cron_job).await.map(drop);
        }
        let resource = ApiResource {
            group: "batch".to_owned(),
            version: "v1beta1".to_owned(),
            api_version: "batch/v1beta1".to_owned(),
            kind: "CronJob".to_owned(),
            plural: "cronjobs".to_owned(),
        };
        let name = cron_job.metadata.name.clone().unwrap_or_default();
        let mut object = DynamicObject::new(&name, &resource).within(&self.namespace);
        object.metadata = cron_job.metadata.clone();
        let spec = serde_json::to_value(&cron_job.spec).map_err(|source| Error::Kubernetes {
            action: "encode a CronJob".into(),
            source: kube::Error::SerdeError(source),
        })?;
        object.data = serde_json::Value::Object([("spec".to_owned(), spec)].into_iter().collect());
        self.count_write();
        Api::<DynamicObject>::namespaced_with(self.client.clone(), &self.namespace, &resource)
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .map(drop)
            .map_err(Error::kubernetes(format!("apply CronJob {name}")))
    }

    /// Suspends (or resumes) CronJob `name`, as batch/v1 or, with `batch_v1` false, batch/v1beta1. A CronJob that
    /// does not exist has nothing to suspend.
    pub async fn suspend_cron_job(
        &self,
        name: &str,
        suspend: bool,
        batch_v1: bool,
    ) -> Result<(), Error> {
        let resource = ApiResource {
            group: "batch".to_owned(),
            version: if batch_v1 { "v1" } else { "v1beta1" }.to_owned(),
            api_version: if batch_v1 {
                "batch/v1"
            } else {
                "batch/v1beta1"
            }
            .to_owned(),
            kind: "CronJob".to_owned(),
            plural: "cronjobs".to_owned(),
        };
        self.count_write();
        match Api::<DynamicObject>::namespaced_with(self.client.clone(), &self.namespace, &resource)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"suspend": suspend}})),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(Error::Kubernetes {
                action: format!("suspend CronJob {name}").into(),
                source,
            }),
        }
    }

    pub async fn get<K>(&self, name: &str) -> Result<Option<K>, Error>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        self.api::<K>()
            .get_opt(name)
            .await
            .map_err(Error::kubernetes("read a store object"))
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use k8s_openapi::api::batch::v1::JobStatus;
    use kube::runtime::{reflector, watcher};

    use super::*;

    #[test]
    fn resource_versions_compare_as_numbers_and_only_when_well_formed() {
        assert_eq!(version_order("9", "10"), Some(Ordering::Less));
        assert_eq!(version_order("1000", "999"), Some(Ordering::Greater));
        assert_eq!(version_order("123", "123"), Some(Ordering::Equal));
        for (a, b) in [("", "1"), ("0", "1"), ("01", "2"), ("1a", "2"), ("-1", "2")] {
            assert_eq!(version_order(a, b), None, "{a:?} against {b:?}");
            assert_eq!(version_order(b, a), None, "{b:?} against {a:?}");
        }
    }

    fn job(version: &str, succeeded: i32) -> Job {
        let mut job = Job::default();
        job.metadata.name = Some("bootstrap".into());
        job.metadata.namespace = Some("store-shoes".into());
        job.metadata.resource_version = Some(version.into());
        job.status = Some(JobStatus {
            succeeded: Some(succeeded),
            ..JobStatus::default()
        });
        job
    }

    fn succeeded(job: Option<Job>) -> Option<i32> {
        job?.status?.succeeded
    }

    #[tokio::test]
    async fn observing_reads_the_newer_of_the_watch_cache_and_the_answer_to_this_clients_apply() {
        let (jobs, mut jobs_writer) = reflector::store::<Job>();
        let caches = Caches {
            stateful_sets: reflector::store().0,
            deployments: reflector::store().0,
            jobs,
        };
        // Nothing listens there: a read from the API server fails.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
        let kube = Kube::new(
            Client::try_from(config).expect("client"),
            "store-shoes".into(),
        )
        .with_caches(caches);
        assert!(
            kube.observe::<Job>("bootstrap").await.is_err(),
            "with neither, it reads the API server"
        );

        kube.remember(&job("12", 0));
        assert_eq!(
            succeeded(kube.observe("bootstrap").await.expect("observe")),
            Some(0)
        );
        // The watch delivers an older version: the apply's answer is newer.
        jobs_writer.apply_watcher_event(&watcher::Event::Apply(job("9", 1)));
        assert_eq!(
            succeeded(kube.observe("bootstrap").await.expect("observe")),
            Some(0)
        );
        // Then a newer one (the Job controller's status update after the apply).
        jobs_writer.apply_watcher_event(&watcher::Event::Apply(job("15", 1)));
        assert_eq!(
            succeeded(kube.observe("bootstrap").await.expect("observe")),
            Some(1)
        );
        // Versions that cannot be compared: this pass's own write wins.
        kube.remember(&job("v2", 2));
        assert_eq!(
            succeeded(kube.observe("bootstrap").await.expect("observe")),
            Some(2)
        );
        // Another pass's client has not applied it: the cache alone.
        let other = Kube::new(kube.client.clone(), "store-shoes".into())
            .with_caches(kube.caches.clone().expect("caches"));
        assert_eq!(
            succeeded(other.observe("bootstrap").await.expect("observe")),
            Some(1)
        );
        // A client without watch caches (a test's, a tool's) that applied the Job reads the API server every time:
        // the answer to its apply would be all it ever saw.
        let uncached = Kube::new(kube.client.clone(), "store-shoes".into());
        uncached.remember(&job("20", 0));
        assert!(
            uncached.observe::<Job>("bootstrap").await.is_err(),
            "without caches, it reads the API server"
        );
    }
}
