//! Filters: changes made to requests and responses, and redirects.
//!
//! Each filter is compiled data (header names and values already
//! validated), with the pure functions that apply it, so the data plane
//! only copies values around.

use std::fmt::Write as _;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::matcher::PathMatch;
use crate::route::BackendTarget;

/// Set, add and remove operations on a header map, applied in the order
/// remove, set, add.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeaderModifier {
    /// Headers replaced (or created) with this value.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers appended, keeping existing values.
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Headers removed.
    pub remove: Vec<HeaderName>,
}

impl HeaderModifier {
    /// Applies the modifier to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }

    /// Whether the modifier does nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

impl Serialize for HeaderModifier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let pairs = |list: &[(HeaderName, HeaderValue)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect()
        };
        let mut map = s.serialize_map(None)?;
        if !self.set.is_empty() {
            map.serialize_entry("set", &pairs(&self.set))?;
        }
        if !self.add.is_empty() {
            map.serialize_entry("add", &pairs(&self.add))?;
        }
        if !self.remove.is_empty() {
            let names: Vec<&str> = self.remove.iter().map(HeaderName::as_str).collect();
            map.serialize_entry("remove", &names)?;
        }
        map.end()
    }
}

/// A path replacement.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum PathRewrite {
    /// Replace the whole path.
    Full(Box<str>),
    /// Replace the part of the path matched by a prefix match, keeping the
    /// rest (Gateway API `ReplacePrefixMatch`).
    Prefix(Box<str>),
    /// When `pattern` matches anywhere in the path, replace the whole path
    /// with `replacement`, in which `$1`…`$9` are the pattern's capture
    /// groups (nginx's `rewrite`); a path it does not match is kept.
    Regex {
        /// Searched for in the normalized request path.
        pattern: crate::Pattern,
        /// The new path.
        replacement: Box<str>,
    },
}

impl PathRewrite {
    /// The new path for `path`, which matched `matched`. A prefix
    /// replacement on a path that did not match by prefix replaces the
    /// whole path.
    pub fn apply(&self, path: &str, matched: &PathMatch) -> String {
        match (self, matched) {
            (Self::Full(new), _) => new.to_string(),
            (Self::Prefix(new), PathMatch::Prefix(prefix)) => replace_prefix(path, prefix, new),
            (Self::Prefix(new), _) => new.to_string(),
            (
                Self::Regex {
                    pattern,
                    replacement,
                },
                _,
            ) => {
                let Some(mut new) = pattern.expand(path, replacement) else {
                    return path.to_owned();
                };
                if !new.starts_with('/') {
                    new.insert(0, '/');
                }
                // Captures are pieces of a normalized path, but joined they
                // can form `//` or `..`: the upstream gets the normal form.
                match crate::normalize_path(&new) {
                    Ok(normal) => normal.into_owned(),
                    Err(_) => path.to_owned(),
                }
            }
        }
    }
}

/// Replaces `prefix` (an element-wise prefix of `path`, stored without a
/// trailing slash) with `new`, joining the two parts with exactly one `/`:
/// prefix `/v1` replaced by `/` maps `/v1/users` to `/users` and `/v1` to
/// `/`; replaced by `/v2` it maps `/v1/users` to `/v2/users`.
fn replace_prefix(path: &str, prefix: &str, new: &str) -> String {
    let rest = if prefix == "/" {
        path
    } else {
        path.strip_prefix(prefix).unwrap_or(path)
    };
    let new = new.trim_end_matches('/');
    let rest = rest.trim_start_matches('/');
    let mut out = String::with_capacity(new.len() + rest.len() + 2);
    out.push_str(new);
    if !rest.is_empty() || path.ends_with('/') || out.is_empty() {
        out.push('/');
    }
    out.push_str(rest);
    if !out.starts_with('/') {
        out.insert(0, '/');
    }
    out
}

/// Host and path rewriting on the way upstream.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rewrite {
    /// New Host header for the upstream request.
    #[serde(
        serialize_with = "ser_opt_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub hostname: Option<HeaderValue>,
    /// New path for the upstream request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
}

/// A header value as text (the snapshot dump).
pub(crate) fn ser_value<S: Serializer>(v: &HeaderValue, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(v.as_bytes()))
}

/// An optional header value as text.
pub(crate) fn ser_opt_value<S: Serializer>(
    v: &Option<HeaderValue>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&String::from_utf8_lossy(v.as_bytes())),
        None => s.serialize_none(),
    }
}

/// The scheme of a redirect target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `http`
    Http,
    /// `https`
    Https,
}

impl Scheme {
    /// The scheme's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    /// The port a URL of this scheme implies.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// A redirect answered by the gateway. Parts left empty keep the
/// request's own.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Redirect {
    /// New scheme.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,
    /// New host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Box<str>>,
    /// New port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// New path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    /// Leave the request's query out of the location.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drop_query: bool,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

/// The parts of the request a redirect starts from.
#[derive(Clone, Copy, Debug)]
pub struct RedirectFrom<'a> {
    /// Scheme the request arrived with.
    pub scheme: Scheme,
    /// Host of the request, without port.
    pub host: &'a str,
    /// Port of the request: from the Host header, else the scheme's
    /// default.
    pub port: u16,
    /// Normalized request path.
    pub path: &'a str,
    /// Raw query string.
    pub query: Option<&'a str>,
}

