//! The in-memory index of stores, fed by the namespace watch. Applying what the watch reports yields the change
//! subscribers must see; a re-list (after start-up, an API-server restart or a "410 Gone") is diffed against the
//! index, so a store that finished or vanished while the watch was down still produces its final change.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use store_platform_proto::v1 as proto;
use store_platform_runtime::record::{Phase, StoreRecord};

/// What happened to a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Updated,
    Deleting,
    Deleted,
}

impl ChangeType {
    pub fn to_proto(self) -> proto::ChangeType {
        match self {
            Self::Added => proto::ChangeType::Added,
            Self::Updated => proto::ChangeType::Updated,
            Self::Deleting => proto::ChangeType::Deleting,
            Self::Deleted => proto::ChangeType::Deleted,
        }
    }
}

/// One change, ready to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub kind: ChangeType,
    pub tenant: String,
    pub store: proto::Store,
}

/// Every store, by id, as the clients see it.
#[derive(Debug, Default)]
pub struct Index {
    stores: BTreeMap<String, proto::Store>,
}

/// A store's message. A hand-edited record is a FAILED store that says so (a namespace must not vanish silently);
/// only a namespace without the labels naming its store and tenant is none.
fn store_of(namespace: &Namespace) -> Option<proto::Store> {
    StoreRecord::from_namespace(namespace)
        .ok()
        .map(|record| record.to_proto())
}

fn is_deleting(store: &proto::Store) -> bool {
    store.phase == Phase::Deleting.to_proto() as i32
}

impl Index {
    pub fn get(&self, id: &str) -> Option<&proto::Store> {
        self.stores.get(id)
    }

    pub fn stores(&self) -> impl Iterator<Item = &proto::Store> {
        self.stores.values()
    }

    pub fn len(&self) -> usize {
        self.stores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    /// A namespace was added or modified.
    pub fn apply(&mut self, namespace: &Namespace) -> Option<Change> {
        let store = store_of(namespace)?;
        let kind = match self.stores.get(&store.id) {
            None => ChangeType::Added,
            Some(old) if *old == store => return None,
            Some(old) if is_deleting(&store) && !is_deleting(old) => ChangeType::Deleting,
            Some(_) => ChangeType::Updated,
        };
        self.stores.insert(store.id.clone(), store.clone());
        Some(Change {
            kind,
            tenant: store.tenant.clone(),
            store,
        })
    }

    /// A namespace was deleted: the store's last known state goes out as `Deleted`.
    pub fn delete(&mut self, namespace: &Namespace) -> Option<Change> {
        let id = store_of(namespace)?.id;
        let store = self.stores.remove(&id)?;
        Some(Change {
            kind: ChangeType::Deleted,
            tenant: store.tenant.clone(),
            store,
        })
    }

    /// Replaces the index with a complete listing and returns the differences, deletions last.
    pub fn resync(&mut self, namespaces: &[Namespace]) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for namespace in namespaces {
            if let Some(store) = store_of(namespace) {
                seen.insert(store.id.clone());
            }
            changes.extend(self.apply(namespace));
        }
        let gone: Vec<String> = self
            .stores
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(store) = self.stores.remove(&id) {
                changes.push(Change {
                    kind: ChangeType::Deleted,
                    tenant: store.tenant.clone(),
                    store,
                });
            }
        }
        changes
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use store_platform_runtime::record::{self, Engine, StoreSpec, StoreStatus};

    use super::*;

    /// A store namespace as the provisioner writes it.
    pub(crate) fn namespace(id: &str, tenant: &str, phase: Phase) -> Namespace {
        let mut status = StoreStatus::pending(&["namespace"], jiff::Timestamp::UNIX_EPOCH);
        status.phase = phase;
        StoreRecord {
            id: id.into(),
            tenant: tenant.into(),
            spec: StoreSpec {
                display_name: id.into(),
                engine: Engine::Woocommerce,
                admin_email: "a@example.com".into(),
                source: None,
            },
            status,
            create_time: None,
            terminating: false,
            damage: None,
        }
        .to_namespace()
        .expect("encode")
    }

    fn kinds(changes: &[Change]) -> Vec<(ChangeType, &str)> {
        changes
            .iter()
            .map(|c| (c.kind, c.store.id.as_str()))
            .collect()
    }

    #[test]
    fn apply_reports_added_then_updated_and_nothing_for_no_change() {
        let mut index = Index::default();
        assert_eq!(
            index
                .apply(&namespace("a", "acme", Phase::Pending))
                .map(|c| c.kind),
            Some(ChangeType::Added)
        );
        assert_eq!(index.apply(&namespace("a", "acme", Phase::Pending)), None);
        assert_eq!(
            index
                .apply(&namespace("a", "acme", Phase::Provisioning))
                .map(|c| c.kind),
            Some(ChangeType::Updated)
        );
    }

    #[test]
    fn a_terminating_namespace_is_deleting_then_its_removal_is_deleted_with_the_last_state() {
        let mut index = Index::default();
        index.apply(&namespace("a", "acme", Phase::Ready));
        let mut terminating = namespace("a", "acme", Phase::Ready);
        terminating.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(
            index.apply(&terminating).map(|c| c.kind),
            Some(ChangeType::Deleting)
        );
        let deleted = index.delete(&terminating).expect("deleted");
        assert_eq!(deleted.kind, ChangeType::Deleted);
        assert_eq!(deleted.store.phase, proto::Phase::Deleting as i32);
        assert!(index.is_empty());
    }

    #[test]
    fn resync_emits_what_changed_while_the_watch_was_down() {
        let mut index = Index::default();
        index.resync(&[
            namespace("a", "acme", Phase::Provisioning),
            namespace("b", "acme", Phase::Ready),
        ]);
        let changes = index.resync(&[
            namespace("a", "acme", Phase::Ready),
            namespace("c", "acme", Phase::Pending),
        ]);
        assert_eq!(
            kinds(&changes),
            [
                (ChangeType::Updated, "a"),
                (ChangeType::Added, "c"),
                (ChangeType::Deleted, "b")
            ]
        );
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn a_hand_edited_record_shows_the_store_as_failed_with_the_reason() {
        let mut broken = namespace("a", "acme", Phase::Ready);
        broken
            .metadata
            .annotations
            .as_mut()
            .expect("annotations")
            .insert(record::SPEC_ANNOTATION.into(), "{oops".into());
        let mut index = Index::default();
        let change = index.apply(&broken).expect("still shown");
        assert_eq!(change.store.phase, Phase::Failed.to_proto() as i32);
        assert!(
            change
                .store
                .failure_reason
                .starts_with("the store's record is unreadable"),
            "{}",
            change.store.failure_reason
        );
    }
}
