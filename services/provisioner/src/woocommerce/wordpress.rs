//! WordPress: a Deployment (`Recreate`: its volume is ReadWriteOnce) whose init container puts the core and the
//! platform's mail plugin into the volume, the files it does that with (a ConfigMap), the volume claim, a Service,
//! and the pod that runs the platform's WP-CLI scripts against it (the bootstrap Job's, the cron runs').

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            ConfigMap, Container, ContainerPort, EnvVar, HTTPGetAction, PersistentVolumeClaim,
            PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Probe,
            ResourceRequirements, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use sha2::{Digest as _, Sha256};

use super::{
    mariadb,
    meta::{
        WORDPRESS, WORDPRESS_DATA, WORDPRESS_FILES, WWW_DATA, container_security, env, labels,
        object_meta, pod_security, secret_env, secret_key_env, selector, selector_labels,
        volume_claim_spec,
    },
    policy::{INIT_SIZE, WORDPRESS_SIZE},
    secret::{DATABASE, MAIL_SECRET, MARIADB_PASSWORD, MARIADB_USER, SMTP_PASSWORD},
};
use crate::{
    settings::Settings,
    shared::workload::{config_map_volume, on_the_node_of},
};

/// Apache listens here, unprivileged, in the Woo-ready image.
pub const PORT: i32 = 8080;
pub const DOCROOT: &str = "/var/www/html";
/// Where the platform's files are mounted in the init container.
const FILES_DIR: &str = "/opt/store-platform";
pub const INSTALL_CORE: &str = include_str!("../../scripts/wordpress-install-core.sh");
pub const MAIL_PLUGIN: &str = include_str!("../../scripts/store-platform-mail.php");

/// The database settings the WordPress image and WP-CLI read.
pub fn database_env() -> Vec<EnvVar> {
    vec![
        env(
            "WORDPRESS_DB_HOST",
            format!("{}:{}", super::meta::MARIADB, mariadb::PORT),
        ),
        env("WORDPRESS_DB_NAME", DATABASE),
        secret_env("WORDPRESS_DB_USER", MARIADB_USER),
        secret_env("WORDPRESS_DB_PASSWORD", MARIADB_PASSWORD),
    ]
}

/// The relay settings the platform's mail plugin reads; none when the platform has no relay (mail is off).
pub fn mail_env(settings: &Settings) -> Vec<EnvVar> {
    let Some(mail) = &settings.mail else {
        return Vec::new();
    };
    let mut vars = vec![
        env("STORE_SMTP_HOST", mail.host.clone()),
        env("STORE_SMTP_PORT", mail.port.to_string()),
        env("STORE_SMTP_SECURITY", mail.security.as_str()),
        env("STORE_SMTP_FROM", mail.from.clone()),
    ];
    if let Some(username) = &mail.username {
        vars.push(env("STORE_SMTP_USERNAME", username.clone()));
    }
    if mail.password_file.is_some() {
        vars.push(secret_key_env(
            "STORE_SMTP_PASSWORD",
            MAIL_SECRET,
            SMTP_PASSWORD,
        ));
    }
    vars
}

