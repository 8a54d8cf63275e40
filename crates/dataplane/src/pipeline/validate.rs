//! The validate phase: the route's body limit against the declared
//! length, then its request validation (required headers, media types,
//! the JSON Schema of a JSON body).

use http::header;
use snapshot::Route;

use super::context::{Downstream, ReqBody};
use super::proxy::Proxy;
use super::request_body::{declared_length, is_json, read_limited};
use crate::respond::ProxyError;

/// Refuses a request whose declared body is over `body_limit`, before
/// any of it is read.
#[inline]
pub(super) fn declared_within(
    headers: &http::HeaderMap,
    body_limit: Option<u64>,
) -> Result<(), ProxyError> {
    match body_limit {
        Some(limit) if declared_length(headers).is_some_and(|n| n > limit) => {
            Err(ProxyError::BodyLimit)
        }
        _ => Ok(()),
    }
}

impl Proxy {
    /// The largest request body the route takes (`None`: no limit): the
    /// smaller of its traffic limit (or the gateway's default) and its
    /// validation limit.
    #[inline]
    pub(super) fn body_limit(&self, route: &Route) -> Option<u64> {
        let validation = route.policies.validation.as_deref();
        match (
            route
                .traffic
                .max_body_bytes
                .or(self.config.max_request_body_bytes),
            validation.and_then(|v| v.max_body_bytes),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Refuses a request that fails the route's request validation;
    /// reads a JSON body that a schema checks.
    pub(super) async fn validate(
        &self,
        route: &Route,
        rq: &mut Downstream,
        body_limit: Option<u64>,
    ) -> Result<(), ProxyError> {
        let headers = &rq.parts.headers;
        let Some(v) = route.policies.validation.as_deref() else {
            return Ok(());
        };
        for h in &v.required_headers {
            if !headers.contains_key(h) {
                return Err(ProxyError::Invalid(crate::policy::validation::problem(
                    "A required header is missing",
                    &[(String::new(), format!("header {h} is required"))],
                )));
            }
        }
        let has_body = declared_length(headers).is_none_or(|n| n > 0)
            && (headers.contains_key(header::CONTENT_LENGTH)
                || headers.contains_key(header::TRANSFER_ENCODING)
                || matches!(rq.body, ReqBody::Buffered(ref b) if !b.is_empty()));
        if has_body && !crate::policy::validation::content_type_allowed(v, headers) {
            return Err(ProxyError::UnsupportedMediaType);
        }
        if let Some(schema) = &v.json_schema
            && has_body
            && is_json(headers)
        {
            let limit = body_limit.map_or(1 << 20, |l| usize::try_from(l).unwrap_or(usize::MAX));
            let bytes = match rq.body.take() {
                ReqBody::Streamed(incoming) => {
                    read_limited(incoming, headers, limit, ProxyError::BodyLimit).await?
                }
                ReqBody::Buffered(b) => b,
            };
            rq.body = ReqBody::Buffered(bytes.clone());
            crate::policy::validation::check(schema, &bytes)?;
        }
        Ok(())
    }
}
