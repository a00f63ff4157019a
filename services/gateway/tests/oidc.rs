//! Machines calling the gateway with access tokens from a real OpenID provider (`oidc-provider` from npm, hosted by
//! tools/oidc/provider.mjs): client-credentials tokens mapped to a tenant and a role, every kind of bad token
//! refused, the provider rotating its keys, and a provider that is down when the gateway starts.

mod support;

use std::{sync::Arc, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use store_platform_gateway::auth::{
    Authenticator,
    oidc::{self, http::Http},
};
use store_platform_proto::v1::{
    CreateStoreRequest, GetStoreCredentialsRequest, GetStoreRequest,
    provisioner_service_client::ProvisionerServiceClient,
};
use store_platform_runtime::Shutdown;
use store_platform_test_support::{oidc::OidcProvider, process::free_port};
use support::{
    ALICE, Provisioner, Settings, StatusBackend, dashboard, mapping, router, serve, serve_backends,
    tokens, with_token,
};
use tonic::{Code, transport::Channel};

const API: &str = "urn:store-platform:api";
const AUDIENCE: &str = "store-platform";

/// The clients machines use: an owner and a viewer of acme, one whose tokens live a second, and one of another
/// tenant.
fn clients() -> Value {
    let client = |id: &str, tenant: &str, groups: &[&str], ttl: u64| {
        json!({"client_id": id, "client_secret": format!("{id}-secret"),
               "grant_types": ["client_credentials"], "redirect_uris": [], "response_types": [],
               "tenant": tenant, "groups": groups, "token_ttl": ttl})
    };
    json!([
        client("acme-deployer", "acme", &["store-owners"], 600),
        client("acme-dashboards", "acme", &["store-viewers"], 600),
        client("acme-brief", "acme", &["store-owners"], 1),
        client("globex-deployer", "globex", &["store-owners"], 600),
        client("nobody", "acme", &["unrelated"], 600),
        client("platform-ops", "", &["platform-admins"], 600),
    ])
}

fn provider_config(keys: &std::path::Path, issuer: Option<&str>, port: u16) -> Value {
    let mut config = json!({
        "port": port,
        "keys_file": keys,
        "clients": clients(),
        "resources": {API: AUDIENCE, "urn:other:api": "other-api"},
    });
    if let Some(issuer) = issuer {
        config["issuer"] = json!(issuer);
    }
    config
}

/// The gateway's provider for `issuer`, its keys refreshed in the background until `shutdown`.
fn provider(issuer: &str, shutdown: &Shutdown) -> Arc<oidc::Provider> {
    let provider = oidc::Provider::new(
        oidc::Config {
            issuer: issuer.to_owned(),
            client_id: "dashboard".into(),
            audiences: vec![AUDIENCE.into()],
            mapping: mapping(),
            skew: Duration::from_secs(1),
            jwks_min_refresh: Duration::from_secs(2),
            jwks_max_age: Duration::from_secs(3600),
        },
        Http::new(None, Duration::from_secs(5)).expect("client"),
    );
    provider.spawn_refresh(shutdown.clone());
    provider
}

async fn gateway(auth: Authenticator) -> ProvisionerServiceClient<Channel> {
    let web = dashboard();
    let (backend, _task) =
        serve_backends(None, Provisioner::default(), StatusBackend::default()).await;
    let settings = Settings {
        auth: Some(auth),
        ..Settings::default()
    };
    let addr = serve(router(web.path(), backend, settings).await.0).await;
    // The dashboard's directory must outlive the test's calls.
    std::mem::forget(web);
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    ProvisionerServiceClient::new(channel)
}

async fn get_store(
    api: &mut ProvisionerServiceClient<Channel>,
    token: &str,
) -> Result<store_platform_proto::v1::Store, tonic::Status> {
    let response = api
        .get_store(with_token(
            token,
            GetStoreRequest {
                store_id: "shoes".into(),
            },
        ))
        .await?;
    Ok(response.into_inner().store.expect("store"))
}

fn refused(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, says: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(says),
        "{:?} should say {says:?}",
        status.message()
    );
}

