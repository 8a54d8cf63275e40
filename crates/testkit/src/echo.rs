//! An echo backend: answers every request with JSON describing what it
//! received, so tests can see exactly what the gateway forwarded.
//!
//! The response body is an object with `name` (the backend's name),
//! `method`, `path`, `query`, `protocol`, `headers` (name → list of values,
//! names lowercase) and `bodyLength`. The response also carries an
//! `x-echo-name` header. Requests can steer the answer with headers:
//! `x-echo-delay-ms` delays the response, `x-echo-status` sets its status,
//! `x-echo-response-bytes: N` answers with N bytes of `a` instead of JSON
//! (streamed, with the type from `x-echo-content-type`). A WebSocket
//! upgrade is accepted and every text message is answered with
//! `<name>: <message>`. [`EchoServer::fail_with`] makes the server answer
//! everything with one status, health probes included.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Either, Full, StreamBody};
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
    failing: Arc<AtomicU16>,
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

    /// Starts an echo backend speaking HTTPS (HTTP/1.1 and h2 by ALPN)
    /// with the PEM `cert` and `key`, requiring client certificates from
    /// `client_ca` when given.
    pub async fn start_tls(name: &str, cert: &str, key: &str, client_ca: Option<&str>) -> Self {
        let ck =
            Arc::new(tls::certified_key(cert.as_bytes(), key.as_bytes()).expect("a usable pair"));
        let auth = client_ca.map(|pem| tls::ClientAuth {
            roots: Arc::new(tls::ca_bundle(pem.as_bytes()).expect("a CA bundle")),
            required: true,
        });
        let config = tls::server_config(ck, auth.as_ref()).expect("a server configuration");
        Self::start_inner(
            name,
            "127.0.0.1:0".parse().expect("valid address"),
            Duration::ZERO,
            Some(Arc::new(config)),
        )
        .await
        .expect("bind a free loopback port")
    }

    async fn start_with(name: &str, addr: SocketAddr, delay: Duration) -> std::io::Result<Self> {
        Self::start_inner(name, addr, delay, None).await
    }

    async fn start_inner(
        name: &str,
        addr: SocketAddr,
        delay: Duration,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let failing = Arc::new(AtomicU16::new(0));
        let (stop, mut stopped) = watch::channel(false);
        let shared = Arc::new(name.to_owned());
        let counter = requests.clone();
        let fail = failing.clone();
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
                let fail = fail.clone();
                let service = service_fn(move |req| {
                    let name = name.clone();
                    let counter = counter.clone();
                    let fail = fail.clone();
                    async move {
                        counter.fetch_add(1, Ordering::Relaxed);
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let status = fail.load(Ordering::Relaxed);
                        if status != 0 {
                            let mut resp = Response::new(EchoBody::Left(Full::new(
                                Bytes::from_static(b"failing\n"),
                            )));
                            *resp.status_mut() = StatusCode::from_u16(status)
                                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                            return Ok::<_, Infallible>(resp);
                        }
                        Ok::<_, Infallible>(answer(&name, req).await)
                    }
                });
                let mut stopped = stopped.clone();
                let builder = builder.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let Some(config) = tls else {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        tokio::select! {
                            _ = conn => {}
                            _ = stopped.changed() => {}
                        }
                        return;
                    };
                    let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                    else {
                        return;
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
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
            failing,
            stop,
        })
    }

    /// Number of requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Answers every request with `status` from now on (`None`: back to
    /// normal).
    pub fn fail_with(&self, status: Option<u16>) {
        self.failing.store(status.unwrap_or(0), Ordering::Relaxed);
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

/// Bodies the echo server sends: JSON, or generated bytes.
type EchoBody = Either<
    Full<Bytes>,
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>,
>;

async fn answer(name: &str, mut req: Request<Incoming>) -> Response<EchoBody> {
    if req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    {
        return websocket(name, &mut req);
    }
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
    // HTTP/2 carries the host as `:authority`; report it as `host`.
    if let (None, Some(authority)) = (headers.get("host"), parts.uri.authority()) {
        headers.insert("host".to_owned(), vec![authority.to_string()]);
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
    if let Some(n) = header_num("x-echo-response-bytes") {
        let content_type = parts
            .headers
            .get("x-echo-content-type")
            .cloned()
            .unwrap_or_else(|| http::HeaderValue::from_static("application/octet-stream"));
        // Every chunk is a slice of one 64 KiB buffer, so even a large body
        // takes almost no memory.
        let chunk = Bytes::from(vec![b'a'; 64 * 1024]);
        let mut frames = Vec::new();
        let mut left = n;
        while left > 0 {
            let take = left.min(chunk.len() as u64) as usize;
            frames.push(Ok(Frame::data(chunk.slice(..take))));
            left -= take as u64;
        }
        return Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("content-length", n)
            .header("x-echo-name", name)
            .body(Either::Right(StreamBody::new(futures_util::stream::iter(
                frames,
            ))))
            .unwrap_or_else(|_| Response::new(Either::Left(Full::new(Bytes::new()))));
    }
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
        .body(Either::Left(Full::new(Bytes::from(body))))
        .unwrap_or_else(|_| Response::new(Either::Left(Full::new(Bytes::new()))))
}

/// Accepts a WebSocket upgrade and answers each text message with
/// `<name>: <message>` until the client closes.
fn websocket(name: &str, req: &mut Request<Incoming>) -> Response<EchoBody> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;

    let Some(key) = req.headers().get("sec-websocket-key") else {
        let mut resp = Response::new(Either::Left(Full::new(Bytes::from_static(b"missing key"))));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    let owned = name.to_owned();
    tokio::spawn(async move {
        let name = owned;
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            let reply = match msg {
                Message::Text(t) => Message::text(format!("{name}: {t}")),
                Message::Close(_) => break,
                _ => continue,
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header("sec-websocket-accept", accept)
        .header("x-echo-name", name)
        .body(Either::Left(Full::new(Bytes::new())))
        .unwrap_or_else(|_| Response::new(Either::Left(Full::new(Bytes::new()))))
}
