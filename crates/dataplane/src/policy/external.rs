//! External authorization over HTTP: the service sees the request's
//! method, path and chosen headers, and allows (with headers to add) or
//! denies it with its own answer.

use bytes::Bytes;
use http::Method;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::respond::ProxyError;

/// The client of external authorization services.
pub(crate) type AuthClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<Bytes>,
>;

pub(crate) fn auth_client() -> AuthClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(2)));
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build(connector)
}

/// Most bytes of a denying answer passed back to the client.
const AUTH_BODY_LIMIT: usize = 64 * 1024;

/// Asks the external authorization service. `Ok` carries the headers to
/// add upstream.
pub(crate) async fn external(
    ext: &snapshot::ExternalAuth,
    client: &AuthClient,
    method: &Method,
    headers: &HeaderMap,
    host: &str,
    uri: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, ProxyError> {
    use http_body_util::BodyExt;
    let mut req = http::Request::get(ext.url.clone())
        .body(http_body_util::Full::new(Bytes::new()))
        .map_err(|_| ProxyError::AuthUnavailable)?;
    let h = req.headers_mut();
    for name in &ext.request_headers {
        for v in headers.get_all(name) {
            h.append(name.clone(), v.clone());
        }
    }
    h.insert(
        "x-forwarded-method",
        HeaderValue::from_str(method.as_str()).map_err(|_| ProxyError::AuthUnavailable)?,
    );
    if let Ok(v) = HeaderValue::from_str(uri) {
        h.insert("x-forwarded-uri", v);
    }
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert("x-forwarded-host", v);
    }
    let answer = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        if parts.status.is_success() {
            return Ok((parts, Bytes::new()));
        }
        let limited = http_body_util::Limited::new(body, AUTH_BODY_LIMIT);
        let body = limited
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((parts, body))
    };
    let (parts, body) = match tokio::time::timeout(ext.timeout, answer).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            tracing::warn!(url = %ext.url, error = %e, "external authorization failed");
            return Err(ProxyError::AuthUnavailable);
        }
        Err(_) => {
            tracing::warn!(url = %ext.url, timeout = ?ext.timeout, "external authorization timed out");
            return Err(ProxyError::AuthUnavailable);
        }
    };
    if parts.status.is_success() {
        return Ok(ext
            .upstream_headers
            .iter()
            .filter_map(|n| parts.headers.get(n).map(|v| (n.clone(), v.clone())))
            .collect());
    }
    let mut headers = parts.headers;
    crate::headers::strip_hop_by_hop(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    Err(ProxyError::AuthDenied(Box::new((
        parts.status,
        headers,
        body,
    ))))
}
