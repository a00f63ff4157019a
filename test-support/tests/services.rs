//! End to end: the three service binaries start against the local control plane, answer health and reflection
//! (v1 and v1alpha), refuse calls without a tenant, serve the dashboard over HTTP/1.1, forward gRPC-web with a
//! token (buf curl: reflection and a WatchStores stream), and stop cleanly on SIGTERM.
//!
//! The binaries come from `$STORE_PLATFORM_BIN_DIR` or the workspace's `target/debug` (`make test` builds them).

use std::{path::Path, process::Command, time::Duration};

use futures::StreamExt as _;
use store_platform_proto::v1::{
    CreateStoreRequest, Engine, WatchStoresRequest,
    provisioner_service_client::ProvisionerServiceClient,
    status_service_client::StatusServiceClient,
};
use store_platform_test_support::{
    TestEnv, buf, caller,
    process::{ServiceProcess as Service, free_port, http_get, tokens_file},
};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

/// Waits, through the health Watch stream, until `service` is SERVING.
async fn serving(channel: Channel, service: &str) {
    let mut health = HealthClient::new(channel);
    let mut updates = health
        .watch(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health watch")
        .into_inner();
    let wait = async {
        while let Some(update) = updates.next().await {
            if update.expect("health update").status == ServingStatus::Serving as i32 {
                return;
            }
        }
        panic!("health stream for {service:?} ended before SERVING");
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("{service:?} not SERVING in time"));
}

async fn services_v1(channel: Channel) -> Vec<String> {
    use v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection v1")
        .into_inner();
    match responses
        .next()
        .await
        .expect("a response")
        .expect("ok")
        .message_response
    {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

async fn services_v1alpha(channel: Channel) -> Vec<String> {
    use v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    match responses
        .next()
        .await
        .expect("a response")
        .expect("ok")
        .message_response
    {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

/// Runs `buf curl` (from the npm package `@bufbuild/buf`, installed by `scripts/tools.sh`) over plaintext HTTP/2.
fn buf_curl(args: &[&str]) -> String {
    buf::curl_ok(&["--protocol", "grpc"], args)
}

#[tokio::test]
async fn the_three_services_serve_health_and_reflection_and_stop_on_sigterm() {
    let env = TestEnv::shared();
    let scratch = tempfile::tempdir().expect("temp dir");
    let web_root = scratch.path().join("web");
    std::fs::create_dir(&web_root).expect("web root");
    std::fs::write(
        web_root.join("index.html"),
        "<!doctype html><title>store-platform</title>",
    )
    .expect("index");
    let kubeconfig = env.kubeconfig_path().display().to_string();
    let (provisioner_port, status_port, gateway_port) = (free_port(), free_port(), free_port());

    let mut provisioner = Service::start(
        "provisioner",
        &[
            ("KUBECONFIG", kubeconfig.clone()),
            ("GRPC_ADDR", format!("127.0.0.1:{provisioner_port}")),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ],
        scratch.path(),
    );
    let mut status = Service::start(
        "status",
        &[
            ("KUBECONFIG", kubeconfig),
            ("GRPC_ADDR", format!("127.0.0.1:{status_port}")),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("HEARTBEAT_INTERVAL", "1s".to_owned()),
        ],
        scratch.path(),
    );
    // The gateway knows only the token's SHA-256.
    let token = "system-test-token";
    let tokens = tokens_file(scratch.path(), "system", "system-test", token, false);
    let mut gateway = Service::start(
        "gateway",
        &[
            ("HTTP_ADDR", format!("127.0.0.1:{gateway_port}")),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("WEB_ROOT", web_root.display().to_string()),
            ("TOKENS_FILE", tokens.display().to_string()),
            (
                "PROVISIONER_URL",
                format!("http://127.0.0.1:{provisioner_port}"),
            ),
            ("STATUS_URL", format!("http://127.0.0.1:{status_port}")),
        ],
        scratch.path(),
    );

    let provisioner_channel = provisioner.channel(provisioner_port).await;
    let status_channel = status.channel(status_port).await;
    let gateway_channel = gateway.channel(gateway_port).await;

    // Health: each server as a whole, and the API services once Kubernetes answered.
    serving(provisioner_channel.clone(), "").await;
    serving(
        provisioner_channel.clone(),
        "store_platform.v1.ProvisionerService",
    )
    .await;
    serving(status_channel.clone(), "store_platform.v1.StatusService").await;
    serving(gateway_channel.clone(), "").await;

    // Reflection, both versions, on every server.
    for channel in [&provisioner_channel, &status_channel, &gateway_channel] {
        for listed in [
            services_v1(channel.clone()).await,
            services_v1alpha(channel.clone()).await,
        ] {
            for expected in [
                "store_platform.v1.ProvisionerService",
                "store_platform.v1.StatusService",
                "grpc.health.v1.Health",
            ] {
                assert!(
                    listed.iter().any(|s| s == expected),
                    "{expected} missing from {listed:?}"
                );
            }
        }
    }

    // An operator's client with no .proto files: buf curl lists methods and calls health through reflection.
    let provisioner_url = format!("http://127.0.0.1:{provisioner_port}");
    let methods = buf_curl(&["--list-methods", &provisioner_url]);
    for method in [
        "store_platform.v1.ProvisionerService/CreateStore",
        "store_platform.v1.StatusService/WatchStores",
    ] {
        assert!(
            methods.contains(method),
            "{method} missing from buf curl --list-methods:\n{methods}"
        );
    }
    let health = buf_curl(&[
        "-d",
        r#"{"service":"store_platform.v1.ProvisionerService"}"#,
        &format!("{provisioner_url}/grpc.health.v1.Health/Check"),
    ]);
    assert!(health.contains("SERVING"), "{health}");

    // The provisioner answers an authenticated caller only; a call without a token never reaches Kubernetes.
    let error = ProvisionerServiceClient::new(provisioner_channel)
        .create_store(CreateStoreRequest {
            store_id: "shoes".into(),
            display_name: "Shoes".into(),
            engine: Engine::Woocommerce as i32,
            admin_email: "owner@example.com".into(),
            source: None,
        })
        .await
        .expect_err("no token");
    assert_eq!(error.code(), tonic::Code::Unauthenticated);
    assert!(
        error.message().starts_with("authorization: "),
        "{}",
        error.message()
    );
    let error = StatusServiceClient::new(status_channel)
        .watch_stores(WatchStoresRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(error.code(), tonic::Code::Unauthenticated);

    // As the README shows an operator: a token from `kubectl create token` for a ServiceAccount in the caller policy
    // (here the tests' caller), sent with buf curl.
    let kubectl = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/bin/kubectl"))
        .args([
            "-n",
            caller::NAMESPACE,
            "create",
            "token",
            caller::NAME,
            "--audience",
            store_platform_proto::TOKEN_AUDIENCE,
        ])
        .env("KUBECONFIG", env.kubeconfig_path())
        .output()
        .expect("run kubectl");
    assert!(
        kubectl.status.success(),
        "kubectl create token: {}",
        String::from_utf8_lossy(&kubectl.stderr)
    );
    let operator_token = String::from_utf8(kubectl.stdout)
        .expect("token")
        .trim()
        .to_owned();
    let listed = buf_curl(&[
        "-H",
        &format!("authorization: Bearer {operator_token}"),
        "-H",
        "x-store-platform-tenant: acme",
        "-d",
        "{}",
        &format!("{provisioner_url}/store_platform.v1.ProvisionerService/ListStores"),
    ]);
    assert!(listed.trim_start().starts_with('{'), "{listed}");
    let refused = buf::curl(
        &["--protocol", "grpc"],
        &[
            "-H",
            "x-store-platform-tenant: acme",
            "-d",
            "{}",
            &format!("{provisioner_url}/store_platform.v1.ProvisionerService/ListStores"),
        ],
    );
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("unauthenticated"), "{said}");

    // Through the gateway, as gRPC-web: reflection lists the platform's services, and WatchStores streams (its
    // snapshot, then a heartbeat a second later) until buf curl's own timeout ends the call.
    let gateway_url = format!("http://127.0.0.1:{gateway_port}");
    let listed = buf::curl(
        &["--protocol", "grpcweb"],
        &["--list-services", &gateway_url],
    );
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("store_platform.v1.StatusService"),
        "{listed}"
    );
    let authorization = format!("authorization: Bearer {token}");
    let watched = buf::curl(
        &["--protocol", "grpcweb", "--timeout", "4s"],
        &[
            "-H",
            &authorization,
            "-d",
            "{}",
            &format!("{gateway_url}/store_platform.v1.StatusService/WatchStores"),
        ],
    );
    let watched = String::from_utf8_lossy(&watched.stdout);
    assert!(watched.contains("\"snapshot\""), "{watched}");
    assert!(watched.contains("\"heartbeat\""), "{watched}");
    let refused = buf::curl(
        &["--protocol", "grpcweb"],
        &[
            "-d",
            "{}",
            &format!("{gateway_url}/store_platform.v1.ProvisionerService/ListStores"),
        ],
    );
    let refused_text = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && refused_text.contains("unauthenticated"),
        "{refused_text}"
    );

    // The gateway serves the dashboard over HTTP/1.1 on the same port as gRPC.
    let page = http_get(([127, 0, 0, 1], gateway_port).into(), "/stores/shoes")
        .await
        .expect("GET the dashboard");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<title>store-platform</title>"), "{page}");

    for service in [provisioner, status, gateway] {
        let name = service.name.clone();
        let logs = service.logs();
        assert!(
            service.terminate(Duration::from_secs(15)),
            "{name} did not exit cleanly on SIGTERM:\n{logs}"
        );
    }
}
