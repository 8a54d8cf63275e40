//! One attempt of the forward phase: an endpoint, the exchange with it,
//! and the verdict on its outcome (answer, fail, or retry). Outcomes feed
//! the endpoint's health and latency, the backend's metrics and the
//! attempt's span.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response};
use snapshot::{Forward, Route};
use telemetry::SpanKind;

use super::backends::{cluster_of, pick_backend};
use super::proxy::Proxy;
use super::rewrite::{Head, Keys};
use crate::body::UpstreamBody;
use crate::lb::{ClusterState, EndpointState, InFlight, Outcome};
use crate::observe::Observation;
use crate::respond::ProxyError;
use crate::state::{Active, RouteState};
use crate::upstream::{FromUpstream, Transport, UpstreamError};

/// What every attempt of a request shares.
pub(super) struct Exchange<'a> {
    pub(super) active: &'a Active,
    pub(super) route: &'a Route,
    pub(super) route_state: &'a RouteState,
    pub(super) forward: &'a Forward,
    pub(super) keys: &'a Keys,
    /// The body again for a retry (`None`: it was streamed, and a retry
    /// cannot send it again).
    pub(super) replay: Option<Bytes>,
}

/// A response from an endpoint, with what the respond phase needs.
pub(super) struct Reply {
    pub(super) response: Response<FromUpstream>,
    pub(super) endpoint: Arc<EndpointState>,
    pub(super) in_flight: InFlight,
    /// Time to the response head.
    pub(super) took: Duration,
}

/// Which attempt this is.
pub(super) struct Attempt {
    /// 0 for the first.
    pub(super) number: u32,
    /// The endpoint that failed the attempt before.
    pub(super) avoid: Option<SocketAddr>,
    /// When it started.
    pub(super) started: Instant,
}

/// What an attempt's outcome means for the request.
pub(super) enum Verdict {
    /// The response goes to the client (a gateway error that will not be
    /// retried goes as the upstream sent it).
    Answer(Reply),
    /// The request fails with this error.
    Fail(ProxyError),
    /// Another attempt may fix it, away from this endpoint.
    Retry {
        error: ProxyError,
        endpoint: SocketAddr,
    },
}

/// An exchange's raw outcome: `Err(())` when the per-try limit ran out.
pub(super) type Sent = Result<Result<Response<FromUpstream>, UpstreamError>, ()>;

/// The endpoint an attempt goes to, and how.
pub(super) struct Chosen<'s> {
    state: &'s ClusterState,
    backend: &'s str,
    pub(super) endpoint: Arc<EndpointState>,
    in_flight: InFlight,
    pub(super) transport: Transport,
    /// The attempt's own time limit, when the route retries.
    pub(super) per_try: Option<Duration>,
    /// The attempt's span id and start, when spans are recorded.
    span: Option<([u8; 8], SystemTime)>,
}

