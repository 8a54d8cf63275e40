//! Connections to upstream endpoints.
//!
//! Plain HTTP/1.1 requests without a body are exchanged by the request's
//! own task (`http1/client.rs`); other HTTP/1.1 requests go through hyper's client
//! on a keep-alive pool per endpoint (`http1_pool.rs`). HTTP/2 (h2c,
//! gRPC) keeps one multiplexed connection per endpoint, opened on first
//! use and replaced when it closes; requests carry the client's authority
//! as `:authority` while the connection goes to the endpoint.

pub(crate) mod connect;
mod http1_pool;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme as UriScheme};
use http::{Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use snapshot::{Cluster, UpstreamProtocol, UpstreamTls};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::body::UpstreamBody;
use crate::error::BoxError;
use crate::headers::Forwarding;

pub(crate) use self::connect::{UpstreamConfig, UpstreamError, connect_tcp, lock};

/// A response body as an upstream sends it: read by hyper's client
/// (HTTP/2, TLS, requests with bodies, upgrades) or straight from the
/// connection by the request's task (bodiless HTTP/1.1, see `http1/client.rs`).
#[derive(Debug)]
pub(crate) enum FromUpstream {
    Hyper(Incoming),
    Direct(crate::http1::client::Body),
}

impl Body for FromUpstream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Self::Direct(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Hyper(b) => b.is_end_stream(),
            Self::Direct(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Hyper(b) => b.size_hint(),
            Self::Direct(b) => b.size_hint(),
        }
    }
}

/// How to reach a cluster's endpoints: the HTTP version, and TLS when the
/// backend asks for it.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    pub(crate) protocol: UpstreamProtocol,
    pub(crate) tls: Option<Arc<UpstreamTls>>,
}

impl Transport {
    pub(crate) fn of(cluster: &Cluster) -> Self {
        Self {
            protocol: cluster.protocol,
            tls: cluster.tls.clone(),
        }
    }
}

type TlsClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;
type H2Sender = http2::SendRequest<UpstreamBody>;

/// Every upstream connection the gateway holds.
#[derive(Debug)]
pub(crate) struct Upstreams {
    direct: Arc<crate::http1::client::Pool>,
    http1: self::http1_pool::Http1Pool,
    h2: Mutex<HashMap<SocketAddr, http2::SendRequest<UpstreamBody>>>,
    /// HTTP/1.1 over TLS: a pooled client per distinct TLS setting.
    tls_http1: Mutex<HashMap<Arc<UpstreamTls>, TlsClient>>,
    /// HTTP/2 over TLS: one connection per endpoint and TLS setting.
    tls_h2: Mutex<HashMap<(SocketAddr, Arc<UpstreamTls>), H2Sender>>,
    config: UpstreamConfig,
    connect_timeout: Duration,
}

impl Upstreams {
    pub(crate) fn new(config: &UpstreamConfig) -> Self {
        let http1 = self::http1_pool::Http1Pool::new(config);
        let direct = Arc::new(crate::http1::client::Pool::new(config));
        direct.sweep_in_background();
        Self {
            direct,
            http1,
            h2: Mutex::new(HashMap::new()),
            tls_http1: Mutex::new(HashMap::new()),
            tls_h2: Mutex::new(HashMap::new()),
            config: config.clone(),
            connect_timeout: config.connect_timeout,
        }
    }

