//! Who a request acts for: a tenant, named in the request metadata, and for an administrator the all-tenants scope.
//! [`crate::auth`] decides whether the caller may claim them; this is the one rule for what a tenant name may be.

use store_platform_proto::TENANT_METADATA_KEY;

/// The tenant a request names, if it cannot be one.
pub fn invalid() -> tonic::Status {
    tonic::Status::invalid_argument(format!(
        "{TENANT_METADATA_KEY}: must be a lowercase label value (a-z, 0-9, '-', '_', '.'; at most 63 characters)"
    ))
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
}
