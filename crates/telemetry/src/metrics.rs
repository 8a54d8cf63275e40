//! Prometheus metrics in the OpenMetrics text format.
//!
//! Every family is registered once, in [`Metrics::new`]. Labels are
//! identities from the configuration (route ids, cluster names, listener
//! names, certificate sources) or small fixed sets (method, status class),
//! never text taken from a request, so the number of series is bounded by
//! the configuration and not by traffic.
//!
//! The request path never looks a series up by label: the data plane keeps
//! handles ([`RouteMetrics`], [`BackendMetrics`]) beside the run-time state
//! of each route and cluster, and the first request of a method and status
//! class creates its series once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::Method;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds of the request and upstream duration buckets, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the snapshot build duration buckets, in seconds.
pub const BUILD_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// A histogram of durations that records with two relaxed atomic adds and
/// no lock (the `prometheus-client` histogram takes a lock per
/// observation).
#[derive(Clone, Debug)]
pub struct DurationHistogram {
    inner: Arc<HistogramInner>,
}

#[derive(Debug)]
struct HistogramInner {
    /// Bucket bounds in seconds (for encoding) and in nanoseconds (for
    /// recording), without the implicit `+Inf`.
    bounds: &'static [f64],
    bounds_nanos: Box<[u64]>,
    /// One count per bound plus `+Inf`; not cumulative.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    /// An empty histogram with these bucket bounds (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            inner: Arc::new(HistogramInner {
                bounds,
                bounds_nanos: bounds.iter().map(|b| (b * 1e9) as u64).collect(),
                counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let inner = &*self.inner;
        let bucket = inner
            .bounds_nanos
            .iter()
            .position(|&b| nanos <= b)
            .unwrap_or(inner.bounds_nanos.len());
        inner.counts[bucket].fetch_add(1, Ordering::Relaxed);
        inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.inner
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let inner = &*self.inner;
        let mut buckets = Vec::with_capacity(inner.counts.len());
        let mut count = 0;
        for (i, c) in inner.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            buckets.push((inner.bounds.get(i).copied().unwrap_or(f64::MAX), n));
        }
        let sum = inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

type HistogramFamily<L> = Family<L, DurationHistogram, fn() -> DurationHistogram>;

fn latency_histogram() -> DurationHistogram {
    DurationHistogram::new(LATENCY_BUCKETS)
}

/// Labels of the request families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route id, or `unmatched`.
    pub route: String,
    /// Namespace of the object the route came from.
    pub namespace: String,
    /// One of the standard methods, or `other`.
    pub method: &'static str,
    /// `1xx` to `5xx`.
    pub status_class: &'static str,
}

/// Labels of per-route families without method and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route id.
    pub route: String,
    /// Namespace of the object the route came from.
    pub namespace: String,
}

/// Labels of per-backend families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// Cluster name (`namespace/service:port`).
    pub backend: String,
}

/// Labels of per-listener families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// `http` or `https`.
    pub listener: &'static str,
}

/// Labels of the TLS handshake counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// `success` or `failure`.
    pub result: &'static str,
    /// `TLSv1.2`, `TLSv1.3`, or empty for failures.
    pub version: &'static str,
}

/// Labels of the certificate expiry gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabels {
    /// Where the certificate came from (`namespace/secret`, a file, or
    /// `default`).
    pub certificate: String,
}

/// Labels of the controller families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// The watched resource (`Ingress`, `EndpointSlice`, ... or `files`
    /// in standalone mode).
    pub resource: String,
}

/// Labels of the diagnostics gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiagnosticLabels {
    /// Kind of the object the diagnostics are about.
    pub kind: String,
    /// `error` or `warning`.
    pub severity: &'static str,
}

