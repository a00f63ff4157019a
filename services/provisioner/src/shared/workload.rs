//! Shapes of workload every engine uses: a one-replica StatefulSet with a data volume, a Service, an exec probe,
//! the rule that puts a pod next to another's ReadWriteOnce volume.

use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetSpec},
        core::v1::{
            Affinity, ConfigMapVolumeSource, Container, ExecAction, PersistentVolumeClaim,
            PodAffinity, PodAffinityTerm, PodSpec, PodTemplateSpec, Probe, Service, ServicePort,
            ServiceSpec, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};

use super::meta::{
    labels, object_meta, pod_security, selector, selector_labels, volume_claim_spec,
};
use crate::settings::Settings;

/// A Service `app` for component `app`'s pods: `port` to `target` (headless when `headless`).
pub fn service(id: &str, app: &str, name: &str, port: i32, target: i32, headless: bool) -> Service {
    Service {
        metadata: object_meta(id, app, app),
        spec: Some(ServiceSpec {
            cluster_ip: headless.then(|| "None".to_owned()),
            selector: Some(selector_labels(app)),
            ports: Some(vec![ServicePort {
                name: Some(name.to_owned()),
                port,
                target_port: Some(IntOrString::Int(target)),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// A database's headless Service, whose name resolves as soon as its one pod has an address, ready or not. There is
/// no other pod to send anyone to, and its clients retry their connections themselves: the bootstrap that starts
/// beside the database reaches it the moment it listens, not after the next readiness tick and DNS catching up.
pub fn database_service(id: &str, app: &str, name: &str, port: i32) -> Service {
    let mut service = service(id, app, name, port, port, true);
    if let Some(spec) = service.spec.as_mut() {
        spec.publish_not_ready_addresses = Some(true);
    }
    service
}

/// Only on the node where component `app`'s pods run: a ReadWriteOnce volume they share is attached there, and a
/// pod on any other node could never mount it.
pub fn on_the_node_of(app: &str) -> Affinity {
    Affinity {
        pod_affinity: Some(PodAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(selector(app)),
                topology_key: "kubernetes.io/hostname".to_owned(),
                ..PodAffinityTerm::default()
            }]),
            ..PodAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// A probe running `script` with `sh -c` (secrets come from the container's environment, never the pod spec).
pub fn exec_probe(script: &str, initial_delay: i32, period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]),
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// StatefulSet `app` of one replica running `container` as `uid`, its volume `data` (of `size`) mounted at
/// `data_path`.
pub fn single_stateful_set(
    id: &str,
    app: &str,
    mut container: Container,
    uid: i64,
    (data_path, size): (&str, &str),
    settings: &Settings,
) -> StatefulSet {
    container.volume_mounts = Some(vec![VolumeMount {
        name: "data".to_owned(),
        mount_path: data_path.to_owned(),
        ..VolumeMount::default()
    }]);
    StatefulSet {
        metadata: object_meta(id, app, app),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(app.to_owned()),
            selector: selector(app),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(id, app)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    security_context: Some(pod_security(uid)),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(30),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".to_owned()),
                    labels: Some(labels(id, app)),
                    ..ObjectMeta::default()
                },
                spec: Some(volume_claim_spec(size, settings.storage_class.clone())),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// Volume `name` holding ConfigMap `config_map`'s keys as files of `mode`.
pub fn config_map_volume(name: &str, config_map: &str, mode: i32) -> Volume {
    Volume {
        name: name.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_owned(),
            default_mode: Some(mode),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}
