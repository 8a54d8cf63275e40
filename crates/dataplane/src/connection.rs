//! What the pipeline knows of the connection a request came in on: the
//! peer, the scheme, and what the TLS handshake settled. Listeners make
//! one per connection; every request on it reads it.

use std::borrow::Cow;
use std::net::SocketAddr;

use http::HeaderValue;
use snapshot::Scheme;

/// Where a request came in.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The client's address (from the PROXY header when one was sent).
    pub peer: SocketAddr,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The peer's address as a header value, made once per connection.
    pub(crate) peer_value: HeaderValue,
    /// What the TLS handshake settled, on HTTPS connections.
    pub(crate) tls: Option<TlsInfo>,
}

/// What the TLS handshake of a connection settled.
#[derive(Clone, Debug)]
pub(crate) struct TlsInfo {
    /// The TLS host entry the certificate was chosen for (`None`: the
    /// default certificate).
    pub(crate) host: Option<snapshot::HostPattern>,
    /// Subject of the verified client certificate.
    pub(crate) client_subject: Option<HeaderValue>,
}

impl Connection {
    /// Describes a connection from `peer` on a listener.
    pub fn new(peer: SocketAddr, scheme: Scheme) -> Self {
        let peer_value = HeaderValue::try_from(peer.ip().to_canonical().to_string())
            .expect("an IP address is a valid header value");
        Self {
            peer,
            scheme,
            peer_value,
            tls: None,
        }
    }

    pub(crate) fn with_tls(mut self, info: TlsInfo) -> Self {
        self.tls = Some(info);
        self
    }
}

/// Host (lowercase, without trailing dot; IPv6 literals keep their
/// brackets) and port of an authority or a Host header value. `None` when
/// the port is not a number.
pub(crate) fn split_host(raw: &str) -> Option<(Cow<'_, str>, Option<u16>)> {
    // One backward pass over the bytes (these strings are short, and every
    // request has one): where the user info ends, the last colon, and
    // whether any letter needs lowercasing (one in the port fails its
    // parse below anyway).
    let mut start = 0;
    let mut colon = None;
    let mut upper = false;
    for (i, &c) in raw.as_bytes().iter().enumerate().rev() {
        match c {
            b'@' => {
                start = i + 1;
                break;
            }
            b':' if colon.is_none() => colon = Some(i),
            b'A'..=b'Z' => upper = true,
            _ => {}
        }
    }
    let raw = &raw[start..];
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal keeps its brackets.
        let end = rest.bytes().position(|c| c == b']')? + 2;
        let port = raw[end..].strip_prefix(':');
        (&raw[..end], port)
    } else {
        // The colon was found after the user info, in the part kept.
        match colon.map(|c| c - start) {
            Some(colon) => (&raw[..colon], Some(&raw[colon + 1..])),
            None => (raw, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let host = if upper {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_are_split() {
        let split = |raw: &str| split_host(raw).map(|(h, p)| (h.into_owned(), p));
        let some = |h: &str, p: Option<u16>| Some((h.to_owned(), p));
        assert_eq!(split("example.com"), some("example.com", None));
        assert_eq!(split("Example.COM:8080"), some("example.com", Some(8080)));
        assert_eq!(split("example.com.:80"), some("example.com", Some(80)));
        assert_eq!(
            split("User:Pa:ss@Example.com:81"),
            some("example.com", Some(81))
        );
        assert_eq!(split("a@b@c.example"), some("c.example", None));
        assert_eq!(split("[::1]"), some("[::1]", None));
        assert_eq!(split("[::1]:443"), some("[::1]", Some(443)));
        assert_eq!(split("[FE80::1]:443"), some("[fe80::1]", Some(443)));
        assert_eq!(split("[::1"), None);
        assert_eq!(split("example.com:"), None);
        assert_eq!(split("example.com:8O"), None);
        assert_eq!(split("example.com:65536"), None);
        assert_eq!(split(""), some("", None));
        // Nothing to lowercase: the host is borrowed, not copied.
        assert!(matches!(
            split_host("a.example:1"),
            Some((Cow::Borrowed(_), _))
        ));
    }
}
