//! Who may call the provisioner and the status service, proven with real ServiceAccount tokens on the real API
//! server: the two service binaries run against the local control plane with a caller policy of this test's, and
//! every RPC is called directly, from the host, as each kind of caller:
//! - no token, a token for another audience, an expired token, a token of a deleted ServiceAccount:
//!   UNAUTHENTICATED;
//! - a ServiceAccount the policy does not name, a caller of one tenant naming another, or claiming the all-tenants
//!   scope: PERMISSION_DENIED, before anything is read or written;
//! - a caller of one tenant sees only that tenant's stores, in lists and streams; a changed policy applies to the
//!   next call.

use std::{collections::BTreeSet, path::Path, time::Duration};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{
    Api,
    api::{DeleteParams, ListParams},
};
use store_platform_proto::{
    ALL_TENANTS, SCOPE_METADATA_KEY, TENANT_METADATA_KEY, TOKEN_AUDIENCE,
    v1::{
        CreateStoreRequest, DeleteStoreRequest, Engine, GetStoreCredentialsRequest,
        GetStoreRequest, GetStoreStatusRequest, ListStoresRequest, RetryStoreRequest,
        WatchStoresRequest, provisioner_service_client::ProvisionerServiceClient,
        status_service_client::StatusServiceClient, watch_stores_response::Event,
    },
};
use store_platform_test_support::{
    TestEnv, caller,
    process::{ServiceProcess, free_port, http_get, naming_tenant},
};
use tonic::{Code, Request, transport::Channel};

/// How a call is made: its token (if any), the tenant it names, and whether it claims the all-tenants scope.
#[derive(Clone, Debug)]
struct As {
    token: Option<String>,
    tenant: String,
    scope: bool,
}

impl As {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = naming_tenant(&self.tenant, message);
        let metadata = request.metadata_mut();
        if let Some(token) = &self.token {
            metadata.insert(
                "authorization",
                format!("Bearer {token}").parse().expect("ascii"),
            );
        }
        if self.scope {
            metadata.insert(SCOPE_METADATA_KEY, ALL_TENANTS.parse().expect("ascii"));
        }
        request
    }
}

/// Every RPC of both services, as `who`, about store `id`: each one's code and message.
async fn every_rpc(
    provisioner: &Channel,
    status: &Channel,
    who: &As,
    id: &str,
) -> Vec<(&'static str, Code, String)> {
    let mut api = ProvisionerServiceClient::new(provisioner.clone());
    let mut watch = StatusServiceClient::new(status.clone());
    let store_id = || id.to_owned();
    let outcome = |name, result: Result<(), tonic::Status>| match result {
        Ok(()) => (name, Code::Ok, String::new()),
        Err(status) => (name, status.code(), status.message().to_owned()),
    };
    vec![
        outcome(
            "CreateStore",
            api.create_store(who.request(CreateStoreRequest {
                store_id: store_id(),
                display_name: "Intruder".into(),
                engine: Engine::Woocommerce as i32,
                admin_email: "owner@example.com".into(),
                source: None,
            }))
            .await
            .map(drop),
        ),
        outcome(
            "GetStore",
            api.get_store(who.request(GetStoreRequest {
                store_id: store_id(),
            }))
            .await
            .map(drop),
        ),
        outcome(
            "ListStores",
            api.list_stores(who.request(ListStoresRequest::default()))
                .await
                .map(drop),
        ),
        outcome(
            "RetryStore",
            api.retry_store(who.request(RetryStoreRequest {
                store_id: store_id(),
            }))
            .await
            .map(drop),
        ),
        outcome(
            "GetStoreCredentials",
            api.get_store_credentials(who.request(GetStoreCredentialsRequest {
                store_id: store_id(),
            }))
            .await
            .map(drop),
        ),
        outcome(
            "DeleteStore",
            api.delete_store(who.request(DeleteStoreRequest {
                store_id: store_id(),
            }))
            .await
            .map(drop),
        ),
        outcome(
            "GetStoreStatus",
            watch
                .get_store_status(who.request(GetStoreStatusRequest {
                    store_id: store_id(),
                }))
                .await
                .map(drop),
        ),
        outcome(
            "WatchStores",
            watch
                .watch_stores(who.request(WatchStoresRequest::default()))
                .await
                .map(drop),
        ),
    ]
}

