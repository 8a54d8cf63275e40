//! A small HTTP client for tests, with keep-alive connection reuse.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::echo::Echo;

/// A response read to the end.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as an [`Echo`], when an echo backend answered.
    pub fn echo(&self) -> Option<Echo> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The name of the echo backend that answered, if one did.
    pub fn backend(&self) -> Option<String> {
        self.echo().map(|e| e.name)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An HTTP/1.1 client that keeps connections alive between requests.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    /// Speak HTTP/2 with prior knowledge, the host as `:authority`.
    h2: bool,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with a 10 s per-request timeout.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            inner: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            timeout: Duration::from_secs(10),
            h2: false,
        }
    }

    /// An HTTP/2 client with prior knowledge (h2c), one connection per
    /// request, sending the host as `:authority` as HTTP/2 clients do.
    pub fn http2() -> Self {
        Self {
            h2: true,
            ..Self::new()
        }
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A GET to `addr` with the given Host header and path.
    pub async fn get(&self, addr: SocketAddr, host: &str, path: &str) -> Result<Reply, String> {
        self.send(addr, Method::GET, host, path, &[], Bytes::new())
            .await
    }

    /// A request with any method, extra headers and body.
    pub async fn send(
        &self,
        addr: SocketAddr,
        method: Method,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, String> {
        let mut req = if self.h2 {
            Request::builder()
                .method(method)
                .uri(format!("http://{host}{path}"))
        } else {
            Request::builder()
                .method(method)
                .uri(format!("http://{addr}{path}"))
                .header("host", host)
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let fut = async {
            let resp = if self.h2 {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| e.to_string())?;
                let (mut sender, conn) = hyper::client::conn::http2::handshake(
                    TokioExecutor::new(),
                    TokioIo::new(stream),
                )
                .await
                .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                sender
                    .send_request(req)
                    .await
                    .map_err(|e| format!("{e:?}"))?
            } else {
                self.inner
                    .request(req)
                    .await
                    .map_err(|e| format!("{e:?}"))?
            };
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| "request timed out".to_owned())?
    }
}

/// Sends one request exactly as written (the request target is not parsed
/// or normalized by any client library) on a new connection, and reads
/// the response until the server closes it.
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(body).await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| "response timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    parse_response(&raw)
}

/// Parses a whole HTTP/1.1 response (Content-Length, chunked or
/// read-to-close bodies).
fn parse_response(raw: &[u8]) -> Result<Reply, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete response head in {} bytes", raw.len()))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            )
        {
            headers.append(name, value);
        }
    }
    let rest = &raw[end + 4..];
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Reply {
        status: StatusCode::from_u16(status).map_err(|e| e.to_string())?,
        headers,
        body: Bytes::from(body),
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| e.to_string())?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("truncated chunk")?);
        data = data.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

/// Serves every request on a free loopback port with `handler`, which
/// sees the request head and answers with a status, headers and a body.
/// For small stand-in services (an auth service, a JWKS endpoint).
pub async fn serve_fn<F>(handler: F) -> SocketAddr
where
    F: Fn(&http::request::Parts) -> (u16, Vec<(&'static str, String)>, Bytes)
        + Send
        + Sync
        + 'static,
{
    use std::sync::Arc;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free loopback port");
    let addr = listener
        .local_addr()
        .expect("bound listener has an address");
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (parts, _) = req.into_parts();
                        let (status, headers, body) = handler(&parts);
                        let mut resp = http::Response::new(Full::new(body));
                        *resp.status_mut() = StatusCode::from_u16(status)
                            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                        for (k, v) in headers {
                            if let Ok(v) = http::HeaderValue::try_from(v) {
                                resp.headers_mut().append(k, v);
                            }
                        }
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}