/// Labels of the build information.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric family of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route, namespace, method and status class.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from the request head to the last response byte.
    pub request_duration: HistogramFamily<RequestLabels>,
    /// Requests being handled now.
    pub requests_active: Gauge,
    /// Time from sending an upstream request to its response head.
    pub upstream_duration: HistogramFamily<BackendLabels>,
    /// Upstream connections that could not be established.
    pub upstream_connect_errors: Family<BackendLabels, Counter>,
    /// Endpoints taken out of rotation by passive health checks.
    pub upstream_ejections: Family<BackendLabels, Counter>,
    /// Upstream attempts after the first.
    pub retries: Family<RouteLabels, Counter>,
    /// Downstream connections accepted.
    pub connections: Family<ListenerLabels, Counter>,
    /// Downstream connections open now.
    pub connections_active: Family<ListenerLabels, Gauge>,
    /// TLS handshakes, by result and version.
    pub tls_handshakes: Family<HandshakeLabels, Counter>,
    /// End of validity of each served certificate, Unix seconds.
    pub certificate_expiry: Family<CertificateLabels, Gauge>,
    /// Requests rejected by a rate limit.
    pub ratelimit_rejected: Counter,
    /// Global rate-limit checks that could not reach Redis in time.
    pub ratelimit_redis_failures: Counter,
    /// Requests let through because Redis could not be checked.
    pub ratelimit_failed_open: Counter,
    /// Responses served from the cache.
    pub cache_hits: Counter,
    /// Cacheable requests that went upstream.
    pub cache_misses: Counter,
    /// Generation of the live snapshot.
    pub snapshot_generation: Gauge,
    /// Snapshots published.
    pub snapshot_publishes: Counter,
    /// Time to translate the configuration into a snapshot.
    pub snapshot_build_duration: DurationHistogram,
    /// Routes in the live snapshot.
    pub snapshot_routes: Gauge,
    /// Watch events received, by resource.
    pub watch_events: Family<ResourceLabels, Counter>,
    /// Watch errors, by resource.
    pub watch_errors: Family<ResourceLabels, Counter>,
    /// Watches restarted (relists after errors or expiry), by resource.
    pub watch_restarts: Family<ResourceLabels, Counter>,
    /// Diagnostics of the last translation, by object kind and severity.
    pub diagnostics: Family<DiagnosticLabels, Gauge>,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: Counter,
    /// Spans sent to the trace collector.
    pub spans_exported: Counter,
    /// Spans dropped (queue full or the collector failed).
    pub spans_dropped: Counter,
    /// Metric handles of requests that matched no route.
    unmatched: RouteMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family.
    #[allow(clippy::too_many_lines, reason = "one registration per family")]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route, namespace, method and status class",
            requests.clone(),
        );
        let request_duration: HistogramFamily<RequestLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "request_duration",
            "Time from the request head to the last response byte",
            Unit::Seconds,
            request_duration.clone(),
        );
        let requests_active = Gauge::default();
        registry.register(
            "requests_active",
            "Requests being handled now",
            requests_active.clone(),
        );
        let upstream_duration: HistogramFamily<BackendLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "upstream_request_duration",
            "Time from sending an upstream request to its response head, by backend",
            Unit::Seconds,
            upstream_duration.clone(),
        );
        let upstream_connect_errors = Family::<BackendLabels, Counter>::default();
        registry.register(
            "upstream_connect_errors",
            "Upstream connections that could not be established, by backend",
            upstream_connect_errors.clone(),
        );
        let upstream_ejections = Family::<BackendLabels, Counter>::default();
        registry.register(
            "upstream_ejections",
            "Endpoints taken out of rotation by passive health checks, by backend",
            upstream_ejections.clone(),
        );
        let retries = Family::<RouteLabels, Counter>::default();
        registry.register(
            "retries",
            "Upstream attempts after the first, by route",
            retries.clone(),
        );
        let connections = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connections",
            "Downstream connections accepted, by listener",
            connections.clone(),
        );
        let connections_active = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "connections_active",
            "Downstream connections open now, by listener",
            connections_active.clone(),
        );
        let tls_handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes on the HTTPS listener, by result and protocol version",
            tls_handshakes.clone(),
        );
        let certificate_expiry = Family::<CertificateLabels, Gauge>::default();
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "End of validity of each served certificate, Unix seconds",
            certificate_expiry.clone(),
        );
        let ratelimit_rejected = Counter::default();
        registry.register(
            "ratelimit_rejected",
            "Requests rejected by a rate limit",
            ratelimit_rejected.clone(),
        );
        let ratelimit_redis_failures = Counter::default();
        registry.register(
            "ratelimit_redis_failures",
            "Global rate-limit checks that could not reach Redis in time",
            ratelimit_redis_failures.clone(),
        );
        let ratelimit_failed_open = Counter::default();
        registry.register(
            "ratelimit_failed_open",
            "Requests let through because Redis could not be checked (failureMode Open)",
            ratelimit_failed_open.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "cache_hits",
            "Responses served from the cache",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "cache_misses",
            "Cacheable requests that went upstream",
            cache_misses.clone(),
        );
        let snapshot_generation = Gauge::default();
        registry.register(
            "snapshot_generation",
            "Generation of the live snapshot",
            snapshot_generation.clone(),
        );
        let snapshot_publishes = Counter::default();
        registry.register(
            "snapshot_publishes",
            "Snapshots published",
            snapshot_publishes.clone(),
        );
        let snapshot_build_duration = DurationHistogram::new(BUILD_BUCKETS);
        registry.register_with_unit(
            "snapshot_build_duration",
            "Time to translate the configuration into a snapshot",
            Unit::Seconds,
            snapshot_build_duration.clone(),
        );
        let snapshot_routes = Gauge::default();
        registry.register(
            "snapshot_routes",
            "Routes in the live snapshot",
            snapshot_routes.clone(),
        );
        let watch_events = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "controller_watch_events",
            "Watch events received, by resource",
            watch_events.clone(),
        );
        let watch_errors = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "controller_watch_errors",
            "Watch errors, by resource",
            watch_errors.clone(),
        );
        let watch_restarts = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "controller_watch_restarts",
            "Watches started again (relists after errors, expiry or a lost connection), by resource",
            watch_restarts.clone(),
        );
        let diagnostics = Family::<DiagnosticLabels, Gauge>::default();
        registry.register(
            "diagnostics",
            "Diagnostics of the last translation, by object kind and severity",
            diagnostics.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access-log lines dropped because the writer fell behind",
            access_log_dropped.clone(),
        );
        let spans_exported = Counter::default();
        registry.register(
            "trace_spans_exported",
            "Spans accepted by the trace collector",
            spans_exported.clone(),
        );
        let spans_dropped = Counter::default();
        registry.register(
            "trace_spans_dropped",
            "Spans dropped because the queue was full or the collector failed",
            spans_dropped.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "Version of the running binary", build);
        Self {
            registry,
            requests,
            request_duration,
            requests_active,
            upstream_duration,
            upstream_connect_errors,
            upstream_ejections,
            retries,
            connections,
            connections_active,
            tls_handshakes,
            certificate_expiry,
            ratelimit_rejected,
            ratelimit_redis_failures,
            ratelimit_failed_open,
            cache_hits,
            cache_misses,
            snapshot_generation,
            snapshot_publishes,
            snapshot_build_duration,
            snapshot_routes,
            watch_events,
            watch_errors,
            watch_restarts,
            diagnostics,
            access_log_dropped,
            spans_exported,
            spans_dropped,
            unmatched: RouteMetrics::new("unmatched", ""),
        }
    }

    /// Every family in the OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Handles for requests that matched no route.
    pub fn unmatched(&self) -> &RouteMetrics {
        &self.unmatched
    }

    /// Handles of one backend; its series appear with their first event.
    pub fn backend(&self, name: &str) -> BackendMetrics {
        BackendMetrics {
            labels: BackendLabels {
                backend: name.to_owned(),
            },
            families: (
                self.upstream_duration.clone(),
                self.upstream_connect_errors.clone(),
                self.upstream_ejections.clone(),
            ),
            duration: OnceLock::new(),
            connect_errors: OnceLock::new(),
            ejections: OnceLock::new(),
        }
    }

    /// The handle of one listener's connection gauges.
    pub fn listener(&self, listener: &'static str) -> ListenerMetrics {
        let labels = ListenerLabels { listener };
        ListenerMetrics {
            accepted: self.connections.get_or_create_owned(&labels),
            active: self.connections_active.get_or_create_owned(&labels),
        }
    }
}

