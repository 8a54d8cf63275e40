//! The respond phase: the upstream's response on its way to the client.
//! Hop-by-hop headers out, the route's response header modifier, the
//! affinity cookie, then the body: re-encoded for gRPC-Web, compressed,
//! or streamed as it is; on a cache miss this request fills, stored first
//! (`cached.rs`).

use http::header::{self, HeaderValue};
use http::{Method, Response};
use snapshot::Route;

use super::attempt::Reply;
use super::cached::Fill;
use super::context::RequestCtx;
use super::proxy::Proxy;
use super::rewrite::Keys;
use crate::grpc::{self, GrpcKind};
use crate::headers::strip_hop_by_hop;
use crate::lb::EndpointState;
use crate::proxy_body::ProxyBody;
use crate::upstream::FromUpstream;

/// The client's response from the upstream's.
#[inline]
pub(super) fn respond(
    cx: &mut RequestCtx<'_>,
    route: &Route,
    keys: &Keys,
    method: &Method,
    reply: Reply,
) -> Response<ProxyBody> {
    let (mut parts, body, in_flight) = response_head(cx, route, keys, reply);
    let traffic = &route.traffic;
    let body = match cx.grpc() {
        Some((kind @ (GrpcKind::Web | GrpcKind::WebText), suffix)) => {
            grpc::web_response_headers(&mut parts.headers, kind, suffix);
            ProxyBody::grpc_web(grpc::EncodeWeb::new(body, kind), Some(in_flight))
        }
        _ => match traffic.compression.as_ref().and_then(|p| {
            crate::compress::choose(
                p,
                method,
                keys.accept_encoding.as_ref(),
                parts.status,
                &parts.headers,
            )
        }) {
            Some(encoding) => ProxyBody::boxed(
                crate::compress::compress(body, encoding, &mut parts.headers),
                Some(in_flight),
            ),
            None => ProxyBody::upstream(body, Some(in_flight)),
        },
    };
    Response::from_parts(parts, body)
}

impl Proxy {
    /// The client's response from the upstream's, on a cache miss this
    /// request fills: stored when small enough, then handed on.
    pub(super) async fn respond_filling(
        &self,
        cx: &mut RequestCtx<'_>,
        route: &Route,
        keys: &Keys,
        reply: Reply,
        fill: Box<Fill>,
    ) -> Response<ProxyBody> {
        let (mut parts, body, in_flight) = response_head(cx, route, keys, reply);
        let body = self
            .fill(fill, parts.status, &mut parts.headers, body, in_flight)
            .await;
        Response::from_parts(parts, body)
    }
}

/// The response head as the client gets it, and the body and in-flight
/// count still to be handed on.
#[inline]
fn response_head(
    cx: &mut RequestCtx<'_>,
    route: &Route,
    keys: &Keys,
    reply: Reply,
) -> (http::response::Parts, FromUpstream, crate::lb::InFlight) {
    let Reply {
        response,
        endpoint,
        in_flight,
        took,
    } = reply;
    cx.obs.upstream = Some((endpoint.addr, took));
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(m) = &route.filters.response_headers {
        m.apply(&mut parts.headers);
    }
    affinity_cookie(route, keys, &endpoint, &mut parts.headers);
    (parts, body, in_flight)
}

/// The affinity cookie naming `endpoint`, unless the client already
/// named it.
#[inline]
fn affinity_cookie(
    route: &Route,
    keys: &Keys,
    endpoint: &EndpointState,
    headers: &mut http::HeaderMap,
) {
    let Some(a) = &route.traffic.affinity else {
        return;
    };
    if keys.pinned == Some(endpoint.id) {
        return;
    }
    let mut cookie = format!(
        "{}={:016x}; Path=/; HttpOnly; SameSite=Lax",
        a.cookie, endpoint.id
    );
    if let Some(ttl) = a.ttl {
        cookie.push_str(&format!("; Max-Age={}", ttl.as_secs()));
    }
    if let Ok(v) = HeaderValue::try_from(cookie) {
        headers.append(header::SET_COOKIE, v);
    }
}
