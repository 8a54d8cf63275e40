//! The request pipeline: one function per phase over one request
//! context, driven in order by [`Proxy::proxy`]. The phases, what each
//! may end a request with, and the limits are listed once, in
//! `docs/request-phases.md`; each phase's file says what it does.
//!
//! Every phase takes the request's context ([`context::RequestCtx`]: who
//! asked, and what every response gets), the request as it moves on
//! ([`context::Downstream`]) and what the client asked for
//! ([`context::Target`]). A phase either passes the request on or ends it
//! with a response; failures become responses in one place,
//! `crate::respond`.

mod accept;
mod admit;
mod answer;
mod attempt;
mod backends;
mod cached;
mod context;
mod finish;
mod forward;
mod mirror;
mod proxy;
mod request_body;
mod respond;
mod rewrite;
mod route;
mod transport;
mod upgrade;
mod validate;

use std::future::Future;
use std::ops::ControlFlow;
use std::time::Instant;

use http::{Request, Response};

use self::accept::Asked;
use self::attempt::Exchange;
use self::context::{Downstream, RequestCtx};
pub use self::proxy::{Proxy, ProxyConfig};
use self::rewrite::{Head, Keys};
use crate::body::FromClient;
use crate::connection::Connection;
use crate::deadline::RequestClock;
use crate::proxy_body::ProxyBody;
use crate::respond::ProxyError;

