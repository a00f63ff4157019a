//! Bearer API tokens, for machines. The tokens file holds one token per line, `<name> <tenant> <sha256 of the token,
//! hex> [admin|owner|viewer]` (owner when left out), so the gateway never stores a token itself.

use std::{collections::HashMap, path::PathBuf};

use sha2::{Digest as _, Sha256};
use store_platform_runtime::{tenant, watched_file};

use super::{Identity, Role};

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
            let (name, tenant_name, hash, role) = match fields.as_slice() {
                [name, tenant_name, hash] => (name, tenant_name, hash, Role::Owner),
                [name, tenant_name, hash, role] => (
                    name,
                    tenant_name,
                    hash,
                    Role::parse(role)
                        .ok_or_else(|| fail("the role must be admin, owner or viewer"))?,
                ),
                _ => {
                    return Err(fail(
                        "expected `<name> <tenant> <sha256 hex> [admin|owner|viewer]`",
                    ));
                }
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
                email: None,
                tenant: (*tenant_name).to_owned(),
                role,
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

impl From<watched_file::ReadError> for TokensError {
    fn from(error: watched_file::ReadError) -> Self {
        Self::Read {
            path: error.path,
            source: error.source,
        }
    }
}
