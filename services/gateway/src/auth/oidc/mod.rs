//! The gateway's OpenID Connect provider: its discovery document, its signing keys, and the check of the JWTs it
//! issues (access tokens for machines; ID tokens of people signing in).
//!
//! The provider is looked up in the background: a gateway starts and serves API tokens while its provider is
//! unreachable, and JWT calls answer UNAVAILABLE until the provider answers. Keys are fetched again every hour,
//! and at once when a token names a key the gateway has not seen (the provider rotated its keys), at most once per
//! `jwks_min_refresh`, so tokens with made-up key ids cannot make the gateway hammer the provider.

pub mod http;
pub mod jwt;
pub mod mapping;

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::Deserialize;
use store_platform_runtime::Shutdown;

use self::{
    http::Http,
    jwt::{Claims, Expectations, KeySet, TokenError, Unverified},
    mapping::Mapping,
};
use crate::auth::{AuthError, Identity};

/// How the gateway uses its provider.
#[derive(Clone, Debug)]
pub struct Config {
    /// The issuer, exactly as the provider's tokens name it (its discovery document is under it).
    pub issuer: String,
    /// The dashboard's client id: the audience of ID tokens.
    pub client_id: String,
    /// The audiences a bearer JWT may be for.
    pub audiences: Vec<String>,
    pub mapping: Mapping,
    /// Clock difference allowed with the provider.
    pub skew: Duration,
    /// The least time between two key fetches caused by unknown key ids.
    pub jwks_min_refresh: Duration,
    /// Keys are fetched again after this long in any case.
    pub jwks_max_age: Duration,
}

/// The endpoints the discovery document names.
#[derive(Clone, Debug, Deserialize)]
pub struct Endpoints {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// A sign-in's request to the provider.
#[derive(Debug)]
pub struct Authorize<'a> {
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub state: &'a str,
    pub nonce: &'a str,
    pub verifier: &'a str,
}

/// What the token endpoint answered.
#[derive(Clone, Default, Deserialize)]
pub struct Tokens {
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

/// Why the token endpoint gave no tokens.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It could not be asked (try again later).
    #[error("the identity provider cannot be reached: {0}")]
    Unreachable(String),
    /// It said no (a used or expired code, a revoked refresh token).
    #[error("the identity provider refused: {0}")]
    Denied(String),
}

#[derive(Debug, Default)]
struct Known {
    endpoints: Option<Arc<Endpoints>>,
    keys: Arc<KeySet>,
    fetched: Option<Instant>,
    /// Why the last attempt to reach the provider failed.
    error: Option<String>,
}

/// The most bearer JWTs remembered as verified; past it the memory starts afresh.
const REMEMBERED_TOKENS: usize = 10_000;

/// A bearer JWT already verified: who it is, until when.
#[derive(Debug)]
struct Verified {
    identity: Identity,
    expiry: i64,
}

/// The provider, shared by every request.
#[derive(Debug)]
pub struct Provider {
    pub config: Config,
    http: Http,
    known: RwLock<Known>,
    /// One fetch at a time; the others wait for its result.
    fetching: tokio::sync::Mutex<()>,
    /// Bearer JWTs verified with the current keys, by their SHA-256: a machine sends the same token with every call
    /// until it expires, and its signature is checked once. Forgotten when the keys change.
    verified: RwLock<std::collections::HashMap<[u8; 32], Arc<Verified>>>,
}

