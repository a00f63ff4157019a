//! The gateway's HTTP routes: gRPC (health, reflection) by path, everything else the dashboard's static files with a
//! fallback to `index.html` so client-side routes survive a reload.

use std::path::PathBuf;

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use tower::ServiceExt as _;
use tower_http::services::{ServeDir, ServeFile};

/// What the router serves.
#[derive(Debug)]
pub struct AppState {
    /// Directory of the built dashboard.
    pub web_root: PathBuf,
    /// The gateway's own gRPC services (health, reflection).
    pub grpc: tonic::service::Routes,
}

/// The whole gateway as one router, so tests drive it with `oneshot`.
pub fn app(state: AppState) -> Router {
    let index = state.web_root.join("index.html");
    let files = ServeDir::new(&state.web_root).fallback(ServeFile::new(index));
    let static_or_unimplemented = move |request: Request| {
        let files = files.clone();
        async move {
            if is_grpc(request.headers()) {
                return unimplemented_grpc(request.uri().path());
            }
            match files.oneshot(request).await {
                Ok(response) => response.map(Body::new),
                Err(infallible) => match infallible {},
            }
        }
    };
    state
        .grpc
        .into_axum_router()
        .fallback(static_or_unimplemented)
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// A gRPC call to a path the gateway does not route answers `Unimplemented`, never the HTML fallback.
fn unimplemented_grpc(path: &str) -> Response {
    tonic::Status::unimplemented(format!("the gateway does not route {path}"))
        .into_http::<Body>()
        .into_response()
}
