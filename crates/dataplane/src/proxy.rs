//! The request pipeline.
//!
//! Phases, in order (see `docs/request-phases.md`):
//! 1. **load** the live configuration (one atomic load, kept until the
//!    response is sent);
//! 2. **normalize** host and path;
//! 3. **match** host and route (reading the body, within a limit, only
//!    when the deciding route has body conditions);
//! 4. **answer** redirects and fixed responses;
//! 5. **pick** a backend by weight and an endpoint of its cluster;
//! 6. **rewrite** the request: hop-by-hop headers out, header filters,
//!    URL rewrite, forwarding headers in; start mirrors;
//! 7. **forward** upstream, bounded by the route's timeout;
//! 8. **respond** with the upstream's response (hop-by-hop headers out,
//!    response header filter), streamed; failures go through
//!    [`crate::respond`].

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme as UriScheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Either, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use snapshot::{
    Action, BackendTarget, Body, Lookup, RedirectFrom, RequestInfo, Route, Scheme, normalize_path,
};

use crate::body::{ProxyBody, TeeBody, UpstreamBody};
use crate::headers::{add_forwarded, strip_hop_by_hop};
use crate::respond::ProxyError;
use crate::state::{Active, Gateway};

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
    /// Most body bytes read to evaluate body conditions; a larger body is
    /// answered with 413.
    pub max_body_match_bytes: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            upstream_idle_timeout: Duration::from_secs(90),
            upstream_max_idle: 256,
            max_body_match_bytes: 64 * 1024,
        }
    }
}

/// Where a request came in.
#[derive(Clone, Copy, Debug)]
pub struct Connection {
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener's port, for redirects that keep the port.
    pub local_port: u16,
    /// `http` or `https`.
    pub scheme: Scheme,
}

/// The proxy: the live configuration plus the upstream connection pool.
#[derive(Debug)]
pub struct Proxy {
    gateway: Arc<Gateway>,
    client: Client<HttpConnector, UpstreamBody>,
    config: ProxyConfig,
}

/// The request body as the pipeline holds it.
enum ReqBody {
    Streamed(Incoming),
    Buffered(Bytes),
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

