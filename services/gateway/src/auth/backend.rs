//! The gateway's own credentials towards the backends.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use store_platform_runtime::{Shutdown, watched_file};

use super::TokensError;

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
