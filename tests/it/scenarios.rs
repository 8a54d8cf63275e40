//! The shared routing scenarios (`tests/scenarios/*.yaml`) through the real
//! binary: one echo backend per Service, requests sent byte for byte as
//! the scenario writes them, outcomes read from what the backend saw. The
//! checker is `testkit::scenario`, the same one the kind suite runs
//! (through `gatehouse-scenarios`) against a gateway installed by Helm.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::manifests::write_atomic;
use testkit::process::binary;
use testkit::scenario::{self, Scenario};
use testkit::{EchoServer, GatewayProcess};

const INGRESS_CLASS: &str = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: gatehouse
  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}
spec: {controller: gatehouse.dev/ingress-controller}
";

fn scenario_files() -> Vec<PathBuf> {
    scenario::files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"))
}

/// A standalone gateway serving `scenario`, with one echo backend per
/// Service (the runner provides the EndpointSlices).
async fn serve(scenario: &Scenario) -> (GatewayProcess, Vec<EchoServer>, tempfile::TempDir) {
    let mut backends = Vec::new();
    let mut slices = String::new();
    for name in scenario::services(scenario).unwrap() {
        let echo = EchoServer::start(&name).await;
        slices.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-test\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports: [{{port: {}}}]\nendpoints:\n- addresses: [\"127.0.0.1\"]\n",
            echo.addr.port()
        ));
        backends.push(echo);
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    write_atomic(
        dir.path(),
        "scenario.yaml",
        &format!("{INGRESS_CLASS}---\n{}\n{slices}", scenario.manifests),
    );
    let gw = GatewayProcess::standalone(dir.path(), &["--nginx-compat"]).await;
    (gw, backends, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn scenarios_through_the_binary() {
    let files = scenario_files();
    assert!(files.len() >= 8, "scenarios: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let s = scenario::load(file).unwrap();
        let (gw, _backends, _dir) = serve(&s).await;
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        failures.extend(scenario::check(gw.http, &name, &s).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `gatehouse-scenarios check`, the runner of the kind suite, passes
/// against a gateway that serves the scenario and fails (exit 1, naming
/// the request) when an expectation does not hold.
#[tokio::test(flavor = "multi_thread")]
async fn the_e2e_runner_checks_a_running_gateway() {
    let file = scenario_files()
        .into_iter()
        .find(|f| f.ends_with("ingress-host-rules.yaml"))
        .unwrap();
    let s = scenario::load(&file).unwrap();
    let (gw, _backends, _dir) = serve(&s).await;
    let runner = |file: &Path| {
        Command::new(binary("gatehouse-scenarios"))
            .args(["check", "--gateway", &gw.http.to_string()])
            .arg(file)
            .output()
            .unwrap()
    };
    let out = runner(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok   ingress-host-rules.yaml (9 requests)"),
        "{stdout}"
    );

    // The same scenario with one expectation changed must fail.
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "{host: baz.bar.com, path: /, expect: {backend: wildcard}}",
        "{host: baz.bar.com, path: /, expect: {backend: exact}}",
    );
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, text).unwrap();
    let out = runner(&broken);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("GET baz.bar.com /: backend Some(\"wildcard\") (want \"exact\")"),
        "{stdout}"
    );

    // And it prints the scenario as objects for a cluster.
    let out = Command::new(binary("gatehouse-scenarios"))
        .args(["manifests", "--echo-image", "echo:test"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let deployments = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .count();
    assert_eq!(deployments, scenario::services(&s).unwrap().len());
}
