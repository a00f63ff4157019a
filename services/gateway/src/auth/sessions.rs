//! People's sign-in sessions, kept server-side as Kubernetes Secrets in a namespace of their own, so every gateway
//! replica knows every session, a restart loses none, and the provider's refresh token stays in a Secret.
//!
//! The browser holds only a random session id in an HttpOnly cookie. A session's Secret is named after the id's
//! SHA-256, so reading the Secrets does not give anyone a cookie. Each replica watches the sessions and keeps them in
//! memory: a call's session check is a hash and a map lookup. A session created on another replica a moment ago is
//! read directly when the watch has not brought it yet, and a session ended anywhere (sign-out) is gone from every
//! replica as soon as the watch says so.
//!
//! A sign-in in progress (its PKCE verifier, nonce and where to return) is a Secret too, for the few minutes until
//! the provider sends the person back, perhaps to another replica; it is deleted as it is used, so it is used once.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::StreamExt as _;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions},
    runtime::watcher,
};
use rand::RngCore as _;
use store_platform_runtime::Shutdown;

use super::{Identity, Role, hash_hex};

const SESSION_LABEL: &str = "store-platform.io/gateway-session";
const SIGNIN_LABEL: &str = "store-platform.io/gateway-signin";

/// A signed-in person's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub identity: Identity,
    /// Sent back by the page on every call (`x-csrf-token`), which another site cannot read.
    pub csrf: String,
    /// Until when the session holds without asking the provider again (its ID token's expiry), Unix seconds.
    pub expires: i64,
    /// When it ends whatever the provider says, Unix seconds.
    pub ends: i64,
    pub refresh_token: Option<String>,
    /// For the provider's sign-out (`id_token_hint`).
    pub id_token: Option<String>,
}

/// A sign-in between the redirect to the provider and its return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignIn {
    pub verifier: String,
    pub nonce: String,
    /// A path on the dashboard.
    pub return_to: String,
    /// The SHA-256 of the browser's sign-in cookie, so only the browser that started it can finish it.
    pub browser: String,
    pub expires: i64,
}

/// A random value for cookies, states, nonces and verifiers: 32 bytes, base64url.
pub fn random_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn session_name(cookie: &str) -> String {
    format!("session-{}", &hash_hex(cookie)[..40])
}

fn signin_name(state: &str) -> String {
    format!("signin-{}", &hash_hex(state)[..40])
}

fn put(data: &mut BTreeMap<String, ByteString>, key: &str, value: &str) {
    data.insert(key.to_owned(), ByteString(value.as_bytes().to_vec()));
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

impl Session {
    fn to_data(&self) -> BTreeMap<String, ByteString> {
        let mut data = BTreeMap::new();
        put(&mut data, "subject", &self.identity.name);
        if let Some(email) = &self.identity.email {
            put(&mut data, "email", email);
        }
        put(&mut data, "tenant", &self.identity.tenant);
        put(&mut data, "role", self.identity.role.as_str());
        put(&mut data, "csrf", &self.csrf);
        put(&mut data, "expires", &self.expires.to_string());
        put(&mut data, "ends", &self.ends.to_string());
        if let Some(token) = &self.refresh_token {
            put(&mut data, "refresh-token", token);
        }
        if let Some(token) = &self.id_token {
            put(&mut data, "id-token", token);
        }
        data
    }

    fn from_secret(secret: &Secret) -> Option<Self> {
        Some(Self {
            identity: Identity {
                name: text(secret, "subject")?,
                email: text(secret, "email"),
                tenant: text(secret, "tenant")?,
                role: Role::parse(&text(secret, "role")?)?,
            },
            csrf: text(secret, "csrf")?,
            expires: text(secret, "expires")?.parse().ok()?,
            ends: text(secret, "ends")?.parse().ok()?,
            refresh_token: text(secret, "refresh-token"),
            id_token: text(secret, "id-token"),
        })
    }
}

/// A session as stored, with the version its next update must match.
#[derive(Clone, Debug)]
pub struct Stored {
    pub session: Session,
    version: String,
}

/// The sessions, shared by the gateway's requests.
#[derive(Debug)]
pub struct Sessions {
    api: Api<Secret>,
    /// By Secret name.
    cache: RwLock<HashMap<String, Arc<Stored>>>,
}

fn stored(secret: &Secret) -> Option<(String, Arc<Stored>)> {
    let name = secret.metadata.name.clone()?;
    let session = Session::from_secret(secret)?;
    let version = secret.metadata.resource_version.clone().unwrap_or_default();
    Some((name, Arc::new(Stored { session, version })))
}

fn meta(name: &str, label: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(BTreeMap::from([(label.to_owned(), "true".to_owned())])),
        ..ObjectMeta::default()
    }
}

