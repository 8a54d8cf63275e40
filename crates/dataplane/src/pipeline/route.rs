//! The route phase: the virtual host and the rule that take the request,
//! reading the body (within the body-matching limit) only when the
//! deciding rule has body conditions.

use snapshot::{Body, Lookup, Matched, RequestInfo};

use super::context::{Downstream, ReqBody, RequestCtx, Target};
use super::proxy::Proxy;
use super::request_body::{is_json, read_limited};
use crate::respond::ProxyError;
use crate::state::{Active, RouteState};
use std::sync::Arc;

impl Proxy {
    /// Matches the request against `active`'s routes; records the route
    /// for the log phase.
    pub(super) async fn route<'s>(
        &self,
        cx: &mut RequestCtx<'_>,
        active: &'s Active,
        rq: &mut Downstream,
        target: &Target<'_>,
    ) -> Result<(Matched<'s>, Arc<RouteState>), ProxyError> {
        let parts = &rq.parts;
        let mut info = RequestInfo {
            host: &target.host,
            path: &target.path,
            query: target.query,
            method: &parts.method,
            headers: &parts.headers,
            body: Body::Unread,
        };
        let mut lookup = active.snapshot.route(&info);
        let json;
        if let Lookup::NeedBody = lookup {
            let incoming = match rq.body.take() {
                ReqBody::Streamed(incoming) => incoming,
                ReqBody::Buffered(_) => unreachable!("the body is read at most once"),
            };
            // Boxed: few routes match on bodies.
            let bytes = Box::pin(read_limited(
                incoming,
                &parts.headers,
                self.config.max_body_match_bytes,
                ProxyError::BodyTooLarge,
            ))
            .await?;
            json = is_json(&parts.headers)
                .then(|| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .flatten();
            info.body = match &json {
                Some(v) => Body::Json(v),
                None => Body::NotJson,
            };
            lookup = active.snapshot.route(&info);
            rq.body = ReqBody::Buffered(bytes);
        }
        let matched = match lookup {
            Lookup::Matched(m) => m,
            Lookup::NotFound => return Err(ProxyError::NoRoute),
            Lookup::NeedBody => unreachable!("the body was supplied"),
        };
        let state = active.routes[matched.entry.route.0].clone();
        cx.obs.route = Some((matched.route.id.clone(), state.clone()));
        Ok((matched, state))
    }
}
