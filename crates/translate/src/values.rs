//! Checks and conversions for field values, shared by every object kind.
//!
//! The CRD schema enforces most of these in Kubernetes mode; standalone
//! mode has no API server, so the translator checks again.

use std::time::Duration;

/// Checks a hostname as routes may write it: lowercase DNS labels, with an
/// optional leading `*.` wildcard label. Returns what is wrong.
pub(crate) fn check_hostname(host: &str) -> Result<(), String> {
    let bare = host.strip_prefix("*.").unwrap_or(host);
    if bare.is_empty() || host.len() > 253 {
        return Err(format!(
            "{host:?} is not a valid hostname: it must be 1 to 253 characters"
        ));
    }
    if host.contains(':') {
        return Err(format!(
            "{host:?} is not a valid hostname: leave the port out"
        ));
    }
    for label in bare.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{host:?} is not a valid hostname: use lowercase letters, digits and '-' in dot-separated labels of at most 63 characters, optionally starting with '*.'"
            ));
        }
    }
    Ok(())
}

/// Parses a duration such as `1m30s`, `250ms` or `0s`: one to four groups
/// of up to five digits followed by `h`, `m`, `s` or `ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let err = || {
        format!(
            "{text:?} is not a duration: write one to four groups of a number (up to 5 digits) and a unit h, m, s or ms, such as 1m30s or 250ms"
        )
    };
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut groups = 0;
    let mut total = Duration::ZERO;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &text[start..i];
        if digits.is_empty() || digits.len() > 5 {
            return Err(err());
        }
        let n: u64 = digits.parse().map_err(|_| err())?;
        let unit = if text[i..].starts_with("ms") {
            i += 2;
            Duration::from_millis(n)
        } else {
            let d = match bytes.get(i) {
                Some(b'h') => Duration::from_secs(n * 3600),
                Some(b'm') => Duration::from_secs(n * 60),
                Some(b's') => Duration::from_secs(n),
                _ => return Err(err()),
            };
            i += 1;
            d
        };
        total += unit;
        groups += 1;
    }
    if groups == 0 || groups > 4 {
        return Err(err());
    }
    Ok(total)
}

/// Normalizes a path written in a rule the way request paths are
/// normalized, so the two compare. Returns what is wrong when the path
/// could never match a normalized request path.
pub(crate) fn normalize_rule_path(path: &str) -> Result<String, String> {
    snapshot::normalize_path(path)
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| format!("{path:?} is not a usable path: {e}"))
}

/// Checks an HTTP header name.
pub(crate) fn check_header_name(name: &str) -> Result<http::HeaderName, String> {
    http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        format!("{name:?} is not a valid header name: use letters, digits and !#$%&'*+-.^_`|~")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        for ok in ["example.com", "*.example.com", "a-b.c1", "localhost"] {
            check_hostname(ok).unwrap();
        }
        for bad in [
            "",
            "*.",
            "Example.com",
            "a..b",
            "-a.com",
            "a-.com",
            "a.com:80",
            "*",
            "a.*.com",
            "a_b.com",
        ] {
            assert!(check_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rule_paths_are_normalized_like_requests() {
        assert_eq!(normalize_rule_path("/a//b/./c/").unwrap(), "/a/b/c/");
        assert_eq!(normalize_rule_path("/%7euser").unwrap(), "/~user");
        assert!(normalize_rule_path("relative").is_err());
        assert!(normalize_rule_path("/a%2fb").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("1h1m1s1ms").unwrap(),
            Duration::from_millis(3_661_001)
        );
        for bad in [
            "",
            "1",
            "s",
            "1d",
            "1.5s",
            "123456s",
            "1s1s1s1s1s",
            "-1s",
            "1 s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
