//! The status service: the read side of the platform. It owns the StatusService gRPC API.

mod args;
mod grpc;

use anyhow::Context as _;
pub use args::Args;
use store_platform_proto::v1::status_service_server::StatusServiceServer;
use store_platform_runtime::{Shutdown, grpc as server, kubernetes, telemetry};
use tonic_health::ServingStatus;

/// Runs the status service until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> anyhow::Result<()> {
    telemetry::init(&args.telemetry)?;
    let shutdown = Shutdown::on_signals().context("failed to install signal handlers")?;
    let client = kubernetes::client().await?;

    let (routes, health) = server::standard_routes().await?;
    let routes = routes.add_service(StatusServiceServer::new(grpc::Status::new(client.clone())));
    let incoming = server::bind(args.grpc_addr)?;
    tracing::info!(addr = %args.grpc_addr, "serving gRPC");

    let service = store_platform_proto::SERVICE_NAMES[1];
    health
        .set_service_status(service, ServingStatus::NotServing)
        .await;
    tokio::spawn(kubernetes::report_when_reachable(
        client,
        health,
        service,
        shutdown.clone(),
    ));

    server::serve(routes, incoming, shutdown, args.shutdown_grace).await?;
    tracing::info!("stopped");
    Ok(())
}