/// The methods that get a label of their own; others count as `other`.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];
const METHOD_LABELS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other",
];
const CLASS_LABELS: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const CELLS: usize = METHOD_LABELS.len() * CLASS_LABELS.len();

fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|m| m == method)
        .unwrap_or(METHODS.len())
}

/// The series of one route and status class.
#[derive(Clone, Debug)]
pub struct RequestCell {
    /// Requests answered.
    pub count: Counter,
    /// Their durations.
    pub duration: DurationHistogram,
}

/// Metric handles of one route, kept with the route's run-time state so
/// the request path never looks series up by label. A series exists once
/// a request of its method and status class was answered.
#[derive(Debug)]
pub struct RouteMetrics {
    route: String,
    namespace: String,
    cells: OnceLock<Box<[OnceLock<RequestCell>]>>,
    retries: OnceLock<Counter>,
}

impl RouteMetrics {
    /// Handles for the route `route` of namespace `namespace`.
    pub fn new(route: &str, namespace: &str) -> Self {
        Self {
            route: route.to_owned(),
            namespace: namespace.to_owned(),
            cells: OnceLock::new(),
            retries: OnceLock::new(),
        }
    }

    /// Records one answered request.
    pub fn record(&self, metrics: &Metrics, method: &Method, status: u16, took: Duration) {
        let cell = self.cell(metrics, method, status);
        cell.count.inc();
        cell.duration.observe(took);
    }

