//! The gateway router, driven in process with `oneshot`: static files, the SPA fallback, CORS, unknown gRPC paths,
//! authentication and the metadata the backends receive.

mod support;

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use http_body_util::BodyExt as _;
use prost::Message as _;
use store_platform_proto::v1::{GetStoreRequest, GetStoreResponse};
use support::{
    ALICE, GATEWAY_SA_TOKEN, OPS, Provisioner, Settings, StatusBackend, dashboard, router,
    serve_backends,
};
use tower::ServiceExt as _;

async fn body_text(response: axum::response::Response) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A router whose backends are not running (for tests that must not reach one).
async fn without_backends(web: &std::path::Path, settings: Settings) -> axum::Router {
    router(web, ([127, 0, 0, 1], 9).into(), settings).await.0
}

/// One gRPC frame holding `message`.
fn frame(message: &impl prost::Message) -> Vec<u8> {
    let encoded = message.encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(encoded.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&encoded);
    frame
}

fn grpc_request(path: &str, token: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut builder = Request::post(path)
        .version(http::Version::HTTP_2)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::from(body)).expect("request")
}

#[tokio::test]
async fn static_files_are_served_with_their_content_type() {
    let web = dashboard();
    let response = without_backends(web.path(), Settings::default())
        .await
        .oneshot(
            Request::get("/assets/app.js")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.contains("javascript"), "{content_type}");
    assert_eq!(body_text(response).await, "console.log('hi')");
}

#[tokio::test]
async fn unknown_paths_fall_back_to_the_dashboard_for_client_side_routes() {
    let web = dashboard();
    let response = without_backends(web.path(), Settings::default())
        .await
        .oneshot(
            Request::get("/stores/shoes")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        body_text(response)
            .await
            .contains("<title>dashboard</title>")
    );
}

#[tokio::test]
async fn grpc_calls_to_unrouted_paths_answer_unimplemented_not_html() {
    let web = dashboard();
    for (path, content_type) in [
        (
            "/store_platform.v1.NoSuchService/Anything",
            "application/grpc",
        ),
        (
            "/store_platform.v1.NoSuchService/Anything",
            "application/grpc-web+proto",
        ),
        (
            "/store_platform.v1.ProvisionerService/NoSuchMethod",
            "application/grpc-web+proto",
        ),
    ] {
        let response = without_backends(web.path(), Settings::default())
            .await
            .oneshot(
                Request::post(path)
                    .version(http::Version::HTTP_2)
                    .header(header::CONTENT_TYPE, content_type)
                    .header(header::AUTHORIZATION, format!("Bearer {ALICE}"))
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "gRPC errors travel in grpc-status"
        );
        if let Some(status) = response.headers().get("grpc-status") {
            assert_eq!(status, "12", "{path} {content_type}");
        } else {
            // gRPC-web may carry the status in a trailer frame in the body.
            let text = body_text(response).await;
            assert!(
                text.contains("grpc-status:12"),
                "{path} {content_type}: {text}"
            );
        }
    }
}

#[tokio::test]
async fn health_is_answered_by_the_gateway_itself() {
    let web = dashboard();
    // An empty HealthCheckRequest: a gRPC frame with no flags and a zero-length message.
    let response = without_backends(web.path(), Settings::default())
        .await
        .oneshot(grpc_request(
            "/grpc.health.v1.Health/Check",
            None,
            vec![0u8, 0, 0, 0, 0],
        ))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    // HealthCheckResponse { status: SERVING (1) } = field 1, varint 1.
    assert_eq!(&collected.to_bytes()[..], &[0, 0, 0, 0, 2, 0x08, 0x01]);
}

#[tokio::test]
async fn cors_preflight_allows_only_listed_origins_and_what_grpc_web_needs() {
    let web = dashboard();
    let settings = Settings {
        cors_origins: vec!["https://admin.example.com"],
        ..Settings::default()
    };
    let app = without_backends(web.path(), settings).await;
    let preflight = |origin: &str| {
        Request::options("/store_platform.v1.ProvisionerService/CreateStore")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "content-type,x-grpc-web,authorization",
            )
            .body(Body::empty())
            .expect("request")
    };
    let allowed = app
        .clone()
        .oneshot(preflight("https://admin.example.com"))
        .await
        .expect("response");
    assert_eq!(allowed.status(), StatusCode::OK);
    let headers = allowed.headers();
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://admin.example.com"
    );
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_METHODS], "POST");
    let allowed_headers = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .expect("ascii");
    for needed in ["content-type", "authorization", "x-grpc-web"] {
        assert!(allowed_headers.contains(needed), "{allowed_headers}");
    }
    let refused = app
        .oneshot(preflight("https://evil.example.com"))
        .await
        .expect("response");
    assert!(
        !refused
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn a_call_without_a_valid_token_is_unauthenticated_and_never_reaches_a_backend() {
    let web = dashboard();
    let provisioner = Provisioner::default();
    let (backend, _task) =
        serve_backends(None, provisioner.clone(), StatusBackend::default()).await;
    let (app, _) = router(web.path(), backend, Settings::default()).await;
    let message = frame(&GetStoreRequest {
        store_id: "shoes".into(),
    });
    for token in [None, Some("not-a-token")] {
        let response = app
            .clone()
            .oneshot(grpc_request(
                "/store_platform.v1.ProvisionerService/GetStore",
                token,
                message.clone(),
            ))
            .await
            .expect("response");
        assert_eq!(response.headers()["grpc-status"], "16", "{token:?}");
    }
    assert_eq!(
        provisioner.calls.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

async fn get_store_as(app: &axum::Router, token: &str, extra: &[(&str, &str)]) -> GetStoreResponse {
    let mut request = grpc_request(
        "/store_platform.v1.ProvisionerService/GetStore",
        Some(token),
        frame(&GetStoreRequest {
            store_id: "shoes".into(),
        }),
    );
    for (name, value) in extra {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    let response = app.clone().oneshot(request).await.expect("response");
    let collected = response.into_body().collect().await.expect("body");
    assert_eq!(collected.trailers().expect("trailers")["grpc-status"], "0");
    GetStoreResponse::decode(&collected.to_bytes()[5..]).expect("decode")
}

#[tokio::test]
async fn the_backend_sees_the_tenant_of_the_token_and_never_what_the_client_claimed() {
    let web = dashboard();
    let (backend, _task) =
        serve_backends(None, Provisioner::default(), StatusBackend::default()).await;
    let (app, _) = router(web.path(), backend, Settings::default()).await;

    let claimed = [
        ("x-store-platform-tenant", "globex"),
        ("x-store-platform-scope", "all-tenants"),
    ];
    let alice = get_store_as(&app, ALICE, &claimed)
        .await
        .store
        .expect("store");
    assert_eq!(alice.tenant, "acme");
    // The backend sees the gateway's ServiceAccount token, never the person's API token.
    assert_eq!(
        alice.display_name,
        format!("scope=;authorization=Bearer {GATEWAY_SA_TOKEN}")
    );

    let ops = get_store_as(&app, OPS, &[]).await.store.expect("store");
    assert_eq!(ops.tenant, "platform");
    assert_eq!(
        ops.display_name,
        format!("scope=all-tenants;authorization=Bearer {GATEWAY_SA_TOKEN}")
    );
}