/// Seconds since the Unix epoch.
pub fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Provider {
    pub fn new(config: Config, http: Http) -> Arc<Self> {
        Arc::new(Self {
            config,
            http,
            known: RwLock::new(Known::default()),
            fetching: tokio::sync::Mutex::new(()),
            verified: RwLock::new(std::collections::HashMap::new()),
        })
    }

    fn known(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        self.known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The provider's endpoints, once discovered.
    pub fn endpoints(&self) -> Option<Arc<Endpoints>> {
        self.known().endpoints.clone()
    }

    /// The provider's endpoints, reading them now if the provider has not been reached yet.
    pub async fn endpoints_now(&self) -> Result<Arc<Endpoints>, String> {
        if let Some(endpoints) = self.endpoints() {
            return Ok(endpoints);
        }
        self.refresh(self.config.jwks_min_refresh).await?;
        self.endpoints()
            .ok_or_else(|| "the provider has not been reached yet".to_owned())
    }

    /// Reads the discovery document (once) and the keys.
    async fn fetch(&self) -> Result<(), String> {
        let endpoints = match self.endpoints() {
            Some(endpoints) => endpoints,
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer.trim_end_matches('/')
                );
                let body = self.http.get_json(&url).await?;
                let endpoints: Endpoints = serde_json::from_slice(&body)
                    .map_err(|e| format!("{url} is not a discovery document: {e}"))?;
                if endpoints.issuer != self.config.issuer {
                    return Err(format!(
                        "{url} names the issuer {:?}, not {:?}",
                        endpoints.issuer, self.config.issuer
                    ));
                }
                Arc::new(endpoints)
            }
        };
        let keys = KeySet::parse(&self.http.get_json(&endpoints.jwks_uri).await?)
            .map_err(|e| format!("{}: {e}", endpoints.jwks_uri))?;
        tracing::info!(
            issuer = %self.config.issuer,
            keys = keys.keys.len(),
            "identity provider keys fetched"
        );
        let mut known = self
            .known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        known.endpoints = Some(endpoints);
        if *known.keys != keys {
            // A key may have been withdrawn: what it signed is checked again.
            self.verified
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clear();
        }
        known.keys = Arc::new(keys);
        known.error = None;
        Ok(())
    }

    /// Fetches unless the last fetch was less than `min_age` ago. Concurrent callers share one fetch.
    async fn refresh(&self, min_age: Duration) -> Result<(), String> {
        let started = Instant::now();
        let _one = self.fetching.lock().await;
        let (fetched, error) = {
            let known = self.known();
            (known.fetched, known.error.clone())
        };
        if let Some(fetched) = fetched {
            // Another caller fetched while this one waited, or the last fetch is too recent.
            if fetched >= started || fetched.elapsed() < min_age {
                return error.map_or(Ok(()), Err);
            }
        }
        let result = self.fetch().await;
        let mut known = self
            .known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        known.fetched = Some(Instant::now());
        if let Err(error) = &result {
            tracing::warn!(issuer = %self.config.issuer, %error, "the identity provider cannot be read");
            known.error = Some(error.clone());
        }
        result
    }

    /// Keeps the keys fresh until `shutdown`: at once, then every `jwks_max_age` (every few seconds while the
    /// provider cannot be reached).
    pub fn spawn_refresh(self: &Arc<Self>, shutdown: Shutdown) {
        let provider = Arc::downgrade(self);
        let max_age = self.config.jwks_max_age;
        tokio::spawn(async move {
            let mut retry = Duration::from_secs(1);
            loop {
                let Some(provider) = provider.upgrade() else {
                    return;
                };
                let wait = match provider.refresh(Duration::ZERO).await {
                    Ok(()) => {
                        retry = Duration::from_secs(1);
                        max_age
                    }
                    Err(_) => {
                        retry = (retry * 2).min(Duration::from_secs(30));
                        retry
                    }
                };
                drop(provider);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.wait() => return,
                }
            }
        });
    }

    /// The claims of a token signed by the provider, for `audiences`, its signature and times checked.
    pub async fn verify(&self, token: &str, audiences: &[String]) -> Result<Claims, AuthError> {
        let unverified = Unverified::parse(token).map_err(AuthError::Token)?;
        let kid = unverified.kid.clone();
        let mut keys = self.known().keys.clone();
        if keys.find(kid.as_deref()).is_none() {
            // Not seen yet: the provider may have rotated its keys (or the gateway has not reached it yet).
            let refreshed = self.refresh(self.config.jwks_min_refresh).await;
            keys = self.known().keys.clone();
            if keys.keys.is_empty()
                && let Err(error) = refreshed
            {
                return Err(AuthError::Provider(error));
            }
        }
        let key = keys
            .find(kid.as_deref())
            .ok_or(AuthError::Token(TokenError::UnknownKey))?;
        let claims = unverified.verify(key).map_err(AuthError::Token)?;
        claims
            .check(&Expectations {
                issuer: &self.config.issuer,
                audiences,
                now: now_seconds(),
                skew: self.config.skew.as_secs() as i64,
            })
            .map_err(AuthError::Token)?;
        Ok(claims)
    }

    /// The claims of an ID token for the dashboard's client; `nonce`, when the token answers a sign-in, must be the
    /// one the sign-in sent.
    pub async fn verify_id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<Claims, AuthError> {
        let audiences = [self.config.client_id.clone()];
        let claims = self.verify(token, &audiences).await?;
        // With more than one audience, the token must say it was issued to us (OpenID Connect Core 3.1.3.7).
        if claims.strings("aud").len() > 1 && claims.str("azp") != Some(&self.config.client_id) {
            return Err(AuthError::Token(TokenError::Audience(
                claims.strings("aud").join(", "),
            )));
        }
        if let Some(nonce) = nonce
            && claims.str("nonce") != Some(nonce)
        {
            return Err(AuthError::Token(TokenError::Nonce));
        }
        Ok(claims)
    }

    /// Where to send a browser to sign in (authorization code flow, PKCE with S256).
    pub fn authorize_url(&self, endpoints: &Endpoints, request: &Authorize<'_>) -> String {
        let challenge = {
            use base64::Engine as _;
            use sha2::Digest as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(request.verifier.as_bytes()))
        };
        let scope = request.scopes.join(" ");
        let query = self::http::form_encode(&[
            ("response_type", "code"),
            ("client_id", &self.config.client_id),
            ("redirect_uri", request.redirect_uri),
            ("scope", &scope),
            ("state", request.state),
            ("nonce", request.nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        let separator = if endpoints.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{separator}{query}", endpoints.authorization_endpoint)
    }

    /// Asks the token endpoint, authenticating as the client the way the provider supports.
    async fn token_request(&self, form: &[(&str, &str)], secret: &str) -> Result<Tokens, Refusal> {
        let endpoints = self.endpoints().ok_or_else(|| {
            Refusal::Unreachable(
                self.known()
                    .error
                    .clone()
                    .unwrap_or_else(|| "the provider has not been reached yet".to_owned()),
            )
        })?;
        let methods = &endpoints.token_endpoint_auth_methods_supported;
        let basic = methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic");
        let mut form = form.to_vec();
        if !basic {
            form.push(("client_id", &self.config.client_id));
            form.push(("client_secret", secret));
        }
        let answer = self
            .http
            .post_form(
                &endpoints.token_endpoint,
                &form,
                basic.then_some((self.config.client_id.as_str(), secret)),
            )
            .await
            .map_err(Refusal::Unreachable)?;
        let tokens: Tokens = serde_json::from_slice(&answer.body).map_err(|_| {
            Refusal::Unreachable(format!(
                "the token endpoint answered {} with no JSON",
                answer.status
            ))
        })?;
        if answer.status.is_success() {
            Ok(tokens)
        } else if answer.status.is_server_error() {
            Err(Refusal::Unreachable(format!(
                "the token endpoint answered {}",
                answer.status
            )))
        } else {
            Err(Refusal::Denied(format!(
                "{}{}",
                tokens.error.as_deref().unwrap_or("refused"),
                tokens
                    .error_description
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            )))
        }
    }

    /// Trades a sign-in's code (and its PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        secret: &str,
    ) -> Result<Tokens, Refusal> {
        self.token_request(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ],
            secret,
        )
        .await
    }

    /// New tokens for a session, while the provider allows.
    pub async fn refresh_tokens(
        &self,
        refresh_token: &str,
        secret: &str,
    ) -> Result<Tokens, Refusal> {
        self.token_request(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            secret,
        )
        .await
    }

    /// The identity behind a bearer JWT (a machine's access token, or a person's ID token for the dashboard's
    /// client).
    pub async fn identify_bearer(&self, token: &str) -> Result<Identity, AuthError> {
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = now_seconds();
        let skew = self.config.skew.as_secs() as i64;
        let remembered = self
            .verified
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&digest)
            .cloned();
        if let Some(verified) = remembered {
            if now <= verified.expiry + skew {
                return Ok(verified.identity.clone());
            }
            return Err(AuthError::Token(TokenError::Expired));
        }
        let claims = self.verify(token, &self.config.audiences).await?;
        let identity = self
            .config
            .mapping
            .identity(&claims)
            .map_err(AuthError::Forbidden)?;
        if let Some(expiry) = claims.expiry() {
            let mut verified = self
                .verified
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if verified.len() >= REMEMBERED_TOKENS {
                verified.clear();
            }
            verified.insert(
                digest,
                Arc::new(Verified {
                    identity: identity.clone(),
                    expiry,
                }),
            );
        }
        Ok(identity)
    }
}
