//! The WooCommerce engine: WordPress + WooCommerce on MariaDB. The builders (one file per kind of object) are pure
//! functions; this module runs them as steps and reads readiness from the objects' status.

pub mod bootstrap;
pub mod cron;
pub mod ingress;
pub mod mariadb;
pub mod meta;
pub mod policy;
pub mod secret;
pub mod upgrade;
pub mod wordpress;

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use store_platform_runtime::record::StoreRecord;

use crate::{
    backup,
    engine::{Credentials, Engine, Progress},
    error::Error,
    kube_ops::Kube,
    settings::Settings,
    shared::{diagnose::pod_trouble, meta::secret_value, observe},
};
use meta::{BOOTSTRAP, MARIADB, SECRET_NAME, WORDPRESS};

/// The CronJobs (WP-Cron's and the backup schedule) come before the bootstrap, so that the bootstrap's end is the
/// store's READY with nothing more to apply; a cron run that comes before the bootstrap installed WordPress finds
/// nothing to do (scripts/woocommerce-cron.sh).
pub const STEPS: &[&str] = &[
    "namespace",
    "policies",
    "secrets",
    "mariadb",
    "wordpress",
    "ingress",
    "cron",
    "backups",
    "bootstrap",
];

/// A clone's: its cron and backup schedule start once its bootstrap made the restored store its own (its address,
/// its administrator), so no run of either sees the store it was copied from.
pub const CLONE_STEPS: &[&str] = &[
    "namespace",
    "policies",
    "secrets",
    "mariadb",
    "wordpress",
    "ingress",
    "bootstrap",
    "cron",
    "backups",
];

#[derive(Debug, Clone)]
pub struct WooCommerce {
    settings: Arc<Settings>,
    /// Whether the API server serves batch/v1 CronJobs, asked once.
    batch_v1_cron_jobs: Arc<tokio::sync::OnceCell<bool>>,
}

impl WooCommerce {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self {
            settings,
            batch_v1_cron_jobs: Arc::default(),
        }
    }

    /// The relay's password, read afresh from its file (a mounted Secret, which the kubelet updates in place).
    fn mail_password(&self) -> Result<Option<String>, Error> {
        let Some(path) = self
            .settings
            .mail
            .as_ref()
            .and_then(|m| m.password_file.clone())
        else {
            return Ok(None);
        };
        let password = std::fs::read_to_string(&path)
            .map_err(|source| Error::ReadMailPassword { path, source })?;
        Ok(Some(password.trim_end_matches(['\r', '\n']).to_owned()))
    }
}

