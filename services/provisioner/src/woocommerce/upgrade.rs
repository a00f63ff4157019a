//! The migration Job of an upgrade: in the new version's image, its init container puts the new WordPress core into
//! the store's volume (as WordPress's own init container does), then `scripts/woocommerce-upgrade.sh` updates
//! WordPress's and WooCommerce's databases. Its pods are the bootstrap's kind (the same uid, node and database
//! access).

use k8s_openapi::api::{
    batch::v1::{Job, JobSpec},
    core::v1::ConfigMap,
};

use super::{
    meta::{BOOTSTRAP, WORDPRESS_FILES, object_meta},
    policy::BOOTSTRAP_SIZE,
    wordpress::{data_volume, install_core_container, script_pod},
};
use crate::{settings::Settings, shared::workload::config_map_volume};

pub const SCRIPT: &str = include_str!("../../scripts/woocommerce-upgrade.sh");
/// The ConfigMap holding the script.
pub const UPGRADE: &str = "woocommerce-upgrade";
const SCRIPT_KEY: &str = "upgrade.sh";

pub fn script_config_map(id: &str) -> ConfigMap {
    ConfigMap {
        metadata: object_meta(id, UPGRADE, BOOTSTRAP),
        data: Some([(SCRIPT_KEY.to_owned(), SCRIPT.to_owned())].into()),
        ..ConfigMap::default()
    }
}

/// The Job `name` migrating store `id` to the version `settings` carry the images of.
pub fn job(id: &str, settings: &Settings, name: &str) -> Job {
    let mut template = script_pod(
        id,
        settings,
        (BOOTSTRAP, "upgrade"),
        (UPGRADE, SCRIPT_KEY),
        Vec::new(),
        BOOTSTRAP_SIZE.requirements(),
    );
    if let Some(pod) = template.spec.as_mut() {
        let (_, data) = data_volume();
        pod.init_containers = Some(vec![install_core_container(settings, data)]);
        pod.volumes
            .get_or_insert_with(Vec::new)
            .push(config_map_volume("platform-files", WORDPRESS_FILES, 0o444));
    }
    Job {
        metadata: object_meta(id, name, BOOTSTRAP),
        spec: Some(JobSpec {
            backoff_limit: Some(1),
            active_deadline_seconds: Some(
                i64::try_from(settings.bootstrap_deadline.as_secs()).unwrap_or(i64::MAX),
            ),
            template,
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}
