//! The request pipeline.
//!
//! Phases, in order (see `docs/request-phases.md`):
//! 1. **load** the live configuration (one atomic load, kept until the
//!    response is sent);
//! 2. **match** host and route;
//! 3. **pick** a backend by weight and an endpoint of its cluster;
//! 4. **forward** the request upstream with hop-by-hop headers removed and
//!    forwarding headers added, bounded by the route's timeout;
//! 5. **respond** with the upstream's response, streamed, or with the
//!    error mapping of [`crate::respond`].

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use snapshot::{Action, BackendTarget, RequestInfo};

use crate::body::ProxyBody;
use crate::headers::{add_forwarded, strip_hop_by_hop};
use crate::respond::ProxyError;
use crate::state::Gateway;

/// Settings of the request pipeline.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Time limit for the upstream response headers when the route sets
    /// none.
    pub default_timeout: Duration,
    /// Time limit for establishing an upstream connection.
    pub connect_timeout: Duration,
    /// How long idle upstream connections are kept for reuse.
    pub upstream_idle_timeout: Duration,
    /// Most idle connections kept per upstream endpoint.
    pub upstream_max_idle: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            upstream_idle_timeout: Duration::from_secs(90),
            upstream_max_idle: 256,
        }
    }
}

/// The proxy: the live configuration plus the upstream connection pool.
#[derive(Debug)]
pub struct Proxy {
    gateway: Arc<Gateway>,
    client: Client<HttpConnector, Incoming>,
    config: ProxyConfig,
}

impl Proxy {
    /// A proxy serving `gateway`'s live configuration.
    pub fn new(gateway: Arc<Gateway>, config: ProxyConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.enforce_http(true);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(config.upstream_idle_timeout)
            .pool_max_idle_per_host(config.upstream_max_idle)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            // The client's Host header travels unchanged; the connector
            // uses the URI's authority (the endpoint) only to connect.
            .set_host(false)
            .build(connector);
        Self {
            gateway,
            client,
            config,
        }
    }

    /// The live configuration this proxy serves.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Handles one request from `peer` received on a listener of scheme
    /// `proto` (`http` or `https`).
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        proto: &'static str,
    ) -> Response<ProxyBody> {
        match self.proxy(req, peer, proto).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(client = %peer.ip(), error = %e, "request failed");
                e.into_response()
            }
        }
    }

    async fn proxy(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        proto: &'static str,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        // Phase 1: load. This Arc keeps the configuration this request
        // started with alive until it is done, whatever is published.
        let active = self.gateway.load();
        let (mut parts, body) = req.into_parts();

        // Phase 2: match.
        let host = request_host(&parts).ok_or(ProxyError::BadHost)?;
        let info = RequestInfo {
            host: &host,
            path: parts.uri.path(),
            query: parts.uri.query(),
            method: &parts.method,
            headers: &parts.headers,
        };
        let matched = active.snapshot.route(&info).ok_or(ProxyError::NoRoute)?;
        let route = matched.route;

        // Phase 3: pick.
        let forward = match &route.action {
            Action::Respond(d) => {
                let mut resp = Response::new(Either::Right(Full::new(d.body.clone())));
                *resp.status_mut() = http::StatusCode::from_u16(d.status)
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                if let Ok(ct) = HeaderValue::from_str(&d.content_type) {
                    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
                }
                return Ok(resp);
            }
            Action::Forward(f) => f,
        };
        let backend = match forward.backends.len() {
            0 => None,
            1 => forward.backends.first(),
            _ => forward.pick(fastrand::u64(..forward.total_weight())),
        }
        .ok_or(ProxyError::NoBackends)?;
        let index = match &backend.target {
            BackendTarget::Cluster { index, .. } => *index,
            BackendTarget::Unresolved { status, reason } => {
                return Err(ProxyError::Unresolved {
                    status: *status,
                    reason: reason.to_string(),
                });
            }
        };
        let cluster = active.snapshot.cluster(index);
        let (_endpoint, authority) =
            active.clusters[index.0]
                .pick(cluster)
                .ok_or_else(|| ProxyError::NoEndpoints {
                    cluster: cluster.name.to_string(),
                })?;
        // A zero limit means "no limit"; no limit set at all means the
        // gateway default.
        let timeout = match (route.request_timeout, route.backend_timeout) {
            (None, None) => Some(self.config.default_timeout),
            (r, b) => [r, b].into_iter().flatten().filter(|t| !t.is_zero()).min(),
        };

        // Phase 4: forward.
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        strip_hop_by_hop(&mut parts.headers);
        add_forwarded(&mut parts.headers, peer.ip(), proto, original_host.clone());
        if !parts.headers.contains_key(header::HOST)
            && let Some(h) = original_host
        {
            parts.headers.insert(header::HOST, h);
        }
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(authority.clone());
        uri.path_and_query = Some(path_and_query);
        parts.uri = Uri::from_parts(uri).map_err(|_| ProxyError::BadHost)?;
        parts.version = Version::HTTP_11;
        let upstream_req = Request::from_parts(parts, body);

        let sent = self.client.request(upstream_req);
        let result = match timeout {
            Some(t) => tokio::time::timeout(t, sent)
                .await
                .map_err(|_| ProxyError::UpstreamTimeout)?,
            None => sent.await,
        };
        let resp = result.map_err(|e| {
            if e.is_connect() {
                ProxyError::UpstreamConnect(e)
            } else {
                ProxyError::Upstream(e)
            }
        })?;

        // Phase 5: respond.
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        drop(active);
        Ok(Response::from_parts(parts, Either::Left(body)))
    }
}

/// The request's host, lowercase and without port or trailing dot: the
/// authority of an absolute URI (as HTTP/2 sends it), else the Host
/// header. `None` when the Host header is not valid text.
fn request_host(parts: &http::request::Parts) -> Option<Cow<'_, str>> {
    let raw = match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => match parts.headers.get(header::HOST) {
            Some(v) => v.to_str().ok()?,
            None => "",
        },
    };
    let raw = raw.rsplit_once('@').map_or(raw, |(_, h)| h);
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal keeps its brackets' content.
        &raw[..rest.find(']').map_or(raw.len(), |i| i + 2)]
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(uri: &str, host: Option<&str>) -> Option<String> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        let (parts, ()) = b.body(()).unwrap().into_parts();
        request_host(&parts).map(Cow::into_owned)
    }

    #[test]
    fn host_is_normalized() {
        assert_eq!(
            host_of("/", Some("Example.COM:8080")).as_deref(),
            Some("example.com")
        );
        assert_eq!(
            host_of("/", Some("example.com.")).as_deref(),
            Some("example.com")
        );
        assert_eq!(host_of("/", Some("[::1]:80")).as_deref(), Some("[::1]"));
        assert_eq!(host_of("/", None).as_deref(), Some(""));
        // The absolute form wins over the Host header.
        assert_eq!(
            host_of("http://a.example/x", Some("b.example")).as_deref(),
            Some("a.example")
        );
    }
}
