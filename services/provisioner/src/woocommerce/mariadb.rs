//! MariaDB: a one-replica StatefulSet with its volume claim template and a headless Service.

use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetSpec},
        core::v1::{
            Container, ContainerPort, ExecAction, PersistentVolumeClaim, PodSpec, PodTemplateSpec,
            Probe, Service, ServicePort, ServiceSpec, VolumeMount,
        },
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};

use super::{
    meta::{
        MARIADB, MYSQL, container_security, env, labels, object_meta, pod_security, secret_env,
        selector, selector_labels, volume_claim_spec,
    },
    policy::MARIADB_SIZE,
    secret::{DATABASE, MARIADB_PASSWORD, MARIADB_ROOT_PASSWORD, MARIADB_USER},
};
use crate::settings::Settings;

pub const PORT: i32 = 3306;

/// The backup's dump, in the store's own MariaDB image: one consistent transaction of the store's database (InnoDB),
/// with its routines, triggers and events, binary columns as hex, and no date in it (an unchanged database dumps to
/// the same bytes, which the repository stores once). The root password reaches the client in MYSQL_PWD.
/// Older images name the tool `mysqldump`.
pub const DUMP: &str = "set -eu
umask 077
dump=$(command -v mariadb-dump || command -v mysqldump)
MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\" \"$dump\" --host=\"$DATABASE_HOST\" --port=\"$DATABASE_PORT\" --user=root --single-transaction --quick \\
    --routines --triggers --events --hex-blob --default-character-set=utf8mb4 --skip-dump-date \\
    --result-file=\"$BACKUP_DIR/database.sql.partial\" wordpress
mv \"$BACKUP_DIR/database.sql.partial\" \"$BACKUP_DIR/database.sql\"
";

/// A restore's load, in the same image: the database emptied and recreated, then the dump read into it. MariaDB's
/// DDL is not transactional: a load that fails leaves the store FAILED, its data before the restore in the backup
/// the restore took first.
pub const LOAD: &str = "set -eu
client=$(command -v mariadb || command -v mysql)
export MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\"
\"$client\" --host=\"$DATABASE_HOST\" --port=\"$DATABASE_PORT\" --user=root -e \\
    'DROP DATABASE IF EXISTS wordpress; CREATE DATABASE wordpress CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci'
\"$client\" --host=\"$DATABASE_HOST\" --port=\"$DATABASE_PORT\" --user=root --default-character-set=utf8mb4 \\
    wordpress <\"$RESTORE_DIR/data/database.sql\"
";

/// What the dump reads.
pub fn dump_env() -> Vec<k8s_openapi::api::core::v1::EnvVar> {
    vec![
        env("DATABASE_HOST", MARIADB),
        env("DATABASE_PORT", PORT.to_string()),
        secret_env("MARIADB_ROOT_PASSWORD", MARIADB_ROOT_PASSWORD),
    ]
}

/// `mariadb-admin ping` through `sh -c`: the password comes from the environment, never the pod spec, and reaches
/// the client in MYSQL_PWD rather than its command line, which every process on the node could read.
fn ping_probe(initial_delay: i32, period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec![
                "sh".to_owned(),
                "-c".to_owned(),
                "MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\" exec mariadb-admin --protocol=socket -uroot ping"
                    .to_owned(),
            ]),
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

pub fn service(id: &str) -> Service {
    Service {
        metadata: object_meta(id, MARIADB, MARIADB),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(selector_labels(MARIADB)),
            ports: Some(vec![ServicePort {
                name: Some("mysql".to_owned()),
                port: PORT,
                target_port: Some(IntOrString::Int(PORT)),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub fn stateful_set(id: &str, settings: &Settings) -> StatefulSet {
    let container = Container {
        name: MARIADB.to_owned(),
        image: Some(settings.mariadb_image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        env: Some(vec![
            secret_env("MARIADB_ROOT_PASSWORD", MARIADB_ROOT_PASSWORD),
            env("MARIADB_DATABASE", DATABASE),
            secret_env("MARIADB_USER", MARIADB_USER),
            secret_env("MARIADB_PASSWORD", MARIADB_PASSWORD),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("mysql".to_owned()),
            container_port: PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        // Asked every second while it starts (up to 3 minutes: a first start initialises the data directory), then
        // every 5 s; with the startup probe passed, a kubelet asks readiness at once (Kubernetes 1.22 and later).
        startup_probe: Some(ping_probe(0, 1, 180)),
        readiness_probe: Some(ping_probe(0, 5, 3)),
        liveness_probe: Some(ping_probe(0, 20, 6)),
        resources: Some(MARIADB_SIZE.requirements()),
        security_context: Some(container_security()),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".to_owned(),
            mount_path: "/var/lib/mysql".to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    StatefulSet {
        metadata: object_meta(id, MARIADB, MARIADB),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(MARIADB.to_owned()),
            selector: selector(MARIADB),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(id, MARIADB)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    security_context: Some(pod_security(MYSQL)),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(30),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".to_owned()),
                    labels: Some(labels(id, MARIADB)),
                    ..ObjectMeta::default()
                },
                spec: Some(volume_claim_spec(
                    &settings.mariadb_storage,
                    settings.storage_class.clone(),
                )),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}
