//! The store record. There is no database: the namespace `store-<id>` *is* the store. Its labels make stores
//! selectable (`kubectl get ns -l app.kubernetes.io/managed-by=store-platform -L store-platform.io/phase`); its
//! annotations hold the requested spec and the observed status as JSON. The provisioner writes the record; the
//! status service only reads it. This module is the one definition of that format, and of its conversion to the
//! `Store` message.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use serde::{Deserialize, Serialize};
use store_platform_proto::v1 as proto;

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "store-platform";
pub const STORE_ID_LABEL: &str = "store-platform.io/store-id";
pub const ENGINE_LABEL: &str = "store-platform.io/engine";
pub const TENANT_LABEL: &str = "store-platform.io/tenant";
pub const PHASE_LABEL: &str = "store-platform.io/phase";
pub const SPEC_ANNOTATION: &str = "store-platform.io/spec";
pub const STATUS_ANNOTATION: &str = "store-platform.io/status";

/// Label selector matching every store namespace.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// The namespace that holds store `id`.
pub fn namespace_name(id: &str) -> String {
    format!("store-{id}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Woocommerce,
    Medusa,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Woocommerce => "woocommerce",
            Self::Medusa => "medusa",
        }
    }

    pub fn to_proto(self) -> proto::Engine {
        match self {
            Self::Woocommerce => proto::Engine::Woocommerce,
            Self::Medusa => proto::Engine::Medusa,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Pending,
    Provisioning,
    Ready,
    Failed,
    Deleting,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Self::Pending,
        Self::Provisioning,
        Self::Ready,
        Self::Failed,
        Self::Deleting,
    ];

    /// The value of the phase label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Provisioning => "provisioning",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Deleting => "deleting",
        }
    }

    pub fn to_proto(self) -> proto::Phase {
        match self {
            Self::Pending => proto::Phase::Pending,
            Self::Provisioning => proto::Phase::Provisioning,
            Self::Ready => proto::Phase::Ready,
            Self::Failed => proto::Phase::Failed,
            Self::Deleting => proto::Phase::Deleting,
        }
    }

    pub fn from_proto(phase: proto::Phase) -> Option<Self> {
        match phase {
            proto::Phase::Unspecified => None,
            proto::Phase::Pending => Some(Self::Pending),
            proto::Phase::Provisioning => Some(Self::Provisioning),
            proto::Phase::Ready => Some(Self::Ready),
            proto::Phase::Failed => Some(Self::Failed),
            proto::Phase::Deleting => Some(Self::Deleting),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl StepState {
    pub fn to_proto(self) -> proto::StepState {
        match self {
            Self::Pending => proto::StepState::Pending,
            Self::Running => proto::StepState::Running,
            Self::Succeeded => proto::StepState::Succeeded,
            Self::Failed => proto::StepState::Failed,
        }
    }
}

/// What the store's owner asked for. Stored in the spec annotation; compared on create for idempotency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreSpec {
    pub display_name: String,
    pub engine: Engine,
    pub admin_email: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    pub name: String,
    pub state: StepState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl StepStatus {
    pub fn pending(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            state: StepState::Pending,
            start_time: None,
            finish_time: None,
            message: String::new(),
        }
    }
}

/// What the provisioner observed. Stored in the status annotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    pub phase: Phase,
    #[serde(default)]
    pub steps: Vec<StepStatus>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failure_reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storefront_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub admin_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<Timestamp>,
}

impl StoreStatus {
    /// A new store: every step pending.
    pub fn pending(steps: &[&str], now: Timestamp) -> Self {
        Self {
            phase: Phase::Pending,
            steps: steps.iter().map(|name| StepStatus::pending(name)).collect(),
            failure_reason: String::new(),
            storefront_url: String::new(),
            admin_url: String::new(),
            update_time: Some(now),
        }
    }
}

