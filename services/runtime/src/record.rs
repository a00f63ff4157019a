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
    Restoring,
    Upgrading,
    Suspended,
    Resuming,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Self::Pending,
        Self::Provisioning,
        Self::Ready,
        Self::Failed,
        Self::Deleting,
        Self::Restoring,
        Self::Upgrading,
        Self::Suspended,
        Self::Resuming,
    ];

    /// The value of the phase label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Provisioning => "provisioning",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Deleting => "deleting",
            Self::Restoring => "restoring",
            Self::Upgrading => "upgrading",
            Self::Suspended => "suspended",
            Self::Resuming => "resuming",
        }
    }

    pub fn to_proto(self) -> proto::Phase {
        match self {
            Self::Pending => proto::Phase::Pending,
            Self::Provisioning => proto::Phase::Provisioning,
            Self::Ready => proto::Phase::Ready,
            Self::Failed => proto::Phase::Failed,
            Self::Deleting => proto::Phase::Deleting,
            Self::Restoring => proto::Phase::Restoring,
            Self::Upgrading => proto::Phase::Upgrading,
            Self::Suspended => proto::Phase::Suspended,
            Self::Resuming => proto::Phase::Resuming,
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
            proto::Phase::Restoring => Some(Self::Restoring),
            proto::Phase::Upgrading => Some(Self::Upgrading),
            proto::Phase::Suspended => Some(Self::Suspended),
            proto::Phase::Resuming => Some(Self::Resuming),
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
    /// For a clone: the backup it is made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<CloneSource>,
}

/// The backup a clone is made from: a store of the same tenant (possibly deleted) and one of its backups' full id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloneSource {
    pub store_id: String,
    pub backup_id: String,
}

impl CloneSource {
    pub fn to_proto(&self) -> proto::CloneSource {
        proto::CloneSource {
            store_id: self.store_id.clone(),
            backup_id: self.backup_id.clone(),
        }
    }
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
    pub fn to_proto(&self) -> proto::Step {
        proto::Step {
            name: self.name.clone(),
            state: self.state.to_proto() as i32,
            start_time: self.start_time.map(timestamp),
            finish_time: self.finish_time.map(timestamp),
            message: self.message.clone(),
        }
    }

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
    /// The latest operation after provisioning, running or ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationStatus>,
    /// The version of its engine the store's objects are built with; None for a store made before versions were
    /// recorded (it runs what the platform's default was then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// The generation of the platform's settings the store's objects are built with (a digest, see the
    /// provisioner's `Settings::generation`); empty for a store made before generations were recorded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub settings_generation: String,
}

/// A version of an engine: its name and the images its stores run, by component (`wordpress`; `medusa`,
/// `storefront`). A store records the images themselves, so it keeps running them when the platform stops offering
/// its version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub name: String,
    pub images: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    Restore,
    Upgrade,
    Suspend,
    Resume,
    /// The platform's current settings applied to the store's objects; the store stays READY.
    Reconfigure,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restore => "restore",
            Self::Upgrade => "upgrade",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
            Self::Reconfigure => "reconfigure",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OperationState {
    Running,
    Succeeded,
    Failed,
    /// An upgrade that failed and was undone.
    RolledBack,
}

/// An operation on a living store: its own ordered steps, advanced by the same reconcile loop as provisioning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    pub kind: OperationKind,
    /// For a restore: the backup's full id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backup: String,
    pub steps: Vec<StepStatus>,
    pub state: OperationState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub start_time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Timestamp>,
    /// For an upgrade: the version the store ran, and the one it moves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<Version>,
    /// For a reconfigure: the settings generation the store is brought to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub settings_generation: String,
}

impl OperationStatus {
    /// A new operation of `kind` with `steps`, all pending.
    pub fn start(kind: OperationKind, steps: &[&str], now: Timestamp) -> Self {
        Self {
            kind,
            backup: String::new(),
            steps: steps.iter().map(|name| StepStatus::pending(name)).collect(),
            state: OperationState::Running,
            message: String::new(),
            start_time: now,
            finish_time: None,
            from_version: None,
            to_version: None,
            settings_generation: String::new(),
        }
    }

