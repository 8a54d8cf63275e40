//! Synthetic configurations for benchmarks and scale tests.

use std::fmt::Write as _;

/// Manifests for `paths` Ingress paths: one Ingress and one host per ten
/// paths (`host-<i>.example.com`), one Service per Ingress with
/// `endpoints` ready endpoints on `port`, plus the IngressClass. Endpoint
/// addresses are distinct loopback addresses (`127.<a>.<b>.<c>`), so one
/// backend listening on `0.0.0.0:<port>` answers for all of them.
pub fn ingress_paths(paths: usize, endpoints: usize, port: u16) -> String {
    let ingresses = paths.div_ceil(10);
    let mut out = String::with_capacity(paths * 200);
    out.push_str(crate::manifests::INGRESS_CLASS);
    for i in 0..ingresses {
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: svc-{i}-1\n  labels: {{kubernetes.io/service-name: svc-{i}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints:\n"
        );
        for e in 0..endpoints {
            let n = i * endpoints + e + 1;
            let _ = writeln!(
                out,
                "- addresses: [\"127.{}.{}.{}\"]",
                (n >> 16) & 255,
                (n >> 8) & 255,
                n & 255
            );
        }
        let _ = write!(
            out,
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: ing-{i}}}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - host: host-{i}.example.com\n    http:\n      paths:\n"
        );
        for p in 0..10.min(paths - i * 10) {
            let kind = if p % 3 == 0 { "Exact" } else { "Prefix" };
            let _ = writeln!(
                out,
                "      - {{path: /api/v{p}/items-{i}, pathType: {kind}, backend: {{service: {{name: svc-{i}, port: {{number: 80}}}}}}}}"
            );
        }
    }
    out
}
