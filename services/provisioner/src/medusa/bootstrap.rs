//! The bootstrap Job: migrations (never two at once for a store: the script holds a PostgreSQL advisory lock),
//! the admin user, and the project's idempotent seed. It ends by writing the store's publishable API key to its
//! termination message, where the provisioner reads it back for the storefront. A second run changes nothing.

use k8s_openapi::api::{
    batch::v1::{Job, JobSpec},
    core::v1::{Container, PodSpec, PodTemplateSpec},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use store_platform_runtime::record::{Phase, StoreRecord};

use super::{
    backend::{backend_env, file_url},
    meta::{BOOTSTRAP, NODE_UID},
    policy::BOOTSTRAP_SIZE,
    secret::{ADMIN_EMAIL, ADMIN_PASSWORD},
};
use crate::{
    settings::Settings,
    shared::meta::{container_security, env, labels, object_meta, pod_security, secret_env},
};

/// Where the Job leaves the publishable key (a container's termination message).
pub const KEY_FILE: &str = "/dev/termination-log";

/// The store a clone's first bootstrap takes over from: set while the clone is provisioned, and only then (a later
/// restore's verification must not reset a password its owner has changed since).
pub fn cloned_from(store: &StoreRecord) -> Option<&str> {
    store
        .spec
        .source
        .as_ref()
        .filter(|_| matches!(store.status.phase, Phase::Pending | Phase::Provisioning))
        .map(|source| source.store_id.as_str())
}

/// The bootstrap Job of store `id`; of a clone of store `cloned_from`, it also moves the uploaded files' URLs from
/// that store's address to this one's and sets the administrator's password from this store's Secret.
pub fn job(id: &str, settings: &Settings, cloned_from: Option<&str>) -> Job {
    let mut environment = backend_env(id, settings);
    if let Some(source) = cloned_from {
        environment.extend([
            env("CLONED_FROM_FILE_URL", file_url(source, settings)),
            env("ADMIN_PASSWORD_RESET", "true"),
        ]);
    }
    environment.extend([
        secret_env("ADMIN_EMAIL", ADMIN_EMAIL),
        secret_env("ADMIN_PASSWORD", ADMIN_PASSWORD),
        // The seed's region (`deploy/medusa/src/scripts/seed.js`).
        env("STORE_CURRENCY", settings.medusa.currency.clone()),
        env("STORE_COUNTRY", settings.medusa.countries.join(",")),
        env("STORE_TAX_RATES", settings.medusa.tax_rates_env()),
        env(
            "STORE_PRICES_INCLUDE_TAX",
            settings.medusa.prices_include_tax.to_string(),
        ),
        env("PUBLISHABLE_KEY_FILE", KEY_FILE),
    ]);
    let container = Container {
        name: BOOTSTRAP.to_owned(),
        image: Some(settings.medusa.image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        args: Some(vec!["bootstrap".to_owned()]),
        env: Some(environment),
        resources: Some(BOOTSTRAP_SIZE.requirements()),
        security_context: Some(container_security()),
        termination_message_path: Some(KEY_FILE.to_owned()),
        // On failure, the last lines of Medusa's own output become the store's failure reason.
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..Container::default()
    };
    Job {
        metadata: object_meta(id, BOOTSTRAP, BOOTSTRAP),
        spec: Some(JobSpec {
            backoff_limit: Some(2),
            parallelism: Some(1),
            completions: Some(1),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(id, BOOTSTRAP)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    restart_policy: Some("Never".to_owned()),
                    security_context: Some(pod_security(NODE_UID)),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}
