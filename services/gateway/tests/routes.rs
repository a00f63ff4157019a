//! The gateway router, driven in process with `oneshot`.

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use http_body_util::BodyExt as _;
use store_platform_gateway::{AppState, app};
use tower::ServiceExt as _;

async fn router(web_root: &std::path::Path) -> axum::Router {
    let (grpc, _health) = store_platform_runtime::grpc::standard_routes()
        .await
        .expect("routes");
    app(AppState {
        web_root: web_root.to_owned(),
        grpc,
    })
}

fn dashboard() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>dashboard</title>",
    )
    .expect("index");
    std::fs::create_dir(dir.path().join("assets")).expect("assets");
    std::fs::write(dir.path().join("assets/app.js"), "console.log('hi')").expect("asset");
    dir
}

async fn body_text(response: axum::response::Response) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn static_files_are_served_with_their_content_type() {
    let web = dashboard();
    let response = router(web.path())
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
    let response = router(web.path())
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
async fn grpc_calls_to_unrouted_services_answer_unimplemented_not_html() {
    let web = dashboard();
    for content_type in ["application/grpc", "application/grpc-web+proto"] {
        let response = router(web.path())
            .await
            .oneshot(
                Request::post("/store_platform.v1.NoSuchService/Anything")
                    .header(header::CONTENT_TYPE, content_type)
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
        assert_eq!(
            response.headers()["grpc-status"],
            "12",
            "{content_type}: Unimplemented"
        );
    }
}

#[tokio::test]
async fn health_is_answered_by_the_gateway_itself() {
    let web = dashboard();
    // An empty HealthCheckRequest: a gRPC frame with no flags and a zero-length message.
    let frame = vec![0u8, 0, 0, 0, 0];
    let response = router(web.path())
        .await
        .oneshot(
            Request::post("/grpc.health.v1.Health/Check")
                .header(header::CONTENT_TYPE, "application/grpc")
                .header("te", "trailers")
                .body(Body::from(frame))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    // HealthCheckResponse { status: SERVING (1) } = field 1, varint 1.
    assert_eq!(&collected.to_bytes()[..], &[0, 0, 0, 0, 2, 0x08, 0x01]);
}
