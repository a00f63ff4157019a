//! People signing in with a real OpenID provider (`oidc-provider` from npm, tools/oidc/provider.mjs, with users,
//! passwords and groups), over HTTP as a browser does it: the authorization-code flow through the provider's own
//! sign-in form, the session kept as a Secret on the local control plane, its cookie and CSRF token on every call,
//! roles, a sign-in that cannot be replayed or finished in another browser, renewal with the refresh token until
//! the provider says no, sign-out, and a sign-in after the provider rotated its keys.

mod support;

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use store_platform_gateway::{
    auth::{
        Authenticator, SessionAuth,
        oidc::{self, http::Http},
        sessions::Sessions,
    },
    signin::SignInConfig,
};
use store_platform_proto::v1::{
    CreateStoreRequest, GetStoreRequest, provisioner_service_client::ProvisionerServiceClient,
};
use store_platform_runtime::Shutdown;
use store_platform_test_support::{
    TestEnv,
    oidc::{Browser, OidcProvider},
};
use support::{Provisioner, Settings, StatusBackend, dashboard, router, serve_backends, tokens};
use tonic::{Code, transport::Channel};

const CLIENT: &str = "dashboard";
const SECRET: &str = "dashboard-client-secret";

fn user(sub: &str, groups: &[&str]) -> Value {
    json!({"sub": sub, "password": format!("{sub}-password"), "email": format!("{sub}@example.test"),
           "name": sub, "groups": groups})
}

fn provider_config(gateway: &str, keys: &std::path::Path, ttl: Value) -> Value {
    json!({
        "port": 0,
        "keys_file": keys,
        "clients": [{
            "client_id": CLIENT, "client_secret": SECRET,
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [format!("{gateway}/auth/callback")],
            "post_logout_redirect_uris": [gateway],
            "response_types": ["code"],
        }],
        "users": [
            user("alice", &["tenant-acme", "store-owners"]),
            user("victor", &["tenant-acme", "store-viewers"]),
            user("gina", &["tenant-globex", "store-owners"]),
            user("mallory", &["tenant-acme"]),
        ],
        "ttl": ttl,
    })
}

