//! Canary Ingresses (ingress-nginx `canary-*`), collected by the
//! namespace, host and path they shadow, and served as extra rules there.

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

use crate::diagnostics::{Diagnostics, ObjectRef, Reason};
use crate::nginx;

/// Canary Ingresses (`nginx.ingress.kubernetes.io/canary: "true"`) by the
/// namespace, host and path they shadow.
#[derive(Default)]
pub(crate) struct Canaries {
    pub(super) by_path: std::collections::HashMap<(String, String, String), CanaryPath>,
}

pub(crate) struct CanaryPath {
    pub(crate) object: ObjectRef,
    pub(super) field: String,
    pub(crate) canary: nginx::Canary,
    pub(crate) backend: IngressBackend,
    pub(super) used: std::cell::Cell<bool>,
}

impl Canaries {
    pub(crate) fn collect(&mut self, ingress: &Ingress) {
        let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
        let parsed = nginx::parse(ingress.metadata.annotations.as_ref(), &namespace);
        let Some(canary) = parsed.settings.canary.clone() else {
            return;
        };
        if parsed.blocked() {
            return;
        }
        let object = crate::identity("Ingress", &ingress.metadata).0;
        for (i, rule) in ingress
            .spec
            .iter()
            .flat_map(|s| s.rules.iter().flatten())
            .enumerate()
        {
            let host = rule.host.clone().unwrap_or_default().to_ascii_lowercase();
            for (j, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let key = (
                    namespace.clone(),
                    host.clone(),
                    path.path.clone().unwrap_or_else(|| "/".into()),
                );
                self.by_path.entry(key).or_insert_with(|| CanaryPath {
                    object: object.clone(),
                    field: format!("spec.rules[{i}].http.paths[{j}]"),
                    canary: canary.clone(),
                    backend: path.backend.clone(),
                    used: std::cell::Cell::new(false),
                });
            }
        }
    }

    pub(super) fn is_canary(&self, object: &ObjectRef) -> bool {
        self.by_path.values().any(|c| c.object == *object)
    }

    pub(crate) fn find(&self, namespace: &str, host: &str, path: &str) -> Option<&CanaryPath> {
        let key = (
            namespace.to_owned(),
            host.to_ascii_lowercase(),
            path.to_owned(),
        );
        let found = self.by_path.get(&key)?;
        found.used.set(true);
        Some(found)
    }

    pub(super) fn report_unused(&self, diags: &mut Diagnostics) {
        for ((_, host, path), c) in &self.by_path {
            if !c.used.get() {
                diags.warning(
                    &c.object,
                    c.field.clone(),
                    Reason::BackendNotFound,
                    format!("no other Ingress of the class serves host {host:?} path {path:?}: the canary is not served"),
                );
            }
        }
    }
}

/// A whole-value pattern for a `Cookie` header carrying `name=value`.
pub(crate) fn cookie_pattern(name: &str, value: &str) -> String {
    format!(
        r"(?:.*;)?\s*{}={}\s*(?:;.*)?",
        regex_escape(name),
        regex_escape(value)
    )
}

pub(super) fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
