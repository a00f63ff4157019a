//! NetworkPolicy pieces: every store denies all traffic, lets every pod resolve names, and then allows exactly
//! the flows its engine lists.

use k8s_openapi::{
    api::networking::v1::{
        IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
        NetworkPolicySpec,
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, LabelSelectorRequirement},
        util::intstr::IntOrString,
    },
};

use super::meta::{APP_LABEL, object_meta};
use crate::settings::Settings;

pub fn port(number: i32, protocol: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(number)),
        protocol: Some(protocol.to_owned()),
        ..NetworkPolicyPort::default()
    }
}

pub fn tcp(number: i32) -> NetworkPolicyPort {
    port(number, "TCP")
}

/// The pods of any of the components `apps`.
pub fn pods_of(apps: &[&str]) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: APP_LABEL.to_owned(),
            operator: "In".to_owned(),
            values: Some(apps.iter().map(|a| (*a).to_owned()).collect()),
        }]),
        ..LabelSelector::default()
    }
}

pub fn pod_peer(selector: LabelSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(selector),
        ..NetworkPolicyPeer::default()
    }
}

/// The namespace the ingress controller runs in.
pub fn ingress_controller(settings: &Settings) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(settings.ingress_namespace_labels.clone()),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

/// The addresses in `cidrs`.
pub fn cidr_peers(cidrs: &[String]) -> Vec<NetworkPolicyPeer> {
    cidrs
        .iter()
        .map(|cidr| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.clone(),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        })
        .collect()
}

pub fn policy(id: &str, name: &str, spec: NetworkPolicySpec) -> NetworkPolicy {
    NetworkPolicy {
        metadata: object_meta(id, name, "store"),
        spec: Some(spec),
    }
}

/// What every store starts from: nothing in or out, but DNS.
pub fn baseline(id: &str) -> Vec<NetworkPolicy> {
    vec![
        policy(
            id,
            "default-deny",
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
                ..NetworkPolicySpec::default()
            },
        ),
        policy(
            id,
            "allow-dns",
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector::default()),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![port(53, "UDP"), port(53, "TCP")]),
                }]),
                ..NetworkPolicySpec::default()
            },
        ),
    ]
}
