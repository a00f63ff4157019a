//! Container sizes, and the ResourceQuota and LimitRange a store's namespace gets from its engine's sizes.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
        ResourceRequirements,
    },
    apimachinery::pkg::api::resource::Quantity,
};

use super::meta::object_meta;

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

/// What a store may hold at once: one pod of each size in `pods` (the engine lists every pod it runs at once,
/// plus its spares), `volume_claims` volumes of `storage_gi` in all.
#[derive(Clone, Copy, Debug)]
pub struct Quota<'a> {
    pub pods: &'a [Size],
    pub volume_claims: u64,
    pub storage_gi: u64,
    pub services: u64,
}

/// The namespace's ResourceQuota, named `store`.
pub fn resource_quota(id: &str, quota: Quota<'_>) -> ResourceQuota {
    let sum = |f: fn(&Size) -> u64| quota.pods.iter().map(f).sum::<u64>();
    let hard: BTreeMap<String, Quantity> = [
        ("requests.cpu", format!("{}m", sum(|s| s.cpu_request_milli))),
        (
            "requests.memory",
            format!("{}Mi", sum(|s| s.memory_request_mi)),
        ),
        ("limits.cpu", format!("{}m", sum(|s| s.cpu_limit_milli))),
        ("limits.memory", format!("{}Mi", sum(|s| s.memory_limit_mi))),
        ("pods", quota.pods.len().to_string()),
        ("persistentvolumeclaims", quota.volume_claims.to_string()),
        ("requests.storage", format!("{}Gi", quota.storage_gi)),
        ("services", quota.services.to_string()),
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

/// Defaults for any container that names no resources, a ceiling per container (`container_max`, as "1" CPU and
/// "1Gi"), and bounds on a volume's size.
pub fn limit_range(id: &str, container_max: (&str, &str), volume_max_gi: u64) -> LimitRange {
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
                    max: Some(quantities(&[
                        ("cpu", container_max.0),
                        ("memory", container_max.1),
                    ])),
                    ..LimitRangeItem::default()
                },
                LimitRangeItem {
                    type_: "PersistentVolumeClaim".to_owned(),
                    min: Some(quantities(&[("storage", "100Mi")])),
                    max: Some(quantities(&[("storage", &format!("{volume_max_gi}Gi"))])),
                    ..LimitRangeItem::default()
                },
            ],
        }),
    }
}
