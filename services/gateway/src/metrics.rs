//! The gateway's Prometheus metrics: calls by service, method and code; unary latency; open streams.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub service: String,
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub service: String,
    pub method: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs to about 26 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 19,
    ))
}

#[derive(Debug)]
pub struct Metrics {
    pub calls: Family<CallLabels, Counter>,
    pub latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    pub open_streams: Family<MethodLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            open_streams: Family::default(),
        }
    }
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "gateway_calls",
            "gRPC and gRPC-web calls through the gateway, by service, method and status code",
            self.calls.clone(),
        );
        registry.register(
            "gateway_unary_call_duration_seconds",
            "Time from a unary call's arrival to the end of its response",
            self.latency.clone(),
        );
        registry.register(
            "gateway_open_streams",
            "Server streams open through the gateway",
            self.open_streams.clone(),
        );
    }
}
