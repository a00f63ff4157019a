//! Prometheus metrics: the `/metrics` HTTP endpoint every service exposes on its admin port, and (with the
//! `kubernetes` feature) a client layer that times every request to the API server.

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prometheus_client::{encoding::text::encode, registry::Registry};

use crate::Shutdown;

/// Called before each scrape to refresh gauges computed from current state.
pub type Refresh = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
struct Scrape {
    registry: Arc<Registry>,
    refresh: Option<Refresh>,
}

async fn metrics(State(scrape): State<Scrape>) -> impl IntoResponse {
    if let Some(refresh) = &scrape.refresh {
        refresh();
    }
    let mut body = String::new();
    match encode(&mut body, &scrape.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(error) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            error.to_string(),
        )
            .into_response(),
    }
}

/// The admin router: `GET /metrics`.
pub fn router(registry: Arc<Registry>, refresh: Option<Refresh>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Scrape { registry, refresh })
}

/// Serves `/metrics` on `addr` until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    refresh: Option<Refresh>,
    shutdown: Shutdown,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "serving metrics");
    tokio::spawn(async move {
        let server = axum::serve(listener, router(registry, refresh))
            .with_graceful_shutdown(shutdown.wait());
        if let Err(error) = server.await {
            tracing::warn!(%error, "metrics server failed");
        }
    });
    Ok(bound)
}

#[cfg(feature = "kubernetes")]
pub use kube_requests::{KubeRequestLabels, KubeRequestMetrics, client_with_metrics};

#[cfg(feature = "kubernetes")]
mod kube_requests {
    use std::{
        task::{Context, Poll},
        time::Instant,
    };

    use futures::future::BoxFuture;
    use prometheus_client::{
        encoding::EncodeLabelSet,
        metrics::{family::Family, histogram::Histogram},
    };

    /// Labels of an API-server request.
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct KubeRequestLabels {
        pub method: String,
        pub resource: String,
        pub code: String,
    }

    /// Request latency by method, resource and status code. Watches are left out: they last as long as they are
    /// open, which says nothing about the API server's speed.
    pub type KubeRequestMetrics = Family<KubeRequestLabels, Histogram>;

    pub fn new_histogram() -> Histogram {
        Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ])
    }

    /// The resource a request path names: `/apis/apps/v1/namespaces/x/statefulsets/y` → `statefulsets`;
    /// a subresource is appended (`pods/status`).
    pub fn resource_of(path: &str) -> String {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest = match parts.as_slice() {
            ["api", _version, rest @ ..] => rest,
            ["apis", _group, _version, rest @ ..] => rest,
            _ => return "other".to_owned(),
        };
        let rest = match rest {
            ["namespaces", _name, tail @ ..] if !tail.is_empty() => tail,
            other => other,
        };
        match rest {
            [] => "discovery".to_owned(),
            [resource] | [resource, _] => (*resource).to_owned(),
            [resource, _, subresource, ..] => format!("{resource}/{subresource}"),
        }
    }

    #[derive(Clone)]
    pub struct Layer {
        metrics: KubeRequestMetrics,
    }

    pub struct Service<S> {
        inner: S,
        metrics: KubeRequestMetrics,
    }

    impl<S> tower::Layer<S> for Layer {
        type Service = Service<S>;

        fn layer(&self, inner: S) -> Service<S> {
            Service {
                inner,
                metrics: self.metrics.clone(),
            }
        }
    }

    impl<S, B, R> tower::Service<http::Request<B>> for Service<S>
    where
        S: tower::Service<http::Request<B>, Response = http::Response<R>>,
        S::Future: Send + 'static,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, request: http::Request<B>) -> Self::Future {
            let watching = request
                .uri()
                .query()
                .is_some_and(|q| q.contains("watch=true"));
            let method = request.method().as_str().to_owned();
            let resource = resource_of(request.uri().path());
            let future = self.inner.call(request);
            if watching {
                return Box::pin(future);
            }
            let metrics = self.metrics.clone();
            let start = Instant::now();
            Box::pin(async move {
                let result = future.await;
                let code = match &result {
                    Ok(response) => response.status().as_u16().to_string(),
                    Err(_) => "error".to_owned(),
                };
                metrics
                    .get_or_create(&KubeRequestLabels {
                        method,
                        resource,
                        code,
                    })
                    .observe(start.elapsed().as_secs_f64());
                result
            })
        }
    }

    /// A client whose requests are timed into `metrics`.
    pub fn client_with_metrics(
        config: kube::Config,
        metrics: KubeRequestMetrics,
    ) -> Result<kube::Client, kube::Error> {
        Ok(kube::client::ClientBuilder::try_from(config)?
            .with_layer(&Layer { metrics })
            .build())
    }

    /// A metric family whose histograms have buckets for API-server latency.
    pub fn family() -> KubeRequestMetrics {
        Family::new_with_constructor(new_histogram)
    }

    #[cfg(test)]
    mod tests {
        use super::resource_of;

        #[test]
        fn request_paths_name_their_resource() {
            assert_eq!(resource_of("/api/v1/namespaces/store-a/pods"), "pods");
            assert_eq!(
                resource_of("/api/v1/namespaces/store-a/pods/mariadb-0/status"),
                "pods/status"
            );
            assert_eq!(
                resource_of("/apis/apps/v1/namespaces/store-a/statefulsets/mariadb"),
                "statefulsets"
            );
            assert_eq!(resource_of("/api/v1/namespaces/store-a"), "namespaces");
            assert_eq!(resource_of("/api/v1/namespaces"), "namespaces");
            assert_eq!(
                resource_of("/apis/events.k8s.io/v1/namespaces/store-a/events"),
                "events"
            );
            assert_eq!(resource_of("/version"), "other");
        }
    }
}

#[cfg(feature = "kubernetes")]
pub use kube_requests::family as kube_request_family;
