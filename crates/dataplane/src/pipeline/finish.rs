//! The finish and log phase: what every response gets, whichever phase
//! made it (request ID, HSTS, CORS and rate-limit headers), and the log
//! record handed to the response body, which finishes it when the body is
//! done or the client goes away.

use std::time::Duration;

use http::Response;
use http::header::{self, HeaderName, HeaderValue};

use super::context::RequestCtx;
use crate::clientinfo;
use crate::proxy_body::ProxyBody;
use crate::respond::ProxyError;

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The response for the pipeline's outcome: a failure becomes its
/// response (in `respond.rs` of the crate, the one place that decides
/// them), then every response gets what the context collected.
#[inline]
pub(super) fn finish(
    mut cx: RequestCtx<'_>,
    outcome: Result<Response<ProxyBody>, ProxyError>,
) -> Response<ProxyBody> {
    let mut resp = match outcome {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(client = %cx.conn.peer.ip(), request_id = ?cx.request_id, error = %e, "request failed");
            if cx.obs.recording {
                cx.obs.error = Some(e.to_string());
            }
            e.into_response(cx.grpc())
        }
    };
    let RequestCtx {
        request_id,
        mut obs,
        hsts,
        rate_limit,
        cors,
        slot,
        ..
    } = cx;
    if obs.detailed() {
        obs.request_id = Some(request_id.clone());
    }
    let headers = resp.headers_mut();
    headers.insert(clientinfo::request_id_header().clone(), request_id);
    if let Some(value) = hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, value);
    }
    if let Some((cors, origin)) = &cors {
        crate::policy::response_headers(cors, origin, headers);
    }
    if let Some((capacity, decision)) = rate_limit {
        let secs = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        headers.insert(RATELIMIT_LIMIT.clone(), HeaderValue::from(capacity));
        headers.insert(
            RATELIMIT_REMAINING.clone(),
            HeaderValue::from(decision.remaining),
        );
        headers.insert(
            RATELIMIT_RESET.clone(),
            HeaderValue::from(secs(decision.reset)),
        );
        if !decision.allowed {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(secs(decision.retry_after).max(1)),
            );
        }
    }
    // The log phase runs when the body is done.
    let status = resp.status().as_u16();
    resp.body_mut().observe(obs, status);
    if let Some(slot) = slot {
        resp.body_mut().hold(slot);
    }
    resp
}
