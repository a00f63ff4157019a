//! Signing people in to the dashboard with the OpenID provider, and out again:
//! - `GET /auth/login` starts the authorization-code flow (PKCE S256, `state`, `nonce`), keeping the sign-in
//!   server-side and binding it to the browser with a short-lived cookie;
//! - `GET /auth/callback` takes the provider's answer once, trades the code for tokens, verifies the ID token and
//!   starts a session behind an HttpOnly, SameSite=Strict cookie; no token reaches the page;
//! - `GET /auth/session` tells the page who is signed in (and the session's CSRF token for its calls);
//! - `POST /auth/logout` ends the session, and offers the provider's sign-out.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};

use crate::auth::{
    AuthError, Authenticator, CSRF_HEADER, Identity, SessionAuth, cookie, hash_hex,
    oidc::{Authorize, http::form_encode, now_seconds},
    same_secret,
    sessions::{Session, SignIn, random_token},
};

/// How long a person has to sign in at the provider.
const SIGNIN_SECONDS: i64 = 600;

/// The sign-in settings.
#[derive(Debug)]
pub struct SignInConfig {
    pub auth: Arc<SessionAuth>,
    /// The dashboard's address as browsers reach it, e.g. `https://dashboard.example.com`.
    pub public_url: String,
    pub scopes: Vec<String>,
    /// The provider's name on the sign-in button.
    pub provider_name: String,
    /// The longest a session lasts, renewals included.
    pub session_max_age: Duration,
    /// Sign-ins started per minute, for everyone (each keeps a Secret until it ends or expires): the bound on what
    /// anonymous requests can make the gateway store.
    pub starts: crate::limit::RateLimiter,
}

impl SignInConfig {
    fn secure(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The callback registered at the provider.
    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.public_url.trim_end_matches('/'))
    }

    /// Cookie names: with `__Host-` over https (the browser then insists on Secure, Path=/ and no Domain).
    pub fn cookie_names(public_url: &str) -> (String, String) {
        let prefix = if public_url.starts_with("https://") {
            "__Host-"
        } else {
            ""
        };
        (
            format!("{prefix}store_platform_session"),
            format!("{prefix}store_platform_signin"),
        )
    }

    fn signin_cookie(&self) -> String {
        Self::cookie_names(&self.public_url).1
    }

    fn set_cookie(&self, name: &str, value: &str, same_site: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure() { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
        ))
        .expect("cookie values are base64url")
    }
}

/// What the dashboard's routes share.
#[derive(Clone, Debug)]
struct Shared {
    auth: Authenticator,
    signin: Option<Arc<SignInConfig>>,
}

/// The `/auth` routes. Without sign-in configured, `/auth/session` still answers (for API tokens) and the others
/// say sign-in is off.
pub fn routes(auth: Authenticator, signin: Option<Arc<SignInConfig>>) -> Router {
    Router::new()
        .route("/auth/session", get(session))
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .with_state(Shared { auth, signin })
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json(status: StatusCode, value: &impl Serialize) -> Response {
    no_store((status, axum::Json(value)).into_response())
}

fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    no_store(response)
}

fn off() -> Response {
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({"error": "sign-in with an identity provider is not configured"}),
    )
}

/// Who the page is signed in as.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Who<'a> {
    signed_in: bool,
    /// "session" or "token".
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf: Option<&'a str>,
    /// The provider's name, when people can sign in with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl<'a> Who<'a> {
    fn nobody(provider: Option<&'a str>, error: Option<String>) -> Self {
        Self {
            provider,
            error,
            ..Self::default()
        }
    }

    fn of(identity: &'a Identity, via: &'a str, csrf: Option<&'a str>) -> Self {
        Self {
            signed_in: true,
            via: Some(via),
            name: Some(&identity.name),
            email: identity.email.as_deref(),
            tenant: Some(&identity.tenant),
            role: Some(identity.role.as_str()),
            csrf,
            ..Self::default()
        }
    }
}