impl Proxy {
    /// Chooses the attempt's endpoint and makes its request. Errors before
    /// anything is sent (no backend, no endpoint) are final.
    #[inline]
    pub(super) fn begin<'s>(
        &self,
        obs: &Observation,
        x: &Exchange<'s>,
        head: &mut Head,
        attempt: &Attempt,
        body: UpstreamBody,
    ) -> Result<(Chosen<'s>, Request<UpstreamBody>), ProxyError> {
        let traffic = &x.route.traffic;
        let retry = traffic.retry.as_ref();
        let target = pick_backend(x.forward, x.active, x.keys.pinned)?;
        let (index, cluster) = cluster_of(x.active, target)?;
        let state = &x.active.clusters[index];
        let endpoint = state
            .pick(
                &traffic.load_balance,
                x.keys.hash,
                x.keys.pinned,
                attempt.avoid,
            )
            .ok_or_else(|| ProxyError::NoEndpoints {
                cluster: cluster.name.to_string(),
            })?
            .clone();
        let last = retry.is_none_or(|r| attempt.number >= u32::from(r.attempts));
        let request = if last {
            head.take_request(body)
        } else {
            head.request(body)
        };
        let span = obs
            .recording
            .then(|| (telemetry::trace::new_span_id(), SystemTime::now()));
        if let Some((id, _)) = &span {
            head.forwarding.traceparent = Some(obs.trace.traceparent(id));
        }
        let per_try = retry
            .and_then(|r| r.per_try_timeout)
            .or(x.route.backend_timeout)
            .filter(|t| !t.is_zero() && retry.is_some());
        let chosen = Chosen {
            state,
            backend: &cluster.name,
            in_flight: InFlight::new(endpoint.clone()),
            endpoint,
            transport: Transport::of(cluster),
            per_try,
            span,
        };
        Ok((chosen, request))
    }

    /// Records the attempt's outcome (span, metrics, the endpoint's
    /// latency and health) and judges it.
    #[inline]
    pub(super) fn end(
        &self,
        obs: &mut Observation,
        x: &Exchange<'_>,
        chosen: Chosen<'_>,
        attempt: &Attempt,
        result: Sent,
    ) -> Verdict {
        let took = attempt.started.elapsed();
        let Chosen {
            state,
            backend,
            endpoint,
            in_flight,
            span,
            ..
        } = chosen;
        if let Some((id, start)) = span {
            attempt_span(obs, &endpoint, backend, attempt, &result, id, start);
        }
        if let Some(m) = &state.metrics {
            match &result {
                Ok(Ok(_)) => m.observe(took),
                Ok(Err(UpstreamError::Connect(_))) => m.connect_error(),
                _ => {}
            }
        }
        let reply = |response| Reply {
            response,
            endpoint: endpoint.clone(),
            in_flight,
            took,
        };
        self.judge(x, state, &endpoint, attempt, result, took, reply)
    }

    /// The verdict on an attempt's outcome; records it on the endpoint.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn judge(
        &self,
        x: &Exchange<'_>,
        state: &ClusterState,
        endpoint: &Arc<EndpointState>,
        attempt: &Attempt,
        result: Sent,
        took: Duration,
        reply: impl FnOnce(Response<FromUpstream>) -> Reply,
    ) -> Verdict {
        let retry = x.route.traffic.retry.as_ref();
        let idempotent = x.keys.idempotent;
        // Whether a retry may fix it: attempts left, a body that can be
        // sent again, and room in the route's retry budget.
        let retry_allowed = |retryable: bool| {
            retryable
                && retry.is_some_and(|policy| attempt.number < u32::from(policy.attempts))
                && x.replay.is_some()
                && x.route_state.budget.withdraw()
        };
        let (retryable, error) = match result {
            Ok(Ok(response)) => {
                endpoint.observe_latency(took, crate::lb::millis(attempt.started + took));
                let gateway_error = matches!(response.status().as_u16(), 502..=504);
                state.record(
                    endpoint,
                    if gateway_error {
                        Outcome::GatewayError
                    } else {
                        Outcome::Success
                    },
                );
                let retryable =
                    gateway_error && idempotent && retry.is_some_and(|r| r.on_gateway_error);
                if !retry_allowed(retryable) {
                    return Verdict::Answer(reply(response));
                }
                let error =
                    ProxyError::Upstream(format!("upstream answered {}", response.status()).into());
                return Verdict::Retry {
                    error,
                    endpoint: endpoint.addr,
                };
            }
            Ok(Err(UpstreamError::Connect(e))) => (
                retry.is_some_and(|r| r.on_connect_failure),
                ProxyError::UpstreamConnect(e),
            ),
            Ok(Err(UpstreamError::Reset(e))) => {
                if is_body_limit(&*e) {
                    return Verdict::Fail(ProxyError::BodyLimit);
                }
                (
                    idempotent && retry.is_some_and(|r| r.on_reset),
                    ProxyError::Upstream(e),
                )
            }
            Err(()) => (
                idempotent && retry.is_some_and(|r| r.on_gateway_error),
                ProxyError::UpstreamTimeout,
            ),
        };
        state.record(endpoint, Outcome::GatewayError);
        if retry_allowed(retryable) {
            Verdict::Retry {
                error,
                endpoint: endpoint.addr,
            }
        } else {
            Verdict::Fail(error)
        }
    }
}

/// Records the attempt's client span.
fn attempt_span(
    obs: &mut Observation,
    endpoint: &EndpointState,
    backend: &str,
    attempt: &Attempt,
    result: &Sent,
    id: [u8; 8],
    start: SystemTime,
) {
    let mut attributes = vec![
        ("server.address", endpoint.addr.ip().to_string().into()),
        ("server.port", i64::from(endpoint.addr.port()).into()),
        ("gatehouse.backend", backend.to_owned().into()),
    ];
    if attempt.number > 0 {
        attributes.push((
            "http.request.resend_count",
            i64::from(attempt.number).into(),
        ));
    }
    let error = match result {
        Ok(Ok(r)) => {
            attributes.push((
                "http.response.status_code",
                i64::from(r.status().as_u16()).into(),
            ));
            (r.status().as_u16() >= 500).then(|| format!("upstream answered {}", r.status()))
        }
        Ok(Err(e)) => Some(e.to_string()),
        Err(()) => Some("attempt timed out".to_owned()),
    };
    obs.child_span(
        "upstream attempt",
        SpanKind::Client,
        start,
        Some(id),
        attributes,
        error,
    );
}

/// Whether an upstream failure was our own body limit tripping.
fn is_body_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}
