//! A trace collector for tests: accepts OTLP/HTTP JSON exports
//! (`POST /v1/traces`) on a loopback port and keeps every span it is sent.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// One span as the collector received it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// `service.name` of the resource that sent it.
    pub service: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, empty for a root span.
    pub parent_span_id: String,
    /// Span name.
    pub name: String,
    /// 1 internal, 2 server, 3 client.
    pub kind: u64,
    /// Attributes, values as text (numbers in decimal).
    pub attributes: BTreeMap<String, String>,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: u64,
    /// Start and end, Unix nanoseconds.
    pub start: u128,
    /// End, Unix nanoseconds.
    pub end: u128,
}

/// A running collector; stops when dropped.
#[derive(Debug)]
pub struct OtlpCollector {
    /// Where it listens.
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    /// Export requests that were not valid OTLP JSON.
    rejected: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn text_of(value: &serde_json::Value) -> Option<String> {
    let v = value.as_object()?;
    let (kind, inner) = v.iter().next()?;
    Some(match (kind.as_str(), inner) {
        ("stringValue" | "intValue", serde_json::Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    })
}

/// Parses one `ExportTraceServiceRequest` in the JSON encoding.
fn parse(body: &[u8]) -> Result<Vec<ReceivedSpan>, String> {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let resource_spans = json["resourceSpans"]
        .as_array()
        .ok_or("no resourceSpans array")?;
    for rs in resource_spans {
        let service = rs["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| text_of(&a["value"]))
            .unwrap_or_default();
        for ss in rs["scopeSpans"].as_array().ok_or("no scopeSpans array")? {
            for s in ss["spans"].as_array().ok_or("no spans array")? {
                let id = |k: &str, len: usize| -> Result<String, String> {
                    let v = s[k].as_str().unwrap_or_default();
                    if v.len() == len && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        Ok(v.to_owned())
                    } else if v.is_empty() && k == "parentSpanId" {
                        Ok(String::new())
                    } else {
                        Err(format!("{k} {v:?} is not {len} hex digits"))
                    }
                };
                let nanos = |k: &str| -> Result<u128, String> {
                    s[k].as_str()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| format!("{k} is not a decimal string"))
                };
                out.push(ReceivedSpan {
                    service: service.clone(),
                    trace_id: id("traceId", 32)?,
                    span_id: id("spanId", 16)?,
                    parent_span_id: id("parentSpanId", 16)?,
                    name: s["name"].as_str().unwrap_or_default().to_owned(),
                    kind: s["kind"].as_u64().ok_or("kind is not a number")?,
                    attributes: s["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| {
                            Some((a["key"].as_str()?.to_owned(), text_of(&a["value"])?))
                        })
                        .collect(),
                    status_code: s["status"]["code"].as_u64().unwrap_or(0),
                    start: nanos("startTimeUnixNano")?,
                    end: nanos("endTimeUnixNano")?,
                });
            }
        }
    }
    Ok(out)
}

impl OtlpCollector {
    /// Starts a collector on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free loopback port");
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
        let rejected: Arc<Mutex<Vec<String>>> = Arc::default();
        let (kept, refused) = (spans.clone(), rejected.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (kept, refused) = (kept.clone(), refused.clone());
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (kept, refused) = (kept.clone(), refused.clone());
                            async move {
                                let ok_path = req.uri().path() == "/v1/traces"
                                    && req.method() == http::Method::POST;
                                let json = req
                                    .headers()
                                    .get(http::header::CONTENT_TYPE)
                                    .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
                                let body = req.into_body().collect().await.map(|b| b.to_bytes());
                                let status = match (ok_path, json, body) {
                                    (true, true, Ok(body)) => match parse(&body) {
                                        Ok(spans) => {
                                            kept.lock().expect("span list lock").extend(spans);
                                            StatusCode::OK
                                        }
                                        Err(e) => {
                                            refused.lock().expect("rejection list lock").push(e);
                                            StatusCode::BAD_REQUEST
                                        }
                                    },
                                    (false, _, _) => StatusCode::NOT_FOUND,
                                    _ => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                                };
                                let mut resp = Response::new(Full::new(Bytes::from_static(b"{}")));
                                *resp.status_mut() = status;
                                Ok::<_, Infallible>(resp)
                            }
                        });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            spans,
            rejected,
            task,
        }
    }

    /// The base address to give `--otlp-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("span list lock").clone()
    }

    /// Problems with export requests that were refused.
    pub fn rejected(&self) -> Vec<String> {
        self.rejected.lock().expect("rejection list lock").clone()
    }

    /// Waits until `done` holds for the spans received, or panics after
    /// `timeout` with what did arrive.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; received {spans:#?}; refused {:?}",
                self.rejected()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
