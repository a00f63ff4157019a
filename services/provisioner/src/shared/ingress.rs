//! A store's Ingress at `<id>.<base-domain>`: its paths, each to a Service port, with the platform's TLS.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::meta::{INGRESS, object_meta};
use crate::settings::Settings;

/// One path prefix of the store's host and the Service port it goes to.
#[derive(Clone, Copy, Debug)]
pub struct Route<'a> {
    pub prefix: &'a str,
    pub service: &'a str,
    pub port: i32,
}

/// The Ingress of component `app`, routing `routes` (the longest matching prefix wins).
pub fn ingress(id: &str, app: &str, routes: &[Route<'_>], settings: &Settings) -> Ingress {
    let host = settings.host(id);
    let mut metadata = object_meta(id, INGRESS, app);
    let mut annotations = BTreeMap::new();
    // Product images and imports are larger than ingress-nginx's 1 MiB default.
    annotations.insert(
        "nginx.ingress.kubernetes.io/proxy-body-size".to_owned(),
        "64m".to_owned(),
    );
    let tls = settings.tls.as_ref().map(|tls| {
        if let Some(issuer) = &tls.cluster_issuer {
            annotations.insert("cert-manager.io/cluster-issuer".to_owned(), issuer.clone());
        }
        vec![IngressTLS {
            hosts: Some(vec![host.clone()]),
            secret_name: Some(
                tls.secret_name
                    .clone()
                    .unwrap_or_else(|| format!("{id}-tls")),
            ),
        }]
    });
    metadata.annotations = Some(annotations);
    let paths = routes
        .iter()
        .map(|route| HTTPIngressPath {
            path: Some(route.prefix.to_owned()),
            path_type: "Prefix".to_owned(),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: route.service.to_owned(),
                    port: Some(ServiceBackendPort {
                        number: Some(route.port),
                        ..ServiceBackendPort::default()
                    }),
                }),
                ..IngressBackend::default()
            },
        })
        .collect();
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: settings.ingress_class.clone(),
            tls,
            rules: Some(vec![IngressRule {
                host: Some(host),
                http: Some(HTTPIngressRuleValue { paths }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}
