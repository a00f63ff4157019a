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

/// The controller's watch caches of the kinds whose status steps wait on.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // Stores hold whole objects; printing them helps nobody.
pub struct Caches {
    pub stateful_sets: Store<StatefulSet>,
    pub deployments: Store<Deployment>,
    pub jobs: Store<Job>,
    pub quotas: Store<ResourceQuota>,
}

/// A kind held in [`Caches`].
pub trait Cached:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + 'static
{
    fn store(caches: &Caches) -> &Store<Self>;

    /// Drops what steps never read before the object is cached: its spec (steps read only metadata and status),
    /// managed fields and annotations. A Deployment's or StatefulSet's pod template is most of its size, so the caches
    /// of 1,000 stores take a fraction of the memory whole objects would.
    fn slim(&mut self);
}

fn slim_meta(meta: &mut kube::api::ObjectMeta) {
    meta.managed_fields = None;
    meta.annotations = None;
}

impl Cached for StatefulSet {
    fn store(caches: &Caches) -> &Store<Self> {
        &caches.stateful_sets
    }

    fn slim(&mut self) {
        self.spec = None;
        slim_meta(&mut self.metadata);
    }
}

impl Cached for Deployment {
    fn store(caches: &Caches) -> &Store<Self> {
        &caches.deployments
    }

    fn slim(&mut self) {
        self.spec = None;
        slim_meta(&mut self.metadata);
    }
}

impl Cached for Job {
    fn store(caches: &Caches) -> &Store<Self> {
        &caches.jobs
    }

    fn slim(&mut self) {
        self.spec = None;
        slim_meta(&mut self.metadata);
    }
}

impl Cached for ResourceQuota {
    fn store(caches: &Caches) -> &Store<Self> {
        &caches.quotas
    }

    fn slim(&mut self) {
        self.spec = None;
        slim_meta(&mut self.metadata);
    }
}

/// A client scoped to one store namespace.
#[derive(Clone)]
pub struct Kube {
    pub client: Client,
    pub namespace: String,
    metrics: Option<std::sync::Arc<Metrics>>,
    caches: Option<Caches>,
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
        }
    }

    /// Reads observed objects from `caches` rather than the API server.
    pub fn with_caches(mut self, caches: Caches) -> Self {
        self.caches = Some(caches);
        self
    }

    /// Object `name` as last observed: from the watch cache when it holds it (the cache is updated before the watch
    /// event that woke the controller is delivered, so it is never older than what triggered this pass), else read.
    pub async fn observe<K: Cached>(&self, name: &str) -> Result<Option<K>, Error> {
        if let Some(caches) = &self.caches
            && let Some(object) =
                K::store(caches).get(&ObjectRef::new(name).within(&self.namespace))
        {
            return Ok(Some(object.as_ref().clone()));
        }
        self.get(name).await
    }

    /// Every cached object of kind `K` in the namespace; None without caches. Only the namespace's objects are
    /// copied out: a pass of one store does not clone the handles of every store's objects.
    pub fn cached<K: Cached>(&self) -> Option<Vec<std::sync::Arc<K>>> {
        let caches = self.caches.as_ref()?;
        Some(K::store(caches).state_filter(|object| {
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
    pub async fn apply<K>(&self, object: &K) -> Result<K, Error>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + Serialize
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        self.count_write();
        self.api::<K>()
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await
            .map_err(Error::kubernetes(format!(
                "apply {} {name}",
                K::kind(&K::DynamicType::default())
            )))
    }

    /// Creates `object` unless it exists; an existing one is left exactly as it is. It looks first: a create the
    /// API server answers "already exists" has still been charged to the namespace's quota until the quota
    /// controller's next full count, so repeated creates would exhaust it.
    pub async fn create_once<K>(&self, object: &K) -> Result<(), Error>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + Serialize
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        let action = || format!("create {} {name}", K::kind(&K::DynamicType::default()));
        if self
            .api::<K>()
            .get_metadata_opt(&name)
            .await
            .map_err(Error::kubernetes(action()))?
            .is_some()
        {
            return Ok(());
        }
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        self.count_write();
        match self.api::<K>().create(&params, object).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(source) => Err(Error::Kubernetes {
                action: action().into(),
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
