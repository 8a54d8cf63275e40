//! Match entries: the compiled conditions of one route match.

use std::fmt;

use http::{HeaderName, Method};
use regex_automata::meta::{self, Regex};
use serde::{Serialize, Serializer};

use crate::request::{Body, RequestInfo, percent_decode};
use crate::route::RouteIndex;

/// One way into a route: every condition must hold. A route with several
/// matches (OR) has several entries, each ranked on its own.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteEntry {
    /// Condition on the normalized path.
    pub path: PathMatch,
    /// Required method, if any.
    #[serde(serialize_with = "ser_method", skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Conditions on headers; all must hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatcher>,
    /// Conditions on query parameters; all must hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<QueryMatcher>,
    /// Conditions on the JSON request body; all must hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub body: Vec<BodyMatcher>,
    /// The route this entry leads to.
    pub route: RouteIndex,
}

fn ser_method<S: Serializer>(m: &Option<Method>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(m.as_str()),
        None => s.serialize_none(),
    }
}

/// Whether an entry takes a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMatch {
    /// Every condition holds.
    Yes,
    /// Some condition fails.
    No,
    /// Every condition checked so far holds, but the entry has body
    /// conditions and the body has not been read.
    NeedBody,
}

impl RouteEntry {
    /// Whether the request meets every condition of this entry.
    pub fn check(&self, req: &RequestInfo<'_>) -> EntryMatch {
        if !self.path.matches(req.path) {
            return EntryMatch::No;
        }
        self.check_beyond_path(req)
    }

    /// Every condition except the path, which the caller has checked.
    pub(crate) fn check_beyond_path(&self, req: &RequestInfo<'_>) -> EntryMatch {
        let head = self.method.as_ref().is_none_or(|m| m == req.method)
            && self.headers.iter().all(|h| h.matches(req))
            && self.query.iter().all(|q| q.matches(req));
        if !head {
            return EntryMatch::No;
        }
        if self.body.is_empty() {
            return EntryMatch::Yes;
        }
        match req.body {
            Body::Unread => EntryMatch::NeedBody,
            Body::NotJson => EntryMatch::No,
            Body::Json(json) => {
                if self.body.iter().all(|b| b.matches(json)) {
                    EntryMatch::Yes
                } else {
                    EntryMatch::No
                }
            }
        }
    }

    /// Shorthand for `check(req) == EntryMatch::Yes`.
    pub fn matches(&self, req: &RequestInfo<'_>) -> bool {
        self.check(req) == EntryMatch::Yes
    }
}

/// A condition on a value inside a JSON request body.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BodyMatcher {
    /// RFC 6901 JSON Pointer to the value, such as `/order/tenant`.
    pub json_pointer: Box<str>,
    /// How the value is compared: strings as they are, other values as
    /// their JSON text (`42`, `true`, `null`).
    #[serde(flatten)]
    pub value: ValueMatch,
}

impl BodyMatcher {
    /// Whether the body has a value at the pointer that meets the
    /// condition.
    pub fn matches(&self, json: &serde_json::Value) -> bool {
        let Some(found) = json.pointer(&self.json_pointer) else {
            return false;
        };
        match (&self.value, found) {
            (ValueMatch::Present, _) => true,
            (m, serde_json::Value::String(s)) => m.matches(s),
            (m, other) => m.matches(&other.to_string()),
        }
    }
}

/// A condition on the request path.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum PathMatch {
    /// The path equals this string.
    Exact(Box<str>),
    /// The path is this prefix or continues it after a `/`. Stored without
    /// a trailing slash, except for the root prefix `/`.
    Prefix(Box<str>),
    /// The whole path matches this pattern.
    Regex(Pattern),
}

impl PathMatch {
    /// A prefix match, with the trailing slash of `prefix` dropped so that
    /// `/foo/` and `/foo` behave the same.
    pub fn prefix(prefix: &str) -> Self {
        let trimmed = prefix.trim_end_matches('/');
        Self::Prefix(if trimmed.is_empty() { "/" } else { trimmed }.into())
    }

    /// Whether a normalized path meets the condition.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => **p == *path,
            Self::Prefix(p) => prefix_matches(p, path),
            Self::Regex(r) => r.is_match(path),
        }
    }

    /// Length of the literal path (or pattern source), used for
    /// precedence.
    pub fn len(&self) -> usize {
        match self {
            Self::Exact(p) | Self::Prefix(p) => p.len(),
            Self::Regex(r) => r.as_str().len(),
        }
    }

    /// Whether the path or pattern is empty (never, once validated).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Element-wise prefix match: `/foo` matches `/foo`, `/foo/` and
/// `/foo/bar`, never `/foobar`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// A regular expression anchored to match a whole value, compiled once at
/// translate time. Compares and prints as its source text.
#[derive(Clone)]
pub struct Pattern {
    source: Box<str>,
    regex: Regex,
}

