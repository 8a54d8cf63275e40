//! The cached phase: a fresh stored response answers the request; on a
//! miss, the first request for a key fetches it (others wait for it) and
//! the respond phase stores what it got.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, request::Parts};
use snapshot::{CachePolicy, Route};

use super::context::{RequestCtx, Target};
use super::proxy::Proxy;
use crate::cache::{self, FetchGuard, Lookup};
use crate::lb::InFlight;
use crate::proxy_body::ProxyBody;
use crate::upstream::FromUpstream;

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// A miss this request fills: the key's guard, the policy and the
/// request headers the stored entry varies on.
pub(super) struct Fill {
    guard: FetchGuard,
    policy: Arc<CachePolicy>,
    request_headers: HeaderMap,
}

impl Proxy {
    /// Looks the request up in the response cache, when its route caches:
    /// the stored response, or the miss this request fills (`None`: not
    /// cacheable, or a miss someone else fills).
    pub(super) async fn cached(
        &self,
        cx: &RequestCtx<'_>,
        route: &Route,
        parts: &Parts,
        target: &Target<'_>,
        upgrading: bool,
    ) -> ControlFlow<Response<ProxyBody>, Option<Box<Fill>>> {
        let Some(policy) = &route.policies.cache else {
            return ControlFlow::Continue(None);
        };
        if upgrading
            || cx.grpc.is_some()
            || !cache::cacheable_request(&parts.method, &parts.headers)
        {
            return ControlFlow::Continue(None);
        }
        let key = cache::ResponseCache::key(
            policy,
            &route.id,
            &target.host,
            &target.path,
            target.query,
            &parts.headers,
        );
        let wait = self.timeout_for(route).unwrap_or(Duration::from_secs(30));
        match self.cache.lookup(key, &parts.headers, wait).await {
            Lookup::Hit(stored) => {
                let body = if parts.method == Method::HEAD {
                    Bytes::new()
                } else {
                    stored.body.clone()
                };
                let mut resp = Response::new(ProxyBody::full(body));
                *resp.status_mut() = stored.status;
                *resp.headers_mut() = stored.headers.clone();
                resp.headers_mut()
                    .insert(header::AGE, HeaderValue::from(stored.age()));
                resp.headers_mut()
                    .insert(X_CACHE.clone(), HeaderValue::from_static("HIT"));
                ControlFlow::Break(resp)
            }
            Lookup::Fetch(guard) if parts.method == Method::GET => {
                ControlFlow::Continue(Some(Box::new(Fill {
                    guard,
                    policy: policy.clone(),
                    request_headers: parts.headers.clone(),
                })))
            }
            Lookup::Fetch(_) => ControlFlow::Continue(None),
        }
    }

    /// Stores the upstream's response for a miss this request fills, when
    /// it is small enough, and hands it on.
    pub(super) async fn fill(
        &self,
        fill: Box<Fill>,
        status: StatusCode,
        headers: &mut HeaderMap,
        body: FromUpstream,
        in_flight: InFlight,
    ) -> ProxyBody {
        let Fill {
            guard,
            policy,
            request_headers,
        } = *fill;
        headers.insert(X_CACHE.clone(), HeaderValue::from_static("MISS"));
        let body = match cache::read_up_to(body, policy.max_entry_bytes).await {
            Ok(bytes) => {
                self.cache.store(
                    &guard.key,
                    &policy,
                    &request_headers,
                    status,
                    headers,
                    bytes.clone(),
                );
                drop(in_flight);
                ProxyBody::full(bytes)
            }
            Err(stream) => ProxyBody::boxed(stream, Some(in_flight)),
        };
        drop(guard);
        body
    }
}
