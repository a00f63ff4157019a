//! The tenant a request acts for. The gateway authenticates the caller and sets it in the request metadata; the
//! provisioner and the status service read it here, with one rule for what a tenant name may be.

use store_platform_proto::TENANT_METADATA_KEY;
use tonic::metadata::MetadataMap;

/// Why a request carries no usable tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("no tenant: the request metadata must carry {TENANT_METADATA_KEY}")]
    Missing,

    #[error(
        "{TENANT_METADATA_KEY}: must be a lowercase label value (a-z, 0-9, '-', '_', '.'; at most 63 characters)"
    )]
    Invalid,
}

impl From<TenantError> for tonic::Status {
    fn from(error: TenantError) -> Self {
        match error {
            TenantError::Missing => tonic::Status::unauthenticated(error.to_string()),
            TenantError::Invalid => tonic::Status::invalid_argument(error.to_string()),
        }
    }
}

/// Whether `value` may name a tenant: a Kubernetes label value (it labels each store's namespace) that starts and
/// ends with a letter or digit.
pub fn is_valid(value: &str) -> bool {
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    value.len() <= 63
        && edge(value.bytes().next())
        && edge(value.bytes().last())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// The tenant in `metadata`.
pub fn from_metadata(metadata: &MetadataMap) -> Result<String, TenantError> {
    let value = metadata
        .get(TENANT_METADATA_KEY)
        .ok_or(TenantError::Missing)?;
    match value.to_str() {
        Ok(tenant) if is_valid(tenant) => Ok(tenant.to_owned()),
        _ => Err(TenantError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_label_values() {
        for good in ["acme", "team-1", "a.b_c", "x", "0"] {
            assert!(is_valid(good), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "-acme",
            "acme-",
            "a b",
            &"t".repeat(64),
            "ten/ant",
            "é",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn metadata_without_a_usable_tenant_is_refused_with_its_code() {
        let mut metadata = MetadataMap::new();
        let missing = tonic::Status::from(from_metadata(&metadata).expect_err("missing"));
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        metadata.insert(TENANT_METADATA_KEY, "Not-A-Label".parse().expect("ascii"));
        let invalid = tonic::Status::from(from_metadata(&metadata).expect_err("invalid"));
        assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
        assert!(invalid.message().starts_with(TENANT_METADATA_KEY));
        metadata.insert(TENANT_METADATA_KEY, "acme".parse().expect("ascii"));
        assert_eq!(from_metadata(&metadata), Ok("acme".to_owned()));
    }
}
