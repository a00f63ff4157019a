//! The gRPC services every server carries: `grpc.health.v1` (for Kubernetes gRPC probes) and server reflection
//! v1 and v1alpha (for grpcurl and `buf curl` with no local `.proto` files).

use std::{net::SocketAddr, time::Duration};

use tonic::{
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::server::HealthReporter;

use crate::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("failed to build the reflection service")]
    BuildReflection(#[from] tonic_reflection::server::Error),
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the gRPC server failed")]
    Serve(#[from] tonic::transport::Error),
}

/// Health and reflection routes, plus the reporter through which the server announces what it serves.
///
/// The overall service (`""`) is reported SERVING at once; each server sets its own services' status when they
/// can actually answer.
pub async fn standard_routes() -> Result<(Routes, HealthReporter), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let routes = Routes::new(health)
        .add_service(store_platform_proto::reflection::v1()?)
        .add_service(store_platform_proto::reflection::v1alpha()?);
    Ok((routes, reporter))
}

/// Binds `addr` now (so the caller learns of a port in use immediately) and returns the incoming stream.
pub fn bind(addr: SocketAddr) -> Result<TcpIncoming, ServeError> {
    TcpIncoming::bind(addr)
        .map(|incoming| incoming.with_nodelay(Some(true)))
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves `routes` on `incoming` until `shutdown` fires, then drains in-flight calls for up to `grace`. Request
/// messages larger than `max_message_bytes` are refused with RESOURCE_EXHAUSTED.
pub async fn serve(
    routes: Routes,
    incoming: TcpIncoming,
    shutdown: Shutdown,
    grace: Duration,
    max_message_bytes: usize,
) -> Result<(), ServeError> {
    let server = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(crate::message_limit::MessageLimitLayer::new(
            max_message_bytes,
        ))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown.wait());
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        () = async {
            shutdown.wait().await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(grace_secs = grace.as_secs(), "calls still open after the shutdown grace period; closing"),
    }
    Ok(())
}

/// The deadline a caller set on its call (the `grpc-timeout` header: at most 8 digits and a unit), if any. tonic
/// enforces it only until a response starts, so a server stream must end itself when it passes.
pub fn timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_timeout(value: &str) -> Option<Duration> {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("grpc-timeout", value.parse().expect("ascii"));
        timeout(&metadata)
    }

    #[test]
    fn grpc_timeouts_are_read_in_every_unit_and_nonsense_is_no_deadline() {
        assert_eq!(with_timeout("2500m"), Some(Duration::from_millis(2500)));
        assert_eq!(with_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(with_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(with_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(
            with_timeout("999999u"),
            Some(Duration::from_micros(999_999))
        );
        assert_eq!(with_timeout("5n"), Some(Duration::from_nanos(5)));
        assert_eq!(with_timeout("123456789S"), None);
        assert_eq!(with_timeout("S"), None);
        assert_eq!(with_timeout("10x"), None);
        assert_eq!(timeout(&tonic::metadata::MetadataMap::new()), None);
    }
}
