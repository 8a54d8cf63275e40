//! The parts of a request the matcher looks at.

use std::borrow::Cow;

use http::{HeaderMap, Method};

/// A request as the matcher sees it. The data plane fills it from the
/// request head after normalizing host and path.
#[derive(Clone, Copy, Debug)]
pub struct RequestInfo<'a> {
    /// Host without port, lowercase.
    pub host: &'a str,
    /// Normalized path (starts with `/`).
    pub path: &'a str,
    /// Raw query string, without the `?`.
    pub query: Option<&'a str>,
    /// Request method.
    pub method: &'a Method,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The request body, when it has been read for body conditions.
    pub body: Body<'a>,
}

/// What the matcher knows of the request body.
#[derive(Clone, Copy, Debug)]
pub enum Body<'a> {
    /// Not read (yet): entries with body conditions cannot be decided.
    Unread,
    /// Read, but not a JSON document: body conditions do not hold.
    NotJson,
    /// Read and parsed.
    Json(&'a serde_json::Value),
}

/// Decodes `%XX` escapes. Malformed escapes are kept as written; bytes
/// that do not form UTF-8 become U+FFFD. `+` is kept as is.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_escapes_and_keeps_malformed_ones() {
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("%41%2f"), "A/");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
        assert_eq!(percent_decode("a+b"), "a+b");
    }
}
