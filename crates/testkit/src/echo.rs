//! An echo backend: answers every request with JSON describing what it
//! received, so tests can see exactly what the gateway forwarded.
//!
//! The response body is an object with `name` (the backend's name),
//! `method`, `path`, `query`, `protocol`, `headers` (name → list of values,
//! names lowercase) and `bodyLength`. The response also carries an
//! `x-echo-name` header. Requests can steer the answer with headers:
//! `x-echo-delay-ms` delays the response, `x-echo-status` sets its status.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the echo backend reports about a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Echo {
    /// Name of the backend that answered.
    pub name: String,
    /// Request method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Raw query string (without `?`), empty when absent.
    pub query: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub protocol: String,
    /// Headers, lowercase names, values in order.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Number of body bytes received.
    pub body_length: u64,
}

impl Echo {
    /// The first value of a header, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

/// A running echo backend; stops when dropped.
#[derive(Debug)]
pub struct EchoServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its name, reported in every answer.
    pub name: String,
    requests: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
}

impl EchoServer {
    /// Starts an echo backend named `name` on a free loopback port.
    pub async fn start(name: &str) -> Self {
        Self::start_on(name, "127.0.0.1:0".parse().expect("valid address"))
            .await
            .expect("bind a free loopback port")
    }

    /// Starts an echo backend that waits `delay` before every answer.
    pub async fn start_slow(name: &str, delay: Duration) -> Self {
        Self::start_with(name, "127.0.0.1:0".parse().expect("valid address"), delay)
            .await
            .expect("bind a free loopback port")
    }

    /// Starts an echo backend named `name` on `addr`.
    pub async fn start_on(name: &str, addr: SocketAddr) -> std::io::Result<Self> {
        Self::start_with(name, addr, Duration::ZERO).await
    }

    async fn start_with(name: &str, addr: SocketAddr, delay: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = watch::channel(false);
        let shared = Arc::new(name.to_owned());
        let counter = requests.clone();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            loop {
                let stream = tokio::select! {
                    _ = stopped.changed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((s, _)) => s,
                        Err(_) => continue,
                    },
                };
                let _ = stream.set_nodelay(true);
                let name = shared.clone();
                let counter = counter.clone();
                let service = service_fn(move |req| {
                    let name = name.clone();
                    let counter = counter.clone();
                    async move {
                        counter.fetch_add(1, Ordering::Relaxed);
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        Ok::<_, Infallible>(answer(&name, req).await)
                    }
                });
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = conn => {}
                        _ = stopped.changed() => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            name: name.to_owned(),
            requests,
            stop,
        })
    }

    /// Number of requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes open connections.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(name: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let mut body_length = 0u64;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    body_length += d.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &parts.headers {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let header_num = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(ms) = header_num("x-echo-delay-ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = header_num("x-echo-status")
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let echo = Echo {
        name: name.to_owned(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        protocol: format!("{:?}", parts.version),
        headers,
        body_length,
    };
    let body = serde_json::to_vec(&echo).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-echo-name", name)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