    fn cell(&self, metrics: &Metrics, method: &Method, status: u16) -> &RequestCell {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        let m = method_index(method);
        let cells = self
            .cells
            .get_or_init(|| (0..CELLS).map(|_| OnceLock::new()).collect());
        cells[m * CLASS_LABELS.len() + class].get_or_init(|| {
            let labels = RequestLabels {
                route: self.route.clone(),
                namespace: self.namespace.clone(),
                method: METHOD_LABELS[m],
                status_class: CLASS_LABELS[class],
            };
            RequestCell {
                count: metrics.requests.get_or_create_owned(&labels),
                duration: metrics.request_duration.get_or_create_owned(&labels),
            }
        })
    }

    /// Counts one retry.
    pub fn retry(&self, metrics: &Metrics) {
        self.retries
            .get_or_init(|| {
                metrics.retries.get_or_create_owned(&RouteLabels {
                    route: self.route.clone(),
                    namespace: self.namespace.clone(),
                })
            })
            .inc();
    }
}

/// Metric handles of one backend, kept with the cluster's run-time state.
/// Like [`RouteMetrics`], a series is created by its first event, so a
/// large configuration with idle backends costs no series.
#[derive(Debug)]
pub struct BackendMetrics {
    labels: BackendLabels,
    families: (
        HistogramFamily<BackendLabels>,
        Family<BackendLabels, Counter>,
        Family<BackendLabels, Counter>,
    ),
    duration: OnceLock<DurationHistogram>,
    connect_errors: OnceLock<Counter>,
    ejections: OnceLock<Counter>,
}

impl BackendMetrics {
    /// Records an upstream response-head latency.
    pub fn observe(&self, took: Duration) {
        self.duration
            .get_or_init(|| self.families.0.get_or_create_owned(&self.labels))
            .observe(took);
    }

    /// Counts a failed connection attempt.
    pub fn connect_error(&self) {
        self.connect_errors
            .get_or_init(|| self.families.1.get_or_create_owned(&self.labels))
            .inc();
    }

    /// Counts a passive-health ejection.
    pub fn ejection(&self) {
        self.ejections
            .get_or_init(|| self.families.2.get_or_create_owned(&self.labels))
            .inc();
    }
}

/// Connection gauges of one listener.
#[derive(Clone, Debug)]
pub struct ListenerMetrics {
    accepted: Counter,
    active: Gauge,
}

impl ListenerMetrics {
    /// Counts an accepted connection; it stays active until the guard is
    /// dropped.
    pub fn accept(&self) -> ConnectionGuard {
        self.accepted.inc();
        self.active.inc();
        ConnectionGuard(self.active.clone())
    }
}

