//! The rewrite phase: the request as the upstream gets it. Credentials the
//! gateway checked go no further; hop-by-hop headers out; the route's
//! header modifier and URL rewrite; the gateway's own forwarding headers;
//! gRPC-Web into gRPC.

use std::borrow::Cow;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Uri, request::Parts};
use snapshot::{HashKey, LoadBalance, Matched, Traffic};

use super::accept::{Asked, without_userinfo};
use super::admit::Admitted;
use super::context::{RequestCtx, Target};
use crate::body::UpstreamBody;
use crate::clientinfo;
use crate::grpc::{self, GrpcKind};
use crate::headers::{Forwarding, strip_hop_by_hop};
use crate::lb::stable_hash;
use crate::respond::ProxyError;

/// The parts of the upstream request that every attempt repeats.
pub(super) struct Head {
    pub(super) method: Method,
    pub(super) path_and_query: PathAndQuery,
    pub(super) headers: HeaderMap,
    /// The headers the gateway sets, sent beside `headers`.
    pub(super) forwarding: Forwarding,
}

impl Head {
    /// A head to be filled in by [`rewrite`], in place (it is large, and
    /// every move of it is a copy).
    #[inline]
    pub(super) fn new(method: Method) -> Self {
        Self {
            method,
            path_and_query: PathAndQuery::from_static("/"),
            headers: HeaderMap::new(),
            forwarding: Forwarding::default(),
        }
    }

    /// The request for an attempt that may not be the last.
    pub(super) fn request(&self, body: UpstreamBody) -> Request<UpstreamBody> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = Uri::from(self.path_and_query.clone());
        *req.headers_mut() = self.headers.clone();
        req
    }

    /// The request for the last attempt: the headers move instead of
    /// being copied.
    pub(super) fn take_request(&mut self, body: UpstreamBody) -> Request<UpstreamBody> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = Uri::from(self.path_and_query.clone());
        *req.headers_mut() = std::mem::take(&mut self.headers);
        req
    }
}

/// What the later phases read from the request as the client sent it,
/// taken before the rewrite changes it.
pub(super) struct Keys {
    /// The consistent-hashing key.
    pub(super) hash: Option<u64>,
    /// The endpoint the affinity cookie names.
    pub(super) pinned: Option<u64>,
    /// `Accept-Encoding`, read only for a route that compresses.
    pub(super) accept_encoding: Option<HeaderValue>,
    /// The method may be sent again.
    pub(super) idempotent: bool,
}

impl Keys {
    #[inline]
    pub(super) fn of(traffic: &Traffic, parts: &Parts, client_ip: IpAddr) -> Self {
        let headers = &parts.headers;
        Self {
            hash: match &traffic.load_balance {
                LoadBalance::ConsistentHash(key) => hash_key(key, headers, client_ip),
                _ => None,
            },
            pinned: traffic
                .affinity
                .as_ref()
                .and_then(|a| cookie(headers, &a.cookie))
                .and_then(|v| u64::from_str_radix(v, 16).ok()),
            accept_encoding: traffic
                .compression
                .as_ref()
                .and_then(|_| headers.get(header::ACCEPT_ENCODING).cloned()),
            idempotent: matches!(
                parts.method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::PUT
                    | Method::DELETE
                    | Method::TRACE
            ),
        }
    }
}

/// What the rewrite works from besides the request.
pub(super) struct Sources<'a, 'r> {
    pub(super) matched: &'a Matched<'a>,
    pub(super) target: &'a Target<'r>,
    pub(super) asked: &'a Asked,
    pub(super) original: Option<&'a PathAndQuery>,
    pub(super) upgrading: bool,
}

/// Rewrites the request's head for the upstream into `head`; the
/// request's headers move there.
#[inline]
pub(super) fn rewrite(
    cx: &RequestCtx<'_>,
    parts: &mut Parts,
    from: &Sources<'_, '_>,
    admitted: Admitted,
    head: &mut Head,
) -> Result<(), ProxyError> {
    let Admitted {
        mut passed,
        authorized_headers,
    } = admitted;
    let auth_query = passed.query.take();
    passed.apply(&mut parts.headers);
    for (name, value) in authorized_headers {
        parts.headers.insert(name, value);
    }
    // The verified client identity replaces whatever the client sent
    // under that name.
    if let Some((name, subject)) = &cx.client_subject {
        parts.headers.remove(name);
        if let Some(subject) = subject {
            parts.headers.insert(name, subject.clone());
        }
    }
    let original_host = rewrite_headers(cx, parts, from);
    let upstream_path = from.matched.route.filters.rewrite.as_ref().and_then(|r| {
        r.path
            .as_ref()
            .map(|p| p.apply(&from.target.path, &from.matched.entry.path))
    });
    // The upstream continues the trace under the gateway's span (each
    // attempt's own span, when spans are recorded).
    let trace = cx.obs.trace;
    head.forwarding = forwarding(
        &parts.headers,
        cx,
        original_host,
        trace.traceparent(&trace.span_id),
    );
    head.path_and_query = path_and_query(from, upstream_path, auth_query)?;
    head.headers = std::mem::take(&mut parts.headers);
    Ok(())
}

