//! The gateway: one HTTP port for the browser (the dashboard's files and gRPC-web) and for gRPC clients, in front
//! of the provisioner and the status service.

mod args;
pub mod auth;
pub mod forward;
pub mod limit;
pub mod methods;
pub mod metrics;
mod routes;

use std::{collections::HashMap, sync::Arc};

use anyhow::Context as _;
pub use args::Args;
pub use routes::{AppState, app};
use store_platform_runtime::{Shutdown, grpc as server, telemetry};
use tonic::transport::{Channel, Endpoint};

/// Runs the gateway until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> anyhow::Result<()> {
    telemetry::init(&args.telemetry)?;
    let shutdown = Shutdown::on_signals().context("failed to install signal handlers")?;
    let running = start(args, shutdown).await?;
    running.task.await??;
    tracing::info!("stopped");
    Ok(())
}

/// A gateway serving on `addr` until its shutdown fires.
#[derive(Debug)]
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub metrics_addr: std::net::SocketAddr,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn backend_channel(url: &str, connect_timeout: std::time::Duration) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{url} is not a URL"))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// Loads the tokens and starts serving.
pub async fn start(args: Args, shutdown: Shutdown) -> anyhow::Result<Running> {
    let auth = auth::Authenticator::watch_file(
        args.tokens_file.clone(),
        args.tokens_reload_interval,
        shutdown.clone(),
    )
    .await
    .context("failed to load the API tokens")?;
    let backend_token = auth::BackendToken::watch_file(
        args.backend_token_file.clone(),
        args.tokens_reload_interval,
        shutdown.clone(),
    )
    .await
    .context("failed to load the gateway's token for the backends")?;
    let provisioner = forward::Backend {
        name: "provisioner",
        channel: backend_channel(&args.provisioner_url, args.backend_connect_timeout)?,
    };
    let status = forward::Backend {
        name: "status",
        channel: backend_channel(&args.status_url, args.backend_connect_timeout)?,
    };
    let backends = HashMap::from([
        (
            store_platform_proto::SERVICE_NAMES[0].to_owned(),
            provisioner,
        ),
        (store_platform_proto::SERVICE_NAMES[1].to_owned(), status),
    ]);
    let metrics = Arc::new(metrics::Metrics::default());
    let mut registry = prometheus_client::registry::Registry::with_prefix("store_platform");
    metrics.register(&mut registry);
    let metrics_addr = store_platform_runtime::metrics::serve(
        args.metrics_addr,
        Arc::new(registry),
        None,
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("failed to listen on {}", args.metrics_addr))?;

    let forwarder = forward::Forwarder::new(forward::Config {
        backends,
        auth,
        backend_token,
        limiter: limit::RateLimiter::new(args.mutations_per_minute, args.mutation_burst),
        metrics,
        unary_timeout: args.unary_timeout,
        max_request_bytes: args.max_request_bytes,
    });
    let cors_origins = args
        .cors_origins
        .iter()
        .filter(|o| !o.is_empty())
        .map(|o| o.parse().with_context(|| format!("CORS origin {o:?}")))
        .collect::<anyhow::Result<_>>()?;
    let (grpc, _health) = server::standard_routes().await?;
    let router = app(AppState {
        web_root: args.web_root.clone(),
        grpc,
        forwarder,
        cors_origins,
    });
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("failed to listen on {}", args.http_addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, web_root = %args.web_root.display(), "serving HTTP, gRPC-web and gRPC");

    let grace = args.shutdown_grace;
    let task = tokio::spawn(async move {
        // gRPC writes headers, messages and trailers as separate small frames: never hold them back (Nagle).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let serve = axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().wait());
        tokio::select! {
            result = serve => result.context("the HTTP server failed")?,
            () = async {
                shutdown.wait().await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!("requests still open after the shutdown grace period; closing"),
        }
        anyhow::Ok(())
    });
    Ok(Running {
        addr,
        metrics_addr,
        task,
    })
}
