//! What backup and restore pods may reach: the store's database, its cache (a restore empties it) and the object
//! store, nothing else (DNS comes from the store's baseline).

use k8s_openapi::{
    api::networking::v1::{NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicySpec},
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};

use super::{BACKUP, Source};
use crate::{
    settings::Backup,
    shared::{
        meta::selector,
        network::{cidr_peers, pod_peer, policy, tcp},
    },
};

pub const BACKUP_EGRESS: &str = "backup-egress";

pub fn network_policy(id: &str, source: &Source, backup: &Backup) -> NetworkPolicy {
    policy(
        id,
        BACKUP_EGRESS,
        NetworkPolicySpec {
            pod_selector: Some(selector(BACKUP)),
            policy_types: Some(vec!["Egress".to_owned()]),
            egress: Some(
                [
                    Some(NetworkPolicyEgressRule {
                        to: Some(vec![pod_peer(selector(source.database_app))]),
                        ports: Some(vec![tcp(source.database_port)]),
                    }),
                    source.cache.as_ref().map(|cache| NetworkPolicyEgressRule {
                        to: Some(vec![pod_peer(selector(cache.app))]),
                        ports: Some(vec![tcp(cache.port)]),
                    }),
                    Some(NetworkPolicyEgressRule {
                        to: Some(cidr_peers(&backup.egress_cidrs)),
                        ports: Some(vec![tcp(i32::from(backup.egress_port))]),
                    }),
                ]
                .into_iter()
                .flatten()
                .collect(),
            ),
            ..NetworkPolicySpec::default()
        },
    )
}

/// The peer a database's ingress policy admits backup pods by.
pub fn backup_pods() -> LabelSelector {
    selector(BACKUP)
}
