//! Names, labels and pod settings every store's objects share, whatever their engine.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        Capabilities, EnvVar, EnvVarSource, PersistentVolumeClaimSpec, PodSecurityContext,
        SeccompProfile, Secret, SecretKeySelector, SecurityContext, VolumeResourceRequirements,
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
    },
};
use store_platform_runtime::record::{
    MANAGED_BY, MANAGED_BY_LABEL, STORE_ID_LABEL, namespace_name,
};

pub const APP_LABEL: &str = "app.kubernetes.io/name";
/// The Secret holding a store's generated passwords, whatever its engine.
pub const SECRET_NAME: &str = "store-credentials";
/// The Ingress of a store's host.
pub const INGRESS: &str = "storefront";

/// Labels every object of store `id` carries; `app` names the component.
pub fn labels(id: &str, app: &str) -> BTreeMap<String, String> {
    [
        (MANAGED_BY_LABEL, MANAGED_BY),
        (STORE_ID_LABEL, id),
        (APP_LABEL, app),
        ("app.kubernetes.io/part-of", "store-platform"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The labels a component's pods are selected by.
pub fn selector_labels(app: &str) -> BTreeMap<String, String> {
    [(APP_LABEL.to_owned(), app.to_owned())].into()
}

pub fn selector(app: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(app)),
        ..LabelSelector::default()
    }
}

/// Metadata of object `name` of component `app` in store `id`'s namespace.
pub fn object_meta(id: &str, name: &str, app: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace_name(id)),
        labels: Some(labels(id, app)),
        ..ObjectMeta::default()
    }
}

/// A pod that satisfies the `restricted` Pod Security level, running as `uid`.
pub fn pod_security(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// A container that satisfies the `restricted` Pod Security level.
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

/// A ReadWriteOnce volume of `size` in `storage_class` (the cluster default when none).
pub fn volume_claim_spec(size: &str, storage_class: Option<String>) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
        storage_class_name: storage_class,
        resources: Some(VolumeResourceRequirements {
            requests: Some([("storage".to_owned(), Quantity(size.to_owned()))].into()),
            ..VolumeResourceRequirements::default()
        }),
        ..PersistentVolumeClaimSpec::default()
    }
}

/// An environment variable with a plain value.
pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// An environment variable read from key `key` of Secret `secret` in the store's namespace.
pub fn secret_key_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// An environment variable read from the store's generated credentials.
pub fn secret_env(name: &str, key: &str) -> EnvVar {
    secret_key_env(name, SECRET_NAME, key)
}

/// Key `key` of `secret`, as text.
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
}
