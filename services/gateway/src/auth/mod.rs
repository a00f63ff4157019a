//! Who is calling. Three kinds of credentials reach the gateway, and each ends as the same [`Identity`] with a
//! tenant and a role:
//! - bearer API tokens, for machines, from a file of their hashes ([`tokens`]);
//! - bearer JWTs from the platform's OpenID provider, for machines (client-credentials access tokens) and for tools
//!   that sign in as a person ([`oidc`]);
//! - the dashboard's sign-in session, for people: a cookie naming a session kept server-side ([`sessions`]), with
//!   the page's CSRF token on every call.

pub mod backend;
pub mod oidc;
pub mod sessions;
pub mod tokens;

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use http::HeaderMap;
use store_platform_runtime::{Shutdown, watched_file};
use tonic::Status;

pub use self::{
    backend::BackendToken,
    tokens::{Tokens, TokensError, hash_hex},
};

/// What a caller may do. Higher roles may do everything lower ones may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Sees the tenant's stores, their steps and reasons; changes nothing and reads no credentials.
    Viewer,
    /// Everything for the tenant's stores, credentials included.
    Owner,
    /// Everything, for every tenant's stores.
    Admin,
}

impl Role {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "viewer" => Some(Self::Viewer),
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Owner => "owner",
            Self::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a call comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// For the audit log: the API token's name, or the person's (or machine's) subject at the provider.
    pub name: String,
    /// The person's e-mail address, when the provider gives one.
    pub email: Option<String>,
    /// The tenant its calls act for.
    pub tenant: String,
    pub role: Role,
}

impl Identity {
    /// Sees and manages every tenant's stores.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Why a call is refused before it reaches a backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send `authorization: Bearer <API token or access token>`")]
    Missing,
    #[error("the API token is not valid")]
    Invalid,
    #[error("{0}")]
    Token(oidc::jwt::TokenError),
    #[error("{0}")]
    Forbidden(oidc::mapping::MapError),
    #[error("the identity provider cannot be reached: {0}")]
    Provider(String),
    #[error("JWTs are not accepted: no identity provider is configured")]
    NoProvider,
    #[error("not signed in")]
    NoSession,
    #[error("the sign-in has ended: sign in again")]
    SessionEnded,
    #[error("a call with the session cookie must carry the session's x-csrf-token")]
    Csrf,
    #[error("sessions cannot be read: {0}")]
    Sessions(String),
}

impl AuthError {
    /// The gRPC status the caller gets.
    pub fn status(&self) -> Status {
        match self {
            Self::Forbidden(_) => Status::permission_denied(self.to_string()),
            Self::Provider(_) | Self::Sessions(_) => Status::unavailable(self.to_string()),
            _ => Status::unauthenticated(self.to_string()),
        }
    }
}

/// The bearer credential of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
}

/// The header a cookie-authenticated call carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of the cookie `name`, if the request has it.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Equal, in a time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// People's sessions: where they are kept, and how they are renewed.
#[derive(Debug)]
pub struct SessionAuth {
    pub sessions: Arc<sessions::Sessions>,
    pub provider: Arc<oidc::Provider>,
    /// The file holding the client's secret, read at each use so a rotated Secret takes effect at once.
    pub client_secret_file: Option<PathBuf>,
    /// The session cookie's name.
    pub cookie: String,
    /// One renewal at a time in this replica.
    renewing: tokio::sync::Mutex<()>,
}

