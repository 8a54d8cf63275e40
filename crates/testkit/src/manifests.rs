//! Manifest snippets for tests, and atomic writes into a manifest directory.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

/// The IngressClass Gatehouse serves by default.
pub const INGRESS_CLASS: &str = "\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: gatehouse}
spec: {controller: gatehouse.dev/ingress-controller}
";

/// A Service `name` (port 80, named `http`) in `default`, with one
/// EndpointSlice listing `endpoints` (all ready). Every endpoint must share
/// one port, which becomes the slice's port; pass no endpoints for a
/// Service with none.
pub fn service(name: &str, endpoints: &[SocketAddr]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{name: http, port: 80}}]\n"
    );
    // One slice per port, so endpoints on different ports work too.
    let mut ports: Vec<u16> = endpoints.iter().map(SocketAddr::port).collect();
    ports.sort_unstable();
    ports.dedup();
    for (i, port) in ports.iter().enumerate() {
        let _ = write!(
            out,
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-{i}\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints:\n"
        );
        for ep in endpoints.iter().filter(|e| e.port() == *port) {
            let _ = writeln!(out, "- addresses: [\"{}\"]", ep.ip());
        }
    }
    out
}

/// An Ingress `name` with one rule for `host` and the given
/// `(path, pathType, service)` paths, all on service port 80.
pub fn ingress(name: &str, host: &str, paths: &[(&str, &str, &str)]) -> String {
    let mut out = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - host: \"{host}\"\n    http:\n      paths:\n"
    );
    for (path, kind, service) in paths {
        let _ = writeln!(
            out,
            "      - {{path: \"{path}\", pathType: {kind}, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}"
        );
    }
    out
}

/// Joins manifests into one multi-document text.
pub fn docs(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| p.trim_end())
        .collect::<Vec<_>>()
        .join("\n---\n")
        + "\n"
}

/// Writes `text` to `dir/name` atomically (a temporary file renamed into
/// place), as configuration tools should, so a reader never sees half a
/// file.
pub fn write_atomic(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write temporary manifest");
    std::fs::rename(&tmp, dir.join(name)).expect("rename manifest into place");
}
