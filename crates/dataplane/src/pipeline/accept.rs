//! The accept and normalize phases: read what the pipeline needs of
//! the client's own headers in one pass, start the request's record, and
//! work out the client address, host and path.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Version};
use snapshot::normalize_path;
use telemetry::trace::TRACEPARENT;

use super::context::{ReqBody, RequestCtx, Target};
use super::proxy::Proxy;
use crate::body::{ClientBody, FromClient};
use crate::clientinfo;
use crate::connection::{Connection, split_host};
use crate::deadline::RequestClock;
use crate::grpc;
use crate::observe::Observation;
use crate::respond::ProxyError;

/// Starts the request's context from its head; what the client's own
/// headers said. (The request is borrowed: moving it through here would
/// copy it.)
#[inline]
pub(super) fn accept<'a>(
    proxy: &Proxy,
    req: &Request<FromClient>,
    conn: &'a Connection,
    clock: Option<&'a RequestClock>,
) -> (RequestCtx<'a>, Asked) {
    let sent = Sent::of(req.headers());
    let grpc = grpc::kind(sent.content_type).map(|(k, s)| (k, s.to_owned()));
    let request_id = clientinfo::request_id(sent.request_id);
    let obs = Box::new(Observation::start(
        &proxy.telemetry,
        req.method(),
        req.version(),
        sent.traceparent,
    ));
    let asked = sent.asked();
    let trusted = &proxy.config.trusted_proxies;
    let peer_trusted = trusted.iter().any(|c| c.contains(conn.peer.ip()));
    let client_ip = clientinfo::client_ip(conn.peer.ip(), req.headers(), trusted);
    let mut cx = RequestCtx {
        conn,
        clock,
        request_id,
        grpc,
        client_ip,
        peer_trusted,
        obs,
        hsts: None,
        rate_limit: None,
        cors: None,
        slot: None,
        client_subject: None,
    };
    cx.obs.client = Some(client_ip);
    (cx, asked)
}

/// The client's body, counted for the log.
#[inline]
pub(super) fn body(cx: &mut RequestCtx<'_>, incoming: FromClient) -> ReqBody {
    let (incoming, bytes_in) = ClientBody::new(incoming);
    cx.obs.bytes_in = bytes_in;
    ReqBody::Streamed(incoming)
}

/// The normalized host, port, path and query.
#[inline]
pub(super) fn normalize<'r>(
    cx: &mut RequestCtx<'_>,
    version: Version,
    asked: &'r Asked,
    original: Option<&'r PathAndQuery>,
    authority: Option<&'r Authority>,
) -> Result<Target<'r>, ProxyError> {
    let raw_path = original.map_or("/", PathAndQuery::path);
    if cx.obs.detailed() {
        raw_path.clone_into(&mut cx.obs.path);
    }
    let (host, port) = request_host(version, authority, asked).ok_or(ProxyError::BadHost)?;
    if cx.obs.detailed() {
        host.as_ref().clone_into(&mut cx.obs.host);
    }
    let path = normalize_path(raw_path).map_err(ProxyError::BadPath)?;
    Ok(Target {
        host,
        port,
        path,
        query: original.and_then(PathAndQuery::query),
    })
}

/// The headers the pipeline reads from a request as the client sent it,
/// found in one pass over them: a lookup for each would cost a hash each,
/// more than walking the few headers a request has. The first value of
/// each counts, as a lookup would give.
#[derive(Default)]
struct Sent<'a> {
    content_type: Option<&'a HeaderValue>,
    request_id: Option<&'a HeaderValue>,
    traceparent: Option<&'a HeaderValue>,
    /// An `Upgrade` header.
    upgrade_header: bool,
    /// A `Connection` header naming `upgrade`.
    connection_upgrade: bool,
    host: Option<&'a HeaderValue>,
    /// More than one `Host` header.
    several_hosts: bool,
    te: Option<&'a HeaderValue>,
}