impl SessionAuth {
    pub fn new(
        sessions: Arc<sessions::Sessions>,
        provider: Arc<oidc::Provider>,
        client_secret_file: Option<PathBuf>,
        cookie: String,
    ) -> Self {
        Self {
            sessions,
            provider,
            client_secret_file,
            cookie,
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    /// The client's secret (empty for a public client).
    pub fn client_secret(&self) -> Result<String, AuthError> {
        match &self.client_secret_file {
            None => Ok(String::new()),
            Some(path) => std::fs::read_to_string(path)
                .map(|secret| secret.trim().to_owned())
                .map_err(|e| {
                    AuthError::Provider(format!(
                        "cannot read the client secret {}: {e}",
                        path.display()
                    ))
                }),
        }
    }

    /// The session of `cookie`, renewed with the provider's refresh token once its ID token has expired.
    pub async fn session(&self, cookie: &str) -> Result<Arc<sessions::Stored>, AuthError> {
        let unavailable = |e: kube::Error| AuthError::Sessions(e.to_string());
        let stored = self
            .sessions
            .find(cookie)
            .await
            .map_err(unavailable)?
            .ok_or(AuthError::NoSession)?;
        let now = oidc::now_seconds();
        if stored.session.expires > now {
            return Ok(stored);
        }
        let _one = self.renewing.lock().await;
        let stored = self
            .sessions
            .find(cookie)
            .await
            .map_err(unavailable)?
            .ok_or(AuthError::SessionEnded)?;
        if stored.session.expires > now {
            return Ok(stored);
        }
        let end = |error: AuthError| async {
            self.sessions.delete(cookie).await.map_err(unavailable)?;
            Err(error)
        };
        let Some(refresh_token) = stored
            .session
            .refresh_token
            .clone()
            .filter(|_| stored.session.ends > now)
        else {
            return end(AuthError::SessionEnded).await;
        };
        let tokens = match self
            .provider
            .refresh_tokens(&refresh_token, &self.client_secret()?)
            .await
        {
            Ok(tokens) => tokens,
            Err(oidc::Refusal::Unreachable(error)) => return Err(AuthError::Provider(error)),
            Err(oidc::Refusal::Denied(reason)) => {
                tracing::info!(subject = %stored.session.identity.name, %reason, "the provider ended a session");
                return end(AuthError::SessionEnded).await;
            }
        };
        let Some(id_token) = tokens.id_token.clone() else {
            return end(AuthError::SessionEnded).await;
        };
        let claims = self.provider.verify_id_token(&id_token, None).await?;
        // The person's groups may have changed since they signed in: their role and tenant follow.
        let identity = match self.provider.config.mapping.identity(&claims) {
            Ok(identity) => identity,
            Err(error) => return end(AuthError::Forbidden(error)).await,
        };
        let session = sessions::Session {
            identity,
            csrf: stored.session.csrf.clone(),
            expires: claims.expiry().unwrap_or(now).min(stored.session.ends),
            ends: stored.session.ends,
            refresh_token: tokens.refresh_token.or(Some(refresh_token)),
            id_token: Some(id_token),
        };
        match self
            .sessions
            .update(cookie, &stored, session)
            .await
            .map_err(unavailable)?
        {
            sessions::Updated::Done(stored) | sessions::Updated::Lost(Some(stored)) => Ok(stored),
            sessions::Updated::Lost(None) => Err(AuthError::SessionEnded),
        }
    }
}

/// Checks every kind of credential; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Authenticator {
    /// The current API tokens, swapped whole when the file changes.
    tokens: Arc<RwLock<Arc<Tokens>>>,
    provider: Option<Arc<oidc::Provider>>,
    sessions: Option<Arc<SessionAuth>>,
}

impl Authenticator {
    pub fn new(tokens: Tokens) -> Self {
        Self {
            tokens: Arc::new(RwLock::new(Arc::new(tokens))),
            provider: None,
            sessions: None,
        }
    }

    /// Also accepts people's sessions.
    pub fn with_sessions(mut self, sessions: Arc<SessionAuth>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    pub fn sessions(&self) -> Option<&Arc<SessionAuth>> {
        self.sessions.as_ref()
    }

    /// Also accepts JWTs from `provider`.
    pub fn with_provider(mut self, provider: Arc<oidc::Provider>) -> Self {
        self.provider = Some(provider);
        self
    }

    pub fn provider(&self) -> Option<&Arc<oidc::Provider>> {
        self.provider.as_ref()
    }

    fn current(&self) -> Arc<Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn replace(&self, tokens: Tokens) {
        *self
            .tokens
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(tokens);
    }

    /// The identity behind the request: its `authorization: Bearer` header (a JWT from the provider, or an API
    /// token), else its session cookie with the session's CSRF token beside it.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        let Some(token) = bearer(headers) else {
            let Some(auth) = &self.sessions else {
                return Err(AuthError::Missing);
            };
            let cookie = cookie(headers, &auth.cookie).ok_or(AuthError::Missing)?;
            let stored = auth.session(cookie).await?;
            let csrf = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !same_secret(csrf, &stored.session.csrf) {
                return Err(AuthError::Csrf);
            }
            return Ok(stored.session.identity.clone());
        };
        if oidc::jwt::looks_like_jwt(token) {
            let provider = self.provider.as_ref().ok_or(AuthError::NoProvider)?;
            return provider.identify_bearer(token).await;
        }
        self.current()
            .identify(token)
            .cloned()
            .ok_or(AuthError::Invalid)
    }

