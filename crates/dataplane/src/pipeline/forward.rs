//! The forward phase: the body every attempt sends, then attempts under
//! the request's time limit. Each attempt picks a backend by weight and an
//! endpoint by the rule's balancer (`backends.rs`), sends the request and
//! judges the outcome (`attempt.rs`); a failure a retry may fix is tried
//! again on another endpoint, within the rule's policy and budget.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Limited;
use snapshot::Route;

use super::attempt::{Attempt, Exchange, Reply, Sent, Verdict};
use super::context::{ReqBody, RequestCtx};
use super::proxy::Proxy;
use super::request_body::{declared_length, read_limited};
use super::rewrite::Head;
use crate::body::{UpstreamBody, Whole};
use crate::grpc::{self, GrpcKind};
use crate::observe::Observation;
use crate::respond::ProxyError;

impl Proxy {
    /// Whether the body should be read into memory first so a retry can
    /// send it again: the route retries, and the body is declared and
    /// small.
    #[inline]
    pub(super) fn buffers_for_retry(
        &self,
        cx: &RequestCtx<'_>,
        route: &Route,
        head: &Head,
    ) -> bool {
        route.traffic.retry.as_ref().is_some_and(|r| r.attempts > 0)
            && !matches!(cx.grpc, Some((GrpcKind::WebText, _)))
            && declared_length(&head.headers)
                .is_some_and(|n| n <= self.config.retry_buffer_bytes as u64)
    }

    /// Reads a streamed body into memory (see [`Self::buffers_for_retry`]).
    pub(super) async fn buffer_for_retry(
        &self,
        head: &Head,
        body: ReqBody,
        body_limit: Option<u64>,
    ) -> Result<ReqBody, ProxyError> {
        let ReqBody::Streamed(incoming) = body else {
            return Ok(body);
        };
        let retry_buffer = self.config.retry_buffer_bytes;
        let limit = body_limit.map_or(retry_buffer, |l| l.min(usize::MAX as u64) as usize);
        let bytes = read_limited(incoming, &head.headers, limit, ProxyError::BodyLimit).await?;
        Ok(ReqBody::Buffered(bytes))
    }
}

/// The body the first attempt sends, and a copy for retries when it is
/// held in memory (`None`: streamed, so a retry cannot send it again).
#[inline]
pub(super) fn outbound_body(
    cx: &RequestCtx<'_>,
    body: ReqBody,
    body_limit: Option<u64>,
) -> Result<(UpstreamBody, Option<Bytes>), ProxyError> {
    let web_text = matches!(cx.grpc, Some((GrpcKind::WebText, _)));
    let body = match body {
        ReqBody::Streamed(incoming) if http_body::Body::is_end_stream(&incoming) => {
            ReqBody::Buffered(Bytes::new())
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

impl Proxy {
    /// The request's time limit for the upstream response headers: the
    /// route's (a zero limit means "no limit"; none set at all means the
    /// default), and a gRPC request's own deadline when shorter.
    #[inline]
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
    #[inline]
    pub(super) fn timeout_for(&self, route: &Route) -> Option<Duration> {
        match (route.request_timeout, route.backend_timeout) {
            (None, None) => Some(self.config.default_timeout),
            (r, b) => [r, b].into_iter().flatten().filter(|t| !t.is_zero()).min(),
        }
    }

    /// Attempts until one is final. The driver pins this where it is
    /// and holds it to the request's time limit.
    pub(super) async fn attempts(
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
            let (chosen, request) = match self.begin(obs, x, head, &attempt, attempt_body) {
                Ok(begun) => begun,
                Err(e) => return Err(e),
            };
            let result: Sent = {
                // Pinned where it is built: moving the exchange's future
                // into the await would copy its 2 KiB.
                let sent = std::pin::pin!(self.upstreams.send(
                    &chosen.transport,
                    chosen.endpoint.addr,
                    &chosen.endpoint.authority,
                    request,
                    Some(&head.forwarding),
                ));
                match chosen.per_try {
                    Some(t) => tokio::time::timeout(t, sent).await.map_err(|_| ()),
                    None => Ok(sent.await),
                }
            };
            let failure = match self.end(obs, x, chosen, &attempt, result) {
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