impl Redirect {
    /// The `Location` of the redirect. The port follows the Gateway API:
    /// an explicit port is used; otherwise a changed scheme implies its
    /// default port, and an unchanged scheme keeps the request's port. A
    /// port equal to the scheme's default is left out.
    pub fn location(&self, from: &RedirectFrom<'_>, matched: &PathMatch) -> String {
        let scheme = self.scheme.unwrap_or(from.scheme);
        let host = self.hostname.as_deref().unwrap_or(from.host);
        let port = match (self.port, self.scheme) {
            (Some(p), _) => p,
            (None, Some(s)) if s != from.scheme => s.default_port(),
            (None, _) => from.port,
        };
        let path = match &self.path {
            Some(rewrite) => rewrite.apply(from.path, matched),
            None => from.path.to_owned(),
        };
        let mut out = String::with_capacity(scheme.as_str().len() + host.len() + path.len() + 16);
        let _ = write!(out, "{}://{host}", scheme.as_str());
        if port != scheme.default_port() {
            let _ = write!(out, ":{port}");
        }
        out.push_str(&path);
        if let Some(q) = from.query.filter(|_| !self.drop_query) {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

/// A copy of each (sampled) request sent to another backend; its response
/// is discarded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mirror {
    /// Where copies go.
    pub target: BackendTarget,
    /// Share of requests copied, 0 to 100.
    pub percent: u8,
}

/// Everything a route does besides choosing a backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filters {
    /// Changes to the request headers sent upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderModifier>,
    /// Changes to the response headers sent to the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderModifier>,
    /// Host and path rewriting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    /// Copies of the request to other backends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<Mirror>,
}

impl Filters {
    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self.request_headers.is_none()
            && self.response_headers.is_none()
            && self.rewrite.is_none()
            && self.mirrors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_replacement_follows_the_gateway_api() {
        let p = |prefix: &str| PathMatch::prefix(prefix);
        let r = |new: &str| PathRewrite::Prefix(new.into());
        let cases = [
            ("/v1", "/", "/v1/users", "/users"),
            ("/v1", "/", "/v1", "/"),
            ("/v1", "/", "/v1/", "/"),
            ("/v1", "/v2", "/v1/users", "/v2/users"),
            ("/v1", "/v2", "/v1", "/v2"),
            ("/v1", "/v2", "/v1/", "/v2/"),
            ("/v1/", "/v2/", "/v1/users", "/v2/users"),
            ("/", "/api", "/users", "/api/users"),
            ("/", "/api", "/", "/api/"),
            ("/a/b", "/x", "/a/b/c/d", "/x/c/d"),
        ];
        for (prefix, new, path, want) in cases {
            assert_eq!(
                r(new).apply(path, &p(prefix)),
                want,
                "{prefix} -> {new} on {path}"
            );
        }
        assert_eq!(
            PathRewrite::Full("/fixed".into()).apply("/any/thing", &p("/any")),
            "/fixed"
        );
    }

    #[test]
    fn redirect_locations() {
        let from = RedirectFrom {
            scheme: Scheme::Http,
            host: "example.com",
            port: 8080,
            path: "/old/page",
            query: Some("a=1"),
        };
        let matched = PathMatch::prefix("/old");
        let base = Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path: None,
            drop_query: false,
            status: 302,
        };
        assert_eq!(
            base.location(&from, &matched),
            "http://example.com:8080/old/page?a=1"
        );
        let https = Redirect {
            scheme: Some(Scheme::Https),
            ..base.clone()
        };
        assert_eq!(
            https.location(&from, &matched),
            "https://example.com/old/page?a=1"
        );
        let moved = Redirect {
            hostname: Some("new.example.com".into()),
            port: Some(443),
            scheme: Some(Scheme::Https),
            path: Some(PathRewrite::Prefix("/new".into())),
            drop_query: false,
            status: 301,
        };
        assert_eq!(
            moved.location(&from, &matched),
            "https://new.example.com/new/page?a=1"
        );
        let fixed = Redirect {
            drop_query: true,
            ..moved
        };
        assert_eq!(
            fixed.location(&from, &matched),
            "https://new.example.com/new/page"
        );
        let port80 = RedirectFrom {
            port: 80,
            query: None,
            ..from
        };
        assert_eq!(
            base.location(&port80, &matched),
            "http://example.com/old/page"
        );
    }

    #[test]
    fn header_modifier_order_is_remove_set_add() {
        let m = HeaderModifier {
            set: vec![(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("set"),
            )],
            add: vec![(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("added"),
            )],
            remove: vec![
                HeaderName::from_static("x-a"),
                HeaderName::from_static("x-gone"),
            ],
        };
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("original"));
        h.insert("x-gone", HeaderValue::from_static("1"));
        m.apply(&mut h);
        let values: Vec<_> = h
            .get_all("x-a")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(values, ["set", "added"]);
        assert!(!h.contains_key("x-gone"));
    }
}
