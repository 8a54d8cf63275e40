//! CORS: preflights answered at the edge, and the response headers of
//! allowed cross-origin requests.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use snapshot::CorsPolicy;

use crate::proxy_body::ProxyBody;

/// The answer to a CORS preflight, when the request is one.
pub(crate) fn preflight(
    cors: &CorsPolicy,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Response<ProxyBody>> {
    if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    let mut resp = Response::new(ProxyBody::full(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if !origin.to_str().is_ok_and(|o| cors.allows(o)) {
        // No CORS headers: the browser refuses the call.
        return Some(resp);
    }
    allow_origin(cors, origin, h);
    if let Ok(v) = HeaderValue::from_str(&cors.allow_methods) {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    let allow_headers = if cors.allow_headers.is_empty() {
        headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned()
    } else {
        HeaderValue::from_str(&cors.allow_headers).ok()
    };
    if let Some(v) = allow_headers {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    if let Some(age) = cors.max_age {
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
    }
    Some(resp)
}

fn allow_origin(cors: &CorsPolicy, origin: &HeaderValue, h: &mut HeaderMap) {
    if cors.any_origin && !cors.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    if cors.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// CORS headers for an actual (non-preflight) response.
pub(crate) fn response_headers(cors: &CorsPolicy, origin: &HeaderValue, h: &mut HeaderMap) {
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if !origin.to_str().is_ok_and(|o| cors.allows(o)) {
        return;
    }
    allow_origin(cors, origin, h);
    if !cors.expose_headers.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cors.expose_headers)
    {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}
