//! The provisioner's Kubernetes writes: server-side apply with one field manager, into a store's namespace.

use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams, PostParams},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{error::Error, metrics::Metrics};

/// The field manager of every write the platform makes.
pub const FIELD_MANAGER: &str = "store-platform-provisioner";

/// A client scoped to one store namespace.
#[derive(Clone)]
pub struct Kube {
    pub client: Client,
    pub namespace: String,
    metrics: Option<std::sync::Arc<Metrics>>,
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
        }
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
            .map_err(Error::kubernetes("apply a store object"))
    }

    /// Creates `object` unless it exists; an existing one is left exactly as it is.
    pub async fn create_once<K>(&self, object: &K) -> Result<(), Error>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + Serialize
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        self.count_write();
        match self.api::<K>().create(&params, object).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(source) => Err(Error::Kubernetes {
                action: "create a store object",
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