struct Stack {
    gateway: String,
    api: ProvisionerServiceClient<Channel>,
    idp: OidcProvider,
    shutdown: Shutdown,
    /// Where the sessions are.
    namespace: String,
    _web: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

/// The gateway with sign-in on, its sessions in a fresh namespace, in front of in-process backends; the provider's
/// ID tokens live `id_token_ttl` seconds and its refresh tokens `refresh_ttl`.
async fn stack(id_token_ttl: u64, refresh_ttl: u64) -> Stack {
    stack_limited(id_token_ttl, refresh_ttl, (120, 30)).await
}

/// The same, with at most `starts` (per minute, burst) sign-ins started.
async fn stack_limited(id_token_ttl: u64, refresh_ttl: u64, starts: (u32, u32)) -> Stack {
    let env = TestEnv::shared();
    let namespace = env.namespace("sessions").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // `localhost` for the gateway, 127.0.0.1 for the provider: two sites, as in production.
    let gateway = format!(
        "http://localhost:{}",
        listener.local_addr().expect("addr").port()
    );
    let dir = tempfile::tempdir().expect("dir");
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret");
    let idp = OidcProvider::start(&provider_config(
        &gateway,
        &dir.path().join("keys.json"),
        json!({"IdToken": id_token_ttl, "AccessToken": id_token_ttl, "RefreshToken": refresh_ttl}),
    ));

    let shutdown = Shutdown::new();
    let provider = oidc::Provider::new(
        oidc::Config {
            issuer: idp.issuer.clone(),
            client_id: CLIENT.into(),
            audiences: vec![CLIENT.into()],
            mapping: support::mapping(),
            skew: Duration::from_secs(0),
            jwks_min_refresh: Duration::from_secs(1),
            jwks_max_age: Duration::from_secs(3600),
        },
        Http::new(None, Duration::from_secs(5)).expect("client"),
    );
    provider.spawn_refresh(shutdown.clone());
    let sessions = Sessions::start(
        env.client().await,
        &namespace,
        shutdown.clone(),
        Default::default(),
    );
    let (cookie, _) = SignInConfig::cookie_names(&gateway);
    let session_auth = Arc::new(SessionAuth::new(
        sessions,
        provider.clone(),
        Some(secret_file),
        cookie,
    ));
    let signin = Arc::new(SignInConfig {
        auth: session_auth.clone(),
        public_url: gateway.clone(),
        scopes: vec![
            "openid".into(),
            "email".into(),
            "groups".into(),
            "offline_access".into(),
        ],
        provider_name: "Test IdP".into(),
        session_max_age: Duration::from_secs(3600),
        starts: store_platform_gateway::limit::RateLimiter::new(starts.0, starts.1),
    });
    let web = dashboard();
    let (backend, _task) =
        serve_backends(None, Provisioner::default(), StatusBackend::default()).await;
    let settings = Settings {
        auth: Some(
            Authenticator::new(tokens())
                .with_provider(provider)
                .with_sessions(session_auth),
        ),
        signin: Some(signin),
        ..Settings::default()
    };
    let app = router(web.path(), backend, settings).await.0;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let api = ProvisionerServiceClient::new(
        Channel::from_shared(gateway.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect"),
    );
    Stack {
        gateway,
        api,
        idp,
        shutdown,
        namespace,
        _web: web,
        _dir: dir,
    }
}

impl Stack {
    /// Signs `user` in; the browser then holds the session cookie.
    async fn sign_in(&self, browser: &mut Browser, user: &str) -> String {
        let callback = browser
            .sign_in_at_provider(&self.gateway, user, &format!("{user}-password"))
            .await;
        let answer = browser.request("GET", &callback, &[], "").await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        callback
    }

    async fn who(&self, browser: &mut Browser) -> Value {
        let answer = browser
            .request("GET", &format!("{}/auth/session", self.gateway), &[], "")
            .await;
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        answer.json()
    }

    /// A gRPC call carrying the browser's cookies and `csrf`.
    async fn get_store(
        &mut self,
        browser: &Browser,
        csrf: Option<&str>,
    ) -> Result<store_platform_proto::v1::Store, tonic::Status> {
        let mut request = tonic::Request::new(GetStoreRequest {
            store_id: "shoes".into(),
        });
        let cookie = session_cookie(browser).map(|c| format!("store_platform_session={c}"));
        if let Some(cookie) = cookie {
            request
                .metadata_mut()
                .insert("cookie", cookie.parse().expect("ascii"));
        }
        if let Some(csrf) = csrf {
            request
                .metadata_mut()
                .insert("x-csrf-token", csrf.parse().expect("ascii"));
        }
        Ok(self
            .api
            .get_store(request)
            .await?
            .into_inner()
            .store
            .expect("store"))
    }
}

fn session_cookie(browser: &Browser) -> Option<String> {
    browser
        .cookie("localhost", "store_platform_session")
        .map(str::to_owned)
}

fn location(answer: &store_platform_test_support::oidc::Answer) -> String {
    answer.header("location").unwrap_or("").to_owned()
}

#[tokio::test]
async fn people_sign_in_with_the_provider_and_act_by_their_role_with_their_cookie_and_csrf_token() {
    let mut stack = stack(600, 3600).await;
    let mut alice = Browser::default();
    let callback = stack.sign_in(&mut alice, "alice").await;
    let cookie = session_cookie(&alice).expect("a session cookie");
    let who = stack.who(&mut alice).await;
    assert_eq!(
        (
            &who["signedIn"],
            &who["role"],
            &who["tenant"],
            &who["email"]
        ),
        (
            &json!(true),
            &json!("owner"),
            &json!("acme"),
            &json!("alice@example.test")
        )
    );
    let csrf = who["csrf"].as_str().expect("csrf").to_owned();
    let store = stack
        .get_store(&alice, Some(&csrf))
        .await
        .expect("alice reads");
    assert_eq!(store.tenant, "acme");
    assert!(
        !store.display_name.contains(&cookie),
        "the session cookie never reaches a backend"
    );

    // The cookie alone is not enough: another site could make the browser send it.
    let refused = stack.get_store(&alice, None).await.expect_err("no csrf");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("x-csrf-token"), "{refused:?}");
    let refused = stack
        .get_store(&alice, Some("not-the-token"))
        .await
        .expect_err("wrong csrf");
    assert_eq!(refused.code(), Code::Unauthenticated);

    // The provider's answer is used once, and only by the browser that started the sign-in.
    let replayed = alice.request("GET", &callback, &[], "").await;
    assert_eq!(replayed.status, 303);
    assert!(
        location(&replayed).contains("already+used"),
        "{}",
        location(&replayed)
    );
    let mut starter = Browser::default();
    let answer = starter
        .sign_in_at_provider(&stack.gateway, "alice", "alice-password")
        .await;
    let mut other = Browser::default();
    let elsewhere = other.request("GET", &answer, &[], "").await;
    assert!(
        location(&elsewhere).contains("another+browser"),
        "{}",
        location(&elsewhere)
    );
    assert!(session_cookie(&other).is_none());

    // A viewer sees and changes nothing; a person of another tenant acts for theirs; someone without a role is
    // turned away at sign-in.
    let mut victor = Browser::default();
    stack.sign_in(&mut victor, "victor").await;
    let who = stack.who(&mut victor).await;
    assert_eq!(who["role"], json!("viewer"));
    let victor_csrf = who["csrf"].as_str().expect("csrf").to_owned();
    assert_eq!(
        stack
            .get_store(&victor, Some(&victor_csrf))
            .await
            .expect("a viewer reads")
            .tenant,
        "acme"
    );
    let mut create = tonic::Request::new(CreateStoreRequest {
        store_id: "hats".into(),
        display_name: "Hats".into(),
        engine: 1,
        admin_email: "v@example.test".into(),
        source: None,
    });
    create.metadata_mut().insert(
        "cookie",
        format!(
            "store_platform_session={}",
            session_cookie(&victor).expect("cookie")
        )
        .parse()
        .expect("ascii"),
    );
    create
        .metadata_mut()
        .insert("x-csrf-token", victor_csrf.parse().expect("ascii"));
    let denied = stack
        .api
        .create_store(create)
        .await
        .expect_err("a viewer cannot create");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied
            .message()
            .contains("CreateStore needs the owner role; victor has the viewer role"),
        "{denied:?}"
    );
    let mut gina = Browser::default();
    stack.sign_in(&mut gina, "gina").await;
    let gina_csrf = stack.who(&mut gina).await["csrf"]
        .as_str()
        .expect("csrf")
        .to_owned();
    assert_eq!(
        stack
            .get_store(&gina, Some(&gina_csrf))
            .await
            .expect("gina")
            .tenant,
        "globex"
    );
    let mut mallory = Browser::default();
    let callback = mallory
        .sign_in_at_provider(&stack.gateway, "mallory", "mallory-password")
        .await;
    let turned_away = mallory.request("GET", &callback, &[], "").await;
    assert!(
        location(&turned_away).contains("no+role"),
        "{}",
        location(&turned_away)
    );
    assert!(session_cookie(&mallory).is_none());

