//! The admit phase: whether this client may make this request. Address
//! lists, CORS preflights, credentials (API key, basic, JWT), the
//! external authorization service, rate limits and the client's
//! in-flight cap, in that order (see `docs/policies.md`).

use std::borrow::Cow;
use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Response, request::Parts};
use snapshot::{RateLimitKey, Route};
use telemetry::SpanKind;

use super::context::{RequestCtx, Target};
use super::proxy::Proxy;
use crate::policy::{self, Passed};
use crate::proxy_body::ProxyBody;
use crate::respond::ProxyError;

/// What admission found out about the request, for the rewrite phase.
pub(super) struct Admitted {
    /// The credentials that passed: identity headers and claims.
    pub(super) passed: Passed,
    /// Headers the external authorization service adds.
    pub(super) authorized_headers: Vec<(HeaderName, HeaderValue)>,
}

/// The first checks, before any credential: the client address lists,
/// then CORS (a preflight is answered here; an `Origin` is noted for the
/// response).
#[inline]
pub(super) fn screen(
    cx: &mut RequestCtx<'_>,
    route: &Route,
    parts: &Parts,
) -> Result<Option<Response<ProxyBody>>, ProxyError> {
    policy::check_access(&route.policies, cx.client_ip)?;
    if let Some(cors) = &route.policies.cors {
        if let Some(resp) = policy::preflight(cors, &parts.method, &parts.headers) {
            return Ok(Some(resp));
        }
        if let Some(origin) = parts.headers.get(header::ORIGIN) {
            cx.cors = Some((cors.clone(), origin.clone()));
        }
    }
    Ok(None)
}

/// Whether the route checks credentials, asks an authorization service
/// or counts rate limits: what [`Proxy::admit`] does. Without any, a
/// request is admitted by [`Proxy::admit_as_is`] without waiting.
#[inline]
pub(super) fn checks_more(route: &Route) -> bool {
    let p = &route.policies;
    p.api_keys.is_some()
        || p.basic.is_some()
        || p.jwt.is_some()
        || p.external.is_some()
        || !route.rate_limits.is_empty()
}

impl Proxy {
    /// Admits a request to a route that checks nothing more than
    /// [`screen`] did (see [`checks_more`]): only the client's in-flight
    /// cap applies.
    #[inline]
    pub(super) fn admit_as_is(
        &self,
        cx: &mut RequestCtx<'_>,
        route: &Route,
    ) -> Result<Admitted, ProxyError> {
        self.hold_slot(cx, route)?;
        Ok(Admitted {
            passed: Passed::default(),
            authorized_headers: Vec::new(),
        })
    }

    /// The client's in-flight slot on a route that caps them.
    #[inline]
    fn hold_slot(&self, cx: &mut RequestCtx<'_>, route: &Route) -> Result<(), ProxyError> {
        if let Some(max) = route.traffic.max_in_flight_per_client {
            cx.slot = Some(
                self.in_flight_per_client
                    .acquire(&route.id, cx.client_ip, max)
                    .ok_or(ProxyError::TooManyInFlight)?,
            );
        }
        Ok(())
    }

    /// Runs the route's credential checks and limits, in order, after
    /// [`screen`].
    pub(super) async fn admit(
        &self,
        cx: &mut RequestCtx<'_>,
        route: &Route,
        parts: &Parts,
        target: &Target<'_>,
        original: Option<&PathAndQuery>,
    ) -> Result<Admitted, ProxyError> {
        let passed = self.authenticate(cx, route, parts, target).await?;
        let authorized_headers = match &route.policies.external {
            None => Vec::new(),
            Some(_) => self.authorize(cx, route, parts, target, original).await?,
        };
        self.limit(cx, route, &parts.headers, &passed).await?;
        self.hold_slot(cx, route)?;
        Ok(Admitted {
            passed,
            authorized_headers,
        })
    }

    /// Checks the route's credentials (API key, basic, JWT).
    async fn authenticate(
        &self,
        cx: &mut RequestCtx<'_>,
        route: &Route,
        parts: &Parts,
        target: &Target<'_>,
    ) -> Result<Passed, ProxyError> {
        let policies = &route.policies;
        if policies.api_keys.is_none() && policies.basic.is_none() && policies.jwt.is_none() {
            return Ok(Passed::default());
        }
        let span_start = cx.obs.recording.then(SystemTime::now);
        let passed = policy::authenticate(
            policies,
            &parts.headers,
            target.query,
            &target.host,
            &self.basic_cache,
            &self.jwks,
        )
        .await;
        check_span(cx, "authenticate", span_start, &passed);
        passed
    }

