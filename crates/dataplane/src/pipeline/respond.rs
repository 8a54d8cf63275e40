//! The respond phase: the upstream's response on its way to the client.
//! Hop-by-hop headers out, the route's response header modifier, the
//! affinity cookie, then the body: stored for the cache, re-encoded for
//! gRPC-Web, compressed, or streamed as it is.

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
use crate::proxy_body::ProxyBody;

impl Proxy {
    /// The client's response from the upstream's.
    pub(super) async fn respond(
        &self,
        cx: &mut RequestCtx<'_>,
        route: &Route,
        keys: &Keys,
        method: &Method,
        reply: Reply,
        fill: Option<Box<Fill>>,
    ) -> Response<ProxyBody> {
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
        let traffic = &route.traffic;
        if let Some(a) = &traffic.affinity
            && keys.pinned != Some(endpoint.id)
        {
            let mut cookie = format!(
                "{}={:016x}; Path=/; HttpOnly; SameSite=Lax",
                a.cookie, endpoint.id
            );
            if let Some(ttl) = a.ttl {
                cookie.push_str(&format!("; Max-Age={}", ttl.as_secs()));
            }
            if let Ok(v) = HeaderValue::try_from(cookie) {
                parts.headers.append(header::SET_COOKIE, v);
            }
        }
        if let Some(fill) = fill {
            let body =
                Box::pin(self.fill(fill, parts.status, &mut parts.headers, body, in_flight)).await;
            return Response::from_parts(parts, body);
        }
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
}
