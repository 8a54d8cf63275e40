//! The answer phase: rules that answer themselves (`DirectResponse`,
//! `RequestRedirect`) do so here; the rest go on to be forwarded.

use std::ops::ControlFlow;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use snapshot::{Action, DirectResponse, Forward, Matched, Redirect, RedirectFrom};

use super::context::{RequestCtx, Target};
use crate::proxy_body::ProxyBody;

/// The matched rule's action: a response made here, or the backends to
/// forward to.
#[inline]
pub(super) fn answer<'s>(
    cx: &RequestCtx<'_>,
    matched: &Matched<'s>,
    target: &Target<'_>,
) -> ControlFlow<Response<ProxyBody>, &'s Forward> {
    match &matched.route.action {
        Action::Forward(f) => ControlFlow::Continue(f),
        Action::Respond(d) => ControlFlow::Break(direct(d)),
        Action::Redirect(r) => ControlFlow::Break(redirect(cx, r, matched, target)),
    }
}

fn direct(d: &DirectResponse) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(d.body.clone()));
    *resp.status_mut() =
        StatusCode::from_u16(d.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, d.content_type.clone());
    resp
}

fn redirect(
    cx: &RequestCtx<'_>,
    r: &Redirect,
    matched: &Matched<'_>,
    target: &Target<'_>,
) -> Response<ProxyBody> {
    let scheme = cx.conn.scheme;
    let from = RedirectFrom {
        scheme,
        host: &target.host,
        // A Host without a port names the scheme's default (RFC 9110
        // §7.2); the listener's own port is not what the client dialled
        // behind a Service.
        port: target.port.unwrap_or(scheme.default_port()),
        path: &target.path,
        query: target.query,
    };
    let location = r.location(&from, &matched.entry.path);
    let mut resp = Response::new(ProxyBody::full(Bytes::new()));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::try_from(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
