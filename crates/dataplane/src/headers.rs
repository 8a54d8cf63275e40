//! Header handling when a request crosses the gateway.

use std::cell::RefCell;

use http::header::{self, HeaderMap, HeaderName};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

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
