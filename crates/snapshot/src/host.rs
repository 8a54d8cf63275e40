//! Host patterns and the host index.

use std::collections::HashMap;
use std::fmt;

use foldhash::fast::RandomState;

use serde::{Serialize, Serializer};

/// Which request hosts a virtual host answers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostPattern {
    /// Exactly this host (lowercase, no port).
    Exact(Box<str>),
    /// `*.` followed by this suffix: any host with exactly one more DNS
    /// label in front of the suffix.
    Wildcard(Box<str>),
    /// Every host that no other virtual host claims.
    Any,
}

impl HostPattern {
    /// Parses `example.com`, `*.example.com` or `*` (an empty string is
    /// also `*`). The input must already be validated and lowercase.
    pub fn parse(host: &str) -> Self {
        match host {
            "" | "*" => Self::Any,
            _ => match host.strip_prefix("*.") {
                Some(suffix) => Self::Wildcard(suffix.into()),
                None => Self::Exact(host.into()),
            },
        }
    }

    /// Whether a request host falls under this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => **h == *host,
            Self::Wildcard(suffix) => wildcard_suffix(host).is_some_and(|s| s == &**suffix),
            Self::Any => true,
        }
    }
}

/// The part of a host after its first label, when the first label is not
/// empty: `a.example.com` → `example.com`.
fn wildcard_suffix(host: &str) -> Option<&str> {
    // A byte scan: hosts are short, and `str`'s char searcher costs more
    // than the search on every request.
    let dot = host.bytes().position(|b| b == b'.')?;
    let rest = &host[dot + 1..];
    (dot > 0 && !rest.is_empty()).then_some(rest)
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(h) => f.write_str(h),
            Self::Wildcard(s) => write!(f, "*.{s}"),
            Self::Any => f.write_str("*"),
        }
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Finds the virtual host for a request host with at most two hash
/// lookups.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct HostIndex {
    // Request hosts are attacker-chosen: the hasher is seeded per process.
    exact: HashMap<Box<str>, usize, RandomState>,
    wildcard: HashMap<Box<str>, usize, RandomState>,
    any: Option<usize>,
}

impl HostIndex {
    pub(crate) fn build<'a>(patterns: impl Iterator<Item = &'a HostPattern>) -> Self {
        let mut index = Self::default();
        for (i, pattern) in patterns.enumerate() {
            match pattern {
                HostPattern::Exact(h) => {
                    index.exact.entry(h.clone()).or_insert(i);
                }
                HostPattern::Wildcard(s) => {
                    index.wildcard.entry(s.clone()).or_insert(i);
                }
                HostPattern::Any => {
                    index.any.get_or_insert(i);
                }
            }
        }
        index
    }

    pub(crate) fn find(&self, host: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(host) {
            return Some(i);
        }
        if let Some(suffix) = wildcard_suffix(host)
            && let Some(&i) = self.wildcard.get(suffix)
        {
            return Some(i);
        }
        self.any
    }
}