    // Sign-out needs the CSRF token too, ends the session everywhere, and offers the provider's sign-out.
    let logout = format!("{}/auth/logout", stack.gateway);
    let forged = alice.request("POST", &logout, &[], "").await;
    assert_eq!(forged.status, 403);
    let out = alice
        .request("POST", &logout, &[("x-csrf-token", &csrf)], "")
        .await;
    assert_eq!(out.status, 200, "{}", out.body);
    let end = out.json()["endSessionUrl"]
        .as_str()
        .expect("end session url")
        .to_owned();
    assert!(
        end.starts_with(&format!("{}/session/end?", stack.idp.issuer)),
        "{end}"
    );
    assert!(session_cookie(&alice).is_none(), "the cookie is cleared");
    assert_eq!(stack.who(&mut alice).await["signedIn"], json!(false));
    let mut request = tonic::Request::new(GetStoreRequest {
        store_id: "shoes".into(),
    });
    request.metadata_mut().insert(
        "cookie",
        format!("store_platform_session={cookie}")
            .parse()
            .expect("ascii"),
    );
    request
        .metadata_mut()
        .insert("x-csrf-token", csrf.parse().expect("ascii"));
    let ended = stack.api.get_store(request).await.expect_err("signed out");
    assert_eq!(ended.code(), Code::Unauthenticated);
    assert!(ended.message().contains("not signed in"), "{ended:?}");

    // The provider rotates its key: signing in again works without a restart.
    stack.idp.rotate_keys().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut again = Browser::default();
    stack.sign_in(&mut again, "alice").await;
    let who = stack.who(&mut again).await;
    assert_eq!(who["signedIn"], json!(true), "{who}");
    stack.shutdown.trigger();
}

#[tokio::test]
async fn a_session_renews_with_the_refresh_token_until_the_person_leaves_the_organisation() {
    // ID tokens live 3 s.
    let mut stack = stack(3, 3600).await;
    let mut alice = Browser::default();
    stack.sign_in(&mut alice, "alice").await;
    let csrf = stack.who(&mut alice).await["csrf"]
        .as_str()
        .expect("csrf")
        .to_owned();
    stack
        .get_store(&alice, Some(&csrf))
        .await
        .expect("signed in");
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The ID token has expired: the call renews the session with the refresh token, and goes through.
    assert_eq!(
        stack
            .get_store(&alice, Some(&csrf))
            .await
            .expect("renewed")
            .tenant,
        "acme"
    );
    assert_eq!(stack.who(&mut alice).await["signedIn"], json!(true));

    // Alice leaves: at the next renewal the provider refuses, and her session ends.
    stack.idp.disable_user("alice").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ended = stack
        .get_store(&alice, Some(&csrf))
        .await
        .expect_err("the provider no longer renews it");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    assert!(ended.message().contains("sign in again"), "{ended:?}");
    assert_eq!(stack.who(&mut alice).await["signedIn"], json!(false));
    stack.shutdown.trigger();
}

#[tokio::test]
async fn sign_ins_beyond_the_limit_are_refused_before_anything_is_stored() {
    // Two may start, and none after them.
    let stack = stack_limited(600, 3600, (0, 2)).await;
    let login = format!("{}/auth/login", stack.gateway);
    for _ in 0..2 {
        let answer = Browser::default().request("GET", &login, &[], "").await;
        assert!(
            location(&answer).starts_with(&stack.idp.issuer),
            "{}",
            location(&answer)
        );
    }
    let refused = Browser::default().request("GET", &login, &[], "").await;
    assert!(
        location(&refused).contains("too+many+sign-ins"),
        "{}",
        location(&refused)
    );
    let pending = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
        TestEnv::shared().client().await,
        &stack.namespace,
    )
    .list(&kube::api::ListParams::default().labels("store-platform.io/gateway-signin"))
    .await
    .expect("list sign-ins");
    assert_eq!(pending.items.len(), 2, "only the sign-ins allowed are kept");
    stack.shutdown.trigger();
}
