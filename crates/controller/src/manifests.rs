//! A directory of manifests as a configuration source.
//!
//! Files are read recursively (`.yaml`, `.yml`, `.json`); hidden files and
//! directories (names starting with `.`) are skipped, which also skips the
//! `..data` links of a mounted ConfigMap while following the visible links
//! to its files. Each file is parsed as a whole: when a file fails to
//! parse, its last good objects stay in service and the error names the
//! file and line.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use translate::ResourceSet;
use translate::manifest::{self, Object, Skipped};

/// A problem with one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// What identifies a version of a file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

#[derive(Debug)]
struct FileState {
    stamp: Stamp,
    /// Objects of the last version that parsed.
    objects: Vec<Object>,
    /// The error of the current version, if it did not parse.
    error: Option<FileError>,
}

/// What a rescan found.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Whether any file was added, removed or changed.
    pub changed: bool,
    /// Files that changed and failed to parse in this scan.
    pub new_errors: Vec<FileError>,
    /// Documents of unknown kinds in files read in this scan.
    pub skipped: Vec<(PathBuf, Skipped)>,
}

/// The files of a manifest directory (or a list of files) and their last
/// good objects.
#[derive(Debug)]
pub struct ManifestSet {
    roots: Vec<PathBuf>,
    files: BTreeMap<PathBuf, FileState>,
}