fn token_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = || -> Value {
        serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(parts.next().expect("part"))
                .expect("b64"),
        )
        .expect("json")
    };
    (decode(), decode())
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn access_tokens_from_the_provider_act_for_their_tenant_with_their_role_and_bad_ones_are_refused()
 {
    let keys = tempfile::tempdir().expect("dir");
    let keys = keys.path().join("keys.json");
    let idp = OidcProvider::start(&provider_config(&keys, None, 0));
    // The same keys under another issuer (as one provider serving many issuers does), and the same issuer with
    // keys of its own (a token the real provider never signed).
    let elsewhere = OidcProvider::start(&provider_config(
        &keys,
        Some("https://elsewhere.example"),
        0,
    ));
    let impostor_keys = keys.with_file_name("impostor.json");
    let impostor = OidcProvider::start(&provider_config(&impostor_keys, Some(&idp.issuer), 0));

    let shutdown = Shutdown::new();
    let mut api =
        gateway(Authenticator::new(tokens()).with_provider(provider(&idp.issuer, &shutdown))).await;

    // An owner machine of acme acts for acme; the API token still works beside it.
    let deployer = idp
        .client_credentials("acme-deployer", "acme-deployer-secret", API)
        .await
        .expect("a token");
    let created = api
        .create_store(with_token(
            &deployer,
            CreateStoreRequest {
                store_id: "shoes".into(),
                display_name: "Shoes".into(),
                engine: 1,
                admin_email: "a@example.com".into(),
                source: None,
            },
        ))
        .await
        .expect("an owner creates")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(created.tenant, "acme");
    assert!(
        !created.display_name.contains(&deployer),
        "the provider's token never reaches a backend"
    );
    assert_eq!(
        get_store(&mut api, ALICE).await.expect("API token").tenant,
        "acme"
    );
    let globex = idp
        .client_credentials("globex-deployer", "globex-deployer-secret", API)
        .await
        .expect("a token");
    assert_eq!(
        get_store(&mut api, &globex).await.expect("globex").tenant,
        "globex"
    );

    // An administrator needs no tenant of their own, and acts on every tenant's stores.
    let ops = idp
        .client_credentials("platform-ops", "platform-ops-secret", API)
        .await
        .expect("a token");
    let seen = get_store(&mut api, &ops).await.expect("an administrator");
    assert_eq!(seen.tenant, "platform");
    assert!(
        seen.display_name.contains("scope=all-tenants"),
        "{}",
        seen.display_name
    );

    // A viewer sees, and is told which role the rest needs.
    let viewer = idp
        .client_credentials("acme-dashboards", "acme-dashboards-secret", API)
        .await
        .expect("a token");
    assert_eq!(
        get_store(&mut api, &viewer)
            .await
            .expect("a viewer reads")
            .tenant,
        "acme"
    );
    refused(
        api.get_store_credentials(with_token(
            &viewer,
            GetStoreCredentialsRequest {
                store_id: "shoes".into(),
            },
        ))
        .await,
        Code::PermissionDenied,
        "GetStoreCredentials needs the owner role; acme-dashboards has the viewer role",
    );
    refused(
        api.delete_store(with_token(
            &viewer,
            store_platform_proto::v1::DeleteStoreRequest {
                store_id: "shoes".into(),
            },
        ))
        .await,
        Code::PermissionDenied,
        "needs the owner role",
    );
    let nobody = idp
        .client_credentials("nobody", "nobody-secret", API)
        .await
        .expect("a token");
    refused(
        get_store(&mut api, &nobody).await,
        Code::PermissionDenied,
        "has no role",
    );

    // Tokens the gateway must not take.
    let other_api = idp
        .client_credentials("acme-deployer", "acme-deployer-secret", "urn:other:api")
        .await
        .expect("a token for another API");
    refused(
        get_store(&mut api, &other_api).await,
        Code::Unauthenticated,
        "another audience",
    );
    let other_issuer = elsewhere
        .client_credentials("acme-deployer", "acme-deployer-secret", API)
        .await
        .expect("a token from another issuer");
    refused(
        get_store(&mut api, &other_issuer).await,
        Code::Unauthenticated,
        "issued by \"https://elsewhere.example\"",
    );
    let forged = impostor
        .client_credentials("acme-deployer", "acme-deployer-secret", API)
        .await
        .expect("a token signed by another key");
    refused(
        get_store(&mut api, &forged).await,
        Code::Unauthenticated,
        "a key the identity provider does not publish",
    );
    let (header, claims) = token_parts(&deployer);
    let mut none = header.clone();
    none["alg"] = json!("none");
    refused(
        get_store(&mut api, &format!("{}.{}.", encode(&none), encode(&claims))).await,
        Code::Unauthenticated,
        "\"none\" is not accepted",
    );
    // HS256 with the provider's public key as the shared secret: the classic confusion, refused by name.
    let mut hs = header.clone();
    hs["alg"] = json!("HS256");
    let input = format!("{}.{}", encode(&hs), encode(&claims));
    let public = std::fs::read_to_string(&keys).expect("keys");
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public.as_bytes()),
        input.as_bytes(),
    );
    refused(
        get_store(
            &mut api,
            &format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref())),
        )
        .await,
        Code::Unauthenticated,
        "\"HS256\" is not accepted",
    );
    let mut tampered = claims.clone();
    tampered["tenant"] = json!("globex");
    let signature = deployer.rsplit('.').next().expect("signature");
    refused(
        get_store(
            &mut api,
            &format!("{}.{}.{signature}", encode(&header), encode(&tampered)),
        )
        .await,
        Code::Unauthenticated,
        "signature does not verify",
    );
    let brief = idp
        .client_credentials("acme-brief", "acme-brief-secret", API)
        .await
        .expect("a short-lived token");
    get_store(&mut api, &brief)
        .await
        .expect("valid while it lives");
    tokio::time::sleep(Duration::from_secs(3)).await;
    refused(
        get_store(&mut api, &brief).await,
        Code::Unauthenticated,
        "expired",
    );

    // Made-up key ids cannot make the gateway hammer the provider: at most one fetch per two seconds.
    let fetches = idp.key_fetches().await;
    for n in 0..20 {
        let mut header = header.clone();
        header["kid"] = json!(format!("made-up-{n}"));
        let token = format!("{}.{}.{signature}", encode(&header), encode(&claims));
        refused(
            get_store(&mut api, &token).await,
            Code::Unauthenticated,
            "does not publish",
        );
    }
    assert!(
        idp.key_fetches().await - fetches <= 1,
        "unknown key ids fetched the keys {} times",
        idp.key_fetches().await - fetches
    );

    // The provider rotates its key: new tokens work without a restart, tokens signed by the retired key do not.
    idp.rotate_keys().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rotated = idp
        .client_credentials("acme-deployer", "acme-deployer-secret", API)
        .await
        .expect("a token signed by the new key");
    assert_ne!(token_parts(&rotated).0["kid"], header["kid"]);
    assert_eq!(
        get_store(&mut api, &rotated)
            .await
            .expect("the new key")
            .tenant,
        "acme"
    );
    refused(
        get_store(&mut api, &deployer).await,
        Code::Unauthenticated,
        "does not publish",
    );
    shutdown.trigger();
}