/// A pattern that does not compile.
#[derive(Debug)]
pub struct PatternError(Box<meta::BuildError>);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = self.0.syntax_error() {
            // The parser's message spans several lines with a caret
            // diagram; keep the last line, which names the problem.
            let msg = e.to_string();
            let reason = msg.lines().rev().find(|l| !l.trim().is_empty());
            let reason = reason.unwrap_or(&msg).trim();
            let reason = reason.strip_prefix("error: ").unwrap_or(reason);
            write!(f, "invalid regular expression: {reason}")
        } else if let Some(limit) = self.0.size_limit() {
            write!(
                f,
                "regular expression is too large (limit {limit} bytes compiled)"
            )
        } else {
            write!(f, "invalid regular expression: {}", self.0)
        }
    }
}

impl std::error::Error for PatternError {}

/// Compiled-size ceiling for one user pattern, so a hostile or careless
/// expression cannot take megabytes of memory per route.
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;

/// How every pattern is compiled: within the size ceiling, and without a
/// fully compiled DFA. The lazy DFA matches as fast once warm, while
/// building a full DFA for every small pattern took most of a
/// translation's time and memory with many regular expression routes.
pub(crate) fn regex_config() -> meta::Config {
    meta::Config::new()
        .nfa_size_limit(Some(PATTERN_SIZE_LIMIT))
        .dfa(false)
}

impl Pattern {
    /// Compiles `source` so that it must match a whole value.
    pub fn new(source: &str) -> Result<Self, PatternError> {
        Self::compile(source, &format!("^(?:{source})$"))
    }

    /// Compiles `source` to match anywhere in a value (the way nginx's
    /// `rewrite` searches a URI); anchor it with `^` or `$` where needed.
    pub fn search(source: &str) -> Result<Self, PatternError> {
        Self::compile(source, source)
    }

    fn compile(source: &str, pattern: &str) -> Result<Self, PatternError> {
        let regex = Regex::builder()
            .configure(regex_config())
            .build(pattern)
            .map_err(|e| PatternError(Box::new(e)))?;
        Ok(Self {
            source: source.into(),
            regex,
        })
    }

    /// Number of capture groups, the whole match not counted.
    pub fn captures_len(&self) -> usize {
        self.regex
            .group_info()
            .group_len(regex_automata::PatternID::ZERO)
            - 1
    }

    /// When the pattern matches `value`, `template` with `$1`…`$9`
    /// replaced by the capture groups (an unmatched group is empty, and
    /// `$$` is a literal `$`); `None` when it does not match.
    pub fn expand(&self, value: &str, template: &str) -> Option<String> {
        let mut caps = self.regex.create_captures();
        self.regex.captures(value, &mut caps);
        if !caps.is_match() {
            return None;
        }
        let mut out = String::with_capacity(template.len() + value.len());
        let mut chars = template.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c != '$' {
                out.push(c);
                continue;
            }
            match chars.peek().copied() {
                Some((_, '$')) => {
                    chars.next();
                    out.push('$');
                }
                Some((_, d)) if d.is_ascii_digit() => {
                    chars.next();
                    let group = d as usize - '0' as usize;
                    if let Some(span) = caps.get_group(group) {
                        out.push_str(&value[span.range()]);
                    }
                }
                _ => out.push('$'),
            }
        }
        Some(out)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole value matches.
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// How a header or query value is compared.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum ValueMatch {
    /// Equal to this string.
    Exact(Box<str>),
    /// Matches this pattern as a whole.
    Regex(Pattern),
    /// Present, whatever the value.
    Present,
}

impl ValueMatch {
    /// Whether `value` meets the condition.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(v) => **v == *value,
            Self::Regex(r) => r.is_match(value),
            Self::Present => true,
        }
    }
}

/// A condition on one request header (the first value when repeated).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeaderMatcher {
    /// Header name (HTTP header names compare case-insensitively).
    #[serde(serialize_with = "ser_header_name")]
    pub name: HeaderName,
    /// How the value is compared.
    #[serde(flatten)]
    pub value: ValueMatch,
}

fn ser_header_name<S: Serializer>(n: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(n.as_str())
}

impl HeaderMatcher {
    /// Whether the request's header holds.
    pub fn matches(&self, req: &RequestInfo<'_>) -> bool {
        let Some(value) = req.headers.get(&self.name) else {
            return false;
        };
        match &self.value {
            ValueMatch::Present => true,
            ValueMatch::Exact(v) => value.as_bytes() == v.as_bytes(),
            ValueMatch::Regex(r) => value.to_str().is_ok_and(|v| r.is_match(v)),
        }
    }
}

/// A condition on one query parameter (the first occurrence when
/// repeated), compared after percent-decoding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueryMatcher {
    /// Parameter name, case-sensitive.
    pub name: Box<str>,
    /// How the value is compared.
    #[serde(flatten)]
    pub value: ValueMatch,
}

impl QueryMatcher {
    /// Whether the request's query parameter holds.
    pub fn matches(&self, req: &RequestInfo<'_>) -> bool {
        let Some(query) = req.query else {
            return false;
        };
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode(name) == *self.name {
                return self.value.matches(&percent_decode(value));
            }
        }
        false
    }
}