    pub fn to_proto(&self) -> proto::Operation {
        let name = |version: &Option<Version>| {
            version.as_ref().map(|v| v.name.clone()).unwrap_or_default()
        };
        proto::Operation {
            kind: match self.kind {
                OperationKind::Restore => proto::OperationKind::Restore,
                OperationKind::Upgrade => proto::OperationKind::Upgrade,
                OperationKind::Suspend => proto::OperationKind::Suspend,
                OperationKind::Resume => proto::OperationKind::Resume,
                OperationKind::Reconfigure => proto::OperationKind::Reconfigure,
            } as i32,
            backup_id: self.backup.clone(),
            steps: self.steps.iter().map(StepStatus::to_proto).collect(),
            state: match self.state {
                OperationState::Running => proto::OperationState::Running,
                OperationState::Succeeded => proto::OperationState::Succeeded,
                OperationState::Failed => proto::OperationState::Failed,
                OperationState::RolledBack => proto::OperationState::RolledBack,
            } as i32,
            message: self.message.clone(),
            start_time: Some(timestamp(self.start_time)),
            finish_time: self.finish_time.map(timestamp),
            from_version: name(&self.from_version),
            to_version: name(&self.to_version),
            settings_generation: self.settings_generation.clone(),
        }
    }
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
            operation: None,
            version: None,
            settings_generation: String::new(),
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
    /// What of the record could not be read, when someone changed its annotations by hand.
    pub damage: Option<Damage>,
}

/// The parts of a store's record that could not be read. Such a store is FAILED, with a reason that says what
/// happened and what to do; RetryStore rebuilds the record, DeleteStore removes the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Damage {
    /// Why the spec annotation could not be read; the spec is then rebuilt from the labels, without the display
    /// name (the store id takes its place) and the admin email, which only the annotation held.
    pub spec: Option<String>,
    /// Why the status annotation could not be read; the steps' progress is then unknown.
    pub status: Option<String>,
}

