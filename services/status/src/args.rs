//! Command-line flags; every one can also be set from the environment.

use std::{net::SocketAddr, time::Duration};

use store_platform_runtime::{TelemetryArgs, auth::AuthArgs};

#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "status",
    version,
    about = "store-platform status: watches store namespaces and streams changes"
)]
pub struct Args {
    /// Address of the gRPC server (StatusService, health, reflection).
    #[arg(long, env = "GRPC_ADDR", default_value = "0.0.0.0:50052")]
    pub grpc_addr: SocketAddr,

    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,

    /// How long in-flight calls may finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// How often an idle WatchStores stream gets a heartbeat, so proxies keep it open.
    #[arg(long, env = "HEARTBEAT_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,

    /// How many changes a subscriber may fall behind before it is sent a fresh snapshot instead.
    #[arg(long, env = "SUBSCRIBER_BUFFER", default_value_t = 1024)]
    pub subscriber_buffer: usize,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}
