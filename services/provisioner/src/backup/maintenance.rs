//! The maintenance page a store shows while it is restored: a small server in the store's own image (PHP's built-in
//! server for WordPress, Node.js for Medusa) answering every request with 503, `Retry-After` and a page naming the
//! store, on each port its public Services target. Restoring switches those Services' selectors to it; the engine's
//! own steps, applied again once the data is back, switch them back; then it is removed.

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            ConfigMap, Container, ContainerPort, Endpoints, PodSpec, PodTemplateSpec, Probe,
            Service, TCPSocketAction,
        },
        networking::v1::{NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicySpec},
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use kube::api::{DeleteParams, Patch, PatchParams};
use store_platform_runtime::record::StoreRecord;

use super::Source;
use crate::{
    error::Error,
    kube_ops::Kube,
    settings::Settings,
    shared::{
        meta::{APP_LABEL, container_security, env, labels, object_meta, pod_security, selector},
        network::{ingress_controller, tcp},
        size::Size,
        workload::config_map_volume,
    },
};

/// The component, and the name of its Deployment, ConfigMap and NetworkPolicy.
pub const MAINTENANCE: &str = "maintenance";
/// Where its files are mounted.
pub const DIR: &str = "/maintenance";

/// How an engine serves the page: in which image, as whom, with what command, and which of its Services point at it
/// meanwhile.
#[derive(Clone, Debug, PartialEq)]
pub struct Maintenance {
    pub image: String,
    pub uid: i64,
    pub command: Vec<String>,
    pub services: &'static [Public],
}

/// A public Service of the store: its name, the component it selects, and the port it targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Public {
    pub service: &'static str,
    pub app: &'static str,
    pub port: i32,
}

impl Maintenance {
    /// PHP's built-in server, one port, every path routed to `router.php`.
    pub fn php(image: String, uid: i64, services: &'static [Public]) -> Self {
        let port = services.first().map_or(8080, |public| public.port);
        Self {
            image,
            uid,
            command: vec![
                "php".into(),
                "-S".into(),
                format!("0.0.0.0:{port}"),
                format!("{DIR}/router.php"),
            ],
            services,
        }
    }

    /// Node.js's http server on every port.
    pub fn node(image: String, uid: i64, services: &'static [Public]) -> Self {
        Self {
            image,
            uid,
            command: vec!["node".into(), format!("{DIR}/server.js")],
            services,
        }
    }

    fn ports(&self) -> Vec<i32> {
        let mut ports: Vec<i32> = self.services.iter().map(|public| public.port).collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

const SIZE: Size = Size {
    cpu_request_milli: 10,
    memory_request_mi: 32,
    cpu_limit_milli: 200,
    memory_limit_mi: 128,
};

/// Why a store shows the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    Restoring,
    Upgrading,
    Paused,
}

/// The page, for the store named `name` (HTML-escaped here).
pub fn page(name: &str, why: Why) -> String {
    let name = name
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{name}: back soon</title></head>\n<body \
         style=\"font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem\">\n\
         <h1>{name} {headline}</h1>\n<p>{text}</p>\n</body></html>\n",
        headline = match why {
            Why::Restoring => "is being restored",
            Why::Upgrading => "is being upgraded",
            Why::Paused => "is paused",
        },
        text = match why {
            Why::Restoring => {
                "The shop is offline for a few minutes while its data is brought back from a backup. Please come \
                 back shortly; nothing you ordered before is lost."
            }
            Why::Upgrading => {
                "The shop is offline for a few minutes while it moves to a new version of its software. Please \
                 come back shortly; nothing you ordered before is lost."
            }
            Why::Paused => {
                "The shop's owner has paused it for now: it takes no orders until they open it again. Nothing you \
                 ordered before is lost."
            }
        },
    )
}

const ROUTER: &str = r#"<?php
// Every request: 503, Retry-After, the page.
http_response_code(503);
header('Retry-After: 60');
header('Content-Type: text/html; charset=utf-8');
header('Cache-Control: no-store');
readfile(__DIR__ . '/index.html');
"#;

const SERVER: &str = r#"// Every request on every port of PORTS: 503, Retry-After, the page.
const http = require("node:http")
const fs = require("node:fs")
const page = fs.readFileSync(__dirname + "/index.html")
for (const port of (process.env.PORTS || "8080").split(",")) {
  http
    .createServer((_, response) => {
      response.writeHead(503, {
        "retry-after": "60",
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
      })
      response.end(page)
    })
    .listen(Number(port), "0.0.0.0")
}
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0))
"#;

