//! The WooCommerce engine: WordPress + WooCommerce on MariaDB. The builders (one file per kind of object) are pure
//! functions; this module runs them as steps and reads readiness from the objects' status.

pub mod bootstrap;
pub mod cron;
pub mod ingress;
pub mod mariadb;
pub mod meta;
pub mod policy;
pub mod secret;
pub mod wordpress;

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    batch::v1::Job,
    core::v1::{Pod, ResourceQuota},
};
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use store_platform_runtime::record::StoreRecord;

use crate::{
    engine::{Engine, Progress},
    error::Error,
    kube_ops::Kube,
    settings::Settings,
};
use meta::{APP_LABEL, BOOTSTRAP, MARIADB, WORDPRESS};

pub const STEPS: &[&str] = &[
    "namespace",
    "policies",
    "secrets",
    "mariadb",
    "wordpress",
    "ingress",
    "bootstrap",
    "cron",
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

/// The first reason a pod of `app` gives for not being ready, e.g. "mariadb-0: ImagePullBackOff (Back-off …)".
async fn pod_trouble(kube: &Kube, app: &str) -> String {
    let pods = match kube
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("{APP_LABEL}={app}")))
        .await
    {
        Ok(pods) => pods.items,
        Err(error) => return format!("could not list its pods: {error}"),
    };
    if pods.is_empty() {
        return format!("no {app} pod exists (check the namespace's ResourceQuota and events)");
    }
    pods.iter().find_map(pod_reason).unwrap_or_else(|| {
        let pod = &pods[0];
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        format!(
            "{} is {}",
            pod.metadata.name.clone().unwrap_or_default(),
            phase.unwrap_or_else(|| "Pending".into())
        )
    })
}

/// What a pod's containers or conditions say is wrong, if anything.
fn pod_reason(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    // An init container that has not finished well is the cause; the main containers then only say
    // "PodInitializing".
    let unfinished_init = status
        .init_container_statuses
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_none_or(|t| t.exit_code != 0)
        })
        .map(|c| (format!("{name} (init container {})", c.name), c));
    let main = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .map(|c| (name.clone(), c));
    for (name, container) in unfinished_init.chain(main) {
        let state = container.state.unwrap_or_default();
        if state.running.is_some() {
            continue;
        }
        if let Some(waiting) = state.waiting
            && let Some(reason) = waiting.reason
        {
            let message = waiting
                .message
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            // A container in back-off says why it stopped last time only there: "OOMKilled", "Error" and its code.
            let last = container
                .last_state
                .and_then(|s| s.terminated)
                .map(|t| {
                    format!(
                        "; it last stopped: {} (exit code {})",
                        t.reason.unwrap_or_else(|| "exited".to_owned()),
                        t.exit_code
                    )
                })
                .unwrap_or_default();
            return Some(format!("{name}: {reason}{message}{last}"));
        }
        if let Some(terminated) = state.terminated {
            let reason = terminated
                .reason
                .unwrap_or_else(|| format!("exit code {}", terminated.exit_code));
            return Some(format!("{name}: {reason}"));
        }
    }
    status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.status != "True" && c.message.is_some())
        .map(|condition| format!("{name}: {}", condition.message.unwrap_or_default()))
}

/// Why the Job failed: its condition, and the failed container's last words (`FallbackToLogsOnError`).
async fn job_failure(kube: &Kube, job: &Job) -> String {
    let condition = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Failed" && c.status == "True"))
        .cloned()
        .unwrap_or_default();
    let mut reason = format!(
        "bootstrap Job failed: {}",
        condition
            .message
            .or(condition.reason)
            .unwrap_or_else(|| "no reason given".to_owned())
    );
    let pods = kube
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("{APP_LABEL}={BOOTSTRAP}")))
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    let last_words = pods
        .iter()
        .filter_map(|p| {
            p.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .state
                .as_ref()?
                .terminated
                .clone()
        })
        .filter(|t| t.exit_code != 0)
        .filter_map(|t| t.message)
        .next_back();
    if let Some(words) = last_words {
        let words = words.trim();
        let tail: String = words
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        reason.push_str(&format!("; last output: {tail}"));
    }
    reason
}

