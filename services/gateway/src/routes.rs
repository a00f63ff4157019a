//! The gateway's HTTP routes: the platform's gRPC services (forwarded) and the gateway's own health and reflection,
//! each speaking gRPC-web and gRPC; everything else is the dashboard's static files, with a fallback to
//! `index.html` so client-side routes survive a reload.

use std::path::PathBuf;

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, header},
    response::{IntoResponse, Response},
};
use tower::{ServiceBuilder, ServiceExt as _};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    services::{ServeDir, ServeFile},
};

use crate::forward::{Forwarder, UnknownSize};

/// What the router serves.
#[derive(Debug)]
pub struct AppState {
    /// Directory of the built dashboard.
    pub web_root: PathBuf,
    /// The gateway's own gRPC services (health, reflection).
    pub grpc: tonic::service::Routes,
    /// Forwards the platform's services to their backends.
    pub forwarder: Forwarder,
    /// Origins allowed to call from other sites (CORS); empty for same-origin only.
    pub cors_origins: Vec<HeaderValue>,
    /// Signing people in with the OpenID provider, if configured.
    pub signin: Option<std::sync::Arc<crate::signin::SignInConfig>>,
}

/// Only what a gRPC-web client needs: POST, its request headers, and the gRPC status headers it must read.
fn cors(origins: Vec<HeaderValue>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            "x-grpc-web".parse().expect("header name"),
            "x-user-agent".parse().expect("header name"),
            "grpc-timeout".parse().expect("header name"),
            "connect-protocol-version".parse().expect("header name"),
            crate::auth::CSRF_HEADER.parse().expect("header name"),
        ])
        .expose_headers([
            "grpc-status".parse().expect("header name"),
            "grpc-message".parse().expect("header name"),
            "grpc-status-details-bin".parse().expect("header name"),
        ])
        .max_age(std::time::Duration::from_secs(24 * 60 * 60))
}

/// The whole gateway as one router, so tests drive it with `oneshot`.
pub fn app(state: AppState) -> Router {
    // gRPC-web is translated per gRPC route, never for the whole router: it answers 400 to plain HTTP/1.1.
    let grpc_web = ServiceBuilder::new()
        .map_response(|response: http::Response<tonic::body::Body>| {
            response.map(|body| Body::new(UnknownSize(body)))
        })
        .layer(tonic_web::GrpcWebLayer::new());

    let mut router = Router::new();
    for service in state.forwarder.services() {
        router = router.route_service(
            &format!("/{service}/{{*method}}"),
            grpc_web.clone().service(state.forwarder.clone()),
        );
    }
    router = router.merge(state.grpc.into_axum_router().layer(grpc_web));
    router = router.merge(crate::signin::routes(
        state.forwarder.auth().clone(),
        state.signin,
    ));
    if !state.cors_origins.is_empty() {
        router = router.layer(cors(state.cors_origins));
    }

    let index = state.web_root.join("index.html");
    let files = ServeDir::new(&state.web_root).fallback(ServeFile::new(index));
    let static_or_unimplemented = move |request: Request| {
        let files = files.clone();
        async move {
            if is_grpc(request.headers()) {
                return unimplemented_grpc(&request);
            }
            match files.oneshot(request).await {
                Ok(response) => response.map(Body::new),
                Err(infallible) => match infallible {},
            }
        }
    };
    router
        .fallback(static_or_unimplemented)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// A gRPC call to a path the gateway does not route answers `Unimplemented`, never the HTML fallback; a gRPC-web
/// client gets it in its own content type.
fn unimplemented_grpc(request: &Request) -> Response {
    let mut response = tonic::Status::unimplemented(format!(
        "the gateway does not route {}",
        request.uri().path()
    ))
    .into_http::<Body>();
    if let Some(content_type) = request.headers().get(header::CONTENT_TYPE)
        && content_type.as_bytes().starts_with(b"application/grpc-web")
    {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    response.into_response()
}
