//! People signing in to the dashboard with their organisation's identity provider, in Chromium (web/e2e/signin.mjs):
//! a real OpenID provider (`oidc-provider` from npm, tools/oidc/provider.mjs) with users, passwords, groups and keys;
//! the provisioner, the status service and the gateway as processes on the local control plane. The gateway keeps
//! sessions in a namespace of their own, acting as its ServiceAccount with only the Role the chart gives it there.
//! An owner of tenant A creates a store, a viewer sees it and cannot act on it (the page hides the actions, the API
//! refuses them), a person of tenant B sees nothing of it, the provider rotates its key and the owner signs in again
//! and deletes the store, and once signed out the page can call nothing. Afterwards the audit log names the person
//! (subject and e-mail) for each change, and no log holds a session cookie, a token or the client's secret.
//!
//! Screenshots land in `test-output/signin/`.

mod stack;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    core::v1::Secret,
    rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
};
use kube::{
    Api,
    api::{ListParams, ObjectMeta, PostParams},
};
use serde_json::json;
use stack::{browser_prerequisites, start_gateway, start_provisioner, start_status, workspace};
use store_platform_test_support::{
    TestEnv,
    oidc::OidcProvider,
    process::{free_port, tokens_file},
};

const CLIENT_SECRET: &str = "dashboard-client-secret-never-logged";

/// The Role the chart gives the gateway in its sessions namespace (chart.rs holds the chart to these rules).
async fn sessions_role(env: &TestEnv, namespace: &str, gateway: (&str, &str)) {
    let client = env.client().await;
    let meta = ObjectMeta {
        name: Some("gateway-sessions".into()),
        namespace: Some(namespace.into()),
        ..ObjectMeta::default()
    };
    Api::<Role>::namespaced(client.clone(), namespace)
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta.clone(),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["secrets".into()]),
                    verbs: ["get", "list", "watch", "create", "update", "delete"]
                        .map(str::to_owned)
                        .to_vec(),
                    ..PolicyRule::default()
                }]),
            },
        )
        .await
        .expect("the sessions Role");
    Api::<RoleBinding>::namespaced(client, namespace)
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: meta,
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: "gateway-sessions".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: gateway.1.into(),
                    namespace: Some(gateway.0.into()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .expect("the sessions RoleBinding");
}

