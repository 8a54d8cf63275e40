//! `gatehouse validate` reports problems by object and field.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::path::PathBuf;

use testkit::run_gatehouse;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_quickstart_is_valid() {
    let quickstart = repo().join("examples/quickstart");
    let (status, out) = run_gatehouse(&["validate", "-f", quickstart.to_str().unwrap()]);
    assert!(status.success(), "{out}");
    assert!(out.contains("0 error(s)"), "{out}");
}

#[test]
fn a_broken_apiroute_is_reported_with_object_field_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("route.yaml"),
        "apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: orders, namespace: shop}
spec:
  ingressClassName: gatehouse
  hostnames: [api.example.com]
  rules:
  - name: v1
    matches:
    - path: {type: RegularExpression, value: \"/orders/([0-9]+\"}
    backends: [{name: orders, port: 8080}]
",
    )
    .unwrap();
    let (status, out) = run_gatehouse(&["validate", "-f", dir.path().to_str().unwrap()]);
    assert_eq!(status.code(), Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("spec.rules[0].matches[0].path.value"))
        .unwrap_or_else(|| panic!("no line names the field:\n{out}"));
    assert!(line.starts_with("error: ApiRoute shop/orders: "), "{line}");
    assert!(line.contains("invalid regular expression"), "{line}");
    // The missing Service is reported too, on its own field.
    assert!(
        out.lines()
            .any(|l| l.contains("spec.rules[0].backends[0].name")
                && l.contains("Service shop/orders does not exist")),
        "{out}"
    );
}

#[test]
fn syntax_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n",
    )
    .unwrap();
    let (status, out) = run_gatehouse(&["validate", "-f", file.to_str().unwrap()]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("error: {}:", file.display())),
        "{out}"
    );
}

#[test]
fn objects_of_other_classes_are_noted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("route.yaml"),
        "apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: elsewhere}
spec:
  hostnames: [x.example.com]
",
    )
    .unwrap();
    let (status, out) = run_gatehouse(&["validate", "-f", dir.path().to_str().unwrap()]);
    assert!(status.success(), "{out}");
    assert!(
        out.contains("note: ApiRoute default/elsewhere is not served"),
        "{out}"
    );
}
