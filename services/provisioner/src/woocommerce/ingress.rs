//! The storefront's Ingress at `<id>.<base-domain>`.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::meta::{INGRESS, WORDPRESS, object_meta};
use crate::settings::Settings;

pub fn ingress(id: &str, settings: &Settings) -> Ingress {
    let host = settings.host(id);
    let mut metadata = object_meta(id, INGRESS, WORDPRESS);
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
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: settings.ingress_class.clone(),
            tls,
            rules: Some(vec![IngressRule {
                host: Some(host),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_owned()),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: WORDPRESS.to_owned(),
                                port: Some(ServiceBackendPort {
                                    number: Some(80),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}
