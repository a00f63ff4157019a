//! What every store-platform server shares, so the services differ only in what they serve.

#[cfg(feature = "auth")]
pub mod auth;
pub mod grpc;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod message_limit;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "kubernetes")]
pub mod record;
pub mod shutdown;
pub mod telemetry;
pub mod tenant;
#[cfg(all(feature = "kubernetes", feature = "metrics"))]
pub mod watch;
pub mod watched_file;

pub use shutdown::Shutdown;
pub use telemetry::TelemetryArgs;
