//! From a verified token's claims to the platform's identity: who (subject, e-mail), which tenant, which role.
//!
//! The tenant comes from a claim holding its name, or from the person's groups: the one group named with a prefix
//! (`store-platform:acme` with the prefix `store-platform:`). The role comes from groups the operator names for
//! each role; the highest one a person has wins, and someone in none of them gets the default role, if there is
//! one. An administrator needs no tenant of their own: their own stores go to the administrators' tenant.

use store_platform_runtime::tenant;

use super::jwt::Claims;
use crate::auth::{Identity, Role};

/// How claims map to a tenant and a role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    /// A claim holding the tenant's name.
    pub tenant_claim: Option<String>,
    /// The claim listing the person's groups.
    pub groups_claim: String,
    /// Groups named `<prefix><tenant>` give the tenant.
    pub tenant_group_prefix: Option<String>,
    pub admin_groups: Vec<String>,
    pub owner_groups: Vec<String>,
    pub viewer_groups: Vec<String>,
    /// The role of someone in none of the role groups; none refuses them.
    pub default_role: Option<Role>,
    /// The tenant of an administrator who has none of their own.
    pub admin_tenant: String,
    /// The claim with the person's e-mail address, for the audit log.
    pub email_claim: String,
}

/// Why a signed-in person may not use the platform (PERMISSION_DENIED: who they are is known, and not allowed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("{subject} has no tenant: {how}")]
    NoTenant { subject: String, how: String },
    #[error(
        "{subject} belongs to more than one tenant ({tenants}); the platform maps a person to one"
    )]
    ManyTenants { subject: String, tenants: String },
    #[error("{subject}'s tenant {tenant:?} is not a valid tenant name (a-z, 0-9, '-', '_', '.')")]
    BadTenant { subject: String, tenant: String },
    #[error("{subject} has no role on the platform: they are in none of the groups {groups}")]
    NoRole { subject: String, groups: String },
}

