//! The store's fences: a ResourceQuota and LimitRange sized for one store plus its bootstrap Job and cron runs,
//! and NetworkPolicies that deny everything but what the store needs.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1::{
            LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
            ResourceRequirements,
        },
        networking::v1::{
            IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
            NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, LabelSelectorRequirement},
        util::intstr::IntOrString,
    },
};

use super::meta::{APP_LABEL, BOOTSTRAP, CRON, MARIADB, WORDPRESS, object_meta, selector};
use crate::settings::Settings;

/// CPU and memory of one container, as requests and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub cpu_request_milli: u64,
    pub memory_request_mi: u64,
    pub cpu_limit_milli: u64,
    pub memory_limit_mi: u64,
}

impl Size {
    pub fn requirements(self) -> ResourceRequirements {
        let pair = |cpu: u64, memory: u64| -> BTreeMap<String, Quantity> {
            [
                ("cpu".to_owned(), Quantity(format!("{cpu}m"))),
                ("memory".to_owned(), Quantity(format!("{memory}Mi"))),
            ]
            .into()
        };
        ResourceRequirements {
            requests: Some(pair(self.cpu_request_milli, self.memory_request_mi)),
            limits: Some(pair(self.cpu_limit_milli, self.memory_limit_mi)),
            ..ResourceRequirements::default()
        }
    }
}

pub const MARIADB_SIZE: Size = Size {
    cpu_request_milli: 100,
    memory_request_mi: 256,
    cpu_limit_milli: 1000,
    memory_limit_mi: 512,
};
pub const WORDPRESS_SIZE: Size = Size {
    cpu_request_milli: 100,
    memory_request_mi: 256,
    cpu_limit_milli: 1000,
    memory_limit_mi: 512,
};
pub const BOOTSTRAP_SIZE: Size = Size {
    cpu_request_milli: 100,
    memory_request_mi: 128,
    cpu_limit_milli: 1000,
    memory_limit_mi: 384,
};
/// WordPress's init container (copies the core once, then only checks). No larger than WordPress itself, so the
/// pod's footprint, the larger of the two, is WordPress's.
pub const INIT_SIZE: Size = Size {
    cpu_request_milli: 100,
    memory_request_mi: 64,
    cpu_limit_milli: 500,
    memory_limit_mi: 256,
};
/// One cron run: a curl.
pub const CRON_SIZE: Size = Size {
    cpu_request_milli: 20,
    memory_request_mi: 16,
    cpu_limit_milli: 100,
    memory_limit_mi: 32,
};

/// Pods a store may run at once: MariaDB, WordPress, the bootstrap Job's pod, a cron run, and one more for a Job
/// retry or a WordPress pod being replaced.
pub const MAX_PODS: u64 = 5;
/// Storage of both volumes, plus room to grow one of them.
pub const STORAGE_QUOTA_GI: u64 = 6;
pub const PVC_MAX_GI: u64 = 4;

/// The quota: every pod the store runs at once, its two volumes, and one spare pod of the largest size.
pub fn resource_quota(id: &str) -> ResourceQuota {
    let sizes = [
        MARIADB_SIZE,
        WORDPRESS_SIZE,
        BOOTSTRAP_SIZE,
        CRON_SIZE,
        WORDPRESS_SIZE,
    ];
    let sum = |f: fn(&Size) -> u64| sizes.iter().map(f).sum::<u64>();
    let hard: BTreeMap<String, Quantity> = [
        ("requests.cpu", format!("{}m", sum(|s| s.cpu_request_milli))),
        (
            "requests.memory",
            format!("{}Mi", sum(|s| s.memory_request_mi)),
        ),
        ("limits.cpu", format!("{}m", sum(|s| s.cpu_limit_milli))),
        ("limits.memory", format!("{}Mi", sum(|s| s.memory_limit_mi))),
        ("pods", MAX_PODS.to_string()),
        ("persistentvolumeclaims", "2".to_owned()),
        ("requests.storage", format!("{STORAGE_QUOTA_GI}Gi")),
        ("services", "4".to_owned()),
        ("secrets", "10".to_owned()),
        ("configmaps", "10".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Quantity(v)))
    .collect();
    ResourceQuota {
        metadata: object_meta(id, "store", "store"),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    }
}

