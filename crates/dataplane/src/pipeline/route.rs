//! The route phase: the virtual host and the rule that take the request.
//! Only when the deciding rule has body conditions is the body read
//! (within the body-matching limit) and matching run again with it.

use std::sync::Arc;

use snapshot::{Body, Lookup, Matched, RequestInfo};

use super::context::{Downstream, ReqBody, RequestCtx, Target};
use super::proxy::Proxy;
use super::request_body::{is_json, read_limited};
use crate::respond::ProxyError;
use crate::state::{Active, RouteState};

/// The rule that takes a request, and its run-time state.
pub(super) type Routed<'s> = (Matched<'s>, Arc<RouteState>);

/// Matches the request against `active`'s routes. `Ok(None)`: body
/// conditions decide, and [`Proxy::route_by_body`] reads the body.
#[inline]
pub(super) fn route<'s>(
    cx: &mut RequestCtx<'_>,
    active: &'s Active,
    rq: &Downstream,
    target: &Target<'_>,
) -> Result<Option<Routed<'s>>, ProxyError> {
    let info = request_info(rq, target);
    match active.snapshot.route(&info) {
        Lookup::NeedBody => Ok(None),
        lookup => found(cx, active, lookup).map(Some),
    }
}

impl Proxy {
    /// Reads the body (within the body-matching limit) and matches again
    /// with it.
    pub(super) async fn route_by_body<'s>(
        &self,
        cx: &mut RequestCtx<'_>,
        active: &'s Active,
        rq: &mut Downstream,
        target: &Target<'_>,
    ) -> Result<Routed<'s>, ProxyError> {
        let ReqBody::Streamed(incoming) = rq.body.take() else {
            unreachable!("the body is read at most once")
        };
        let bytes = read_limited(
            incoming,
            &rq.parts.headers,
            self.config.max_body_match_bytes,
            ProxyError::BodyTooLarge,
        )
        .await?;
        let json = is_json(&rq.parts.headers)
            .then(|| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .flatten();
        let mut info = request_info(rq, target);
        info.body = match &json {
            Some(v) => Body::Json(v),
            None => Body::NotJson,
        };
        let lookup = active.snapshot.route(&info);
        let routed = found(cx, active, lookup);
        rq.body = ReqBody::Buffered(bytes);
        routed
    }
}

/// What the matcher reads of the request (its body not yet).
#[inline]
fn request_info<'a>(rq: &'a Downstream, target: &'a Target<'_>) -> RequestInfo<'a> {
    RequestInfo {
        host: &target.host,
        path: &target.path,
        query: target.query,
        method: &rq.parts.method,
        headers: &rq.parts.headers,
        body: Body::Unread,
    }
}

/// The route of a finished lookup; recorded for the log phase.
#[inline]
fn found<'s>(
    cx: &mut RequestCtx<'_>,
    active: &'s Active,
    lookup: Lookup<'s>,
) -> Result<Routed<'s>, ProxyError> {
    let matched = match lookup {
        Lookup::Matched(m) => m,
        Lookup::NotFound => return Err(ProxyError::NoRoute),
        Lookup::NeedBody => unreachable!("the body was supplied"),
    };
    let state = active.routes[matched.entry.route.0].clone();
    cx.obs.route = Some((matched.route.id.clone(), state.clone()));
    Ok((matched, state))
}
