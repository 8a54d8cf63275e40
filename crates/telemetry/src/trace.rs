//! Distributed tracing: W3C Trace Context propagation and spans exported
//! to an OpenTelemetry collector over OTLP/HTTP.
//!
//! Every request gets a trace context: the caller's, continued from a valid
//! `traceparent` header, or a new one. The upstream request carries a
//! `traceparent` naming the gateway's span as parent (and the caller's
//! `tracestate`, untouched), so traces join up whether or not the gateway
//! itself exports spans.
//!
//! Sampling is parent-based: a caller's decision (the `sampled` flag) is
//! kept; a new trace is sampled with the configured ratio. Sampled spans go
//! to a bounded queue; one exporter task sends them in batches as OTLP JSON
//! (`POST <endpoint>/v1/traces`, `application/json`, the encoding the
//! OTLP/HTTP specification defines beside protobuf). A full queue or a
//! failing collector drops spans and counts them in
//! `gatehouse_trace_spans_dropped_total`; requests never wait for export.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// The `traceparent` header.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Spans queued for export before new ones are dropped.
const QUEUE: usize = 8 * 1024;
/// Most spans per export request.
const BATCH: usize = 512;
/// Longest wait for one export request.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The trace a request belongs to, and its span in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace id (never all zeros).
    pub trace_id: [u8; 16],
    /// The gateway's span for this request.
    pub span_id: [u8; 8],
    /// The caller's span, when the caller sent a `traceparent`.
    pub parent: Option<[u8; 8]>,
    /// Whether the trace is sampled (recorded and exported).
    pub sampled: bool,
}

pub(crate) fn hex<const N: usize>(bytes: &[u8; N], out: &mut String) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

fn parse_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A random id that is not all zeros.
fn random_id<const N: usize>() -> [u8; N] {
    loop {
        let mut id = [0u8; N];
        for chunk in id.chunks_mut(8) {
            let r = fastrand::u64(..).to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        if id.iter().any(|&b| b != 0) {
            return id;
        }
    }
}

/// A new span id.
pub fn new_span_id() -> [u8; 8] {
    random_id()
}

impl TraceContext {
    /// Parses a `traceparent` value: `version-traceid-parentid-flags`.
    /// Invalid values (wrong lengths, upper-case or non-hex digits, all-zero
    /// ids, version `ff`) give `None`; a future version is read by its
    /// first four fields, as the specification asks.
    pub fn parse(value: &[u8]) -> Option<Self> {
        if value.len() < 55 {
            return None;
        }
        let version = parse_hex::<1>(&value[0..2])?[0];
        if version == 0xff || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        if version == 0 && value.len() != 55 {
            return None;
        }
        if version > 0 && value.len() > 55 && value[55] != b'-' {
            return None;
        }
        let trace_id = parse_hex::<16>(&value[3..35])?;
        let parent = parse_hex::<8>(&value[36..52])?;
        let flags = parse_hex::<1>(&value[53..55])?[0];
        if trace_id == [0; 16] || parent == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id: new_span_id(),
            parent: Some(parent),
            sampled: flags & 1 == 1,
        })
    }

    /// The context of a request: the caller's trace continued when its
    /// `traceparent` (the header's value) is valid, else a new trace
    /// sampled with `ratio`.
    pub fn from_traceparent(traceparent: Option<&HeaderValue>, ratio: f64) -> Self {
        if let Some(ctx) = traceparent.and_then(|v| Self::parse(v.as_bytes())) {
            return ctx;
        }
        Self {
            trace_id: random_id(),
            span_id: new_span_id(),
            parent: None,
            sampled: ratio >= 1.0 || (ratio > 0.0 && fastrand::f64() < ratio),
        }
    }

    /// The `traceparent` to send upstream with `span_id` as the parent.
    pub fn traceparent(&self, span_id: &[u8; 8]) -> HeaderValue {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        for (i, b) in self.trace_id.iter().enumerate() {
            out[3 + 2 * i] = DIGITS[usize::from(b >> 4)];
            out[4 + 2 * i] = DIGITS[usize::from(b & 0xf)];
        }
        for (i, b) in span_id.iter().enumerate() {
            out[36 + 2 * i] = DIGITS[usize::from(b >> 4)];
            out[37 + 2 * i] = DIGITS[usize::from(b & 0xf)];
        }
        if self.sampled {
            out[54] = b'1';
        }
        HeaderValue::from_bytes(&out).expect("hex digits and dashes are a valid header value")
    }

    /// The trace id as 32 hex digits.
    pub fn trace_id_hex(&self) -> String {
        let mut s = String::with_capacity(32);
        hex(&self.trace_id, &mut s);
        s
    }
}

