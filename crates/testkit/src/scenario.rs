//! The shared routing scenarios (`tests/scenarios/*.yaml`): loading them,
//! sending their requests to a gateway and checking the outcomes, and
//! turning them into manifests for a real cluster.
//!
//! One checker serves every runner: the integration tests (standalone
//! gateway, [`crate::EchoServer`] backends) and the kind suite in `e2e/`
//! (a gateway installed by Helm, the Gateway API conformance echo image as
//! backends). It reads both echo formats.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::raw_request;

/// One scenario file.
#[derive(Debug, Deserialize)]
pub struct Scenario {
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Services (without endpoints), Ingresses, ApiRoutes, classes.
    pub manifests: String,
    /// Requests and their expected outcomes.
    pub requests: Vec<Request>,
}

/// One request of a scenario.
#[derive(Debug, Deserialize)]
pub struct Request {
    /// The Host header.
    pub host: String,
    /// Path and query, sent as written.
    pub path: String,
    /// Default `GET`.
    #[serde(default)]
    pub method: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body (JSON unless a content-type header says otherwise).
    #[serde(default)]
    pub body: Option<String>,
    /// What must happen.
    pub expect: Expect,
}

/// The expected outcome of a request.
#[derive(Debug, Deserialize)]
pub struct Expect {
    /// The Service whose endpoint answered.
    #[serde(default)]
    pub backend: Option<String>,
    /// The status (default 200).
    #[serde(default)]
    pub status: Option<u16>,
    /// The path the backend received (without the query).
    #[serde(default)]
    pub path: Option<String>,
    /// The `Location` of a redirect.
    #[serde(default)]
    pub location: Option<String>,
    /// Headers the backend received (`""`: absent).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The scenario files of a directory, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Reads a scenario file.
pub fn load(file: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// The objects of a multi-document YAML text.
pub fn objects(yaml: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut doc = String::new();
    for line in yaml.lines().chain(std::iter::once("---")) {
        if line.trim_end() == "---" {
            let v: Value = serde_saphyr::from_str(&doc).map_err(|e| e.to_string())?;
            if !v.is_null() {
                out.push(v);
            }
            doc.clear();
        } else {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    Ok(out)
}

/// Names of the Services a scenario declares.
pub fn services(scenario: &Scenario) -> Result<Vec<String>, String> {
    Ok(objects(&scenario.manifests)?
        .iter()
        .filter(|o| o["kind"] == "Service")
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect())
}

/// The port the conformance echo image listens on.
pub const ECHO_BASIC_PORT: u16 = 3000;

/// The scenario as objects for a real cluster: each Service selects a
/// Deployment of `echo_image` (the Gateway API conformance echo server,
/// which names its Service in every answer), targeting its port.
pub fn kubernetes_objects(scenario: &Scenario, echo_image: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for mut o in objects(&scenario.manifests)? {
        if o["kind"] == "Service" {
            let name = o["metadata"]["name"]
                .as_str()
                .ok_or("a Service without a name")?
                .to_owned();
            o["spec"]["selector"] = json!({"e2e.gatehouse.dev/backend": name});
            if let Some(ports) = o["spec"]["ports"].as_array_mut() {
                for p in ports {
                    p["targetPort"] = json!(ECHO_BASIC_PORT);
                }
            }
            out.push(echo_deployment(&name, echo_image));
        }
        out.push(o);
    }
    Ok(out)
}

fn echo_deployment(service: &str, image: &str) -> Value {
    let labels = json!({"e2e.gatehouse.dev/backend": service});
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": format!("{service}-echo")},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"}
                    },
                    "containers": [{
                        "name": "echo",
                        "image": image,
                        "ports": [{"containerPort": ECHO_BASIC_PORT}],
                        "env": [
                            {"name": "SERVICE_NAME", "value": service},
                            {"name": "POD_NAME", "valueFrom": field("metadata.name")},
                            {"name": "NAMESPACE", "valueFrom": field("metadata.namespace")}
                        ],
                        "readinessProbe": {"httpGet": {"path": "/health", "port": ECHO_BASIC_PORT}, "periodSeconds": 1},
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}
                        },
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}
                    }]
                }
            }
        }
    })
}