/// Hop-by-hop headers out, the route's header modifier and host rewrite,
/// the upgrade and gRPC-Web headers in; the host the client asked for.
#[inline]
fn rewrite_headers(
    cx: &RequestCtx<'_>,
    parts: &mut Parts,
    from: &Sources<'_, '_>,
) -> Option<HeaderValue> {
    // The host the client asked for: an absolute target's authority
    // (HTTP/2's `:authority`, or an HTTP/1.1 absolute-form target, whose
    // Host header it replaces), else the Host header.
    let original_host = match parts.uri.authority() {
        Some(a) => {
            let value = HeaderValue::from_str(without_userinfo(a)).ok();
            if let Some(v) = &value {
                parts.headers.insert(header::HOST, v.clone());
            }
            value
        }
        None => from.asked.host.clone(),
    };
    let keep_te = cx.grpc.is_some() || from.asked.te_trailers;
    let upgrade = from
        .upgrading
        .then(|| parts.headers.get(header::UPGRADE).cloned());
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    if keep_te {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let filters = &from.matched.route.filters;
    if let Some(m) = &filters.request_headers {
        m.apply(headers);
    }
    if let Some(h) = filters.rewrite.as_ref().and_then(|r| r.hostname.as_ref()) {
        headers.insert(header::HOST, h.clone());
    }
    if !headers.contains_key(header::HOST)
        && let Some(h) = &original_host
    {
        headers.insert(header::HOST, h.clone());
    }
    if let Some(upgrade) = upgrade {
        if let Some(u) = upgrade {
            headers.insert(header::UPGRADE, u);
        }
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if let Some((GrpcKind::Web | GrpcKind::WebText, suffix)) = cx.grpc() {
        grpc::web_request_headers(headers, suffix);
    }
    original_host
}

/// The upstream request's path and query: the client's own bytes when
/// nothing changed them, else the rewritten path with the query (less an
/// API key the gateway took from it).
fn path_and_query(
    from: &Sources<'_, '_>,
    upstream_path: Option<String>,
    auth_query: Option<String>,
) -> Result<PathAndQuery, ProxyError> {
    let bad = |_| ProxyError::BadPath(snapshot::PathError::BadEscape);
    let path = &from.target.path;
    let path_and_query = match (upstream_path, path) {
        // Unchanged: reuse the request's own bytes.
        (None, Cow::Borrowed(_)) => from
            .original
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        (new, _) => {
            let p = new.as_deref().unwrap_or(path);
            let text = match from.target.query {
                Some(q) => format!("{p}?{q}"),
                None => p.to_owned(),
            };
            PathAndQuery::try_from(text).map_err(bad)?
        }
    };
    Ok(match auth_query {
        None => path_and_query,
        Some(q) => {
            let text = if q.is_empty() {
                path_and_query.path().to_owned()
            } else {
                format!("{}?{q}", path_and_query.path())
            };
            PathAndQuery::try_from(text).map_err(bad)?
        }
    })
}

/// The headers the gateway sets on the upstream request (see
/// [`Forwarding`]); `headers` is the request's map, read for a trusted
/// peer's `X-Forwarded-For`.
#[inline]
fn forwarding(
    headers: &HeaderMap,
    cx: &RequestCtx<'_>,
    original_host: Option<HeaderValue>,
    traceparent: HeaderValue,
) -> Forwarding {
    let conn = cx.conn;
    let forwarded_for = if cx.peer_trusted {
        clientinfo::forwarded_for(headers, conn.peer.ip(), true)
    } else {
        Some(conn.peer_value.clone())
    };
    let real_ip = if cx.client_ip == conn.peer.ip() {
        Some(conn.peer_value.clone())
    } else {
        HeaderValue::try_from(cx.client_ip.to_canonical().to_string()).ok()
    };
    Forwarding {
        forwarded_for,
        real_ip,
        forwarded_proto: Some(HeaderValue::from_static(conn.scheme.as_str())),
        forwarded_host: original_host,
        request_id: Some(cx.request_id.clone()),
        traceparent: Some(traceparent),
    }
}

/// The consistent-hashing key of a request.
fn hash_key(key: &HashKey, headers: &HeaderMap, client_ip: IpAddr) -> Option<u64> {
    match key {
        HashKey::Header(name) => headers.get(name).map(|v| stable_hash(v.as_bytes())),
        HashKey::Cookie(name) => cookie(headers, name).map(|v| stable_hash(v.as_bytes())),
        HashKey::SourceIp => Some(stable_hash(client_ip.to_canonical().to_string().as_bytes())),
    }
}

/// The value of a cookie, if the request carries it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_in_any_header() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; session=abc"));
        h.append(header::COOKIE, HeaderValue::from_static("other=2"));
        assert_eq!(cookie(&h, "session"), Some("abc"));
        assert_eq!(cookie(&h, "other"), Some("2"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
