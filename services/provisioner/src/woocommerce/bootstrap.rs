//! The bootstrap Job: installs WordPress, activates WooCommerce, creates the sample product and enables cash on
//! delivery, then verifies from inside the store that a customer can buy. Its script is
//! `scripts/woocommerce-bootstrap.sh`, shipped in a ConfigMap. It shares WordPress's ReadWriteOnce volume, so its
//! pod is scheduled onto the node WordPress runs on: on any other node it could never mount it.

use k8s_openapi::api::{
    batch::v1::{Job, JobSpec},
    core::v1::ConfigMap,
};

use super::{
    meta::{BOOTSTRAP, WORDPRESS, env, object_meta, secret_env},
    policy::BOOTSTRAP_SIZE,
    secret::{WORDPRESS_ADMIN_PASSWORD, WORDPRESS_ADMIN_USER},
    wordpress::script_pod,
};
use crate::settings::Settings;
use store_platform_runtime::record::StoreSpec;

pub const SCRIPT: &str = include_str!("../../scripts/woocommerce-bootstrap.sh");
const SCRIPT_KEY: &str = "bootstrap.sh";

pub fn script_config_map(id: &str) -> ConfigMap {
    ConfigMap {
        metadata: object_meta(id, BOOTSTRAP, BOOTSTRAP),
        data: Some([(SCRIPT_KEY.to_owned(), SCRIPT.to_owned())].into()),
        ..ConfigMap::default()
    }
}

/// The bootstrap Job of store `id`. A clone's also says which store it was made from: the script then moves the
/// database's address to this store's, if it is still another's, and sets the administrator's password.
pub fn job(id: &str, spec: &StoreSpec, settings: &Settings) -> Job {
    let mut extra = vec![
        env("STORE_HOST", settings.host(id)),
        env("STORE_TITLE", spec.display_name.clone()),
        env("WP_ADMIN_EMAIL", spec.admin_email.clone()),
        secret_env("WP_ADMIN_USER", WORDPRESS_ADMIN_USER),
        secret_env("WP_ADMIN_PASSWORD", WORDPRESS_ADMIN_PASSWORD),
        env("WORDPRESS_SERVICE_URL", format!("http://{WORDPRESS}")),
    ];
    if let Some(source) = &spec.source {
        extra.push(env("CLONED_FROM", source.store_id.clone()));
    }
    Job {
        metadata: object_meta(id, BOOTSTRAP, BOOTSTRAP),
        spec: Some(JobSpec {
            backoff_limit: Some(1),
            active_deadline_seconds: Some(
                i64::try_from(settings.bootstrap_deadline.as_secs()).unwrap_or(i64::MAX),
            ),
            template: script_pod(
                id,
                settings,
                (BOOTSTRAP, "bootstrap"),
                (BOOTSTRAP, SCRIPT_KEY),
                extra,
                BOOTSTRAP_SIZE.requirements(),
            ),
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}
