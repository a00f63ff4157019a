//! A lock per tenant, held while a store is counted against the tenant's limit and created, so two creates for one
//! tenant (on any replica: every replica serves the API) cannot both pass the limit.
//!
//! Within one replica, a tenant's creates are batched (`grpc::Provisioner::create`): one holder takes the lock for
//! every create queued behind it, so a burst of creates costs one lock, not one each. Across replicas, the lock is a ConfigMap `tenant-lock-<hex of the tenant>` in the
//! provisioner's own namespace: creating it takes the lock (the API server lets exactly one create win), deleting it
//! releases it. A holder that died leaves it behind; a lock older than [`STALE_AFTER`] is broken by deleting it with
//! its uid as precondition, so only that lock instance goes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams, Preconditions},
};

use crate::error::Error;

/// A create holds the lock for one count and one namespace create: milliseconds. Older than this, its holder died.
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// How long a create waits for another replica's lock before it answers UNAVAILABLE.
const WAIT_AT_MOST: Duration = Duration::from_secs(20);
/// How often a waiter looks whether the lock it waits for is stale.
const STALE_CHECK_EVERY: Duration = Duration::from_secs(1);

const ACQUIRED_ANNOTATION: &str = "store-platform.io/acquired";

/// Where the tenants' locks live.
#[derive(Clone)]
pub struct TenantLocks {
    api: Api<ConfigMap>,
    /// This replica's queue per tenant.
    local: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl std::fmt::Debug for TenantLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantLocks").finish_non_exhaustive()
    }
}

/// A held lock; [`HeldLock::release`] gives it back. Dropped without it (the call was cancelled mid-create), it is
/// given back by a task of its own.
#[derive(Debug)]
pub struct HeldLock {
    api: Api<ConfigMap>,
    name: String,
    released: bool,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

/// The lock's name for `tenant`: tenants may hold `_`, which object names may not, so the name carries the
/// tenant in hex.
pub fn lock_name(tenant: &str) -> String {
    let hex: String = tenant.bytes().map(|b| format!("{b:02x}")).collect();
    format!("tenant-lock-{hex}")
}

impl TenantLocks {
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            local: Arc::default(),
        }
    }

    /// Takes `tenant`'s lock, waiting while another create holds it.
    pub async fn acquire(&self, tenant: &str) -> Result<HeldLock, Error> {
        let queue = self
            .local
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(tenant.to_owned())
            .or_default()
            .clone();
        let local = queue.lock_owned().await;
        let name = lock_name(tenant);
        let lock = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                annotations: Some(
                    [(
                        ACQUIRED_ANNOTATION.to_owned(),
                        jiff::Timestamp::now().to_string(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        let started = tokio::time::Instant::now();
        let mut checked = started;
        let mut pause = Duration::from_millis(2);
        loop {
            match self.api.create(&PostParams::default(), &lock).await {
                Ok(_) => {
                    return Ok(HeldLock {
                        api: self.api.clone(),
                        name,
                        released: false,
                        _local: local,
                    });
                }
                // Another replica holds it.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    if checked.elapsed() >= STALE_CHECK_EVERY {
                        checked = tokio::time::Instant::now();
                        self.break_if_stale(&name).await?;
                    }
                }
                Err(source) => {
                    return Err(Error::Kubernetes {
                        action: "take the tenant's create lock".into(),
                        source,
                    });
                }
            }
            if started.elapsed() > WAIT_AT_MOST {
                return Err(Error::Busy {
                    tenant: tenant.to_owned(),
                });
            }
            // Another replica's create holds it for a few milliseconds; jitter keeps replicas from retrying in step.
            let jitter = Duration::from_micros(rand::random_range(0..=pause.as_micros() as u64));
            tokio::time::sleep(pause + jitter).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Deletes lock `name` if its holder took it longer ago than [`STALE_AFTER`].
    async fn break_if_stale(&self, name: &str) -> Result<(), Error> {
        let Some(lock) = self
            .api
            .get_opt(name)
            .await
            .map_err(Error::kubernetes("read the tenant's create lock"))?
        else {
            return Ok(());
        };
        let acquired = lock
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ACQUIRED_ANNOTATION))
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let stale = acquired.is_none_or(|at| {
            jiff::Timestamp::now().duration_since(at).unsigned_abs() > STALE_AFTER
        });
        if stale {
            tracing::warn!(lock = name, "breaking a stale tenant create lock");
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: lock.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match self.api.delete(name, &params).await {
                Ok(_) => {}
                // Gone already, or replaced by a new holder in the meantime.
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                Err(source) => {
                    return Err(Error::Kubernetes {
                        action: "break a stale tenant create lock".into(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

impl HeldLock {
    /// Gives the lock back. If this fails, the lock goes stale and the next create breaks it.
    pub async fn release(mut self) {
        self.released = true;
        delete_lock(&self.api, &self.name).await;
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if !self.released
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (api, name) = (self.api.clone(), std::mem::take(&mut self.name));
            runtime.spawn(async move { delete_lock(&api, &name).await });
        }
    }
}

async fn delete_lock(api: &Api<ConfigMap>, name: &str) {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => {
            tracing::warn!(lock = %name, %error, "failed to release a tenant create lock")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_are_valid_object_names_for_every_tenant() {
        assert_eq!(lock_name("acme"), "tenant-lock-61636d65");
        let name = lock_name(&"a_b.c-".repeat(10));
        assert!(name.len() <= 253);
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert_ne!(lock_name("a_b"), lock_name("a-b"));
    }
}