/// A JWT signed with the control plane's own service-account key (ES256), with `claims`: what the API server
/// issues, so its verdict on the claims (an expiry in the past) is the API server's own.
fn signed_by_the_cluster(dir: &Path, claims: &serde_json::Value) -> String {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pem = std::fs::read_to_string(dir.join("service-account.key")).expect("signing key");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body");
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
        .expect("a P-256 PKCS#8 key");
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let signing_input = format!(
        "{}.{}",
        b64(br#"{"alg":"ES256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let signature = key.sign(&rng, signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", b64(signature.as_ref()))
}

/// Claims of a bound token of `namespace/name` (uid `uid`) for `audience`, valid from `from` to `until` (Unix
/// seconds), as the TokenRequest API writes them.
fn bound_claims(
    namespace: &str,
    name: &str,
    uid: &str,
    from: i64,
    until: i64,
) -> serde_json::Value {
    serde_json::json!({
        "aud": [TOKEN_AUDIENCE],
        "exp": until,
        "iat": from,
        "nbf": from,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": uid},
        },
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
    })
}

fn write_policy(path: &Path, partner_tenants: &[&str]) {
    let policy = serde_json::json!({"callers": [
        {"serviceAccount": format!("{}/{}", caller::NAMESPACE, caller::NAME), "anyTenant": true, "allTenantsScope": true},
        {"serviceAccount": format!("{}/partner", caller::NAMESPACE), "tenants": partner_tenants},
    ]});
    std::fs::write(path, policy.to_string()).expect("write the policy");
}

async fn metric(addr: std::net::SocketAddr, line_start: &str) -> f64 {
    let text = http_get(addr, "/metrics").await.expect("metrics");
    text.lines()
        .filter(|line| line.starts_with(line_start))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn only_callers_the_policy_names_act_and_only_for_the_tenants_it_grants() {
    let env = TestEnv::shared();
    let client = env.client().await;
    let pid = std::process::id();
    let (ours, theirs) = (format!("callers-a-{pid}"), format!("callers-b-{pid}"));
    let scratch = tempfile::tempdir().expect("scratch");
    let policy = scratch.path().join("callers.json");
    write_policy(&policy, &[&ours]);

    let kubeconfig = env.kubeconfig_path().display().to_string();
    let (provisioner_port, status_port, provisioner_metrics, status_metrics) =
        (free_port(), free_port(), free_port(), free_port());
    let shared = |grpc: u16, metrics: u16| {
        vec![
            ("KUBECONFIG", kubeconfig.clone()),
            ("GRPC_ADDR", format!("127.0.0.1:{grpc}")),
            ("METRICS_ADDR", format!("127.0.0.1:{metrics}")),
            ("CALLER_POLICY", policy.display().to_string()),
            ("CALLER_POLICY_RELOAD_INTERVAL", "100ms".to_owned()),
            // Short, so a deleted ServiceAccount's token stops working within this test.
            ("TOKEN_CACHE_TTL", "2s".to_owned()),
        ]
    };
    let mut provisioner_env = shared(provisioner_port, provisioner_metrics);
    provisioner_env.extend([
        ("LEASE_NAME", format!("callers-{pid}")),
        (
            "RECONCILE_SELECTOR",
            format!("store-platform.io/tenant in ({ours},{theirs})"),
        ),
    ]);
    let mut provisioner = ServiceProcess::start("provisioner", &provisioner_env, scratch.path());
    let mut status = ServiceProcess::start(
        "status",
        &shared(status_port, status_metrics),
        scratch.path(),
    );
    let provisioner_channel = provisioner.channel(provisioner_port).await;
    let status_channel = status.channel(status_port).await;

    // The ServiceAccounts: a partner allowed one tenant, a stranger the policy does not name, and one that is
    // deleted below. Their tokens come from the TokenRequest API, as `kubectl create token` gets them.
    for name in ["partner", "stranger", "short-lived"] {
        caller::ensure_service_account(&client, caller::NAMESPACE, name)
            .await
            .expect("service account");
    }
    let token = |name: &'static str, audience: &'static str| {
        let client = client.clone();
        async move {
            caller::request_token(&client, caller::NAMESPACE, name, audience, 3600)
                .await
                .expect("TokenRequest")
        }
    };
    let partner = As {
        token: Some(token("partner", TOKEN_AUDIENCE).await),
        tenant: ours.clone(),
        scope: false,
    };

    // One store of each tenant, made by the tests' caller (allowed any tenant).
    let (mine, other) = (format!("ca-{pid}"), format!("cb-{pid}"));
    let mut api = ProvisionerServiceClient::new(provisioner_channel.clone());
    for (tenant, id) in [(&ours, &mine), (&theirs, &other)] {
        api.create_store(env.as_tenant(
            tenant,
            CreateStoreRequest {
                store_id: id.clone(),
                display_name: format!("Store {id}"),
                engine: Engine::Woocommerce as i32,
                admin_email: "owner@example.com".into(),
                source: None,
            },
        ))
        .await
        .expect("create");
    }

    // The partner acts for its tenant: it sees its store, in a list and a stream, and nothing of the other's.
    let listed = api
        .list_stores(partner.request(ListStoresRequest::default()))
        .await
        .expect("the partner lists its tenant's stores")
        .into_inner();
    let ids: BTreeSet<_> = listed.stores.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids, BTreeSet::from([mine.clone()]));
    let error = api
        .get_store(partner.request(GetStoreRequest {
            store_id: other.clone(),
        }))
        .await
        .expect_err("the other tenant's store");
    assert_eq!(error.code(), Code::NotFound);
    let mut stream = StatusServiceClient::new(status_channel.clone())
        .watch_stores(partner.request(WatchStoresRequest::default()))
        .await
        .expect("the partner watches its tenant's stores")
        .into_inner();
    let first = stream.message().await.expect("stream").expect("snapshot");
    match first.event {
        Some(Event::Snapshot(snapshot)) => {
            let ids: BTreeSet<_> = snapshot.stores.iter().map(|s| s.id.clone()).collect();
            assert_eq!(ids, BTreeSet::from([mine.clone()]));
        }
        other => panic!("a snapshot first, not {other:?}"),
    }
    drop(stream);
    // A caller of one tenant need not name it.
    let unnamed = As {
        tenant: String::new(),
        ..partner.clone()
    };
    let mut request = unnamed.request(ListStoresRequest::default());
    request.metadata_mut().remove(TENANT_METADATA_KEY);
    let listed = api.list_stores(request).await.expect("its one tenant");
    assert_eq!(listed.into_inner().stores.len(), 1);

    // Every RPC refuses every wrong caller, and names why.
    let expired = {
        let account = Api::<ServiceAccount>::namespaced(client.clone(), caller::NAMESPACE)
            .get("partner")
            .await
            .expect("partner");
        let uid = account.metadata.uid.expect("uid");
        let now = jiff::Timestamp::now().as_second();
        // The same signing, valid: the API server accepts it, so the expired one is refused for its expiry.
        let valid = signed_by_the_cluster(
            env.dir(),
            &bound_claims(caller::NAMESPACE, "partner", &uid, now - 60, now + 600),
        );
        api.list_stores(
            As {
                token: Some(valid),
                ..partner.clone()
            }
            .request(ListStoresRequest::default()),
        )
        .await
        .expect("a token signed like the API server's is accepted");
        signed_by_the_cluster(
            env.dir(),
            &bound_claims(caller::NAMESPACE, "partner", &uid, now - 7200, now - 3600),
        )
    };
    let attacker = format!("cx-{pid}");
    let cases = [
        (
            "no token",
            As {
                token: None,
                ..partner.clone()
            },
            Code::Unauthenticated,
        ),
        (
            "a token for another audience",
            As {
                token: Some(token("partner", "some-other-service").await),
                ..partner.clone()
            },
            Code::Unauthenticated,
        ),
        (
            "an expired token",
            As {
                token: Some(expired),
                ..partner.clone()
            },
            Code::Unauthenticated,
        ),
        (
            "a forged token",
            As {
                token: Some("eyJhbGciOiJFUzI1NiJ9.e30.c2lnbmF0dXJl".into()),
                ..partner.clone()
            },
            Code::Unauthenticated,
        ),
        (
            "a ServiceAccount the policy does not name",
            As {
                token: Some(token("stranger", TOKEN_AUDIENCE).await),
                ..partner.clone()
            },
            Code::PermissionDenied,
        ),
        (
            "the partner naming another tenant",
            As {
                tenant: theirs.clone(),
                ..partner.clone()
            },
            Code::PermissionDenied,
        ),
        (
            "the partner claiming the all-tenants scope",
            As {
                scope: true,
                ..partner.clone()
            },
            Code::PermissionDenied,
        ),
    ];
    let provisioner_reviews = || {
        metric(
            ([127, 0, 0, 1], provisioner_metrics).into(),
            "store_platform_token_reviews_total",
        )
    };
    let (reviews_before, attacks_started) =
        (provisioner_reviews().await, std::time::Instant::now());
    for (what, who, code) in &cases {
        for id in [&attacker, &other] {
            for (rpc, got, message) in
                every_rpc(&provisioner_channel, &status_channel, who, id).await
            {
                assert_eq!(got, *code, "{what}, {rpc} on {id}: {message}");
                let named = match got {
                    Code::Unauthenticated => message.starts_with("authorization: "),
                    _ => {
                        message.starts_with("authorization: ")
                            || message.starts_with(TENANT_METADATA_KEY)
                            || message.starts_with(SCOPE_METADATA_KEY)
                    }
                };
                assert!(
                    named,
                    "{what}, {rpc}: the message names the field: {message}"
                );
            }
        }
    }
    // Nothing was created, and the other tenant's store is untouched.
    let namespaces = Api::<Namespace>::all(client.clone());
    assert!(
        namespaces
            .get_opt(&format!("store-{attacker}"))
            .await
            .expect("get")
            .is_none(),
        "a refused CreateStore left a namespace"
    );
    let kept = namespaces
        .get(&format!("store-{other}"))
        .await
        .expect("the other tenant's store is still there");
    assert!(kept.metadata.deletion_timestamp.is_none());
    // Each refusal is an audit line, and none holds a token.
    let logs = provisioner.logs();
    assert!(
        logs.contains("call refused") && logs.contains("PERMISSION_DENIED"),
        "{logs}"
    );
    for (_, who, _) in &cases {
        if let Some(token) = &who.token {
            assert!(!logs.contains(token.as_str()), "a token in the log");
        }
    }
    // Reviews are remembered: however many calls above, a token costs one TokenReview per cache period (2 s).
    let reviews = provisioner_reviews().await - reviews_before;
    let periods = (attacks_started.elapsed().as_secs_f64() / 2.0).ceil() + 1.0;
    let tokens = cases
        .iter()
        .filter(|(_, who, _)| who.token.is_some())
        .count() as f64;
    assert!(reviews >= 3.0, "{reviews} TokenReviews");
    assert!(
        reviews <= tokens * periods,
        "{reviews} TokenReviews for {tokens} tokens in {periods} cache periods ({} provisioner calls)",
        cases.len() * 12
    );

    // A changed policy applies soon after: the partner may now act for the other tenant too.
    write_policy(&policy, &[&ours, &theirs]);
    let widened = As {
        tenant: theirs.clone(),
        ..partner.clone()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let seen = loop {
        match api
            .get_store(widened.request(GetStoreRequest {
                store_id: other.clone(),
            }))
            .await
        {
            Ok(found) => break found.into_inner().store.expect("store"),
            Err(error) if std::time::Instant::now() < deadline => {
                assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the new policy did not apply: {error:?}"),
        }
    };
    assert_eq!(seen.id, other);

    // A deleted ServiceAccount's token stops working once its review is no longer remembered.
    let short_lived = As {
        token: Some(token("short-lived", TOKEN_AUDIENCE).await),
        tenant: ours.clone(),
        scope: false,
    };
    write_policy(&policy, &[&ours, &theirs]);
    let mut allow_short_lived: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&policy).expect("policy")).expect("json");
    allow_short_lived["callers"]
        .as_array_mut()
        .expect("callers")
        .push(serde_json::json!({
            "serviceAccount": format!("{}/short-lived", caller::NAMESPACE),
            "tenants": [ours.clone()],
        }));
    std::fs::write(&policy, allow_short_lived.to_string()).expect("policy");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while api
        .list_stores(short_lived.request(ListStoresRequest::default()))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the short-lived caller never got in"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Api::<ServiceAccount>::namespaced(client.clone(), caller::NAMESPACE)
        .delete("short-lived", &DeleteParams::default())
        .await
        .expect("delete the ServiceAccount");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let refused = loop {
        match api
            .list_stores(short_lived.request(ListStoresRequest::default()))
            .await
        {
            Err(error) => break error,
            Ok(_) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "a deleted ServiceAccount's token still works"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // Clean up: the stores, through the API, and the ServiceAccounts.
    for (tenant, id) in [(&ours, &mine), (&theirs, &other)] {
        api.delete_store(env.as_tenant(
            tenant,
            DeleteStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("delete");
    }
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), caller::NAMESPACE);
    for name in ["partner", "stranger"] {
        let _ = accounts.delete(name, &DeleteParams::default()).await;
    }
    let left = namespaces
        .list_metadata(
            &ListParams::default()
                .labels(&format!("store-platform.io/tenant in ({ours},{theirs})")),
        )
        .await
        .expect("list");
    assert!(
        left.items
            .iter()
            .all(|ns| ns.metadata.deletion_timestamp.is_some()),
        "stores left behind"
    );
}