/// What the client's own headers said that the pipeline needs later, when
/// the request may have been changed: read in [`Sent`]'s pass rather than
/// looked up.
pub(super) struct Asked {
    /// The first `Host` header.
    pub(super) host: Option<HeaderValue>,
    /// More than one `Host` header (refused).
    several_hosts: bool,
    /// The first `TE` header is `trailers` (passed on).
    pub(super) te_trailers: bool,
    /// The request asks to switch protocols.
    pub(super) upgrade: bool,
}

impl<'a> Sent<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        let mut sent = Self::default();
        for (name, value) in headers {
            if *name == header::CONTENT_TYPE {
                sent.content_type.get_or_insert(value);
            } else if *name == header::UPGRADE {
                sent.upgrade_header = true;
            } else if *name == header::CONNECTION {
                sent.connection_upgrade |= value
                    .as_bytes()
                    .split(|b| *b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
            } else if name == clientinfo::request_id_header() {
                sent.request_id.get_or_insert(value);
            } else if *name == TRACEPARENT {
                sent.traceparent.get_or_insert(value);
            } else if *name == header::HOST {
                sent.several_hosts |= sent.host.is_some();
                sent.host.get_or_insert(value);
            } else if *name == header::TE {
                sent.te.get_or_insert(value);
            }
        }
        sent
    }

    /// Whether the request asks to switch protocols (WebSocket and the
    /// like).
    fn upgrade(&self) -> bool {
        self.upgrade_header && self.connection_upgrade
    }

    /// What the pipeline reads of these headers after the request has
    /// left their map.
    fn asked(&self) -> Asked {
        Asked {
            host: self.host.cloned(),
            several_hosts: self.several_hosts,
            te_trailers: self
                .te
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers")),
            upgrade: self.upgrade(),
        }
    }
}

/// The request's host, lowercase and without trailing dot, and its port
/// if one was given: the authority of an absolute URI (as HTTP/2 sends
/// it), else the Host header. `None` when the Host header is not valid
/// text, its port is not a number, there is more than one Host header
/// (RFC 9112 §3.2), or an HTTP/2 or HTTP/3 request's Host names another
/// authority than its `:authority` (RFC 9113 §8.3.1). An HTTP/1.1
/// absolute-form target's authority wins over its Host header, which is
/// replaced on the way upstream (RFC 9112 §3.2.2). The Host headers are
/// those the client sent, from `asked`.
fn request_host<'a>(
    version: Version,
    authority: Option<&'a Authority>,
    asked: &'a Asked,
) -> Option<(Cow<'a, str>, Option<u16>)> {
    if asked.several_hosts {
        return None;
    }
    let host_header = asked.host.as_ref();
    let raw = match authority {
        Some(a) => {
            let a = without_userinfo(a);
            if version >= Version::HTTP_2
                && host_header.is_some_and(|h| !h.as_bytes().eq_ignore_ascii_case(a.as_bytes()))
            {
                return None;
            }
            a
        }
        None => match host_header {
            Some(v) => v.to_str().ok()?,
            None => "",
        },
    };
    split_host(raw)
}

