//! Header handling when a request crosses the gateway.

use std::cell::RefCell;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use telemetry::trace::TRACEPARENT;

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
// Names set on every forwarded request, made once instead of parsed from
// text each time.
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The headers the gateway itself sets on every request it forwards: who
/// the client is, how and to which host it came, the request id and the
/// trace context.
///
/// They travel beside the request's header map instead of in it: putting
/// six headers into a map costs a hash of each name and a probe of the
/// index, and the HTTP/1.1 client, which most requests take, writes them
/// straight after the map's own headers. The clients that take a whole map
/// (HTTP/2, TLS, streamed bodies) get them put in by [`Forwarding::apply`].
///
/// The gateway owns these names: whatever the map holds under one of them
/// (sent by the client, or set by a filter) is not forwarded, and a name
/// without a value here is not sent at all.
#[derive(Debug, Clone, Default)]
pub(crate) struct Forwarding {
    pub(crate) forwarded_for: Option<HeaderValue>,
    pub(crate) real_ip: Option<HeaderValue>,
    pub(crate) forwarded_proto: Option<HeaderValue>,
    pub(crate) forwarded_host: Option<HeaderValue>,
    pub(crate) request_id: Option<HeaderValue>,
    pub(crate) traceparent: Option<HeaderValue>,
}

impl Forwarding {
    /// Whether `name` is one the gateway sets, so a value under it in the
    /// request's map is not to be sent.
    pub(crate) fn owns(name: &HeaderName) -> bool {
        // Standard names (most of a request's) differ from these custom
        // ones at the first comparison of each.
        *name == X_FORWARDED_FOR
            || *name == X_REAL_IP
            || *name == X_FORWARDED_PROTO
            || *name == X_FORWARDED_HOST
            || *name == X_REQUEST_ID
            || *name == TRACEPARENT
    }