#[tokio::test]
async fn people_sign_in_with_the_identity_provider_and_see_and_do_what_their_role_allows_in_chromium()
 {
    let root = workspace();
    let web_root = root.join("web/dist");
    let chromium = browser_prerequisites(&web_root);
    let env = TestEnv::shared();
    env.ensure_namespace("store-platform").await;
    let pid = std::process::id();
    let (tenant_a, tenant_b) = (format!("signin-a{pid}"), format!("signin-b{pid}"));
    let store_id = format!("signin{pid}");
    let sessions = env.namespace("sessions").await;
    let home = env.namespace("gateway-home").await;
    sessions_role(env, &sessions, (&home, "gateway")).await;

    let scratch = tempfile::tempdir().expect("scratch");
    let logs = scratch.path();
    let (provisioner_port, status_port, gateway_port) = (free_port(), free_port(), free_port());
    let gateway_url = format!("http://localhost:{gateway_port}");
    let user = |sub: &str, groups: &[String]| {
        json!({"sub": sub, "password": format!("{sub}-password"), "email": format!("{sub}@example.test"),
               "name": sub, "groups": groups})
    };
    let idp = OidcProvider::start(&json!({
        "port": 0,
        "keys_file": logs.join("keys.json"),
        "clients": [{
            "client_id": "store-platform", "client_secret": CLIENT_SECRET,
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [format!("{gateway_url}/auth/callback")],
            "post_logout_redirect_uris": [gateway_url],
            "response_types": ["code"],
        }],
        "users": [
            user("olivia", &[format!("tenant-{tenant_a}"), "shop-owners".into()]),
            user("vera", &[format!("tenant-{tenant_a}"), "shop-viewers".into()]),
            user("bruno", &[format!("tenant-{tenant_b}"), "shop-owners".into()]),
        ],
    }));

    let selector = format!("store-platform.io/tenant in ({tenant_a},{tenant_b})");
    let _provisioner = start_provisioner(
        env,
        provisioner_port,
        (&format!("signin-test-{pid}"), &selector),
        &[],
        logs,
    );
    let _status = start_status(env, status_port, logs);
    let secret_file = logs.join("client-secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).expect("the client secret");
    let kubeconfig = logs.join("gateway-kubeconfig");
    std::fs::write(&kubeconfig, env.kubeconfig_as(&home, "gateway")).expect("kubeconfig");
    let tokens = tokens_file(logs, "machine", &tenant_a, &format!("machine-{pid}"), false);
    let mut gateway = start_gateway(
        gateway_port,
        (provisioner_port, status_port),
        &web_root,
        &tokens,
        &[
            ("KUBECONFIG", kubeconfig.display().to_string()),
            ("OIDC_ISSUER", idp.issuer.clone()),
            ("OIDC_CLIENT_ID", "store-platform".into()),
            ("OIDC_CLIENT_SECRET_FILE", secret_file.display().to_string()),
            ("OIDC_PROVIDER_NAME", "Test IdP".into()),
            ("OIDC_SCOPES", "openid,email,groups,offline_access".into()),
            ("OIDC_TENANT_GROUP_PREFIX", "tenant-".into()),
            ("OIDC_OWNER_GROUPS", "shop-owners".into()),
            ("OIDC_VIEWER_GROUPS", "shop-viewers".into()),
            ("OIDC_KEYS_MIN_REFRESH", "1s".into()),
            ("PUBLIC_URL", gateway_url.clone()),
            ("SESSION_NAMESPACE", sessions.clone()),
        ],
        logs,
    );
    gateway.channel(gateway_port).await;

    let request = logs.join("harness-request");
    let reply = logs.join("harness-reply");
    let mut browser = Command::new("node")
        .arg(root.join("web/e2e/signin.mjs"))
        .current_dir(root.join("web"))
        .env("GATEWAY_URL", &gateway_url)
        .env("STORE_ID", &store_id)
        .env("TENANT_A", &tenant_a)
        .env("TENANT_B", &tenant_b)
        .env("SCREENSHOTS", root.join("test-output/signin"))
        .env("HARNESS_REQUEST", &request)
        .env("HARNESS_REPLY", &reply)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node web/e2e/signin.mjs");
    let deadline = Instant::now() + Duration::from_secs(600);
    let outcome = loop {
        if let Some(outcome) = browser.try_wait().expect("poll the browser script") {
            break outcome;
        }
        assert!(
            Instant::now() < deadline,
            "the browser script did not finish"
        );
        if let Ok(asked) = std::fs::read_to_string(&request) {
            match asked.trim() {
                "rotate" => idp.rotate_keys().await,
                other => panic!("the browser asked for {other:?}"),
            }
            std::fs::write(&reply, "").expect("the reply");
            std::fs::remove_file(&request).expect("answered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let gateway_logs = gateway.logs();
    assert!(
        outcome.success(),
        "the browser script failed (screenshots in test-output/signin); the gateway said:\n{gateway_logs}"
    );

    // Every session ended with its sign-out: nothing is left in the sessions namespace but sign-ins never finished.
    let left = Api::<Secret>::namespaced(env.client().await, &sessions)
        .list(&ListParams::default().labels("store-platform.io/gateway-session"))
        .await
        .expect("list sessions");
    assert!(left.items.is_empty(), "sessions left: {}", left.items.len());

    // The audit log names the person for each change; no log holds a secret.
    let audit: Vec<&str> = gateway_logs
        .lines()
        .filter(|line| line.contains("audit"))
        .collect();
    let by = |method: &str, who: &str| {
        audit.iter().any(|line| {
            line.contains(method)
                && line.contains(who)
                && line.contains(&format!("{who}@example.test"))
        })
    };
    for (method, who) in [
        ("SignIn", "olivia"),
        ("CreateStore", "olivia"),
        ("SignIn", "vera"),
        ("DeleteStore", "vera"),
        ("DeleteStore", "olivia"),
        ("SignOut", "bruno"),
    ] {
        assert!(
            by(method, who),
            "no audit line for {method} by {who}:\n{}",
            audit.join("\n")
        );
    }
    for secret in [
        CLIENT_SECRET,
        "refresh_token",
        "id_token",
        "store_platform_session=",
    ] {
        assert!(
            !gateway_logs.contains(secret),
            "the gateway's log holds {secret:?}"
        );
    }
    env.delete_namespace(&sessions).await;
    env.delete_namespace(&home).await;
}
