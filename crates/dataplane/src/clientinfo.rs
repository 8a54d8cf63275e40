//! Who the client is: the address that counts after trusted proxies, the
//! forwarding headers passed upstream, and the request id.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
pub use snapshot::Cidr;

use crate::headers::{X_FORWARDED_FOR, X_REQUEST_ID};

/// The address a request is attributed to. When the peer is a trusted
/// proxy, `X-Forwarded-For` is read from the right, skipping trusted
/// hops; the first untrusted address is the client. An untrusted peer is
/// the client, whatever headers it sent.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for value in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
        let Ok(text) = value.to_str() else {
            return client;
        };
        for hop in text.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return client;
            };
            client = ip;
            if !is_trusted(ip) {
                return client;
            }
        }
    }
    client
}

/// `X-Forwarded-For` for the upstream: a trusted peer's list (in
/// `headers`) is kept and the peer appended; from an untrusted peer only
/// the peer's address is sent, so clients cannot forge hops.
pub(crate) fn forwarded_for(
    headers: &HeaderMap,
    peer: IpAddr,
    peer_trusted: bool,
) -> Option<HeaderValue> {
    let peer_text = peer.to_canonical().to_string();
    let value = if peer_trusted {
        let existing: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty())
            .collect();
        if existing.is_empty() {
            peer_text
        } else {
            format!("{}, {peer_text}", existing.join(", "))
        }
    } else {
        peer_text
    };
    HeaderValue::try_from(value).ok()
}

/// The request's id: a well-formed `X-Request-Id` the client sent (`sent`)
/// is kept (so a trace can cross several proxies), otherwise a new random
/// one is made.
pub(crate) fn request_id(sent: Option<&HeaderValue>) -> HeaderValue {
    if let Some(v) = sent
        && (1..=128).contains(&v.len())
        && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
    {
        return v.clone();
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    let random = fastrand::u128(..);
    for (i, b) in id.iter_mut().enumerate() {
        *b = HEX[((random >> (i * 4)) & 0xf) as usize];
    }
    // Owned by a shared allocation from the start: the id is cloned into
    // the upstream request and the response, and a value built from a
    // plain buffer would be moved into a second allocation on its first
    // clone.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(id))
        .expect("hex digits are a valid header value")
}

/// The request id header's name.
pub(crate) fn request_id_header() -> &'static HeaderName {
    &X_REQUEST_ID
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn cidr_parsing_and_containment() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(
            c.contains("::ffff:10.0.0.1".parse().unwrap()),
            "mapped IPv4"
        );
        let one: Cidr = "192.168.1.5".parse().unwrap();
        assert!(one.contains("192.168.1.5".parse().unwrap()));
        assert!(!one.contains("192.168.1.6".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/", "fd00::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_trusted_hops_set_the_client() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 203.0.113.9, 10.0.0.7"),
        );
        // Untrusted peer: the header is ignored.
        assert_eq!(
            client_ip("198.51.100.1".parse().unwrap(), &h, &trusted),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        // Trusted peer: rightmost untrusted hop.
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // A forged entry left of the real client does not matter.
        assert_eq!(
            forwarded_for(&h, "10.0.0.2".parse().unwrap(), true).unwrap(),
            "1.2.3.4, 203.0.113.9, 10.0.0.7, 10.0.0.2"
        );
        assert_eq!(
            forwarded_for(&h, "198.51.100.1".parse().unwrap(), false).unwrap(),
            "198.51.100.1"
        );
        // Garbage stops the walk at the last good hop.
        let mut g = HeaderMap::new();
        g.insert(
            "x-forwarded-for",
            HeaderValue::from_static("nonsense, 10.0.0.9"),
        );
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &g, &trusted),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn request_ids_are_kept_or_made() {
        let made = request_id(None);
        assert_eq!(made.len(), 32);
        assert_ne!(made, request_id(None));
        let kept = HeaderValue::from_static("abc-123");
        assert_eq!(request_id(Some(&kept)), "abc-123");
        let spaced = HeaderValue::from_static("has space");
        assert_ne!(request_id(Some(&spaced)), "has space");
        let empty = HeaderValue::from_static("");
        assert_eq!(request_id(Some(&empty)).len(), 32);
    }
}
