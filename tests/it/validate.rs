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

/// The benchmark routes and the routes bench/pgo.sh trains the
/// profile-guided build on: a route that was refused or not served
/// would leave its feature out of the profile.
#[test]
fn the_benchmark_and_training_manifests_are_valid() {
    let bench = repo().join("bench/gatehouse");
    let training = repo().join("bench/pgo");
    let (status, out) = run_gatehouse(&[
        "validate",
        "-f",
        bench.to_str().unwrap(),
        "-f",
        training.to_str().unwrap(),
    ]);
    assert!(status.success(), "{out}");
    assert!(
        out.contains("0 error(s), 0 warning(s)") && !out.contains("not served"),
        "{out}"
    );
}

/// docker-compose.yaml serves the quickstart's routes with the backends of
/// examples/compose: the same Services, so every route resolves.
#[test]
fn the_compose_example_is_valid_and_matches_the_quickstart() {
    let q = repo().join("examples/quickstart");
    let compose = repo().join("examples/compose");
    let files = [
        q.join("00-ingressclass.yaml"),
        compose.join("10-backends.yaml"),
        q.join("20-ingress.yaml"),
        q.join("30-apiroute.yaml"),
    ];
    let mut args = vec!["validate"];
    for f in &files {
        args.extend(["-f", f.to_str().unwrap()]);
    }
    let (status, out) = run_gatehouse(&args);
    assert!(status.success(), "{out}");
    assert!(
        out.contains("0 error(s), 0 warning(s)") && !out.contains("not served"),
        "{out}"
    );
    let services = |text: &str| -> Vec<String> {
        let mut names: Vec<String> = text
            .split("---")
            .filter(|doc| doc.contains("kind: Service\n"))
            .filter_map(|doc| {
                doc.lines()
                    .find_map(|l| l.strip_prefix("metadata: {name: "))
                    .map(|n| n.trim_end_matches('}').to_owned())
            })
            .collect();
        names.sort();
        names
    };
    let a = services(&std::fs::read_to_string(q.join("10-backends.yaml")).unwrap());
    let b = services(&std::fs::read_to_string(compose.join("10-backends.yaml")).unwrap());
    assert_eq!(a.len(), 4);
    assert_eq!(a, b);
    let compose_file = std::fs::read_to_string(repo().join("docker-compose.yaml")).unwrap();
    for f in &files {
        let rel = f.strip_prefix(repo()).unwrap().display().to_string();
        assert!(
            compose_file.contains(&format!("./{rel}:")),
            "{rel} not mounted"
        );
    }
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
