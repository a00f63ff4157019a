//! WordPress: a Deployment (`Recreate`: its volume is ReadWriteOnce), its volume claim, and a Service.

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            Container, ContainerPort, EnvVar, HTTPGetAction, PersistentVolumeClaim,
            PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Probe, Service,
            ServicePort, ServiceSpec, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};

use super::{
    mariadb::{self, secret_env},
    meta::{
        WORDPRESS, WORDPRESS_DATA, WWW_DATA, container_security, labels, object_meta, pod_security,
        selector, selector_labels, volume_claim_spec,
    },
    policy::WORDPRESS_SIZE,
    secret::{DATABASE, MARIADB_PASSWORD, MARIADB_USER},
};
use crate::settings::Settings;

/// Apache listens here, unprivileged, in the Woo-ready image.
pub const PORT: i32 = 8080;
pub const DOCROOT: &str = "/var/www/html";

fn env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value),
        ..EnvVar::default()
    }
}

/// The database settings the WordPress image and WP-CLI read.
pub fn database_env() -> Vec<EnvVar> {
    vec![
        env(
            "WORDPRESS_DB_HOST",
            format!("{}:{}", super::meta::MARIADB, mariadb::PORT),
        ),
        env("WORDPRESS_DB_NAME", DATABASE.to_owned()),
        secret_env("WORDPRESS_DB_USER", MARIADB_USER),
        secret_env("WORDPRESS_DB_PASSWORD", MARIADB_PASSWORD),
    ]
}

/// `wp-config.php` additions: the site's address comes from the Ingress host, whatever host a request used.
pub fn config_extra(id: &str, settings: &Settings) -> String {
    let url = settings.storefront_url(id);
    let url = url.trim_end_matches('/');
    let mut extra = format!("define('WP_HOME', '{url}');\ndefine('WP_SITEURL', '{url}');\n");
    if settings.scheme == "https" {
        // TLS ends at the ingress controller; tell WordPress the visitor's connection was secure.
        extra.push_str(
            "if (($_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '') === 'https') { $_SERVER['HTTPS'] = 'on'; }\n",
        );
    }
    extra
}

pub fn volume_claim(id: &str, settings: &Settings) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: object_meta(id, WORDPRESS_DATA, WORDPRESS),
        spec: Some(volume_claim_spec(
            &settings.wordpress_storage,
            settings.storage_class.clone(),
        )),
        ..PersistentVolumeClaim::default()
    }
}

pub fn service(id: &str) -> Service {
    Service {
        metadata: object_meta(id, WORDPRESS, WORDPRESS),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(WORDPRESS)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                target_port: Some(IntOrString::Int(PORT)),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The shared document root volume, mounted by WordPress and by the bootstrap Job.
pub fn data_volume() -> (Volume, VolumeMount) {
    (
        Volume {
            name: "wordpress".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: WORDPRESS_DATA.to_owned(),
                ..PersistentVolumeClaimVolumeSource::default()
            }),
            ..Volume::default()
        },
        VolumeMount {
            name: "wordpress".to_owned(),
            mount_path: DOCROOT.to_owned(),
            ..VolumeMount::default()
        },
    )
}

pub fn deployment(id: &str, settings: &Settings) -> Deployment {
    let (volume, mount) = data_volume();
    let mut env = database_env();
    env.push(self::env(
        "WORDPRESS_CONFIG_EXTRA",
        config_extra(id, settings),
    ));
    let probe = |path: &str, initial: i32, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(PORT),
            scheme: Some("HTTP".to_owned()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    Deployment {
        metadata: object_meta(id, WORDPRESS, WORDPRESS),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: selector(WORDPRESS),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(id, WORDPRESS)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: WORDPRESS.to_owned(),
                        image: Some(settings.wordpress_image.clone()),
                        image_pull_policy: Some(settings.image_pull_policy.clone()),
                        env: Some(env),
                        ports: Some(vec![ContainerPort {
                            name: Some("http".to_owned()),
                            container_port: PORT,
                            protocol: Some("TCP".to_owned()),
                            ..ContainerPort::default()
                        }]),
                        readiness_probe: Some(probe("/wp-login.php", 5, 5, 3)),
                        liveness_probe: Some(probe("/wp-login.php", 120, 20, 6)),
                        resources: Some(WORDPRESS_SIZE.requirements()),
                        security_context: Some(container_security()),
                        volume_mounts: Some(vec![mount]),
                        ..Container::default()
                    }],
                    volumes: Some(vec![volume]),
                    security_context: Some(pod_security(WWW_DATA)),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}
