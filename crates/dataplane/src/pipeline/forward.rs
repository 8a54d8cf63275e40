//! The forward phase: the body every attempt sends, then attempts under
//! the request's time limit. Each attempt picks a backend by weight and an
//! endpoint by the rule's balancer (`backends.rs`), sends the request and
//! judges the outcome (`attempt.rs`); a failure a retry may fix is tried
//! again on another endpoint, within the rule's policy and budget.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Limited;
use snapshot::Route;

use super::attempt::{Attempt, Exchange, Reply, Verdict};
use super::context::{ReqBody, RequestCtx};
use super::proxy::Proxy;
use super::request_body::{declared_length, read_limited};
use super::rewrite::Head;
use crate::body::{UpstreamBody, Whole};
use crate::grpc::{self, GrpcKind};
use crate::observe::Observation;
use crate::respond::ProxyError;

impl Proxy {
    /// The body the first attempt sends, and a copy for retries: kept in
    /// memory when a retry may need it again and it is small, streamed
    /// otherwise.
    pub(super) async fn outbound_body(
        &self,
        cx: &RequestCtx<'_>,
        route: &Route,
        head: &Head,
        body: ReqBody,
        body_limit: Option<u64>,
    ) -> Result<(UpstreamBody, Option<Bytes>), ProxyError> {
        let retries = route.traffic.retry.as_ref().is_some_and(|r| r.attempts > 0);
        let web_text = matches!(cx.grpc, Some((GrpcKind::WebText, _)));
        let retry_buffer = self.config.retry_buffer_bytes;
        let body = match body {
            ReqBody::Streamed(incoming) if http_body::Body::is_end_stream(&incoming) => {
                ReqBody::Buffered(Bytes::new())
            }
            ReqBody::Streamed(incoming)
                if retries
                    && !web_text
                    && declared_length(&head.headers).is_some_and(|n| n <= retry_buffer as u64) =>
            {
                let limit = body_limit.map_or(retry_buffer, |l| l.min(usize::MAX as u64) as usize);
                ReqBody::Buffered(
                    Box::pin(read_limited(
                        incoming,
                        &head.headers,
                        limit,
                        ProxyError::BodyLimit,
                    ))
                    .await?,
                )
            }
            other => other,
        };
        Ok(match body {
            ReqBody::Buffered(b) => {
                if body_limit.is_some_and(|limit| b.len() as u64 > limit) {
                    return Err(ProxyError::BodyLimit);
                }
                (UpstreamBody::Buffered(Whole::new(b.clone())), Some(b))
            }
            ReqBody::Streamed(incoming) if web_text => {
                (UpstreamBody::Decoded(grpc::DecodeText::new(incoming)), None)
            }
            ReqBody::Streamed(incoming) => match body_limit {
                Some(limit) => (
                    UpstreamBody::Limited(Limited::new(
                        incoming,
                        usize::try_from(limit).unwrap_or(usize::MAX),
                    )),
                    None,
                ),
                None => (UpstreamBody::Streamed(incoming), None),
            },
        })
    }

    /// The request's time limit for the upstream response headers: the
    /// route's (a zero limit means "no limit"; none set at all means the
    /// default), and a gRPC request's own deadline when shorter.
    pub(super) fn time_limit(
        &self,
        cx: &RequestCtx<'_>,
        route: &Route,
        head: &Head,
    ) -> Option<Duration> {
        let timeout = self.timeout_for(route);
        match cx
            .grpc
            .is_some()
            .then(|| grpc::timeout(&head.headers))
            .flatten()
        {
            Some(t) => Some(timeout.map_or(t, |r| r.min(t))),
            None => timeout,
        }
    }

    /// The route's time limit for the upstream response headers. A zero
    /// limit means "no limit"; no limit set at all means the default.
    pub(super) fn timeout_for(&self, route: &Route) -> Option<Duration> {
        match (route.request_timeout, route.backend_timeout) {
            (None, None) => Some(self.config.default_timeout),
            (r, b) => [r, b].into_iter().flatten().filter(|t| !t.is_zero()).min(),
        }
    }

    /// Sends the request, retrying within the route's policy, until an
    /// answer or a final failure, within `timeout`.
    pub(super) async fn forward(
        &self,
        cx: &mut RequestCtx<'_>,
        x: &Exchange<'_>,
        head: &mut Head,
        first: UpstreamBody,
        timeout: Option<Duration>,
    ) -> Result<Reply, ProxyError> {
        if let Some(r) = &x.route.traffic.retry {
            x.route_state.budget.deposit(r.budget_percent);
        }
        // One reading of the clock starts both the request's time limit
        // and its first attempt.
        let forwarded = Instant::now();
        let clock = cx.clock;
        // Pinned where it is, not boxed: the attempts (the upstream
        // exchange, the largest part of a request's state) are built in
        // place and never copied.
        let attempts = std::pin::pin!(self.attempts(&mut cx.obs, x, head, first, forwarded));
        // A limit too far ahead to represent is none.
        match (timeout.and_then(|t| forwarded.checked_add(t)), clock) {
            (Some(deadline), Some(clock)) => clock
                .limit(deadline.into(), attempts)
                .await
                .map_err(|_| ProxyError::UpstreamTimeout)?,
            (Some(deadline), None) => tokio::time::timeout_at(deadline.into(), attempts)
                .await
                .map_err(|_| ProxyError::UpstreamTimeout)?,
            (None, _) => attempts.await,
        }
    }

    /// Attempts until one is final.
    async fn attempts(
        &self,
        obs: &mut Observation,
        x: &Exchange<'_>,
        head: &mut Head,
        first: UpstreamBody,
        forwarded: Instant,
    ) -> Result<Reply, ProxyError> {
        let retry = x.route.traffic.retry.as_ref();
        let mut body = Some(first);
        let mut avoid = None;
        let mut number: u32 = 0;
        loop {
            let attempt_body = match (&x.replay, body.take()) {
                (Some(bytes), _) if number > 0 => UpstreamBody::Buffered(Whole::new(bytes.clone())),
                (_, Some(b)) => b,
                (_, None) => UpstreamBody::Empty(http_body_util::Empty::new()),
            };
            let started = if number == 0 {
                forwarded
            } else {
                Instant::now()
            };
            let attempt = Attempt {
                number,
                avoid,
                started,
            };
            let failure = match self.attempt(obs, x, head, attempt, attempt_body).await? {
                Verdict::Answer(reply) => return Ok(reply),
                Verdict::Fail(e) => return Err(e),
                Verdict::Retry { error, endpoint } => {
                    avoid = Some(endpoint);
                    error
                }
            };
            number += 1;
            x.route_state.metrics.retry(&self.telemetry.metrics);
            if let Some(r) = retry {
                tokio::time::sleep(crate::retry::backoff(r, number)).await;
            }
            tracing::debug!(route = %x.route.id, attempt = number, error = %failure, "retrying");
        }
    }
}
