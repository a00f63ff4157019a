//! The Medusa engine: a Medusa v2 backend (server and worker) on PostgreSQL and Redis, with our storefront. The
//! builders (one file per kind of object) are pure functions; this module runs them as steps and reads readiness
//! from the objects' status.

pub mod backend;
pub mod bootstrap;
pub mod ingress;
pub mod meta;
pub mod policy;
pub mod postgres;
pub mod redis;
pub mod secret;
pub mod storefront;

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::ListParams;
use store_platform_runtime::record::StoreRecord;

use crate::{
    backup,
    engine::{Credentials, Engine, Progress},
    error::Error,
    kube_ops::Kube,
    settings::Settings,
    shared::{
        diagnose::pod_trouble,
        meta::{APP_LABEL, SECRET_NAME, secret_value},
        observe,
    },
};
use meta::{BOOTSTRAP, POSTGRES, REDIS, SERVER, STOREFRONT, STOREFRONT_CONFIG, WORKER};

/// What can be done while the databases start and the bootstrap runs comes before them (the Ingress, the backup
/// schedule), and each step also starts what the next ones wait for: `postgres` starts Redis and the bootstrap Job
/// too (the bootstrap waits for both databases itself, and begins the moment they answer, not when their readiness
/// probes next pass), and `backend` the storefront. So after the bootstrap only the backend's and the storefront's
/// starts are waited for, side by side.
pub const STEPS: &[&str] = &[
    "namespace",
    "policies",
    "secrets",
    "ingress",
    "postgres",
    "redis",
    "backups",
    "bootstrap",
    "backend",
    "storefront",
];

/// A clone's: its backup schedule starts once its bootstrap made the restored store its own.
pub const CLONE_STEPS: &[&str] = &[
    "namespace",
    "policies",
    "secrets",
    "ingress",
    "postgres",
    "redis",
    "bootstrap",
    "backend",
    "storefront",
    "backups",
];

#[derive(Debug, Clone)]
pub struct Medusa {
    settings: Arc<Settings>,
}

impl Medusa {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self { settings }
    }
}

/// A publishable API key as Medusa makes them: `pk_` and hex digits.
pub fn parse_publishable_key(message: &str) -> Option<&str> {
    let key = message.trim();
    (key.len() > 3 && key.starts_with("pk_") && key[3..].bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(key)
}

/// The publishable key a successful bootstrap pod left in its termination message.
async fn read_back_key(kube: &Kube) -> Result<Option<String>, Error> {
    let pods = kube
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("{APP_LABEL}={BOOTSTRAP}")))
        .await
        .map_err(Error::kubernetes("list the bootstrap pods"))?;
    Ok(pods.items.iter().find_map(|pod| {
        let terminated = pod
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .state
            .as_ref()?
            .terminated
            .as_ref()?;
        (terminated.exit_code == 0)
            .then(|| {
                terminated
                    .message
                    .as_deref()
                    .and_then(parse_publishable_key)
            })
            .flatten()
            .map(str::to_owned)
    }))
}

