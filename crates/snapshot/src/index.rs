//! The path index of a virtual host: finds the entries whose path
//! condition holds without looking at the others.
//!
//! Entries are stored in precedence order, so an entry's position is its
//! rank. The index yields, for a path, the positions of every entry whose
//! path matches — exact paths from a hash map, prefixes by walking a trie
//! of path segments, regular expressions from one `RegexSet` — and the
//! matcher checks the remaining conditions in rank order. The first entry
//! that passes is the one a linear scan would have found.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use regex_automata::{Input, PatternSet, meta::Regex as RegexSet};
use smallvec::SmallVec;

use crate::matcher::{PathMatch, RouteEntry};

/// Candidate positions, most requests have only a handful.
pub(crate) type Candidates = SmallVec<[u32; 16]>;

#[derive(Clone, Debug, Default)]
struct Node {
    children: HashMap<Box<str>, u32, RandomState>,
    /// Positions of prefix entries ending at this node, ascending.
    entries: Vec<u32>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct PathIndex {
    exact: HashMap<Box<str>, Vec<u32>, RandomState>,
    nodes: Vec<Node>,
    regex: Option<RegexSet>,
    regex_entries: Vec<u32>,
}

/// The index is derived from the entries; two virtual hosts with equal
/// entries are equal whatever their indexes look like.
impl PartialEq for PathIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl PathIndex {
    /// Builds the index of `entries`. Patterns were validated when their
    /// entries were built, so the combined set compiles; if it somehow
    /// does not, regular expression entries are found by scanning them.
    pub(crate) fn build(entries: &[RouteEntry]) -> Self {
        let mut index = Self {
            nodes: vec![Node::default()],
            ..Self::default()
        };
        let mut patterns = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let pos = u32::try_from(i).unwrap_or(u32::MAX);
            match &entry.path {
                PathMatch::Exact(p) => index.exact.entry(p.clone()).or_default().push(pos),
                PathMatch::Prefix(p) => {
                    let node = index.node_for(p);
                    index.nodes[node].entries.push(pos);
                }
                PathMatch::Regex(r) => {
                    patterns.push(format!("^(?:{})$", r.as_str()));
                    index.regex_entries.push(pos);
                }
            }
        }
        if !patterns.is_empty() {
            index.regex = RegexSet::builder()
                // Every pattern that matches, as a set must report.
                .configure(
                    crate::matcher::regex_config().match_kind(regex_automata::MatchKind::All),
                )
                .build_many(&patterns)
                .ok();
        }
        index
    }

    /// The trie node for a prefix (stored without a trailing slash, so
    /// `/` is the root), created on the way.
    fn node_for(&mut self, prefix: &str) -> usize {
        let mut node = 0;
        if prefix == "/" {
            return node;
        }
        for segment in segments(prefix) {
            let next = match self.nodes[node].children.get(segment) {
                Some(&n) => n as usize,
                None => {
                    let n = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[node]
                        .children
                        .insert(segment.into(), u32::try_from(n).unwrap_or(u32::MAX));
                    n
                }
            };
            node = next;
        }
        node
    }

    /// Positions of every entry whose path condition holds, ascending.
    pub(crate) fn candidates(&self, path: &str, entries: &[RouteEntry]) -> Candidates {
        let mut out = Candidates::new();
        if let Some(list) = self.exact.get(path) {
            out.extend_from_slice(list);
        }
        if !self.regex_entries.is_empty() {
            match &self.regex {
                Some(set) => {
                    let mut matched = PatternSet::new(set.pattern_len());
                    set.which_overlapping_matches(&Input::new(path), &mut matched);
                    for m in matched.iter() {
                        out.push(self.regex_entries[m.as_usize()]);
                    }
                }
                None => {
                    for &pos in &self.regex_entries {
                        if entries[pos as usize].path.matches(path) {
                            out.push(pos);
                        }
                    }
                }
            }
        }
        // Walk the trie: the root holds the `/` prefixes, and each node
        // whose segments are a prefix of the path matches it element-wise.
        let mut node = &self.nodes[0];
        out.extend_from_slice(&node.entries);
        for segment in segments(path) {
            match node.children.get(segment) {
                Some(&n) => {
                    node = &self.nodes[n as usize];
                    out.extend_from_slice(&node.entries);
                }
                None => break,
            }
        }
        out.sort_unstable();
        out
    }
}

/// The segments of a path after its leading `/` (`/a/b` → `a`, `b`; `/` →
/// one empty segment), as `path.split('/').skip(1)` gives them, found by
/// byte scans (cheaper than `str`'s char searcher on every request).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = path.bytes().position(|b| b == b'/').map(|i| &path[i + 1..]);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.bytes().position(|b| b == b'/') {
            Some(i) => {
                rest = Some(&current[i + 1..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::segments;

    #[test]
    fn segments_split_like_str_split() {
        for path in [
            "/",
            "/a",
            "/a/",
            "/a/b",
            "//a//b/",
            "/ä/ö/ü",
            "",
            "a/b",
            "/a/b/c/d/e",
        ] {
            let want: Vec<&str> = path.split('/').skip(1).collect();
            assert_eq!(segments(path).collect::<Vec<_>>(), want, "{path:?}");
        }
    }
}
