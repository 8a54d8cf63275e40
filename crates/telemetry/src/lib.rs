//! What the gateway tells its operators: Prometheus metrics, the access
//! log and distributed traces.
//!
//! One [`Telemetry`] value is made at start and shared by the data plane
//! (requests, connections, upstreams, TLS) and the controller (watches,
//! translation, publishing). Nothing here knows about routing or
//! Kubernetes; callers pass identities (route ids, cluster names) as
//! labels.

pub mod access_log;
pub mod metrics;
mod time;
pub mod trace;

pub use access_log::{AccessLog, Entry as AccessLogEntry, Format as AccessLogFormat};
pub use metrics::{BackendMetrics, DurationHistogram, ListenerMetrics, Metrics, RouteMetrics};
pub use prometheus_client::metrics::counter::Counter;
pub use trace::{SpanData, SpanKind, TraceContext, Tracer};

/// Metrics, access log and tracer of the process.
#[derive(Debug)]
pub struct Telemetry {
    /// Every metric family.
    pub metrics: Metrics,
    /// The access log (possibly off).
    pub access_log: AccessLog,
    /// Trace contexts and span export.
    pub tracer: Tracer,
}

impl Telemetry {
    /// Metrics only: no access log, traces propagated but not exported.
    /// For tests and embedding.
    pub fn quiet() -> Self {
        Self {
            metrics: Metrics::new(),
            access_log: AccessLog::off(),
            tracer: Tracer::propagate_only(),
        }
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::quiet()
    }
}
