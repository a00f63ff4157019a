//! Who is calling. Every caller of the provisioner and the status service sends a Kubernetes ServiceAccount token
//! (`authorization: Bearer …`) issued for the platform's audience. A TokenReview says whose token it is; the caller
//! policy says which tenants that ServiceAccount may claim and whether it may use the all-tenants scope. The answer
//! of a review is kept for a short time, so a steady stream of calls costs no API round trip and a revoked token
//! stops working within that time.
//!
//! Tokens are never logged or kept: the cache is keyed by their SHA-256.

use std::{
    collections::{BTreeSet, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use store_platform_proto::{ALL_TENANTS, SCOPE_METADATA_KEY, TENANT_METADATA_KEY};
use tonic::{Status, metadata::MetadataMap};

use crate::{
    Shutdown,
    kubernetes::{is_dns_label, is_dns_subdomain},
    tenant::{self, Caller},
    watched_file,
};

pub use store_platform_proto::TOKEN_AUDIENCE as DEFAULT_AUDIENCE;

/// Rejections are remembered for at most this long, so a ServiceAccount created just after a refused call can call
/// soon, while a flood of bad tokens still costs one review each per period.
const MAX_REJECTION_TTL: Duration = Duration::from_secs(5);

/// Reviews kept at most; past this, expired ones are dropped and, if that is not enough, all of them.
const MAX_CACHED: usize = 4096;

/// How callers are authenticated and authorized, shared by the provisioner and the status service.
#[derive(Clone, Debug, clap::Args)]
pub struct AuthArgs {
    /// The caller policy: a JSON file (the chart's `callers` ConfigMap) naming the ServiceAccounts that may call
    /// and what they may claim. Re-read when it changes; a broken edit keeps the policy in use.
    #[arg(long, env = "CALLER_POLICY")]
    pub caller_policy: PathBuf,

    /// How often the caller policy file is checked for changes.
    #[arg(long, env = "CALLER_POLICY_RELOAD_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub caller_policy_reload_interval: Duration,

    /// The audience callers' tokens must be issued for (`kubectl create token SA --audience …`).
    #[arg(long, env = "TOKEN_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub token_audience: String,

    /// How long a TokenReview's answer is trusted: a revoked token or a deleted ServiceAccount stops working
    /// within this time. Rejections are kept for at most 5 s.
    #[arg(long, env = "TOKEN_CACHE_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub token_cache_ttl: Duration,
}

/// What one ServiceAccount may claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// `namespace/name`, for messages and the audit log.
    pub account: String,
    /// The tenants it may act for; `None` is any tenant (a caller that authenticates people itself).
    pub tenants: Option<BTreeSet<String>>,
    /// Whether it may send the all-tenants scope.
    pub all_tenants_scope: bool,
}

impl Grant {
    fn may_act_for(&self, tenant: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|only| only.contains(tenant))
    }
}

/// The caller policy: the ServiceAccounts that may call, by their Kubernetes username.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    by_username: HashMap<String, Grant>,
}