/// Defaults for any container that names no resources, and a ceiling on volume size.
pub fn limit_range(id: &str) -> LimitRange {
    let quantities = |pairs: &[(&str, &str)]| -> BTreeMap<String, Quantity> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
            .collect()
    };
    LimitRange {
        metadata: object_meta(id, "store", "store"),
        spec: Some(LimitRangeSpec {
            limits: vec![
                LimitRangeItem {
                    type_: "Container".to_owned(),
                    default: Some(quantities(&[("cpu", "500m"), ("memory", "256Mi")])),
                    default_request: Some(quantities(&[("cpu", "50m"), ("memory", "64Mi")])),
                    max: Some(quantities(&[("cpu", "1"), ("memory", "1Gi")])),
                    ..LimitRangeItem::default()
                },
                LimitRangeItem {
                    type_: "PersistentVolumeClaim".to_owned(),
                    min: Some(quantities(&[("storage", "100Mi")])),
                    max: Some(quantities(&[("storage", &format!("{PVC_MAX_GI}Gi"))])),
                    ..LimitRangeItem::default()
                },
            ],
        }),
    }
}

fn port(number: i32, protocol: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(number)),
        protocol: Some(protocol.to_owned()),
        ..NetworkPolicyPort::default()
    }
}

fn pods_of(apps: &[&str]) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: APP_LABEL.to_owned(),
            operator: "In".to_owned(),
            values: Some(apps.iter().map(|a| (*a).to_owned()).collect()),
        }]),
        ..LabelSelector::default()
    }
}

fn pod_peer(selector: LabelSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(selector),
        ..NetworkPolicyPeer::default()
    }
}

fn policy(id: &str, name: &str, spec: NetworkPolicySpec) -> NetworkPolicy {
    NetworkPolicy {
        metadata: object_meta(id, name, "store"),
        spec: Some(spec),
    }
}

/// Deny everything, then allow: DNS for every pod; the ingress controller to WordPress; WordPress and the
/// bootstrap Job to MariaDB; the bootstrap Job (it checks the storefront answers) and cron runs to WordPress; and,
/// when the platform has an SMTP relay, WordPress and the bootstrap Job to the relay's port.
pub fn network_policies(id: &str, settings: &Settings) -> Vec<NetworkPolicy> {
    let both = ["Ingress".to_owned(), "Egress".to_owned()];
    let mut policies = vec![
        policy(
            id,
            "default-deny",
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(both.to_vec()),
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
        policy(
            id,
            "wordpress-ingress",
            NetworkPolicySpec {
                pod_selector: Some(selector(WORDPRESS)),
                policy_types: Some(vec!["Ingress".to_owned()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![
                        NetworkPolicyPeer {
                            namespace_selector: Some(LabelSelector {
                                match_labels: Some(settings.ingress_namespace_labels.clone()),
                                ..LabelSelector::default()
                            }),
                            ..NetworkPolicyPeer::default()
                        },
                        pod_peer(pods_of(&[BOOTSTRAP, CRON])),
                    ]),
                    ports: Some(vec![port(8080, "TCP")]),
                }]),
                ..NetworkPolicySpec::default()
            },
        ),
        policy(
            id,
            "mariadb-ingress",
            NetworkPolicySpec {
                pod_selector: Some(selector(MARIADB)),
                policy_types: Some(vec!["Ingress".to_owned()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![pod_peer(pods_of(&[WORDPRESS, BOOTSTRAP]))]),
                    ports: Some(vec![port(3306, "TCP")]),
                }]),
                ..NetworkPolicySpec::default()
            },
        ),
        policy(
            id,
            "store-egress",
            NetworkPolicySpec {
                pod_selector: Some(pods_of(&[WORDPRESS, BOOTSTRAP])),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![
                    NetworkPolicyEgressRule {
                        to: Some(vec![pod_peer(selector(MARIADB))]),
                        ports: Some(vec![port(3306, "TCP")]),
                    },
                    NetworkPolicyEgressRule {
                        to: Some(vec![pod_peer(selector(WORDPRESS))]),
                        ports: Some(vec![port(8080, "TCP")]),
                    },
                ]),
                ..NetworkPolicySpec::default()
            },
        ),
        policy(
            id,
            "cron-egress",
            NetworkPolicySpec {
                pod_selector: Some(selector(CRON)),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![pod_peer(selector(WORDPRESS))]),
                    ports: Some(vec![port(8080, "TCP")]),
                }]),
                ..NetworkPolicySpec::default()
            },
        ),
    ];
    if let Some(mail) = &settings.mail {
        policies.push(policy(
            id,
            "mail-egress",
            NetworkPolicySpec {
                pod_selector: Some(pods_of(&[WORDPRESS, BOOTSTRAP])),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(
                        mail.egress_cidrs
                            .iter()
                            .map(|cidr| NetworkPolicyPeer {
                                ip_block: Some(IPBlock {
                                    cidr: cidr.clone(),
                                    except: None,
                                }),
                                ..NetworkPolicyPeer::default()
                            })
                            .collect(),
                    ),
                    ports: Some(vec![port(i32::from(mail.port), "TCP")]),
                }]),
                ..NetworkPolicySpec::default()
            },
        ));
    }
    policies
}
