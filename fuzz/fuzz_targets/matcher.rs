//! Arbitrary requests against a fixed, varied configuration: routing never
//! panics, and the indexed matcher agrees with the linear scan.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use snapshot::{Body, Found, RequestInfo, Snapshot};

const CONFIG: &str = r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: gatehouse, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
spec: {controller: gatehouse.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {ports: [{port: 80}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i}
spec:
  defaultBackend: {service: {name: s, port: {number: 80}}}
  rules:
  - host: a.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}
      - {path: /x/y, pathType: Exact, backend: {service: {name: s, port: {number: 80}}}}
      - {path: /x, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}
  - host: "*.example.com"
    http:
      paths:
      - {path: /w, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: r}
spec:
  hostnames: [a.example.com, b.example.com]
  rules:
  - matches:
    - path: {type: RegularExpression, value: "/u/[0-9]+(/.*)?"}
      headers: [{name: x-a, value: "1"}]
    - path: {type: PathPrefix, value: /x}
      method: POST
      queryParams: [{name: q, type: Present}]
    - path: {type: PathPrefix, value: /b}
      body: [{jsonPointer: /k, type: RegularExpression, value: "v.*"}]
    backends: [{name: s, port: 80}]
"#;

fn snapshot() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| {
        let set: translate::ResourceSet = translate::manifest::parse(CONFIG)
            .expect("fixed config parses")
            .objects
            .into_iter()
            .collect();
        translate::translate(&set, &translate::Options::default()).snapshot
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(5, '\n');
    let host = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let query = parts.next();
    let header = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let Ok(path) = snapshot::normalize_path(path) else { return };
    let mut headers = HeaderMap::new();
    if let Some((k, v)) = header.split_once(':')
        && let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v))
    {
        headers.insert(k, v);
    }
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let method = if data.first().is_some_and(|b| b % 2 == 0) { Method::POST } else { Method::GET };
    let s = snapshot();
    let Some(vh) = s.virtual_host(&host.to_ascii_lowercase()) else { return };
    let bodies = [Some(Body::Unread), Some(Body::NotJson), json.as_ref().map(Body::Json)];
    for b in bodies.into_iter().flatten() {
        let info = RequestInfo { host, path: &path, query, method: &method, headers: &headers, body: b };
        let (fast, slow) = (vh.find(&info), vh.find_linear(&info));
        match (fast, slow) {
            (Found::Entry(a), Found::Entry(b)) => assert!(std::ptr::eq(a, b)),
            (a, b) => assert_eq!(a, b),
        }
        let _ = s.route(&info);
    }
});