/// An authority's host and port (no `user@`).
pub(super) fn without_userinfo(a: &Authority) -> &str {
    a.as_str().rsplit_once('@').map_or(a.as_str(), |(_, h)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(uri: &str, host: Option<&str>) -> Option<(String, Option<u16>)> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        let (parts, ()) = b.body(()).unwrap().into_parts();
        let asked = Sent::of(&parts.headers).asked();
        request_host(parts.version, parts.uri.authority(), &asked).map(|(h, p)| (h.into_owned(), p))
    }

    #[test]
    fn host_is_normalized() {
        assert_eq!(
            host_of("/", Some("Example.COM:8080")),
            Some(("example.com".into(), Some(8080)))
        );
        assert_eq!(
            host_of("/", Some("example.com.")),
            Some(("example.com".into(), None))
        );
        assert_eq!(
            host_of("/", Some("[::1]:80")),
            Some(("[::1]".into(), Some(80)))
        );
        assert_eq!(host_of("/", None), Some((String::new(), None)));
        assert_eq!(host_of("/", Some("example.com:http")), None);
        // The absolute form wins over the Host header.
        assert_eq!(
            host_of("http://a.example/x", Some("b.example")),
            Some(("a.example".into(), None))
        );
        assert_eq!(
            host_of("http://user:secret@a.example:81/x", None),
            Some(("a.example".into(), Some(81)))
        );
    }

    #[test]
    fn ambiguous_hosts_are_refused() {
        let parts = |version: Version, uri: &str, hosts: &[&str]| {
            let mut b = Request::builder().version(version).uri(uri);
            for h in hosts {
                b = b.header("host", *h);
            }
            b.body(()).unwrap().into_parts().0
        };
        let host = |p: &http::request::Parts| {
            request_host(p.version, p.uri.authority(), &Sent::of(&p.headers).asked())
                .map(|(h, _)| h.into_owned())
        };
        // Two Host headers, whether they agree or not (RFC 9112 §3.2).
        for hosts in [["a.example", "b.example"], ["a.example", "a.example"]] {
            assert_eq!(host(&parts(Version::HTTP_11, "/", &hosts)), None);
            assert_eq!(
                host(&parts(Version::HTTP_2, "http://a.example/", &hosts)),
                None
            );
        }
        // HTTP/2: a Host beside `:authority` must name the same (RFC 9113
        // §8.3.1); HTTP/1.1's absolute form replaces its Host.
        let h2 = |h: &str| host(&parts(Version::HTTP_2, "https://a.example/", &[h]));
        assert_eq!(h2("b.example"), None);
        assert_eq!(h2("A.Example"), Some("a.example".to_owned()));
        assert_eq!(
            host(&parts(
                Version::HTTP_11,
                "http://a.example/",
                &["b.example"]
            )),
            Some("a.example".to_owned())
        );
    }

    #[test]
    fn upgrades_need_both_headers() {
        let mut h = HeaderMap::new();
        assert!(!Sent::of(&h).upgrade());
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!Sent::of(&h).upgrade(), "without Connection: upgrade");
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(header::CONNECTION, HeaderValue::from_static("x, Upgrade"));
        assert!(Sent::of(&h).upgrade(), "named in a later value");
    }

    #[test]
    fn the_first_value_of_each_header_read_counts() {
        let mut h = HeaderMap::new();
        h.append(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.append(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.append("x-request-id", HeaderValue::from_static("one"));
        h.append("x-request-id", HeaderValue::from_static("two"));
        h.append(&TRACEPARENT, HeaderValue::from_static("first"));
        h.append(&TRACEPARENT, HeaderValue::from_static("second"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        h.append(header::TE, HeaderValue::from_static("Trailers"));
        h.append(header::TE, HeaderValue::from_static("gzip"));
        h.insert(header::HOST, HeaderValue::from_static("a.example"));
        let sent = Sent::of(&h);
        assert_eq!(sent.content_type, h.get(header::CONTENT_TYPE));
        assert_eq!(sent.request_id.unwrap(), "one");
        assert_eq!(sent.traceparent.unwrap(), "first");
        let asked = sent.asked();
        assert_eq!(asked.host.unwrap(), "a.example");
        assert!(!asked.several_hosts && asked.te_trailers && !asked.upgrade);
        // A second Host is noted whatever it says; a TE other than
        // `trailers` first is not kept.
        h.append(header::HOST, HeaderValue::from_static("a.example"));
        let mut te = h.clone();
        te.remove(header::TE);
        te.append(header::TE, HeaderValue::from_static("gzip"));
        te.append(header::TE, HeaderValue::from_static("trailers"));
        let asked = Sent::of(&te).asked();
        assert_eq!(asked.host.unwrap(), "a.example");
        assert!(asked.several_hosts && !asked.te_trailers);
        let none = HeaderMap::new();
        let sent = Sent::of(&none);
        assert!(sent.content_type.is_none() && sent.request_id.is_none());
        assert!(sent.traceparent.is_none() && !sent.upgrade());
        let asked = sent.asked();
        assert!(asked.host.is_none() && !asked.several_hosts && !asked.te_trailers);
    }
}