/// A store as read from its namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreRecord {
    pub id: String,
    pub tenant: String,
    pub spec: StoreSpec,
    pub status: StoreStatus,
    pub create_time: Option<Timestamp>,
    /// Kubernetes is removing the namespace.
    pub terminating: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("namespace {namespace} is not a store record: label {label} is missing")]
    MissingLabel {
        namespace: String,
        label: &'static str,
    },
    #[error("namespace {namespace} has an unreadable spec annotation")]
    UnreadableSpec {
        namespace: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to encode the store record")]
    Encode(#[source] serde_json::Error),
}

impl StoreRecord {
    /// Reads a store from its namespace. A missing or unreadable status annotation is not an error: someone may have
    /// edited it by hand, and the store must still show, saying its status is unreadable.
    pub fn from_namespace(namespace: &Namespace) -> Result<Self, RecordError> {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let empty = BTreeMap::new();
        let labels = namespace.metadata.labels.as_ref().unwrap_or(&empty);
        let annotations = namespace.metadata.annotations.as_ref().unwrap_or(&empty);
        let label = |key: &'static str| {
            labels
                .get(key)
                .cloned()
                .ok_or_else(|| RecordError::MissingLabel {
                    namespace: name.clone(),
                    label: key,
                })
        };
        let id = label(STORE_ID_LABEL)?;
        let tenant = label(TENANT_LABEL)?;
        let spec_json = annotations
            .get(SPEC_ANNOTATION)
            .map(String::as_str)
            .unwrap_or_default();
        let spec: StoreSpec =
            serde_json::from_str(spec_json).map_err(|source| RecordError::UnreadableSpec {
                namespace: name.clone(),
                source,
            })?;
        let status = match annotations.get(STATUS_ANNOTATION) {
            Some(json) => {
                serde_json::from_str(json).unwrap_or_else(|error: serde_json::Error| StoreStatus {
                    failure_reason: format!("status unreadable: {error}"),
                    ..StoreStatus::pending(&[], Timestamp::UNIX_EPOCH)
                })
            }
            None => StoreStatus::pending(&[], Timestamp::UNIX_EPOCH),
        };
        Ok(Self {
            id,
            tenant,
            spec,
            status,
            create_time: namespace.metadata.creation_timestamp.as_ref().map(|t| t.0),
            terminating: namespace.metadata.deletion_timestamp.is_some(),
        })
    }

    /// The phase clients see: a namespace Kubernetes is removing is DELETING whatever the annotation says.
    pub fn phase(&self) -> Phase {
        if self.terminating {
            Phase::Deleting
        } else {
            self.status.phase
        }
    }

    /// The labels of the store's namespace.
    pub fn labels(&self) -> BTreeMap<String, String> {
        [
            (MANAGED_BY_LABEL, MANAGED_BY),
            (STORE_ID_LABEL, self.id.as_str()),
            (ENGINE_LABEL, self.spec.engine.as_str()),
            (TENANT_LABEL, self.tenant.as_str()),
            (PHASE_LABEL, self.phase().as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The spec and status annotations.
    pub fn annotations(&self) -> Result<BTreeMap<String, String>, RecordError> {
        Ok([
            (
                SPEC_ANNOTATION.to_owned(),
                serde_json::to_string(&self.spec).map_err(RecordError::Encode)?,
            ),
            (
                STATUS_ANNOTATION.to_owned(),
                serde_json::to_string(&self.status).map_err(RecordError::Encode)?,
            ),
        ]
        .into())
    }

    /// The namespace holding this record: name, labels and annotations (what the provisioner applies).
    pub fn to_namespace(&self) -> Result<Namespace, RecordError> {
        Ok(Namespace {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(namespace_name(&self.id)),
                labels: Some(self.labels()),
                annotations: Some(self.annotations()?),
                ..Default::default()
            },
            ..Namespace::default()
        })
    }

    pub fn to_proto(&self) -> proto::Store {
        proto::Store {
            id: self.id.clone(),
            display_name: self.spec.display_name.clone(),
            engine: self.spec.engine.to_proto() as i32,
            tenant: self.tenant.clone(),
            phase: self.phase().to_proto() as i32,
            steps: self
                .status
                .steps
                .iter()
                .map(|step| proto::Step {
                    name: step.name.clone(),
                    state: step.state.to_proto() as i32,
                    start_time: step.start_time.map(timestamp),
                    finish_time: step.finish_time.map(timestamp),
                    message: step.message.clone(),
                })
                .collect(),
            storefront_url: self.status.storefront_url.clone(),
            admin_url: self.status.admin_url.clone(),
            create_time: self.create_time.map(timestamp),
            update_time: self.status.update_time.map(timestamp),
            failure_reason: self.status.failure_reason.clone(),
            admin_email: self.spec.admin_email.clone(),
        }
    }
}

/// A protobuf timestamp.
pub fn timestamp(time: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.as_second(),
        nanos: time.subsec_nanosecond(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> StoreRecord {
        StoreRecord {
            id: "shoes".into(),
            tenant: "acme".into(),
            spec: StoreSpec {
                display_name: "Shoes & Socks".into(),
                engine: Engine::Woocommerce,
                admin_email: "owner@example.com".into(),
            },
            status: StoreStatus::pending(&["namespace", "mariadb"], Timestamp::UNIX_EPOCH),
            create_time: None,
            terminating: false,
        }
    }

    fn namespace_of(record: &StoreRecord) -> Namespace {
        record.to_namespace().expect("encode")
    }

    #[test]
    fn a_record_round_trips_through_its_namespace() {
        let record = record();
        assert_eq!(
            StoreRecord::from_namespace(&namespace_of(&record)).expect("read"),
            record
        );
    }

    #[test]
    fn labels_make_stores_selectable_by_tenant_engine_and_phase() {
        let labels = record().labels();
        assert_eq!(labels[MANAGED_BY_LABEL], "store-platform");
        assert_eq!(labels[TENANT_LABEL], "acme");
        assert_eq!(labels[ENGINE_LABEL], "woocommerce");
        assert_eq!(labels[PHASE_LABEL], "pending");
    }

    #[test]
    fn a_hand_edited_status_still_shows_the_store_as_unreadable() {
        let mut namespace = namespace_of(&record());
        namespace
            .metadata
            .annotations
            .as_mut()
            .expect("annotations")
            .insert(STATUS_ANNOTATION.into(), "{not json".into());
        let read = StoreRecord::from_namespace(&namespace).expect("still a store");
        assert!(
            read.status.failure_reason.starts_with("status unreadable"),
            "{}",
            read.status.failure_reason
        );
    }

    #[test]
    fn a_namespace_without_a_store_id_is_not_a_store() {
        let mut namespace = namespace_of(&record());
        namespace
            .metadata
            .labels
            .as_mut()
            .expect("labels")
            .remove(STORE_ID_LABEL);
        assert!(matches!(
            StoreRecord::from_namespace(&namespace),
            Err(RecordError::MissingLabel {
                label: STORE_ID_LABEL,
                ..
            })
        ));
    }

    #[test]
    fn a_terminating_namespace_is_deleting_whatever_its_annotation_says() {
        let mut record = record();
        record.status.phase = Phase::Ready;
        record.terminating = true;
        assert_eq!(record.phase(), Phase::Deleting);
        assert_eq!(record.to_proto().phase, proto::Phase::Deleting as i32);
    }
}