    /// Every name the gateway sets, with its value if it has one.
    pub(crate) fn all(&self) -> [(&'static HeaderName, &Option<HeaderValue>); 6] {
        [
            (&X_FORWARDED_FOR, &self.forwarded_for),
            (&X_REAL_IP, &self.real_ip),
            (&X_FORWARDED_PROTO, &self.forwarded_proto),
            (&X_FORWARDED_HOST, &self.forwarded_host),
            (&X_REQUEST_ID, &self.request_id),
            (&TRACEPARENT, &self.traceparent),
        ]
    }

    /// Puts these headers into `map`, in place of anything it holds under
    /// their names.
    pub(crate) fn apply(&self, map: &mut HeaderMap) {
        for (name, value) in self.all() {
            match value {
                Some(v) => {
                    map.insert(name.clone(), v.clone());
                }
                None => {
                    map.remove(name);
                }
            }
        }
    }
}

/// Removes the headers that describe one connection rather than the
/// message (RFC 9110 §7.6.1): the fixed list, and any header the
/// `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass to see whether there is anything to do: most messages carry
    // no hop-by-hop header but `Connection`, and removing absent names
    // costs a hash each.
    let mut found = false;
    for name in headers.keys() {
        if is_hop_by_hop(name) {
            found = true;
            break;
        }
    }
    if !found {
        return;
    }
    if let Some(connection) = headers.get(header::CONNECTION) {
        // Names listed in Connection are hop-by-hop too; collect them
        // first, since the map cannot change while a value is borrowed.
        let listed: Vec<HeaderName> = connection
            .to_str()
            .unwrap_or_default()
            .split(',')
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// Header maps kept for reuse on this thread, emptied. Every proxied
/// HTTP/1.1 message builds one map from its parsed head and drops it once
/// the head is written on: taking a spare one saves the two allocations,
/// the two frees and the filling of the index that a new map costs.
const SPARE_MAPS: usize = 64;

/// The largest map kept, in headers it has room for: maps grown larger
/// (for a request with a hundred headers) are freed rather than kept.
const SPARE_CAPACITY: usize = 64;

thread_local! {
    static SPARES: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty map with room for `capacity` headers: a spare one when this
/// thread has one.
pub(crate) fn empty_map(capacity: usize) -> HeaderMap {
    match SPARES.with_borrow_mut(Vec::pop) {
        Some(mut map) => {
            map.reserve(capacity);
            map
        }
        None => HeaderMap::with_capacity(capacity),
    }
}

/// Gives `map` back for [`empty_map`] to hand out again; its values are
/// dropped now.
pub(crate) fn recycle_map(mut map: HeaderMap) {
    if map.capacity() == 0 || map.capacity() > SPARE_CAPACITY {
        return;
    }
    map.clear();
    SPARES.with_borrow_mut(|spares| {
        if spares.len() < SPARE_MAPS {
            spares.push(map);
        }
    });
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TE
        || *name == header::TRAILER
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn forwarding() -> Forwarding {
        Forwarding {
            forwarded_for: Some(HeaderValue::from_static("192.0.2.1")),
            real_ip: Some(HeaderValue::from_static("192.0.2.1")),
            forwarded_proto: Some(HeaderValue::from_static("https")),
            forwarded_host: None,
            request_id: Some(HeaderValue::from_static("id-1")),
            traceparent: Some(HeaderValue::from_static("00-trace-span-01")),
        }
    }

    #[test]
    fn the_gateway_owns_its_forwarding_names_only() {
        for name in [
            "x-forwarded-for",
            "x-real-ip",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-request-id",
            "traceparent",
        ] {
            assert!(Forwarding::owns(&HeaderName::from_static(name)), "{name}");
        }
        for name in [
            "host",
            "x-forwarded-uri",
            "forwarded",
            "tracestate",
            "x-real",
        ] {
            assert!(!Forwarding::owns(&HeaderName::from_static(name)), "{name}");
        }
        let named: Vec<_> = forwarding()
            .all()
            .iter()
            .map(|(n, v)| (n.as_str(), v.is_some()))
            .collect();
        assert_eq!(
            named,
            [
                ("x-forwarded-for", true),
                ("x-real-ip", true),
                ("x-forwarded-proto", true),
                ("x-forwarded-host", false),
                ("x-request-id", true),
                ("traceparent", true),
            ],
            "every name, in a fixed order"
        );
    }

    #[test]
    fn applied_forwarding_replaces_what_the_map_had() {
        let mut map = HeaderMap::new();
        map.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        map.append("x-forwarded-for", HeaderValue::from_static("7.7.7.7"));
        map.insert("x-forwarded-host", HeaderValue::from_static("forged"));
        map.insert("x-kept", HeaderValue::from_static("yes"));
        forwarding().apply(&mut map);
        let all = |name: &str| -> Vec<_> { map.get_all(name).iter().cloned().collect() };
        assert_eq!(all("x-forwarded-for"), ["192.0.2.1"]);
        assert_eq!(all("x-forwarded-proto"), ["https"]);
        assert_eq!(all("x-request-id"), ["id-1"]);
        assert!(all("x-forwarded-host").is_empty(), "no value: not sent");
        assert_eq!(all("x-kept"), ["yes"]);
    }

    #[test]
    fn recycled_maps_come_back_empty_with_room() {
        let mut used = HeaderMap::with_capacity(8);
        used.insert("x-old", HeaderValue::from_static("1"));
        used.append("x-old", HeaderValue::from_static("2"));
        let capacity = used.capacity();
        recycle_map(used);
        let map = empty_map(4);
        assert!(map.is_empty(), "values of the last message are gone");
        assert_eq!(map.get("x-old"), None);
        assert_eq!(map.capacity(), capacity, "the allocation is reused");
        // A request larger than any spare: the map returned has the room.
        let big = empty_map(200);
        assert!(big.capacity() >= 200);
        // Oversized maps are not kept: the next map is a new small one.
        recycle_map(big);
        assert!(empty_map(1).capacity() <= SPARE_CAPACITY);
    }

    #[test]
    fn strips_listed_and_standard_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