#[tokio::test]
async fn a_gateway_whose_provider_is_down_serves_api_tokens_and_takes_jwts_once_the_provider_answers()
 {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let shutdown = Shutdown::new();
    let mut api =
        gateway(Authenticator::new(tokens()).with_provider(provider(&issuer, &shutdown))).await;
    let keys = tempfile::tempdir().expect("dir");
    let keys = keys.path().join("keys.json");

    // A token the provider will sign with its keys once it runs; while it is down, a JWT cannot be checked.
    assert_eq!(
        get_store(&mut api, ALICE).await.expect("API token").tenant,
        "acme"
    );
    let later = {
        let idp = OidcProvider::start(&provider_config(&keys, Some(&issuer), 0));
        idp.client_credentials("acme-deployer", "acme-deployer-secret", API)
            .await
            .expect("a token")
    };
    refused(
        get_store(&mut api, &later).await,
        Code::Unavailable,
        "cannot be reached",
    );

    let _idp = OidcProvider::start(&provider_config(&keys, None, port));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match get_store(&mut api, &later).await {
            Ok(store) => {
                assert_eq!(store.tenant, "acme");
                break;
            }
            Err(status) => assert!(
                std::time::Instant::now() < deadline,
                "still refused once the provider answers: {status:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    shutdown.trigger();
}
