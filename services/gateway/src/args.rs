//! Command-line flags; every one can also be set from the environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use store_platform_runtime::TelemetryArgs;

#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "gateway",
    version,
    about = "store-platform gateway: the dashboard and gRPC-web for it"
)]
pub struct Args {
    /// Address for HTTP/1.1 (dashboard, gRPC-web) and HTTP/2 cleartext (gRPC), on one port.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Directory of the built dashboard (`web/dist`).
    #[arg(long, env = "WEB_ROOT", default_value = "web/dist")]
    pub web_root: PathBuf,

    /// How long in-flight requests may finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}
