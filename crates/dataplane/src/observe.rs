//! The last request phase: **log**. What a request leaves behind once its
//! response is done — its metrics, its access-log line and its spans.
//!
//! A [`Observation`] starts with the request, collects what the pipeline
//! learns (route, upstream, body sizes, errors) and is finished by the
//! response body when it is dropped: after the last byte was written, or
//! when the client went away. Durations therefore cover the whole
//! response, as the client saw it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderValue, Method, Version};
use telemetry::{AccessLogEntry, SpanData, SpanKind, Telemetry, TraceContext};

use crate::state::RouteState;

/// What the pipeline learned about one request.
#[derive(Debug)]
pub(crate) struct Observation {
    telemetry: Arc<Telemetry>,
    start: Instant,
    /// Wall-clock start, taken only for detailed observations.
    start_wall: SystemTime,
    method: Method,
    version: Version,
    /// The trace the request belongs to.
    pub(crate) trace: TraceContext,
    /// Whether its spans are exported.
    pub(crate) recording: bool,
    /// Whether a log line or span will want the text fields below.
    detailed: bool,
    pub(crate) client: Option<IpAddr>,
    pub(crate) host: String,
    pub(crate) path: String,
    pub(crate) route: Option<(Arc<str>, Arc<RouteState>)>,
    pub(crate) upstream: Option<(SocketAddr, Duration)>,
    pub(crate) bytes_in: Option<Arc<AtomicU64>>,
    pub(crate) request_id: Option<HeaderValue>,
    pub(crate) error: Option<String>,
    /// Spans finished before the request span (policy checks, upstream
    /// attempts), sent with it.
    spans: Vec<SpanData>,
}

impl Observation {
    /// Starts observing a request with these headers.
    pub(crate) fn start(
        telemetry: &Arc<Telemetry>,
        method: &Method,
        version: Version,
        traceparent: Option<&http::HeaderValue>,
    ) -> Self {
        telemetry.metrics.requests_active.inc();
        let trace = telemetry.tracer.context(traceparent);
        let recording = telemetry.tracer.records(&trace);
        let detailed = recording || telemetry.access_log.enabled();
        Self {
            telemetry: telemetry.clone(),
            start: Instant::now(),
            // Only spans and access log lines show the wall-clock time.
            start_wall: if detailed {
                SystemTime::now()
            } else {
                SystemTime::UNIX_EPOCH
            },
            method: method.clone(),
            version,
            trace,
            recording,
            detailed,
            client: None,
            host: String::new(),
            path: String::new(),
            route: None,
            upstream: None,
            bytes_in: None,
            request_id: None,
            error: None,
            spans: Vec::new(),
        }
    }

    /// Whether text fields (host, path) are wanted.
    pub(crate) fn detailed(&self) -> bool {
        self.detailed
    }

    /// Records a finished child span of the request (only when recording).
    pub(crate) fn child_span(
        &mut self,
        name: &'static str,
        kind: SpanKind,
        start: SystemTime,
        span_id: Option<[u8; 8]>,
        attributes: Vec<(&'static str, telemetry::trace::Value)>,
        error: Option<String>,
    ) {
        if !self.recording {
            return;
        }
        let mut span = SpanData::new(
            &self.trace,
            span_id.unwrap_or_else(telemetry::trace::new_span_id),
            Some(self.trace.span_id),
            name,
            kind,
            start,
        );
        span.attributes = attributes;
        span.error = error;
        self.spans.push(span);
    }

    /// The request is done: `status` was sent with `bytes_out` body bytes.
    /// Taken boxed, as the response body holds it: fields are moved out of
    /// the box one by one instead of the whole record first.
    pub(crate) fn finish(mut self: Box<Self>, status: u16, bytes_out: u64) {
        let took = self.start.elapsed();
        let t = &*self.telemetry;
        t.metrics.requests_active.dec();
        match &self.route {
            Some((_, state)) => state.metrics.record(&t.metrics, &self.method, status, took),
            None => t
                .metrics
                .unmatched()
                .record(&t.metrics, &self.method, status, took),
        }
        if !self.detailed {
            return;
        }
        let bytes_in = self
            .bytes_in
            .as_ref()
            .map_or(0, |b| b.load(Ordering::Relaxed));
        if self.recording {
            let mut span = SpanData::new(
                &self.trace,
                self.trace.span_id,
                self.trace.parent,
                "gateway request",
                SpanKind::Server,
                self.start_wall,
            )
            .attr("http.request.method", method_value(&self.method))
            .attr("url.path", self.path.clone())
            .attr("server.address", self.host.clone())
            .attr("http.response.status_code", i64::from(status))
            .attr("network.protocol.version", version_value(self.version));
            if let Some(c) = self.client {
                span = span.attr("client.address", c.to_string());
            }
            if let Some((id, _)) = &self.route {
                span = span.attr("gatehouse.route", id.to_string());
            }
            span.end = self.start_wall + took;
            span.error = match self.error.take() {
                Some(e) => Some(e),
                None if status >= 500 => Some(format!("answered {status}")),
                None => None,
            };
            for s in self.spans.drain(..) {
                t.tracer.record(s);
            }
            t.tracer.record(span);
        }
        if t.access_log.wants(status) {
            t.access_log.log(AccessLogEntry {
                start: self.start_wall,
                client: self
                    .client
                    .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
                method: self.method,
                host: self.host,
                path: self.path,
                version: self.version,
                status,
                bytes_in,
                bytes_out,
                duration: took,
                upstream: self.upstream.map(|(a, _)| a),
                upstream_duration: self.upstream.map(|(_, d)| d),
                route: self.route.map(|(id, _)| id),
                request_id: self.request_id,
                trace_id: Some(self.trace.trace_id),
            });
        }
    }
}

fn method_value(m: &Method) -> telemetry::trace::Value {
    let known = [
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
    // The semantic conventions ask for `_OTHER` rather than arbitrary
    // method text.
    match known.iter().find(|k| *k == m) {
        Some(k) => k.as_str().to_owned().into(),
        None => "_OTHER".into(),
    }
}

fn version_value(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}
