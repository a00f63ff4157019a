//! The bootstrap Job: installs WordPress, activates WooCommerce, creates the sample product and enables cash on
//! delivery, then verifies from inside the store that a customer can buy. Its script is
//! `scripts/woocommerce-bootstrap.sh`, shipped in a ConfigMap. It shares WordPress's ReadWriteOnce volume, so its
//! pod is scheduled onto the node WordPress runs on: on any other node it could never mount it.

use k8s_openapi::api::{
    batch::v1::{Job, JobSpec},
    core::v1::{
        ConfigMap, ConfigMapVolumeSource, Container, PodSpec, PodTemplateSpec, Volume, VolumeMount,
    },
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    meta::{
        BOOTSTRAP, WORDPRESS, WWW_DATA, container_security, env, labels, object_meta, pod_security,
        secret_env,
    },
    policy::BOOTSTRAP_SIZE,
    secret::{WORDPRESS_ADMIN_PASSWORD, WORDPRESS_ADMIN_USER},
    wordpress::{config_extra, data_volume, database_env, mail_env},
};
use crate::{settings::Settings, shared::workload::on_the_node_of};
use store_platform_runtime::record::StoreSpec;

pub const SCRIPT: &str = include_str!("../../scripts/woocommerce-bootstrap.sh");
const SCRIPT_KEY: &str = "bootstrap.sh";
const SCRIPT_DIR: &str = "/opt/store-platform";

pub fn script_config_map(id: &str) -> ConfigMap {
    ConfigMap {
        metadata: object_meta(id, BOOTSTRAP, BOOTSTRAP),
        data: Some([(SCRIPT_KEY.to_owned(), SCRIPT.to_owned())].into()),
        ..ConfigMap::default()
    }
}

pub fn job(id: &str, spec: &StoreSpec, settings: &Settings) -> Job {
    let (data, data_mount) = data_volume();
    let mut environment = database_env();
    environment.extend([
        env("WORDPRESS_CONFIG_EXTRA", config_extra(id, settings)),
        env(
            "STORE_URL",
            settings.storefront_url(id).trim_end_matches('/'),
        ),
        env("STORE_HOST", settings.host(id)),
        env("STORE_TITLE", spec.display_name.clone()),
        env("WP_ADMIN_EMAIL", spec.admin_email.clone()),
        secret_env("WP_ADMIN_USER", WORDPRESS_ADMIN_USER),
        secret_env("WP_ADMIN_PASSWORD", WORDPRESS_ADMIN_PASSWORD),
        env("WORDPRESS_SERVICE_URL", format!("http://{WORDPRESS}")),
    ]);
    environment.extend(mail_env(settings));
    Job {
        metadata: object_meta(id, BOOTSTRAP, BOOTSTRAP),
        spec: Some(JobSpec {
            backoff_limit: Some(1),
            active_deadline_seconds: Some(
                i64::try_from(settings.bootstrap_deadline.as_secs()).unwrap_or(i64::MAX),
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(id, BOOTSTRAP)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    affinity: Some(on_the_node_of(WORDPRESS)),
                    restart_policy: Some("Never".to_owned()),
                    containers: vec![Container {
                        name: "bootstrap".to_owned(),
                        image: Some(settings.wordpress_image.clone()),
                        image_pull_policy: Some(settings.image_pull_policy.clone()),
                        command: Some(vec![
                            "bash".to_owned(),
                            format!("{SCRIPT_DIR}/{SCRIPT_KEY}"),
                        ]),
                        env: Some(environment),
                        resources: Some(BOOTSTRAP_SIZE.requirements()),
                        // The tail of the script's output becomes the failure reason a person reads.
                        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
                        security_context: Some(container_security()),
                        volume_mounts: Some(vec![
                            data_mount,
                            VolumeMount {
                                name: "script".to_owned(),
                                mount_path: SCRIPT_DIR.to_owned(),
                                read_only: Some(true),
                                ..VolumeMount::default()
                            },
                        ]),
                        ..Container::default()
                    }],
                    volumes: Some(vec![
                        data,
                        Volume {
                            name: "script".to_owned(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: BOOTSTRAP.to_owned(),
                                default_mode: Some(0o555),
                                ..ConfigMapVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                    ]),
                    security_context: Some(pod_security(WWW_DATA)),
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