/// What became of an update.
#[derive(Debug)]
pub enum Updated {
    Done(Arc<Stored>),
    /// Another replica changed (or ended) the session first: this is how it is now.
    Lost(Option<Arc<Stored>>),
}

impl Sessions {
    /// Sessions in `namespace`; the watch runs until `shutdown`.
    pub fn start(
        client: kube::Client,
        namespace: &str,
        shutdown: Shutdown,
        watches: Arc<store_platform_runtime::watch::Watches>,
    ) -> Arc<Self> {
        let sessions = Arc::new(Self {
            api: Api::namespaced(client, namespace),
            cache: RwLock::new(HashMap::new()),
        });
        let watching = Arc::downgrade(&sessions);
        let api = sessions.api.clone();
        tokio::spawn(async move {
            let events =
                store_platform_runtime::watch::watch(api, "sessions", SESSION_LABEL, watches);
            futures::pin_mut!(events);
            let mut listing = HashMap::new();
            loop {
                let event = tokio::select! {
                    event = events.next() => event,
                    () = shutdown.wait() => return,
                };
                let (Some(event), Some(sessions)) = (event, watching.upgrade()) else {
                    return;
                };
                match event {
                    Ok(watcher::Event::Init) => listing.clear(),
                    Ok(watcher::Event::InitApply(secret)) => listing.extend(stored(&secret)),
                    Ok(watcher::Event::InitDone) => {
                        *sessions.write() = std::mem::take(&mut listing);
                    }
                    Ok(watcher::Event::Apply(secret)) => {
                        if let Some((name, stored)) = stored(&secret) {
                            sessions.write().insert(name, stored);
                        }
                    }
                    Ok(watcher::Event::Delete(secret)) => {
                        if let Some(name) = &secret.metadata.name {
                            sessions.write().remove(name);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "the sessions watch failed; retrying"),
                }
            }
        });
        let collecting = Arc::downgrade(&sessions);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(300)).await;
                let Some(sessions) = collecting.upgrade() else {
                    return;
                };
                sessions.collect(super::oidc::now_seconds()).await;
            }
        });
        sessions
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Stored>>> {
        self.cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The session of `cookie`, from memory.
    pub fn cached(&self, cookie: &str) -> Option<Arc<Stored>> {
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&session_name(cookie))
            .cloned()
    }

    /// The session of `cookie`: from memory, else from the API server (made on another replica a moment ago).
    pub async fn find(&self, cookie: &str) -> Result<Option<Arc<Stored>>, kube::Error> {
        if let Some(stored) = self.cached(cookie) {
            return Ok(Some(stored));
        }
        let secret = self.api.get_opt(&session_name(cookie)).await?;
        Ok(secret.as_ref().and_then(stored).map(|(_, stored)| stored))
    }

    /// Stores a new session and returns the cookie that names it.
    pub async fn create(&self, session: Session) -> Result<String, kube::Error> {
        let cookie = random_token();
        let name = session_name(&cookie);
        let secret = Secret {
            metadata: meta(&name, SESSION_LABEL),
            data: Some(session.to_data()),
            type_: Some("store-platform.io/gateway-session".to_owned()),
            ..Secret::default()
        };
        let created = self.api.create(&PostParams::default(), &secret).await?;
        if let Some((name, stored)) = stored(&created) {
            self.write().insert(name, stored);
        }
        Ok(cookie)
    }

    /// Replaces the session, if no one changed it since `current` was read.
    pub async fn update(
        &self,
        cookie: &str,
        current: &Stored,
        session: Session,
    ) -> Result<Updated, kube::Error> {
        let name = session_name(cookie);
        let mut secret = Secret {
            metadata: meta(&name, SESSION_LABEL),
            data: Some(session.to_data()),
            type_: Some("store-platform.io/gateway-session".to_owned()),
            ..Secret::default()
        };
        secret.metadata.resource_version = Some(current.version.clone());
        match self
            .api
            .replace(&name, &PostParams::default(), &secret)
            .await
        {
            Ok(replaced) => {
                let (name, stored) = stored(&replaced).ok_or_else(|| {
                    kube::Error::Service("the replaced session does not read back".into())
                })?;
                self.write().insert(name, stored.clone());
                Ok(Updated::Done(stored))
            }
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
                self.write().remove(&name);
                let now = self.api.get_opt(&name).await?;
                Ok(Updated::Lost(now.as_ref().and_then(stored).map(|(_, s)| s)))
            }
            Err(error) => Err(error),
        }
    }

    /// Ends the session of `cookie` (nothing if there is none).
    pub async fn delete(&self, cookie: &str) -> Result<(), kube::Error> {
        let name = session_name(cookie);
        self.write().remove(&name);
        match self.api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Keeps a sign-in in progress under its `state`.
    pub async fn begin_signin(&self, state: &str, signin: &SignIn) -> Result<(), kube::Error> {
        let mut data = BTreeMap::new();
        put(&mut data, "verifier", &signin.verifier);
        put(&mut data, "nonce", &signin.nonce);
        put(&mut data, "return-to", &signin.return_to);
        put(&mut data, "browser", &signin.browser);
        put(&mut data, "expires", &signin.expires.to_string());
        let secret = Secret {
            metadata: meta(&signin_name(state), SIGNIN_LABEL),
            data: Some(data),
            type_: Some("store-platform.io/gateway-signin".to_owned()),
            ..Secret::default()
        };
        self.api.create(&PostParams::default(), &secret).await?;
        Ok(())
    }

    /// The sign-in of `state`, removed as it is read: a second use finds nothing.
    pub async fn take_signin(&self, state: &str) -> Result<Option<SignIn>, kube::Error> {
        let name = signin_name(state);
        let Some(secret) = self.api.get_opt(&name).await? else {
            return Ok(None);
        };
        let delete = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&name, &delete).await {
            Ok(_) => {}
            // Another request took it first.
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
                return Ok(None);
            }
            Err(error) => return Err(error),
        }
        Ok((|| {
            Some(SignIn {
                verifier: text(&secret, "verifier")?,
                nonce: text(&secret, "nonce")?,
                return_to: text(&secret, "return-to")?,
                browser: text(&secret, "browser")?,
                expires: text(&secret, "expires")?.parse().ok()?,
            })
        })())
    }

    /// Deletes sessions that have ended and sign-ins never finished.
    async fn collect(&self, now: i64) {
        let ended: Vec<String> = self
            .cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|(_, s)| {
                s.session.ends < now
                    || (s.session.expires < now && s.session.refresh_token.is_none())
            })
            .map(|(name, _)| name.clone())
            .collect();
        let mut names = ended;
        match self
            .api
            .list(&ListParams::default().labels(SIGNIN_LABEL))
            .await
        {
            Ok(list) => names.extend(list.items.iter().filter_map(|secret| {
                let expires: i64 = text(secret, "expires")?.parse().ok()?;
                (expires < now)
                    .then(|| secret.metadata.name.clone())
                    .flatten()
            })),
            Err(error) => tracing::warn!(%error, "cannot list sign-ins in progress"),
        }
        for name in names {
            match self.api.delete(&name, &DeleteParams::default()).await {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(error) => tracing::warn!(%error, "cannot delete an ended session"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reads_back_as_it_was_written() {
        let session = Session {
            identity: Identity {
                name: "u1".into(),
                email: Some("alice@acme.test".into()),
                tenant: "acme".into(),
                role: Role::Viewer,
            },
            csrf: random_token(),
            expires: 100,
            ends: 200,
            refresh_token: Some("r".into()),
            id_token: None,
        };
        let secret = Secret {
            data: Some(session.to_data()),
            ..Secret::default()
        };
        assert_eq!(Session::from_secret(&secret), Some(session));
    }

    #[test]
    fn names_reveal_no_cookie_and_tokens_are_unguessable() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(!session_name(&a).contains(&a));
        assert_eq!(session_name(&a).len(), "session-".len() + 40);
    }
}
