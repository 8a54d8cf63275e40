//! Request path normalization.
//!
//! Every request path is normalized once, before matching, and the
//! normalized form is what the upstream receives, so the gateway and the
//! upstream can never disagree about which path a request names. Rules:
//!
//! 1. The path must start with `/` (`*` and absolute forms are handled by
//!    the caller).
//! 2. Percent-encoded *unreserved* characters (`A-Z a-z 0-9 - . _ ~`) are
//!    decoded: `/%61dmin` is `/admin`. Other escapes are kept, with their
//!    hex digits in upper case (`%2f` → `%2F`).
//! 3. An encoded slash (`%2F`) or backslash (`%5C`), a literal backslash,
//!    and a malformed escape (`%zz`, `%4`) are rejected: they are the usual
//!    tools for making a proxy and an upstream see different paths.
//! 4. Empty segments are merged (`//` → `/`).
//! 5. Dot segments are resolved after decoding (`/a/./b/../c` → `/a/c`,
//!    and so is `/a/%2e%2e/c`); `..` never climbs above the root.
//!
//! A trailing slash is kept: `/foo/` and `/foo` are different paths, and
//! route matching decides what each matches.

use std::borrow::Cow;
use std::fmt;

/// Why a path was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with `/`.
    NotAbsolute,
    /// `%2F` or `%5C` in the path.
    EncodedSeparator,
    /// A literal backslash.
    Backslash,
    /// `%` not followed by two hex digits.
    BadEscape,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAbsolute => "the path must start with '/'",
            Self::EncodedSeparator => {
                "an encoded '/' or '\\' (%2F, %5C) is not allowed in the path"
            }
            Self::Backslash => "a '\\' is not allowed in the path",
            Self::BadEscape => "'%' must be followed by two hexadecimal digits",
        })
    }
}

impl std::error::Error for PathError {}

/// Normalizes a request path (without its query). Borrows when the path is
/// already normal, which is the common case.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Fast check: nothing to decode, no empty or dot segments.
    let mut clean = true;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let (h, l) = escape_at(bytes, i)?;
                let b = h << 4 | l;
                if b == b'/' || b == b'\\' {
                    return Err(PathError::EncodedSeparator);
                }
                // Lower-case hex or a decodable character needs a rewrite.
                if is_unreserved(b)
                    || bytes[i + 1].is_ascii_lowercase()
                    || bytes[i + 2].is_ascii_lowercase()
                {
                    clean = false;
                }
                i += 3;
                continue;
            }
            b'/' => {
                let rest = &bytes[i + 1..];
                if rest.first() == Some(&b'/')
                    || rest == b"."
                    || rest == b".."
                    || rest.starts_with(b"./")
                    || rest.starts_with(b"../")
                {
                    clean = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if clean {
        return Ok(Cow::Borrowed(path));
    }

    // Decode unreserved escapes, keep the others (upper-cased), then
    // rebuild the path segment by segment.
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (h, l) = escape_at(bytes, i)?;
            let b = h << 4 | l;
            if is_unreserved(b) {
                decoded.push(char::from(b));
            } else {
                decoded.push('%');
                decoded.push(char::from(HEX[usize::from(h)]));
                decoded.push(char::from(HEX[usize::from(l)]));
            }
            i += 3;
        } else {
            // Copy the run up to the next escape in one go (keeps UTF-8
            // sequences intact).
            let end = bytes[i..]
                .iter()
                .position(|&b| b == b'%')
                .map_or(bytes.len(), |p| i + p);
            decoded.push_str(&path[i..end]);
            i = end;
        }
    }

    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (n, seg) in parts.iter().enumerate() {
        match *seg {
            "" | "." => trailing_slash = n == last,
            ".." => {
                segments.pop();
                trailing_slash = n == last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn escape_at(bytes: &[u8], i: usize) -> Result<(u8, u8), PathError> {
    match (
        bytes.get(i + 1).and_then(|b| hex(*b)),
        bytes.get(i + 2).and_then(|b| hex(*b)),
    ) {
        (Some(h), Some(l)) => Ok((h, l)),
        _ => Err(PathError::BadEscape),
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

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize_path(p).map(Cow::into_owned)
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for p in [
            "/",
            "/a",
            "/a/b/",
            "/a.b/c..d/.e",
            "/%20x",
            "/caf%C3%A9",
            "/ü",
        ] {
            assert!(matches!(normalize_path(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn dot_segments_and_slashes() {
        let cases = [
            ("//", "/"),
            ("/a//b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../a", "/a"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/../", "/a/"),
            ("/..", "/"),
            ("/.", "/"),
            ("/a/..//../b", "/b"),
            ("///a///b///", "/a/b/"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_before_dot_segments() {
        let cases = [
            ("/%61dmin", "/admin"),
            ("/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E/admin", "/admin"),
            ("/public/.%2e/admin", "/admin"),
            ("/a%2db", "/a-b"),
            ("/%7euser", "/~user"),
            ("/a%20b", "/a%20b"),
            ("/a%3fb", "/a%3Fb"),
            ("/caf%c3%a9", "/caf%C3%A9"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn bypass_tricks_are_rejected() {
        for p in [
            "/admin%2fsecret",
            "/admin%2F..%2Fpublic",
            "/a%5cb",
            "/a\\b",
            "/%",
            "/%4",
            "/%zz",
            "/%%32%65",
        ] {
            assert!(norm(p).is_err(), "{p} must be rejected");
        }
        assert_eq!(norm("admin"), Err(PathError::NotAbsolute));
        assert_eq!(norm(""), Err(PathError::NotAbsolute));
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for p in [
            "/a/../b//c/./%2e%2e/d",
            "/%41%42/",
            "/x/%7e/..",
            "/a%20b/%c3%a9",
        ] {
            let once = norm(p).unwrap();
            assert_eq!(norm(&once).unwrap(), once, "{p}");
            assert!(
                matches!(normalize_path(&once), Ok(Cow::Borrowed(_))),
                "{once}"
            );
        }
    }
}
