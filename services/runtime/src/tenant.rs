//! Who a request acts for. The gateway authenticates the caller and sets its tenant (and, for an administrator, the
//! all-tenants scope) in the request metadata; the provisioner and the status service read it here, with one rule
//! for what a tenant name may be.

use store_platform_proto::{ALL_TENANTS, SCOPE_METADATA_KEY, TENANT_METADATA_KEY};
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

/// The caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The tenant it acts for: new stores are this tenant's.
    pub tenant: String,
    /// An administrator: sees and manages every tenant's stores.
    pub all_tenants: bool,
}

impl Caller {
    pub fn tenant(tenant: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            all_tenants: false,
        }
    }

    /// Whether this caller may see a store of `tenant`.
    pub fn may_see(&self, tenant: &str) -> bool {
        self.all_tenants || self.tenant == tenant
    }
}

/// The caller named in `metadata`.
pub fn from_metadata(metadata: &MetadataMap) -> Result<Caller, TenantError> {
    let value = metadata
        .get(TENANT_METADATA_KEY)
        .ok_or(TenantError::Missing)?;
    match value.to_str() {
        Ok(tenant) if is_valid(tenant) => Ok(Caller {
            tenant: tenant.to_owned(),
            all_tenants: metadata
                .get(SCOPE_METADATA_KEY)
                .is_some_and(|scope| scope == ALL_TENANTS),
        }),
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
        let caller = from_metadata(&metadata).expect("a tenant");
        assert_eq!(caller, Caller::tenant("acme"));
        assert!(caller.may_see("acme") && !caller.may_see("other"));
        metadata.insert(SCOPE_METADATA_KEY, ALL_TENANTS.parse().expect("ascii"));
        let admin = from_metadata(&metadata).expect("an administrator");
        assert!(admin.all_tenants && admin.may_see("other"));
        assert_eq!(admin.tenant, "acme");
    }
}