    /// Loads `path` now (an unusable file is an error), then re-reads it every `interval` until `shutdown`. A
    /// changed file that cannot be used is logged and the tokens in use are kept.
    pub async fn watch_file(
        path: PathBuf,
        interval: Duration,
        shutdown: Shutdown,
    ) -> Result<Self, TokensError> {
        let authenticator = Self::new(Tokens::default());
        let reloading = authenticator.clone();
        watched_file::watch(
            path.clone(),
            "API tokens file",
            interval,
            shutdown,
            |_, text| Tokens::parse(text),
            move |tokens: Tokens| {
                if tokens.is_empty() {
                    tracing::warn!(path = %path.display(), "the API tokens file holds no token");
                }
                tracing::info!(path = %path.display(), tokens = tokens.len(), "API tokens in use");
                reloading.replace(tokens);
            },
        )
        .await?;
        Ok(authenticator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value.parse().expect("ascii"));
        headers
    }

    #[tokio::test]
    async fn a_token_maps_to_its_tenant_and_only_its_hash_is_stored() {
        let file = format!(
            "# comment\n\nalice acme {}\nops platform {} admin\n",
            hash_hex("alice-secret"),
            hash_hex("ops-secret").to_uppercase()
        );
        let auth = Authenticator::new(Tokens::parse(&file).expect("valid"));
        let alice = auth
            .authenticate(&headers("Bearer alice-secret"))
            .await
            .expect("alice");
        assert_eq!(
            alice,
            Identity {
                name: "alice".into(),
                email: None,
                tenant: "acme".into(),
                role: Role::Owner,
            }
        );
        assert_eq!(
            auth.authenticate(&headers("bearer ops-secret"))
                .await
                .expect("ops")
                .role,
            Role::Admin
        );
        assert_eq!(
            auth.authenticate(&headers("Bearer wrong")).await,
            Err(AuthError::Invalid)
        );
        assert_eq!(
            auth.authenticate(&headers("Basic alice-secret")).await,
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.authenticate(&HeaderMap::new()).await,
            Err(AuthError::Missing)
        );
        assert!(!file.contains("alice-secret"));
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let good = hash_hex("t");
        for (text, line) in [
            ("alice acme".to_owned(), 1),
            (format!("alice Acme {good}"), 1),
            ("alice acme 1234".to_owned(), 1),
            (format!("a acme {good}\nb acme {good}"), 2),
            (format!("alice acme {good} root"), 1),
            (format!("alice acme {good} viewer extra"), 1),
        ] {
            match Tokens::parse(&text) {
                Err(TokensError::Line { line: got, .. }) => assert_eq!(got, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn the_file_is_reloaded_when_it_changes_and_a_broken_edit_keeps_the_old_tokens() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("tokens");
        std::fs::write(&path, format!("a acme {}\n", hash_hex("one"))).expect("write");
        let shutdown = Shutdown::new();
        let auth =
            Authenticator::watch_file(path.clone(), Duration::from_millis(20), shutdown.clone())
                .await
                .expect("load");
        assert!(auth.authenticate(&headers("Bearer one")).await.is_ok());

        std::fs::write(&path, format!("b acme {}\n", hash_hex("two"))).expect("write");
        let reloaded = async {
            while auth.authenticate(&headers("Bearer two")).await.is_err() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), reloaded)
            .await
            .expect("reloaded");
        assert_eq!(
            auth.authenticate(&headers("Bearer one")).await,
            Err(AuthError::Invalid)
        );

        std::fs::write(&path, "broken").expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(auth.authenticate(&headers("Bearer two")).await.is_ok());
        shutdown.trigger();
    }

    #[tokio::test]
    async fn the_backend_token_follows_its_file_and_an_emptied_file_keeps_the_last() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        assert!(
            BackendToken::watch_file(path.clone(), Duration::from_millis(20), Shutdown::new())
                .await
                .is_err(),
            "a missing token file is an error at start"
        );
        std::fs::write(&path, "first\n").expect("write");
        let shutdown = Shutdown::new();
        let token =
            BackendToken::watch_file(path.clone(), Duration::from_millis(20), shutdown.clone())
                .await
                .expect("load");
        assert_eq!(token.header(), "Bearer first");
        assert!(token.header().is_sensitive());
        std::fs::write(&path, "second").expect("write");
        let refreshed = async {
            while token.header() != "Bearer second" {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), refreshed)
            .await
            .expect("refreshed");
        std::fs::write(&path, "").expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(token.header(), "Bearer second");
        shutdown.trigger();
    }
}