pub fn config_map(store: &StoreRecord, why: Why) -> ConfigMap {
    ConfigMap {
        metadata: object_meta(&store.id, MAINTENANCE, MAINTENANCE),
        data: Some(
            [
                ("index.html", page(&store.spec.display_name, why)),
                ("router.php", ROUTER.to_owned()),
                ("server.js", SERVER.to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        ),
        ..ConfigMap::default()
    }
}

pub fn deployment(
    store: &StoreRecord,
    maintenance: &Maintenance,
    settings: &Settings,
) -> Deployment {
    let ports = maintenance.ports();
    let container = Container {
        name: MAINTENANCE.to_owned(),
        image: Some(maintenance.image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        command: Some(maintenance.command.clone()),
        env: Some(vec![env(
            "PORTS",
            ports
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )]),
        ports: Some(
            ports
                .iter()
                .map(|port| ContainerPort {
                    container_port: *port,
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        readiness_probe: ports.first().map(|port| Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(*port),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(2),
            ..Probe::default()
        }),
        resources: Some(SIZE.requirements()),
        security_context: Some(container_security()),
        volume_mounts: Some(vec![k8s_openapi::api::core::v1::VolumeMount {
            name: "page".to_owned(),
            mount_path: DIR.to_owned(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..Container::default()
    };
    Deployment {
        metadata: object_meta(&store.id, MAINTENANCE, MAINTENANCE),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: selector(MAINTENANCE),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&store.id, MAINTENANCE)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(vec![config_map_volume("page", MAINTENANCE, 0o444)]),
                    security_context: Some(pod_security(maintenance.uid)),
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

/// The ingress controller may reach the page's ports (every store denies all ingress but what it lists).
pub fn network_policy(
    store: &StoreRecord,
    maintenance: &Maintenance,
    settings: &Settings,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: object_meta(&store.id, MAINTENANCE, MAINTENANCE),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(MAINTENANCE)),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![ingress_controller(settings)]),
                ports: Some(maintenance.ports().into_iter().map(tcp).collect()),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// Puts the page up: its server, and the store's public Services pointing at it.
pub async fn show(
    store: &StoreRecord,
    source: &Source,
    settings: &Settings,
    kube: &Kube,
    why: Why,
) -> Result<(), Error> {
    let Some(maintenance) = &source.maintenance else {
        return Ok(());
    };
    kube.apply(&config_map(store, why)).await?;
    kube.apply(&network_policy(store, maintenance, settings))
        .await?;
    kube.apply(&deployment(store, maintenance, settings))
        .await?;
    for public in maintenance.services {
        select(kube, public.service, MAINTENANCE).await?;
    }
    Ok(())
}

async fn select(kube: &Kube, service: &str, app: &str) -> Result<(), Error> {
    kube.api::<Service>()
        .patch(
            service,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"selector": {APP_LABEL: app}}})),
        )
        .await
        .map_err(Error::kubernetes(format!(
            "point Service {service} at {app}"
        )))?;
    Ok(())
}

/// Takes the page down once the store serves again: its Services point back at its own pods, and once their
/// endpoints are those pods (never none: a Service with no endpoints refuses connections), the page's objects go.
/// Some: what it still waits for.
pub async fn hide(source: &Source, kube: &Kube) -> Result<Option<String>, Error> {
    let Some(maintenance) = &source.maintenance else {
        return Ok(None);
    };
    for public in maintenance.services {
        select(kube, public.service, public.app).await?;
    }
    for public in maintenance.services {
        if !reaches_its_pods(kube, public.service).await? {
            return Ok(Some(format!(
                "waiting for Service {} to reach the store's pods again",
                public.service
            )));
        }
    }
    remove_object::<Deployment>(kube, "Deployment").await?;
    remove_object::<NetworkPolicy>(kube, "NetworkPolicy").await?;
    remove_object::<ConfigMap>(kube, "ConfigMap").await?;
    Ok(None)
}

/// Some: what it still waits for before the page answers for the store (every public Service's ready endpoints are
/// the page's pods), so a shopper never meets a refused connection while the writers stop.
pub async fn shown(source: &Source, kube: &Kube) -> Result<Option<String>, Error> {
    let Some(maintenance) = &source.maintenance else {
        return Ok(None);
    };
    for public in maintenance.services {
        if !endpoint_pods(kube, public.service)
            .await?
            .is_some_and(|pods| {
                pods.iter()
                    .all(|pod| pod.starts_with(&format!("{MAINTENANCE}-")))
            })
        {
            return Ok(Some(format!(
                "waiting for Service {} to reach the maintenance page",
                public.service
            )));
        }
    }
    Ok(None)
}

/// The names of Service `service`'s ready endpoints' pods; None when it has none.
async fn endpoint_pods(kube: &Kube, service: &str) -> Result<Option<Vec<String>>, Error> {
    let Some(endpoints) = kube.get::<Endpoints>(service).await? else {
        return Ok(None);
    };
    let pods: Vec<String> = endpoints
        .subsets
        .iter()
        .flatten()
        .flat_map(|subset| subset.addresses.iter().flatten())
        .map(|address| {
            address
                .target_ref
                .as_ref()
                .and_then(|pod| pod.name.clone())
                .unwrap_or_default()
        })
        .collect();
    Ok((!pods.is_empty()).then_some(pods))
}

/// Whether Service `service`'s ready endpoints are pods, none of them the page's.
async fn reaches_its_pods(kube: &Kube, service: &str) -> Result<bool, Error> {
    let page = format!("{MAINTENANCE}-");
    Ok(endpoint_pods(kube, service).await?.is_some_and(|pods| {
        pods.iter()
            .all(|pod| !pod.is_empty() && !pod.starts_with(&page))
    }))
}

/// Deletes the page's object of kind `K`, if it is there.
async fn remove_object<K>(kube: &Kube, kind: &str) -> Result<(), Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match kube
        .api::<K>()
        .delete(MAINTENANCE, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Kubernetes {
            action: format!("remove the maintenance {kind}").into(),
            source,
        }),
    }
}
