//! The status service: the read side of the platform. One watch of store namespaces feeds an in-memory index;
//! the StatusService API streams it to every subscriber.

mod args;
pub mod grpc;
pub mod hub;
pub mod index;
pub mod metrics;

use std::sync::Arc;

use anyhow::Context as _;
pub use args::Args;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use store_platform_proto::v1::status_service_server::StatusServiceServer;
use store_platform_runtime::{
    Shutdown,
    auth::Authenticator,
    grpc as server, kubernetes, record, telemetry,
    watch::{Watches, watch},
};
use tonic_health::ServingStatus;

/// The index's watch of store namespaces, as its metrics name it.
pub const INDEX_WATCH: &str = "store-namespaces";

/// Requests larger than this are refused before decoding (RESOURCE_EXHAUSTED); a status request is a few bytes.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Runs the status service until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> anyhow::Result<()> {
    telemetry::init(&args.telemetry)?;
    let shutdown = Shutdown::on_signals().context("failed to install signal handlers")?;
    let client = kubernetes::client().await?;
    let running = start(args, client, shutdown).await?;
    running.task.await??;
    tracing::info!("stopped");
    Ok(())
}

/// A status service serving on `addr` until its shutdown fires.
#[derive(Debug)]
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub metrics_addr: std::net::SocketAddr,
    pub hub: Arc<hub::Hub>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts the namespace watch and the API with `client`.
pub async fn start(
    args: Args,
    client: kube::Client,
    shutdown: Shutdown,
) -> anyhow::Result<Running> {
    let hub = hub::Hub::new(args.subscriber_buffer);
    let auth = Authenticator::from_args(&args.auth, client.clone(), shutdown.clone()).await?;
    let watches = Watches::new();
    let events = watch(
        Api::<Namespace>::all(client),
        INDEX_WATCH,
        &record::managed_selector(),
        watches.clone(),
    );
    let (feeding, stop_feeding) = (hub.clone(), shutdown.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = feeding.run(events) => {}
            () = stop_feeding.wait() => {}
        }
    });

    let mut registry = prometheus_client::registry::Registry::with_prefix("store_platform");
    hub.metrics.register(&mut registry);
    auth.register(&mut registry);
    watches.register(&mut registry);
    let (counted, aged) = (hub.clone(), watches.clone());
    let refresh: store_platform_runtime::metrics::Refresh = Arc::new(move || {
        counted
            .metrics
            .subscribers
            .set(i64::try_from(counted.subscribers()).unwrap_or(i64::MAX));
        aged.refresh();
    });
    let metrics_addr = store_platform_runtime::metrics::serve(
        args.metrics_addr,
        Arc::new(registry),
        Some(refresh),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("failed to listen on {}", args.metrics_addr))?;

    let (routes, health) = server::standard_routes().await?;
    let api = grpc::Status::new(hub.clone(), auth, args.heartbeat, shutdown.clone());
    let routes = routes
        .add_service(StatusServiceServer::new(api).max_decoding_message_size(MAX_REQUEST_BYTES));
    let incoming = server::bind(args.grpc_addr)?;
    let addr = incoming.local_addr().context("listening address")?;
    tracing::info!(%addr, "serving gRPC");

    // SERVING once the first full listing is in the index, and while its watch has heard from the API server
    // within the bound a silent watch is restarted at; NOT_SERVING otherwise, so that Kubernetes and load balancers
    // send subscribers elsewhere until it has.
    let service = store_platform_proto::SERVICE_NAMES[1];
    health
        .set_service_status(service, ServingStatus::NotServing)
        .await;
    let (synced, stop_reporting) = (hub.clone(), shutdown.clone());
    tokio::spawn(async move {
        synced.synced().await;
        let mut serving = None;
        loop {
            let fresh = watches
                .age(INDEX_WATCH)
                .is_some_and(|age| age <= store_platform_runtime::watch::SILENCE);
            if serving != Some(fresh) {
                if !fresh {
                    tracing::warn!(
                        bound = ?store_platform_runtime::watch::SILENCE,
                        "the store index has not heard from the API server within its bound: NOT_SERVING"
                    );
                }
                health
                    .set_service_status(
                        service,
                        if fresh {
                            ServingStatus::Serving
                        } else {
                            ServingStatus::NotServing
                        },
                    )
                    .await;
                serving = Some(fresh);
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                () = stop_reporting.wait() => return,
            }
        }
    });

    let task = tokio::spawn(async move {
        server::serve(
            routes,
            incoming,
            shutdown,
            args.shutdown_grace,
            MAX_REQUEST_BYTES,
        )
        .await?;
        anyhow::Ok(())
    });
    Ok(Running {
        addr,
        metrics_addr,
        hub,
        task,
    })
}
