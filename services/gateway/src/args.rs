//! Command-line flags; every one can also be set from the environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use store_platform_runtime::TelemetryArgs;

#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "gateway",
    version,
    about = "store-platform gateway: the dashboard, and gRPC-web and gRPC for the platform's services"
)]
pub struct Args {
    /// Address for HTTP/1.1 (dashboard, gRPC-web) and HTTP/2 cleartext (gRPC), on one port.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Address of the Prometheus `/metrics` endpoint (an admin port, apart from the public one).
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,

    /// Directory of the built dashboard (`web/dist`).
    #[arg(long, env = "WEB_ROOT", default_value = "web/dist")]
    pub web_root: PathBuf,

    /// The provisioner's gRPC address.
    #[arg(
        long,
        env = "PROVISIONER_URL",
        default_value = "http://provisioner:50051"
    )]
    pub provisioner_url: String,

    /// The status service's gRPC address.
    #[arg(long, env = "STATUS_URL", default_value = "http://status:50052")]
    pub status_url: String,

    /// How long a connection attempt to a backend may take before the call fails with UNAVAILABLE.
    #[arg(long, env = "BACKEND_CONNECT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub backend_connect_timeout: Duration,

    /// The API tokens: one per line, `<name> <tenant> <sha256 of the token, hex> [admin]`. Re-read when it changes.
    #[arg(
        long,
        env = "TOKENS_FILE",
        default_value = "/etc/store-platform/tokens"
    )]
    pub tokens_file: PathBuf,

    /// The gateway's own ServiceAccount token for the backends (a projected token for the platform's audience,
    /// refreshed in place by the kubelet). Re-read when it changes.
    #[arg(
        long,
        env = "BACKEND_TOKEN_FILE",
        default_value = "/var/run/secrets/store-platform/token"
    )]
    pub backend_token_file: PathBuf,

    /// How often the tokens file and the backend token are checked for changes.
    #[arg(long, env = "TOKENS_RELOAD_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub tokens_reload_interval: Duration,

    /// CreateStore and DeleteStore calls a tenant may make per minute, on average.
    #[arg(long, env = "MUTATIONS_PER_MINUTE", default_value_t = 30)]
    pub mutations_per_minute: u32,

    /// How many of those calls a tenant may make at once, in a burst.
    #[arg(long, env = "MUTATION_BURST", default_value_t = 10)]
    pub mutation_burst: u32,

    /// The longest a unary call may take (streams have no limit).
    #[arg(long, env = "UNARY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub unary_timeout: Duration,

    /// The largest request message accepted, in bytes.
    #[arg(long, env = "MAX_REQUEST_BYTES", default_value_t = 64 * 1024)]
    pub max_request_bytes: usize,

    /// Origins allowed to call gRPC-web from another site (CORS), comma-separated. Empty: same origin only, which
    /// is all the dashboard served by the gateway needs.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', default_value = "")]
    pub cors_origins: Vec<String>,

    /// How long in-flight requests may finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}
