//! Tracing setup: one subscriber per process, JSON for machines or pretty for people, filtered by `LOG_FILTER`.

use clap::{Args, ValueEnum};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    #[default]
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

/// Logging flags shared by every service.
#[derive(Clone, Debug, Args)]
pub struct TelemetryArgs {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Which events to log, in `tracing` filter syntax (e.g. `info,store_platform_provisioner=debug`).
    #[arg(long, env = "LOG_FILTER", default_value = "info")]
    pub log_filter: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter {filter:?}")]
    ParseFilter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a tracing subscriber is already installed")]
    InstallSubscriber(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the process-wide tracing subscriber.
pub fn init(args: &TelemetryArgs) -> Result<(), TelemetryError> {
    let filter =
        EnvFilter::try_new(&args.log_filter).map_err(|source| TelemetryError::ParseFilter {
            filter: args.log_filter.clone(),
            source,
        })?;
    let registry = tracing_subscriber::registry().with(filter);
    match args.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact()).try_init(),
    }
    .map_err(TelemetryError::InstallSubscriber)
}