#[tonic::async_trait]
impl Engine for WooCommerce {
    fn steps(&self) -> &'static [&'static str] {
        STEPS
    }

    fn deadline(&self, step: &str) -> Duration {
        match step {
            "bootstrap" => self.settings.bootstrap_deadline,
            _ => self.settings.step_deadline,
        }
    }

    async fn apply(&self, step: &str, store: &StoreRecord, kube: &Kube) -> Result<(), Error> {
        let (id, settings) = (store.id.as_str(), self.settings.as_ref());
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
                if kube.get::<Job>(BOOTSTRAP).await?.is_none() {
                    kube.apply(&bootstrap::job(id, &store.spec, settings))
                        .await?;
                }
            }
            "cron" => {
                let batch_v1 = *self
                    .batch_v1_cron_jobs
                    .get_or_try_init(|| kube.serves_batch_v1_cron_jobs())
                    .await?;
                kube.apply_cron_job(&cron::cron_job(id, settings), batch_v1)
                    .await?;
            }
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
            // Pods are admitted only once the quota controller has computed the quota's usage.
            "policies" => match kube.observe::<ResourceQuota>("store").await? {
                Some(quota)
                    if quota
                        .status
                        .as_ref()
                        .and_then(|s| s.hard.as_ref())
                        .is_some() =>
                {
                    Progress::Done
                }
                Some(_) => Progress::Waiting("waiting for the quota controller".to_owned()),
                None => Progress::Waiting("resource quota missing".to_owned()),
            },
            "mariadb" => match kube.observe::<StatefulSet>(MARIADB).await? {
                Some(set) => {
                    let generation = set.metadata.generation;
                    let status = set.status.unwrap_or_default();
                    if status.observed_generation >= generation
                        && status.ready_replicas.unwrap_or(0) >= 1
                    {
                        Progress::Done
                    } else {
                        Progress::Waiting("waiting for mariadb-0 to be ready".to_owned())
                    }
                }
                None => Progress::Waiting("mariadb StatefulSet missing".to_owned()),
            },
            "wordpress" => match kube.observe::<Deployment>(WORDPRESS).await? {
                Some(deployment) => {
                    let generation = deployment.metadata.generation;
                    let status = deployment.status.unwrap_or_default();
                    if status.observed_generation >= generation
                        && status.available_replicas.unwrap_or(0) >= 1
                    {
                        Progress::Done
                    } else {
                        Progress::Waiting("waiting for WordPress to be available".to_owned())
                    }
                }
                None => Progress::Waiting("wordpress Deployment missing".to_owned()),
            },
            "bootstrap" => match kube.observe::<Job>(BOOTSTRAP).await? {
                Some(job) if job.metadata.deletion_timestamp.is_some() => {
                    Progress::Waiting("removing the previous bootstrap Job".to_owned())
                }
                Some(job) => {
                    let status = job.status.clone().unwrap_or_default();
                    let failed = status.conditions.as_ref().is_some_and(|c| {
                        c.iter().any(|c| c.type_ == "Failed" && c.status == "True")
                    });
                    if status.succeeded.unwrap_or(0) >= 1 {
                        Progress::Done
                    } else if failed {
                        // Confirm with the API server: after a retry the cache may still hold the failed Job it
                        // replaced.
                        match kube.get::<Job>(BOOTSTRAP).await? {
                            Some(current) if current.metadata.uid == job.metadata.uid => {
                                Progress::Failed(job_failure(kube, &job).await)
                            }
                            _ => {
                                Progress::Waiting("installing WordPress and WooCommerce".to_owned())
                            }
                        }
                    } else {
                        Progress::Waiting("installing WordPress and WooCommerce".to_owned())
                    }
                }
                // Gone (a retry removed the failed one): start a fresh Job.
                None => {
                    self.apply(step, store, kube).await?;
                    Progress::Waiting("installing WordPress and WooCommerce".to_owned())
                }
            },
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
            // A failed Job never runs again; remove it (and its pods) so the step creates a fresh one.
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Foreground),
                ..DeleteParams::default()
            };
            match kube.api::<Job>().delete(BOOTSTRAP, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(Error::Kubernetes {
                        action: "delete the failed bootstrap Job".into(),
                        source,
                    });
                }
            }
        }
        Ok(())
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