    /// Handles one request.
    pub async fn handle(&self, req: Request<Incoming>, conn: Connection) -> Response<ProxyBody> {
        match self.proxy(req, conn).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(client = %conn.peer.ip(), error = %e, "request failed");
                e.into_response()
            }
        }
    }

    async fn proxy(
        &self,
        req: Request<Incoming>,
        conn: Connection,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        // Phase 1: load. This Arc keeps the configuration this request
        // started with alive until it is done, whatever is published.
        let active = self.gateway.load();
        let (mut parts, incoming) = req.into_parts();

        // Phase 2: normalize.
        let (host, host_port) = request_host(&parts).ok_or(ProxyError::BadHost)?;
        let original = parts.uri.path_and_query().cloned();
        let raw_path = original.as_ref().map_or("/", PathAndQuery::path);
        let path = normalize_path(raw_path).map_err(ProxyError::BadPath)?;
        let query = original.as_ref().and_then(PathAndQuery::query);

        // Phase 3: match.
        let mut body = ReqBody::Streamed(incoming);
        let mut info = RequestInfo {
            host: &host,
            path: &path,
            query,
            method: &parts.method,
            headers: &parts.headers,
            body: Body::Unread,
        };
        let mut lookup = active.snapshot.route(&info);
        let json;
        if let Lookup::NeedBody = lookup {
            let ReqBody::Streamed(incoming) = body else {
                unreachable!("the body is read at most once")
            };
            let bytes =
                read_limited(incoming, &parts.headers, self.config.max_body_match_bytes).await?;
            json = is_json(&parts.headers)
                .then(|| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .flatten();
            info.body = match &json {
                Some(v) => Body::Json(v),
                None => Body::NotJson,
            };
            lookup = active.snapshot.route(&info);
            body = ReqBody::Buffered(bytes);
        }
        let matched = match lookup {
            Lookup::Matched(m) => m,
            Lookup::NotFound => return Err(ProxyError::NoRoute),
            Lookup::NeedBody => unreachable!("the body was supplied"),
        };
        let route = matched.route;

        // Phase 4: answer.
        let forward = match &route.action {
            Action::Forward(f) => f,
            Action::Respond(d) => {
                let mut resp = Response::new(Either::Right(Full::new(d.body.clone())));
                *resp.status_mut() =
                    StatusCode::from_u16(d.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                if let Ok(ct) = HeaderValue::from_str(&d.content_type) {
                    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
                }
                return Ok(resp);
            }
            Action::Redirect(r) => {
                let from = RedirectFrom {
                    scheme: conn.scheme,
                    host: &host,
                    port: host_port.unwrap_or(conn.local_port),
                    path: &path,
                    query,
                };
                let location = r.location(&from, &matched.entry.path);
                let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
                *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND);
                if let Ok(v) = HeaderValue::try_from(location) {
                    resp.headers_mut().insert(header::LOCATION, v);
                }
                return Ok(resp);
            }
        };

        // Phase 5: pick.
        let backend = match forward.backends.len() {
            0 => None,
            1 => forward.backends.first(),
            _ => forward.pick(fastrand::u64(..forward.total_weight())),
        }
        .ok_or(ProxyError::NoBackends)?;
        let authority = pick_endpoint(&active, &backend.target)?;

        // Phase 6: rewrite.
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        strip_hop_by_hop(&mut parts.headers);
        let filters = &route.filters;
        if let Some(m) = &filters.request_headers {
            m.apply(&mut parts.headers);
        }
        let mut upstream_path = None;
        if let Some(rewrite) = &filters.rewrite {
            if let Some(p) = &rewrite.path {
                upstream_path = Some(p.apply(&path, &matched.entry.path));
            }
            if let Some(h) = &rewrite.hostname {
                parts.headers.insert(header::HOST, h.clone());
            }
        }
        add_forwarded(
            &mut parts.headers,
            conn.peer.ip(),
            conn.scheme.as_str(),
            original_host.clone(),
        );
        if !parts.headers.contains_key(header::HOST)
            && let Some(h) = original_host
        {
            parts.headers.insert(header::HOST, h);
        }
        let path_and_query = match (upstream_path, &path) {
            // Unchanged: reuse the request's own bytes.
            (None, Cow::Borrowed(_)) => original.unwrap_or_else(|| PathAndQuery::from_static("/")),
            (new, _) => {
                let p = new.as_deref().unwrap_or(&path);
                let text = match query {
                    Some(q) => format!("{p}?{q}"),
                    None => p.to_owned(),
                };
                PathAndQuery::try_from(text)
                    .map_err(|_| ProxyError::BadPath(snapshot::PathError::BadEscape))?
            }
        };
        parts.uri = endpoint_uri(authority, path_and_query.clone())?;
        parts.version = Version::HTTP_11;
        let upstream_body = self.start_mirrors(&active, route, &parts, &path_and_query, body);
        let upstream_req = Request::from_parts(parts, upstream_body);

        // Phase 7: forward.
        let sent = self.client.request(upstream_req);
        let result = match self.timeout_for(route) {
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

        // Phase 8: respond.
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(m) = &filters.response_headers {
            m.apply(&mut parts.headers);
        }
        Ok(Response::from_parts(parts, Either::Left(body)))
    }

    /// The route's time limit for the upstream response headers. A zero
    /// limit means "no limit"; no limit set at all means the default.
    fn timeout_for(&self, route: &Route) -> Option<Duration> {
        match (route.request_timeout, route.backend_timeout) {
            (None, None) => Some(self.config.default_timeout),
            (r, b) => [r, b].into_iter().flatten().filter(|t| !t.is_zero()).min(),
        }
    }

    /// Sends sampled copies of the request to the route's mirrors, and
    /// returns the body for the main request (teed when mirrors need a
    /// streamed copy). Mirrors never delay the main request: they run on
    /// their own tasks, and a mirror that falls behind is cut off.
    fn start_mirrors(
        &self,
        active: &Arc<Active>,
        route: &Route,
        parts: &http::request::Parts,
        path_and_query: &PathAndQuery,
        body: ReqBody,
    ) -> UpstreamBody {
        let targets: Vec<Authority> = route
            .filters
            .mirrors
            .iter()
            .filter(|m| m.percent >= 100 || fastrand::u8(..100) < m.percent)
            .filter_map(|m| pick_endpoint(active, &m.target).ok().cloned())
            .collect();
        let (main, mut copies): (UpstreamBody, Vec<UpstreamBody>) = match body {
            ReqBody::Buffered(bytes) => (
                UpstreamBody::Buffered(Full::new(bytes.clone())),
                targets
                    .iter()
                    .map(|_| UpstreamBody::Buffered(Full::new(bytes.clone())))
                    .collect(),
            ),
            ReqBody::Streamed(incoming) if targets.is_empty() => {
                (UpstreamBody::Streamed(incoming), Vec::new())
            }
            ReqBody::Streamed(incoming) if http_body::Body::is_end_stream(&incoming) => (
                UpstreamBody::Streamed(incoming),
                targets
                    .iter()
                    .map(|_| UpstreamBody::Empty(Empty::new()))
                    .collect(),
            ),
            ReqBody::Streamed(incoming) => {
                let (tee, mirrors) = TeeBody::new(incoming, targets.len());
                (
                    UpstreamBody::Tee(tee),
                    mirrors.into_iter().map(UpstreamBody::Mirror).collect(),
                )
            }
        };
        let timeout = self
            .timeout_for(route)
            .unwrap_or(self.config.default_timeout);
        for authority in targets.into_iter().rev() {
            let Some(copy) = copies.pop() else { break };
            let Ok(uri) = endpoint_uri(&authority, path_and_query.clone()) else {
                continue;
            };
            let mut req = Request::new(copy);
            *req.method_mut() = parts.method.clone();
            *req.uri_mut() = uri;
            *req.version_mut() = Version::HTTP_11;
            *req.headers_mut() = parts.headers.clone();
            let sent = self.client.request(req);
            tokio::spawn(async move {
                match tokio::time::timeout(timeout, sent).await {
                    Ok(Ok(resp)) => {
                        // Read the answer so the connection can be reused.
                        let _ = resp.into_body().collect().await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "mirror request failed"),
                    Err(_) => tracing::debug!("mirror request timed out"),
                }
            });
        }
        main
    }
}

/// An endpoint of the target's cluster, round robin.
fn pick_endpoint<'a>(
    active: &'a Arc<Active>,
    target: &BackendTarget,
) -> Result<&'a Authority, ProxyError> {
    let index = match target {
        BackendTarget::Cluster { index, .. } => *index,
        BackendTarget::Unresolved { status, reason } => {
            return Err(ProxyError::Unresolved {
                status: *status,
                reason: reason.to_string(),
            });
        }
    };
    let cluster = active.snapshot.cluster(index);
    active.clusters[index.0]
        .pick(cluster)
        .map(|(_, authority)| authority)
        .ok_or_else(|| ProxyError::NoEndpoints {
            cluster: cluster.name.to_string(),
        })
}