#[tonic::async_trait]
impl Engine for WooCommerce {
    fn steps(&self) -> &'static [&'static str] {
        STEPS
    }

    fn clone_steps(&self) -> &'static [&'static str] {
        CLONE_STEPS
    }

    /// Every step but the namespace (the record) and the bootstrap (run once).
    fn reconfigure_steps(&self) -> &'static [&'static str] {
        &STEPS[1..STEPS.len() - 1]
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
            // The namespace is the record; the reconciler writes it.
            "namespace" => {}
            "policies" => {
                kube.apply(&policy::resource_quota(id)).await?;
                kube.apply(&policy::limit_range(id)).await?;
                for network_policy in policy::network_policies(id, settings) {
                    kube.apply(&network_policy).await?;
                }
            }
            "secrets" => {
                kube.create_once(&secret::credentials(id)).await?;
                if let Some(password) = self.mail_password()? {
                    kube.create_once(&secret::mail(id, &password)).await?;
                }
            }
            "mariadb" => {
                kube.apply(&mariadb::service(id)).await?;
                kube.apply(&mariadb::stateful_set(id, settings)).await?;
            }
            "wordpress" => {
                kube.apply(&wordpress::files_config_map(id)).await?;
                kube.apply(&wordpress::volume_claim(id, settings)).await?;
                kube.apply(&wordpress::service(id)).await?;
                kube.apply(&wordpress::deployment(id, settings)).await?;
            }
            "ingress" => {
                kube.apply(&ingress::ingress(id, settings)).await?;
            }
            "bootstrap" => {
                kube.apply(&bootstrap::script_config_map(id)).await?;
                // A Job's pod template cannot change once it exists: an existing Job stands as it is (a retry
                // removes a failed one first, and the step then makes a fresh one).
                kube.create_if_absent(&bootstrap::job(id, &store.spec, settings))
                    .await?;
            }
            "cron" => {
                let batch_v1 = *self
                    .batch_v1_cron_jobs
                    .get_or_try_init(|| kube.serves_batch_v1_cron_jobs())
                    .await?;
                kube.apply(&cron::script_config_map(id)).await?;
                kube.apply_cron_job(&cron::cron_job(id, settings), batch_v1)
                    .await?;
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
            "mariadb" => observe::stateful_set(kube, MARIADB).await?,
            "wordpress" => observe::deployment(kube, WORDPRESS, "WordPress").await?,
            "bootstrap" => {
                let busy = "installing WordPress and WooCommerce";
                match observe::job(kube, BOOTSTRAP, BOOTSTRAP, busy).await? {
                    Some(progress) => progress,
                    // Gone (a retry removed the failed one): start a fresh Job.
                    None => {
                        self.apply(step, store, kube).await?;
                        Progress::Waiting(busy.to_owned())
                    }
                }
            }
            _ => Progress::Done,
        })
    }

    async fn diagnose(&self, step: &str, _store: &StoreRecord, kube: &Kube) -> String {
        match step {
            "mariadb" => pod_trouble(kube, MARIADB).await,
            "wordpress" => pod_trouble(kube, WORDPRESS).await,
            "bootstrap" => pod_trouble(kube, BOOTSTRAP).await,
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

    async fn credentials(
        &self,
        store: &StoreRecord,
        kube: &Kube,
    ) -> Result<Option<Credentials>, Error> {
        let Some(secret) = kube.get::<Secret>(SECRET_NAME).await? else {
            return Ok(None);
        };
        let (Some(username), Some(password)) = (
            secret_value(&secret, secret::WORDPRESS_ADMIN_USER),
            secret_value(&secret, secret::WORDPRESS_ADMIN_PASSWORD),
        ) else {
            return Ok(None);
        };
        Ok(Some(Credentials {
            admin_url: self.settings.admin_url(&store.id),
            username,
            password,
        }))
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn migrate(&self, store: &StoreRecord, name: &str, kube: &Kube) -> Result<(), Error> {
        let settings = self.settings.for_store(store);
        kube.apply(&upgrade::script_config_map(&store.id)).await?;
        kube.create_once(&upgrade::job(&store.id, &settings, name))
            .await
    }

    fn migration_app(&self) -> &'static str {
        BOOTSTRAP
    }

    fn version_components(&self) -> &'static [(&'static str, &'static str)] {
        &[(crate::settings::WORDPRESS, WORDPRESS)]
    }

    fn backup_source(&self, store: &StoreRecord) -> backup::Source {
        let settings = self.settings.for_store(store);
        backup::Source {
            database_image: settings.mariadb_image.clone(),
            dump: mariadb::DUMP,
            dump_env: mariadb::dump_env(),
            database_app: MARIADB,
            database_port: mariadb::PORT,
            files_claim: meta::WORDPRESS_DATA,
            files_sub_path: Some("wp-content"),
            uid: meta::WWW_DATA,
            next_to: WORDPRESS,
            version: settings.wordpress_image.clone(),
            load: mariadb::LOAD,
            cache: None,
            writers: &[WORDPRESS],
            cron_jobs: &[meta::CRON],
            writer_steps: &["wordpress"],
            image_steps: &["wordpress", "cron"],
            idle: &[],
            databases: &[MARIADB],
            database_steps: &["mariadb"],
            verify_step: "bootstrap",
            verify_job: BOOTSTRAP,
            maintenance: Some(backup::maintenance::Maintenance::php(
                settings.wordpress_image.clone(),
                meta::WWW_DATA,
                &[backup::maintenance::Public {
                    service: WORDPRESS,
                    app: WORDPRESS,
                    port: wordpress::PORT,
                }],
            )),
        }
    }

    fn urls(&self, id: &str) -> (String, String) {
        (
            self.settings.storefront_url(id),
            self.settings.admin_url(id),
        )
    }
}

#[cfg(test)]
mod tests;
