//! Connections to upstream endpoints.
//!
//! HTTP/1.1 goes through a keep-alive pool per endpoint. HTTP/2 (h2c,
//! gRPC) keeps one multiplexed connection per endpoint, opened on first
//! use and replaced when it closes; requests carry the client's authority
//! as `:authority` while the connection goes to the endpoint.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme as UriScheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use snapshot::UpstreamProtocol;
use tokio::net::TcpStream;

use crate::body::{BoxError, UpstreamBody};

/// Why an upstream request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No connection could be made: nothing was sent, a retry is safe.
    #[error("connect: {0}")]
    Connect(#[source] BoxError),
    /// The connection failed before a complete response arrived.
    #[error("{0}")]
    Reset(#[source] BoxError),
}

/// Settings of upstream connections.
#[derive(Clone, Debug)]
pub(crate) struct UpstreamConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_idle: usize,
}

/// Every upstream connection the gateway holds.
#[derive(Debug)]
pub(crate) struct Upstreams {
    http1: Client<HttpConnector, UpstreamBody>,
    h2: Mutex<HashMap<SocketAddr, http2::SendRequest<UpstreamBody>>>,
    connect_timeout: Duration,
}

impl Upstreams {
    pub(crate) fn new(config: &UpstreamConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.enforce_http(true);
        let http1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.idle_timeout)
            .pool_max_idle_per_host(config.max_idle)
            .pool_timer(TokioTimer::new())
            // The client's Host header travels unchanged; the connector
            // uses the URI's authority (the endpoint) only to connect.
            .set_host(false)
            .build(connector);
        Self {
            http1,
            h2: Mutex::new(HashMap::new()),
            connect_timeout: config.connect_timeout,
        }
    }

    /// Sends `req` (whose URI holds the path and query; the Host header
    /// names the virtual host) to `endpoint` over `protocol`.
    pub(crate) async fn send(
        &self,
        protocol: UpstreamProtocol,
        endpoint: SocketAddr,
        authority: &Authority,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let path_and_query = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        match protocol {
            UpstreamProtocol::Http1 => {
                *req.uri_mut() = uri(authority.clone(), path_and_query);
                *req.version_mut() = Version::HTTP_11;
                self.http1.request(req).await.map_err(|e| {
                    if e.is_connect() {
                        UpstreamError::Connect(Box::new(e))
                    } else {
                        UpstreamError::Reset(Box::new(e))
                    }
                })
            }
            UpstreamProtocol::H2c => {
                // `:authority` is the virtual host the client asked for.
                let host = req
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| Authority::try_from(h.as_bytes()).ok())
                    .unwrap_or_else(|| authority.clone());
                *req.uri_mut() = uri(host, path_and_query);
                *req.version_mut() = Version::HTTP_2;
                req.headers_mut().remove(http::header::HOST);
                let mut sender = self.h2_sender(endpoint).await?;
                sender
                    .send_request(req)
                    .await
                    .map_err(|e| UpstreamError::Reset(Box::new(e)))
            }
        }
    }

    /// An open HTTP/2 connection to `endpoint`, made on first use.
    async fn h2_sender(
        &self,
        endpoint: SocketAddr,
    ) -> Result<http2::SendRequest<UpstreamBody>, UpstreamError> {
        if let Some(s) = self.lock_h2().get(&endpoint).filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(endpoint))
            .await
            .map_err(|_| UpstreamError::Connect("connect timed out".into()))?
            .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .adaptive_window(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%endpoint, error = %e, "upstream HTTP/2 connection ended");
            }
        });
        self.lock_h2().insert(endpoint, sender.clone());
        Ok(sender)
    }

    fn lock_h2(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, http2::SendRequest<UpstreamBody>>> {
        // A poisoned lock only means another request panicked while holding
        // it; the map itself is still usable.
        self.h2
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn uri(authority: Authority, path_and_query: PathAndQuery) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(UriScheme::HTTP);
    parts.authority = Some(authority);
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).expect("scheme, authority and path always form a URI")
}
