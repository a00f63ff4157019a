//! Bearer API tokens. The tokens file holds one token per line, `<name> <tenant> <sha256 of the token, hex>
//! [admin]`, so the gateway never stores a token itself; it is re-read when it changes (a Kubernetes Secret mounted
//! as a file changes in place).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use http::HeaderMap;
use sha2::{Digest as _, Sha256};
use store_platform_runtime::{Shutdown, tenant, watched_file};

/// Who a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The token's name, for the audit log.
    pub name: String,
    /// The tenant its calls act for.
    pub tenant: String,
    /// Sees and manages every tenant's stores.
    pub admin: bool,
}

/// A tokens file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
}

/// The tokens, by the SHA-256 of the token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Identity>,
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The SHA-256 of `token`, as the tokens file holds it.
pub fn hash_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Tokens {
    /// Parses a tokens file. Blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Self, TokensError> {
        let mut by_hash = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let fail = |reason: &str| TokensError::Line {
                line: line_no,
                reason: reason.to_owned(),
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (name, tenant_name, hash, admin) = match fields.as_slice() {
                [name, tenant_name, hash] => (name, tenant_name, hash, false),
                [name, tenant_name, hash, "admin"] => (name, tenant_name, hash, true),
                _ => return Err(fail("expected `<name> <tenant> <sha256 hex> [admin]`")),
            };
            if !tenant::is_valid(tenant_name) {
                return Err(fail(
                    "the tenant must be a lowercase label value (a-z, 0-9, '-', '_', '.')",
                ));
            }
            let hash = hex32(&hash.to_ascii_lowercase())
                .ok_or_else(|| fail("the hash must be 64 hex digits (sha256sum of the token)"))?;
            let identity = Identity {
                name: (*name).to_owned(),
                tenant: (*tenant_name).to_owned(),
                admin,
            };
            if by_hash.insert(hash, identity).is_some() {
                return Err(fail("the same token appears twice"));
            }
        }
        Ok(Self { by_hash })
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The identity of `token`. Only its hash is compared, so the lookup's timing says nothing about the token.
    pub fn identify(&self, token: &str) -> Option<&Identity> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_hash.get(&hash)
    }
}

/// Why a request is not authenticated (the gateway answers UNAUTHENTICATED and forwards nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send `authorization: Bearer <API token>`")]
    Missing,
    #[error("the API token is not valid")]
    Invalid,
}

/// The current tokens, swapped whole when the file changes.
#[derive(Clone, Debug, Default)]
pub struct Authenticator {
    tokens: Arc<RwLock<Arc<Tokens>>>,
}

impl Authenticator {
    pub fn new(tokens: Tokens) -> Self {
        Self {
            tokens: Arc::new(RwLock::new(Arc::new(tokens))),
        }
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

    /// The identity behind the request's `authorization: Bearer` header.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
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
                    tracing::warn!(path = %path.display(), "no API tokens: every call will be refused");
                }
                tracing::info!(path = %path.display(), tokens = tokens.len(), "API tokens in use");
                reloading.replace(tokens);
            },
        )
        .await?;
        Ok(authenticator)
    }
}

/// The gateway's ServiceAccount token, sent to the backends as `authorization: Bearer …` on every forwarded call.
/// The kubelet rewrites the projected token file before the token expires; it is re-read when it changes.
#[derive(Clone)]
pub struct BackendToken {
    header: Arc<RwLock<http::HeaderValue>>,
}

impl std::fmt::Debug for BackendToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackendToken(..)")
    }
}

fn bearer_header(path: &Path, text: &str) -> Result<http::HeaderValue, TokensError> {
    let token = text.trim();
    let invalid = |reason: &str| TokensError::Line {
        line: 1,
        reason: format!("{}: {reason}", path.display()),
    };
    if token.is_empty() {
        return Err(invalid("the backend token file is empty"));
    }
    let mut header = http::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| invalid("the backend token is not a header value"))?;
    header.set_sensitive(true);
    Ok(header)
}

impl BackendToken {
    /// A fixed token (for tests).
    pub fn fixed(token: &str) -> Result<Self, TokensError> {
        Ok(Self {
            header: Arc::new(RwLock::new(bearer_header(Path::new("token"), token)?)),
        })
    }

    /// The `authorization` value to send.
    pub fn header(&self) -> http::HeaderValue {
        self.header
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads `path` now (a missing or empty file is an error), then re-reads it every `interval` until `shutdown`.
    pub async fn watch_file(
        path: PathBuf,
        interval: Duration,
        shutdown: Shutdown,
    ) -> Result<Self, TokensError> {
        let token = Self {
            header: Arc::new(RwLock::new(http::HeaderValue::from_static(""))),
        };
        let refreshing = token.clone();
        watched_file::watch(
            path,
            "backend token",
            interval,
            shutdown,
            bearer_header,
            move |header| {
                *refreshing
                    .header
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = header;
            },
        )
        .await?;
        Ok(token)
    }
}

impl From<watched_file::ReadError> for TokensError {
    fn from(error: watched_file::ReadError) -> Self {
        Self::Read {
            path: error.path,
            source: error.source,
        }
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

    #[test]
    fn a_token_maps_to_its_tenant_and_only_its_hash_is_stored() {
        let file = format!(
            "# comment\n\nalice acme {}\nops platform {} admin\n",
            hash_hex("alice-secret"),
            hash_hex("ops-secret").to_uppercase()
        );
        let auth = Authenticator::new(Tokens::parse(&file).expect("valid"));
        let alice = auth
            .authenticate(&headers("Bearer alice-secret"))
            .expect("alice");
        assert_eq!(
            alice,
            Identity {
                name: "alice".into(),
                tenant: "acme".into(),
                admin: false
            }
        );
        assert!(
            auth.authenticate(&headers("bearer ops-secret"))
                .expect("ops")
                .admin
        );
        assert_eq!(
            auth.authenticate(&headers("Bearer wrong")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            auth.authenticate(&headers("Basic alice-secret")),
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.authenticate(&HeaderMap::new()),
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
        assert!(auth.authenticate(&headers("Bearer one")).is_ok());

        std::fs::write(&path, format!("b acme {}\n", hash_hex("two"))).expect("write");
        let reloaded = async {
            while auth.authenticate(&headers("Bearer two")).is_err() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), reloaded)
            .await
            .expect("reloaded");
        assert_eq!(
            auth.authenticate(&headers("Bearer one")),
            Err(AuthError::Invalid)
        );

        std::fs::write(&path, "broken").expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(auth.authenticate(&headers("Bearer two")).is_ok());
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