impl Damage {
    /// The failure reason a person reads.
    pub fn reason(&self) -> String {
        let what: Vec<String> = [("spec", &self.spec), ("status", &self.status)]
            .into_iter()
            .filter_map(|(name, error)| {
                error
                    .as_ref()
                    .map(|e| format!("its {name} annotation ({e})"))
            })
            .collect();
        let mut reason = format!(
            "the store's record is unreadable: {} was changed outside the platform. RetryStore rebuilds the \
             record and runs every step again",
            what.join(" and ")
        );
        if self.spec.is_some() {
            reason.push_str(
                "; the display name and the admin email cannot be recovered: the display name becomes the store \
                 id, and the shop keeps the admin email it already has",
            );
        }
        reason.push_str(". DeleteStore removes the store.");
        reason
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("namespace {namespace} is not a store record: label {label} is missing")]
    MissingLabel {
        namespace: String,
        label: &'static str,
    },
    #[error("failed to encode the store record")]
    Encode(#[source] serde_json::Error),
}

impl StoreRecord {
    /// Reads a store from its namespace. Only the labels naming the store and its tenant are required: an
    /// unreadable spec or status annotation (edited by hand) makes a FAILED store that says so (see [`Damage`]),
    /// so its owner still sees it, can retry it and can delete it.
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
        let mut damage = Damage::default();
        let spec_json = annotations
            .get(SPEC_ANNOTATION)
            .map(String::as_str)
            .unwrap_or_default();
        let spec = serde_json::from_str::<StoreSpec>(spec_json).unwrap_or_else(|error| {
            damage.spec = Some(error.to_string());
            let engine = match labels.get(ENGINE_LABEL).map(String::as_str) {
                Some("medusa") => Engine::Medusa,
                _ => Engine::Woocommerce,
            };
            StoreSpec {
                display_name: id.clone(),
                engine,
                admin_email: String::new(),
                source: None,
            }
        });
        let mut status = match annotations.get(STATUS_ANNOTATION) {
            Some(json) => serde_json::from_str(json).unwrap_or_else(|error: serde_json::Error| {
                damage.status = Some(error.to_string());
                StoreStatus::pending(&[], Timestamp::UNIX_EPOCH)
            }),
            None => StoreStatus::pending(&[], Timestamp::UNIX_EPOCH),
        };
        let damage = (damage != Damage::default()).then_some(damage);
        if let Some(damage) = &damage {
            status.phase = Phase::Failed;
            status.failure_reason = damage.reason();
        }
        Ok(Self {
            id,
            tenant,
            spec,
            status,
            create_time: namespace.metadata.creation_timestamp.as_ref().map(|t| t.0),
            terminating: namespace.metadata.deletion_timestamp.is_some(),
            damage,
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
            steps: self.status.steps.iter().map(StepStatus::to_proto).collect(),
            storefront_url: self.status.storefront_url.clone(),
            admin_url: self.status.admin_url.clone(),
            create_time: self.create_time.map(timestamp),
            update_time: self.status.update_time.map(timestamp),
            failure_reason: self.status.failure_reason.clone(),
            admin_email: self.spec.admin_email.clone(),
            operation: self
                .status
                .operation
                .as_ref()
                .map(OperationStatus::to_proto),
            source: self.spec.source.as_ref().map(CloneSource::to_proto),
            version: self
                .status
                .version
                .as_ref()
                .map(|v| v.name.clone())
                .unwrap_or_default(),
            settings_generation: self.status.settings_generation.clone(),
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
                source: None,
            },
            status: StoreStatus::pending(&["namespace", "mariadb"], Timestamp::UNIX_EPOCH),
            create_time: None,
            terminating: false,
            damage: None,
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

    fn with_annotation(key: &str, value: &str) -> Namespace {
        let mut record = record();
        record.status.phase = Phase::Ready;
        let mut namespace = namespace_of(&record);
        namespace
            .metadata
            .annotations
            .as_mut()
            .expect("annotations")
            .insert(key.into(), value.into());
        namespace
    }

    #[test]
    fn a_hand_edited_status_makes_a_failed_store_that_says_why_and_what_to_do() {
        let read = StoreRecord::from_namespace(&with_annotation(STATUS_ANNOTATION, "{not json"))
            .expect("still a store");
        assert_eq!(read.phase(), Phase::Failed);
        let damage = read.damage.clone().expect("damage");
        assert!(damage.spec.is_none() && damage.status.is_some());
        let reason = &read.status.failure_reason;
        assert!(
            reason.starts_with("the store's record is unreadable: its status annotation"),
            "{reason}"
        );
        assert!(
            reason.contains("RetryStore") && reason.contains("DeleteStore"),
            "{reason}"
        );
        assert!(
            !reason.contains("admin email"),
            "nothing of the spec is lost: {reason}"
        );
        assert_eq!(read.spec, record().spec, "the spec is intact");
    }

    #[test]
    fn a_hand_edited_spec_is_rebuilt_from_the_labels_saying_what_is_lost() {
        let read = StoreRecord::from_namespace(&with_annotation(SPEC_ANNOTATION, "oops"))
            .expect("still a store");
        assert_eq!(read.phase(), Phase::Failed);
        assert_eq!(read.tenant, "acme");
        assert_eq!(read.spec.engine, Engine::Woocommerce);
        assert_eq!(read.spec.display_name, read.id);
        assert_eq!(read.spec.admin_email, "");
        assert!(
            read.status
                .failure_reason
                .contains("the display name and the admin email cannot be recovered"),
            "{}",
            read.status.failure_reason
        );
        // The status was readable: its steps are kept for the retry.
        assert!(!read.status.steps.is_empty());
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