/// A caller policy that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read the caller policy {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the caller policy is not valid JSON of the expected shape: {0}")]
    Shape(#[from] serde_json::Error),
    #[error("callers[{index}].{field}: {reason}")]
    Entry {
        index: usize,
        field: &'static str,
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyFile {
    callers: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Entry {
    service_account: String,
    #[serde(default)]
    tenants: Vec<String>,
    #[serde(default)]
    any_tenant: bool,
    #[serde(default)]
    all_tenants_scope: bool,
}

/// The Kubernetes username of the ServiceAccount `namespace/name`.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

impl Policy {
    /// Parses a policy file:
    ///
    /// ```json
    /// {"callers": [
    ///   {"serviceAccount": "store-platform/store-platform-gateway", "anyTenant": true, "allTenantsScope": true},
    ///   {"serviceAccount": "billing/invoicer", "tenants": ["acme", "globex"]}
    /// ]}
    /// ```
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile = serde_json::from_str(text)?;
        let mut by_username = HashMap::new();
        for (index, entry) in file.callers.into_iter().enumerate() {
            let fail = |field, reason: String| PolicyError::Entry {
                index,
                field,
                reason,
            };
            let (namespace, name) = entry
                .service_account
                .split_once('/')
                .filter(|(namespace, name)| is_dns_label(namespace) && is_dns_subdomain(name))
                .ok_or_else(|| {
                    fail(
                        "serviceAccount",
                        format!(
                            "{:?} is not `<namespace>/<name>` of a ServiceAccount",
                            entry.service_account
                        ),
                    )
                })?;
            if let Some(bad) = entry.tenants.iter().find(|t| !tenant::is_valid(t)) {
                return Err(fail(
                    "tenants",
                    format!("{bad:?} is not a tenant name (a lowercase label value)"),
                ));
            }
            let tenants = match (entry.any_tenant, entry.tenants.is_empty()) {
                (true, true) => None,
                (false, false) => Some(entry.tenants.into_iter().collect()),
                (true, false) => {
                    return Err(fail(
                        "tenants",
                        "give either `tenants` or `anyTenant: true`, not both".into(),
                    ));
                }
                (false, true) => {
                    return Err(fail(
                        "tenants",
                        "the caller may act for no tenant: list its `tenants` or set `anyTenant: true`"
                            .into(),
                    ));
                }
            };
            let grant = Grant {
                account: format!("{namespace}/{name}"),
                tenants,
                all_tenants_scope: entry.all_tenants_scope,
            };
            if by_username
                .insert(service_account_username(namespace, name), grant)
                .is_some()
            {
                return Err(fail(
                    "serviceAccount",
                    format!("{} appears twice", entry.service_account),
                ));
            }
        }
        Ok(Self { by_username })
    }

    pub fn len(&self) -> usize {
        self.by_username.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_username.is_empty()
    }

    fn grant(&self, username: &str) -> Option<&Grant> {
        self.by_username.get(username)
    }
}

/// What the API server said of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Review {
    /// The token is valid for the audience and belongs to `username`.
    Authenticated { username: String },
    /// It is not (expired, revoked, another audience, a deleted ServiceAccount…), in the API server's words.
    Rejected { reason: String },
}

/// Reviews a token; the real one asks the API server.
pub type Reviewer =
    Arc<dyn Fn(String) -> BoxFuture<'static, Result<Review, kube::Error>> + Send + Sync>;

/// A reviewer that sends a TokenReview for `audience` with `client`.
pub fn token_reviewer(client: kube::Client, audience: String) -> Reviewer {
    Arc::new(move |token| {
        let (client, audience) = (client.clone(), audience.clone());
        Box::pin(async move {
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token),
                    audiences: Some(vec![audience.clone()]),
                },
                ..TokenReview::default()
            };
            let reviewed = kube::Api::<TokenReview>::all(client)
                .create(&kube::api::PostParams::default(), &review)
                .await?;
            let status = reviewed.status.unwrap_or_default();
            // An API server that ignores audiences answers with none; only an answer naming ours counts.
            let for_us = status
                .audiences
                .as_ref()
                .is_some_and(|audiences| audiences.contains(&audience));
            Ok(match (status.authenticated, status.user) {
                (Some(true), Some(user)) if for_us => Review::Authenticated {
                    username: user.username.unwrap_or_default(),
                },
                (Some(true), _) => Review::Rejected {
                    reason: format!("the token is not issued for the audience {audience:?}"),
                },
                _ => Review::Rejected {
                    reason: status
                        .error
                        .filter(|e| !e.is_empty())
                        .unwrap_or_else(|| "the token is not valid".to_owned()),
                },
            })
        })
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabel {
    code: &'static str,
}

#[derive(Debug, Default)]
struct AuthMetrics {
    reviews: Family<OutcomeLabel, Counter>,
    refused: Family<RefusalLabel, Counter>,
}

/// One token's review: done once, by whichever call gets there first, while the others wait for it.
#[derive(Debug, Default)]
struct Slot {
    review: tokio::sync::OnceCell<(Review, Instant)>,
}

impl Slot {
    /// Whether this slot still answers: its review is in flight or not yet expired.
    fn fresh(&self, now: Instant) -> bool {
        self.review.get().is_none_or(|(_, until)| *until > now)
    }
}

struct Inner {
    reviewer: Reviewer,
    audience: String,
    ttl: Duration,
    policy: RwLock<Arc<Policy>>,
    cache: Mutex<HashMap<[u8; 32], Arc<Slot>>>,
    metrics: AuthMetrics,
}

/// Authenticates and authorizes each call. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("audience", &self.inner.audience)
            .field("ttl", &self.inner.ttl)
            .finish_non_exhaustive()
    }
}