impl Proxy {
    /// Handles one request, with a timer of its own for its time limit.
    pub(crate) fn handle<'a>(
        &'a self,
        req: Request<FromClient>,
        conn: &'a Connection,
    ) -> impl Future<Output = Response<ProxyBody>> + 'a {
        self.handle_on(req, conn, None)
    }

    /// Handles one request; with `clock`, its time limit is kept by the
    /// connection's timer (see `deadline.rs`).
    pub(crate) async fn handle_on(
        &self,
        req: Request<FromClient>,
        conn: &Connection,
        clock: Option<&RequestClock>,
    ) -> Response<ProxyBody> {
        let (mut cx, asked) = accept::accept(self, &req, conn, clock);
        // Inline, not boxed: the gateway's own HTTP/1.1 server builds this
        // future in place in its connection's state, so nothing is copied
        // or allocated per request for it (hyper's servers box it; see
        // `listener.rs`).
        let outcome = self.proxy(&mut cx, req, &asked).await;
        finish::finish(cx, outcome)
    }

    /// The phases in order (`docs/request-phases.md`).
    async fn proxy(
        &self,
        cx: &mut RequestCtx<'_>,
        mut req: Request<FromClient>,
        asked: &Asked,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        // Load. This Arc keeps the configuration this request
        // started with alive until it is done, whatever is published.
        let active = self.gateway.load();
        let on_upgrade = asked.upgrade.then(|| hyper::upgrade::on(&mut req));
        let (parts, incoming) = req.into_parts();
        let original = parts.uri.path_and_query().cloned();
        let authority = parts.uri.authority().cloned();
        let mut rq = Downstream {
            parts,
            body: accept::body(cx, incoming),
            on_upgrade,
        };
        // Normalize.
        let version = rq.parts.version;
        let target = accept::normalize(cx, version, asked, original.as_ref(), authority.as_ref())?;
        // Transport.
        let https_port = self.config.https_redirect_port;
        if let Some(resp) =
            transport::transport(cx, &active, &target, original.as_ref(), https_port)?
        {
            return Ok(resp);
        }
        // Route (the body is read only when body conditions decide).
        let (matched, route_state) = match route::route(cx, &active, &rq, &target)? {
            Some(routed) => routed,
            // Boxed, as every step most requests skip: the request's own
            // future stays small, and moves of it stay short.
            None => Box::pin(self.route_by_body(cx, &active, &mut rq, &target)).await?,
        };
        let route = matched.route;
        // Admit.
        if let Some(resp) = admit::screen(cx, route, &rq.parts)? {
            return Ok(resp);
        }
        let admitted = if admit::checks_more(route) {
            Box::pin(self.admit(cx, route, &rq.parts, &target, original.as_ref())).await?
        } else {
            self.admit_as_is(cx, route)?
        };
        // Answer.
        let forward = match answer::answer(cx, &matched, &target) {
            ControlFlow::Continue(forward) => forward,
            ControlFlow::Break(resp) => return Ok(resp),
        };
        // Cached.
        let upgrading = rq.on_upgrade.is_some();
        let mut fill = None;
        if route.policies.cache.is_some() {
            match Box::pin(self.cached(cx, route, &rq.parts, &target, upgrading)).await {
                ControlFlow::Continue(f) => fill = f,
                ControlFlow::Break(resp) => return Ok(resp),
            }
        }
        // Validate.
        let body_limit = self.body_limit(route);
        validate::declared_within(&rq.parts.headers, body_limit)?;
        if route.policies.validation.is_some() {
            Box::pin(self.validate(route, &mut rq, body_limit)).await?;
        }
        // Rewrite.
        let keys = Keys::of(&route.traffic, &rq.parts, cx.client_ip);
        let from = rewrite::Sources {
            matched: &matched,
            target: &target,
            asked,
            original: original.as_ref(),
            upgrading,
        };
        let mut head = Head::new(rq.parts.method.clone());
        rewrite::rewrite(cx, &mut rq.parts, &from, admitted, &mut head)?;
        let mut body = rq.body;
        if self.buffers_for_retry(cx, route, &head) {
            body = Box::pin(self.buffer_for_retry(&head, body, body_limit)).await?;
        }
        let (first, replay) = forward::outbound_body(cx, body, body_limit)?;
        let first = self.start_mirrors(&active, route, &head, first, replay.as_ref());
        let timeout = self.time_limit(cx, route, &head);
        // Forward (an upgrade is a single attempt).
        if let Some(on_upgrade) = rq.on_upgrade {
            return Box::pin(self.upgrade(
                &active,
                forward,
                &head,
                first,
                on_upgrade,
                timeout,
                route.traffic.idle_timeout,
            ))
            .await;
        }
        if let Some(r) = &route.traffic.retry {
            route_state.budget.deposit(r.budget_percent);
        }
        let method = head.method.clone();
        let exchange = Exchange {
            active: &active,
            route,
            route_state: &route_state,
            forward,
            keys: &keys,
            replay,
        };
        // One reading of the clock starts both the request's time limit
        // and its first attempt. Pinned where it is, not boxed: the
        // attempts (the upstream exchange, the largest part of a request's
        // state) are built in place and never copied.
        let forwarded = Instant::now();
        let clock = cx.clock;
        let reply = {
            let attempts =
                std::pin::pin!(self.attempts(&mut cx.obs, &exchange, &mut head, first, forwarded));
            // A limit too far ahead to represent is none.
            match (timeout.and_then(|t| forwarded.checked_add(t)), clock) {
                (Some(deadline), Some(clock)) => clock
                    .limit(deadline.into(), attempts)
                    .await
                    .map_err(|_| ProxyError::UpstreamTimeout)??,
                (Some(deadline), None) => tokio::time::timeout_at(deadline.into(), attempts)
                    .await
                    .map_err(|_| ProxyError::UpstreamTimeout)??,
                (None, _) => attempts.await?,
            }
        };
        // Respond (the log phase runs when its body is done).
        Ok(match fill {
            None => respond::respond(cx, route, &keys, &method, reply),
            Some(fill) => Box::pin(self.respond_filling(cx, route, &keys, reply, fill)).await,
        })
    }
}

#[cfg(test)]
mod future_size {
    //! A request's future lives in its connection's state: the gateway's
    //! own HTTP/1.1 server builds it there in place, so it is neither
    //! copied nor allocated per request, but its size is memory every
    //! connection holds (hyper's servers box it once per request). With
    //! the pipeline and the upstream exchange inline it is about 7 KiB in
    //! a debug build (less optimised); the bound keeps it from creeping.
    use super::*;

    /// The size of the future `f` would return (it is never called).
    fn handle_size<'a, Fut>(
        _f: impl FnOnce(&'a Proxy, Request<FromClient>, &'a Connection) -> Fut,
    ) -> usize {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn request_futures_stay_small() {
        let handle = handle_size(|p, req, conn| p.handle(req, conn));
        assert!(handle <= 8192, "Proxy::handle's future is {handle} bytes");
    }

    /// A response moves through every stage on its way to the client:
    /// rare parts of its body (the upstream connection, a client's
    /// in-flight slot) are boxed to keep each move short.
    #[test]
    fn responses_stay_small() {
        let size = std::mem::size_of::<Response<ProxyBody>>();
        assert!(size <= 256, "a response is {size} bytes");
    }
}
