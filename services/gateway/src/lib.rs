//! The gateway: one HTTP port for the browser (the dashboard's files and gRPC-web) and for gRPC clients.

mod args;
mod routes;

use anyhow::Context as _;
pub use args::Args;
pub use routes::{AppState, app};
use store_platform_runtime::{Shutdown, grpc as server, telemetry};

/// Runs the gateway until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> anyhow::Result<()> {
    telemetry::init(&args.telemetry)?;
    let shutdown = Shutdown::on_signals().context("failed to install signal handlers")?;

    let (grpc, _health) = server::standard_routes().await?;
    let router = app(AppState {
        web_root: args.web_root.clone(),
        grpc,
    });
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("failed to listen on {}", args.http_addr))?;
    tracing::info!(addr = %args.http_addr, web_root = %args.web_root.display(), "serving HTTP and gRPC");

    let serve = axum::serve(listener, router).with_graceful_shutdown(shutdown.wait());
    tokio::select! {
        result = serve => result.context("the HTTP server failed")?,
        () = async {
            shutdown.wait().await;
            tokio::time::sleep(args.shutdown_grace).await;
        } => tracing::warn!("requests still open after the shutdown grace period; closing"),
    }
    tracing::info!("stopped");
    Ok(())
}
