//! Fan-out: one namespace watch feeds the index; every subscriber gets a snapshot and then the changes, through a
//! broadcast channel of bounded size. A subscriber that falls further behind than the channel holds is not waited
//! for: it gets a fresh snapshot instead of the changes it missed, so no subscriber slows another and memory stays
//! bounded.

use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::watcher;
use store_platform_proto::v1 as proto;
use tokio::sync::{broadcast, watch};

use store_platform_runtime::tenant::Caller;

use crate::{
    index::{Change, Index},
    metrics::Metrics,
};

/// Which stores a subscriber sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub caller: Caller,
    /// One store only, when set.
    pub store_id: Option<String>,
}

impl Filter {
    pub fn admits(&self, store: &proto::Store) -> bool {
        self.caller.may_see(&store.tenant)
            && self.store_id.as_ref().is_none_or(|id| *id == store.id)
    }
}

/// The index and its subscribers.
#[derive(Debug)]
pub struct Hub {
    index: Mutex<Index>,
    changes: broadcast::Sender<Arc<Change>>,
    synced: watch::Sender<bool>,
    /// Namespaces of a re-list in progress, applied all at once when it completes.
    relist: Mutex<Option<Vec<Namespace>>>,
    pub metrics: Metrics,
}

impl Hub {
    /// A hub whose subscribers may fall `capacity` changes behind before they are resent a snapshot.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            index: Mutex::new(Index::default()),
            changes: broadcast::channel(capacity.max(1)).0,
            synced: watch::channel(false).0,
            relist: Mutex::new(None),
            metrics: Metrics::default(),
        })
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Completes once the first full listing is in the index.
    pub async fn synced(&self) {
        let mut synced = self.synced.subscribe();
        let _ = synced.wait_for(|s| *s).await;
    }

    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// The store `id` if `caller` may see it.
    pub fn get(&self, caller: &Caller, id: &str) -> Option<proto::Store> {
        self.index()
            .get(id)
            .filter(|s| caller.may_see(&s.tenant))
            .cloned()
    }

    /// The stores `filter` admits now, and a receiver of every change after them (no gap, no overlap).
    pub fn subscribe(
        &self,
        filter: &Filter,
    ) -> (Vec<proto::Store>, broadcast::Receiver<Arc<Change>>) {
        let index = self.index();
        let receiver = self.changes.subscribe();
        let snapshot = index
            .stores()
            .filter(|s| filter.admits(s))
            .cloned()
            .collect();
        (snapshot, receiver)
    }

    pub fn subscribers(&self) -> usize {
        self.changes.receiver_count()
    }

    fn publish(&self, changes: Vec<Change>) {
        for change in changes {
            // No receivers is not an error: nobody is watching.
            let _ = self.changes.send(Arc::new(change));
        }
    }

    /// Applies one watcher event. Changes are sent while the index is locked, so a subscriber's snapshot and its
    /// stream of changes never miss or repeat one.
    pub fn apply(&self, event: watcher::Event<Namespace>) {
        match event {
            watcher::Event::Init => {
                if self.is_synced() {
                    self.metrics.watch_restarts.inc();
                }
                *self.relist.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
            }
            watcher::Event::InitApply(namespace) => {
                if let Some(listing) = self
                    .relist
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                {
                    listing.push(namespace);
                }
            }
            watcher::Event::InitDone => {
                let listing = self
                    .relist
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_default();
                let mut index = self.index();
                let changes = index.resync(&listing);
                tracing::info!(
                    stores = index.len(),
                    changes = changes.len(),
                    "store listing synced"
                );
                self.publish(changes);
                drop(index);
                self.synced.send_replace(true);
            }
            watcher::Event::Apply(namespace) => {
                let mut index = self.index();
                let change = index.apply(&namespace);
                self.publish(change.into_iter().collect());
            }
            watcher::Event::Delete(namespace) => {
                let mut index = self.index();
                let change = index.delete(&namespace);
                self.publish(change.into_iter().collect());
            }
        }
    }

    /// Feeds the hub from `events` until they end.
    pub async fn run(
        self: Arc<Self>,
        events: impl Stream<Item = Result<watcher::Event<Namespace>, watcher::Error>>,
    ) {
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => self.apply(event),
                Err(error) => tracing::warn!(%error, "namespace watch failed; retrying"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use store_platform_runtime::record::Phase;

    use super::*;
    use crate::index::{ChangeType, tests::namespace};

    fn synced_hub(capacity: usize, namespaces: Vec<Namespace>) -> Arc<Hub> {
        let hub = Hub::new(capacity);
        hub.apply(watcher::Event::Init);
        for namespace in namespaces {
            hub.apply(watcher::Event::InitApply(namespace));
        }
        hub.apply(watcher::Event::InitDone);
        hub
    }

    #[test]
    fn a_subscriber_sees_its_tenants_snapshot_then_every_change_after_it() {
        let hub = synced_hub(
            16,
            vec![
                namespace("a", "acme", Phase::Ready),
                namespace("b", "globex", Phase::Ready),
            ],
        );
        assert!(hub.is_synced());
        let filter = Filter {
            caller: Caller::tenant("acme"),
            store_id: None,
        };
        let (snapshot, mut changes) = hub.subscribe(&filter);
        assert_eq!(
            snapshot.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        hub.apply(watcher::Event::Apply(namespace(
            "c",
            "acme",
            Phase::Pending,
        )));
        let change = changes.try_recv().expect("a change");
        assert_eq!(
            (change.kind, change.store.id.as_str()),
            (ChangeType::Added, "c")
        );
    }

    #[test]
    fn an_administrator_sees_every_tenants_stores() {
        let hub = synced_hub(
            16,
            vec![
                namespace("a", "acme", Phase::Ready),
                namespace("b", "globex", Phase::Ready),
            ],
        );
        let admin = Caller {
            tenant: "ops".into(),
            all_tenants: true,
        };
        let filter = Filter {
            caller: admin.clone(),
            store_id: None,
        };
        let (snapshot, _) = hub.subscribe(&filter);
        let mut ids: Vec<&str> = snapshot.iter().map(|s| s.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["a", "b"]);
        assert!(hub.get(&admin, "b").is_some());
        assert!(hub.get(&Caller::tenant("acme"), "b").is_none());
    }

    #[test]
    fn a_slow_subscriber_lags_without_holding_anyone_up() {
        let hub = synced_hub(4, vec![]);
        let filter = Filter {
            caller: Caller::tenant("acme"),
            store_id: None,
        };
        let (_, mut slow) = hub.subscribe(&filter);
        let (_, mut fast) = hub.subscribe(&filter);
        for i in 0..10 {
            hub.apply(watcher::Event::Apply(namespace(
                &format!("s{i}"),
                "acme",
                Phase::Pending,
            )));
            // The fast one keeps up.
            assert_eq!(fast.try_recv().expect("fast").store.id, format!("s{i}"));
        }
        // The slow one is told it lagged (then the stream resends a snapshot) rather than holding 10 changes.
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(6))
        ));
    }

    #[test]
    fn a_relist_after_a_watch_restart_reports_what_happened_meanwhile() {
        let hub = synced_hub(
            16,
            vec![
                namespace("a", "acme", Phase::Provisioning),
                namespace("b", "acme", Phase::Ready),
            ],
        );
        let (_, mut changes) = hub.subscribe(&Filter {
            caller: Caller::tenant("acme"),
            store_id: None,
        });
        // The watch restarts (API server restart, 410 Gone): a fresh listing arrives.
        hub.apply(watcher::Event::Init);
        hub.apply(watcher::Event::InitApply(namespace(
            "a",
            "acme",
            Phase::Ready,
        )));
        hub.apply(watcher::Event::InitDone);
        let first = changes.try_recv().expect("a became ready");
        assert_eq!(
            (first.kind, first.store.phase),
            (ChangeType::Updated, proto::Phase::Ready as i32)
        );
        let second = changes.try_recv().expect("b is gone");
        assert_eq!(
            (second.kind, second.store.id.as_str()),
            (ChangeType::Deleted, "b")
        );
    }
}
