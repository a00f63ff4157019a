//! The provisioner's Prometheus metrics.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::Store;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use store_platform_runtime::{
    metrics::{KubeRequestMetrics, Refresh, kube_request_family},
    record::{Phase, StoreRecord},
    watch::Watches,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

/// One store, for the metrics an operator alerts on per store.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabel {
    pub store: String,
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    pub step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabel {
    /// `apply` (an object), `status` (the store record) or `event`.
    pub kind: String,
}

/// Every metric the provisioner exports.
#[derive(Debug)]
pub struct Metrics {
    pub stores: Family<PhaseLabel, Gauge>,
    /// Store namespaces whose record could not be read in full (annotations edited by hand).
    pub unreadable_records: Gauge,
    pub step_duration: Family<StepLabel, Histogram>,
    pub provisioning_duration: Histogram,
    pub reconcile_errors: Family<ReasonLabel, Counter>,
    /// Stores waiting for a reconcile worker.
    pub reconcile_queue: Gauge,
    pub reconcile_pass_duration: Histogram,
    pub writes: Family<WriteLabel, Counter>,
    pub kube_requests: KubeRequestMetrics,
    /// When each store's newest successful backup finished (Unix seconds), as its backup Jobs report it.
    pub backup_last_success: Family<StoreLabel, Gauge>,
    pub backup_failures: Family<StoreLabel, Counter>,
    pub backup_duration: Histogram,
    pub restore_duration: Histogram,
    pub restore_failures: Counter,
    pub upgrade_duration: Histogram,
    /// Upgrades that ended, by how: `succeeded`, `rolled_back` or `failed`.
    pub upgrades: Family<OutcomeLabel, Counter>,
    /// The age and restarts of every watch of the API server (the stores' records, the caches of their objects).
    pub watches: Arc<Watches>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

fn long_histogram() -> Histogram {
    Histogram::new([
        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    ])
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ])
}

impl Metrics {
    /// The metrics and the registry they are exported from.
    pub fn new() -> (Arc<Self>, Registry) {
        let metrics = Self {
            stores: Family::default(),
            unreadable_records: Gauge::default(),
            step_duration: Family::new_with_constructor(duration_histogram),
            provisioning_duration: duration_histogram(),
            reconcile_errors: Family::default(),
            reconcile_queue: Gauge::default(),
            reconcile_pass_duration: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
            ]),
            writes: Family::default(),
            kube_requests: kube_request_family(),
            backup_last_success: Family::default(),
            backup_failures: Family::default(),
            backup_duration: long_histogram(),
            restore_duration: long_histogram(),
            restore_failures: Counter::default(),
            upgrade_duration: long_histogram(),
            upgrades: Family::default(),
            watches: Watches::new(),
        };
        let mut registry = Registry::with_prefix("store_platform");
        metrics.watches.register(&mut registry);
        registry.register("stores", "Stores by phase", metrics.stores.clone());
        registry.register(
            "unreadable_records",
            "Store namespaces whose record cannot be read in full (edited by hand); each is FAILED until retried",
            metrics.unreadable_records.clone(),
        );
        registry.register(
            "step_duration_seconds",
            "How long each provisioning step took",
            metrics.step_duration.clone(),
        );
        registry.register(
            "provisioning_duration_seconds",
            "From CreateStore to READY",
            metrics.provisioning_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile passes that failed, by reason",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_queue_depth",
            "Stores waiting for a reconcile worker; above zero for long, the workers are all busy (the API server is slow)",
            metrics.reconcile_queue.clone(),
        );
        registry.register(
            "reconcile_pass_duration_seconds",
            "How long each reconcile pass of a store took, failed ones included",
            metrics.reconcile_pass_duration.clone(),
        );
        registry.register(
            "provisioner_writes",
            "Writes to the API server by the reconciler: object applies, store record updates, events",
            metrics.writes.clone(),
        );
        registry.register(
            "kubernetes_request_duration_seconds",
            "API server request latency (watches excluded)",
            metrics.kube_requests.clone(),
        );
        registry.register(
            "backup_last_success_timestamp_seconds",
            "When each store's newest successful backup finished; alert on a store whose value is over 26 hours old",
            metrics.backup_last_success.clone(),
        );
        registry.register(
            "backup_failures",
            "Backups that failed, per store",
            metrics.backup_failures.clone(),
        );
        registry.register(
            "backup_duration_seconds",
            "How long each successful backup Job ran",
            metrics.backup_duration.clone(),
        );
        registry.register(
            "restore_duration_seconds",
            "From RestoreStore to the end of the restore",
            metrics.restore_duration.clone(),
        );
        registry.register(
            "restore_failures",
            "Restores that failed",
            metrics.restore_failures.clone(),
        );
        registry.register(
            "upgrade_duration_seconds",
            "From UpgradeStore to the end of the upgrade (or of its rollback)",
            metrics.upgrade_duration.clone(),
        );
        registry.register(
            "upgrades",
            "Upgrades that ended, by outcome: succeeded, rolled_back or failed",
            metrics.upgrades.clone(),
        );
        (Arc::new(metrics), registry)
    }

    pub fn write(&self, kind: &str) {
        self.writes
            .get_or_create(&WriteLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Recomputes stores by phase from the watch cache, before each scrape.
    pub fn refresh_from(self: &Arc<Self>, stores: Store<Namespace>) -> Refresh {
        let metrics = self.clone();
        Arc::new(move || {
            metrics.watches.refresh();
            let namespaces = stores.state();
            let records: Vec<StoreRecord> = namespaces
                .iter()
                .filter_map(|ns| StoreRecord::from_namespace(ns).ok())
                .collect();
            let unreadable = namespaces.len() - records.len()
                + records.iter().filter(|r| r.damage.is_some()).count();
            metrics
                .unreadable_records
                .set(i64::try_from(unreadable).unwrap_or(i64::MAX));
            for phase in Phase::ALL {
                let count = records.iter().filter(|r| r.phase() == phase).count();
                metrics
                    .stores
                    .get_or_create(&PhaseLabel {
                        phase: phase.as_str().to_owned(),
                    })
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        })
    }
}