    /// Asks the route's external authorization service; the headers it
    /// adds to the request.
    async fn authorize(
        &self,
        cx: &mut RequestCtx<'_>,
        route: &Route,
        parts: &Parts,
        target: &Target<'_>,
        original: Option<&PathAndQuery>,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, ProxyError> {
        let Some(ext) = &route.policies.external else {
            return Ok(Vec::new());
        };
        let uri = original.map_or("/", PathAndQuery::as_str);
        let start = cx.obs.recording.then(SystemTime::now);
        let answer = policy::external(
            ext,
            &self.auth_client,
            &parts.method,
            &parts.headers,
            &target.host,
            uri,
        )
        .await;
        check_span(cx, "external authorization", start, &answer);
        answer
    }

    /// Counts the request under the route's rate limits, in the
    /// snapshot's order. An allowed request is counted by every limit; the
    /// first that rejects decides, and the request is counted by none.
    async fn limit(
        &self,
        cx: &mut RequestCtx<'_>,
        route: &Route,
        headers: &HeaderMap,
        passed: &Passed,
    ) -> Result<(), ProxyError> {
        if route.rate_limits.is_empty() {
            return Ok(());
        }
        let client = cx.client_ip.to_string();
        let span_start = cx.obs.recording.then(SystemTime::now);
        let mut limited = None;
        for (i, limit) in route.rate_limits.iter().enumerate() {
            let key = rate_limit_key(&limit.key, &client, headers, &route.id, passed);
            // Local limits answer at once; only a global one (a Redis
            // round trip) is awaited.
            let decision = match self.rate_limiter.check_local(limit, &key) {
                Some(decision) => decision,
                None => self
                    .rate_limiter
                    .check(limit, &key)
                    .await
                    .map_err(|()| ProxyError::RateLimitUnavailable)?,
            };
            // Report the tightest budget (or the one that rejects).
            if (!decision.allowed || limit.headers_on_success)
                && cx
                    .rate_limit
                    .is_none_or(|(_, d)| !decision.allowed || decision.remaining < d.remaining)
            {
                cx.rate_limit = Some((limit.capacity(), decision));
            }
            if !decision.allowed {
                tracing::debug!(limit = %limit.id, client = %cx.client_ip, "rate limited");
                limited = Some(limit.id.clone());
                // A rejected request spends no budget: give back what the
                // limits before this one took.
                for earlier in &route.rate_limits[..i] {
                    let key = rate_limit_key(&earlier.key, &client, headers, &route.id, passed);
                    self.rate_limiter.refund(earlier, &key).await;
                }
                break;
            }
        }
        if let Some(start) = span_start {
            let attributes = vec![
                (
                    "gatehouse.rate_limits",
                    (route.rate_limits.len() as i64).into(),
                ),
                ("gatehouse.rate_limited", limited.is_some().into()),
            ];
            let error = limited.as_ref().map(|id| format!("rejected by {id}"));
            cx.obs.child_span(
                "rate limit",
                SpanKind::Internal,
                start,
                None,
                attributes,
                error,
            );
        }
        match limited {
            Some(_) => Err(ProxyError::RateLimited),
            None => Ok(()),
        }
    }
}

/// Records a check's span, failed when the check refused (only when
/// the request records spans: `start` is set).
fn check_span<T>(
    cx: &mut RequestCtx<'_>,
    name: &'static str,
    start: Option<SystemTime>,
    outcome: &Result<T, ProxyError>,
) {
    if let Some(start) = start {
        let error = outcome.as_ref().err().map(ToString::to_string);
        cx.obs
            .child_span(name, SpanKind::Internal, start, None, Vec::new(), error);
    }
}

/// The budget a request counts in under a limit keyed by `key`: the
/// client address, a header's value, the route, the authenticating API
/// key's name or a verified JWT claim (empty when the request has none).
fn rate_limit_key<'a>(
    key: &RateLimitKey,
    client: &'a str,
    headers: &'a HeaderMap,
    route: &'a str,
    passed: &'a Passed,
) -> Cow<'a, [u8]> {
    match key {
        RateLimitKey::ClientIp => Cow::Borrowed(client.as_bytes()),
        RateLimitKey::Header(name) => {
            Cow::Borrowed(headers.get(name).map_or(&[][..], HeaderValue::as_bytes))
        }
        RateLimitKey::Route => Cow::Borrowed(route.as_bytes()),
        RateLimitKey::ApiKey => {
            Cow::Borrowed(passed.key_name.as_deref().map_or(&[][..], str::as_bytes))
        }
        RateLimitKey::JwtClaim(name) => Cow::Owned(
            passed
                .claims
                .as_ref()
                .and_then(|c| c.get(&**name))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .unwrap_or_default()
                .into_bytes(),
        ),
    }
}
