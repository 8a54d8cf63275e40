//! The rooms of the data plane and of the translator import each other
//! one way only: no file of `crates/dataplane/src` or
//! `crates/translate/src` reaches itself again through `use` paths
//! (`crate::…`, `super::…`, `self::…`, groups included). A circle means a
//! concept has no home yet (see DESIGN.md, "Rules of the road").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `root`, by its module path.
fn modules(root: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the source folder is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).expect("under root");
                let mut parts: Vec<String> = rel
                    .with_extension("")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                    parts.pop();
                }
                out.insert(parts, path);
            }
        }
    }
    out
}

/// The text of a file without its unit tests (they may import anything).
fn source(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("a source file is readable");
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The paths a file names from `crate`, `super` or `self`, with groups
/// (`crate::{a, b::{c, d}}`) expanded, as module-relative segments.
fn named_paths(text: &str) -> Vec<(String, Vec<String>)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let head = ["crate", "super", "self"]
            .into_iter()
            .find(|h| bytes[i..].starts_with(format!("{h}::").as_bytes()));
        let starts_word = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b':';
        let Some(head) = head.filter(|_| starts_word) else {
            i += 1;
            continue;
        };
        let (paths, end) = expand(text, i + head.len() + 2);
        for p in paths {
            out.push((head.to_owned(), p));
        }
        i = end.max(i + 1);
    }
    out
}

/// Expands the path tail starting at `at`: `a::b`, `a::{b, c::d}`.
fn expand(text: &str, at: usize) -> (Vec<Vec<String>>, usize) {
    let bytes = text.as_bytes();
    let mut prefix = Vec::new();
    let mut i = at;
    loop {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i > start {
            prefix.push(text[start..i].to_owned());
        }
        if bytes[i..].starts_with(b"::{") {
            i += 3;
            let mut all = Vec::new();
            loop {
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    return (all, i + 1);
                }
                let (inner, end) = expand(text, i);
                for p in inner {
                    let mut full = prefix.clone();
                    full.extend(p);
                    all.push(full);
                }
                i = end;
                // Skip `as name` and anything else up to the next item.
                while i < bytes.len() && bytes[i] != b',' && bytes[i] != b'}' {
                    i += 1;
                }
            }
        } else if bytes[i..].starts_with(b"::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// The circles among the files of `root` (each a sorted list of paths).
fn circles(root: &Path) -> Vec<Vec<String>> {
    let mods = modules(root);
    let resolve = |parts: &[String]| {
        (1..=parts.len())
            .rev()
            .find_map(|n| mods.get(&parts[..n]).cloned())
    };
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (me, path) in &mods {
        for (head, rest) in named_paths(&source(path)) {
            // A file's module is `me` (a `mod.rs` names its folder), so
            // `super` is its parent either way.
            let mut base: Vec<String> = match head.as_str() {
                "crate" => Vec::new(),
                "self" => me.clone(),
                _ => me[..me.len().saturating_sub(1)].to_vec(),
            };
            for segment in rest {
                if segment == "super" {
                    base.pop();
                } else {
                    base.push(segment);
                }
            }
            if let Some(target) = resolve(&base)
                && &target != path
                && target.file_name().is_some_and(|n| n != "lib.rs")
            {
                edges.entry(path.clone()).or_default().insert(target);
            }
        }
    }
    // Strongly connected components (Tarjan), iteratively small enough to
    // recurse: a crate has a few dozen files.
    struct Walk<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<PathBuf, usize>,
        low: BTreeMap<PathBuf, usize>,
        stack: Vec<PathBuf>,
        found: Vec<Vec<PathBuf>>,
    }
    fn visit(w: &mut Walk<'_>, v: &PathBuf) {
        let n = w.index.len();
        w.index.insert(v.clone(), n);
        w.low.insert(v.clone(), n);
        w.stack.push(v.clone());
        for t in w.edges.get(v).into_iter().flatten() {
            if !w.index.contains_key(t) {
                visit(w, t);
                let l = w.low[t].min(w.low[v]);
                w.low.insert(v.clone(), l);
            } else if w.stack.contains(t) {
                let l = w.index[t].min(w.low[v]);
                w.low.insert(v.clone(), l);
            }
        }
        if w.low[v] == w.index[v] {
            let mut scc = Vec::new();
            while let Some(t) = w.stack.pop() {
                let done = &t == v;
                scc.push(t);
                if done {
                    break;
                }
            }
            if scc.len() > 1 {
                w.found.push(scc);
            }
        }
    }
    let mut w = Walk {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for path in mods.values() {
        if !w.index.contains_key(path) {
            visit(&mut w, path);
        }
    }
    w.found
        .into_iter()
        .map(|scc| {
            let mut names: Vec<String> = scc
                .iter()
                .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
                .collect();
            names.sort();
            names
        })
        .collect()
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates")
        .join(name)
        .join("src")
}

#[test]
fn the_data_plane_has_no_circle_of_imports() {
    let found = circles(&crate_src("dataplane"));
    assert!(found.is_empty(), "files that import each other: {found:?}");
}

#[test]
fn the_translator_has_no_circle_of_imports() {
    let found = circles(&crate_src("translate"));
    assert!(found.is_empty(), "files that import each other: {found:?}");
}

#[test]
fn a_circle_of_imports_is_found() {
    let dir = std::env::temp_dir().join(format!("gatehouse-layers-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("room")).expect("a temporary folder");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("written");
    write("lib.rs", "mod a;\nmod room;\n");
    write("a.rs", "use crate::room::{b::B, c};\n");
    write("room/mod.rs", "pub(crate) mod b;\npub(crate) mod c;\n");
    write("room/b.rs", "pub(crate) struct B;\n");
    write(
        "room/c.rs",
        "use super::super::a::A;\n#[cfg(test)]\nmod tests { use crate::a; }\n",
    );
    let found = circles(&dir);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(found, vec![vec!["a.rs".to_owned(), "room/c.rs".to_owned()]]);
}