fn endpoint_uri(authority: &Authority, path_and_query: PathAndQuery) -> Result<Uri, ProxyError> {
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(UriScheme::HTTP);
    uri.authority = Some(authority.clone());
    uri.path_and_query = Some(path_and_query);
    Uri::from_parts(uri).map_err(|_| ProxyError::BadHost)
}

/// Reads the body in full, failing with 413 past `limit` (checked against
/// `Content-Length` first, so an honest client is refused before sending).
async fn read_limited(
    body: Incoming,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<Bytes, ProxyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ProxyError::BodyTooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ProxyError::BodyTooLarge),
        Err(e) => Err(ProxyError::BodyRead(e.to_string())),
    }
}

/// Whether the request declares a JSON body (`application/json` or any
/// `+json` type).
fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or_default().trim();
    mime.eq_ignore_ascii_case("application/json")
        || mime
            .rsplit_once('+')
            .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json"))
}

/// The request's host, lowercase and without trailing dot, and its port
/// if one was given: the authority of an absolute URI (as HTTP/2 sends
/// it), else the Host header. `None` when the Host header is not valid
/// text or its port is not a number.
fn request_host(parts: &http::request::Parts) -> Option<(Cow<'_, str>, Option<u16>)> {
    let raw = match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => match parts.headers.get(header::HOST) {
            Some(v) => v.to_str().ok()?,
            None => "",
        },
    };
    let raw = raw.rsplit_once('@').map_or(raw, |(_, h)| h);
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal keeps its brackets.
        let end = rest.find(']')? + 2;
        let port = raw[end..].strip_prefix(':');
        (&raw[..end], port)
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) => (h, Some(port)),
            None => (raw, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(uri: &str, host: Option<&str>) -> Option<(String, Option<u16>)> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        let (parts, ()) = b.body(()).unwrap().into_parts();
        request_host(&parts).map(|(h, p)| (h.into_owned(), p))
    }

    #[test]
    fn host_is_normalized() {
        assert_eq!(
            host_of("/", Some("Example.COM:8080")),
            Some(("example.com".into(), Some(8080)))
        );
        assert_eq!(
            host_of("/", Some("example.com.")),
            Some(("example.com".into(), None))
        );
        assert_eq!(
            host_of("/", Some("[::1]:80")),
            Some(("[::1]".into(), Some(80)))
        );
        assert_eq!(host_of("/", None), Some((String::new(), None)));
        assert_eq!(host_of("/", Some("example.com:http")), None);
        // The absolute form wins over the Host header.
        assert_eq!(
            host_of("http://a.example/x", Some("b.example")),
            Some(("a.example".into(), None))
        );
    }

    #[test]
    fn json_content_types() {
        let mut h = http::HeaderMap::new();
        for (ct, want) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/jsonp", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_json(&h), want, "{ct}");
        }
        assert!(!is_json(&http::HeaderMap::new()));
    }
}