impl ManifestSet {
    /// A set reading the given files and directories.
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Self {
            roots,
            files: BTreeMap::new(),
        }
    }

    /// Re-reads every file whose size, modification time or inode changed,
    /// drops files that are gone, and reports what happened.
    pub fn rescan(&mut self) -> ScanReport {
        let mut report = ScanReport::default();
        let mut present = BTreeMap::new();
        for root in &self.roots {
            collect(root, true, &mut present, &mut report.new_errors);
        }

        let before = self.files.len();
        self.files.retain(|path, _| present.contains_key(path));
        report.changed |= self.files.len() != before;

        for (path, stamp) in present {
            if self.files.get(&path).is_some_and(|s| s.stamp == stamp) {
                continue;
            }
            report.changed = true;
            let result = std::fs::read(&path)
                .map_err(|e| FileError {
                    path: path.clone(),
                    line: None,
                    column: None,
                    message: format!("cannot read: {e}"),
                })
                .and_then(|bytes| {
                    String::from_utf8(bytes).map_err(|_| FileError {
                        path: path.clone(),
                        line: None,
                        column: None,
                        message: "not UTF-8 text".into(),
                    })
                })
                .and_then(|text| {
                    manifest::parse(&text).map_err(|e| FileError {
                        path: path.clone(),
                        line: Some(e.line),
                        column: e.column,
                        message: e.message,
                    })
                });
            let state = self.files.entry(path.clone()).or_insert_with(|| FileState {
                stamp,
                objects: Vec::new(),
                error: None,
            });
            state.stamp = stamp;
            match result {
                Ok(parsed) => {
                    state.objects = parsed.objects;
                    state.error = None;
                    report
                        .skipped
                        .extend(parsed.skipped.into_iter().map(|s| (path.clone(), s)));
                }
                Err(e) => {
                    state.error = Some(e.clone());
                    report.new_errors.push(e);
                }
            }
        }
        report
    }

    /// Current errors of files whose latest version did not parse.
    pub fn errors(&self) -> impl Iterator<Item = &FileError> {
        self.files.values().filter_map(|f| f.error.as_ref())
    }

    /// The objects of every file (the last good version of each). When two
    /// files define the same object, the one whose path sorts last wins,
    /// as with `kubectl apply -f` over the directory; the returned
    /// warnings say so.
    pub fn resources(&self) -> (ResourceSet, Vec<String>) {
        let mut by_key: BTreeMap<(&'static str, String, String), (&Path, &Object)> =
            BTreeMap::new();
        let mut warnings = Vec::new();
        for (path, state) in &self.files {
            for object in &state.objects {
                let key = object_key(object);
                if let Some((earlier, _)) = by_key.insert(key.clone(), (path, object)) {
                    warnings.push(format!(
                        "{} {}/{} is defined in both {} and {}; using the one in {}",
                        key.0,
                        key.1,
                        key.2,
                        earlier.display(),
                        path.display(),
                        path.display()
                    ));
                }
            }
        }
        let set = by_key.into_values().map(|(_, o)| o.clone()).collect();
        (set, warnings)
    }

    /// Number of files currently known.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

fn object_key(object: &Object) -> (&'static str, String, String) {
    let (kind, meta) = match object {
        Object::IngressClass(o) => ("IngressClass", &o.metadata),
        Object::Ingress(o) => ("Ingress", &o.metadata),
        Object::Service(o) => ("Service", &o.metadata),
        Object::EndpointSlice(o) => ("EndpointSlice", &o.metadata),
        Object::Secret(o) => ("Secret", &o.metadata),
        Object::ApiRoute(o) => ("ApiRoute", &o.metadata),
        Object::RateLimitPolicy(o) => ("RateLimitPolicy", &o.metadata),
    };
    (
        kind,
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Walks `path`, recording every manifest file with its stamp. A root
/// given explicitly is read whatever its name.
fn collect(
    path: &Path,
    explicit: bool,
    out: &mut BTreeMap<PathBuf, Stamp>,
    errors: &mut Vec<FileError>,
) {
    if !explicit && is_hidden(path) {
        return;
    }
    // Follows symbolic links, as a mounted ConfigMap needs.
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            if explicit {
                errors.push(FileError {
                    path: path.to_owned(),
                    line: None,
                    column: None,
                    message: format!("cannot read: {e}"),
                });
            }
            return;
        }
    };
    if meta.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(e) => e,
            Err(e) => {
                errors.push(FileError {
                    path: path.to_owned(),
                    line: None,
                    column: None,
                    message: format!("cannot list directory: {e}"),
                });
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            collect(&child, false, out, errors);
        }
    } else if meta.is_file() && (explicit || is_manifest(path)) {
        out.insert(
            path.to_owned(),
            Stamp {
                modified: meta.modified().ok(),
                len: meta.len(),
                inode: meta.ino(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: NAME}\nspec: {ports: [{port: 80}]}\n";

    fn svc(name: &str) -> String {
        SVC.replace("NAME", name)
    }

    #[test]
    fn reads_recursively_and_skips_hidden_and_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
        std::fs::create_dir_all(dir.path().join(".hidden")).unwrap();
        std::fs::write(dir.path().join("a.yaml"), svc("a")).unwrap();
        std::fs::write(dir.path().join("sub/b.yml"), svc("b")).unwrap();
        std::fs::write(
            dir.path().join("sub/deeper/c.json"),
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"c"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join(".hidden/d.yaml"), svc("d")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
        let mut set = ManifestSet::new(vec![dir.path().to_owned()]);
        let report = set.rescan();
        assert!(report.changed);
        assert!(report.new_errors.is_empty(), "{:?}", report.new_errors);
        let (resources, warnings) = set.resources();
        assert!(warnings.is_empty());
        let mut names: Vec<_> = resources
            .services
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(!set.rescan().changed, "nothing changed");
    }

    #[test]
    fn a_broken_file_keeps_its_last_good_objects() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("routes.yaml");
        std::fs::write(&file, svc("good")).unwrap();
        let mut set = ManifestSet::new(vec![dir.path().to_owned()]);
        set.rescan();
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: [oops\n",
        )
        .unwrap();
        let report = set.rescan();
        assert!(report.changed);
        assert_eq!(report.new_errors.len(), 1);
        let err = &report.new_errors[0];
        assert_eq!(err.path, file);
        assert!(err.line.is_some());
        assert!(err.to_string().starts_with(&format!("{}:", file.display())));
        assert_eq!(set.errors().count(), 1);
        let (resources, _) = set.resources();
        assert_eq!(resources.services[0].metadata.name.as_deref(), Some("good"));
        // Fixing the file clears the error and serves the new objects.
        std::fs::write(&file, svc("fixed")).unwrap();
        set.rescan();
        assert_eq!(set.errors().count(), 0);
        assert_eq!(
            set.resources().0.services[0].metadata.name.as_deref(),
            Some("fixed")
        );
        // Removing it removes its objects.
        std::fs::remove_file(&file).unwrap();
        assert!(set.rescan().changed);
        assert!(set.resources().0.is_empty());
    }

    #[test]
    fn duplicates_resolve_to_the_last_path_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1.yaml"), svc("same")).unwrap();
        std::fs::write(
            dir.path().join("2.yaml"),
            svc("same").replace("port: 80", "port: 81"),
        )
        .unwrap();
        let mut set = ManifestSet::new(vec![dir.path().to_owned()]);
        set.rescan();
        let (resources, warnings) = set.resources();
        assert_eq!(resources.services.len(), 1);
        let port = resources.services[0]
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()[0]
            .port;
        assert_eq!(port, 81);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn a_missing_root_is_an_error() {
        let mut set = ManifestSet::new(vec![PathBuf::from("/nonexistent/gatehouse")]);
        let report = set.rescan();
        assert_eq!(report.new_errors.len(), 1);
    }
}
