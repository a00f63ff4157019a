//! A Medusa store's fences: its ResourceQuota and LimitRange, and NetworkPolicies that let through exactly the
//! store's flows: the ingress controller to the server and the storefront; the server, the worker and the bootstrap
//! Job to PostgreSQL and Redis.
//!
//! The sizes come from the peak memory `make bench-medusa` measured of each process running the pods' commands
//! (docs/benchmarks.md): server 345 MiB, worker 247 MiB, the bootstrap's processes 501 MiB together, PostgreSQL's
//! largest backend 34 MiB, Redis 13 MiB, the storefront 57 MiB. Requests sit at or above those peaks and limits
//! leave them room to grow with the store's data and traffic; server and worker together get the 2 GB Medusa's
//! documentation asks for a deployment.

use k8s_openapi::api::{
    core::v1::{LimitRange, ResourceQuota},
    networking::v1::{
        NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicySpec,
    },
};

use super::meta::{
    BOOTSTRAP, POSTGRES, POSTGRES_PORT, REDIS, REDIS_PORT, SERVER, SERVER_PORT, STOREFRONT,
    STOREFRONT_PORT, WORKER,
};
use crate::{
    backup::{BACKUP, job::BACKUP_SIZE},
    settings::Settings,
    shared::{
        meta::selector,
        network::{baseline, ingress_controller, pod_peer, pods_of, policy, tcp},
        size::{self, Quota, Size},
    },
};

pub const SERVER_SIZE: Size = Size {
    cpu_request_milli: 200,
    memory_request_mi: 512,
    cpu_limit_milli: 1000,
    memory_limit_mi: 1024,
};
pub const WORKER_SIZE: Size = Size {
    cpu_request_milli: 200,
    memory_request_mi: 320,
    cpu_limit_milli: 1000,
    memory_limit_mi: 1024,
};
/// Migrations and the seed load the whole application, as the server does; a store waits for it, so it may use both
/// of a small node's cores while it runs (Node.js's compiler and collector threads beside the main one).
pub const BOOTSTRAP_SIZE: Size = Size {
    cpu_limit_milli: 2000,
    ..SERVER_SIZE
};
pub const POSTGRES_SIZE: Size = Size {
    cpu_request_milli: 100,
    memory_request_mi: 128,
    cpu_limit_milli: 1000,
    memory_limit_mi: 512,
};
pub const REDIS_SIZE: Size = Size {
    cpu_request_milli: 50,
    memory_request_mi: 32,
    cpu_limit_milli: 500,
    memory_limit_mi: 128,
};
pub const STOREFRONT_SIZE: Size = Size {
    cpu_request_milli: 20,
    memory_request_mi: 64,
    cpu_limit_milli: 200,
    memory_limit_mi: 128,
};

pub const STORAGE_QUOTA_GI: u64 = 5;
pub const PVC_MAX_GI: u64 = 4;

/// Every pod the store runs at once (a backup's among them), plus a second server pod while a rollout replaces the
/// first.
pub fn resource_quota(id: &str) -> ResourceQuota {
    size::resource_quota(
        id,
        Quota {
            pods: &[
                POSTGRES_SIZE,
                REDIS_SIZE,
                SERVER_SIZE,
                WORKER_SIZE,
                BOOTSTRAP_SIZE,
                STOREFRONT_SIZE,
                SERVER_SIZE,
                BACKUP_SIZE,
            ],
            volume_claims: 3,
            storage_gi: STORAGE_QUOTA_GI,
            services: 5,
        },
    )
}

pub fn limit_range(id: &str) -> LimitRange {
    size::limit_range(id, ("2", "1Gi"), PVC_MAX_GI)
}

fn ingress_only(id: &str, name: &str, app: &str, rule: NetworkPolicyIngressRule) -> NetworkPolicy {
    policy(
        id,
        name,
        NetworkPolicySpec {
            pod_selector: Some(selector(app)),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![rule]),
            ..NetworkPolicySpec::default()
        },
    )
}

pub fn network_policies(id: &str, settings: &Settings) -> Vec<NetworkPolicy> {
    let backends = [SERVER, WORKER, BOOTSTRAP];
    let mut policies = baseline(id);
    policies.extend([
        ingress_only(
            id,
            "server-ingress",
            SERVER,
            NetworkPolicyIngressRule {
                from: Some(vec![ingress_controller(settings)]),
                ports: Some(vec![tcp(SERVER_PORT)]),
            },
        ),
        ingress_only(
            id,
            "storefront-ingress",
            STOREFRONT,
            NetworkPolicyIngressRule {
                from: Some(vec![ingress_controller(settings)]),
                ports: Some(vec![tcp(STOREFRONT_PORT)]),
            },
        ),
        ingress_only(
            id,
            "postgres-ingress",
            POSTGRES,
            NetworkPolicyIngressRule {
                from: Some(vec![pod_peer(pods_of(&[
                    SERVER, WORKER, BOOTSTRAP, BACKUP,
                ]))]),
                ports: Some(vec![tcp(POSTGRES_PORT)]),
            },
        ),
        ingress_only(
            id,
            "redis-ingress",
            REDIS,
            NetworkPolicyIngressRule {
                // Backup pods: a restore empties Redis.
                from: Some(vec![pod_peer(pods_of(&[
                    SERVER, WORKER, BOOTSTRAP, BACKUP,
                ]))]),
                ports: Some(vec![tcp(REDIS_PORT)]),
            },
        ),
        policy(
            id,
            "backend-egress",
            NetworkPolicySpec {
                pod_selector: Some(pods_of(&backends)),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![
                    NetworkPolicyEgressRule {
                        to: Some(vec![pod_peer(selector(POSTGRES))]),
                        ports: Some(vec![tcp(POSTGRES_PORT)]),
                    },
                    NetworkPolicyEgressRule {
                        to: Some(vec![pod_peer(selector(REDIS))]),
                        ports: Some(vec![tcp(REDIS_PORT)]),
                    },
                ]),
                ..NetworkPolicySpec::default()
            },
        ),
    ]);
    policies
}