    /// Sends `req` (whose URI holds the path and query; the Host header
    /// names the virtual host) to `endpoint` over `protocol`, with the
    /// gateway's own headers, `forwarding`, in place of any under their
    /// names in `req`.
    pub(crate) async fn send(
        &self,
        transport: &Transport,
        endpoint: SocketAddr,
        authority: &Authority,
        mut req: Request<UpstreamBody>,
        forwarding: Option<&Forwarding>,
    ) -> Result<Response<FromUpstream>, UpstreamError> {
        let path_and_query = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let tls = transport.tls.as_ref();
        match transport.protocol {
            UpstreamProtocol::Http1 => {
                *req.version_mut() = Version::HTTP_11;
                let Some(tls) = tls else {
                    // Plain HTTP/1.1: our own pools, origin-form target.
                    *req.uri_mut() = Uri::from(path_and_query);
                    if crate::http1::client::handles(&req) {
                        let resp = self.direct.send(endpoint, &mut req, forwarding).await?;
                        return Ok(resp.map(FromUpstream::Direct));
                    }
                    if let Some(f) = forwarding {
                        f.apply(req.headers_mut());
                    }
                    let resp = self.http1.send(endpoint, req).await?;
                    return Ok(resp.map(FromUpstream::Hyper));
                };
                if let Some(f) = forwarding {
                    f.apply(req.headers_mut());
                }
                *req.uri_mut() = uri(UriScheme::HTTPS, authority.clone(), path_and_query);
                // The (boxed) response future is made first, so the TLS
                // client handle is not kept across the await.
                let response = self.tls_http1_client(tls)?.request(req);
                let sent = response.await;
                sent.map(|r| r.map(FromUpstream::Hyper)).map_err(|e| {
                    if e.is_connect() {
                        tracing::warn!(%endpoint, server_name = %tls.server_name, error = %connect_error(&e), "upstream TLS connection failed");
                        UpstreamError::Connect(Box::new(e))
                    } else {
                        UpstreamError::Reset(Box::new(e))
                    }
                })
            }
            UpstreamProtocol::H2c => {
                if let Some(f) = forwarding {
                    f.apply(req.headers_mut());
                }
                // `:authority` is the virtual host the client asked for.
                let host = req
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| Authority::try_from(h.as_bytes()).ok())
                    .unwrap_or_else(|| authority.clone());
                let scheme = if tls.is_some() {
                    UriScheme::HTTPS
                } else {
                    UriScheme::HTTP
                };
                *req.uri_mut() = uri(scheme, host, path_and_query);
                *req.version_mut() = Version::HTTP_2;
                req.headers_mut().remove(http::header::HOST);
                // Boxed: a handshake's state (kilobytes with TLS) would
                // otherwise sit in every request's future, HTTP/1.1 ones
                // included, and be copied each time the future moves.
                let mut sender = match tls {
                    None => Box::pin(self.h2_sender(endpoint)).await?,
                    Some(tls) => Box::pin(self.tls_h2_sender(endpoint, tls)).await?,
                };
                sender
                    .send_request(req)
                    .await
                    .map(|r| r.map(FromUpstream::Hyper))
                    .map_err(|e| UpstreamError::Reset(Box::new(e)))
            }
        }
    }

    /// An open HTTP/2 connection to `endpoint`, made on first use.
    async fn h2_sender(
        &self,
        endpoint: SocketAddr,
    ) -> Result<http2::SendRequest<UpstreamBody>, UpstreamError> {
        if let Some(s) = lock(&self.h2).get(&endpoint).filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let stream = connect_tcp(endpoint, self.connect_timeout).await?;
        let sender = h2_handshake(stream, endpoint).await?;
        lock(&self.h2).insert(endpoint, sender.clone());
        Ok(sender)
    }

    /// The pooled HTTP/1.1-over-TLS client for `tls`, made on first use.
    fn tls_http1_client(&self, tls: &Arc<UpstreamTls>) -> Result<TlsClient, UpstreamError> {
        let mut clients = lock(&self.tls_http1);
        if let Some(c) = clients.get(tls) {
            return Ok(c.clone());
        }
        // hyper-rustls sets ALPN itself from the enabled protocols.
        let config = client_config(tls, None)?;
        let name = server_name(tls)?;
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.config.connect_timeout));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .with_server_name_resolver(FixedServerNameResolver::new(name))
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(self.config.idle_timeout)
            .pool_max_idle_per_host(self.config.max_idle)
            .pool_timer(TokioTimer::new())
            .set_host(false)
            .build(https);
        clients.insert(tls.clone(), client.clone());
        Ok(client)
    }

    /// An open HTTP/2-over-TLS connection to `endpoint`, made on first use.
    async fn tls_h2_sender(
        &self,
        endpoint: SocketAddr,
        tls: &Arc<UpstreamTls>,
    ) -> Result<http2::SendRequest<UpstreamBody>, UpstreamError> {
        let key = (endpoint, tls.clone());
        if let Some(s) = lock(&self.tls_h2).get(&key).filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let config = client_config(tls, Some(b"h2"))?;
        let name = server_name(tls)?;
        let connect = async {
            let tcp = TcpStream::connect(endpoint)
                .await
                .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
            let _ = tcp.set_nodelay(true);
            TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    tracing::warn!(%endpoint, server_name = %tls.server_name, error = %e, "upstream TLS handshake failed");
                    UpstreamError::Connect(Box::new(e))
                })
        };
        let stream = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| UpstreamError::Connect("connect timed out".into()))??;
        let sender = h2_handshake(stream, endpoint).await?;
        lock(&self.tls_h2).insert(key, sender.clone());
        Ok(sender)
    }
}

/// The HTTP/2 handshake on a connected stream (plain or TLS), with the
/// connection driven on its own task.
async fn h2_handshake<S>(stream: S, endpoint: SocketAddr) -> Result<H2Sender, UpstreamError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
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
    Ok(sender)
}

fn client_config(
    tls: &UpstreamTls,
    alpn: Option<&[u8]>,
) -> Result<rustls::ClientConfig, UpstreamError> {
    let client = tls
        .client_certificate
        .as_ref()
        .map(|c| (&*c.chain_pem, &*c.key_pem));
    let alpn: Vec<&[u8]> = alpn.into_iter().collect();
    tls::client_config(tls.ca_pem.as_deref(), client, &alpn).map_err(|e| {
        tracing::warn!(server_name = %tls.server_name, error = %e, "upstream TLS settings unusable");
        UpstreamError::Connect(Box::new(e))
    })
}

fn server_name(tls: &UpstreamTls) -> Result<ServerName<'static>, UpstreamError> {
    ServerName::try_from(tls.server_name.to_string())
        .map_err(|e| UpstreamError::Connect(Box::new(e)))
}

/// The innermost cause of a connect error: the TLS verification failure
/// rather than hyper's "client error (Connect)".
fn connect_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

fn uri(scheme: UriScheme, authority: Authority, path_and_query: PathAndQuery) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority);
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).expect("scheme, authority and path always form a URI")
}
