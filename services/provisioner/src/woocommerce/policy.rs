//! The store's fences: a ResourceQuota and LimitRange sized for one store plus its bootstrap Job and cron runs,
//! and NetworkPolicies that deny everything but what the store needs.

use k8s_openapi::api::{
    core::v1::{LimitRange, ResourceQuota},
    networking::v1::{
        NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicySpec,
    },
};

use super::meta::{BOOTSTRAP, CRON, MARIADB, WORDPRESS, selector};
use crate::backup::{BACKUP, job::BACKUP_SIZE};
pub use crate::shared::size::Size;
use crate::{
    settings::Settings,
    shared::{
        network::{baseline, cidr_peers, ingress_controller, pod_peer, pods_of, policy, tcp},
        size::{self, Quota},
    },
};

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
/// One cron run: WP-CLI loading WordPress and WooCommerce, a few times over (139 MiB at its peak, measured with
/// `/usr/bin/time -v` on WP-CLI 2.12.0, WooCommerce 9.9.5 and PHP 8.2).
pub const CRON_SIZE: Size = Size {
    cpu_request_milli: 100,
    memory_request_mi: 160,
    cpu_limit_milli: 1000,
    memory_limit_mi: 384,
};

/// Pods a store may run at once: MariaDB, WordPress, the bootstrap Job's pod, a cron run, and one more for a Job
/// retry or a WordPress pod being replaced.
pub const MAX_PODS: u64 = 5;
/// Storage of both volumes, plus room to grow one of them.
pub const STORAGE_QUOTA_GI: u64 = 6;
pub const PVC_MAX_GI: u64 = 4;

/// The quota: every pod the store runs at once (a backup's among them), its two volumes, and one spare pod of the
/// largest size.
pub fn resource_quota(id: &str) -> ResourceQuota {
    size::resource_quota(
        id,
        Quota {
            pods: &[
                MARIADB_SIZE,
                WORDPRESS_SIZE,
                BOOTSTRAP_SIZE,
                CRON_SIZE,
                WORDPRESS_SIZE,
                BACKUP_SIZE,
            ],
            volume_claims: 2,
            storage_gi: STORAGE_QUOTA_GI,
            services: 4,
        },
    )
}

/// Defaults for any container that names no resources, and a ceiling on volume size.
pub fn limit_range(id: &str) -> LimitRange {
    size::limit_range(id, ("1", "1Gi"), PVC_MAX_GI)
}

/// Deny everything, then allow: DNS for every pod; the ingress controller to WordPress; WordPress, the bootstrap Job
/// and cron runs (WP-CLI) to MariaDB; the bootstrap Job (it checks the storefront answers) to WordPress; and, when the
/// platform has an SMTP relay, WordPress, the bootstrap Job and cron runs to the relay's port.
pub fn network_policies(id: &str, settings: &Settings) -> Vec<NetworkPolicy> {
    let mut policies = baseline(id);
    policies.extend([
        policy(
            id,
            "wordpress-ingress",
            NetworkPolicySpec {
                pod_selector: Some(selector(WORDPRESS)),
                policy_types: Some(vec!["Ingress".to_owned()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![
                        ingress_controller(settings),
                        pod_peer(pods_of(&[BOOTSTRAP])),
                    ]),
                    ports: Some(vec![tcp(8080)]),
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
                    from: Some(vec![pod_peer(pods_of(&[
                        WORDPRESS, BOOTSTRAP, CRON, BACKUP,
                    ]))]),
                    ports: Some(vec![tcp(3306)]),
                }]),
                ..NetworkPolicySpec::default()
            },
        ),
        policy(
            id,
            "store-egress",
            NetworkPolicySpec {
                pod_selector: Some(pods_of(&[WORDPRESS, BOOTSTRAP, CRON])),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![
                    NetworkPolicyEgressRule {
                        to: Some(vec![pod_peer(selector(MARIADB))]),
                        ports: Some(vec![tcp(3306)]),
                    },
                    NetworkPolicyEgressRule {
                        to: Some(vec![pod_peer(selector(WORDPRESS))]),
                        ports: Some(vec![tcp(8080)]),
                    },
                ]),
                ..NetworkPolicySpec::default()
            },
        ),
    ]);
    if let Some(mail) = &settings.mail {
        policies.push(policy(
            id,
            "mail-egress",
            NetworkPolicySpec {
                pod_selector: Some(pods_of(&[WORDPRESS, BOOTSTRAP, CRON])),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(cidr_peers(&mail.egress_cidrs)),
                    ports: Some(vec![tcp(i32::from(mail.port))]),
                }]),
                ..NetworkPolicySpec::default()
            },
        ));
    }
    policies
}