/// `wp-config.php` additions: the site's address comes from the Ingress host, whatever host a request used;
/// WP-Cron runs from the store's CronJob, never from visitors' requests (inside the pod the site's own address
/// reaches nothing); and WordPress makes no HTTP request beyond the store itself (its update checks, WooCommerce's
/// suggestions and feeds): the store's egress is closed, so each would wait out its timeout while wp-admin waits
/// with it. Blocked, they fail at once.
pub fn config_extra(id: &str, settings: &Settings) -> String {
    let url = settings.storefront_url(id);
    let url = url.trim_end_matches('/');
    let mut extra = format!(
        "define('WP_HOME', '{url}');\ndefine('WP_SITEURL', '{url}');\ndefine('DISABLE_WP_CRON', true);\n\
         define('WP_HTTP_BLOCK_EXTERNAL', true);\n"
    );
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

/// The files the init container installs from: its script and the mail plugin.
pub fn files_config_map(id: &str) -> ConfigMap {
    ConfigMap {
        metadata: object_meta(id, WORDPRESS_FILES, WORDPRESS),
        data: Some(
            [
                ("install-core.sh", INSTALL_CORE),
                ("store-platform-mail.php", MAIL_PLUGIN),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ),
        ..ConfigMap::default()
    }
}

/// A digest of the platform's files: a pod template that carries it is replaced when they change.
fn files_digest() -> String {
    let mut digest = Sha256::new();
    for file in [INSTALL_CORE, MAIL_PLUGIN] {
        digest.update(file.as_bytes());
        digest.update([0]);
    }
    digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

/// Volume `name`: the files of ConfigMap `config_map`, with file mode `mode`.
/// Where the pods that run the platform's scripts mount them.
pub const SCRIPTS_DIR: &str = "/opt/store-platform";

/// The pod of component `app` that runs the platform's script `key` of ConfigMap `config_map` with WP-CLI, in the
/// store's WordPress image: as uid 33 on WordPress's volume, on WordPress's node (the volume is ReadWriteOnce, so no
/// other node could mount it), with what WP-CLI needs to load the store's WordPress (its database, its
/// `wp-config.php` additions, the mail relay), the store's address, and `extra` for the script.
pub fn script_pod(
    id: &str,
    settings: &Settings,
    (app, container): (&str, &str),
    (config_map, key): (&str, &str),
    extra: Vec<EnvVar>,
    resources: ResourceRequirements,
) -> PodTemplateSpec {
    let (data, data_mount) = data_volume();
    let mut environment = database_env();
    environment.extend([
        env("WORDPRESS_CONFIG_EXTRA", config_extra(id, settings)),
        env(
            "STORE_URL",
            settings.storefront_url(id).trim_end_matches('/'),
        ),
    ]);
    environment.extend(extra);
    environment.extend(mail_env(settings));
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(id, app)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            affinity: Some(on_the_node_of(WORDPRESS)),
            restart_policy: Some("Never".to_owned()),
            containers: vec![Container {
                name: container.to_owned(),
                image: Some(settings.wordpress_image.clone()),
                image_pull_policy: Some(settings.image_pull_policy.clone()),
                command: Some(vec!["bash".to_owned(), format!("{SCRIPTS_DIR}/{key}")]),
                env: Some(environment),
                resources: Some(resources),
                // The tail of the script's output becomes the failure reason a person reads.
                termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
                security_context: Some(container_security()),
                volume_mounts: Some(vec![
                    data_mount,
                    VolumeMount {
                        name: "script".to_owned(),
                        mount_path: SCRIPTS_DIR.to_owned(),
                        read_only: Some(true),
                        ..VolumeMount::default()
                    },
                ]),
                ..Container::default()
            }],
            volumes: Some(vec![data, config_map_volume("script", config_map, 0o555)]),
            security_context: Some(pod_security(WWW_DATA)),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            ..PodSpec::default()
        }),
    }
}

/// Runs before Apache on every start: copies the image's core into the volume until a verified copy is there
/// (`scripts/wordpress-install-core.sh`), and installs the mail plugin.
pub(super) fn install_core_container(settings: &Settings, data: VolumeMount) -> Container {
    Container {
        name: "install-core".to_owned(),
        image: Some(settings.wordpress_image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        command: Some(vec![
            "bash".to_owned(),
            format!("{FILES_DIR}/install-core.sh"),
        ]),
        env: Some(vec![
            env("WORDPRESS_SOURCE", "/usr/src/wordpress"),
            env("WORDPRESS_TARGET", DOCROOT),
            env("PLATFORM_FILES", FILES_DIR),
        ]),
        resources: Some(INIT_SIZE.requirements()),
        security_context: Some(container_security()),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        volume_mounts: Some(vec![
            data,
            VolumeMount {
                name: "platform-files".to_owned(),
                mount_path: FILES_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}

pub fn deployment(id: &str, settings: &Settings) -> Deployment {
    let (volume, mount) = data_volume();
    let mut env = database_env();
    env.push(self::env(
        "WORDPRESS_CONFIG_EXTRA",
        config_extra(id, settings),
    ));
    env.extend(mail_env(settings));
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
                    annotations: Some(
                        [(
                            "store-platform.io/platform-files".to_owned(),
                            files_digest(),
                        )]
                        .into(),
                    ),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    init_containers: Some(vec![install_core_container(settings, mount.clone())]),
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
                        // As MariaDB's: every second while it starts, then every 5 s.
                        startup_probe: Some(probe("/wp-login.php", 0, 1, 180)),
                        readiness_probe: Some(probe("/wp-login.php", 0, 5, 3)),
                        liveness_probe: Some(probe("/wp-login.php", 0, 20, 6)),
                        resources: Some(WORDPRESS_SIZE.requirements()),
                        security_context: Some(container_security()),
                        volume_mounts: Some(vec![mount]),
                        ..Container::default()
                    }],
                    volumes: Some(vec![
                        volume,
                        config_map_volume("platform-files", WORDPRESS_FILES, 0o444),
                    ]),
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