#[tonic::async_trait]
impl Engine for Medusa {
    fn steps(&self) -> &'static [&'static str] {
        STEPS
    }

    fn clone_steps(&self) -> &'static [&'static str] {
        CLONE_STEPS
    }

    fn reconfigure_steps(&self) -> &'static [&'static str] {
        &[
            "policies",
            "secrets",
            "postgres",
            "redis",
            "backend",
            "storefront",
            "ingress",
            "backups",
        ]
    }

    fn deadline(&self, step: &str) -> Duration {
        match step {
            "bootstrap" => self.settings.bootstrap_deadline,
            _ => self.settings.step_deadline,
        }
    }

    async fn apply(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        // The store's own version's images, which may not be the platform's default.
        let settings = self.settings.for_store(store);
        let (id, settings) = (store.id.as_str(), settings.as_ref());
        match step {
            "policies" => {
                kube.apply(&policy::resource_quota(id)).await?;
                kube.apply(&policy::limit_range(id)).await?;
                for network_policy in policy::network_policies(id, settings) {
                    kube.apply(&network_policy).await?;
                }
            }
            "secrets" => {
                kube.create_once(&secret::credentials(id, &store.spec.admin_email))
                    .await?;
            }
            // The store's data: its database, and the volume of its uploaded files (which a clone's restore fills
            // before the backend starts).
            "postgres" => {
                kube.apply(&postgres::service(id)).await?;
                kube.apply(&postgres::stateful_set(id, settings)).await?;
                kube.apply(&backend::uploads_claim(id, settings)).await?;
                // Redis starts beside PostgreSQL, and so does the bootstrap, which waits for both; their steps then
                // wait for them (an unchanged object is not applied again, an existing Job not made again). Not a
                // clone's bootstrap: it must find the restored data, so it waits for its own step.
                self.apply("redis", store, kube).await?;
                if bootstrap::cloned_from(store).is_none() {
                    self.apply("bootstrap", store, kube).await?;
                }
            }
            "redis" => {
                kube.apply(&redis::service(id)).await?;
                kube.apply(&redis::stateful_set(id, settings)).await?;
            }
            "bootstrap" => {
                // A Job's pod template cannot change once it exists; a retry removes a failed one first.
                kube.create_if_absent(&bootstrap::job(id, settings, bootstrap::cloned_from(store)))
                    .await?;
            }
            "backend" => {
                kube.apply(&backend::service(id)).await?;
                kube.apply(&backend::server(id, settings)).await?;
                kube.apply(&backend::worker(id, settings)).await?;
                // The storefront needs only the bootstrap's key: it starts beside the backend, and its step then
                // waits for it.
                if self.hand_over_key(id, kube).await? {
                    self.apply_storefront(id, settings, kube).await?;
                }
            }
            "storefront" => {
                self.hand_over_key(id, kube).await?;
                self.apply_storefront(id, settings, kube).await?;
            }
            "ingress" => {
                kube.apply(&ingress::ingress(id, settings)).await?;
            }
            "backups" => backup::prepare(store, &self.backup_source(store), settings, kube).await?,
            _ => {}
        }
        Ok(())
    }

    async fn observe(
        &self,
        step: &str,
        store: &StoreRecord,
        kube: &Kube,
    ) -> Result<Progress, Error> {
        Ok(match step {
            "policies" => observe::quota(kube).await?,
            "postgres" => observe::stateful_set(kube, POSTGRES).await?,
            "redis" => observe::stateful_set(kube, REDIS).await?,
            "bootstrap" => {
                let busy = "migrating the database and seeding the store";
                match observe::job(kube, BOOTSTRAP, BOOTSTRAP, busy).await? {
                    Some(progress) => progress,
                    None => {
                        self.apply(step, store, kube).await?;
                        Progress::Waiting(busy.to_owned())
                    }
                }
            }
            "backend" => match observe::deployment(kube, SERVER, "the Medusa server").await? {
                Progress::Done => observe::deployment(kube, WORKER, "the Medusa worker").await?,
                other => other,
            },
            "storefront" => {
                if !self.hand_over_key(&store.id, kube).await? {
                    // From the bootstrap pod's termination message; pods are not watched.
                    Progress::Recheck(
                        "reading the publishable key from the bootstrap Job".to_owned(),
                    )
                } else {
                    observe::deployment(kube, STOREFRONT, "the storefront").await?
                }
            }
            _ => Progress::Done,
        })
    }

    async fn diagnose(&self, step: &str, _store: &StoreRecord, kube: &Kube) -> String {
        match step {
            "postgres" => pod_trouble(kube, POSTGRES).await,
            "redis" => pod_trouble(kube, REDIS).await,
            "bootstrap" => pod_trouble(kube, BOOTSTRAP).await,
            "backend" => {
                let server = pod_trouble(kube, SERVER).await;
                let worker = pod_trouble(kube, WORKER).await;
                format!("server: {server}; worker: {worker}")
            }
            "storefront" => {
                if kube
                    .get::<ConfigMap>(STOREFRONT_CONFIG)
                    .await
                    .ok()
                    .flatten()
                    .is_none()
                {
                    "no publishable key: the bootstrap Job's pod is gone; delete the Job medusa-bootstrap to \
                     run it again"
                        .to_owned()
                } else {
                    pod_trouble(kube, STOREFRONT).await
                }
            }
            "policies" => "the quota controller has not processed the ResourceQuota".to_owned(),
            _ => String::new(),
        }
    }

    async fn reset(&self, step: &str, _store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        if step == "bootstrap" {
            observe::remove_job(kube, BOOTSTRAP).await?;
        }
        Ok(())
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Medusa's migrations are its bootstrap's first part (the rest is idempotent and finds nothing to do): the
    /// bootstrap, in the new version's image, under the upgrade's Job name.
    async fn migrate(&self, store: &StoreRecord, name: &str, kube: &Kube) -> Result<(), Error> {
        let settings = self.settings.for_store(store);
        let mut job = bootstrap::job(&store.id, &settings, None);
        job.metadata.name = Some(name.to_owned());
        kube.create_once(&job).await
    }

    fn migration_app(&self) -> &'static str {
        BOOTSTRAP
    }

    fn version_components(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (crate::settings::MEDUSA, SERVER),
            (crate::settings::STOREFRONT, STOREFRONT),
        ]
    }

    fn backup_source(&self, store: &StoreRecord) -> backup::Source {
        let settings = self.settings.for_store(store);
        let medusa = &settings.medusa;
        backup::Source {
            database_image: medusa.postgres_image.clone(),
            dump: postgres::DUMP,
            dump_env: postgres::dump_env(),
            database_app: POSTGRES,
            database_port: meta::POSTGRES_PORT,
            files_claim: meta::UPLOADS,
            files_sub_path: None,
            uid: meta::NODE_UID,
            next_to: SERVER,
            version: medusa.image.clone(),
            load: postgres::LOAD,
            cache: Some(backup::Cache {
                image: medusa.redis_image.clone(),
                flush: redis::FLUSH,
                app: REDIS,
                port: meta::REDIS_PORT,
            }),
            writers: &[SERVER, WORKER],
            cron_jobs: &[],
            writer_steps: &["backend"],
            image_steps: &["backend", "storefront"],
            idle: &[STOREFRONT],
            databases: &[POSTGRES, REDIS],
            database_steps: &["postgres", "redis"],
            verify_step: "bootstrap",
            verify_job: BOOTSTRAP,
            maintenance: Some(backup::maintenance::Maintenance::node(
                medusa.image.clone(),
                meta::NODE_UID,
                &[
                    backup::maintenance::Public {
                        service: STOREFRONT,
                        app: STOREFRONT,
                        port: meta::STOREFRONT_PORT,
                    },
                    backup::maintenance::Public {
                        service: SERVER,
                        app: SERVER,
                        port: meta::SERVER_PORT,
                    },
                ],
            )),
        }
    }

    fn urls(&self, id: &str) -> (String, String) {
        (
            self.settings.storefront_url(id),
            format!("{}app/", self.settings.storefront_url(id)),
        )
    }

    async fn credentials(
        &self,
        store: &StoreRecord,
        kube: &Kube,
    ) -> Result<Option<Credentials>, Error> {
        let Some(secret) = kube.get::<Secret>(SECRET_NAME).await? else {
            return Ok(None);
        };
        let (Some(username), Some(password)) = (
            secret_value(&secret, secret::ADMIN_EMAIL),
            secret_value(&secret, secret::ADMIN_PASSWORD),
        ) else {
            return Ok(None);
        };
        Ok(Some(Credentials {
            admin_url: self.urls(&store.id).1,
            username,
            password,
        }))
    }
}

impl Medusa {
    async fn apply_storefront(
        &self,
        id: &str,
        settings: &Settings,
        kube: &Kube,
    ) -> Result<(), Error> {
        kube.apply(&storefront::service(id)).await?;
        kube.apply(&storefront::deployment(id, settings))
            .await
            .map(drop)
    }

    /// Makes sure the storefront's ConfigMap holds the publishable key; false while no key can be read yet.
    async fn hand_over_key(&self, id: &str, kube: &Kube) -> Result<bool, Error> {
        if kube.get::<ConfigMap>(STOREFRONT_CONFIG).await?.is_some() {
            return Ok(true);
        }
        match read_back_key(kube).await? {
            Some(key) => {
                kube.create_once(&storefront::config(id, &key)).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests;