impl Mapping {
    /// The groups in the token.
    fn groups<'c>(&self, claims: &'c Claims) -> Vec<&'c str> {
        claims.strings(&self.groups_claim)
    }

    fn role(&self, groups: &[&str]) -> Option<Role> {
        let member = |names: &[String]| names.iter().any(|name| groups.contains(&name.as_str()));
        if member(&self.admin_groups) {
            Some(Role::Admin)
        } else if member(&self.owner_groups) {
            Some(Role::Owner)
        } else if member(&self.viewer_groups) {
            Some(Role::Viewer)
        } else {
            self.default_role
        }
    }

    fn tenant(&self, claims: &Claims, groups: &[&str]) -> Result<Option<String>, Vec<String>> {
        if let Some(claim) = &self.tenant_claim
            && let Some(tenant) = claims.str(claim).filter(|t| !t.is_empty())
        {
            return Ok(Some(tenant.to_owned()));
        }
        let Some(prefix) = &self.tenant_group_prefix else {
            return Ok(None);
        };
        let role_groups = [&self.admin_groups, &self.owner_groups, &self.viewer_groups];
        let mut tenants: Vec<String> = groups
            .iter()
            // A role group may share the prefix (`shop-owners` beside `shop-acme`): it names no tenant.
            .filter(|group| {
                !role_groups
                    .iter()
                    .any(|names| names.iter().any(|n| n == *group))
            })
            .filter_map(|group| group.strip_prefix(prefix.as_str()))
            .filter(|tenant| !tenant.is_empty())
            .map(str::to_owned)
            .collect();
        tenants.sort();
        tenants.dedup();
        match tenants.len() {
            0 => Ok(None),
            1 => Ok(tenants.pop()),
            _ => Err(tenants),
        }
    }

    fn how_tenants_are_found(&self) -> String {
        match (&self.tenant_claim, &self.tenant_group_prefix) {
            (Some(claim), Some(prefix)) => {
                format!("no {claim:?} claim and no group named {prefix:?} followed by a tenant")
            }
            (Some(claim), None) => format!("no {claim:?} claim"),
            (None, Some(prefix)) => format!("no group named {prefix:?} followed by a tenant"),
            (None, None) => "no tenant mapping is configured".to_owned(),
        }
    }

    /// The identity of a verified token.
    pub fn identity(&self, claims: &Claims) -> Result<Identity, MapError> {
        // Client-credentials tokens of some providers carry the client instead of a subject.
        let subject = claims
            .str("sub")
            .or_else(|| claims.str("client_id"))
            .or_else(|| claims.str("azp"))
            .unwrap_or("(no subject)")
            .to_owned();
        let groups = self.groups(claims);
        let role = self.role(&groups).ok_or_else(|| MapError::NoRole {
            subject: subject.clone(),
            groups: [&self.admin_groups, &self.owner_groups, &self.viewer_groups]
                .into_iter()
                .flatten()
                .map(|g| format!("{g:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let tenant = match self.tenant(claims, &groups) {
            Ok(Some(tenant)) => tenant,
            Ok(None) if role == Role::Admin => self.admin_tenant.clone(),
            Ok(None) => {
                return Err(MapError::NoTenant {
                    subject,
                    how: self.how_tenants_are_found(),
                });
            }
            Err(tenants) => {
                return Err(MapError::ManyTenants {
                    subject,
                    tenants: tenants.join(", "),
                });
            }
        };
        if !tenant::is_valid(&tenant) {
            return Err(MapError::BadTenant { subject, tenant });
        }
        Ok(Identity {
            email: claims.str(&self.email_claim).map(str::to_owned),
            name: subject,
            tenant,
            role,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: serde_json::Value) -> Claims {
        Claims(value.as_object().expect("object").clone())
    }

    fn by_groups() -> Mapping {
        Mapping {
            groups_claim: "groups".into(),
            tenant_group_prefix: Some("shop-".into()),
            admin_groups: vec!["platform-admins".into()],
            owner_groups: vec!["shop-owners".into()],
            viewer_groups: vec!["shop-viewers".into()],
            admin_tenant: "platform".into(),
            email_claim: "email".into(),
            ..Mapping::default()
        }
    }

    #[test]
    fn tenant_and_role_come_from_groups_and_the_highest_role_wins() {
        let mapping = by_groups();
        let alice = mapping
            .identity(&claims(json!({"sub": "u1", "email": "alice@acme.test",
                "groups": ["shop-acme", "shop-viewers", "shop-owners", "unrelated"]})))
            .expect("alice");
        assert_eq!(
            alice,
            Identity {
                name: "u1".into(),
                email: Some("alice@acme.test".into()),
                tenant: "acme".into(),
                role: Role::Owner,
            }
        );
        let bob = mapping
            .identity(&claims(
                json!({"sub": "u2", "groups": ["shop-acme", "shop-viewers"]}),
            ))
            .expect("bob");
        assert_eq!((bob.role, bob.email), (Role::Viewer, None));
        let root = mapping
            .identity(&claims(json!({"sub": "u3", "groups": "platform-admins"})))
            .expect("admin");
        assert_eq!((root.role, root.tenant.as_str()), (Role::Admin, "platform"));
    }

    #[test]
    fn who_cannot_be_mapped_is_told_why() {
        let mapping = by_groups();
        assert!(matches!(
            mapping.identity(&claims(json!({"sub": "u", "groups": ["shop-acme"]}))),
            Err(MapError::NoRole { .. })
        ));
        let no_tenant = mapping
            .identity(&claims(json!({"sub": "u", "groups": ["shop-owners"]})))
            .expect_err("no tenant");
        assert_eq!(
            no_tenant.to_string(),
            "u has no tenant: no group named \"shop-\" followed by a tenant"
        );
        assert!(matches!(
            mapping.identity(&claims(
                json!({"sub": "u", "groups": ["shop-a", "shop-b", "shop-owners"]})
            )),
            Err(MapError::ManyTenants { .. })
        ));
        assert!(matches!(
            mapping.identity(&claims(
                json!({"sub": "u", "groups": ["shop-Acme", "shop-owners"]})
            )),
            Err(MapError::BadTenant { .. })
        ));
    }

    #[test]
    fn a_tenant_claim_and_a_default_role_serve_providers_without_groups() {
        let mapping = Mapping {
            tenant_claim: Some("tenant".into()),
            groups_claim: "groups".into(),
            default_role: Some(Role::Viewer),
            email_claim: "email".into(),
            admin_tenant: "platform".into(),
            ..Mapping::default()
        };
        let machine = mapping
            .identity(&claims(json!({"client_id": "ci-bot", "tenant": "acme"})))
            .expect("machine");
        assert_eq!(
            (machine.name.as_str(), machine.tenant.as_str(), machine.role),
            ("ci-bot", "acme", Role::Viewer)
        );
    }
}
