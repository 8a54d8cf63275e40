//! Runs the shared routing scenarios (`tests/scenarios/*.yaml`) in-process:
//! translate the manifests, then route each request through the snapshot
//! the way the data plane does (host and path normalization, body
//! conditions, filters) and compare the outcome with the expectation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Deserialize;
use snapshot::{
    Action, BackendTarget, Body, Lookup, RedirectFrom, RequestInfo, Scheme, Snapshot,
    normalize_path,
};
use translate::{Options, ResourceSet, manifest, translate};

/// The default IngressClass every runner adds.
const INGRESS_CLASS: &str = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: gatehouse
  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}
spec: {controller: gatehouse.dev/ingress-controller}
";

#[derive(Debug, Deserialize)]
struct Scenario {
    #[allow(dead_code)]
    description: String,
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

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios")
}

/// What routing decided, in the terms of the expectations.
#[derive(Debug, Default)]
struct Outcome {
    status: u16,
    backend: Option<String>,
    path: Option<String>,
    location: Option<String>,
    headers: HeaderMap,
}

fn route(snapshot: &Snapshot, req: &Req) -> Outcome {
    let (raw_path, query) = match req.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.path.as_str(), None),
    };
    let Ok(path) = normalize_path(raw_path) else {
        return Outcome {
            status: 400,
            ..Outcome::default()
        };
    };
    let (host, port) = match req.host.rsplit_once(':') {
        Some((h, p)) => (h.to_ascii_lowercase(), p.parse::<u16>().ok()),
        None => (req.host.to_ascii_lowercase(), None),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "host",
        HeaderValue::from_str(&req.host).expect("valid host header"),
    );
    for (k, v) in &req.headers {
        headers.insert(
            HeaderName::from_bytes(k.as_bytes()).expect("valid header name"),
            HeaderValue::from_str(v).expect("valid header value"),
        );
    }
    if req.body.is_some() && !headers.contains_key("content-type") {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
    }
    let method = Method::from_bytes(req.method.as_deref().unwrap_or("GET").as_bytes())
        .expect("valid method");
    let mut info = RequestInfo {
        host: &host,
        path: &path,
        query,
        method: &method,
        headers: &headers,
        body: Body::Unread,
    };
    let json: Option<serde_json::Value>;
    let mut lookup = snapshot.route(&info);
    if let Lookup::NeedBody = lookup {
        let is_json = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        json = req
            .body
            .as_deref()
            .filter(|_| is_json)
            .and_then(|b| serde_json::from_str(b).ok());
        info.body = json.as_ref().map_or(Body::NotJson, Body::Json);
        lookup = snapshot.route(&info);
    }
    let matched = match lookup {
        Lookup::Matched(m) => m,
        Lookup::NotFound => {
            return Outcome {
                status: 404,
                ..Outcome::default()
            };
        }
        Lookup::NeedBody => panic!("the body was supplied"),
    };
    match &matched.route.action {
        Action::Respond(d) => Outcome {
            status: d.status,
            ..Outcome::default()
        },
        Action::Redirect(r) => {
            let from = RedirectFrom {
                scheme: Scheme::Http,
                host: &host,
                port: port.unwrap_or(80),
                path: &path,
                query,
            };
            Outcome {
                status: r.status,
                location: Some(r.location(&from, &matched.entry.path)),
                ..Outcome::default()
            }
        }
        Action::Forward(f) => {
            let backend = f.backends.first().map(|b| match &b.target {
                BackendTarget::Cluster { name, .. } => {
                    let service = name.split('/').nth(1).unwrap_or_default();
                    service.split(':').next().unwrap_or_default().to_owned()
                }
                BackendTarget::Unresolved { status, .. } => format!("unresolved({status})"),
            });
            let mut upstream = headers.clone();
            if let Some(m) = &matched.route.filters.request_headers {
                m.apply(&mut upstream);
            }
            let mut upstream_path = path.to_string();
            if let Some(rw) = &matched.route.filters.rewrite {
                if let Some(p) = &rw.path {
                    upstream_path = p.apply(&path, &matched.entry.path);
                }
                if let Some(h) = &rw.hostname {
                    upstream.insert("host", h.clone());
                }
            }
            Outcome {
                status: 200,
                backend,
                path: Some(upstream_path),
                location: None,
                headers: upstream,
            }
        }
    }
}

#[test]
fn scenarios_route_as_expected() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .expect("tests/scenarios exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "scenarios found: {files:?}");
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable scenario");
        let scenario: Scenario =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let manifests = format!("{INGRESS_CLASS}---\n{}", scenario.manifests);
        let parsed =
            manifest::parse(&manifests).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let resources: ResourceSet = parsed.objects.into_iter().collect();
        let options = Options {
            nginx_compat: true,
            ..Options::default()
        };
        let output = translate(&resources, &options);
        let errors: Vec<_> = output
            .diagnostics
            .iter()
            .filter(|d| d.severity == translate::Severity::Error)
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for req in &scenario.requests {
            checked += 1;
            let got = route(&output.snapshot, req);
            let want_status = req.expect.status.unwrap_or(200);
            let mut problems = Vec::new();
            if got.status != want_status {
                problems.push(format!("status {} (want {want_status})", got.status));
            }
            if req.expect.backend.is_some() && got.backend != req.expect.backend {
                problems.push(format!(
                    "backend {:?} (want {:?})",
                    got.backend, req.expect.backend
                ));
            }
            if req.expect.path.is_some() && got.path != req.expect.path {
                problems.push(format!(
                    "upstream path {:?} (want {:?})",
                    got.path, req.expect.path
                ));
            }
            if req.expect.location.is_some() && got.location != req.expect.location {
                problems.push(format!(
                    "location {:?} (want {:?})",
                    got.location, req.expect.location
                ));
            }
            for (k, v) in &req.expect.headers {
                let actual = got
                    .headers
                    .get(k.as_str())
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default();
                if actual != v {
                    problems.push(format!("header {k} = {actual:?} (want {v:?})"));
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
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} requests:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