async fn session(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let provider = shared.signin.as_ref().map(|s| s.provider_name.as_str());
    let refused = |error: AuthError| {
        let status = match error.status().code() {
            tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        json(status, &Who::nobody(provider, Some(error.to_string())))
    };
    if headers.contains_key(header::AUTHORIZATION) {
        return match shared.auth.authenticate(&headers).await {
            Ok(identity) => json(StatusCode::OK, &Who::of(&identity, "token", None)),
            Err(error) => refused(error),
        };
    }
    let Some(auth) = shared.auth.sessions() else {
        return json(StatusCode::OK, &Who::nobody(provider, None));
    };
    let Some(value) = cookie(&headers, &auth.cookie) else {
        return json(StatusCode::OK, &Who::nobody(provider, None));
    };
    match auth.session(value).await {
        Ok(stored) => json(
            StatusCode::OK,
            &Who::of(
                &stored.session.identity,
                "session",
                Some(&stored.session.csrf),
            ),
        ),
        Err(AuthError::NoSession | AuthError::SessionEnded) => {
            json(StatusCode::OK, &Who::nobody(provider, None))
        }
        Err(error) => refused(error),
    }
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    #[serde(default)]
    return_to: Option<String>,
}

/// A path on this site to return to: never another site (`//host`, `/\host`, a scheme).
fn local_path(path: Option<&str>) -> String {
    match path {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn failed(signin: &SignInConfig, message: &str) -> Response {
    tracing::info!(reason = message, "a sign-in failed");
    redirect(
        &format!("/?{}", form_encode(&[("signin_error", message)])),
        vec![signin.set_cookie(&signin.signin_cookie(), "", "Lax", 0)],
    )
}

async fn login(State(shared): State<Shared>, Query(query): Query<LoginQuery>) -> Response {
    let Some(signin) = shared.signin else {
        return off();
    };
    if let Err(wait) = signin.starts.check("sign-in", std::time::Instant::now()) {
        return failed(
            &signin,
            &format!(
                "too many sign-ins right now; try again in {} s",
                wait.as_secs().max(1)
            ),
        );
    }
    let provider = &signin.auth.provider;
    let endpoints = match provider.endpoints_now().await {
        Ok(endpoints) => endpoints,
        Err(error) => {
            tracing::warn!(%error, "sign-in without the identity provider");
            return failed(
                &signin,
                "the identity provider cannot be reached; try again in a minute",
            );
        }
    };
    let (state, nonce, verifier, browser) = (
        random_token(),
        random_token(),
        random_token(),
        random_token(),
    );
    let pending = SignIn {
        verifier: verifier.clone(),
        nonce: nonce.clone(),
        return_to: local_path(query.return_to.as_deref()),
        browser: hash_hex(&browser),
        expires: now_seconds() + SIGNIN_SECONDS,
    };
    if let Err(error) = signin.auth.sessions.begin_signin(&state, &pending).await {
        tracing::warn!(%error, "cannot keep a sign-in");
        return failed(&signin, "sign-in is unavailable: sessions cannot be stored");
    }
    let redirect_uri = signin.redirect_uri();
    let url = provider.authorize_url(
        &endpoints,
        &Authorize {
            redirect_uri: &redirect_uri,
            scopes: &signin.scopes,
            state: &state,
            nonce: &nonce,
            verifier: &verifier,
        },
    );
    redirect(
        &url,
        vec![signin.set_cookie(&signin.signin_cookie(), &browser, "Lax", SIGNIN_SECONDS)],
    )
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

async fn callback(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let Some(signin) = shared.signin else {
        return off();
    };
    let auth = &signin.auth;
    let Some(state) = query.state.as_deref().filter(|s| !s.is_empty()) else {
        return failed(&signin, "the provider's answer has no state");
    };
    let pending = match auth.sessions.take_signin(state).await {
        Ok(Some(pending)) => pending,
        Ok(None) => {
            return failed(
                &signin,
                "this sign-in is unknown, expired or already used: sign in again",
            );
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read a sign-in");
            return failed(&signin, "sign-in is unavailable: sessions cannot be read");
        }
    };
    let browser = cookie(&headers, &signin.signin_cookie()).unwrap_or("");
    if !same_secret(&hash_hex(browser), &pending.browser) {
        return failed(&signin, "this sign-in was started in another browser");
    }
    if pending.expires < now_seconds() {
        return failed(&signin, "the sign-in took too long: sign in again");
    }
    if let Some(error) = &query.error {
        let description = query.error_description.as_deref().unwrap_or("");
        return failed(
            &signin,
            &format!("the identity provider refused: {error} {description}"),
        );
    }
    let Some(code) = query.code.as_deref() else {
        return failed(&signin, "the provider's answer has no code");
    };
    let secret = match auth.client_secret() {
        Ok(secret) => secret,
        Err(error) => return failed(&signin, &error.to_string()),
    };
    let tokens = match auth
        .provider
        .exchange_code(code, &pending.verifier, &signin.redirect_uri(), &secret)
        .await
    {
        Ok(tokens) => tokens,
        Err(refusal) => return failed(&signin, &refusal.to_string()),
    };
    let Some(id_token) = tokens.id_token else {
        return failed(&signin, "the identity provider sent no ID token");
    };
    let claims = match auth
        .provider
        .verify_id_token(&id_token, Some(&pending.nonce))
        .await
    {
        Ok(claims) => claims,
        Err(error) => return failed(&signin, &format!("the ID token is refused: {error}")),
    };
    let identity = match auth.provider.config.mapping.identity(&claims) {
        Ok(identity) => identity,
        Err(error) => return failed(&signin, &error.to_string()),
    };
    let now = now_seconds();
    let ends = now + signin.session_max_age.as_secs() as i64;
    let session = Session {
        identity: identity.clone(),
        csrf: random_token(),
        expires: claims.expiry().unwrap_or(now).min(ends),
        ends,
        refresh_token: tokens.refresh_token,
        id_token: Some(id_token),
    };
    let value = match auth.sessions.create(session).await {
        Ok(value) => value,
        Err(error) => {
            tracing::warn!(%error, "cannot store a session");
            return failed(&signin, "sign-in is unavailable: sessions cannot be stored");
        }
    };
    tracing::info!(
        target: "audit",
        who = %identity.name,
        email = identity.email.as_deref().unwrap_or(""),
        tenant = %identity.tenant,
        role = identity.role.as_str(),
        method = "SignIn",
        result = "OK",
        "audit"
    );
    redirect(
        &pending.return_to,
        vec![
            signin.set_cookie(&auth.cookie, &value, "Strict", ends - now),
            signin.set_cookie(&signin.signin_cookie(), "", "Lax", 0),
        ],
    )
}

/// Where the page goes after signing out.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedOut {
    /// The provider's sign-out page (ends the person's session there too), if it has one.
    end_session_url: Option<String>,
}

async fn logout(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let Some(signin) = shared.signin else {
        return off();
    };
    let auth = &signin.auth;
    let clear = signin.set_cookie(&auth.cookie, "", "Strict", 0);
    let Some(value) = cookie(&headers, &auth.cookie) else {
        let mut response = json(
            StatusCode::OK,
            &SignedOut {
                end_session_url: None,
            },
        );
        response.headers_mut().append(header::SET_COOKIE, clear);
        return response;
    };
    let stored = auth.sessions.find(value).await.ok().flatten();
    let csrf = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(stored) = &stored
        && !same_secret(csrf, &stored.session.csrf)
    {
        return json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({"error": AuthError::Csrf.to_string()}),
        );
    }
    if let Err(error) = auth.sessions.delete(value).await {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"error": format!("the session cannot be ended: {error}")}),
        );
    }
    let end_session_url = stored.as_ref().and_then(|stored| {
        let identity = &stored.session.identity;
        tracing::info!(
            target: "audit",
            who = %identity.name,
            email = identity.email.as_deref().unwrap_or(""),
            tenant = %identity.tenant,
            role = identity.role.as_str(),
            method = "SignOut",
            result = "OK",
            "audit"
        );
        let endpoint = auth.provider.endpoints()?.end_session_endpoint.clone()?;
        let mut query = vec![
            ("client_id", auth.provider.config.client_id.as_str()),
            ("post_logout_redirect_uri", signin.public_url.as_str()),
        ];
        if let Some(hint) = &stored.session.id_token {
            query.push(("id_token_hint", hint));
        }
        let separator = if endpoint.contains('?') { '&' } else { '?' };
        Some(format!("{endpoint}{separator}{}", form_encode(&query)))
    });
    let mut response = json(StatusCode::OK, &SignedOut { end_session_url });
    response.headers_mut().append(header::SET_COOKIE, clear);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_returned_to() {
        assert_eq!(local_path(Some("/stores/shoes?x=1")), "/stores/shoes?x=1");
        for outside in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "",
            "/\r\nSet-Cookie: x",
        ] {
            assert_eq!(local_path(Some(outside)), "/", "{outside:?}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cookies_take_the_host_prefix_and_secure_over_https() {
        assert_eq!(
            SignInConfig::cookie_names("https://dash.example.com"),
            (
                "__Host-store_platform_session".to_owned(),
                "__Host-store_platform_signin".to_owned()
            )
        );
        assert_eq!(
            SignInConfig::cookie_names("http://localhost:8080").0,
            "store_platform_session"
        );
    }
}