/// What a span describes, as OTLP numbers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside the gateway (a policy check).
    Internal = 1,
    /// The request the gateway received.
    Server = 2,
    /// A request the gateway sent.
    Client = 3,
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text.
    Str(Cow<'static, str>),
    /// A whole number.
    Int(i64),
    /// A flag.
    Bool(bool),
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Self {
        Self::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Str(Cow::Owned(s))
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// One finished span.
#[derive(Clone, Debug)]
pub struct SpanData {
    /// The trace.
    pub trace_id: [u8; 16],
    /// This span.
    pub span_id: [u8; 8],
    /// Its parent, if any.
    pub parent: Option<[u8; 8]>,
    /// What it did, in a few words (`GET /orders/{id}` style names are the
    /// route's business; the gateway uses fixed names).
    pub name: Cow<'static, str>,
    /// Server, client or internal.
    pub kind: SpanKind,
    /// Start, wall clock.
    pub start: SystemTime,
    /// End, wall clock.
    pub end: SystemTime,
    /// Attributes, by OpenTelemetry semantic-convention names.
    pub attributes: Vec<(&'static str, Value)>,
    /// `Some(message)` when the span failed.
    pub error: Option<String>,
}

impl SpanData {
    /// A span of `ctx`'s trace with `span_id` under `parent`, started at
    /// `start` and ending now.
    pub fn new(
        ctx: &TraceContext,
        span_id: [u8; 8],
        parent: Option<[u8; 8]>,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        start: SystemTime,
    ) -> Self {
        Self {
            trace_id: ctx.trace_id,
            span_id,
            parent,
            name: name.into(),
            kind,
            start,
            end: SystemTime::now(),
            attributes: Vec::new(),
            error: None,
        }
    }

    /// Adds an attribute.
    #[must_use]
    pub fn attr(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.attributes.push((key, value.into()));
        self
    }
}

/// Where and how spans are exported.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// The collector's OTLP/HTTP base address (`http://collector:4318`);
    /// spans go to `<endpoint>/v1/traces`.
    pub endpoint: Uri,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Longest time spans wait in the queue before they are sent.
    pub flush_interval: Duration,
}

#[derive(Debug)]
enum Message {
    Span(SpanData),
    Flush(oneshot::Sender<()>),
}

/// Creates trace contexts and exports sampled spans.
#[derive(Debug)]
pub struct Tracer {
    ratio: f64,
    queue: Option<mpsc::Sender<Message>>,
    dropped: Counter,
}

impl Tracer {
    /// Propagation only: contexts are created and passed on, nothing is
    /// exported.
    pub fn propagate_only() -> Self {
        Self {
            ratio: 0.0,
            queue: None,
            dropped: Counter::default(),
        }
    }

    /// A tracer that samples new traces with `ratio` and exports sampled
    /// spans as `config` says. Must be called inside a Tokio runtime: the
    /// exporter runs as a task.
    pub fn exporting(
        ratio: f64,
        config: ExportConfig,
        exported: Counter,
        dropped: Counter,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(export_loop(rx, config, exported, dropped.clone()));
        Self {
            ratio: ratio.clamp(0.0, 1.0),
            queue: Some(tx),
            dropped,
        }
    }

    /// The context of a request that came with this `traceparent` value.
    pub fn context(&self, traceparent: Option<&HeaderValue>) -> TraceContext {
        TraceContext::from_traceparent(traceparent, self.ratio)
    }

    /// Whether spans of `ctx` are recorded.
    pub fn records(&self, ctx: &TraceContext) -> bool {
        ctx.sampled && self.queue.is_some()
    }

    /// Queues a finished span for export.
    pub fn record(&self, span: SpanData) {
        if let Some(q) = &self.queue
            && q.try_send(Message::Span(span)).is_err()
        {
            self.dropped.inc();
        }
    }

    /// Sends what is queued and waits (up to `limit`) for the collector to
    /// answer. For shutdown.
    pub async fn flush(&self, limit: Duration) {
        let Some(q) = &self.queue else { return };
        let (tx, rx) = oneshot::channel();
        if q.send(Message::Flush(tx)).await.is_ok() {
            let _ = tokio::time::timeout(limit, rx).await;
        }
    }
}

async fn export_loop(
    mut rx: mpsc::Receiver<Message>,
    config: ExportConfig,
    exported: Counter,
    dropped: Counter,
) {
    let url = match format!(
        "{}/v1/traces",
        config.endpoint.to_string().trim_end_matches('/')
    )
    .parse::<Uri>()
    {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(endpoint = %config.endpoint, error = %e, "bad OTLP endpoint; spans are dropped");
            while rx.recv().await.is_some() {}
            return;
        }
    };
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    let mut last_error: Option<std::time::Instant> = None;
    // The exporter wakes on its own schedule and drains the queue: it is
    // never parked on the queue, so recording a span wakes nothing.
    loop {
        tokio::time::sleep(config.flush_interval).await;
        let mut flushed = Vec::new();
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(Message::Span(s)) => {
                    batch.push(s);
                    if batch.len() >= BATCH {
                        send(
                            &url,
                            &config,
                            &mut batch,
                            &exported,
                            &dropped,
                            &mut last_error,
                        )
                        .await;
                    }
                }
                Ok(Message::Flush(done)) => flushed.push(done),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            send(
                &url,
                &config,
                &mut batch,
                &exported,
                &dropped,
                &mut last_error,
            )
            .await;
        }
        for done in flushed {
            let _ = done.send(());
        }
        if closed {
            return;
        }
    }
}

