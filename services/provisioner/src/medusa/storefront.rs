//! The storefront: our own small web shop, one image for every store, configured at run time with the store's
//! publishable key (public by design) from a ConfigMap. It talks to the backend on the same host.

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            ConfigMap, ConfigMapKeySelector, Container, ContainerPort, EnvVar, EnvVarSource,
            HTTPGetAction, PodSpec, PodTemplateSpec, Probe, Service,
        },
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};

use super::{
    meta::{NODE_UID, STOREFRONT, STOREFRONT_CONFIG, STOREFRONT_PORT as PORT},
    policy::STOREFRONT_SIZE,
};
use crate::{
    settings::Settings,
    shared::{
        meta::{container_security, env, labels, object_meta, pod_security, selector},
        workload::service as workload_service,
    },
};

pub const KEY: &str = "publishable-key";

/// The publishable key the bootstrap Job left, for the storefront.
pub fn config(id: &str, publishable_key: &str) -> ConfigMap {
    ConfigMap {
        metadata: object_meta(id, STOREFRONT_CONFIG, STOREFRONT),
        data: Some([(KEY.to_owned(), publishable_key.to_owned())].into()),
        ..ConfigMap::default()
    }
}

pub fn deployment(id: &str, settings: &Settings) -> Deployment {
    let probe = |delay: i32, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".to_owned()),
            port: IntOrString::Int(PORT),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(delay),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    let container = Container {
        name: STOREFRONT.to_owned(),
        image: Some(settings.medusa.storefront_image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        env: Some(vec![
            EnvVar {
                name: "MEDUSA_PUBLISHABLE_KEY".to_owned(),
                value_from: Some(EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: STOREFRONT_CONFIG.to_owned(),
                        key: KEY.to_owned(),
                        ..ConfigMapKeySelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
            env("PORT", PORT.to_string()),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe(0, 2)),
        liveness_probe: Some(probe(10, 10)),
        resources: Some(STOREFRONT_SIZE.requirements()),
        security_context: Some(container_security()),
        ..Container::default()
    };
    Deployment {
        metadata: object_meta(id, STOREFRONT, STOREFRONT),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: selector(STOREFRONT),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(id, STOREFRONT)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    security_context: Some(pod_security(NODE_UID)),
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

pub fn service(id: &str) -> Service {
    workload_service(id, STOREFRONT, "http", 80, PORT, false)
}
