//! The transport phase: ACME HTTP-01 answers for any host, then the
//! host's TLS rules: plain-HTTP requests redirected, HSTS noted, and a
//! host that verifies client certificates served only on a connection
//! made for it.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Response, StatusCode};
use snapshot::Scheme;

use super::context::{RequestCtx, Target};
use crate::proxy_body::ProxyBody;
use crate::respond::ProxyError;
use crate::state::Active;

/// Paths an ACME server fetches over plain HTTP to validate a domain;
/// never redirected to HTTPS.
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Answers ACME challenges and HTTPS redirects; notes HSTS and the client
/// certificate's subject for the later phases.
#[inline]
pub(super) fn transport(
    cx: &mut RequestCtx<'_>,
    active: &Active,
    target: &Target<'_>,
    original: Option<&PathAndQuery>,
    https_port: u16,
) -> Result<Option<Response<ProxyBody>>, ProxyError> {
    if let Some(token) = target.path.strip_prefix(ACME_CHALLENGE_PREFIX)
        && let Some(answer) = active.snapshot.acme.challenges.get(token)
    {
        let mut resp = Response::new(ProxyBody::full(Bytes::from(answer.to_string())));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return Ok(Some(resp));
    }
    let Some(tls) = active.snapshot.tls.find(&target.host) else {
        return Ok(None);
    };
    match cx.conn.scheme {
        Scheme::Http if tls.redirect && !target.path.starts_with(ACME_CHALLENGE_PREFIX) => {
            return Ok(Some(https_redirect(&target.host, https_port, original)));
        }
        Scheme::Http => {}
        Scheme::Https => {
            if let Some(value) = &tls.hsts {
                cx.hsts = Some(value.clone());
            }
            if let Some(validation) = &tls.client_validation {
                let info = cx.conn.tls.as_ref();
                if info.and_then(|i| i.host.as_ref()) != Some(&tls.host) {
                    return Err(ProxyError::Misdirected);
                }
                if let Some(name) = &validation.forward_header {
                    cx.client_subject =
                        Some((name.clone(), info.and_then(|i| i.client_subject.clone())));
                }
            }
        }
    }
    Ok(None)
}

/// A 308 to the same URL over HTTPS.
fn https_redirect(host: &str, port: u16, original: Option<&PathAndQuery>) -> Response<ProxyBody> {
    let path = original.map_or("/", PathAndQuery::as_str);
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    let mut resp = Response::new(ProxyBody::full(Bytes::new()));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(value) = HeaderValue::try_from(location) {
        resp.headers_mut().insert(header::LOCATION, value);
    }
    resp
}
