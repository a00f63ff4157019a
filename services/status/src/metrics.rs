//! The status service's Prometheus metrics.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabel {
    /// `snapshot`, `change` or `heartbeat`.
    pub kind: String,
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub subscribers: Gauge,
    pub messages_sent: Family<MessageLabel, Counter>,
    pub snapshots_resent: Counter,
    pub watch_restarts: Counter,
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "status_subscribers",
            "Open WatchStores streams",
            self.subscribers.clone(),
        );
        registry.register(
            "status_messages_sent",
            "Messages sent on WatchStores streams, by kind",
            self.messages_sent.clone(),
        );
        registry.register(
            "status_snapshots_resent",
            "Snapshots sent to subscribers that fell too far behind",
            self.snapshots_resent.clone(),
        );
        registry.register(
            "status_watch_restarts",
            "Re-lists of the store namespaces after the first (API-server restart, expired watch)",
            self.watch_restarts.clone(),
        );
    }

    pub fn sent(&self, kind: &str) {
        self.messages_sent
            .get_or_create(&MessageLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }
}
