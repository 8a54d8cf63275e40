//! The shared routing scenarios (`tests/scenarios/*.yaml`) through the real
//! binary: one echo backend per Service, requests sent byte for byte as
//! the scenario writes them, outcomes read from what the backend saw.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use testkit::manifests::write_atomic;
use testkit::{EchoServer, GatewayProcess, raw_request};

const INGRESS_CLASS: &str = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: gatehouse
  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}
spec: {controller: gatehouse.dev/ingress-controller}
";

#[derive(Debug, Deserialize)]
struct Scenario {
    manifests: String,
    requests: Vec<Req>,
}

#[derive(Debug, Deserialize)]
struct Req {
    host: String,
    path: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
struct Expect {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/scenarios exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Service names declared in the manifests.
fn services(manifests: &str) -> Vec<String> {
    translate::manifest::parse(manifests)
        .expect("scenario manifests parse")
        .objects
        .into_iter()
        .filter_map(|o| match o {
            translate::Object::Service(s) => s.metadata.name.clone(),
            _ => None,
        })
        .collect()
}

async fn run(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("readable scenario");
    let scenario: Scenario = serde_saphyr::from_str(&text).expect("scenario parses");
    let mut backends = Vec::new();
    let mut slices = String::new();
    for name in services(&scenario.manifests) {
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
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut failures = Vec::new();
    for req in &scenario.requests {
        let mut headers: Vec<(&str, &str)> = vec![("host", req.host.as_str())];
        headers.extend(req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if req.body.is_some() && !req.headers.contains_key("content-type") {
            headers.push(("content-type", "application/json"));
        }
        let method = req.method.as_deref().unwrap_or("GET");
        let body = req.body.as_deref().unwrap_or_default().as_bytes();
        let reply = match raw_request(gw.http, method, &req.path, &headers, body).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: {} {}: {e}", req.host, req.path));
                continue;
            }
        };
        let mut problems = Vec::new();
        let want_status = req.expect.status.unwrap_or(200);
        if reply.status != want_status {
            problems.push(format!(
                "status {} (want {want_status}): {}",
                reply.status,
                reply.text()
            ));
        }
        let echo = reply.echo();
        if let Some(want) = &req.expect.backend {
            let got = echo.as_ref().map(|e| e.name.clone());
            if got.as_ref() != Some(want) {
                problems.push(format!("backend {got:?} (want {want:?})"));
            }
        }
        if let Some(want) = &req.expect.path {
            let got = echo.as_ref().map(|e| e.path.clone());
            if got.as_ref() != Some(want) {
                problems.push(format!("upstream path {got:?} (want {want:?})"));
            }
        }
        if let Some(want) = &req.expect.location {
            let got = reply.headers.get("location").and_then(|v| v.to_str().ok());
            if got != Some(want.as_str()) {
                problems.push(format!("location {got:?} (want {want:?})"));
            }
        }
        for (k, want) in &req.expect.headers {
            let got = echo
                .as_ref()
                .and_then(|e| e.header(k))
                .unwrap_or_default()
                .to_owned();
            if got != *want {
                problems.push(format!("header {k} = {got:?} (want {want:?})"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{name}: {} {}: {}",
                req.host,
                req.path,
                problems.join(", ")
            ));
        }
    }
    drop(backends);
    failures
}

#[tokio::test(flavor = "multi_thread")]
async fn scenarios_through_the_binary() {
    let files = scenario_files();
    assert!(files.len() >= 8, "scenarios: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        failures.extend(run(file).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