async fn send(
    url: &Uri,
    config: &ExportConfig,
    batch: &mut Vec<SpanData>,
    exported: &Counter,
    dropped: &Counter,
    last_error: &mut Option<std::time::Instant>,
) {
    let n = batch.len() as u64;
    let body = encode_otlp_json(&config.service_name, batch);
    batch.clear();
    match tokio::time::timeout(EXPORT_TIMEOUT, post(url, body)).await {
        Ok(Ok(())) => {
            exported.inc_by(n);
        }
        outcome => {
            dropped.inc_by(n);
            let error = match outcome {
                Ok(Err(e)) => e,
                _ => "timed out".to_owned(),
            };
            // One line per minute at most: a dead collector must not flood
            // the log.
            if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                *last_error = Some(std::time::Instant::now());
                tracing::warn!(collector = %url, spans = n, %error, "trace export failed; spans dropped");
            }
        }
    }
}

async fn post(url: &Uri, body: Vec<u8>) -> Result<(), String> {
    let authority = url
        .authority()
        .ok_or_else(|| "the endpoint has no host".to_owned())?
        .clone();
    if url.scheme_str() != Some("http") {
        return Err("only http:// collector endpoints are supported".into());
    }
    let addr = format!(
        "{}:{}",
        authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']'),
        authority.port_u16().unwrap_or(4318)
    );
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .method(Method::POST)
        .uri(url.path())
        .header(http::header::HOST, authority.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("collector answered {status}"))
    }
}