/// Holds a connection in the active gauge.
#[derive(Debug)]
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn request_series_appear_per_method_and_class() {
        let m = Metrics::new();
        let r = RouteMetrics::new("apiroute/shop/orders/rule/0", "shop");
        r.record(&m, &Method::GET, 200, Duration::from_millis(3));
        r.record(&m, &Method::GET, 204, Duration::from_millis(30));
        r.record(
            &m,
            &Method::from_bytes(b"PURGE").unwrap(),
            404,
            Duration::ZERO,
        );
        let text = m.encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains(
            "gatehouse_requests_total{route=\"apiroute/shop/orders/rule/0\",namespace=\"shop\",method=\"GET\",status_class=\"2xx\"} 2\n"
        ), "{text}");
        assert!(
            text.contains("method=\"other\",status_class=\"4xx\"} 1\n"),
            "{text}"
        );
        assert_eq!(series(&text, "gatehouse_requests_total{").len(), 2);
        // 3 ms is in the 5 ms bucket, 30 ms in the 50 ms bucket.
        let get = "route=\"apiroute/shop/orders/rule/0\",namespace=\"shop\",method=\"GET\",status_class=\"2xx\"";
        for (le, n) in [
            ("0.0025", 0),
            ("0.005", 1),
            ("0.025", 1),
            ("0.05", 2),
            ("+Inf", 2),
        ] {
            let line =
                format!("gatehouse_request_duration_seconds_bucket{{le=\"{le}\",{get}}} {n}\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(
            text.contains(&format!(
                "gatehouse_request_duration_seconds_sum{{{get}}} 0.033\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "gatehouse_request_duration_seconds_count{{{get}}} 2\n"
            )),
            "{text}"
        );
    }

    #[test]
    fn histogram_counts_every_observation_once() {
        let h = DurationHistogram::new(LATENCY_BUCKETS);
        for ms in [0, 1, 2, 10, 100, 1_000, 60_000] {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 7);
    }

    #[test]
    fn connection_guard_returns_the_gauge() {
        let m = Metrics::new();
        let l = m.listener("http");
        let a = l.accept();
        let b = l.accept();
        drop(a);
        let text = m.encode();
        assert!(
            text.contains("gatehouse_connections_active{listener=\"http\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_connections_total{listener=\"http\"} 2\n"),
            "{text}"
        );
        drop(b);
    }
}

#[cfg(test)]
mod dashboard {
    use super::*;

    /// Every family name the registry encodes, with one series in each
    /// labelled family so none is left out.
    fn families() -> std::collections::BTreeSet<String> {
        let m = Metrics::new();
        let r = RouteMetrics::new("r", "ns");
        r.record(&m, &Method::GET, 200, Duration::ZERO);
        r.retry(&m);
        let b = m.backend("b");
        b.connect_error();
        b.ejection();
        b.observe(Duration::ZERO);
        let _guard = m.listener("http").accept();
        m.tls_handshakes
            .get_or_create(&HandshakeLabels {
                result: "success",
                version: "TLSv1.3",
            })
            .inc();
        m.certificate_expiry
            .get_or_create(&CertificateLabels {
                certificate: "c".into(),
            })
            .set(1);
        let resource = ResourceLabels {
            resource: "files".into(),
        };
        m.watch_events.get_or_create(&resource).inc();
        m.watch_errors.get_or_create(&resource).inc();
        m.watch_restarts.get_or_create(&resource).inc();
        m.diagnostics
            .get_or_create(&DiagnosticLabels {
                kind: "Ingress".into(),
                severity: "error",
            })
            .set(1);
        m.encode()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_owned)
            .collect()
    }

    /// The Grafana dashboard shipped in the chart only queries families
    /// that exist.
    #[test]
    fn dashboard_queries_only_existing_families() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../charts/gatehouse/dashboards/gatehouse.json"
        );
        let text = std::fs::read_to_string(path).expect("the dashboard is in the chart");
        let json: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
        let families = families();
        let mut queried = 0;
        for panel in json["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("a query");
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if !word.starts_with("gatehouse_") {
                        continue;
                    }
                    queried += 1;
                    let family = ["_bucket", "_total", "_count", "_sum"]
                        .iter()
                        .find_map(|s| word.strip_suffix(s))
                        .unwrap_or(word);
                    assert!(
                        families.contains(family),
                        "panel {:?} queries {word}, which is not a metric family ({families:?})",
                        panel["title"]
                    );
                }
            }
        }
        assert!(queried > 20, "{queried} metric references");
    }
}