/// What an echo backend reported about the request it received, from
/// either echo format: Gatehouse's test echo (`name`, `path`, `query`,
/// lowercase `headers`) or the conformance echo (`service`, `path` with
/// the query, canonical `headers`, `host` apart).
#[derive(Debug, Default)]
struct Seen {
    backend: Option<String>,
    path: Option<String>,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn parse(body: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let backend = v["name"]
            .as_str()
            .or_else(|| v["service"].as_str())
            .map(str::to_owned);
        backend.as_ref()?;
        let path = v["path"]
            .as_str()
            .map(|p| p.split_once('?').map_or(p, |(p, _)| p).to_owned());
        let mut headers = Vec::new();
        if let Some(map) = v["headers"].as_object() {
            for (k, vals) in map {
                let first = match vals {
                    Value::Array(a) => a.first().and_then(Value::as_str),
                    other => other.as_str(),
                };
                if let Some(first) = first {
                    headers.push((k.to_ascii_lowercase(), first.to_owned()));
                }
            }
        }
        // The conformance echo reports Host apart from the headers.
        if let Some(host) = v["host"].as_str()
            && !headers.iter().any(|(k, _)| k == "host")
        {
            headers.push(("host".into(), host.to_owned()));
        }
        Some(Self {
            backend,
            path,
            headers,
        })
    }

    fn header(&self, name: &str) -> &str {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Sends every request of `scenario` to the gateway at `gateway` and
/// returns one line per request that did not turn out as expected.
pub async fn check(gateway: SocketAddr, name: &str, scenario: &Scenario) -> Vec<String> {
    let mut failures = Vec::new();
    for req in &scenario.requests {
        let mut headers: Vec<(&str, &str)> = vec![("host", req.host.as_str())];
        headers.extend(req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if req.body.is_some() && !req.headers.contains_key("content-type") {
            headers.push(("content-type", "application/json"));
        }
        let method = req.method.as_deref().unwrap_or("GET");
        let body = req.body.as_deref().unwrap_or_default().as_bytes();
        let reply = match raw_request(gateway, method, &req.path, &headers, body).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: {method} {} {}: {e}", req.host, req.path));
                continue;
            }
        };
        let mut problems = Vec::new();
        let want_status = req.expect.status.unwrap_or(200);
        if reply.status != want_status {
            problems.push(format!(
                "status {} (want {want_status}): {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ));
        }
        let seen = Seen::parse(&reply.body);
        if let Some(want) = &req.expect.backend {
            let got = seen.as_ref().and_then(|s| s.backend.clone());
            if got.as_ref() != Some(want) {
                problems.push(format!("backend {got:?} (want {want:?})"));
            }
        }
        if let Some(want) = &req.expect.path {
            let got = seen.as_ref().and_then(|s| s.path.clone());
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
            let got = seen.as_ref().map_or("", |s| s.header(k));
            if got != want {
                problems.push(format!("header {k} = {got:?} (want {want:?})"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{name}: {method} {} {}: {}",
                req.host,
                req.path,
                problems.join(", ")
            ));
        }
    }
    failures
}

/// [`check`], repeated until every request passes or `wait` is over (a
/// cluster programs routes and endpoints asynchronously); the failures of
/// the last attempt.
pub async fn check_until(
    gateway: SocketAddr,
    name: &str,
    scenario: &Scenario,
    wait: Duration,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let failures = check(gateway, name, scenario).await;
        if failures.is_empty() || std::time::Instant::now() >= deadline {
            return failures;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_echo_formats() {
        let ours = br#"{"name":"a","method":"GET","path":"/x","query":"q=1","protocol":"HTTP/1.1","headers":{"x-a":["1"],"host":["h.example"]},"bodyLength":0}"#;
        let s = Seen::parse(ours).unwrap();
        assert_eq!(s.backend.as_deref(), Some("a"));
        assert_eq!(s.path.as_deref(), Some("/x"));
        assert_eq!(s.header("X-A"), "1");
        assert_eq!(s.header("host"), "h.example");
        assert_eq!(s.header("x-missing"), "");

        let conformance = br#"{"path":"/y?z=2","host":"h2.example","method":"GET","proto":"HTTP/1.1","headers":{"X-B":["2","3"]},"namespace":"e2e","ingress":"","service":"b","pod":"b-1"}"#;
        let s = Seen::parse(conformance).unwrap();
        assert_eq!(s.backend.as_deref(), Some("b"));
        assert_eq!(s.path.as_deref(), Some("/y"));
        assert_eq!(s.header("x-b"), "2");
        assert_eq!(s.header("host"), "h2.example");

        assert!(Seen::parse(b"not json").is_none());
        assert!(Seen::parse(br#"{"message":"no backend"}"#).is_none());
    }

    #[test]
    fn kubernetes_objects_select_echo_deployments() {
        let scenario = Scenario {
            description: String::new(),
            manifests: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\n".into(),
            requests: Vec::new(),
        };
        let objs = kubernetes_objects(&scenario, "echo:1").unwrap();
        assert_eq!(objs.len(), 3);
        assert_eq!(objs[0]["kind"], "Deployment");
        let svc = &objs[1];
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 3000);
        assert_eq!(
            svc["spec"]["selector"],
            objs[0]["spec"]["template"]["metadata"]["labels"]
        );
        assert_eq!(
            objs[0]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
            "a"
        );
        assert_eq!(objs[2]["kind"], "Ingress");
    }
}