// The OTLP JSON encoding: ids as hex strings, 64-bit integers as decimal
// strings, enums as numbers, field names in lowerCamelCase.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportRequest<'a> {
    resource_spans: [ResourceSpans<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: [ScopeSpans; 1],
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: [KeyValue<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeSpans {
    scope: Scope,
    spans: Vec<JsonSpan>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: AnyValue<'a>,
}

#[derive(Serialize)]
enum AnyValue<'a> {
    #[serde(rename = "stringValue")]
    Str(&'a str),
    #[serde(rename = "intValue")]
    Int(String),
    #[serde(rename = "boolValue")]
    Bool(bool),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    parent_span_id: String,
    name: String,
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<serde_json::Value>,
    status: Status,
}

#[derive(Serialize)]
struct Status {
    code: u8,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
}

fn unix_nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string()
}

/// Encodes spans as one OTLP `ExportTraceServiceRequest` in JSON.
pub fn encode_otlp_json(service_name: &str, spans: &[SpanData]) -> Vec<u8> {
    let spans = spans
        .iter()
        .map(|s| {
            let mut trace_id = String::with_capacity(32);
            hex(&s.trace_id, &mut trace_id);
            let mut span_id = String::with_capacity(16);
            hex(&s.span_id, &mut span_id);
            let mut parent_span_id = String::new();
            if let Some(p) = &s.parent {
                hex(p, &mut parent_span_id);
            }
            let attributes = s
                .attributes
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::Str(s) => AnyValue::Str(s),
                        Value::Int(i) => AnyValue::Int(i.to_string()),
                        Value::Bool(b) => AnyValue::Bool(*b),
                    };
                    serde_json::to_value(KeyValue { key: k, value }).unwrap_or_default()
                })
                .collect();
            JsonSpan {
                trace_id,
                span_id,
                parent_span_id,
                name: s.name.to_string(),
                kind: s.kind as u8,
                start_time_unix_nano: unix_nanos(s.start),
                end_time_unix_nano: unix_nanos(s.end),
                attributes,
                status: match &s.error {
                    None => Status {
                        code: 0,
                        message: String::new(),
                    },
                    Some(m) => Status {
                        code: 2,
                        message: m.clone(),
                    },
                },
            }
        })
        .collect();
    let request = ExportRequest {
        resource_spans: [ResourceSpans {
            resource: Resource {
                attributes: [KeyValue {
                    key: "service.name",
                    value: AnyValue::Str(service_name),
                }],
            },
            scope_spans: [ScopeSpans {
                scope: Scope {
                    name: "gatehouse",
                    version: env!("CARGO_PKG_VERSION"),
                },
                spans,
            }],
        }],
    };
    serde_json::to_vec(&request).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn continues_a_valid_traceparent() {
        let ctx = TraceContext::parse(VALID.as_bytes()).unwrap();
        assert_eq!(ctx.trace_id_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(
            ctx.parent,
            Some([0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31])
        );
        assert!(ctx.sampled);
        assert_ne!(Some(ctx.span_id), ctx.parent);
        let sent = ctx.traceparent(&ctx.span_id);
        let sent = sent.to_str().unwrap();
        assert!(
            sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
            "{sent}"
        );
        assert!(sent.ends_with("-01"));
        assert!(!sent.contains("b7ad6b7169203331"));
    }

    #[test]
    fn rejects_malformed_traceparents() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c8031zz-b7ad6b7169203331-01",
        ] {
            assert!(TraceContext::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        // A later version may add fields after a dash.
        let future = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-more";
        let ctx = TraceContext::parse(future.as_bytes()).unwrap();
        assert!(!ctx.sampled);
    }

    #[test]
    fn starts_a_trace_with_the_ratio() {
        let ctx = TraceContext::from_traceparent(None, 1.0);
        assert!(ctx.sampled && ctx.parent.is_none() && ctx.trace_id != [0; 16]);
        assert!(!TraceContext::from_traceparent(None, 0.0).sampled);
        let sampled = (0..10_000)
            .filter(|_| TraceContext::from_traceparent(None, 0.25).sampled)
            .count();
        assert!((2_000..3_000).contains(&sampled), "{sampled}");
        // The caller's decision wins over the ratio; a malformed value
        // starts a new trace.
        let valid = HeaderValue::from_static(VALID);
        assert!(TraceContext::from_traceparent(Some(&valid), 0.0).sampled);
        let bad = HeaderValue::from_static("00-zz");
        assert!(
            TraceContext::from_traceparent(Some(&bad), 1.0)
                .parent
                .is_none()
        );
    }

    #[test]
    fn otlp_json_shape() {
        let ctx = TraceContext::parse(VALID.as_bytes()).unwrap();
        let mut span = SpanData::new(
            &ctx,
            ctx.span_id,
            ctx.parent,
            "gateway request",
            SpanKind::Server,
            UNIX_EPOCH + Duration::from_secs(1),
        )
        .attr("http.response.status_code", 503_i64)
        .attr("http.request.method", "GET")
        .attr("gatehouse.cached", false);
        span.error = Some("no endpoints".into());
        let json: serde_json::Value =
            serde_json::from_slice(&encode_otlp_json("edge", &[span])).unwrap();
        let rs = &json["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            serde_json::json!({"key": "service.name", "value": {"stringValue": "edge"}})
        );
        let s = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(s["parentSpanId"], "b7ad6b7169203331");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["startTimeUnixNano"], "1000000000");
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(
            s["attributes"][0],
            serde_json::json!({"key": "http.response.status_code", "value": {"intValue": "503"}})
        );
        assert_eq!(s["attributes"][2]["value"]["boolValue"], false);
    }
}