/// The bearer token of `metadata`, if it carries one.
fn bearer(metadata: &MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Authenticator {
    pub fn new(reviewer: Reviewer, audience: &str, ttl: Duration, policy: Policy) -> Self {
        Self {
            inner: Arc::new(Inner {
                reviewer,
                audience: audience.to_owned(),
                ttl,
                policy: RwLock::new(Arc::new(policy)),
                cache: Mutex::default(),
                metrics: AuthMetrics::default(),
            }),
        }
    }

    /// Loads the policy named in `args` (an unusable file is an error), reviews tokens with `client`, and re-reads
    /// the policy whenever it changes until `shutdown`.
    pub async fn from_args(
        args: &AuthArgs,
        client: kube::Client,
        shutdown: Shutdown,
    ) -> Result<Self, PolicyError> {
        let auth = Self::new(
            token_reviewer(client, args.token_audience.clone()),
            &args.token_audience,
            args.token_cache_ttl,
            Policy::default(),
        );
        let (path, reloading) = (args.caller_policy.clone(), auth.clone());
        watched_file::watch(
            path.clone(),
            "caller policy",
            args.caller_policy_reload_interval,
            shutdown,
            |_, text| Policy::parse(text),
            move |policy: Policy| {
                if policy.is_empty() {
                    tracing::warn!(path = %path.display(), "the caller policy names no caller: every call will be refused");
                }
                tracing::info!(path = %path.display(), callers = policy.len(), "caller policy in use");
                reloading.set_policy(policy);
            },
        )
        .await?;
        Ok(auth)
    }

    /// Replaces the policy; calls from now on are judged by it.
    pub fn set_policy(&self, policy: Policy) {
        *self
            .inner
            .policy
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(policy);
    }

    fn policy(&self) -> Arc<Policy> {
        self.inner
            .policy
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Exports `token_reviews_total{outcome}` and `calls_refused_total{code}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "token_reviews",
            "TokenReviews sent to the API server, by outcome (authenticated, rejected, error)",
            self.inner.metrics.reviews.clone(),
        );
        registry.register(
            "calls_refused",
            "Calls refused by authentication or the caller policy, by gRPC code",
            self.inner.metrics.refused.clone(),
        );
    }

    /// The caller of a call to `method`: its token reviewed (or remembered), its ServiceAccount looked up in the
    /// policy, and the tenant and scope it claims checked against what it may claim. A refusal is logged as an audit
    /// line (never with the token).
    pub async fn caller(&self, metadata: &MetadataMap, method: &str) -> Result<Caller, Status> {
        let refuse = |status: Status, account: &str| {
            let code = match status.code() {
                tonic::Code::Unauthenticated => "UNAUTHENTICATED",
                tonic::Code::PermissionDenied => "PERMISSION_DENIED",
                tonic::Code::Unavailable => "UNAVAILABLE",
                _ => "INVALID_ARGUMENT",
            };
            self.inner
                .metrics
                .refused
                .get_or_create(&RefusalLabel { code })
                .inc();
            tracing::warn!(
                target: "audit",
                method,
                caller = account,
                tenant = metadata.get(TENANT_METADATA_KEY).and_then(|v| v.to_str().ok()).unwrap_or(""),
                code,
                reason = status.message(),
                "call refused"
            );
            status
        };
        let Some(token) = bearer(metadata) else {
            return Err(refuse(
                Status::unauthenticated(format!(
                    "authorization: send `Bearer <token>`, a ServiceAccount token for the audience {:?} \
                     (kubectl create token <serviceaccount> --audience {})",
                    self.inner.audience, self.inner.audience
                )),
                "",
            ));
        };
        let username = match self.review(token).await {
            Ok(Review::Authenticated { username }) => username,
            Ok(Review::Rejected { reason }) => {
                let status = Status::unauthenticated(format!(
                    "authorization: the token is not accepted for the audience {:?}: {reason}",
                    self.inner.audience
                ));
                return Err(refuse(status, ""));
            }
            Err(error) => {
                let status = Status::unavailable(format!(
                    "authorization: the token cannot be checked now (TokenReview failed: {error})"
                ));
                return Err(refuse(status, ""));
            }
        };
        let policy = self.policy();
        let Some(grant) = policy.grant(&username) else {
            let status = Status::permission_denied(format!(
                "authorization: {username} is not among the callers the platform's policy allows"
            ));
            return Err(refuse(status, &username));
        };
        let tenant = match metadata.get(TENANT_METADATA_KEY).map(|v| v.to_str()) {
            Some(Ok(tenant)) if tenant::is_valid(tenant) => tenant.to_owned(),
            Some(_) => {
                let status = tenant::invalid();
                return Err(refuse(status, &grant.account));
            }
            None => match grant
                .tenants
                .as_ref()
                .map(|only| only.iter().collect::<Vec<_>>())
            {
                Some(only) if only.len() == 1 => only[0].clone(),
                _ => {
                    let status = Status::invalid_argument(format!(
                        "{TENANT_METADATA_KEY}: required: name the tenant this call acts for"
                    ));
                    return Err(refuse(status, &grant.account));
                }
            },
        };
        if !grant.may_act_for(&tenant) {
            let status = Status::permission_denied(format!(
                "{TENANT_METADATA_KEY}: ServiceAccount {} may not act for tenant {tenant:?}",
                grant.account
            ));
            return Err(refuse(status, &grant.account));
        }
        let all_tenants = match metadata.get(SCOPE_METADATA_KEY) {
            None => false,
            Some(scope) if scope == ALL_TENANTS && grant.all_tenants_scope => true,
            Some(scope) if scope == ALL_TENANTS => {
                let status = Status::permission_denied(format!(
                    "{SCOPE_METADATA_KEY}: ServiceAccount {} may not use the {ALL_TENANTS} scope",
                    grant.account
                ));
                return Err(refuse(status, &grant.account));
            }
            Some(_) => {
                let status = Status::invalid_argument(format!(
                    "{SCOPE_METADATA_KEY}: the only scope is {ALL_TENANTS:?}"
                ));
                return Err(refuse(status, &grant.account));
            }
        };
        Ok(Caller {
            tenant,
            all_tenants,
        })
    }

    /// The review of `token`: remembered, or asked once however many calls ask at the same time.
    async fn review(&self, token: &str) -> Result<Review, kube::Error> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        let slot = {
            let mut cache = self
                .inner
                .cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match cache.get(&key) {
                Some(slot) if slot.fresh(now) => slot.clone(),
                _ => {
                    if cache.len() >= MAX_CACHED {
                        cache.retain(|_, slot| slot.fresh(now));
                        if cache.len() >= MAX_CACHED {
                            cache.clear();
                        }
                    }
                    let slot = Arc::new(Slot::default());
                    cache.insert(key, slot.clone());
                    slot
                }
            }
        };
        let (review, _) = slot
            .review
            .get_or_try_init(|| async {
                let result = (self.inner.reviewer)(token.to_owned()).await;
                let outcome = match &result {
                    Ok(Review::Authenticated { .. }) => "authenticated",
                    Ok(Review::Rejected { .. }) => "rejected",
                    Err(_) => "error",
                };
                self.inner
                    .metrics
                    .reviews
                    .get_or_create(&OutcomeLabel { outcome })
                    .inc();
                let review = result?;
                let ttl = match review {
                    Review::Authenticated { .. } => self.inner.ttl,
                    Review::Rejected { .. } => self.inner.ttl.min(MAX_REJECTION_TTL),
                };
                Ok::<_, kube::Error>((review, Instant::now() + ttl))
            })
            .await?;
        Ok(review.clone())
    }
}

impl From<watched_file::ReadError> for PolicyError {
    fn from(error: watched_file::ReadError) -> Self {
        Self::Read {
            path: error.path,
            source: error.source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const POLICY: &str = r#"{"callers": [
        {"serviceAccount": "store-platform/gateway", "anyTenant": true, "allTenantsScope": true},
        {"serviceAccount": "billing/invoicer", "tenants": ["acme", "globex"]},
        {"serviceAccount": "shop/acme-sync", "tenants": ["acme"]}
    ]}"#;

    /// A reviewer that knows `<namespace>:<name>` tokens as those ServiceAccounts' and counts its reviews.
    fn counting_reviewer(reviews: Arc<AtomicUsize>) -> Reviewer {
        Arc::new(move |token: String| {
            let reviews = reviews.clone();
            Box::pin(async move {
                reviews.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(match token.split_once(':') {
                    Some((namespace, name)) if !token.starts_with("bad") => Review::Authenticated {
                        username: service_account_username(namespace, name),
                    },
                    _ => Review::Rejected {
                        reason: "token has expired".into(),
                    },
                })
            })
        })
    }

    fn auth(ttl: Duration) -> (Authenticator, Arc<AtomicUsize>) {
        let reviews = Arc::new(AtomicUsize::new(0));
        let auth = Authenticator::new(
            counting_reviewer(reviews.clone()),
            DEFAULT_AUDIENCE,
            ttl,
            Policy::parse(POLICY).expect("valid policy"),
        );
        (auth, reviews)
    }

    fn metadata(token: Option<&str>, tenant: Option<&str>, scope: bool) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        if let Some(token) = token {
            let value = format!("Bearer {token}");
            metadata.insert("authorization", value.parse().expect("ascii"));
        }
        if let Some(tenant) = tenant {
            metadata.insert(TENANT_METADATA_KEY, tenant.parse().expect("ascii"));
        }
        if scope {
            metadata.insert(SCOPE_METADATA_KEY, ALL_TENANTS.parse().expect("ascii"));
        }
        metadata
    }

    #[tokio::test]
    async fn each_caller_claims_only_what_the_policy_grants_it() {
        let (auth, _) = auth(Duration::from_secs(30));
        let call = |token, tenant, scope| {
            let auth = auth.clone();
            async move {
                auth.caller(&metadata(token, tenant, scope), "ListStores")
                    .await
            }
        };
        let gateway = call(Some("store-platform:gateway"), Some("anyone"), true)
            .await
            .expect("the gateway names any tenant, with the scope");
        assert_eq!(gateway.tenant, "anyone");
        assert!(gateway.all_tenants);

        let invoicer = call(Some("billing:invoicer"), Some("globex"), false)
            .await
            .expect("one of its tenants");
        assert_eq!(invoicer, Caller::tenant("globex"));
        let denied = call(Some("billing:invoicer"), Some("initech"), false)
            .await
            .expect_err("another tenant");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(
            denied.message().starts_with(TENANT_METADATA_KEY),
            "{denied:?}"
        );
        assert!(denied.message().contains("billing/invoicer"), "{denied:?}");
        let scope = call(Some("billing:invoicer"), Some("acme"), true)
            .await
            .expect_err("the scope");
        assert_eq!(scope.code(), tonic::Code::PermissionDenied);
        assert!(scope.message().starts_with(SCOPE_METADATA_KEY), "{scope:?}");
        let which = call(Some("billing:invoicer"), None, false)
            .await
            .expect_err("two tenants: it must say which");
        assert_eq!(which.code(), tonic::Code::InvalidArgument);

        let single = call(Some("shop:acme-sync"), None, false)
            .await
            .expect("a caller of one tenant need not name it");
        assert_eq!(single, Caller::tenant("acme"));

        let stranger = call(Some("other:app"), Some("acme"), false)
            .await
            .expect_err("a ServiceAccount the policy does not name");
        assert_eq!(stranger.code(), tonic::Code::PermissionDenied);
        assert!(
            stranger
                .message()
                .contains("system:serviceaccount:other:app")
        );

        for (token, code) in [
            (None, tonic::Code::Unauthenticated),
            (Some("bad:token"), tonic::Code::Unauthenticated),
        ] {
            let refused = call(token, Some("acme"), true).await.expect_err("refused");
            assert_eq!(refused.code(), code, "{token:?}");
            assert!(
                refused.message().starts_with("authorization: "),
                "{refused:?}"
            );
        }
        let invalid = call(Some("store-platform:gateway"), Some("Not A Tenant"), false)
            .await
            .expect_err("invalid tenant");
        assert_eq!(invalid.code(), tonic::Code::InvalidArgument);

        let mut registry = Registry::default();
        auth.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(r#"calls_refused_total{code="PERMISSION_DENIED"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"calls_refused_total{code="UNAUTHENTICATED"} 2"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_review_is_asked_once_per_token_and_period_however_many_calls_ask() {
        let (auth, reviews) = auth(Duration::from_millis(300));
        let calls = (0..50).map(|_| {
            let auth = auth.clone();
            async move {
                auth.caller(
                    &metadata(Some("billing:invoicer"), Some("acme"), false),
                    "GetStore",
                )
                .await
            }
        });
        for result in futures::future::join_all(calls).await {
            result.expect("allowed");
        }
        assert_eq!(
            reviews.load(Ordering::SeqCst),
            1,
            "concurrent calls share one review"
        );
        auth.caller(
            &metadata(Some("billing:invoicer"), Some("acme"), false),
            "GetStore",
        )
        .await
        .expect("cached");
        assert_eq!(reviews.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(350)).await;
        auth.caller(
            &metadata(Some("billing:invoicer"), Some("acme"), false),
            "GetStore",
        )
        .await
        .expect("reviewed again");
        assert_eq!(
            reviews.load(Ordering::SeqCst),
            2,
            "reviewed again once the period is over"
        );
    }

    #[tokio::test]
    async fn a_new_policy_applies_to_the_next_call() {
        let (auth, _) = auth(Duration::from_secs(30));
        let acme = metadata(Some("shop:acme-sync"), Some("acme"), false);
        auth.caller(&acme, "ListStores").await.expect("allowed");
        auth.set_policy(
            Policy::parse(
                r#"{"callers": [{"serviceAccount": "shop/acme-sync", "tenants": ["other"]}]}"#,
            )
            .expect("valid"),
        );
        let denied = auth
            .caller(&acme, "ListStores")
            .await
            .expect_err("no longer");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    }

    #[tokio::test]
    async fn the_policy_file_is_reloaded_and_a_broken_edit_keeps_the_policy_in_use() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("callers.json");
        std::fs::write(&path, POLICY).expect("write");
        let args = AuthArgs {
            caller_policy: path.clone(),
            caller_policy_reload_interval: Duration::from_millis(20),
            token_audience: DEFAULT_AUDIENCE.into(),
            token_cache_ttl: Duration::from_secs(30),
        };
        // A client for an address nothing listens on: this test reviews no token.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
        let client = kube::Client::try_from(config).expect("client");
        let shutdown = Shutdown::new();
        let auth = Authenticator::from_args(&args, client, shutdown.clone())
            .await
            .expect("load");
        assert_eq!(auth.policy().len(), 3);
        std::fs::write(&path, r#"{"callers": []}"#).expect("write");
        let reloaded = async {
            while !auth.policy().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), reloaded)
            .await
            .expect("reloaded");
        std::fs::write(&path, "{broken").expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(auth.policy().is_empty(), "still the last good policy");
        shutdown.trigger();
    }

    #[test]
    fn a_policy_that_cannot_mean_what_it_says_is_refused_naming_the_entry() {
        for (text, index, field) in [
            (
                r#"{"callers": [{"serviceAccount": "gateway", "anyTenant": true}]}"#,
                0,
                "serviceAccount",
            ),
            (
                r#"{"callers": [{"serviceAccount": "a/b", "anyTenant": true}, {"serviceAccount": "a/b", "anyTenant": true}]}"#,
                1,
                "serviceAccount",
            ),
            (r#"{"callers": [{"serviceAccount": "a/b"}]}"#, 0, "tenants"),
            (
                r#"{"callers": [{"serviceAccount": "a/b", "tenants": ["Acme"]}]}"#,
                0,
                "tenants",
            ),
            (
                r#"{"callers": [{"serviceAccount": "a/b", "tenants": ["acme"], "anyTenant": true}]}"#,
                0,
                "tenants",
            ),
        ] {
            match Policy::parse(text) {
                Err(PolicyError::Entry {
                    index: i, field: f, ..
                }) => {
                    assert_eq!((i, f), (index, field), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let typo = Policy::parse(r#"{"callers": [{"serviceAccount": "a/b", "allTenants": true}]}"#);
        assert!(
            matches!(typo, Err(PolicyError::Shape(_))),
            "unknown fields are refused"
        );
    }
}
